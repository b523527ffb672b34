package sdk

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCutTextKeepsCharactersWhole cuts a text of one- to four-byte
// characters at every bound: the result is the longest prefix of whole
// characters that fits.
func TestCutTextKeepsCharactersWhole(t *testing.T) {
	t.Parallel()
	s := "a你好😀b,é哈喽"
	for n := -1; n <= len(s)+1; n++ {
		got := CutText(s, n)
		if len(got) > max(n, 0) || !utf8.ValidString(got) || !strings.HasPrefix(s, got) {
			t.Fatalf("CutText(%q, %d) = %q", s, n, got)
		}
		if rest := s[len(got):]; rest != "" {
			if _, size := utf8.DecodeRuneInString(rest); len(got)+size <= n {
				t.Fatalf("CutText(%q, %d) = %q left out a character that fits", s, n, got)
			}
		}
	}
}
