package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
)

// TokenAPI is what a token session needs of the mobile-login API (seed 000).
type TokenAPI interface {
	MobileLogin(ctx context.Context, req upstream.MobileLoginRequest) (*upstream.MobileLogin, error)
	Refresh(ctx context.Context, accessToken, refreshToken string) (*upstream.Token, error)
	CheckLoginStatus(ctx context.Context, accessToken, deviceNumber string) (*upstream.LoginStatus, error)
}

var _ TokenAPI = (*upstream.TokenAuth)(nil)

// TokenOptions configure a token session.
type TokenOptions struct {
	// Name is the session's name.
	Name string
	// Login is the /auth/mobile/login request; ValidateNo, when empty, is
	// asked of a person (an event, the admin API, `finderbot login`).
	Login upstream.MobileLoginRequest
	// DeviceNumber is checked with /wx/pc/check-login-status to learn when
	// another device took the login; empty disables the check.
	DeviceNumber string
	// RefreshMargin is how long before the access token expires it is
	// refreshed; a random part of up to half of it is added, so that many
	// sessions do not refresh at once (default 5m).
	RefreshMargin time.Duration
	// CheckInterval is how often the login is checked (default 1m).
	CheckInterval time.Duration
	// MinBackoff and MaxBackoff bound the pause after failures.
	MinBackoff, MaxBackoff time.Duration
	// Clock is the time source (default the wall clock).
	Clock Clock
	Hooks
}

// TokenSession keeps an access/refresh-token login (seed 000) alive: it
// refreshes the access token ahead of its expiry, notices when another
// device takes the login, and logs in again, asking a person for the SMS
// code when none is configured.
type TokenSession struct {
	life
	api   TokenAPI
	store store.Store
	opts  TokenOptions
}

var _ Session = (*TokenSession)(nil)

