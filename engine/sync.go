package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/sdk"
)

// Syncer is what the sync loop needs of the upstream.
type Syncer interface {
	SyncFinder(ctx context.Context, token, wID, keyBuff string) (*sdk.Page, error)
}

// syncLoop polls /syncFinder for one account until ctx is done. Each page is
// committed in one store transaction together with the actions its new
// messages produced; only then does the cursor advance and the dispatcher see
// the actions. A crash before the commit re-syncs the page; a crash after it
// finds the actions in the outbox.
func (d *Daemon) syncLoop(ctx context.Context, a *account) {
	log := d.log.With("account", a.name)
	cursor, err := d.store.Cursor(ctx, a.name)
	if err != nil {
		log.Error("cannot read the sync cursor", "err", err)
		return
	}
	failures := 0
	var delay time.Duration
	for {
		if delay > 0 && !sleep(ctx, delay) {
			return
		}
		inst, err := a.keeper.Wait(ctx)
		if err != nil {
			return
		}
		start := time.Now()
		page, err := d.sync.SyncFinder(ctx, inst.Token, inst.WID, cursor)
		d.metrics.pollSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.metrics.pollErrors.WithLabelValues(a.name).Inc()
			switch {
			case errors.Is(err, upstream.ErrOffline):
				a.keeper.ReportOffline(inst.Gen)
			case errors.Is(err, upstream.ErrUnauthorized):
				a.keeper.ReportUnauthorized(inst.Token)
			}
			failures++
			delay = backoff(d.cfg.Sync.IdleInterval, d.cfg.Sync.MaxBackoff, failures)
			log.Warn("sync failed", "err", err, "retry_in", delay.Round(time.Millisecond))
			a.setSyncError(err)
			continue
		}
		n, err := d.commitPage(ctx, a, page, log)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			delay = backoff(d.cfg.Sync.IdleInterval, d.cfg.Sync.MaxBackoff, failures)
			log.Error("cannot commit a synced page; it will be synced again", "err", err, "retry_in", delay.Round(time.Millisecond))
			a.setSyncError(err)
			continue
		}
		failures = 0
		cursor = page.KeyBuff
		a.synced(n)
		if len(page.Messages) > 0 {
			delay = d.cfg.Sync.BusyInterval
		} else {
			delay = d.cfg.Sync.IdleInterval
		}
	}
}

// commitPage evaluates the page's new messages and commits the page. It
// returns how many messages were new.
func (d *Daemon) commitPage(ctx context.Context, a *account, page *sdk.Page, log *slog.Logger) (int, error) {
	ids := make([]uint64, 0, len(page.Messages))
	for i := range page.Messages {
		ids = append(ids, page.Messages[i].ID)
	}
	unseen, err := d.store.Unseen(ctx, a.name, ids)
	if err != nil {
		return 0, err
	}
	fresh := make(map[uint64]bool, len(unseen))
	for _, id := range unseen {
		fresh[id] = true
	}
	now := d.now()
	received := time.Now()
	commit := store.Commit{Account: a.name, KeyBuff: page.KeyBuff, MsgIDs: unseen}
	for i := range page.Messages {
		m := &page.Messages[i]
		if !fresh[m.ID] {
			continue // seen on an earlier page, or earlier on this one
		}
		delete(fresh, m.ID)
		m.Account = a.name
		if m.FromSelf {
			if id, ok := d.dispatcher.matchEcho(a.name, m); ok {
				commit.Acks = append(commit.Acks, id)
			}
		}
		if m.ParseError != "" {
			log.Debug("message content did not parse", "msg_id", m.ID, "err", m.ParseError)
		}
		d.metrics.synced.WithLabelValues(a.name, m.Type).Inc()
		commit.Items = append(commit.Items, d.rules.evaluate(m, now)...)
	}
	items, err := d.store.CommitPage(ctx, commit)
	if err != nil {
		return 0, err
	}
	for i := range items {
		items[i].Received = received
	}
	if len(unseen) > 0 {
		log.Info("page synced", "messages", len(page.Messages), "new", len(unseen), "actions", len(items))
	}
	d.dispatcher.echoedAcks(a.name, commit.Acks)
	d.dispatcher.add(items)
	if len(page.Messages) == 0 {
		d.dispatcher.caughtUp(a.name)
	}
	return len(unseen), nil
}

// addressReply fills in a reply to m: the conversation, the receiver, the
// account's own Finder identity and the session. It reports false for
// messages that must not be answered: the account's own messages and
// messages without a sender (system notices).
func addressReply(it *store.Item, m *sdk.Message) bool {
	if m.FromSelf || m.From == "" || m.Type == sdk.TypeSystem {
		return false
	}
	it.To, it.My, it.Session, it.MsgID = m.From, m.To, m.Session, m.ID
	it.Conversation = conversation(m)
	return true
}

// conversation names the conversation of m, in which actions keep order.
func conversation(m *sdk.Message) string {
	if m.Session != "" {
		return m.Session
	}
	return m.From
}

// backoff returns an exponential pause with jitter for the n-th consecutive
// failure.
func backoff(minD, maxD time.Duration, n int) time.Duration {
	d := max(minD, 10*time.Millisecond)
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	return d/2 + jitter(d/2)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var _ Syncer = (*upstream.Client)(nil)
