package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/console/browsertest"
	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// consoleToken is the admin token the browser signs in with.
const consoleToken = "console-browser-token"

// The UI texts the test reads, in the console's default language.
const (
	zhTokenLabel  = "管理令牌"
	zhSignIn      = "登录"
	zhOnline      = "已在线"
	zhSlider      = "打开滑块验证"
	zhVerifyLabel = "手机上显示的验证码"
	zhSubmitCode  = "提交验证码"
	zhRetry       = "重试"
	zhReload      = "重新加载规则"
	zhNoDead      = "没有死信。"
)

// consoleCase is a daemon on the simulated upstream with the console on its
// admin listener: two accounts whose QR codes wait for a scan.
type consoleCase struct {
	*harness
	gate  *loginGate
	rules string // the rules directory
}

func startConsoleCase(t *testing.T) *consoleCase {
	t.Helper()
	srv := sim.NewServer(sim.Options{})
	t.Cleanup(srv.Close)
	// The daemon reaches the simulator through the gate; the test drives
	// the simulator's control API directly.
	gate := newLoginGate(srv.Upstream)
	upstream := httptest.NewServer(gate)
	t.Cleanup(upstream.Close)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The quickstart's rule: it answers the seed page's "哈喽".
	greet, err := os.ReadFile(filepath.Join("..", "examples", "quickstart", "rules", "greet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rulesDir, "greet.yaml"), string(greet))

	cfg := config.Default()
	cfg.Path = filepath.Join(dir, "finderbot.yaml")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Upstream.BaseURL = upstream.URL
	cfg.Upstream.Account, cfg.Upstream.Password = sim.DefaultAccount, config.Secret(sim.DefaultPassword)
	cfg.Accounts = []config.Account{{Name: "shop"}, {Name: "studio"}}
	cfg.Rules = []string{rulesDir}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Token = config.Secret(consoleToken)
	cfg.Sync = config.Sync{IdleInterval: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, OnlineCheck: time.Second}
	// One attempt: a refused reply is a dead letter at once.
	cfg.Send = config.Send{Burst: 1, MaxAttempts: 1, RetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond}
	h := &harness{t: t, sim: srv, cfg: &cfg}
	h.ctx, h.cancel = context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(h.cancel)
	h.start()
	return &consoleCase{harness: h, gate: gate, rules: rulesDir}
}

// loginGate passes the daemon's calls to the simulator, counting the
// /getIPadLoginInfo long polls under way, and holds the new ones while
// closed: the page then shows a login's state between two polls (a slider)
// for as long as the test needs to see it.
type loginGate struct {
	next http.Handler

	mu      sync.Mutex
	polls   int           // long polls under way
	hold    chan struct{} // closed to let held polls through; nil when open
	changed chan struct{} // closed and replaced when polls changes
}

func newLoginGate(next http.Handler) *loginGate {
	return &loginGate{next: next, changed: make(chan struct{})}
}

func (g *loginGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/getIPadLoginInfo" {
		g.next.ServeHTTP(w, r)
		return
	}
	g.mu.Lock()
	hold := g.hold
	g.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	g.add(1)
	defer g.add(-1)
	g.next.ServeHTTP(w, r)
}

func (g *loginGate) add(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.polls += n
	close(g.changed)
	g.changed = make(chan struct{})
}

// waitPolls waits until n long polls are under way.
func (g *loginGate) waitPolls(ctx context.Context, n int) error {
	for {
		g.mu.Lock()
		polls, changed := g.polls, g.changed
		g.mu.Unlock()
		if polls == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d login polls under way (%d are): %w", n, polls, ctx.Err())
		}
	}
}

// close holds the polls that come from now on.
func (g *loginGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = make(chan struct{})
}

// open lets the held polls through, and those to come.
func (g *loginGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold != nil {
		close(g.hold)
		g.hold = nil
	}
}

