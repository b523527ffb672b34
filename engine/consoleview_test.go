package engine

import (
	"testing"

	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// TestConsoleOverviewOfTheDaemon: the Overview shows each account's state,
// wcId, last sync, rates, outbox and dead letters as the daemon has them,
// and a dead letter retried leaves the count at once.
func TestConsoleOverviewOfTheDaemon(t *testing.T) {
	t.Parallel()
	h := prepareHarness(t, sim.Options{AutoConfirm: true}, "shop", "home")
	h.cfg.Send.MaxAttempts = 1
	if _, err := h.sim.AddFault(sim.Fault{Endpoint: "/privateSend", Kind: sim.FaultRefuse, Count: 1}); err != nil {
		t.Fatal(err)
	}
	var heard <-chan events.Event
	h.beforeStart = func(d *Daemon) { heard = d.Events().Subscribe(h.ctx) }
	h.start()
	h.online("shop")
	h.online("home")
	// One seed answer is refused, into the dead letters; the other goes out.
	var dead events.Event
	for dead.Kind != events.KindDeadLetter {
		select {
		case dead = <-heard:
		case <-h.ctx.Done():
			t.Fatal("no dead letter")
		}
	}
	h.sent(1)
	c := &consoleBackend{d: h.d, admin: adminBackend{h.d}}
	ov := c.Overview(h.ctx)
	if len(ov.Accounts) != 2 || ov.Accounts[0].Name != "shop" || ov.Accounts[1].Name != "home" {
		t.Fatalf("accounts %+v, want shop and home in the configuration's order", ov.Accounts)
	}
	for _, a := range ov.Accounts {
		wantDead := 0
		if a.Name == dead.Account {
			wantDead = 1
		}
		if a.State != "online" || a.WcID == "" || a.LastSync.IsZero() || a.InPerMin < 1 || a.Outbox != 0 || a.DeadLetters != wantDead {
			t.Errorf("%s: %+v; want online, synced, messages in, no outbox, %d dead letters", a.Name, a, wantDead)
		}
	}
	letters, err := h.d.store.DeadLetters(h.ctx, 0)
	if err != nil || len(letters) != 1 {
		t.Fatalf("dead letters %+v, %v", letters, err)
	}
	if _, err := c.admin.RetryDeadLetter(h.ctx, letters[0].Item.ID); err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Overview(h.ctx).Accounts {
		if a.DeadLetters != 0 {
			t.Errorf("%s still shows %d dead letters after the retry", a.Name, a.DeadLetters)
		}
	}
}
