package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuffer) Reset()         { s.mu.Lock(); defer s.mu.Unlock(); s.b.Reset() }

// TestSecretsNeverShow sets secrets in the environment, runs the daemon with
// debug logging through a failed and a good login, and looks for them in
// the log, the status API, the metrics and the errors.
func TestSecretsNeverShow(t *testing.T) {
	t.Parallel()
	const password, adminToken, appSecret = "pw-7f3a9c51e2", "adm-0c4b8d27f1", "as-93e1b7c0a4"
	srv := sim.NewServer(sim.Options{AutoConfirm: true, NoSeed: true,
		Members: []sim.Member{{Account: "ops", Password: password}},
		AppKeys: map[string]string{"key-1": appSecret}})
	defer srv.Close()
	env := map[string]string{"WK_PASSWORD": password, "ADMIN_TOKEN": adminToken, "APP_SECRET": appSecret}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yaml"), greetRules)
	text := fmt.Sprintf(`state_dir: %q
upstream:
  base_url: %q
  account: ops
  password: ${WK_PASSWORD}
accounts: [{name: shop}]
sessions:
  - name: cloud
    kind: appkey
    base_url: %q
    app_key: key-1
    app_secret: ${APP_SECRET}
  - name: wrong
    kind: appkey
    base_url: %q
    app_key: key-2
    app_secret: "${APP_SECRET}x"
rules: [%q]
admin:
  listen: "127.0.0.1:0"
  token: ${ADMIN_TOKEN}
log: {level: debug}
`, filepath.Join(dir, "state"), srv.URL, srv.URL, srv.URL, filepath.Join(dir, "rules.yaml"))
	cfg, err := config.Parse("finderbot.yaml", []byte(text), lookup)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := NewLogger(&logs, cfg.Log)
	d, err := New(cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Keeper("shop").Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SessionToken(ctx, "cloud"); err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	_, wrongErr := d.SessionToken(short, "wrong") // its login keeps failing
	stop()

	var seen []string
	seen = append(seen, logs.String(), fmt.Sprintf("%+v %#v", cfg, cfg), fmt.Sprint(wrongErr))
	base := "http://" + d.AdminAddr()
	for _, path := range []string{"/api/status", "/metrics", "/api/dead-letters"} {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s with the token = %d", path, resp.StatusCode)
		}
		seen = append(seen, string(body))
	}
	// A config error that involves a secret names the key, not the value.
	_, cfgErr := config.Parse("finderbot.yaml", []byte(strings.Replace(text, "token: ${ADMIN_TOKEN}", "token: ${ADMIN_TOKEN}\n  bogus: 1", 1)), lookup)
	if cfgErr == nil || !strings.Contains(cfgErr.Error(), "admin.bogus: unknown key") {
		t.Errorf("config error = %v", cfgErr)
	}
	seen = append(seen, fmt.Sprint(cfgErr))
	if !strings.Contains(logs.String(), "app-key login failed") {
		t.Errorf("the failing login was not logged; log:\n%s", logs.String())
	}
	for _, s := range seen {
		for _, secret := range []string{password, adminToken, appSecret} {
			if strings.Contains(s, secret) {
				t.Fatalf("secret %q shows in:\n%s", secret, s)
			}
		}
	}
	if member := srv.MemberToken("ops"); member == "" || strings.Contains(logs.String(), member) {
		t.Errorf("the member token (%q) shows in the log", member)
	}
}

func TestAdminRequiresTheTokenWhenSet(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	h.d.Close()
	h.cfg.Admin.Token = "t0k3n"
	h.start()
	base := "http://" + h.d.AdminAddr()
	for path, want := range map[string]int{"/healthz": 200, "/api/status": 401, "/metrics": 401} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without the token = %d, want %d", path, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequest("GET", base+"/api/status", nil)
	req.Header.Set("Authorization", "Bearer t0k3n")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /api/status with the token = %d", resp.StatusCode)
	}
}
