package session

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// recorder collects events and signals state changes, safe for
// concurrent use.
type recorder struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) add(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func (r *recorder) state(string) {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// waitState blocks until s is in state want.
func (r *recorder) waitState(ctx context.Context, t *testing.T, s Session, want string) {
	t.Helper()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if st, _ := s.State(); st == want {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			st, detail := s.State()
			t.Fatalf("state %s never reached; state %s (%s)", want, st, detail)
		}
	}
}
func (r *recorder) count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// clocked is a simulator and a store on one fake clock.
type clocked struct {
	clock *sim.FakeClock
	sim   *sim.Server
	store *store.Bolt
	ctx   context.Context
}

func newClocked(t *testing.T) *clocked {
	t.Helper()
	clock := sim.NewFakeClock(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
	srv := sim.NewServer(sim.Options{Clock: clock})
	t.Cleanup(srv.Close)
	st, err := store.Open(t.TempDir(), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &clocked{clock: clock, sim: srv, store: st, ctx: ctx}
}

// settle waits until n goroutines wait on the clock: the sessions have done
// everything the current time asks of them.
func (c *clocked) settle(t *testing.T, n int) {
	t.Helper()
	if err := c.clock.BlockUntil(c.ctx, n); err != nil {
		t.Fatalf("sessions never settled: %v", err)
	}
}

// tokenAPI is the simulator's mobile-login API.
func (c *clocked) tokenAPI(t *testing.T) *upstream.TokenAuth {
	t.Helper()
	api, err := upstream.NewTokenAuth(c.sim.URL)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

func (c *clocked) run(t *testing.T, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	go func() { defer close(done); run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestTokenSessionRefreshesBeforeExpiryAndRecovers(t *testing.T) {
	t.Parallel()
	c := newClocked(t)
	api := c.tokenAPI(t)
	rec := newRecorder()
	const device = "pc-1"
	var s *TokenSession
	var autoCode atomic.Bool // answer code requests at once, as a person at the terminal would
	onState := func(state string) {
		rec.state(state)
		if state == StateNeedsCode && autoCode.Load() {
			s.SubmitCode(sim.DefaultSMSCode)
		}
	}
	s = NewTokenSession(api, c.store, TokenOptions{
		Name:          "crm",
		Login:         upstream.MobileLoginRequest{Mobile: sim.DefaultMobile, Source: "finderbot"},
		DeviceNumber:  device,
		RefreshMargin: 5 * time.Minute,
		CheckInterval: time.Minute,
		MinBackoff:    time.Second, MaxBackoff: 10 * time.Second,
		Clock: c.clock,
		Hooks: Hooks{OnEvent: rec.add, OnState: onState},
	})
	c.run(t, s.Run)

	// No code is configured: the session asks for one.
	rec.waitState(c.ctx, t, s, StateNeedsCode)
	if !s.SubmitCode(sim.DefaultSMSCode) {
		t.Fatal("not waiting for a code")
	}
	c.settle(t, 1)
	if rec.count(EventNeedsCode) != 1 || rec.count(EventOnline) != 1 {
		t.Fatalf("events = %+v", rec.events)
	}

	// Six hours in one-minute steps: the access token lives two hours, so
	// it is refreshed about three times, and at every minute the token the
	// session hands out works.
	for i := range 6 * 60 {
		c.clock.Advance(time.Minute)
		c.settle(t, 1)
		tok, err := s.Token(c.ctx)
		if err != nil {
			t.Fatalf("minute %d: %v", i, err)
		}
		if _, err := api.CheckLoginStatus(c.ctx, tok, device); err != nil {
			t.Fatalf("minute %d: the session's token was refused: %v", i, err)
		}
	}
	if n := rec.count(EventRefreshed); n < 3 || n > 4 {
		t.Errorf("%d refreshes in six hours of two-hour tokens", n)
	}

	// Another device takes the login: noticed within one check interval.
	c.sim.KickDevice(sim.DefaultMobile)
	c.clock.Advance(time.Minute)
	rec.waitState(c.ctx, t, s, StateNeedsCode)
	if rec.count(EventKicked) != 1 {
		t.Fatalf("kicked events = %d", rec.count(EventKicked))
	}
	s.SubmitCode(sim.DefaultSMSCode)
	c.settle(t, 1)

	// A dead refresh token leads to a new login at the next refresh.
	autoCode.Store(true)
	st, _ := c.store.Session(c.ctx, "crm")
	c.sim.ExpireToken(st.Refresh.Value)
	for rec.count(EventOnline) < 3 {
		c.clock.Advance(time.Minute)
		c.settle(t, 1)
	}
	if rec.count(EventOffline) != 1 {
		t.Errorf("offline events = %d", rec.count(EventOffline))
	}
}

func TestAppKeySessionsNeverKickEachOther(t *testing.T) {
	t.Parallel()
	c := newClocked(t)
	api, err := upstream.NewAppKeyAuth(c.sim.URL)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	newSession := func(holder string) *AppKeySession {
		return NewAppKeySession(api, c.store, AppKeyOptions{
			Name:   "cloud-" + holder,
			Login:  upstream.AppKeyLoginRequest{AppKey: sim.DefaultAppKey, AppSecret: sim.DefaultAppSecret},
			Holder: holder, RenewMargin: time.Hour,
			Clock: c.clock,
			Hooks: Hooks{OnEvent: rec.add},
		})
	}
	// Two daemons sharing one store, each with a session on the same key.
	a, b := newSession("daemon-a"), newSession("daemon-b")
	c.run(t, a.Run)
	c.settle(t, 1)
	c.run(t, b.Run)
	c.settle(t, 2)
	if st, detail := b.State(); st != StateWaiting {
		t.Fatalf("second holder state = %s (%s)", st, detail)
	}

	// Three days in ten-minute steps: the one-day token is renewed before
	// it ends, and the waiting holder never logs in.
	for i := range 3 * 24 * 6 {
		c.clock.Advance(10 * time.Minute)
		c.settle(t, 2)
		tok, err := a.Token(c.ctx)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if state := c.sim.AppKeyTokenState(tok); state != sim.TokenValid {
			t.Fatalf("step %d (%s): token is %s", i, c.clock.Now().Format(time.RFC3339), state)
		}
	}
	logins := c.sim.AppKeyLogins(sim.DefaultAppKey)
	if logins < 3 || logins > 4 {
		t.Errorf("%d logins in three days of one-day tokens", logins)
	}
	if n := rec.count(EventRefreshed); n != logins-1 {
		t.Errorf("%d renewals for %d logins", n, logins)
	}
	short, cancel := context.WithCancel(c.ctx)
	cancel()
	if _, err := b.Token(short); err == nil {
		t.Error("the waiting holder has a token")
	}
}
