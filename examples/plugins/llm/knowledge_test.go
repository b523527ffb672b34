package main

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestTokens: Latin words are whole and lower-cased, CJK runs give their
// character pairs, punctuation separates.
func TestTokens(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"退货政策":          {"退货", "货政", "政策"},
		"SF快递，48小时":     {"sf", "快递", "48", "小时"},
		"退":             {"退"},
		"Hello, World!": {"hello", "world"},
		"":              nil,
	}
	for in, want := range tests {
		if got := tokens(in); !slices.Equal(got, want) {
			t.Errorf("tokens(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPickFindsTheRelevantSections: BM25 over the sections puts the one a
// question is about first, its heading path as its title, and leaves out
// sections that share nothing with it.
func TestPickFindsTheRelevantSections(t *testing.T) {
	t.Parallel()
	k := newKnowledge(faq, 100)
	tests := map[string]string{
		"请问可以退货吗？": "常见问题 › 退换货",
		"你们发什么快递":  "常见问题 › 发货",
		"能开发票吗":    "常见问题 › 发票",
		"坏了保修吗":    "常见问题 › 售后保修",
	}
	for q, want := range tests {
		got := k.pick(q, 2)
		if len(got) == 0 || got[0].Title != want {
			var titles []string
			for _, s := range got {
				titles = append(titles, s.Title)
			}
			t.Errorf("pick(%q) = %q, want %q first", q, titles, want)
		}
	}
	if got := k.pick("xyz", 3); len(got) != 0 {
		t.Errorf("a question sharing nothing picked %d sections", len(got))
	}
	if small := newKnowledge("# 小\n\n一句话。", 100); small.whole == "" || len(small.sections) != 0 {
		t.Errorf("a small file is not used whole: %+v", small)
	}
}

// TestSplitAnswerNeverCutsACharacter: whatever the answer and bounds, every
// part is valid UTF-8, within the bound, and there are at most n parts.
func TestSplitAnswerNeverCutsACharacter(t *testing.T) {
	t.Parallel()
	answers := []string{
		strings.Repeat("中", 1000),
		strings.Repeat("ab😀", 300),
		"短。",
		strings.Repeat("一句话。", 50),
		"\xff\xfe坏字节" + strings.Repeat("字", 100),
	}
	for _, a := range answers {
		for _, max := range []int{20, 21, 57, 300} {
			for _, n := range []int{1, 2, 3} {
				parts := splitAnswer(a, max, n)
				if len(parts) > n || len(parts) == 0 {
					t.Fatalf("%d parts of %q at %d/%d", len(parts), a[:10], max, n)
				}
				for _, p := range parts {
					if !utf8.ValidString(p) || utf8.RuneCountInString(p) > max || p == "" {
						t.Fatalf("part %q (%d runes) of max %d", p, utf8.RuneCountInString(p), max)
					}
				}
			}
		}
	}
}

// FuzzSplitAnswer: the same for any input.
func FuzzSplitAnswer(f *testing.F) {
	f.Add("这是一句话。再来一句！", 20, 2)
	f.Fuzz(func(t *testing.T, a string, max, n int) {
		max, n = 20+abs(max)%500, 1+abs(n)%10
		for _, p := range splitAnswer(a, max, n) {
			if !utf8.ValidString(p) || utf8.RuneCountInString(p) > max {
				t.Fatalf("part %q of max %d", p, max)
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// FuzzKnowledge: any Markdown and question are parsed and searched
// without a panic, every section picked is one of the file's, and the
// sections cover the file's text.
func FuzzKnowledge(f *testing.F) {
	f.Add(faq, "可以退货吗")
	f.Add("# a\n```\n# not a heading\n```\n## b\ntext", "heading")
	f.Add("####### seven\n#no space\n#\n", "#")
	f.Fuzz(func(t *testing.T, md, q string) {
		k := newKnowledge(md, 0)
		for _, s := range k.pick(q, 3) {
			if !strings.Contains(md, strings.TrimSpace(firstLine(s.Text))) {
				t.Fatalf("picked a section not in the file: %q", s.Text)
			}
		}
	})
}
