package rules

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// words are the keywords of random conditions, U+FFFD among them: a
// regular expression reads each byte of a text that is not UTF-8 as U+FFFD,
// where contains compares bytes.
var words = []string{"a", "b", "ab", "ba", "abc", "哈", "哈喽", "喽", "x1", "价格", "格", "1", "\uFFFD", "哈\uFFFD", "\uFFFD\uFFFD"}

// textWords are what random messages are made of: the keywords, and
// fragments that are not UTF-8 (a lone continuation byte, \xff, the first
// two bytes of 哈 and of U+FFFD, and their last bytes, which complete them
// when they meet).
var textWords = append([]string{"\x80", "\xff", "\xe5\x93", "\x88", "\xef\xbf", "\xbd"}, words...)

func randWord(r *rand.Rand) string { return words[r.IntN(len(words))] }

// randAtom returns a random condition on a message, indexable or not.
func randAtom(r *rand.Rand) string {
	w, v := randWord(r), randWord(r)
	switch r.IntN(16) {
	case 0:
		return fmt.Sprintf("msg.Text == %q", w)
	case 1:
		return fmt.Sprintf("msg.Text contains %q", w)
	case 2:
		return fmt.Sprintf("msg.Text startsWith %q", w)
	case 3:
		return fmt.Sprintf("msg.Text endsWith %q", w)
	case 4:
		forms := []string{"^%s", "%s[0-9]+", "(%s|%s)x?", "(?i)%s", "%s.*%s", "b?%s", "^(%s)+$", "[ab]%s", "%s|z",
			"\uFFFD%s", "%s\uFFFD+", "格\uFFFD?%s"}
		f := forms[r.IntN(len(forms))]
		return fmt.Sprintf("msg.Text matches %q", fmt.Sprintf(strings.ReplaceAll(f, "%s", "%[1]s"), w))
	case 5:
		return fmt.Sprintf("msg.Type == %q", []string{"text", "image", "system"}[r.IntN(3)])
	case 6:
		return fmt.Sprintf("msg.Text in [%q, %q]", w, v)
	case 7:
		return fmt.Sprintf("containsAny(msg.Text, %q, %q)", w, v)
	case 8:
		return "!msg.FromSelf"
	case 9:
		return fmt.Sprintf("len(msg.Text) > %d", r.IntN(5))
	case 10:
		return fmt.Sprintf("!(msg.Text contains %q)", w)
	case 11:
		return `msg.Text == ""`
	case 12:
		return fmt.Sprintf("%q == msg.Text", w)
	case 13:
		return fmt.Sprintf("msg.Type in [%q]", []string{"text", "image"}[r.IntN(2)])
	case 14:
		return fmt.Sprintf("lower(msg.Text) contains %q", w)
	default:
		return "true"
	}
}

func randCond(r *rand.Rand, depth int) string {
	if depth == 0 || r.IntN(3) == 0 {
		return randAtom(r)
	}
	op := []string{"&&", "||", "and", "or"}[r.IntN(4)]
	return fmt.Sprintf("(%s %s %s)", randCond(r, depth-1), op, randCond(r, depth-1))
}

func randMessage(r *rand.Rand) *sdk.Message {
	var b strings.Builder
	for range r.IntN(5) {
		b.WriteString(textWords[r.IntN(len(textWords))])
		if r.IntN(4) == 0 {
			b.WriteString(fmt.Sprint(r.IntN(100)))
		}
	}
	typ := sdk.TypeText
	if r.IntN(5) == 0 {
		typ = []string{sdk.TypeImage, sdk.TypeSystem}[r.IntN(2)]
	}
	return &sdk.Message{Type: typ, Text: b.String(), FromSelf: r.IntN(4) == 0, Session: "s"}
}

// TestIndexEqualsNaive proves the index changes nothing but speed: for random
// rules and messages it gives exactly the actions of evaluating every rule.
func TestIndexEqualsNaive(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 42))
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	compared, matched := 0, 0
	for round := range 40 {
		var b strings.Builder
		b.WriteString("rules:\n")
		n := 1 + r.IntN(60)
		for i := range n {
			fmt.Fprintf(&b, "  - name: r%d\n    priority: %d\n    stop: %v\n    when: '%s'\n    actions: [{reply: r%d}]\n",
				i, r.IntN(3), r.IntN(8) == 0, strings.ReplaceAll(randCond(r, 3), "'", "''"), i)
		}
		set, err := Compile(Options{}, Source{Name: "random.yaml", Data: []byte(b.String())})
		if err != nil {
			// A random always-true stop rule may shadow others; that is
			// a load error, so try again.
			if strings.Contains(err.Error(), "never runs") {
				continue
			}
			t.Fatalf("seed %d round %d: %v\n%s", seed, round, err, b.String())
		}
		e := &evaluator{}
		for range 300 {
			m := randMessage(r)
			got, want := indexedAndNaive(set, e, m, now)
			compared++
			if want != "" {
				matched++
			}
			if got != want {
				t.Fatalf("seed %d round %d: message %q (type %s, self %v): indexed %q, naive %q\nrules:\n%s",
					seed, round, m.Text, m.Type, m.FromSelf, got, want, b.String())
			}
		}
	}
	if matched < compared/10 {
		t.Errorf("only %d of %d messages matched a rule; the test is too weak", matched, compared)
	}
}

// indexedAndNaive matches m through the index and by evaluating every rule.
func indexedAndNaive(set *Set, e *evaluator, m *sdk.Message, now time.Time) (string, string) {
	return rulesOf(set.match(e, nil, m, Conversation{}, "", now, nil, true)), rulesOf(set.match(e, nil, m, Conversation{}, "", now, nil, false))
}

