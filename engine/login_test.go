package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

func TestLoginAtTheTerminalThenRunStartsOnline(t *testing.T) {
	t.Parallel()
	srv := sim.NewServer(sim.Options{AutoConfirm: true, NoSeed: true, LoginScript: []sim.LoginStep{sim.StepVerifyCode}})
	defer srv.Close()
	cfgPath := writeLoginConfig(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var out syncBuffer // Login's prompts and its log share it, from two goroutines
	if err := Login(ctx, cfgPath, "shop", strings.NewReader(sim.DefaultVerifyCode+"\n"), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "enter the code") || !strings.Contains(out.String(), "shop is online") {
		t.Errorf("terminal:\n%s", out.String())
	}
	out.Reset()
	if err := Login(ctx, cfgPath, "crm", strings.NewReader(sim.DefaultSMSCode+"\n"), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if err := Login(ctx, cfgPath, "nobody", strings.NewReader(""), &out); err == nil || !strings.Contains(err.Error(), "configured: crm, shop") {
		t.Errorf("unknown name: %v", err)
	}

	// The daemon starts with both logins: no QR code, no SMS code.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(cfg.StateDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	acct, _ := st.Account(ctx, "shop")
	crm, _ := st.Session(ctx, "crm")
	st.Close()
	if acct.WID == "" || crm.Access.Value == "" {
		t.Fatalf("saved: account %+v, crm %+v", acct, crm)
	}
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	inst, err := d.Keeper("shop").Wait(ctx)
	if err != nil || inst.WID != acct.WID {
		t.Fatalf("run started with %+v, %v; the saved wId is %s", inst, err, acct.WID)
	}
	if tok, err := d.SessionToken(ctx, "crm"); err != nil || tok != crm.Access.Value {
		t.Errorf("crm token = %q, %v", tok, err)
	}
}

// TestLoginHidesTheCodeItWasGiven logs a token session in at the terminal
// through an upstream that echoes the first login request, SMS code
// included, in its error: the terminal shows the failure with the code
// redacted, and the login succeeds with the code typed again.
func TestLoginHidesTheCodeItWasGiven(t *testing.T) {
	t.Parallel()
	const code = "839271"
	srv := sim.NewServer(sim.Options{NoSeed: true, SMSCode: code})
	defer srv.Close()
	echo := newEchoUpstream(t, srv.URL, map[string]int{"/auth/mobile/login": 1})
	cfgPath := writeLoginConfig(t, echo.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out syncBuffer // Login's prompts and its log share it, from two goroutines
	if err := Login(ctx, cfgPath, "crm", strings.NewReader(code+"\n"+code+"\n"), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), code) || !strings.Contains(out.String(), `Login failed (upstream: /auth/mobile/login: HTTP 403 Forbidden`) ||
		!strings.Contains(out.String(), `\"validateNo\":\"[redacted]\"`) {
		t.Errorf("terminal:\n%s", out.String())
	}
}

// writeLoginConfig writes the configuration of the login tests: the
// account shop and the token session crm at baseURL, no admin listener.
func writeLoginConfig(t *testing.T, baseURL string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yaml"), greetRules)
	cfgPath := filepath.Join(dir, "finderbot.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`state_dir: ./state
upstream: {base_url: %[1]q, account: %[2]q, password: %[3]q}
accounts: [{name: shop}]
sessions:
  - {name: crm, kind: token, base_url: %[1]q, mobile: %[4]q}
rules: [./rules.yaml]
admin: {listen: ""}
`, baseURL, sim.DefaultAccount, sim.DefaultPassword, sim.DefaultMobile))
	return cfgPath
}
