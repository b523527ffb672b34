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
`, srv.URL, sim.DefaultAccount, sim.DefaultPassword, sim.DefaultMobile))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var out strings.Builder
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
