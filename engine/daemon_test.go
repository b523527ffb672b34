package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

const (
	seedStranger = "fv1_cb68e6952228400339575a83b40f5a12cdfae818b3164eb999b609e90e139d0a@findermsgstranger"
	seedFinder   = "v2_060000231003b20faec8c6e18f10c7d6c903ec3db0776955d3d97c6b329d6aa58693bcdb7ad1@finder"
	seedSession  = "cb68e6952228400339575a83b40f5a12cdfae818b3164eb999b609e90e139d0a@findermsg"
)

// greetRules answers "哈喽" and echoes messages starting with "echo ", so a
// test can send a barrier message and know every earlier reply is out.
const greetRules = `rules:
  - name: greet
    when: msg.Text == "哈喽" && !msg.FromSelf
    actions:
      - reply: "你好！有什么可以帮您？"
  - name: echo
    when: msg.Text startsWith "echo " && !msg.FromSelf
    actions:
      - reply: "{{ msg.Text }}"
`

type harness struct {
	t      *testing.T
	sim    *sim.Server
	cfg    *config.Config
	opts   Options // for the next start
	d      *Daemon
	ctx    context.Context
	cancel context.CancelFunc
	// beforeStart, when set, sees each daemon between New and Start.
	beforeStart func(*Daemon)
}

// newHarness starts a simulated upstream that confirms every QR scan and
// a daemon against it, with the pacing turned down so tests run fast.
func newHarness(t *testing.T, simOpts sim.Options, accounts ...string) *harness {
	t.Helper()
	simOpts.AutoConfirm = true
	h := prepareHarness(t, simOpts, accounts...)
	h.start()
	return h
}

// prepareHarness is newHarness with the simulator's options as given, and
// no daemon started: the test changes h.cfg, h.opts or h.beforeStart, then
// calls h.start.
func prepareHarness(t *testing.T, simOpts sim.Options, accounts ...string) *harness {
	t.Helper()
	if len(accounts) == 0 {
		accounts = []string{"shop"}
	}
	srv := sim.NewServer(simOpts)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rulesDir, "greet.yaml"), greetRules)
	cfg := config.Default()
	cfg.Path = "test.yaml"
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Upstream.BaseURL = srv.URL
	cfg.Upstream.Account, cfg.Upstream.Password = sim.DefaultAccount, config.Secret(sim.DefaultPassword)
	// The call timeout is also how long a reply in doubt waits for its echo.
	cfg.Upstream.Timeout = time.Second
	for _, a := range accounts {
		cfg.Accounts = append(cfg.Accounts, config.Account{Name: a})
	}
	cfg.Rules = []string{rulesDir}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Sync = config.Sync{IdleInterval: 5 * time.Millisecond, BusyInterval: 0, MaxBackoff: 50 * time.Millisecond, OnlineCheck: 50 * time.Millisecond}
	cfg.Send = config.Send{Interval: 0, Burst: 1, MaxAttempts: 50, RetryBackoff: 5 * time.Millisecond, MaxRetryBackoff: 20 * time.Millisecond}
	h := &harness{t: t, sim: srv, cfg: &cfg}
	h.ctx, h.cancel = context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(h.cancel)
	return h
}