// NewTokenSession returns a token session; Run keeps it alive.
func NewTokenSession(api TokenAPI, st store.Store, opts TokenOptions) *TokenSession {
	if opts.RefreshMargin <= 0 {
		opts.RefreshMargin = 5 * time.Minute
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = time.Minute
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
	return &TokenSession{life: newLife(opts.Name, KindToken, opts.Hooks), api: api, store: st, opts: opts}
}

// Run keeps the session alive until ctx is done.
func (s *TokenSession) Run(ctx context.Context) error {
	st, err := s.store.Session(ctx, s.name)
	if err != nil {
		return err
	}
	hide(s.hooks.Secrets, st.Access.Value, st.Refresh.Value)
	clock := s.opts.Clock
	failures := 0
	fail := func(err error) bool {
		failures++
		wait := backoff(s.opts.MinBackoff, s.opts.MaxBackoff, failures)
		s.log.Warn("session call failed", "err", err, "retry_in", wait)
		s.setState(StateBackingOff, err.Error())
		s.emit(EventFailed, err.Error(), nil)
		return waitSaying(ctx, clock, wait, s.wake, s.log, "waiting before the next login attempt")
	}
	var refreshAt, checkAt time.Time
	schedule := func() {
		m := s.opts.RefreshMargin
		refreshAt = st.Access.Expire.Add(-m - rand.N(m/2+1))
	}
	if st.Access.Value != "" {
		s.setToken(st.Access.Value)
		s.setState(StateOnline, "")
		schedule()
	}
	for ctx.Err() == nil {
		now := clock.Now()
		if !st.Refresh.Valid(now) && !st.Access.Valid(now) {
			s.setToken("")
			st, err = s.login(ctx)
			if err != nil {
				if ctx.Err() != nil || !fail(err) {
					break
				}
				continue
			}
			failures = 0
			schedule()
			checkAt = clock.Now().Add(s.opts.CheckInterval)
			continue
		}
		if !now.Before(refreshAt) {
			if err := s.fence(); err != nil {
				// A refresh rotates the tokens: made by a daemon that no
				// longer holds the session, it would log its holder out.
				return err
			}
			s.setState(StateRefreshing, "")
			tok, err := s.api.Refresh(ctx, st.Access.Value, st.Refresh.Value)
			switch {
			case err == nil:
				st.Access = store.Token{Value: tok.Value, Expire: tok.Expire}
				if err := s.store.SaveSession(ctx, s.name, st); err != nil {
					s.log.Error("cannot store the refreshed token", "err", err)
				}
				s.setToken(tok.Value)
				s.setState(StateOnline, "")
				s.emit(EventRefreshed, "access token refreshed", map[string]string{"expire": tok.Expire.Format(time.RFC3339)})
				failures = 0
				schedule()
			case isRefusal(err):
				s.expire(ctx, &st, fmt.Sprintf("the refresh was refused: %v", err))
			default:
				if !fail(err) {
					return nil
				}
			}
			continue
		}
		if s.opts.DeviceNumber != "" && !now.Before(checkAt) {
			checkAt = now.Add(s.opts.CheckInterval)
			status, err := s.api.CheckLoginStatus(ctx, st.Access.Value, s.opts.DeviceNumber)
			switch {
			case err == nil && !status.IsLogin:
				s.setToken("")
				s.setState(StateKicked, "another device took the login")
				s.emit(EventKicked, "another device took the login", map[string]string{"last_login_time": status.LastLoginTime.Format(time.RFC3339)})
				st = store.SessionState{}
				s.store.SaveSession(ctx, s.name, st)
			case errors.Is(err, upstream.ErrUnauthorized):
				refreshAt = now // the access token is dead: refresh at once
			case err != nil && ctx.Err() == nil:
				s.log.Warn("login check failed", "err", err)
			}
			continue
		}
		next := refreshAt
		if s.opts.DeviceNumber != "" && checkAt.Before(next) {
			next = checkAt
		}
		if !sleepOn(ctx, clock, next.Sub(now)) {
			break
		}
	}
	s.setToken("")
	return nil
}

// expire drops tokens that no longer work.
func (s *TokenSession) expire(ctx context.Context, st *store.SessionState, why string) {
	s.setToken("")
	s.setState(StateExpired, why)
	s.emit(EventOffline, why, nil)
	*st = store.SessionState{}
	if err := s.store.SaveSession(ctx, s.name, *st); err != nil {
		s.log.Error("cannot store the session", "err", err)
	}
}

// login logs in with the configured code, or one asked of a person.
func (s *TokenSession) login(ctx context.Context) (store.SessionState, error) {
	req := s.opts.Login
	if req.ValidateNo == "" {
		s.emit(EventNeedsCode, "an SMS code is needed to log in", map[string]string{"mobile": req.Mobile})
		s.log.Warn("an SMS code is needed to log in; give it with `finderbot login` or the admin API", "session", s.name)
		code, err := s.waitCode(ctx, "an SMS code is needed")
		if err != nil {
			return store.SessionState{}, err
		}
		req.ValidateNo = code
	}
	hide(s.hooks.Secrets, req.ValidateNo)
	if err := s.fence(); err != nil {
		return store.SessionState{}, err
	}
	s.setState(StateLoggingIn, "")
	res, err := s.api.MobileLogin(ctx, req)
	if err != nil {
		return store.SessionState{}, err
	}
	hide(s.hooks.Secrets, res.AccessToken.Value, res.RefreshToken.Value)
	st := store.SessionState{
		Access:   store.Token{Value: res.AccessToken.Value, Expire: res.AccessToken.Expire},
		Refresh:  store.Token{Value: res.RefreshToken.Value, Expire: res.RefreshToken.Expire},
		LoggedIn: s.opts.Clock.Now(),
	}
	if err := s.store.SaveSession(ctx, s.name, st); err != nil {
		return store.SessionState{}, err
	}
	s.setToken(st.Access.Value)
	s.setState(StateOnline, "")
	s.emit(EventOnline, "logged in", nil)
	return st, nil
}

// isRefusal reports whether err is the upstream refusing (as opposed to
// being unreachable): retrying the same request will not help.
func isRefusal(err error) bool {
	var ue *upstream.Error
	return errors.As(err, &ue) || errors.Is(err, upstream.ErrUnauthorized)
}