// control asks the simulator's control API, with a JSON body unless body
// is nil.
func (c *consoleCase) control(method, endpoint string, body any) {
	c.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(c.ctx, method, c.sim.URL+endpoint, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, endpoint, err)
	}
	defer resp.Body.Close()
	var answer struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || !answer.OK {
		c.t.Fatalf("%s %s %s: %s %q (%v)", method, endpoint, raw, resp.Status, answer.Error, err)
	}
}

// pendingWID is the instance whose QR code the account shows: the last
// segment of the QR code's URL.
func (c *consoleCase) pendingWID(account string) string {
	c.t.Helper()
	ls := c.d.Keeper(account).Login()
	if !strings.Contains(ls.QR, "/_sim/qr/") {
		c.t.Fatalf("account %s is %s (%s), want a QR code of the simulator waiting for a scan", account, ls.State, ls.Detail)
	}
	return path.Base(ls.QR)
}

// waitEvent waits for an event of kind about account on evs.
func (c *consoleCase) waitEvent(evs <-chan events.Event, kind, account string) events.Event {
	c.t.Helper()
	for {
		select {
		case e, ok := <-evs:
			if !ok {
				c.t.Fatalf("the event bus closed before a %s event of %s", kind, account)
			}
			if e.Kind == kind && e.Account == account {
				return e
			}
		case <-c.ctx.Done():
			c.t.Fatalf("no %s event of %s: %v", kind, account, c.ctx.Err())
		}
	}
}

// card is the selector of the login page's card of an account.
func card(account string) string {
	return fmt.Sprintf(`section.card:has(a[href="/login/%s"])`, account)
}

// qrLoaded is a condition: the account's QR code image has loaded.
func qrLoaded(account string) string {
	return fmt.Sprintf(`(function () { var i = document.querySelector(%q); return !!i && i.complete && i.naturalWidth > 0; })()`,
		card(account)+` img[src*="/qr.png"]`)
}

