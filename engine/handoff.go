package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/handoff"
	"github.com/finderbot/finderbot/engine/store"
)

// newHandoff makes the registry of the conversations people took over,
// per the configuration (nil when handoff.pause is 0), and has a change
// wake the account's outbox worker, which holds or drops what is queued
// there.
func (d *Daemon) newHandoff() {
	d.handoff = handoff.New(d.cfg.Handoff.Pause, d.cfg.Handoff.Queued == "drop")
	d.handoff.OnChange(func(account string) {
		if d.outbox != nil {
			d.outbox.Wake(account)
		}
	})
	d.metrics.pausedCountFor = func() float64 { return float64(len(d.handoff.List("", d.now()))) }
}

// restoreHandoff brings back the pauses the store kept, before the first
// page.
func (d *Daemon) restoreHandoff(ctx context.Context) error {
	if d.handoff == nil {
		return nil
	}
	ps, err := d.store.Pauses(ctx, d.now())
	if err != nil {
		return fmt.Errorf("engine: paused conversations: %w", err)
	}
	d.handoff.Restore(ps)
	return nil
}

// pausedUntil tells the outbox whether a person has the conversation.
func (d *Daemon) pausedUntil(account, conv string, now time.Time) (time.Time, bool) {
	p, ok := d.handoff.Paused(account, conv, now)
	return p.Until, ok
}

// Paused returns the conversations where a person has taken over, of one
// account or of all (""), with when each pause ends.
func (d *Daemon) Paused(account string) []store.Pause { return d.handoff.List(account, d.now()) }

// ErrNotPaused is returned by Resume for a conversation that is not
// paused.
var ErrNotPaused = fmt.Errorf("engine: the conversation is not paused")

// Resume hands a paused conversation back to the bot: what is held there
// goes out, and the rules answer it again.
func (d *Daemon) Resume(ctx context.Context, account, conv string) error {
	if d.handoff == nil {
		return ErrNotPaused
	}
	if _, err := d.store.Resume(ctx, account, conv); err != nil {
		return fmt.Errorf("engine: resume %s %s: %w", account, conv, err)
	}
	if !d.handoff.Resume(account, conv, d.now()) {
		return ErrNotPaused
	}
	d.log.Info("conversation resumed: the bot answers it again", "account", account, "conversation", conv)
	d.publish(events.KindResumed, account, fmt.Sprintf("conversation %s handed back to the bot", conv))
	return nil
}
