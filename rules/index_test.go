package rules

import (
	"flag"
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

// The values of the other fields random rules compare and random messages
// carry, "" among them: an absent field reads as empty.
var (
	accounts  = []string{"shop-1", "shop-2", "shop-3", ""}
	users     = []string{"u1", "u2", "s1", ""}
	types     = []string{sdk.TypeText, sdk.TypeImage, sdk.TypeSystem}
	sysTypes  = []string{"", "live", "func"}
	evTypes   = []string{EventSessionOnline, EventSessionKicked, "plugin.x", ""}
	userField = []string{"msg.From", "msg.To", "msg.Session"}
)

func pick(r *rand.Rand, from []string) string { return from[r.IntN(len(from))] }

// randList writes a list literal of one to three values.
func randList(r *rand.Rand, from []string) string {
	vals := make([]string, 1+r.IntN(3))
	for i := range vals {
		vals[i] = fmt.Sprintf("%q", pick(r, from))
	}
	return "[" + strings.Join(vals, ", ") + "]"
}

// randEquality compares a string field with a literal or a list, in every
// form the index reads or must refuse to: ==, !=, in, not in, either side.
func randEquality(r *rand.Rand, field string, from []string) string {
	switch r.IntN(6) {
	case 0:
		return fmt.Sprintf("%s != %q", field, pick(r, from))
	case 1:
		return fmt.Sprintf("%s in %s", field, randList(r, from))
	case 2:
		return fmt.Sprintf("%s not in %s", field, randList(r, from))
	case 3:
		return fmt.Sprintf("%q == %s", pick(r, from), field)
	case 4:
		return fmt.Sprintf("!(%s == %q)", field, pick(r, from))
	}
	return fmt.Sprintf("%s == %q", field, pick(r, from))
}

// randAtom returns a random condition on a message, indexable or not.
func randAtom(r *rand.Rand) string {
	w, v := randWord(r), randWord(r)
	switch r.IntN(30) {
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
		return randEquality(r, "msg.Type", types)
	case 6:
		return fmt.Sprintf("msg.Text in [%q, %q]", w, v)
	case 7:
		return fmt.Sprintf("containsAny(msg.Text, %q, %q)", w, v)
	case 8:
		return []string{"!msg.FromSelf", "msg.FromSelf", "msg.FromSelf == false", "true != msg.FromSelf", "not msg.FromSelf"}[r.IntN(5)]
	case 9:
		return fmt.Sprintf("len(msg.Text) %s %d", []string{">", "<", "==", ">=", "<=", "!="}[r.IntN(6)], r.IntN(5))
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
	case 15, 16:
		return randEquality(r, "account", accounts)
	case 17, 18:
		return randEquality(r, pick(r, userField), users)
	case 19:
		return randEquality(r, "msg.Sys.Type", sysTypes)
	case 20:
		return randEquality(r, "event.Type", evTypes)
	case 21:
		return fmt.Sprintf("%s %s %d", []string{"hour()", "hour(now)", "minute()", "weekday()"}[r.IntN(4)], []string{">", "<", "==", ">=", "<=", "!="}[r.IntN(6)], r.IntN(24))
	case 22:
		return fmt.Sprintf("%d > hour()", r.IntN(24))
	case 23:
		return fmt.Sprintf("between(%q, %q)", fmt.Sprintf("%02d:%02d", r.IntN(25)%24, r.IntN(4)*15), fmt.Sprintf("%02d:00", r.IntN(25)))
	case 24:
		return fmt.Sprintf("weekday() in [%d, %d]", r.IntN(7), r.IntN(7))
	case 25:
		// A field read through an absent map entry or an optional chain
		// is nil: the guard leaves it to the VM.
		return []string{`msg.Sys.Fields["k"] == "v"`, `msg?.Sys?.Type == "live"`, `msg.Image.MD5 == ""`, `event.Message.Text == ""`}[r.IntN(4)]
	case 26:
		return fmt.Sprintf("!(%s || %s)", randEquality(r, "account", accounts), randEquality(r, "msg.Type", types))
	case 27:
		return fmt.Sprintf("msg.Sys.Type in %s", randList(r, sysTypes))
	case 28:
		return "false"
	default:
		return "true"
	}
}

func randCond(r *rand.Rand, depth int) string {
	if depth == 0 || r.IntN(3) == 0 {
		return randAtom(r)
	}
	op := []string{"&&", "||", "and", "or"}[r.IntN(4)]
	c := fmt.Sprintf("(%s %s %s)", randCond(r, depth-1), op, randCond(r, depth-1))
	if r.IntN(4) == 0 {
		return "!" + c
	}
	return c
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
	m := &sdk.Message{Type: typ, Text: b.String(), FromSelf: r.IntN(4) == 0,
		From: pick(r, users), To: pick(r, users), Session: pick(r, users), Account: pick(r, accounts)}
	if r.IntN(3) == 0 {
		m.Sys = &sdk.SysMsg{Type: pick(r, sysTypes)}
	}
	return m
}

// randTime is a moment of a random week, minute and all.
func randTime(r *rand.Rand) time.Time {
	return time.Date(2026, 11, 16+r.IntN(7), r.IntN(24), r.IntN(60), 0, 0, shanghai)
}

// randRules writes n random rules, message or event ones.
func randRules(r *rand.Rand, n int, on Trigger) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    on: %s\n    priority: %d\n    stop: %v\n    when: '%s'\n    actions: [{send: {to: x, text: r%d}}]\n",
			i, on, r.IntN(3), r.IntN(8) == 0, strings.ReplaceAll(randCond(r, 3), "'", "''"), i)
	}
	return b.String()
}

