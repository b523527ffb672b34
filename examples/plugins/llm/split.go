package main

import (
	"strings"
	"unicode/utf8"
)

// splitAnswer cuts an answer into at most n messages of at most max
// characters (runes, never bytes, so no character is ever cut in two),
// preferring to end each at a sentence end, then at any break, and cuts
// what still does not fit with "…".
func splitAnswer(answer string, max, n int) []string {
	answer = strings.TrimSpace(strings.ToValidUTF8(answer, ""))
	var out []string
	for answer != "" && len(out) < n {
		if utf8.RuneCountInString(answer) <= max {
			out = append(out, answer)
			return out
		}
		if len(out) == n-1 {
			out = append(out, cutRunes(answer, max-1)+"…")
			return out
		}
		head := cutRunes(answer, max)
		end := lastBreak(head)
		if end <= 0 {
			end = len(head)
		}
		out = append(out, strings.TrimSpace(answer[:end]))
		answer = strings.TrimSpace(answer[end:])
	}
	return out
}

// cutRunes returns the first n runes of s.
func cutRunes(s string, n int) string {
	i := 0
	for range n {
		if i >= len(s) {
			return s
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}

// lastBreak is the byte offset just past the last sentence end in s, or
// past its last other break (comma, space) in the second half of s, or 0.
func lastBreak(s string) int {
	best := 0
	for i, r := range s {
		if strings.ContainsRune("。！？!?\n；;", r) {
			best = i + utf8.RuneLen(r)
		}
	}
	if best > 0 {
		return best
	}
	for i, r := range s {
		if i >= len(s)/2 && strings.ContainsRune("，,、 ：:", r) {
			best = i + utf8.RuneLen(r)
		}
	}
	return best
}
