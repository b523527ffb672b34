package session

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// TestKeeperPublishesItsQRCode: while the account waits for a scan, Login
// holds the code's content and when it expires; once scanned, the account
// is online and the code is gone.
func TestKeeperPublishesItsQRCode(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{})
	k := f.keeper("shop", "")
	done := make(chan error, 1)
	go func() { _, err := k.LoginLoop(f.ctx); done <- err }()
	f.waitState(t, StateNeedsScan)
	before := time.Now()
	ls := k.Login()
	pending := f.sim.PendingScans()
	if len(pending) != 1 || !strings.HasSuffix(ls.QR, "/_sim/qr/"+pending[0]) {
		t.Fatalf("Login = %+v; pending scans %v", ls, pending)
	}
	if ls.Name != "shop" || ls.Kind != KindWkteam || ls.State != StateNeedsScan || ls.Online || ls.AwaitsVerifyCode {
		t.Errorf("Login = %+v", ls)
	}
	if !ls.QRExpires.After(before) || ls.QRExpires.After(before.Add(DefaultQRLifetime)) {
		t.Errorf("the code expires at %v; asked at %v", ls.QRExpires, before)
	}
	if err := f.sim.ConfirmScan(pending[0]); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ls := k.Login(); !ls.Online || ls.State != StateOnline || ls.QR != "" || !ls.QRExpires.IsZero() {
		t.Errorf("online: Login = %+v", ls)
	}
}

// TestKeeperPublishesTheSliderAndTheVerifyCode: each step of a login that
// needs a person is in Login while it lasts, and only then. The states are
// read in OnState, before the keeper moves on.
func TestKeeperPublishesTheSliderAndTheVerifyCode(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{AutoConfirm: true, LoginScript: []sim.LoginStep{sim.StepSlider, sim.StepVerifyCode}})
	var mu sync.Mutex
	seen := map[string]LoginState{}
	var k *Keeper
	k = NewKeeper(f.api, f.tokens, f.store, Options{Name: "shop", OnState: func(state string) {
		ls := k.Login()
		mu.Lock()
		seen[state] = ls
		mu.Unlock()
		if state == StateNeedsCode {
			k.SubmitCode(sim.DefaultVerifyCode)
		}
	}})
	if _, err := k.LoginLoop(f.ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	slider, code, online := seen[StateSlider], seen[StateNeedsCode], seen[StateOnline]
	if !strings.Contains(slider.SliderURL, "/_sim/captcha/") || slider.QR != "" || slider.AwaitsVerifyCode {
		t.Errorf("at the slider: %+v", slider)
	}
	if !code.AwaitsVerifyCode || code.SliderURL != "" || code.Online {
		t.Errorf("at the verify code: %+v", code)
	}
	if !online.Online || online.AwaitsVerifyCode || online.SliderURL != "" {
		t.Errorf("online: %+v", online)
	}
}

// TestLoginNowCutsTheBackoffShort: after a failed login the keeper pauses
// (here an hour); LoginNow has it try again at once. It does nothing
// while the keeper is not pausing.
func TestLoginNowCutsTheBackoffShort(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sim.Options{AutoConfirm: true})
	if _, err := f.sim.AddFault(sim.Fault{Endpoint: "/member/login", Kind: sim.FaultRefuse, Count: 1}); err != nil {
		t.Fatal(err)
	}
	k := NewKeeper(f.api, f.tokens, f.store, Options{Name: "shop", MinBackoff: time.Hour, MaxBackoff: time.Hour,
		OnState: func(s string) { f.states <- s }})
	if k.LoginNow() {
		t.Error("LoginNow before any login reported a pause cut short")
	}
	done := make(chan error, 1)
	go func() { _, err := k.LoginLoop(f.ctx); done <- err }()
	f.waitState(t, StateBackingOff)
	if !k.LoginNow() {
		t.Fatal("LoginNow while backing off did nothing")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if k.LoginNow() {
		t.Error("LoginNow while online reported a pause cut short")
	}
}

// TestTokenSessionPublishesItsLogin: a token session waiting for its SMS
// code says so; a wrong code fails the login and the session pauses, which
// LoginNow cuts short (the fake clock never ends the pause by itself).
func TestTokenSessionPublishesItsLogin(t *testing.T) {
	t.Parallel()
	c := newClocked(t)
	rec := newRecorder()
	s := NewTokenSession(c.tokenAPI(t), c.store, TokenOptions{
		Name: "crm", Login: upstream.MobileLoginRequest{Mobile: sim.DefaultMobile, Source: "finderbot"},
		MinBackoff: time.Hour, MaxBackoff: time.Hour, Clock: c.clock,
		Hooks: Hooks{OnEvent: rec.add, OnState: rec.state},
	})
	c.run(t, s.Run)
	rec.waitState(c.ctx, t, s, StateNeedsCode)
	if ls := s.Login(); !ls.AwaitsSMSCode || ls.Online || ls.Kind != KindToken || ls.Name != "crm" {
		t.Fatalf("waiting for the code: %+v", ls)
	}
	s.SubmitCode("000000")
	rec.waitState(c.ctx, t, s, StateBackingOff)
	if ls := s.Login(); ls.AwaitsSMSCode || ls.Online {
		t.Fatalf("after a wrong code: %+v", ls)
	}
	if !s.LoginNow() {
		t.Fatal("LoginNow while backing off did nothing")
	}
	rec.waitState(c.ctx, t, s, StateNeedsCode)
	s.SubmitCode(sim.DefaultSMSCode)
	rec.waitState(c.ctx, t, s, StateOnline)
	if ls := s.Login(); !ls.Online || ls.AwaitsSMSCode {
		t.Fatalf("online: %+v", ls)
	}
	if s.LoginNow() {
		t.Error("LoginNow while online reported a pause cut short")
	}
}
