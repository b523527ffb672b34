package rules

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/finderbot/finderbot/rules/yamlpos"
	"gopkg.in/yaml.v3"
)

// source is one rule or test file being decoded. Decoding is strict: every
// unknown key and every value of the wrong type becomes a Problem at its
// position, and decoding goes on so that all of them are reported at once.
type source struct {
	name     string
	lines    []string
	problems *[]Problem
}

func newSource(name string, data []byte, problems *[]Problem) *source {
	return &source{name: name, lines: strings.Split(string(data), "\n"), problems: problems}
}

func (s *source) line(n int) string {
	if n < 1 || n > len(s.lines) {
		return ""
	}
	return strings.TrimRight(s.lines[n-1], "\r")
}

// errorAt records a problem at a node's position.
func (s *source) errorAt(n *yaml.Node, rule, format string, args ...any) {
	line, col := 0, 0
	if n != nil {
		line, col = n.Line, n.Column
	}
	s.errorAtPos(line, col, rule, fmt.Sprintf(format, args...))
}

func (s *source) errorAtPos(line, col int, rule, msg string) {
	*s.problems = append(*s.problems, Problem{File: s.name, Line: line, Col: col, Rule: rule, Msg: msg, Source: s.line(line)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse decodes the YAML document of the file, reporting a syntax error with
// its line.
func (s *source) parse(data []byte) *yaml.Node {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			// An empty file is more often one being written than one
			// meant to hold no rules; taking it would silence the rules
			// until the next reload.
			s.errorAtPos(1, 1, "", "the file is empty (write rule files whole, or rename them into place)")
			return nil
		}
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			s.errorAtPos(n, 0, "", "invalid YAML: "+m[2])
			return nil
		}
		// The YAML reader names no position for bad characters and for
		// a document cut short: find it.
		line, col := yamlpos.SyntaxPos(data)
		s.errorAtPos(line, col, "", "invalid YAML: "+strings.TrimPrefix(msg, "yaml: "))
		return nil
	}
	if len(doc.Content) == 0 {
		s.errorAtPos(1, 1, "", "the file is empty (write rule files whole, or rename them into place)")
		return nil
	}
	return doc.Content[0]
}

// field is one key of a mapping being decoded.
type field struct {
	key   *yaml.Node
	value *yaml.Node
}

// mapping returns the keys of a mapping node, refusing keys outside allowed
// and duplicate keys. what names the mapping in messages.
func (s *source) mapping(n *yaml.Node, rule, what string, allowed ...string) map[string]field {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		s.errorAt(n, rule, "%s: want a mapping, got %s", what, kindName(n))
		return nil
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		if !contains(allowed, name) {
			if near := nearest(name, allowed); near != "" {
				s.errorAt(k, rule, "%s: unknown key %q (did you mean %q?)", what, name, near)
			} else {
				s.errorAt(k, rule, "%s: unknown key %q (want one of %s)", what, name, strings.Join(allowed, ", "))
			}
			continue
		}
		if prev, dup := out[name]; dup {
			s.errorAt(k, rule, "%s: key %q repeated (first at line %d)", what, name, prev.key.Line)
			continue
		}
		out[name] = field{key: k, value: v}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// str decodes a scalar as text. Numbers and booleans are accepted as their
// text, since an operator writing `reply: 42` means the text "42".
func (s *source) str(f field, rule, what string) (string, bool) {
	n := resolve(f.value)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		s.errorAt(n, rule, "%s: want text, got %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (s *source) integer(f field, rule, what string) (int, bool) {
	n := resolve(f.value)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		if v, err := strconv.ParseInt(n.Value, 0, 32); err == nil {
			return int(v), true
		}
	}
	s.errorAt(n, rule, "%s: want a whole number, got %s", what, kindName(n))
	return 0, false
}

func (s *source) boolean(f field, rule, what string) (bool, bool) {
	n := resolve(f.value)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var v bool
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	s.errorAt(n, rule, "%s: want true or false, got %s", what, kindName(n))
	return false, false
}

func (s *source) duration(f field, rule, what string) (time.Duration, bool) {
	n := resolve(f.value)
	if n.Kind == yaml.ScalarNode {
		if d, err := time.ParseDuration(n.Value); err == nil && d > 0 {
			return d, true
		}
	}
	s.errorAt(n, rule, "%s: want a positive duration such as 30s, 5m or 2h, got %s", what, kindName(n))
	return 0, false
}

func (s *source) list(f field, rule, what string) []*yaml.Node {
	n := resolve(f.value)
	if n.Kind != yaml.SequenceNode {
		s.errorAt(n, rule, "%s: want a list, got %s", what, kindName(n))
		return nil
	}
	return n.Content
}

// textPos maps a position inside the text of a scalar node (1-based line and
// character column within the text) to its position in the file. It is exact
// for plain, quoted (without escapes before the position) and block scalars.
func (s *source) textPos(n *yaml.Node, line, col int) (int, int) {
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		fl := n.Line + line
		indent := 0
		for _, r := range s.line(fl) {
			if r != ' ' {
				break
			}
			indent++
		}
		return fl, indent + col
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		return n.Line + line - 1, n.Column + col
	}
	if line > 1 {
		return n.Line + line - 1, col
	}
	return n.Line, n.Column + col - 1
}

// nearest returns the word of list closest to s, if it is close enough to be
// a typo.
func nearest(s string, list []string) string {
	best, bestD := "", 3
	for _, w := range list {
		if d := yamlpos.Distance(s, w); d < bestD {
			best, bestD = w, d
		}
	}
	return best
}
