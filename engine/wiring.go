package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/outbox"
	"github.com/finderbot/finderbot/engine/poller"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/rules"
)

// newOutbox wires the outbox to the store, the upstream, the sessions and
// the metrics.
func (d *Daemon) newOutbox() *outbox.Outbox {
	cfg := d.cfg.Send
	return outbox.New(outbox.Config{
		MaxAttempts: cfg.MaxAttempts, RetryBackoff: cfg.RetryBackoff, MaxRetryBackoff: cfg.MaxRetryBackoff,
		Doubt: d.cfg.Upstream.Timeout, PluginCalls: d.cfg.Plugins.CallsPerAccount,
	}, outbox.Deps{
		Store: d.store, Sender: d.sender, Sessions: accountSessions{d}, Plugins: d.plugins,
		Pace:       d.pace,
		Rand:       jitter,
		Paused:     d.pausedUntil,
		DropPaused: d.handoff.Drop(),
		Log:        d.log,
		Observer:   outboxMetrics{d},
		Fence:      d.fence,
	})
}

// fence answers whether this daemon may make a state-changing upstream
// call for the account: alone, always; sharing accounts, only while it
// can prove it holds the account's lease.
func (d *Daemon) fence(account string) error {
	if d.cluster == nil {
		return nil
	}
	return d.cluster.fence(account)
}

// fenceFor is the account's fence for its session keeper, nil alone.
func (d *Daemon) fenceFor(account string) func() error {
	if d.cluster == nil {
		return nil
	}
	return func() error { return d.cluster.fence(account) }
}

// newPoller wires an account's poller.
func (d *Daemon) newPoller(name string) *poller.Poller {
	return poller.New(name, poller.Deps{
		Syncer: d.sync, Store: d.store, Sink: d.outbox,
		Rules: d.rules.set.Load, Cooldowns: d.rules.cooldowns, Handoff: d.handoff,
		Now: d.now, Log: d.log, Observer: pollerMetrics{d},
	})
}

// pace reserves the account's next send turn: its rate limit plus jitter.
func (d *Daemon) pace(account string) (time.Duration, func()) {
	a := d.accounts[account]
	if a == nil {
		return jitter(d.cfg.Send.Jitter), func() {}
	}
	r := a.limiter.Reserve()
	return r.Delay() + jitter(d.cfg.Send.Jitter), r.Cancel
}

// accountSessions gives the outbox the accounts' logins.
type accountSessions struct{ d *Daemon }

func (s accountSessions) Wait(ctx context.Context, account string) (outbox.Instance, error) {
	a := s.d.accounts[account]
	if a == nil {
		return outbox.Instance{}, fmt.Errorf("engine: account %q is not configured", account)
	}
	inst, err := a.keeper.Wait(ctx)
	if err != nil {
		return outbox.Instance{}, err
	}
	return outbox.Instance{Token: inst.Token, WID: inst.WID, Gen: inst.Gen}, nil
}

func (s accountSessions) ReportOffline(account string, inst outbox.Instance) {
	if a := s.d.accounts[account]; a != nil {
		a.keeper.ReportOffline(inst.Gen)
	}
}

func (s accountSessions) ReportUnauthorized(account string, inst outbox.Instance) {
	if a := s.d.accounts[account]; a != nil {
		a.keeper.ReportUnauthorized(inst.Token)
	}
}

// outboxMetrics turns the outbox's figures into metrics.
type outboxMetrics struct{ d *Daemon }

func (m outboxMetrics) Depth(delta int) { m.d.metrics.outboxDepth.Add(float64(delta)) }
func (m outboxMetrics) Result(kind, result string) {
	m.d.metrics.actions.WithLabelValues(kind, result).Inc()
}
func (m outboxMetrics) Delivered(account, kind string) {
	if kind == store.KindReply || kind == store.KindSend {
		m.d.rates.Out(account, 1)
		m.d.ratesCounted()
	}
}
func (m outboxMetrics) Dead(dl store.DeadLetter) { m.d.publishDeadLetter(dl) }
func (m outboxMetrics) HandOff(lat time.Duration) {
	m.d.metrics.handOff.Observe(lat.Seconds())
	if m.d.opts.HandOff != nil {
		m.d.opts.HandOff(lat)
	}
}

// pollerMetrics turns the poller's figures into metrics.
type pollerMetrics struct{ d *Daemon }

func (m pollerMetrics) Synced(_ string, msgType string) {
	m.d.metrics.syncedTypes.WithLabelValues(msgType).Inc()
}
func (m pollerMetrics) Matched(rule string) { m.d.metrics.rulesMatched.WithLabelValues(rule).Inc() }
func (m pollerMetrics) Skipped(account, _ string) {
	m.d.metrics.inboundSkipped.WithLabelValues(account).Inc()
	if a := m.d.accounts[account]; a != nil {
		a.mu.Lock()
		a.skipped++
		a.mu.Unlock()
	}
}
func (m pollerMetrics) Committed(account string, received int) {
	m.d.rates.In(account, received)
	m.d.ratesCounted()
}
func (m pollerMetrics) Paused(p store.Pause, extended bool) {
	if extended {
		m.d.log.Info("conversation pause extended: the person wrote again", "account", p.Account, "conversation", p.Conv, "until", p.Until)
		return
	}
	m.d.metrics.handoffs.WithLabelValues(p.Account).Inc()
	m.d.log.Info("conversation handed off: a person answered from the phone; the bot pauses there", "account", p.Account,
		"conversation", p.Conv, "until", p.Until, "msg_id", p.MsgID)
	m.d.publish(events.KindHandoff, p.Account, fmt.Sprintf("a person answered conversation %s from the phone; the bot pauses there until %s",
		p.Conv, p.Until.In(m.d.cfg.Location()).Format("2006-01-02 15:04:05")))
}
func (m pollerMetrics) Withheld(account, _ string, acts []rules.Action) {
	m.d.metrics.withheld.WithLabelValues(account).Add(float64(len(acts)))
}
func (m pollerMetrics) FinderName(account, name string) {
	if a := m.d.accounts[account]; a != nil {
		a.learnFinderName(name)
	}
}

// addSnapshots runs the store's periodic snapshots, when they are on.
func (d *Daemon) addSnapshots(st *store.Bolt) {
	if every := d.cfg.Store.SnapshotEvery; every > 0 {
		d.runners = append(d.runners, func(ctx context.Context) error {
			return st.RunSnapshots(ctx, every, d.cfg.Store.SnapshotKeep)
		})
	}
}
