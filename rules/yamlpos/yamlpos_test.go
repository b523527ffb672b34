package yamlpos

import "testing"

func TestSyntaxPos(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in        string
		line, col int
	}{
		"clean: the end":      {"a: 1\nb: 2", 2, 5},
		"control character":   {"a: 1\nb: \x01", 2, 4},
		"invalid utf-8":       {"a: \xff", 1, 4},
		"bom inside":          {"a: \uFEFF", 1, 4},
		"bom at the start ok": {"\uFEFFa", 1, 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if l, c := SyntaxPos([]byte(tc.in)); l != tc.line || c != tc.col {
				t.Errorf("SyntaxPos(%q) = %d:%d, want %d:%d", tc.in, l, c, tc.line, tc.col)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{{"base_urll", "base_url", 1}, {"acount", "account", 1}, {"", "abc", 3}, {"same", "same", 0}, {"kitten", "sitting", 3}} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
