package session

import (
	"context"
	"fmt"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
)

// AppKeyAPI is what an app-key session needs of the API of seed 001.
type AppKeyAPI interface {
	Login(ctx context.Context, req upstream.AppKeyLoginRequest) (string, error)
}

var _ AppKeyAPI = (*upstream.AppKeyAuth)(nil)

// AppKeyOptions configure an app-key session.
type AppKeyOptions struct {
	// Name is the session's name.
	Name string
	// Login is the /api-cloud/auth/login request.
	Login upstream.AppKeyLoginRequest
	// TTL is how long a token lives (one day).
	TTL time.Duration
	// RenewMargin is how long before the token's end it is renewed
	// (default 1h).
	RenewMargin time.Duration
	// Holder names this daemon in the lease on the key.
	Holder string
	// MinBackoff and MaxBackoff bound the pause after failures.
	MinBackoff, MaxBackoff time.Duration
	// Clock is the time source (default the wall clock).
	Clock Clock
	Hooks
}

// AppKeySession keeps an app-key login (seed 001) alive: a token valid for
// one day, renewed before it ends. A new login kicks the previous holder of
// the key, so the daemon keeps one AppKeySession per key, shared by every
// configured session that names it, and holds a lease on the key in the
// store: once a store is shared between daemons, the one without the lease
// waits, and says so, instead of kicking the other.
type AppKeySession struct {
	life
	api   AppKeyAPI
	store store.Store
	opts  AppKeyOptions
}

var _ Session = (*AppKeySession)(nil)

// NewAppKeySession returns an app-key session; Run keeps it alive.
func NewAppKeySession(api AppKeyAPI, st store.Store, opts AppKeyOptions) *AppKeySession {
	if opts.TTL <= 0 {
		opts.TTL = upstream.AppKeyTokenTTL
	}
	if opts.RenewMargin <= 0 || opts.RenewMargin >= opts.TTL {
		opts.RenewMargin = min(time.Hour, opts.TTL/4)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = RealClock()
	}
	return &AppKeySession{life: newLife(opts.Name, KindAppKey, opts.Hooks), api: api, store: st, opts: opts}
}

func (s *AppKeySession) leaseKey() string { return "appkey:" + s.opts.Login.AppKey }

// Run keeps the session alive until ctx is done.
func (s *AppKeySession) Run(ctx context.Context) error {
	clock := s.opts.Clock
	st, err := s.store.Session(ctx, s.leaseKey())
	if err != nil {
		return err
	}
	// The lease outlives a renewal period, so a daemon that stops is
	// replaced once its lease runs out.
	leaseTTL := s.opts.RenewMargin * 2
	failures := 0
	waitingFor := ""
	for ctx.Err() == nil {
		now := clock.Now()
		lease, err := s.store.Lease(ctx, s.leaseKey(), s.opts.Holder, leaseTTL)
		if err != nil {
			s.log.Error("cannot take the lease on the app key", "err", err)
			if !sleepOn(ctx, clock, backoff(s.opts.MinBackoff, s.opts.MaxBackoff, 1)) {
				break
			}
			continue
		}
		if lease.Holder != s.opts.Holder {
			s.setToken("")
			if lease.Holder != waitingFor {
				waitingFor = lease.Holder
				msg := fmt.Sprintf("the app key is held by %s until %s; waiting so as not to kick it", lease.Holder, lease.Until.Format(time.RFC3339))
				s.log.Warn(msg)
				s.setState(StateWaiting, msg)
			}
			if !waitSaying(ctx, clock, lease.Until.Sub(now)+time.Second, nil, s.log, "waiting for the app key's lease", "holder", lease.Holder) {
				break
			}
			continue
		}
		waitingFor = ""
		renewAt := st.Access.Expire.Add(-s.opts.RenewMargin)
		if !st.Access.Valid(now) || !now.Before(renewAt) {
			renewing := st.Access.Valid(now)
			if renewing {
				s.setState(StateRefreshing, "")
			} else {
				s.setState(StateLoggingIn, "")
			}
			if err := s.fence(); err != nil {
				return err // a new login kicks the key's holder
			}
			tok, err := s.api.Login(ctx, s.opts.Login)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				failures++
				wait := backoff(s.opts.MinBackoff, s.opts.MaxBackoff, failures)
				s.log.Warn("app-key login failed", "err", err, "retry_in", wait)
				s.setState(StateBackingOff, err.Error())
				s.emit(EventFailed, err.Error(), nil)
				if !waitSaying(ctx, clock, wait, s.wake, s.log, "waiting before the next login attempt") {
					break
				}
				continue
			}
			failures = 0
			st = store.SessionState{Access: store.Token{Value: tok, Expire: now.Add(s.opts.TTL)}, LoggedIn: now}
			if err := s.store.SaveSession(ctx, s.leaseKey(), st); err != nil {
				s.log.Error("cannot store the app-key token", "err", err)
			}
			s.setToken(tok)
			s.setState(StateOnline, "")
			if renewing {
				s.emit(EventRefreshed, "app-key token renewed", map[string]string{"expire": st.Access.Expire.Format(time.RFC3339)})
			} else {
				s.emit(EventOnline, "logged in", nil)
			}
			continue
		}
		if state, _ := s.State(); state != StateOnline {
			s.setToken(st.Access.Value)
			s.setState(StateOnline, "")
			s.emit(EventOnline, "token from the store", nil)
		}
		// Wake for the renewal, and in time to renew the lease.
		next := min(renewAt.Sub(now), leaseTTL/2)
		if !sleepOn(ctx, clock, next) {
			break
		}
	}
	s.setToken("")
	return nil
}
