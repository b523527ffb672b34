package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/rules"
)

// TestRatesConversationsAndRuleStats runs the real daemon on the
// simulator: three messages in, two of them answered. The rates count the
// three received and the two replies delivered; the conversation log shows
// each message with the rule it fired and the reply it queued, and the
// replies' echoes in their conversations; the rule counts say the same.
func TestRatesConversationsAndRuleStats(t *testing.T) {
	t.Parallel()
	h := prepareHarness(t, sim.Options{AutoConfirm: true, NoSeed: true})
	counted := make(chan struct{}, 1)
	h.beforeStart = func(d *Daemon) {
		d.watchRates = func() {
			select {
			case counted <- struct{}{}:
			default:
			}
		}
	}
	h.start()
	_, wcID := h.online("shop")
	if _, err := h.sim.Inject(wcID, sim.Text("fv1_ann@findermsgstranger", "哈喽"), sim.Text("fv1_bob@findermsgstranger", "随便"),
		sim.Text("fv1_bob@findermsgstranger", "echo 一二三")); err != nil {
		t.Fatal(err)
	}
	h.sent(2)
	for {
		if in, out := h.d.Rates("shop"); in == 3 && out == 2 {
			break
		}
		select {
		case <-counted:
		case <-h.ctx.Done():
			in, out := h.d.Rates("shop")
			t.Fatalf("rates: %v in, %v out; want 3 and 2", in, out)
		}
	}
	if in, out := h.d.Rates("nobody"); in != 0 || out != 0 {
		t.Errorf("an unknown account has rates %v, %v", in, out)
	}

	// The barrier's reply goes out after every echo before it is
	// committed, and so logged.
	h.barrier(wcID, 3)
	convs, err := h.d.Conversations(h.ctx, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range convs {
		var msgs []string
		for _, m := range c.Messages {
			line := m.Text
			if m.Own {
				line = "me: " + line
			}
			for _, a := range m.Actions {
				line += fmt.Sprintf(" => %s %q", a.Rule, a.Text)
			}
			msgs = append(msgs, line)
		}
		got = append(got, strings.Join(msgs, " | "))
	}
	// The stranger of the barrier is the account's default one.
	want := []string{
		`echo barrier 3 => echo "echo barrier 3"`,
		`随便 | echo 一二三 => echo "echo 一二三" | me: echo 一二三`,
		`哈喽 => greet "你好！有什么可以帮您？" | me: 你好！有什么可以帮您？`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("conversations, newest first:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if convs, _ := h.d.Conversations(h.ctx, "shop", 1); len(convs) != 1 {
		t.Errorf("limit 1 gave %d conversations", len(convs))
	}
	if _, err := h.d.Conversations(h.ctx, "nobody", 0); !errors.Is(err, ErrUnknown) {
		t.Errorf("conversations of an unknown account: %v", err)
	}

	stats := map[string]rules.RuleStat{}
	for _, s := range h.d.RuleStats() {
		stats[s.Name] = s
	}
	if g, e := stats["greet"], stats["echo"]; g.Matches != 1 || e.Matches != 2 || g.Failures+e.Failures != 0 || g.Kind != "message" || g.Line != 2 || !strings.HasSuffix(g.File, "greet.yaml") {
		t.Errorf("rule stats = %+v", stats)
	}
}

// TestTryMessageExplainsWithoutActing: TryMessage says which rule would
// answer a text and why each other rule would not, as replay --explain
// does; nothing is sent, stored or counted.
func TestTryMessageExplainsWithoutActing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	h.online("shop")
	before := h.d.RuleStats()
	tests := map[string]struct {
		text, answer string
		verdicts     []string // rule: matched actions | why
	}{
		"greet answers": {"哈喽", "greet", []string{
			`greet: {rule: greet, reply: "你好！有什么可以帮您？"}`,
			`echo: not a candidate, needs msg.Text contains "echo "`,
		}},
		"echo answers": {"echo 你好", "echo", []string{
			`greet: not a candidate, needs msg.Text == "哈喽"`,
			`echo: {rule: echo, reply: "echo 你好"}`,
		}},
		"a candidate whose condition is false": {"say echo 你好", "", []string{
			`greet: not a candidate, needs msg.Text == "哈喽"`,
			`echo: msg.Text startsWith "echo " is false: msg.Text = "say echo 你好"`,
		}},
		"none answers": {"随便", "", []string{
			`greet: not a candidate, needs msg.Text == "哈喽"`,
			`echo: not a candidate, needs msg.Text contains "echo "`,
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tr, err := h.d.TryMessage(h.ctx, "shop", tc.text)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range tr.Rules {
				line := v.Rule + ": " + v.Why
				if v.Matched {
					line = v.Rule + ": " + strings.Join(v.Actions, "; ")
				}
				got = append(got, line)
			}
			if tr.Answer != tc.answer || strings.Join(got, "\n") != strings.Join(tc.verdicts, "\n") {
				t.Errorf("TryMessage(%q): answer %q, verdicts\n%s\nwant %q,\n%s", tc.text, tr.Answer, strings.Join(got, "\n"), tc.answer, strings.Join(tc.verdicts, "\n"))
			}
		})
	}
	if fmt.Sprint(h.d.RuleStats()) != fmt.Sprint(before) {
		t.Errorf("TryMessage counted: %+v, before %+v", h.d.RuleStats(), before)
	}
	if sent := h.sim.Sent(); len(sent) != 0 {
		t.Errorf("TryMessage sent %s", describeSent(sent))
	}
	if pending, _ := h.d.Store().Pending(h.ctx); len(pending) != 0 {
		t.Errorf("TryMessage queued %+v", pending)
	}
	if convs, _ := h.d.Conversations(h.ctx, "shop", 0); len(convs) != 0 {
		t.Errorf("TryMessage logged %+v", convs)
	}
	if _, err := h.d.TryMessage(h.ctx, "nobody", "哈喽"); !errors.Is(err, ErrUnknown) {
		t.Errorf("TryMessage for an unknown account: %v", err)
	}
	if _, err := h.d.TryMessage(h.ctx, "shop", strings.Repeat("x", MaxTryText+1)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("TryMessage of a text past the bound: %v", err)
	}
}