func (h *harness) start() {
	h.t.Helper()
	opts := h.opts
	if os.Getenv("FINDERBOT_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := New(h.cfg, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.beforeStart != nil {
		h.beforeStart(d)
	}
	if err := d.Start(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.d = d
	h.t.Cleanup(func() { d.Close() })
}

// online waits for the account to be online and returns its instance.
func (h *harness) online(name string) (wID, wcID string) {
	h.t.Helper()
	inst, err := h.d.Keeper(name).Wait(h.ctx)
	if err != nil {
		h.t.Fatalf("account %s never came online: %v", name, err)
	}
	return inst.WID, inst.WcID
}

// sent waits until n messages were sent in all and returns them.
func (h *harness) sent(n int) []sim.Sent {
	h.t.Helper()
	s, err := h.sim.WaitSent(h.ctx, n)
	if err != nil {
		h.t.Fatalf("%v; sent so far: %+v", err, h.sim.Sent())
	}
	return s
}

// barrier injects an echo request and waits for its reply: every reply due
// before it has been sent by then. It returns everything sent.
func (h *harness) barrier(wcID string, want int) []sim.Sent {
	h.t.Helper()
	tag := fmt.Sprintf("echo barrier %d", want)
	if _, err := h.sim.Inject(wcID, sim.Text("", tag)); err != nil {
		h.t.Fatal(err)
	}
	s := h.sent(want)
	if len(s) != want || s[want-1].Content != tag {
		h.t.Fatalf("after the barrier, sent = %s, want %d with the barrier last", describeSent(s), want)
	}
	return s
}

func describeSent(s []sim.Sent) string {
	var b strings.Builder
	for _, x := range s {
		fmt.Fprintf(&b, "\n  %s wId=%s to=%s content=%q", x.Endpoint, x.WID, x.ToUserName, x.Content)
	}
	return b.String()
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSeedPageGetsExactlyOneReply(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{})
	wID, wcID := h.online("shop")
	s := h.sent(1)
	r := s[0]
	if r.Endpoint != "/privateSend" || r.WID != wID || r.ToUserName != seedStranger || r.MyUserName != seedFinder ||
		r.SessionID != seedSession || r.Content != "你好！有什么可以帮您？" {
		t.Fatalf("reply = %+v", r)
	}
	// The seed page also holds the account's own "哈喽" and eleven system
	// notices: none of them is answered.
	h.barrier(wcID, 2)

	st := h.d.Status()
	if len(st.Accounts) != 1 || st.Accounts[0].State != "online" || st.Accounts[0].WID != wID || st.Accounts[0].Messages < 19 {
		t.Errorf("status = %+v", st)
	}
}

func TestRedeliveredAndNearIDs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	_, wcID := h.online("shop")
	// Two ids that a float64 cannot tell apart.
	a, b := uint64(1<<53+1), uint64(1<<53+2)
	if _, err := h.sim.Inject(wcID, sim.Message{ID: a, Content: "哈喽"}, sim.Message{ID: b, Content: "哈喽"}); err != nil {
		t.Fatal(err)
	}
	h.sent(2)
	// The upstream repeats messages already delivered: nothing more is sent.
	if _, err := h.sim.AddFault(sim.Fault{Endpoint: "/syncFinder", Kind: sim.FaultDuplicate, Count: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sim.Inject(wcID, sim.Text("", "哈喽")); err != nil {
		t.Fatal(err)
	}
	s := h.barrier(wcID, 4)
	if s[2].Content != "你好！有什么可以帮您？" {
		t.Fatalf("sent = %s", describeSent(s))
	}
}

func TestKickedAccountLogsInAgainAndResumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	oldWID, wcID := h.online("shop")
	if err := h.sim.Kick(oldWID); err != nil {
		t.Fatal(err)
	}
	// The message arrives while the account is offline; it is answered
	// after the new login, with the new wId.
	if _, err := h.sim.Inject(wcID, sim.Text("", "哈喽")); err != nil {
		t.Fatal(err)
	}
	s := h.sent(1)
	if s[0].WID == oldWID {
		t.Fatalf("reply sent with the kicked wId %s", oldWID)
	}
	if inst, _ := h.d.Keeper("shop").Current(); inst.WID != s[0].WID {
		t.Fatalf("reply wId %s, current wId %s", s[0].WID, inst.WID)
	}
	h.barrier(wcID, 2)
}

func TestFaultsDelayButNeverLoseOrDuplicate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	_, wcID := h.online("shop")
	for _, f := range []sim.Fault{
		{Endpoint: "/syncFinder", Kind: sim.FaultStatus, Status: 503, Rate: 0.2},
		{Endpoint: "/syncFinder", Kind: sim.FaultMalformed, Rate: 0.1},
		{Endpoint: "/syncFinder", Kind: sim.FaultTruncated, Rate: 0.1},
		{Endpoint: "/syncFinder", Kind: sim.FaultDuplicate, Rate: 0.2},
		{Endpoint: "/syncFinder", Kind: sim.FaultLatency, Latency: 20 * time.Millisecond, Rate: 0.2},
		{Endpoint: "/privateSend", Kind: sim.FaultStatus, Status: 502, Rate: 0.2},
		{Endpoint: "/privateSend", Kind: sim.FaultLatency, Latency: 20 * time.Millisecond, Rate: 0.2},
	} {
		if _, err := h.sim.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	const n = 30
	for i := range n {
		if _, err := h.sim.Inject(wcID, sim.Text("", fmt.Sprintf("echo %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	s := h.sent(n)
	h.sim.ClearFaults()
	s = h.barrier(wcID, n+1)
	count := map[string]int{}
	for _, x := range s[:n] {
		count[x.Content]++
	}
	for i := range n {
		if c := count[fmt.Sprintf("echo %d", i)]; c != 1 {
			t.Errorf("echo %d answered %d times", i, c)
		}
	}
}

func TestBrokenReloadKeepsOldRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	_, wcID := h.online("shop")
	writeFile(t, filepath.Join(h.cfg.Rules[0], "greet.yaml"), "rules:\n  - name: greet\n    when: msg.Text ==\n")
	err := h.d.Reload()
	if err == nil || !strings.Contains(err.Error(), "greet.yaml:3") {
		t.Fatalf("reload of a broken file: err = %v", err)
	}
	if _, err := h.sim.Inject(wcID, sim.Text("", "哈喽")); err != nil {
		t.Fatal(err)
	}
	if s := h.sent(1); s[0].Content != "你好！有什么可以帮您？" {
		t.Fatalf("sent = %s", describeSent(s))
	}
	// A good file takes effect.
	writeFile(t, filepath.Join(h.cfg.Rules[0], "greet.yaml"), strings.Replace(greetRules, "你好！有什么可以帮您？", "新的回复", 1))
	if err := h.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sim.Inject(wcID, sim.Text("", "哈喽")); err != nil {
		t.Fatal(err)
	}
	if s := h.sent(2); s[1].Content != "新的回复" {
		t.Fatalf("sent = %s", describeSent(s))
	}
}

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{})
	h.online("shop")
	h.sent(1)
	base := "http://" + h.d.AdminAddr()
	for path, want := range map[string]string{
		"/healthz":    "ok",
		"/readyz":     "ready",
		"/api/status": `"state": "online"`,
		"/metrics":    "finderbot_rules_matched_total{rule=\"greet\"} 1",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d %q, want it to contain %q", path, resp.StatusCode, body, want)
		}
		if tok := h.sim.MemberToken(sim.DefaultAccount); tok == "" || strings.Contains(body, tok) {
			t.Errorf("GET %s shows the API token (or there is none: %q)", path, tok)
		}
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func TestRestartResumesWithoutRepeating(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{})
	_, wcID := h.online("shop")
	h.sent(1)
	h.d.Close()
	h.start()
	h.online("shop")
	h.barrier(wcID, 2)
}

func TestShutdownLeaksNoGoroutines(t *testing.T) {
	// Not parallel: goleak looks at every goroutine of the process.
	before := goleak.IgnoreCurrent()
	srv := sim.NewServer(sim.Options{AutoConfirm: true})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "greet.yaml"), greetRules)
	cfg := config.Default()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Upstream.BaseURL, cfg.Upstream.Account, cfg.Upstream.Password = srv.URL, sim.DefaultAccount, config.Secret(sim.DefaultPassword)
	cfg.Accounts = []config.Account{{Name: "shop"}}
	cfg.Rules = []string{dir}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Send.Interval, cfg.Send.Jitter = 0, 0
	d, err := New(&cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	goleak.VerifyNone(t, before)
}

func TestRuleFileEditsReloadThemselves(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	_, wcID := h.online("shop")
	reloaded := h.d.rules.reloadAttempted()
	writeFile(t, filepath.Join(h.cfg.Rules[0], "price.yaml"), `rules:
  - name: price
    when: msg.Text contains "多少钱" && !msg.FromSelf
    actions:
      - reply: "99 元"
`)
	select {
	case <-reloaded:
	case <-h.ctx.Done():
		t.Fatal("editing a rule file did not reload the rules")
	}
	if _, err := h.sim.Inject(wcID, sim.Text("", "这个多少钱？")); err != nil {
		t.Fatal(err)
	}
	if s := h.sent(1); s[0].Content != "99 元" {
		t.Fatalf("sent = %s", describeSent(s))
	}
}

func TestFailingSendsEndInTheDeadLetters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	_, wcID := h.online("shop")
	h.d.Close()
	h.cfg.Send.MaxAttempts = 3
	h.start()
	h.online("shop")
	// Exactly as many failures as attempts allowed: one in doubt (a 500
	// may come after the upstream acted; no echo follows, so it is sent
	// again), then refusals.
	if _, err := h.sim.AddFault(sim.Fault{Endpoint: "/privateSend", Kind: sim.FaultStatus, Status: 500, Count: 1}); err != nil {
		t.Fatal(err)
	}
	// (Both faults count the first call; the first added decides it.)
	if _, err := h.sim.AddFault(sim.Fault{Endpoint: "/privateSend", Kind: sim.FaultRefuse, Count: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sim.Inject(wcID, sim.Text("", "哈喽")); err != nil {
		t.Fatal(err)
	}
	// The barrier is in the same conversation, so it is answered only
	// once the failing reply has gone to the dead letters.
	h.barrier(wcID, 1)
	dead, err := h.d.Store().DeadLetters(h.ctx, 0)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	if dead[0].Item.Text != "你好！有什么可以帮您？" || !strings.Contains(dead[0].Reason, "3 attempts") {
		t.Fatalf("dead letter = %+v", dead[0])
	}
	// The operator retries it: it goes out once, and leaves the dead
	// letters; an unknown id is a 404.
	base := "http://" + h.d.AdminAddr() + "/api/dead-letters/"
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, fmt.Sprint(dead[0].Item.ID, "/retry"), http.StatusOK},
		{http.MethodPost, fmt.Sprint(dead[0].Item.ID, "/retry"), http.StatusNotFound},
		{http.MethodDelete, "999999", http.StatusNotFound},
		{http.MethodDelete, "x", http.StatusBadRequest},
	} {
		req, _ := http.NewRequestWithContext(h.ctx, c.method, base+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %s, want %d", c.method, c.path, resp.Status, c.status)
		}
	}
	sent := h.sent(2)
	if sent[1].Content != "你好！有什么可以帮您？" {
		t.Fatalf("after the retry, sent %+v", sent)
	}
	if dead, _ := h.d.Store().DeadLetters(h.ctx, 0); len(dead) != 0 {
		t.Fatalf("dead letters after the retry: %+v", dead)
	}
}

