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

	index int32 // its place in the file
	n     int   // terms in all, the title's counted twice
}

// posting is one section a term appears in, and how often.
type posting struct {
	section, tf int32
}

// knowledge is the FAQ the model answers from: whole when small, else an
// index to pick the sections relevant to a question from.
type knowledge struct {
	whole    string // the file when it fits in the prompt whole
	sections []section
	// postings are, for each term, the sections it appears in: a question
	// costs the length of its terms' lists, not a pass over every section.
	postings map[string][]posting
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
	k.postings = map[string][]posting{}
	total := 0
	for i := range k.sections {
		s := &k.sections[i]
		terms := map[string]int32{}
		for _, t := range tokens(s.Title) {
			terms[t] += 2
		}
		body := strings.TrimPrefix(s.Text, firstLine(s.Text))
		for _, t := range tokens(body) {
			terms[t]++
		}
		for t, tf := range terms {
			k.postings[t] = append(k.postings[t], posting{section: int32(i), tf: tf})
			s.n += int(tf)
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
			out = append(out, section{Title: title, Text: text, index: int32(len(out))})
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
	N := float64(len(k.sections))
	scores := make([]float64, len(k.sections))
	var touched []int32
	for _, t := range q {
		list := k.postings[t]
		if len(list) == 0 {
			continue
		}
		df := float64(len(list))
		idf := math.Log(1 + (N-df+0.5)/(df+0.5))
		for _, p := range list {
			tf := float64(p.tf)
			n := float64(k.sections[p.section].n)
			if scores[p.section] == 0 {
				touched = append(touched, p.section)
			}
			scores[p.section] += idf * tf * (bm25K1 + 1) / (tf + bm25K1*(1-bm25B+bm25B*n/k.avgLen))
		}
	}
	best := make([]scored, 0, len(touched))
	for _, i := range touched {
		if scores[i] > 0 {
			best = append(best, scored{&k.sections[i], scores[i]})
		}
	}
	// Best first; ties in the file's order, so that the choice does not
	// depend on the map's.
	slices.SortFunc(best, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return int(a.s.index - b.s.index)
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
