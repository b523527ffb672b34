package session

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

type fixture struct {
	sim    *sim.Server
	api    *upstream.Client
	store  *store.Bolt
	tokens *Tokens
	ctx    context.Context

	mu     sync.Mutex
	events []string
	states chan string
}

func newFixture(t *testing.T, opts sim.Options) *fixture {
	t.Helper()
	srv := sim.NewServer(opts)
	t.Cleanup(srv.Close)
	api, err := upstream.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return &fixture{sim: srv, api: api, store: st, tokens: NewTokens(api, sim.DefaultAccount, sim.DefaultPassword), ctx: ctx,
		states: make(chan string, 64)}
}

func (f *fixture) keeper(name, wcID string) *Keeper {
	return NewKeeper(f.api, f.tokens, f.store, Options{
		Name: name, WcID: wcID, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		OnEvent: func(e Event) {
			f.mu.Lock()
			f.events = append(f.events, e.Type)
			f.mu.Unlock()
		},
		OnState: func(s string) { f.states <- s },
	})
}

func (f *fixture) eventTypes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// waitState blocks until the keeper reports state.
func (f *fixture) waitState(t *testing.T, state string) {
	t.Helper()
	for {
		select {
		case s := <-f.states:
			if s == state {
				return
			}
		case <-f.ctx.Done():
			t.Fatalf("state %s never reached", state)
		}
	}
}

func TestQRLoginWithSliderAndVerifyCode(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{AutoConfirm: true, LoginScript: []sim.LoginStep{sim.StepSlider, sim.StepVerifyCode}})
	k := f.keeper("shop", "")
	done := make(chan Instance, 1)
	go func() {
		inst, err := k.LoginLoop(f.ctx)
		if err != nil {
			t.Error(err)
		}
		done <- inst
	}()
	f.waitState(t, StateSlider)
	if _, detail := k.State(); detail == "" {
		t.Error("the slider URL is not shown in the state")
	}
	f.waitState(t, StateNeedsCode)
	if k.SubmitCode("000000") == false {
		t.Fatal("keeper not waiting for a code")
	}
	// A wrong code is refused, and the keeper asks for the code again.
	f.waitState(t, StateNeedsCode)
	if _, detail := k.State(); detail != "验证码错误" {
		t.Errorf("detail after a wrong code = %q", detail)
	}
	if !k.SubmitCode(sim.DefaultVerifyCode) {
		t.Fatal("keeper not waiting for a code")
	}
	inst := <-done
	if inst.WID == "" || inst.WcID == "" {
		t.Fatalf("instance = %+v", inst)
	}
	acct, _ := f.store.Account(f.ctx, "shop")
	if acct.WID != inst.WID || acct.WcID != inst.WcID {
		t.Errorf("stored %+v, instance %+v", acct, inst)
	}
	ev := f.eventTypes()
	if !slices.Contains(ev, EventNeedsScan) || !slices.Contains(ev, EventNeedsCode) || ev[len(ev)-1] != EventOnline {
		t.Errorf("events = %v", ev)
	}
}

func TestStoredInstanceIsReusedThenSecondLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{AutoConfirm: true, NoSeed: true})
	first := f.keeper("shop", "")
	inst, err := first.LoginLoop(f.ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A new keeper over the same store takes the stored instance: no new
	// login at the upstream.
	again := f.keeper("shop", "")
	got, err := again.LoginLoop(f.ctx)
	if err != nil || got.WID != inst.WID {
		t.Fatalf("reuse: %+v, %v; want wId %s", got, err, inst.WID)
	}
	if state, _, wcID := again.Brief(); state != StateOnline || wcID != inst.WcID {
		t.Fatalf("Brief online: %s, wcId %q; want online, %s", state, wcID, inst.WcID)
	}

	// Once the instance is kicked, Check notices, and the next login goes
	// through /secondLogin with the known wcId: a new wId, no QR code.
	if err := f.sim.Kick(inst.WID); err != nil {
		t.Fatal(err)
	}
	online, err := again.Check(f.ctx, got)
	if online || err != nil {
		t.Fatalf("Check after a kick = %v, %v", online, err)
	}
	if _, ok := again.Current(); ok {
		t.Fatal("a kicked instance is still current")
	}
	if state, _, wcID := again.Brief(); state == StateOnline || wcID != "" {
		t.Fatalf("Brief of a kicked instance: %s, wcId %q", state, wcID)
	}
	next, err := again.LoginLoop(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next.WID == inst.WID || next.WcID != inst.WcID || next.Gen <= got.Gen {
		t.Fatalf("after the kick: %+v, before %+v", next, got)
	}
	if p := f.sim.PendingScans(); len(p) != 0 {
		t.Errorf("a QR code was issued: %v", p)
	}
	// A stale report about the old instance does not touch the new one.
	again.ReportOffline(got.Gen)
	if again.TakeSuspicion(next.Gen) {
		t.Error("a report about the old instance counts against the new one")
	}
	ev := f.eventTypes()
	if n := count(ev, EventKicked); n != 1 {
		t.Errorf("kicked %d times in %v", n, ev)
	}
}

func count(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestFrozenMemberIsReported(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{Members: []sim.Member{{Account: sim.DefaultAccount, Password: sim.DefaultPassword, Status: 1}}})
	_, err := f.tokens.Token(f.ctx)
	if err == nil || err.Error() != "session: member login: the API account is frozen" {
		t.Fatalf("err = %v", err)
	}
}