var indexSeed = flag.Uint64("index.seed", 0, "replay TestIndexEqualsNaive and TestEventIndexEqualsNaive with this seed")

// propertySeed is -index.seed, or a new seed each run.
func propertySeed() uint64 {
	if *indexSeed != 0 {
		return *indexSeed
	}
	return uint64(time.Now().UnixNano())
}

// TestIndexEqualsNaive proves the index and the guards change nothing but
// speed: for random rules and messages they give exactly the actions of
// evaluating every rule by the VM. The rules compare every field the index
// reads, with negations, lists and disjunctions it must not narrow by; the
// messages come from random accounts, some without Sys, at random times.
// A failure prints its seed; -index.seed replays it.
func TestIndexEqualsNaive(t *testing.T) {
	t.Parallel()
	indexProperty(t, OnMessage, 42, 60, 60, 300, func(r *rand.Rand, set *Set, e *evaluator) (string, string, string) {
		m, account, now := randMessage(r), pick(r, accounts), randTime(r)
		return rulesOf(set.match(e, nil, m, account, now, nil, true)), rulesOf(set.match(e, nil, m, account, now, nil, false)),
			fmt.Sprintf("message %+v (account %q, sys %+v) at %v", *m, account, m.Sys, now)
	})
}

// TestEventIndexEqualsNaive is TestIndexEqualsNaive for event rules, whose
// index reads event.Type and the event's account and message.
func TestEventIndexEqualsNaive(t *testing.T) {
	t.Parallel()
	indexProperty(t, OnEvent, 43, 30, 40, 200, func(r *rand.Rand, set *Set, e *evaluator) (string, string, string) {
		ev := &Event{Type: pick(r, evTypes), Account: pick(r, accounts), Session: pick(r, users)}
		if r.IntN(2) == 0 {
			ev.Message = randMessage(r)
		}
		now := randTime(r)
		return rulesOf(set.matchEvent(e, nil, ev, now, nil, true)), rulesOf(set.matchEvent(e, nil, ev, now, nil, false)),
			fmt.Sprintf("event %+v (message %+v) at %v", *ev, ev.Message, now)
	})
}

// indexProperty compiles rounds of random rules of trigger on and compares,
// for perRound random inputs each, what one returns matched with the index
// and without.
func indexProperty(t *testing.T, on Trigger, stream uint64, rounds, maxRules, perRound int,
	one func(r *rand.Rand, set *Set, e *evaluator) (indexed, naive, input string)) {
	seed := propertySeed()
	r := rand.New(rand.NewPCG(seed, stream))
	compared, matched := 0, 0
	for round := range rounds {
		src := randRules(r, 1+r.IntN(maxRules), on)
		set, err := Compile(Options{}, Source{Name: "random.yaml", Data: []byte(src)})
		if err != nil {
			// A random always-true stop rule may shadow others; that is
			// a load error, so try again.
			if strings.Contains(err.Error(), "never runs") {
				continue
			}
			t.Fatalf("seed %d round %d: %v\n%s", seed, round, err, src)
		}
		e := &evaluator{}
		for range perRound {
			got, want, input := one(r, set, e)
			compared++
			if want != "" {
				matched++
			}
			if got != want {
				t.Fatalf("seed %d round %d: %s: indexed %q, naive %q\nrules:\n%s", seed, round, input, got, want, src)
			}
		}
	}
	if matched < compared/10 {
		t.Errorf("only %d of %d inputs matched a rule; the test is too weak", matched, compared)
	}
}

