package rules

import (
	"sync"
	"testing"
	"time"
)

const statsRules = `
rules:
  - name: greet
    cooldown: 1h
    when: msg.Text == "hi"
    actions: [{reply: hello}]
  - name: divides
    when: msg.Text == "ab" && int(msg.Text) > 0
    actions: [{reply: never}]
  - name: big
    when: msg.Text == "big"
    actions: [{reply: "{{ repeat('x', 100) }}"}]
  - name: alert
    on: event
    when: event.Type == "session.kicked"
    actions: [{send: {to: ops, text: kicked}}]
`

func statsByName(set *Set) map[string]RuleStat {
	out := map[string]RuleStat{}
	for _, s := range set.Stats() {
		out[s.Name] = s
	}
	return out
}

// TestStatsCountMatchesAndFailures: a match is a condition that held
// (also when a cooldown held its actions back); a failure is a condition
// or a template that could not be evaluated. Explain counts nothing, and a
// reload compiled with the same Stats keeps counting from where it was.
func TestStatsCountMatchesAndFailures(t *testing.T) {
	t.Parallel()
	stats := NewStats()
	opts := Options{MaxOutput: 64, Stats: stats}
	set := mustCompile(t, opts, statsRules)
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	cd := NewCooldowns(0)
	for range 3 {
		set.Match(nil, text("hi"), "shop", now, cd) // fires once, then cools down
	}
	set.Match(nil, text("ab"), "shop", now, nil)  // "ab" is no number
	set.Match(nil, text("big"), "shop", now, nil) // renders past MaxOutput: matched and failed
	set.MatchEvent(nil, &Event{Type: "session.kicked", Session: "shop"}, now, nil)
	set.MatchEvent(nil, &Event{Type: "session.online", Session: "shop"}, now, nil)
	set.Explain(text("hi"), "shop", now)
	set.Explain(text("ab"), "shop", now)

	want := map[string]RuleStat{
		"greet":   {Name: "greet", File: "t.yaml", Line: 3, Kind: "message", Matches: 3},
		"divides": {Name: "divides", File: "t.yaml", Line: 7, Kind: "message", Failures: 1},
		"big":     {Name: "big", File: "t.yaml", Line: 10, Kind: "message", Matches: 1, Failures: 1},
		"alert":   {Name: "alert", File: "t.yaml", Line: 13, Kind: "event", Matches: 1},
	}
	got := statsByName(set)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %+v, want %+v", name, got[name], w)
		}
	}

	again := mustCompile(t, opts, statsRules)
	again.Match(nil, text("big"), "shop", now, nil)
	if g := statsByName(again)["big"]; g.Matches != 2 || g.Failures != 2 {
		t.Errorf("after a reload big counts %d matches, %d failures; want 2, 2", g.Matches, g.Failures)
	}
	if g := statsByName(mustCompile(t, Options{}, statsRules))["big"]; g.Matches != 0 || g.Failures != 0 {
		t.Errorf("a set without Stats counts %+v", g)
	}
}

func TestStatsCountConcurrentMatches(t *testing.T) {
	t.Parallel()
	set := mustCompile(t, Options{Stats: NewStats()}, statsRules)
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				set.Match(nil, text("hi"), "shop", now, nil)
			}
		})
	}
	wg.Wait()
	if g := statsByName(set)["greet"]; g.Matches != 4000 {
		t.Fatalf("greet matched %d times, want 4000", g.Matches)
	}
}

func TestStatsDoNotAllocate(t *testing.T) {
	plain := mustCompile(t, Options{}, string(benchRules(1000)))
	counted := mustCompile(t, Options{Stats: NewStats()}, string(benchRules(1000)))
	msgs := benchMessages(1000)
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	allocs := func(set *Set) float64 {
		dst := make([]Action, 0, 8)
		i := 0
		return testing.AllocsPerRun(200, func() {
			dst = set.Match(dst[:0], msgs[i%len(msgs)], "acc", now, nil)
			i++
		})
	}
	if p, c := allocs(plain), allocs(counted); c > p {
		t.Fatalf("Match allocates %.1f times per message with Stats, %.1f without", c, p)
	}
}
