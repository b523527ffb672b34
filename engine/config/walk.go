package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/finderbot/finderbot/rules/yamlpos"
	"gopkg.in/yaml.v3"
)

var durationType = reflect.TypeOf(time.Duration(0))

// walker checks a YAML tree against the Config type before decoding, so that
// every problem is reported with its key path and position, and expands
// ${VAR} in scalars.
type walker struct {
	file string
	env  func(string) (string, bool)
	errs *[]error
	// raw holds, by key path, the text of each value that had ${VAR}
	// expanded in it, so that errors can show the text as written rather
	// than a value that may be a secret.
	raw map[string]string
}

// show quotes the value at path for an error message: as written in the
// file when it came from the environment, since it may be a secret.
func (w walker) show(path, v string) string {
	if r, ok := w.raw[path]; ok {
		return fmt.Sprintf("%q (with environment variables)", r)
	}
	return fmt.Sprintf("%q", v)
}

func (w walker) fail(n *yaml.Node, path, format string, args ...any) {
	if path == "" {
		path = "(top level)"
	}
	*w.errs = append(*w.errs, fmt.Errorf("config: %s:%d:%d: %s: %s", w.file, n.Line, n.Column, path, fmt.Sprintf(format, args...)))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (w walker) check(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		w.fail(n, path, "YAML aliases are not supported in the configuration")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "want a mapping of keys, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				w.fail(k, join(path, k.Value), "unknown key%s", suggest(k.Value, fields))
				continue
			}
			if seen[k.Value] {
				w.fail(k, join(path, k.Value), "key given twice")
			}
			seen[k.Value] = true
			w.check(v, f.Type, join(path, k.Value))
		}
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && t.Elem().Kind() == reflect.String {
			// "rules: ./rules" means a list of one.
			item := *n
			*n = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: n.Line, Column: n.Column, Content: []*yaml.Node{&item}}
		}
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "want a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			w.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "want a single value, got %s", describe(n))
			return
		}
		if !w.expand(n, path) {
			return
		}
		w.scalar(n, t, path)
	}
}

func (w walker) scalar(n *yaml.Node, t reflect.Type, path string) {
	v := n.Value
	switch {
	case t == durationType:
		if _, err := time.ParseDuration(v); err != nil {
			w.fail(n, path, "%s is not a duration (write it like 30s, 5m or 1h30m)", w.show(path, v))
		}
		n.Tag = "!!str" // "0" is a duration too, not an int the decoder refuses
	case t.Kind() == reflect.String:
		n.Tag = "!!str" // keep "0700" or "true" a string
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			w.fail(n, path, "%s is not true or false", w.show(path, v))
		}
		// What was checked is what is decoded ("t", "1" and "TRUE" too).
		n.Value, n.Tag, n.Style = strconv.FormatBool(b), "!!bool", 0
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			w.fail(n, path, "%s is not a whole number", w.show(path, v))
		}
		n.Value, n.Tag, n.Style = strconv.FormatInt(i, 10), "!!int", 0
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${VAR} with the variable's value. A missing variable is an
// error naming it; the value itself is never printed.
func (w walker) expand(n *yaml.Node, path string) bool {
	if !strings.Contains(n.Value, "${") {
		return true
	}
	ok := true
	w.raw[path] = n.Value
	n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		name := ref[2 : len(ref)-1]
		v, found := w.env(name)
		if !found {
			w.fail(n, path, "environment variable %s is not set", name)
			ok = false
		}
		return v
	})
	n.Style = 0
	return ok
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = f
	}
	return out
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// suggest names the closest known key, for typos.
func suggest(key string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for k := range fields {
		if d := yamlpos.Distance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	names := sortedKeys(fields)
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return fmt.Sprintf(" (known keys: %s)", strings.Join(names, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// position finds the line and column of a key path like "accounts[1].name",
// falling back to the nearest ancestor that exists.
func position(root *yaml.Node, path string) (int, int) {
	n := root
	line, col := n.Line, n.Column
	for _, part := range strings.Split(path, ".") {
		name, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			name = part[:i]
			idx, _ = strconv.Atoi(part[i+1 : len(part)-1])
		}
		next := (*yaml.Node)(nil)
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == name {
					line, col = n.Content[i].Line, n.Content[i].Column
					next = n.Content[i+1]
				}
			}
		}
		if next == nil {
			break
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				break
			}
			n = n.Content[idx]
			line, col = n.Line, n.Column
		}
	}
	return line, col
}