// TestIndexInvalidUTF8 pins what rules match a text that is not UTF-8, with
// the index and without: a regular expression reads each stray byte as
// U+FFFD, contains and == compare bytes.
func TestIndexInvalidUTF8(t *testing.T) {
	t.Parallel()
	set := mustCompile(t, Options{}, `
rules:
  - {name: re, when: 'msg.Text matches "\uFFFD"', actions: [{reply: re}]}
  - {name: re-split, when: 'msg.Text matches "价\uFFFD格"', actions: [{reply: re-split}]}
  - {name: re-two, when: 'msg.Text matches "^\uFFFD\uFFFD$"', actions: [{reply: re-two}]}
  - {name: contains, when: 'msg.Text contains "\uFFFD"', actions: [{reply: contains}]}
  - {name: any, when: 'containsAny(msg.Text, "\uFFFD", "格")', actions: [{reply: any}]}
  - {name: eq, when: 'msg.Text == "\uFFFD"', actions: [{reply: eq}]}
`)
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	tests := map[string]struct{ text, want string }{
		"a stray byte":               {"\xff", "re:re"},
		"a stray byte in a word":     {"价\xff格", "re:re re-split:re-split any:any"},
		"a truncated 哈":              {"\xe5\x93", "re:re re-two:re-two"},
		"a continuation byte":        {"x\x80", "re:re"},
		"U+FFFD itself":              {"\uFFFD", "re:re contains:contains any:any eq:eq"},
		"U+FFFD cut short":           {"\xef\xbf", "re:re re-two:re-two"},
		"bytes that make up a rune":  {"\xe5\x93\x88", ""},
		"valid text with no keyword": {"价格", "any:any"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			indexed, naive := indexedAndNaive(set, &evaluator{}, text(tc.text), now)
			if indexed != tc.want || naive != tc.want {
				t.Errorf("%q: indexed %q, naive %q, want %q", tc.text, indexed, naive, tc.want)
			}
		})
	}
}

func TestAnalyze(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		when string
		want []string // the need each option describes; nil: not indexable
	}{
		"equality":            {`msg.Text == "哈喽"`, []string{`msg.Text == "哈喽"`}},
		"reversed equality":   {`"哈喽" == msg.Text`, []string{`msg.Text == "哈喽"`}},
		"keyword":             {`msg.Text contains "价格"`, []string{`msg.Text contains "价格"`}},
		"prefix as keyword":   {`msg.Text startsWith "退"`, []string{`msg.Text contains "退"`}},
		"and keeps both":      {`msg.Text == "a" && msg.Type == "text"`, []string{`msg.Text == "a"`, `msg.Type == "text"`}},
		"or joins":            {`msg.Text == "a" || msg.Text contains "b"`, []string{`msg.Text == "a" or msg.Text contains "b"`}},
		"or with unindexable": {`msg.Text == "a" || msg.FromSelf`, nil},
		"negation":            {`!(msg.Text == "a")`, nil},
		"in list":             {`msg.Text in ["a", "b"]`, []string{`msg.Text == "a" or msg.Text == "b"`}},
		"containsAny":         {`containsAny(msg.Text, "x", "y")`, []string{`msg.Text contains "x" or msg.Text contains "y"`}},
		"regex literal parts": {"msg.Text matches `订单号?[:：]\\d+`", []string{`msg.Text contains "订单"`}},
		"regex alternation":   {`msg.Text matches "(ab|cd)+"`, []string{`msg.Text contains "ab" or msg.Text contains "cd"`}},
		"case-insensitive":    {`msg.Text matches "(?i)hello"`, nil},
		"optional literal":    {`msg.Text matches "a?b*"`, nil},
		"empty keyword":       {`msg.Text contains ""`, nil},
		"other field":         {`msg.From == "x"`, nil},
		"function of text":    {`lower(msg.Text) == "a"`, nil},
		// A regular expression reads a byte that is not UTF-8 as U+FFFD.
		"regex U+FFFD":        {`msg.Text matches "\uFFFD"`, nil},
		"regex U+FFFD splits": {`msg.Text matches "价\uFFFD格+"`, []string{`msg.Text contains "价"`, `msg.Text contains "格"`}},
		"regex U+FFFD branch": {`msg.Text matches "(ab|\uFFFD)"`, nil},
		"keyword U+FFFD":      {`msg.Text contains "\uFFFD"`, []string{"msg.Text contains \"\uFFFD\""}},
	}
	x := newExprConf(newConfig(shanghai, DefaultMaxNodes, true))
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := x.compile(tc.when, true)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range c.needs {
				got = append(got, n.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("needs of %s = %q, want %q", tc.when, got, tc.want)
			}
		})
	}
}

func TestAutomaton(t *testing.T) {
	t.Parallel()
	var b acBuilder
	pats := []string{"he", "she", "his", "hers", "哈喽", "喽", "s"}
	for i, p := range pats {
		b.add(p, int32(i))
	}
	a := b.build()
	for _, text := range []string{"ushers", "哈喽哈", "his she", "", "xyz", "hhehershe喽"} {
		got := a.appendMatches(nil, text)
		slices.Sort(got)
		got = slices.Compact(got)
		var want []int32
		for i, p := range pats {
			if strings.Contains(text, p) {
				want = append(want, int32(i))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("matches in %q = %v, want %v", text, got, want)
		}
	}
}
