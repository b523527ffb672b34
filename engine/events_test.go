package engine

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// awaitEvent reads ch until an event of kind about account whose message
// contains want arrives, and returns it; it fails at the harness's
// deadline.
func (h *harness) awaitEvent(ch <-chan events.Event, kind, account, want string) events.Event {
	h.t.Helper()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				h.t.Fatalf("the subscription ended before a %s event of %q saying %q", kind, account, want)
			}
			if e.Kind == kind && e.Account == account && strings.Contains(e.Message, want) {
				return e
			}
		case <-h.ctx.Done():
			h.t.Fatalf("no %s event of %q saying %q: %v", kind, account, want, h.ctx.Err())
		}
	}
}

// TestEventsReachASubscriber runs the real daemon on the simulator: the
// account coming online, a reload that works and one that fails, and a
// reply given up on each arrive on a subscription made before the start,
// with no secret in them.
func TestEventsReachASubscriber(t *testing.T) {
	t.Parallel()
	h := prepareHarness(t, sim.Options{AutoConfirm: true, NoSeed: true})
	h.cfg.Send.MaxAttempts = 1
	var ch <-chan events.Event
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	h.beforeStart = func(d *Daemon) { ch = d.Events().Subscribe(ctx) }
	h.start()

	online := h.awaitEvent(ch, events.KindSession, "shop", "online")
	if online.Seq == 0 || online.Time.IsZero() {
		t.Errorf("event not numbered or stamped: %+v", online)
	}
	_, wcID := h.online("shop")

	if err := h.d.Reload(); err != nil {
		t.Fatal(err)
	}
	h.awaitEvent(ch, events.KindReload, "", "ok: 2 rules")
	writeFile(t, filepath.Join(h.cfg.Rules[0], "greet.yaml"), "rules:\n  - name: greet\n    when: msg.Text ==\n")
	if err := h.d.Reload(); err == nil {
		t.Fatal("a broken rule file reloaded")
	}
	h.awaitEvent(ch, events.KindReload, "", "greet.yaml:3")
	writeFile(t, filepath.Join(h.cfg.Rules[0], "greet.yaml"), greetRules)
	if err := h.d.Reload(); err != nil {
		t.Fatal(err)
	}

	// One attempt allowed, and it is refused: the reply is given up on.
	if _, err := h.sim.AddFault(sim.Fault{Endpoint: "/privateSend", Kind: sim.FaultRefuse, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sim.Inject(wcID, sim.Text("", "哈喽")); err != nil {
		t.Fatal(err)
	}
	dead := h.awaitEvent(ch, events.KindDeadLetter, "shop", "reply of rule greet")
	if !strings.Contains(dead.Message, "gave up after 1 attempts") {
		t.Errorf("dead letter event = %q", dead.Message)
	}

	tok := h.sim.MemberToken(sim.DefaultAccount)
	for _, e := range h.d.Events().Recent(0) {
		if tok == "" || strings.Contains(e.Message, tok) {
			t.Errorf("event %+v shows the API token (or there is none: %q)", e, tok)
		}
	}
}
