// Package yamlpos helps report problems in hand-written YAML files (rule
// files, the daemon's configuration) where a person can find them: the
// position of a character the YAML reader rejects without naming it, and
// the closest known name to a misspelt key.
package yamlpos

import "unicode/utf8"

// SyntaxPos returns the line and column of the first character YAML does
// not allow (invalid UTF-8, a control character, a byte-order mark inside
// the text), or else of the end of data.
func SyntaxPos(data []byte) (int, int) {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if (r == utf8.RuneError && n <= 1) || !printable(r) || (r == 0xFEFF && i > 0) {
			return line, col
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += n
	}
	return line, col
}

// printable is the YAML 1.2 set of characters a document may hold.
func printable(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0x7E) || r == 0x85 ||
		(r >= 0xA0 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// Distance is the Levenshtein distance between a and b, for suggesting the
// name a misspelt key most likely meant.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
