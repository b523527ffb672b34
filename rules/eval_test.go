package rules

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

var shanghai = ShanghaiLocation()

func mustCompile(t testing.TB, opts Options, src string) *Set {
	t.Helper()
	s, err := Compile(opts, Source{Name: "t.yaml", Data: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rulesOf(as []Action) string {
	var names []string
	for _, a := range as {
		names = append(names, a.Rule+":"+a.Text)
	}
	return strings.Join(names, " ")
}

func text(s string) *sdk.Message {
	return &sdk.Message{Type: sdk.TypeText, Text: s, Content: s, From: "fv1_a@findermsgstranger", Session: "a@findermsg"}
}

func TestMatchOrderAndStop(t *testing.T) {
	t.Parallel()
	set := mustCompile(t, Options{}, `
rules:
  - name: low
    priority: -1
    when: msg.Text contains "a"
    actions: [{reply: low}]
  - name: first-tie
    when: msg.Text contains "a"
    actions: [{reply: first}]
  - name: second-tie
    when: msg.Text contains "a"
    actions: [{reply: second}]
  - name: high-stop
    priority: 5
    stop: true
    when: msg.Text == "stop"
    actions: [{reply: stopped}]
  - name: high
    priority: 5
    when: msg.Text startsWith "a" || msg.Text == "stop"
    actions: [{reply: high}]
`)
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	tests := map[string]struct{ text, want string }{
		"priority, then file order for ties": {"abc", "high:high first-tie:first second-tie:second low:low"},
		"stop ends evaluation":               {"stop", "high-stop:stopped"},
		"no rule":                            {"zzz", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := rulesOf(set.Match(nil, text(tc.text), "acc", now, nil)); got != tc.want {
				t.Errorf("Match(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestCooldown(t *testing.T) {
	t.Parallel()
	set := mustCompile(t, Options{}, `
rules:
  - name: greet
    stop: true
    when: msg.Text == "hi"
    cooldown: 30s
    actions: [{reply: hello}]
  - name: fallback
    actions: [{reply: fallback}]
`)
	cd := NewCooldowns(0)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	steps := []struct {
		after   time.Duration
		session string
		want    string
	}{
		{0, "a", "greet:hello"},
		{10 * time.Second, "a", ""}, // cooling down, and still stops the fallback
		{0, "b", "greet:hello"},     // another conversation
		{20 * time.Second, "a", "greet:hello"},
	}
	now := t0
	for i, st := range steps {
		now = now.Add(st.after)
		m := text("hi")
		m.Session = st.session
		if got := rulesOf(set.Match(nil, m, "acc", now, cd)); got != st.want {
			t.Errorf("step %d: got %q, want %q", i, got, st.want)
		}
	}
	// The state lives outside the set: a reloaded set sees it.
	reloaded := mustCompile(t, Options{}, "rules:\n  - name: greet\n    when: msg.Text == \"hi\"\n    cooldown: 1h\n    actions: [{reply: again}]\n")
	m := text("hi")
	m.Session = "a"
	if got := rulesOf(reloaded.Match(nil, m, "acc", now.Add(time.Minute), cd)); got != "" {
		t.Errorf("after reload with a longer cooldown: got %q, want nothing", got)
	}
}

func TestCooldownsBounded(t *testing.T) {
	t.Parallel()
	cd := NewCooldowns(100)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		if !cd.Allow("r", strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), time.Hour, now.Add(time.Duration(i)*time.Second)) {
			t.Fatal("a new conversation must be allowed")
		}
		if cd.Len() > 100 {
			t.Fatalf("holds %d entries, more than 100", cd.Len())
		}
	}
	// The most recent entry survives eviction.
	if cd.Allow("r", strings.Repeat("x", 999%7)+string(rune('a'+999%26))+time.Duration(999).String(), time.Hour, now.Add(1000*time.Second)) {
		t.Error("the newest entry was evicted")
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	set := mustCompile(t, Options{MaxOutput: 64}, `
rules:
  - name: t
    when: msg.Text startsWith "t"
    actions:
      - reply: "{{ msg.Text }}|{{ msg.Seq + 1 }}|{{ msg.FromSelf }}|{{ hour() }}:{{ minute() }}|{{ clock() }}|{{ weekday() }}|{{ account }}|{{ upper('x') }}"
      - send: { to: "{{ msg.From }}", text: "{{ len(msg.Text) }}" }
      - plugin: crm.record
        with: { id: "{{ msg.ID }}", static: plain }
  - name: big
    when: msg.Text == "big"
    actions:
      - reply: "{{ repeat('长', 100) }}"
  - name: ok
    when: msg.Text == "big"
    actions:
      - reply: fine
`)
	now := time.Date(2026, 11, 20, 1, 5, 0, 0, time.UTC) // 09:05 in Shanghai, a Friday
	m := text("tt")
	m.Seq, m.ID = 41, 18446744073709551615
	got := set.Match(nil, m, "shop", now, nil)
	want := []string{
		`{rule: t, reply: "tt|42|false|9:5|09:05|5|shop|X"}`,
		`{rule: t, send: {to: "fv1_a@findermsgstranger", text: "2"}}`,
		`{rule: t, plugin: crm.record, with: {id: "18446744073709551615", static: "plain"}}`,
	}
	if strings.Join(actionLines(got), "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(actionLines(got), "\n"), strings.Join(want, "\n"))
	}

	var mu sync.Mutex
	var failed []Failure
	set = mustCompile(t, Options{MaxOutput: 64, OnFailure: func(f Failure) { mu.Lock(); failed = append(failed, f); mu.Unlock() }}, `
rules:
  - name: big
    when: msg.Text == "big"
    actions:
      - reply: "{{ repeat('长', 100) }}"
  - name: ok
    when: msg.Text == "big"
    actions:
      - reply: fine
`)
	if got := rulesOf(set.Match(nil, text("big"), "", now, nil)); got != "ok:fine" {
		t.Errorf("an over-long template must fail its rule only: got %q", got)
	}
	if len(failed) != 1 || failed[0].Rule != "big" || !strings.Contains(failed[0].Err.Error(), "more than 64 bytes") {
		t.Errorf("failures = %v", failed)
	}
}

func TestFailingRuleDoesNotStopOthers(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var failed []Failure
	set := mustCompile(t, Options{OnFailure: func(f Failure) { mu.Lock(); failed = append(failed, f); mu.Unlock() }}, `
rules:
  - name: divides
    priority: 1
    when: 10 / (len(msg.Text) - 2) > 1 && int(msg.Text) > 0
    actions: [{reply: never}]
  - name: after
    actions: [{reply: still}]
`)
	got := set.Match(nil, text("ab"), "", time.Now(), nil)
	if rulesOf(got) != "after:still" {
		t.Errorf("got %q", rulesOf(got))
	}
	if len(failed) != 1 || failed[0].Rule != "divides" {
		t.Fatalf("failures = %v", failed)
	}
	var ee *evalError
	if !errors.As(failed[0].Err, &ee) || strings.Contains(failed[0].Err.Error(), "\n") {
		t.Errorf("failure error %q should be an *evalError on one line", failed[0].Err)
	}
}

func TestSysAndEvents(t *testing.T) {
	t.Parallel()
	set := mustCompile(t, Options{}, `
rules:
  - name: live
    when: msg.Sys.Type == "finderliveclosenotifymsg"
    actions:
      - plugin: stats.live
        with: { id: "{{ msg.Sys.Fields.live_id }}" }
  - name: kicked
    on: event
    when: event.Type == "session.kicked" && event.Message.Text == ""
    cooldown: 1m
    actions:
      - send: { to: ops, text: "{{ event.Session }} {{ event.Fields.reason }}" }
  - name: any-event
    on: event
    actions:
      - send: { to: log, text: "{{ event.Type }}" }
`)
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	// A text message has no Sys: the condition is false, not an error.
	if got := set.Match(nil, text("hi"), "", now, nil); len(got) != 0 {
		t.Errorf("text message matched %v", got)
	}
	live := &sdk.Message{Type: sdk.TypeSystem, Sys: &sdk.SysMsg{Type: "finderliveclosenotifymsg", Fields: map[string]string{"live_id": "42"}}}
	if got := actionLines(set.Match(nil, live, "", now, nil)); len(got) != 1 || got[0] != `{rule: live, plugin: stats.live, with: {id: "42"}}` {
		t.Errorf("live notice: %v", got)
	}
	cd := NewCooldowns(0)
	ev := &Event{Type: EventSessionKicked, Session: "main", Fields: map[string]string{"reason": "elsewhere"}}
	if got := rulesOf(set.MatchEvent(nil, ev, now, cd)); got != "kicked:main elsewhere any-event:session.kicked" {
		t.Errorf("event: %q", got)
	}
	if got := rulesOf(set.MatchEvent(nil, ev, now.Add(time.Second), cd)); got != "any-event:session.kicked" {
		t.Errorf("event in cooldown: %q", got)
	}
}

func TestCron(t *testing.T) {
	t.Parallel()
	set := mustCompile(t, Options{}, `
rules:
  - name: morning
    on: cron
    schedule: "0 9 * * *"
    actions: [{send: {to: "{{ account }}", text: "早 {{ clock() }}"}}]
  - name: berlin
    on: cron
    schedule: "30 8 * * *"
    timezone: Europe/Berlin
    when: weekday() != 0
    actions: [{send: {to: x, text: "{{ weekday() }}"}}]
`)
	crons := set.Crons()
	if len(crons) != 2 || crons[0].Name != "morning" {
		t.Fatalf("Crons() = %v", crons)
	}
	from := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	if next := crons[0].Schedule.Next(from); !next.Equal(time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("morning next = %v, want 09:00 Shanghai", next)
	}
	if next := crons[1].Schedule.Next(from); !next.Equal(time.Date(2026, 11, 20, 7, 30, 0, 0, time.UTC)) {
		t.Errorf("berlin next = %v, want 08:30 Berlin", next)
	}
	got, err := set.Fire(nil, "morning", "shop", time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC))
	if err != nil || rulesOf(got) != "morning:早 09:00" || got[0].To != "shop" {
		t.Errorf("Fire = %v, %v", got, err)
	}
	// Sunday 2026-11-22 in Shanghai: the condition holds the rule back.
	if got, _ := set.Fire(nil, "berlin", "shop", time.Date(2026, 11, 22, 7, 30, 0, 0, time.UTC)); len(got) != 0 {
		t.Errorf("berlin fired on a Sunday: %v", got)
	}
	if _, err := set.Fire(nil, "nope", "", from); err == nil {
		t.Error("Fire of an unknown rule must fail")
	}
}

func TestMatchConcurrent(t *testing.T) {
	t.Parallel()
	set := mustCompile(t, Options{}, string(benchRules(200)))
	msgs := benchMessages(200)
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, shanghai)
	want := make([]string, len(msgs))
	for i, m := range msgs {
		want[i] = rulesOf(set.Match(nil, m, "", now, nil))
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var dst []Action
			for i, m := range msgs {
				dst = set.Match(dst[:0], m, "", now, nil)
				if got := rulesOf(dst); got != want[i] {
					t.Errorf("concurrent Match(%q) = %q, want %q", m.Text, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

// TestMatchAllocations holds Match to at most 3 allocations a message on
// every benchmark mix: a rule its guard decides costs none, and the
// environment is boxed once, for the first rule that runs the VM.
func TestMatchAllocations(t *testing.T) {
	for _, mix := range benchMixes {
		set := mustCompile(t, Options{}, string(mix.rules(1000)))
		msgs := mix.messages(1000)
		dst := make([]Action, 0, 64)
		i := 0
		allocs := testing.AllocsPerRun(200, func() {
			m := msgs[i%len(msgs)]
			dst = set.Match(dst[:0], m, m.Account, benchTimes[i%len(benchTimes)], nil)
			i++
		})
		if allocs > 3 {
			t.Errorf("%s: Match allocates %.1f times per message, want at most 3", mix.name, allocs)
		}
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestCooldownTxCommitsOnlyWhenAsked: firings recorded through a CooldownTx
// count within it at once, but reach the Cooldowns only on Commit, so that a
// page that fails to commit leaves no cooldown behind and its messages are
// answered when it is synced again.
func TestCooldownTxCommitsOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cd := NewCooldowns(0)
	tx := cd.Begin()
	if !tx.Allow("r", "c", time.Minute, now) {
		t.Fatal("first firing refused")
	}
	if tx.Allow("r", "c", time.Minute, now.Add(time.Second)) {
		t.Fatal("second firing within the transaction allowed")
	}
	// The page did not commit: a new attempt must fire again.
	if !cd.Begin().Allow("r", "c", time.Minute, now.Add(2*time.Second)) {
		t.Fatal("an uncommitted firing cooled the rule down")
	}
	tx.Commit()
	if cd.Begin().Allow("r", "c", time.Minute, now.Add(3*time.Second)) {
		t.Fatal("a committed firing did not cool the rule down")
	}
	if !cd.Begin().Allow("r", "c", time.Minute, now.Add(2*time.Minute)) {
		t.Fatal("the cooldown never ended")
	}
}
