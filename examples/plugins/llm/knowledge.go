package main

import (
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// section is one heading of the knowledge file and the text under it, up
// to the next heading of any level.
type section struct {
	// Title is the heading, its parents' before it ("售后 › 退换货").
	Title string
	// Text is the section as written, heading line included.
	Text string

	terms map[string]int // term frequencies, the title's counted twice
	n     int            // terms in all
}

// knowledge is the FAQ the model answers from: whole when small, else an
// index to pick the sections relevant to a question from.
type knowledge struct {
	whole    string // the file when it fits in the prompt whole
	sections []section
	df       map[string]int // in how many sections a term appears
	avgLen   float64
}

// BM25's usual parameters.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// newKnowledge parses a Markdown file; wholeMax is the size up to which it
// is used whole.
func newKnowledge(md string, wholeMax int) *knowledge {
	k := &knowledge{}
	if strings.TrimSpace(md) == "" {
		return k
	}
	if len(md) <= wholeMax {
		k.whole = strings.TrimSpace(md)
		return k
	}
	k.sections = splitSections(md)
	k.df = map[string]int{}
	total := 0
	for i := range k.sections {
		s := &k.sections[i]
		s.terms = map[string]int{}
		for _, t := range tokens(s.Title) {
			s.terms[t] += 2
			s.n += 2
		}
		body := strings.TrimPrefix(s.Text, firstLine(s.Text))
		for _, t := range tokens(body) {
			s.terms[t]++
			s.n++
		}
		for t := range s.terms {
			k.df[t]++
		}
		total += s.n
	}
	if len(k.sections) > 0 {
		k.avgLen = float64(total) / float64(len(k.sections))
	}
	return k
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i+1]
	}
	return s
}

// splitSections cuts Markdown at its ATX headings (#…######), outside code
// fences. Text before the first heading is a section of its own.
func splitSections(md string) []section {
	var out []section
	var parents []string // titles by level-1
	var cur strings.Builder
	title := ""
	fence := false
	flush := func() {
		if text := strings.TrimSpace(cur.String()); text != "" {
			out = append(out, section{Title: title, Text: text})
		}
		cur.Reset()
	}
	for line := range strings.Lines(md) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = !fence
		}
		if level, head := heading(trimmed); !fence && level > 0 {
			flush()
			parents = append(parents[:min(level-1, len(parents))], head)
			for len(parents) < level {
				parents = append([]string{""}, parents...)
			}
			title = strings.Join(slices.DeleteFunc(slices.Clone(parents), func(s string) bool { return s == "" }), " › ")
		}
		cur.WriteString(line)
	}
	flush()
	return out
}

// heading returns the level and text of an ATX heading line, 0 otherwise.
func heading(line string) (int, string) {
	level := 0
	for level < len(line) && line[level] == '#' {
		level++
	}
	if level == 0 || level > 6 || (level < len(line) && line[level] != ' ' && line[level] != '\t') {
		return 0, ""
	}
	return level, strings.TrimSpace(strings.TrimRight(strings.TrimSpace(line[level:]), "#"))
}

// pick returns the n sections most relevant to the question by BM25, best
// first, leaving out those that share no term with it.
func (k *knowledge) pick(question string, n int) []*section {
	if len(k.sections) == 0 {
		return nil
	}
	q := tokens(question)
	slices.Sort(q)
	q = slices.Compact(q)
	type scored struct {
		s     *section
		score float64
	}
	var best []scored
	N := float64(len(k.sections))
	for i := range k.sections {
		s := &k.sections[i]
		score := 0.0
		for _, t := range q {
			tf := float64(s.terms[t])
			if tf == 0 {
				continue
			}
			df := float64(k.df[t])
			idf := math.Log(1 + (N-df+0.5)/(df+0.5))
			score += idf * tf * (bm25K1 + 1) / (tf + bm25K1*(1-bm25B+bm25B*float64(s.n)/k.avgLen))
		}
		if score > 0 {
			best = append(best, scored{s, score})
		}
	}
	slices.SortStableFunc(best, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	out := make([]*section, 0, min(n, len(best)))
	for _, b := range best[:min(n, len(best))] {
		out = append(out, b.s)
	}
	return out
}

// tokens cuts text into search terms: a run of Latin letters and digits is
// one lower-cased term; a run of CJK characters, which have no spaces
// between words, gives its overlapping character pairs (a lone character
// itself), so that "退货" in a question meets "退货政策" in the FAQ.
func tokens(text string) []string {
	var out []string
	var word strings.Builder
	var han []rune
	flushWord := func() {
		if word.Len() > 0 {
			out = append(out, word.String())
			word.Reset()
		}
	}
	flushHan := func() {
		switch len(han) {
		case 0:
		case 1:
			out = append(out, string(han))
		default:
			for i := 0; i+1 < len(han); i++ {
				out = append(out, string(han[i:i+2]))
			}
		}
		han = han[:0]
	}
	for len(text) > 0 {
		r, size := utf8.DecodeRuneInString(text)
		text = text[size:]
		switch {
		case isCJK(r):
			flushWord()
			han = append(han, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			flushHan()
			word.WriteRune(unicode.ToLower(r))
		default:
			flushWord()
			flushHan()
		}
	}
	flushWord()
	flushHan()
	return out
}

func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}
