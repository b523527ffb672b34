package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/session"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// echoUpstream stands in front of the simulator like a proxy or a WAF that
// answers some calls with an error page echoing the whole request: query,
// body and headers. Each endpoint in echo is answered so that many times
// (-1: always) before calls pass through to the simulator.
type echoUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	echo   map[string]int
	echoed chan string // endpoints as they are echoed
}

func newEchoUpstream(t *testing.T, target string, echo map[string]int) *echoUpstream {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	e := &echoUpstream{echo: echo, echoed: make(chan string, 1024)}
	proxy := httputil.NewSingleHostReverseProxy(u)
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep := r.URL.Path
		if strings.HasPrefix(ep, "/wx/pc/check-login-status/") {
			ep = "/wx/pc/check-login-status"
		}
		e.mu.Lock()
		n := e.echo[ep]
		if n > 0 {
			e.echo[ep] = n - 1
		}
		e.mu.Unlock()
		if n == 0 {
			proxy.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		dump := fmt.Sprintf("you sent: %s?%s %s", r.URL.Path, r.URL.RawQuery, body)
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range r.Header {
				if !yield(k) {
					return
				}
			}
		}) {
			dump += fmt.Sprintf(" %s: %s;", k, strings.Join(r.Header[k], ","))
		}
		switch ep {
		case "/member/login", "/syncFinder", "/app/auth/token/refresh":
			http.Error(w, "Bad Gateway: "+dump, http.StatusBadGateway) // a proxy's page
		case "/auth/mobile/login":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusForbidden) // a WAF's page
			fmt.Fprintf(w, "<html><pre>%s</pre></html>", dump)
		default: // the API's own refusal, quoting the request
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"code":500,"msg":%q,"data":null}`, "invalid request: "+dump)
		}
		e.echoed <- ep
	}))
	t.Cleanup(e.Close)
	return e
}

// logSink is a log that can be waited on for a line.
type logSink struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newLogSink() *logSink { return &logSink{changed: make(chan struct{})} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
	return s.b.Write(p)
}

func (s *logSink) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// waitFor waits until the log holds text.
func (s *logSink) waitFor(ctx context.Context, t *testing.T, text string) {
	t.Helper()
	for {
		s.mu.Lock()
		found, ch := strings.Contains(s.b.String(), text), s.changed
		s.mu.Unlock()
		if found {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("the log never showed %q; log:\n%s", text, s.String())
		}
	}
}

// TestSecretsNeverEchoed runs the daemon against an upstream that echoes
// requests in its errors: the member password, the member token, the app
// secret, the SMS code an operator gave through the admin API and the
// access and refresh tokens it brought must not show in the log, the status
// API, the metrics, the dead letters, the errors returned or a message an
// event rule sends; where they were, [redacted] is.
func TestSecretsNeverEchoed(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			testSecretsNeverEchoed(t, format)
		})
	}
}

func testSecretsNeverEchoed(t *testing.T, format string) {
	// The password holds characters JSON and URLs escape; the fragments
	// below are what must never show, in any escaped form.
	const (
		password   = `pwQ7f3a"9c<51e2&x`
		adminToken = "adm-0c4b8d27f1"
		appSecret  = "as-93e1b7c0a4"
		smsCode    = "839271"
	)
	srv := sim.NewServer(sim.Options{AutoConfirm: true, NoSeed: true, SMSCode: smsCode,
		Members: []sim.Member{{Account: "ops", Password: password}},
		AppKeys: map[string]string{"key-1": appSecret}})
	defer srv.Close()
	echo := newEchoUpstream(t, srv.URL, map[string]int{
		"/member/login": 1, "/syncFinder": -1, "/api-cloud/auth/login": 1,
		"/auth/mobile/login": 1, "/wx/pc/check-login-status": 1, "/app/auth/token/refresh": -1,
	})
	env := map[string]string{"WK_PASSWORD": password, "ADMIN_TOKEN": adminToken, "APP_SECRET": appSecret}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	dir := t.TempDir()
	// An event rule passes the failure on to a person: the event must
	// carry no secret either.
	writeFile(t, filepath.Join(dir, "rules.yaml"), greetRules+`  - name: alert
    on: event
    when: event.Type == "session.failed" && event.Session == "cloud"
    actions:
      - send: {to: wxid_operator, text: "{{ event.Fields.message ?? '' }}"}
`)
	text := fmt.Sprintf(`state_dir: %q
upstream:
  base_url: %[2]q
  account: ops
  password: ${WK_PASSWORD}
accounts: [{name: shop}]
sessions:
  - {name: cloud, kind: appkey, base_url: %[2]q, app_key: key-1, app_secret: "${APP_SECRET}"}
  - {name: crm, kind: token, base_url: %[2]q, mobile: "13800138000", device_number: dev-1, check_interval: 20ms}
rules: [%[3]q]
admin:
  listen: "127.0.0.1:0"
  token: ${ADMIN_TOKEN}
log: {level: debug, format: %[4]s}
`, filepath.Join(dir, "state"), echo.URL, filepath.Join(dir, "rules.yaml"), format)
	cfg, err := config.Parse("finderbot.yaml", []byte(text), lookup)
	if err != nil {
		t.Fatal(err)
	}
	logs := newLogSink()
	d, err := New(cfg, Options{Logger: NewLogger(logs, cfg.Log)})
	if err != nil {
		t.Fatal(err)
	}
	crmStates := make(chan string, 64)
	d.watchState = func(name, state string) {
		if name == "crm" {
			crmStates <- state
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base := "http://" + d.AdminAddr()
	get := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req) // asks for gzip, as browsers do
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The token session asks for the SMS code twice: the first login is
	// echoed back.
	for range 2 {
		for state := ""; state != session.StateNeedsCode; {
			select {
			case state = <-crmStates:
			case <-ctx.Done():
				t.Fatalf("crm never asked for a code; log:\n%s", logs.String())
			}
		}
		if code, body := get("POST", "/api/sessions/crm/code", smsCode); code != http.StatusAccepted {
			t.Fatalf("submitting the code: %d %s", code, body)
		}
	}
	if _, err := d.Keeper("shop").Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SessionToken(ctx, "cloud"); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(ctx, t, "/app/auth/token/refresh")
	logs.waitFor(ctx, t, "sync failed")
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	_, crmErr := d.SessionToken(short, "crm")
	stop()

	sent, err := srv.WaitSent(ctx, 1)
	if err != nil {
		t.Fatalf("the alert was never sent: %v; log:\n%s", err, logs.String())
	}
	memberToken := srv.MemberToken("ops")
	st, err := d.Store().Session(ctx, "crm")
	if err != nil || st.Access.Value == "" || memberToken == "" {
		t.Fatalf("crm session %+v, %v; member token %q", st, err, memberToken)
	}
	outputs := map[string]string{"log": logs.String(), "crm error": fmt.Sprint(crmErr), "alert": sent[0].Content}
	for _, path := range []string{"/api/status", "/metrics", "/api/dead-letters"} {
		code, body := get("GET", path, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		outputs[path] = body
	}
	secrets := map[string][]string{
		"password":      {"pwQ7f3a", "51e2"},
		"admin token":   {adminToken},
		"app secret":    {appSecret},
		"SMS code":      {smsCode},
		"member token":  {memberToken},
		"access token":  {st.Access.Value},
		"refresh token": {st.Refresh.Value},
	}
	for where, out := range outputs {
		for name, fragments := range secrets {
			for _, f := range fragments {
				if strings.Contains(out, f) {
					t.Errorf("the %s (%q) shows in %s:\n%s", name, f, where, out)
				}
			}
		}
	}
	for _, where := range []string{"log", "/api/status", "alert"} {
		if !strings.Contains(outputs[where], "[redacted]") {
			t.Errorf("%s holds no [redacted]: the echo never reached it:\n%s", where, outputs[where])
		}
	}
	for _, ep := range []string{"/member/login", "/api-cloud/auth/login", "/auth/mobile/login", "/app/auth/token/refresh", "/syncFinder"} {
		if !strings.Contains(outputs["log"], ep) {
			t.Errorf("the echo of %s was not logged", ep)
		}
	}
}
