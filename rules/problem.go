package rules

import (
	"fmt"
	"strings"
	"unicode"
)

// Problem is one thing wrong with a rule file, positioned for a person to
// find and fix.
type Problem struct {
	// File is the file's path as it was given to Load.
	File string
	// Line and Col are 1-based; Col counts characters, not bytes. Either
	// is 0 when unknown.
	Line, Col int
	// Rule is the name of the rule the problem is in, or "".
	Rule string
	// Msg says what is wrong.
	Msg string
	// Source is the text of the offending line, shown with a caret under
	// Col, or "" when there is nothing useful to show.
	Source string
}

// String formats the problem as "file:line:col: rule "name": msg" followed
// by the source line and a caret.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", p.Rule)
	}
	b.WriteString(p.Msg)
	if p.Source != "" && p.Col > 0 {
		src := strings.ReplaceAll(p.Source, "\t", " ")
		fmt.Fprintf(&b, "\n    %s\n    %s^", src, caretPad(src, p.Col))
	}
	return b.String()
}

// caretPad returns the blanks that put a caret under the col'th character of
// line, counting wide (CJK) characters as two columns as terminals do.
func caretPad(line string, col int) string {
	var b strings.Builder
	i := 1
	for _, r := range line {
		if i >= col {
			break
		}
		b.WriteByte(' ')
		if isWide(r) {
			b.WriteByte(' ')
		}
		i++
	}
	for ; i < col; i++ {
		b.WriteByte(' ')
	}
	return b.String()
}

func isWide(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r) ||
		unicode.Is(unicode.Hangul, r) || (r >= 0xFF01 && r <= 0xFF60) || (r >= 0x3000 && r <= 0x303F)
}

// LoadError is every problem found while loading a rule set. Load refuses the
// whole set when there is any, so a daemon keeps the rules it had.
type LoadError struct {
	// Problems are in file order.
	Problems []Problem
}

// Error lists every problem, one per paragraph, each prefixed "rules: ".
func (e *LoadError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("rules: ")
		b.WriteString(p.String())
	}
	return b.String()
}
