package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Clock is the time source of the token and app-key sessions, so that tests
// can move time by hand.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock is the wall clock.
func RealClock() Clock { return realClock{} }

// More states, shared by every kind of session.
const (
	StateRefreshing = "refreshing"
	StateKicked     = "kicked"
	StateExpired    = "expired"
	StateWaiting    = "waiting_for_lease"
)

// More event types.
const (
	EventRefreshed = "session.refreshed"
)

// Kinds of session.
const (
	KindWkteam = "wkteam"
	KindToken  = "token"
	KindAppKey = "appkey"
)

// ErrNotOnline is returned by Token while a session has no valid token.
var ErrNotOnline = errors.New("session: not online")

// Session is a login the daemon keeps alive. Every kind shares one life
// cycle: logged out → logging in → online → refreshing → kicked or expired →
// backing off → logging in.
type Session interface {
	// Name is the session's name in the configuration.
	Name() string
	// Kind is KindWkteam, KindToken or KindAppKey.
	Kind() string
	// State returns the state and a detail for people.
	State() (state, detail string)
	// Token returns the session's current token; the session, not the
	// caller, refreshes it.
	Token(ctx context.Context) (string, error)
	// SubmitCode hands over a code a person read (SMS, phone screen) when
	// the session waits for one; it reports whether it was waiting.
	SubmitCode(code string) bool
	// Login returns what a person needs to see of the login.
	Login() LoginState
	// LoginNow cuts short the pause after a failed login; it reports
	// false when the session is not pausing.
	LoginNow() bool
}

// Secrets learns values that must never be shown: the tokens a session
// obtains and the codes people give it. *redact.Set is one.
type Secrets interface {
	AddTransient(values ...string)
}

// hide hands values to secrets, when there is one.
func hide(secrets Secrets, values ...string) {
	if secrets != nil {
		secrets.AddTransient(values...)
	}
}

// Hooks are the callbacks every kind of session reports through.
type Hooks struct {
	// OnEvent is called for every session event, in order.
	OnEvent func(Event)
	// OnState is called with every state change.
	OnState func(state string)
	// Logger receives the session's log.
	Logger *slog.Logger
	// Secrets learns every token the session obtains and every code it
	// is given, before they can reach a log line or an error.
	Secrets Secrets
	// Fence, when set, is asked right before each call that logs in or
	// refreshes whether this daemon still holds the session; when it
	// answers an error the call is not made.
	Fence func() error
}

// life is the state and event plumbing shared by the token and app-key
// sessions.
type life struct {
	name, kind string
	hooks      Hooks
	log        *slog.Logger

	mu     sync.Mutex
	state  string
	detail string
	token  string
	ready  chan struct{} // closed while token is set
	codes  chan string
	wake   chan struct{} // cuts a backoff short (LoginNow)
}

func newLife(name, kind string, hooks Hooks) life {
	if hooks.Logger == nil {
		hooks.Logger = slog.New(slog.DiscardHandler)
	}
	return life{name: name, kind: kind, hooks: hooks, log: hooks.Logger.With("session", name, "kind", kind),
		state: StateLoggedOut, codes: make(chan string, 1), ready: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// Login returns what a person needs to see of the session's login: its
// state, whether it waits for an SMS code, whether it is online.
func (l *life) Login() LoginState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LoginState{Name: l.name, Kind: l.kind, State: l.state, Detail: l.detail,
		AwaitsSMSCode: l.kind == KindToken && l.state == StateNeedsCode, Online: l.token != ""}
}

// LoginNow cuts short the pause after a failed login or renewal, so that
// the next attempt begins at once. It reports false, doing nothing, when
// the session is not pausing.
func (l *life) LoginNow() bool {
	if st, _ := l.State(); st != StateBackingOff {
		return false
	}
	wakeUp(l.wake)
	return true
}

// Name returns the session's name.
func (l *life) Name() string { return l.name }

// Kind returns the session's kind.
func (l *life) Kind() string { return l.kind }

// State returns the session's state and a detail for people.
func (l *life) State() (string, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state, l.detail
}

// Token returns the current token. While there is none (logging in,
// refreshing after a failure, waiting for a code) it waits for one until
// ctx is done: callers such as plugin calls carry their own deadline.
func (l *life) Token(ctx context.Context) (string, error) {
	for {
		l.mu.Lock()
		tok, ready := l.token, l.ready
		l.mu.Unlock()
		if tok != "" {
			return tok, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %s", ErrNotOnline, l.name)
		}
	}
}

// SubmitCode hands over a code a person read, when the session waits for
// one; it reports whether it was waiting.
func (l *life) SubmitCode(code string) bool {
	hide(l.hooks.Secrets, code)
	if st, _ := l.State(); st != StateNeedsCode {
		return false
	}
	select {
	case l.codes <- code:
		return true
	default:
		return false
	}
}

// fence fails when the daemon cannot prove it holds the session.
func (l *life) fence() error {
	if l.hooks.Fence == nil {
		return nil
	}
	if err := l.hooks.Fence(); err != nil {
		return fmt.Errorf("session: no login or refresh for %s: %w", l.name, err)
	}
	return nil
}

func (l *life) setState(state, detail string) {
	if state == StateBackingOff {
		drain(l.wake)
	}
	l.mu.Lock()
	changed := l.state != state || l.detail != detail
	l.state, l.detail = state, detail
	l.mu.Unlock()
	if changed && l.hooks.OnState != nil {
		l.hooks.OnState(state)
	}
}

func (l *life) setToken(tok string) {
	hide(l.hooks.Secrets, tok)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.token == "" && tok != "":
		close(l.ready)
	case l.token != "" && tok == "":
		l.ready = make(chan struct{})
	}
	l.token = tok
}

func (l *life) emit(typ, msg string, fields map[string]string) {
	if l.hooks.OnEvent != nil {
		l.hooks.OnEvent(Event{Type: typ, Session: l.name, Message: msg, Fields: fields})
	}
}

// waitCode waits for a code from SubmitCode.
func (l *life) waitCode(ctx context.Context, why string) (string, error) {
	l.setState(StateNeedsCode, why)
	select {
	case c := <-l.codes:
		return c, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// sleepOn waits d on clock, or until ctx is done.
func sleepOn(ctx context.Context, clock Clock, d time.Duration) bool {
	return sleepOrWake(ctx, clock, d, nil)
}

// sleepOrWake waits d on clock, or until wake asks it to stop early; it
// returns false when ctx ends first.
func sleepOrWake(ctx context.Context, clock Clock, d time.Duration, wake <-chan struct{}) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-clock.After(d):
		return true
	case <-wake:
		return true
	case <-ctx.Done():
		return false
	}
}
