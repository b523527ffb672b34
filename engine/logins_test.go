package engine

import (
	"bytes"
	"errors"
	"image/png"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/session"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// findLogin returns the named entry of Logins.
func findLogin(d *Daemon, name string) (session.LoginState, bool) {
	for _, ls := range d.Logins() {
		if ls.Name == name {
			return ls, true
		}
	}
	return session.LoginState{}, false
}

// loginOf returns the named entry of Logins, or fails the test.
func loginOf(t *testing.T, d *Daemon, name string) session.LoginState {
	t.Helper()
	ls, ok := findLogin(d, name)
	if !ok {
		t.Fatalf("Logins has no %s", name)
	}
	return ls
}

// TestLoginsForABrowser runs the real daemon on a simulator where nobody
// scans at once. Account shop waits for its scan: Logins shows the QR
// code, LoginQR draws it as a PNG that decodes, and the simulator's
// confirmation (its control API) brings it online. Account home meets a
// slider check and then the verify code after its scan: Logins shows each
// step while it lasts, read as the state changes, and the code given
// through SubmitCode brings it online.
func TestLoginsForABrowser(t *testing.T) {
	t.Parallel()
	h := prepareHarness(t, sim.Options{NoSeed: true}, "shop", "home")
	var mu sync.Mutex
	seen := map[string]session.LoginState{} // name/state -> Logins entry at that moment
	changed := make(chan struct{}, 1)
	h.beforeStart = func(d *Daemon) {
		d.watchState = func(name, state string) {
			// Called as the state changes, before the session moves on;
			// not on the test's goroutine, so it must not fail the test.
			ls, _ := findLogin(d, name)
			mu.Lock()
			seen[name+"/"+state] = ls
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
	h.start()
	await := func(key string) session.LoginState {
		t.Helper()
		for {
			mu.Lock()
			ls, ok := seen[key]
			mu.Unlock()
			if ok {
				return ls
			}
			select {
			case <-changed:
			case <-h.ctx.Done():
				t.Fatalf("%s never seen", key)
			}
		}
	}
	wIDOf := func(ls session.LoginState) string {
		_, wID, ok := strings.Cut(ls.QR, "/_sim/qr/")
		if !ok {
			t.Fatalf("QR %q is not the simulator's", ls.QR)
		}
		return wID
	}

	await("shop/" + session.StateNeedsScan)
	await("home/" + session.StateNeedsScan)
	shop := loginOf(t, h.d, "shop")
	if shop.QR == "" || !shop.QRExpires.After(time.Now()) || shop.Online || shop.Kind != session.KindWkteam {
		t.Fatalf("shop waiting for its scan: %+v", shop)
	}
	pngData, err := h.d.LoginQR("shop")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(pngData))
	if err != nil || img.Bounds().Dx() < 21 {
		t.Fatalf("LoginQR is no QR code image: %v, %v", err, img)
	}
	if err := h.d.StartLogin(h.ctx, "shop"); !errors.Is(err, ErrNotNow) {
		t.Errorf("StartLogin while waiting for a scan: %v", err)
	}

	// The scan, confirmed through the simulator's control API.
	resp, err := http.Post(h.sim.URL+"/_sim/confirm", "application/json", strings.NewReader(`{"wId":"`+wIDOf(shop)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /_sim/confirm: %s %s", resp.Status, readAll(t, resp))
	}
	resp.Body.Close()
	h.online("shop")
	if ls := loginOf(t, h.d, "shop"); !ls.Online || ls.State != session.StateOnline || ls.QR != "" {
		t.Errorf("shop online: %+v", ls)
	}
	if _, err := h.d.LoginQR("shop"); !errors.Is(err, ErrNotNow) {
		t.Errorf("LoginQR of an account online: %v", err)
	}
	if err := h.d.StartLogin(h.ctx, "shop"); !errors.Is(err, ErrNotNow) {
		t.Errorf("StartLogin of an account online: %v", err)
	}

	// home: the slider, then the verify code.
	homeWID := wIDOf(loginOf(t, h.d, "home"))
	if err := h.sim.ScriptLogin(homeWID, sim.StepSlider, sim.StepVerifyCode); err != nil {
		t.Fatal(err)
	}
	if err := h.d.SubmitCode("home", "123456"); !errors.Is(err, ErrNotNow) {
		t.Errorf("a code nobody waits for: %v", err)
	}
	if err := h.sim.ConfirmScan(homeWID); err != nil {
		t.Fatal(err)
	}
	slider := await("home/" + session.StateSlider)
	if !strings.Contains(slider.SliderURL, "/_sim/captcha/") || slider.QR != "" || slider.AwaitsVerifyCode || slider.Online {
		t.Errorf("home at the slider: %+v", slider)
	}
	code := await("home/" + session.StateNeedsCode)
	if !code.AwaitsVerifyCode || code.SliderURL != "" || code.Online {
		t.Errorf("home at the verify code: %+v", code)
	}
	if err := h.d.SubmitCode("home", " "+sim.DefaultVerifyCode+"\n"); err != nil {
		t.Fatal(err)
	}
	h.online("home")
	if ls := loginOf(t, h.d, "home"); !ls.Online || ls.AwaitsVerifyCode {
		t.Errorf("home online: %+v", ls)
	}

	for name, err := range map[string]error{
		"LoginQR":    func() error { _, err := h.d.LoginQR("nobody"); return err }(),
		"StartLogin": h.d.StartLogin(h.ctx, "nobody"),
		"SubmitCode": h.d.SubmitCode("nobody", "123456"),
	} {
		if !errors.Is(err, ErrUnknown) {
			t.Errorf("%s of an unknown name: %v", name, err)
		}
	}
	if err := h.d.SubmitCode("home", "  "); err == nil {
		t.Error("an empty code was taken")
	}
}
