package outbox

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
)

// pausedRig is a rig whose conversation s1 a person took over until
// until; drop says whether what is queued there is dropped.
func pausedRig(t *testing.T, drop bool) (*rig, *time.Time) {
	t.Helper()
	r := newRig(t, store.NewMemory(store.Options{}), &fakeUpstream{})
	until := r.clk.now.Add(30 * time.Minute)
	r.ob = New(Config{MaxAttempts: 5, RetryBackoff: time.Second, Doubt: doubt}, Deps{
		Store: r.st, Sender: r.up, Sessions: online{}, Now: r.clk.Now,
		Sleep: func(_ context.Context, d time.Duration) bool { r.clk.now = r.clk.now.Add(d); return true },
		Paused: func(account, conv string, now time.Time) (time.Time, bool) {
			return until, conv == "s1" && now.Before(until)
		},
		DropPaused: drop,
	})
	return r, &until
}

// TestPausedConversationHoldsItsQueue: with hold, what was queued in a
// paused conversation waits, the worker told how long, and goes out in
// order once the pause ends; another conversation is not held up.
func TestPausedConversationHoldsItsQueue(t *testing.T) {
	t.Parallel()
	r, until := pausedRig(t, false)
	r.enqueue(t, store.KindReply, "一", "二")
	other, err := r.st.Enqueue(context.Background(), []store.Item{{Account: "shop", Kind: store.KindReply, Text: "别处", To: "x", My: "me@finder", Session: "s2", Conversation: "s2"}})
	if err != nil {
		t.Fatal(err)
	}
	r.ob.Add(other)
	r.drain()
	if !slices.Equal(r.up.accepted, []string{"别处"}) {
		t.Fatalf("sent %q while s1 was paused, want only the other conversation's", r.up.accepted)
	}
	wait, ok := r.ob.Step(context.Background(), "shop")
	if !ok || wait != until.Sub(r.clk.now) {
		t.Fatalf("step = %v, %v; want to wait %v for the pause to end", wait, ok, until.Sub(r.clk.now))
	}
	r.clk.now = *until
	r.drain()
	if !slices.Equal(r.up.accepted, []string{"别处", "一", "二"}) {
		t.Fatalf("sent %q after the pause, want the held replies in order", r.up.accepted)
	}
}

// TestPausedConversationDropsItsQueue: with drop, what was queued in a
// paused conversation leaves the outbox, store included, unsent.
func TestPausedConversationDropsItsQueue(t *testing.T) {
	t.Parallel()
	r, until := pausedRig(t, true)
	r.enqueue(t, store.KindReply, "一", "二")
	r.drain()
	if len(r.up.accepted) != 0 {
		t.Fatalf("sent %q in a paused conversation", r.up.accepted)
	}
	if n, _ := r.ob.Depth("shop"); n != 0 {
		t.Fatalf("%d still queued", n)
	}
	if p, _ := r.st.Pending(context.Background()); len(p) != 0 {
		t.Fatalf("still in the store: %+v", p)
	}
	r.clk.now = *until
	r.enqueue(t, store.KindReply, "三")
	r.drain()
	if !slices.Equal(r.up.accepted, []string{"三"}) {
		t.Fatalf("sent %q after the pause", r.up.accepted)
	}
}

// TestPauseNeverDropsAReplyInDoubt: a reply in doubt when its conversation
// pauses may have gone out; its echo still settles it, and it is not
// dropped unsent and unsettled.
func TestPauseNeverDropsAReplyInDoubt(t *testing.T) {
	t.Parallel()
	r := newRig(t, store.NewMemory(store.Options{}), &fakeUpstream{script: func(n int) (bool, error) { return true, cutAnswer }})
	r.enqueue(t, store.KindReply, "一")
	r.drain()
	if _, doubts := r.ob.Depth("shop"); doubts != 1 {
		t.Fatalf("want the reply in doubt, depth %v", doubts)
	}
	paused := false
	r.ob.deps.Paused = func(string, string, time.Time) (time.Time, bool) { return r.clk.now.Add(time.Hour), paused }
	r.ob.deps.DropPaused = true
	paused = true
	r.drain()
	if n, doubts := r.ob.Depth("shop"); n != 1 || doubts != 1 {
		t.Fatalf("depth %d, %d in doubt: the reply in doubt was dropped", n, doubts)
	}
	r.echo(t, 0)
	if n, _ := r.ob.Depth("shop"); n != 0 || len(r.up.accepted) != 1 {
		t.Fatalf("depth %d, sent %q; want it settled by its echo, sent once", n, r.up.accepted)
	}
}