// indexedAndNaive matches m through the index and by evaluating every rule.
func indexedAndNaive(set *Set, e *evaluator, m *sdk.Message, now time.Time) (string, string) {
	return rulesOf(set.match(e, nil, m, "", now, nil, true)), rulesOf(set.match(e, nil, m, "", now, nil, false))
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
		"or with FromSelf":    {`msg.Text == "a" || msg.FromSelf`, []string{`msg.Text == "a" or msg.FromSelf == true`}},
		"or with unindexable": {`msg.Text == "a" || len(msg.Text) != 3`, nil},
		"not equal":           {`msg.Type != "text"`, nil},
		"not in":              {`account not in ["a"]`, nil},
		"account and type":    {`account in ["a", "b"] and msg.Type == "image"`, []string{`account == "a" or account == "b"`, `msg.Type == "image"`}},
		"sysmsg type":         {`msg.Sys.Type == "live"`, []string{`msg.Sys.Type == "live"`}},
		"not from self":       {`!msg.FromSelf`, []string{`msg.FromSelf == false`}},
		"event type":          {`event.Type == "session.kicked"`, []string{`event.Type == "session.kicked"`}},
		"length":              {`len(msg.Text) > 50`, []string{`len(msg.Text) >= 51`}},
		"negated length":      {`!(len(msg.Text) > 5)`, []string{`len(msg.Text) <= 5`}},
		"hours":               {`hour() >= 9 && 18 > hour()`, []string{`hour() >= 9`, `hour() <= 17`}},
		"impossible hour":     {`hour() > 30`, []string{"nothing (the condition can never be true)"}},
		"weekend":             {`weekday() in [0, 6]`, []string{`weekday() == 0 or weekday() == 6`}},
		"opening hours":       {`between("09:00", "21:00")`, []string{`the time of day in 09:00..20:59`}},
		"closed":              {`!between("09:00", "21:00")`, []string{`the time of day >= 21:00 or the time of day <= 08:59`}},
		"till midnight":       {`between("22:00", "24:00")`, []string{`the time of day >= 22:00`}},
		"not a weekday":       {`!(weekday() in [1, 2, 3, 4, 5])`, []string{`weekday() == 0 or weekday() == 6`}},
		"de morgan":           {`!(between("09:00", "21:00") && weekday() != 0)`, []string{`the time of day >= 21:00 or the time of day <= 08:59 or weekday() == 0`}},
		"negated or":          {`!(msg.FromSelf || msg.Type != "text")`, []string{`msg.FromSelf == false`, `msg.Type == "text"`}},
		"negation":            {`!(msg.Text == "a")`, nil},
		"in list":             {`msg.Text in ["a", "b"]`, []string{`msg.Text == "a" or msg.Text == "b"`}},
		"containsAny":         {`containsAny(msg.Text, "x", "y")`, []string{`msg.Text contains "x" or msg.Text contains "y"`}},
		"regex literal parts": {"msg.Text matches `订单号?[:：]\\d+`", []string{`msg.Text contains "订单"`}},
		"regex alternation":   {`msg.Text matches "(ab|cd)+"`, []string{`msg.Text contains "ab" or msg.Text contains "cd"`}},
		"case-insensitive":    {`msg.Text matches "(?i)hello"`, nil},
		"optional literal":    {`msg.Text matches "a?b*"`, nil},
		"empty keyword":       {`msg.Text contains ""`, nil},
		"other field":         {`msg.From == "x"`, []string{`msg.From == "x"`}},
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
			for _, n := range needsOf(c.guard, allDims) {
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

// TestExplainIndex pins what `finderbot check --explain-index` prints for a
// set that has every kind of rule: looked up by each dimension, tied to
// accounts, evaluated for every message and for nearly every one.
func TestExplainIndex(t *testing.T) {
	t.Parallel()
	var out, errs strings.Builder
	if !CheckExplainIndex(&out, &errs, Options{}, "testdata/index/shops.yaml") {
		t.Fatalf("check failed: %s", errs.String())
	}
	golden(t, "testdata/index/shops.golden", out.String())
}
