package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"golang.org/x/time/rate"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/outbox"
	"github.com/finderbot/finderbot/engine/poller"
	"github.com/finderbot/finderbot/engine/store/natsstore"
	"github.com/finderbot/finderbot/engine/upstream"
)

// Syncer is what the sync loop needs of the upstream.
type Syncer = poller.Syncer

// Sender is what the outbox needs of the upstream.
type Sender = outbox.Sender

// step is one turn of an account: it makes sure the account is online
// (starting a login in the background when it is not), checks the
// instance now and then, and has the account's poller fetch and commit one
// page. It returns the pause until the next turn, or -1 when the login will
// schedule it.
func (d *Daemon) step(ctx context.Context, a *account) time.Duration {
	if d.cluster != nil {
		// Another daemon serves it; taking it schedules it again.
		hctx, ok := d.cluster.accountCtx(a.name)
		if !ok || !d.cluster.holds(a.name) {
			return -1
		}
		ctx = hctx
	}
	inst, ok := a.keeper.Current()
	if !ok {
		d.startLogin(ctx, a)
		return -1
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
	res, err := a.poller.Poll(ctx, inst.Token, inst.WID)
	d.metrics.pollSeconds.Observe(time.Since(now).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return -1
		}
		d.metrics.pollErrors.WithLabelValues(a.name).Inc()
		if d.cluster != nil && errors.Is(err, natsstore.ErrFenced) {
			d.cluster.fenced(ctx, a.name)
		}
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
	a.synced(res.Fresh)
	d.metrics.synced.WithLabelValues(a.name).Add(float64(res.Fresh))
	if res.Fresh > 0 || res.Skipped > 0 {
		d.log.Info("page synced", "account", a.name, "messages", res.Messages, "new", res.Fresh, "actions", res.Actions, "skipped", res.Skipped)
	}
	if res.Messages > 0 {
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

func newLimiter(cfg config.Send) *rate.Limiter {
	lim := rate.Inf
	if cfg.Interval > 0 {
		lim = rate.Every(cfg.Interval)
	}
	return rate.NewLimiter(lim, cfg.Burst)
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

// jitter returns a random duration in [0, d].
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}
