package engine

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/sdk"
)

// Syncer is what the sync loop needs of the upstream.
type Syncer interface {
	SyncFinder(ctx context.Context, token, wID, keyBuff string) (*sdk.Page, error)
}

// step is one turn of an account: it makes sure the account is online
// (starting a login in the background when it is not), checks the
// instance now and then, and polls /syncFinder once. It returns the pause
// until the next turn, or -1 when the login will schedule it.
//
// Each page is committed in one store transaction together with the
// actions its new messages produced; only then does the cursor advance and
// the dispatcher see the actions. A crash before the commit re-syncs the
// page; a crash after it finds the actions in the outbox.
func (d *Daemon) step(ctx context.Context, a *account) time.Duration {
	inst, ok := a.keeper.Current()
	if !ok {
		d.startLogin(ctx, a)
		return -1
	}
	if !a.loaded {
		cursor, err := d.store.Cursor(ctx, a.name)
		if err != nil {
			d.log.Error("cannot read the sync cursor", "account", a.name, "err", err)
			return d.cfg.Sync.MaxBackoff
		}
		a.cursor, a.loaded = cursor, true
	}
	now := time.Now()
	if a.keeper.TakeSuspicion(inst.Gen) || now.After(a.nextCheck) {
		a.nextCheck = now.Add(d.cfg.Sync.OnlineCheck)
		online, err := a.keeper.Check(ctx, inst)
		if !online {
			d.startLogin(ctx, a)
			return -1
		}
		if err != nil && ctx.Err() == nil {
			d.log.Warn("online check failed", "account", a.name, "err", err)
		}
	}
	page, err := d.sync.SyncFinder(ctx, inst.Token, inst.WID, a.cursor)
	d.metrics.pollSeconds.Observe(time.Since(now).Seconds())
	if err == nil {
		_, err = d.commitPage(ctx, a, page)
	}
	if err != nil {
		if ctx.Err() != nil {
			return -1
		}
		d.metrics.pollErrors.WithLabelValues(a.name).Inc()
		switch {
		case errors.Is(err, upstream.ErrOffline):
			a.keeper.ReportOffline(inst.Gen)
		case errors.Is(err, upstream.ErrUnauthorized):
			a.keeper.ReportUnauthorized(inst.Token)
			a.keeper.ReportOffline(inst.Gen)
		}
		a.failures++
		delay := backoff(d.cfg.Sync.IdleInterval, d.cfg.Sync.MaxBackoff, a.failures)
		d.log.Warn("sync failed", "account", a.name, "err", err, "retry_in", delay.Round(time.Millisecond))
		a.setSyncError(err)
		return delay
	}
	a.failures = 0
	a.cursor = page.KeyBuff
	if len(page.Messages) > 0 {
		return d.cfg.Sync.BusyInterval
	}
	return d.cfg.Sync.IdleInterval
}

// startLogin runs the account's login in the background, once; when it
// succeeds the account's steps resume.
func (d *Daemon) startLogin(ctx context.Context, a *account) {
	if !a.loggingIn.CompareAndSwap(false, true) {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer a.loggingIn.Store(false)
		if _, err := a.keeper.LoginLoop(ctx); err != nil {
			return
		}
		a.nextCheck = time.Now().Add(d.cfg.Sync.OnlineCheck)
		d.sched.at(a, time.Now())
	}()
}

// commitPage evaluates the page's new messages and commits the page. It
// returns how many messages were new.
func (d *Daemon) commitPage(ctx context.Context, a *account, page *sdk.Page) (int, error) {
	if len(page.Messages) == 0 {
		if page.KeyBuff != a.cursor {
			// Nothing new, but the cursor moved: keep it.
			if _, err := d.store.CommitPage(ctx, store.Commit{Account: a.name, KeyBuff: page.KeyBuff}); err != nil {
				return 0, err
			}
		}
		a.synced(0)
		d.dispatcher.caughtUp(a.name)
		return 0, nil
	}
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
		} else if strings.HasSuffix(m.To, "@finder") {
			a.learnFinderName(m.To)
		}
		if m.ParseError != "" {
			d.log.Debug("message content did not parse", "account", a.name, "msg_id", m.ID, "err", m.ParseError)
		}
		d.metrics.syncedTypes.WithLabelValues(m.Type).Inc()
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
		d.log.Info("page synced", "account", a.name, "messages", len(page.Messages), "new", len(unseen), "actions", len(items))
	}
	d.dispatcher.echoedAcks(a.name, commit.Acks)
	d.dispatcher.add(items)
	a.synced(len(unseen))
	d.metrics.synced.WithLabelValues(a.name).Add(float64(len(unseen)))
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