func TestSessionsRunBesideAccounts(t *testing.T) {
	t.Parallel()
	srv := sim.NewServer(sim.Options{AutoConfirm: true, NoSeed: true})
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "events.yaml"), `rules:
  - name: crm-online
    on: event
    when: event.Type == "session.online" && event.Session == "crm"
    actions:
      - send: { to: wxid_operator, text: "{{ event.Session }} online" }
`)
	cfgPath := filepath.Join(dir, "finderbot.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`state_dir: ./state
upstream: {base_url: %[1]q, account: %[2]q, password: %[3]q}
accounts: [{name: shop}]
sessions:
  - {name: crm, kind: token, base_url: %[1]q, mobile: %[4]q, validate_no: %[5]q, device_number: pc-1}
  - {name: cloud, kind: appkey, base_url: %[1]q, app_key: %[6]q, app_secret: %[7]q}
  - {name: cloud-again, kind: appkey, base_url: %[1]q, app_key: %[6]q, app_secret: %[7]q}
rules: [./events.yaml]
admin: {listen: "127.0.0.1:0"}
send: {interval: 0s, jitter: 0s}
`, srv.URL, sim.DefaultAccount, sim.DefaultPassword, sim.DefaultMobile, sim.DefaultSMSCode, sim.DefaultAppKey, sim.DefaultAppSecret))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The event rule answers the token session's login from the account.
	s, err := srv.WaitSent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s[0].Endpoint != "/sendText" || s[0].WcID != "wxid_operator" || s[0].Content != "crm online" {
		t.Fatalf("sent = %+v", s[0])
	}
	tok, err := d.SessionToken(ctx, "crm")
	if err != nil || tok == "" {
		t.Fatalf("crm token = %q, %v", tok, err)
	}
	// Both app-key sessions share one login.
	for _, name := range []string{"cloud", "cloud-again"} {
		tok, err := d.SessionToken(ctx, name) // waits for the login
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st := srv.AppKeyTokenState(tok); st != sim.TokenValid {
			t.Fatalf("%s token is %s", name, st)
		}
	}
	if n := srv.AppKeyLogins(sim.DefaultAppKey); n != 1 {
		t.Errorf("%d app-key logins for two sessions on one key", n)
	}
	st := d.Status()
	if len(st.Sessions) != 3 || st.Sessions[0].Kind != "token" || st.Sessions[0].State != "online" {
		t.Errorf("status sessions = %+v", st.Sessions)
	}
	// Logins lists the account, then each session under its own name.
	var logins []string
	for _, ls := range d.Logins() {
		logins = append(logins, fmt.Sprintf("%s %s online=%v", ls.Name, ls.Kind, ls.Online))
	}
	if got, want := strings.Join(logins, ", "), "shop wkteam online=true, crm token online=true, cloud appkey online=true, cloud-again appkey online=true"; got != want {
		t.Errorf("logins = %s\nwant %s", got, want)
	}
}