// TestConsoleInBrowser is the console's acceptance test: a real browser
// signs in, logs in one account by its QR code and another through the
// slider and the verify code, sees the seed page's "哈喽" answered, retries
// a dead letter, and finds a broken rule file's error by its position. Each
// page is checked for accessibility and kept as a screenshot (go test
// -artifacts -outputdir DIR keeps them; FINDERBOT_SCREENSHOTS=DIR copies
// them there).
func TestConsoleInBrowser(t *testing.T) {
	browsertest.Require(t)
	t.Parallel()
	c := startConsoleCase(t)
	b := browsertest.Start(t, "http://"+c.d.AdminAddr(), "zh-CN")

	// Sign in: / sends a browser without a session to the sign-in page.
	b.Open("/")
	if loc := b.Location(); !strings.Contains(loc, "/signin") {
		t.Fatalf("/ without a session went to %s, want the sign-in page", loc)
	}
	if lang := browsertest.Eval[string](b, "document.documentElement.lang"); lang != "zh-CN" {
		t.Errorf("the sign-in page's language is %q, want zh-CN", lang)
	}
	b.Accessibility("sign-in")
	b.Type(b.LabelledBy(zhTokenLabel), consoleToken)
	b.Submit("sign in", fmt.Sprintf(`//form[@action="/signin"]//button[normalize-space()=%q]`, zhSignIn))
	b.WaitFor("the overview after signing in", `document.location.pathname === "/" && !!document.getElementById("live")`)
	b.Accessibility("overview")

	// The first account by its QR code: the image loads, the scan is
	// confirmed, and the page shows the account online.
	b.Open("/login")
	b.WaitFor("the QR code of shop to load", qrLoaded("shop"))
	b.WaitFor("the QR code of studio to load", qrLoaded("studio"))
	b.Screenshot("login-qr")
	b.Accessibility("login, waiting for scans")
	c.control(http.MethodPost, "/_sim/confirm", map[string]string{"wId": c.pendingWID("shop")})
	b.WaitText(card("shop")+" .state", zhOnline)
	c.online("shop")
	// The stranger's "哈喽" on the seed page is answered by the quickstart's
	// rule.
	c.sent(1)

	// The second account meets the slider, then the verify code. The poll
	// after the slider is held, so the page shows the slider link until
	// the test has seen it.
	wID := c.pendingWID("studio")
	c.control(http.MethodPost, "/_sim/script", map[string]any{"wId": wID, "steps": []string{"slider", "verify_code"}})
	if err := c.gate.waitPolls(c.ctx, 1); err != nil { // studio's, waiting for its scan
		t.Fatal(err)
	}
	c.gate.close()
	c.control(http.MethodPost, "/_sim/confirm", map[string]string{"wId": wID})
	b.WaitFor("the slider link of studio", fmt.Sprintf(
		`Array.from(document.querySelectorAll(%q)).some(function (a) { return a.innerText.trim() === %q && a.href.includes("/_sim/captcha/"); })`,
		card("studio")+" a[target=_blank]", zhSlider))
	b.Screenshot("login-slider")
	c.gate.open()
	b.WaitFor("the verify code field of studio", fmt.Sprintf(`!!document.querySelector(%q)`, card("studio")+` input[name="code"]`))
	b.Accessibility("login, asking for a verify code")
	b.Type(b.LabelledBy(zhVerifyLabel), sim.DefaultVerifyCode)
	b.Submit("submit the verify code", fmt.Sprintf(`//button[normalize-space()=%q]`, zhSubmitCode))
	b.WaitText(card("studio")+" .state", zhOnline)
	c.online("studio")

	// Conversations: the stranger's "哈喽", answered by the rule.
	b.Open("/conversations?account=shop")
	b.WaitFor("the stranger's 哈喽 with greet's reply", fmt.Sprintf(`Array.from(document.querySelectorAll("main section.card")).some(function (s) {
  return s.querySelector("h2").innerText.includes(%q) && Array.from(s.querySelectorAll("tr.in")).some(function (tr) {
    var text = tr.innerText;
    return text.includes("哈喽") && text.includes("greet") && text.includes("reply: 你好！有什么可以帮您？");
  });
})`, seedStranger))
	b.Screenshot("conversations")
	b.Accessibility("conversations")

	// Dead letters: every send refused, a stranger greets studio (the seed
	// page's stranger is in the rule's cooldown); the answer is a dead
	// letter. The fault cleared, it is retried: it leaves the list and
	// goes out.
	evs := c.d.Events().Subscribe(c.ctx)
	c.control(http.MethodPost, "/_sim/faults", map[string]any{"endpoint": "/privateSend", "kind": "refuse"})
	c.control(http.MethodPost, "/_sim/inject", map[string]any{"wId": wID, "messages": []map[string]string{
		{"text": "哈喽", "from": "fv1_console_test@findermsgstranger", "session": "console_test@findermsg"},
	}})
	c.waitEvent(evs, events.KindDeadLetter, "studio")
	// The event comes before the dead letter is written with the account's
	// next write: the page is fetched until it lists it.
	b.WaitServed("/dead-letters", "fv1_console_test@findermsgstranger")
	b.Open("/dead-letters")
	b.WaitText("main table", "你好！有什么可以帮您？")
	b.Screenshot("dead-letters")
	b.Accessibility("dead letters")
	c.control(http.MethodDelete, "/_sim/faults", nil)
	b.Submit("retry the dead letter", fmt.Sprintf(`//main//table//button[normalize-space()=%q]`, zhRetry))
	b.WaitText("main", zhNoDead)
	c.sent(2)

	// Rules: a broken file; Reload shows its error at file:line:col.
	writeFile(t, filepath.Join(c.rules, "bad.yaml"),
		"rules:\n  - name: broken\n    when: msg.Text == \"x\" && nosuch(1)\n    actions:\n      - reply: \"x\"\n")
	b.Open("/rules")
	b.Submit("reload the rules", fmt.Sprintf(`//button[normalize-space()=%q]`, zhReload))
	b.WaitText(".flash", "bad.yaml:3:30")
	b.Screenshot("rules-error")
	b.Accessibility("rules, with a reload error")

	b.Open("/events")
	b.WaitFor("events", `document.querySelectorAll("#event-rows tr").length > 0`)
	b.Screenshot("events")
	b.Accessibility("events")

	b.Open("/")
	b.Screenshot("overview")
}
