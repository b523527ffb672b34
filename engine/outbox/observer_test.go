package outbox

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
)

// recorder is an Observer that keeps what it hears of deliveries and dead
// letters.
type recorder struct {
	delivered []string // account kind
	dead      []store.DeadLetter
	// st, when set, is asked at each dead letter heard of whether it holds
	// it already; unstored are those it did not.
	st       store.Store
	unstored []uint64
}

func (*recorder) Depth(int)             {}
func (*recorder) Result(string, string) {}
func (*recorder) HandOff(time.Duration) {}
func (r *recorder) Dead(d store.DeadLetter) {
	r.dead = append(r.dead, d)
	if r.st == nil {
		return
	}
	stored, _ := r.st.DeadLetters(context.Background(), 0)
	if !slices.ContainsFunc(stored, func(s store.DeadLetter) bool { return s.Item.ID == d.Item.ID }) {
		r.unstored = append(r.unstored, d.Item.ID)
	}
}
func (r *recorder) Delivered(account, kind string) {
	r.delivered = append(r.delivered, account+" "+kind)
}

// TestObserverHearsEachOutcomeOnce: every action performed is reported
// delivered once, however its acceptance became known (the answer, or the
// echo of a reply in doubt), and every action given up on is reported
// dead once, with its reason; nothing is reported twice.
func TestObserverHearsEachOutcomeOnce(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		script    func(n int) (bool, error)
		kind      string
		echo      bool // echo the first accepted send, then catch up
		plugin    bool
		delivered string
		reason    string // of the one dead letter; "" for none
	}{
		"a reply accepted":           {kind: store.KindReply, delivered: "shop reply"},
		"a send accepted":            {kind: store.KindSend, delivered: "shop send"},
		"a reply in doubt, echoed":   {kind: store.KindReply, script: func(int) (bool, error) { return true, cutAnswer }, echo: true, delivered: "shop reply"},
		"a send in doubt":            {kind: store.KindSend, script: func(int) (bool, error) { return true, timeout }, reason: "in doubt:"},
		"a reply refused every time": {kind: store.KindReply, script: func(int) (bool, error) { return false, refusal }, reason: "gave up after 5 attempts"},
		"a reply in doubt, unechoed": {kind: store.KindReply, script: func(int) (bool, error) { return true, cutAnswer }, reason: "its echo never came"},
		"a plugin answered":          {kind: store.KindPlugin, plugin: true, delivered: "shop plugin"},
		"a plugin failing":           {kind: store.KindPlugin, plugin: true, reason: "gave up after 5 attempts"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := store.NewMemory(store.Options{})
			rec := &recorder{st: st}
			r := &rig{st: st, up: &fakeUpstream{script: tc.script},
				clk: &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}, obs: rec}
			r.boot(t)
			if tc.plugin {
				r.ob.deps.Plugins = func(context.Context, store.Item) ([]store.Item, error) {
					if tc.reason != "" {
						return nil, errors.New("the plugin is down")
					}
					return nil, nil
				}
			}
			r.enqueue(t, tc.kind, "在的")
			for range 10 {
				r.drain()
				r.clk.now = r.clk.now.Add(time.Minute)
				if !tc.echo {
					r.caughtUp() // no echo comes
				}
			}
			if tc.echo {
				r.echo(t, 0)
				r.caughtUp()
				r.drain()
			}
			r.ob.Close()
			if got := strings.Join(rec.delivered, ","); got != tc.delivered {
				t.Errorf("delivered %q, want %q", got, tc.delivered)
			}
			switch {
			case tc.reason == "" && len(rec.dead) > 0:
				t.Errorf("dead letters reported: %+v", rec.dead)
			case tc.reason != "" && (len(rec.dead) != 1 || !strings.Contains(rec.dead[0].Reason, tc.reason) || rec.dead[0].Item.Account != "shop"):
				t.Errorf("dead letters reported: %+v; want one for shop with %q", rec.dead, tc.reason)
			}
			if len(rec.unstored) > 0 {
				t.Errorf("dead letters %v were reported before they were stored", rec.unstored)
			}
			stored, _ := r.st.DeadLetters(context.Background(), 0)
			if len(stored) != len(rec.dead) {
				t.Errorf("%d dead letters reported, %d stored", len(rec.dead), len(stored))
			}
		})
	}
}

// TestObserverHearsTheDeadLettersOfARestart: a send that was being
// attempted when the daemon stopped is given up on by the next start, and
// reported so.
func TestObserverHearsTheDeadLettersOfARestart(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(store.Options{})
	saved, err := st.Enqueue(context.Background(), []store.Item{{Account: "shop", Kind: store.KindSend, Text: "通知", To: "wxid_a", Conversation: "to:wxid_a"}})
	if err != nil {
		t.Fatal(err)
	}
	it := saved[0]
	it.State = store.StateAttempting
	if _, err := st.Record(context.Background(), store.Changes{Put: []store.Item{it}}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	r := &rig{st: st, up: &fakeUpstream{}, clk: &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}, obs: rec}
	r.boot(t)
	if len(rec.dead) != 1 || !rec.dead[0].InDoubt || rec.dead[0].Item.ID != it.ID {
		t.Fatalf("dead letters reported: %+v", rec.dead)
	}
}
