package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/finderbot/finderbot/engine/redact"
	"github.com/finderbot/finderbot/engine/store"
)

// TestAccess: with a token, every request but the probes must bear it,
// exactly; without one, only loopback clients are served.
func TestAccess(t *testing.T) {
	t.Parallel()
	const token = "t0k3n-9f2e"
	for name, c := range map[string]struct {
		token string // configured
		req   request
		want  int
	}{
		"no token, loopback":                {req: request{path: "/api/status"}, want: 200},
		"no token, IPv6 loopback":           {req: request{path: "/api/status", remote: "[::1]:5000"}, want: 200},
		"no token, another host":            {req: request{path: "/api/status", remote: "192.0.2.7:5000"}, want: 403},
		"no token, another host, a token":   {req: request{path: "/api/status", remote: "192.0.2.7:5000", token: "anything"}, want: 403},
		"no token, another host, healthz":   {req: request{path: "/healthz", remote: "192.0.2.7:5000"}, want: 200},
		"no token, another host, readyz":    {req: request{path: "/readyz", remote: "192.0.2.7:5000"}, want: 200},
		"token, healthz without it":         {token: token, req: request{path: "/healthz"}, want: 200},
		"token, readyz without it":          {token: token, req: request{path: "/readyz"}, want: 200},
		"token, status without it":          {token: token, req: request{path: "/api/status"}, want: 401},
		"token, metrics without it":         {token: token, req: request{path: "/metrics"}, want: 401},
		"token, unknown path without it":    {token: token, req: request{path: "/nosuch"}, want: 401},
		"token, the wrong one":              {token: token, req: request{path: "/api/status", token: "t0k3n-9f2f"}, want: 401},
		"token, a prefix of it":             {token: token, req: request{path: "/api/status", token: "t0k3n"}, want: 401},
		"token, longer than it":             {token: token, req: request{path: "/api/status", token: token + "x"}, want: 401},
		"token, without Bearer":             {token: token, req: request{path: "/api/status", auth: token}, want: 401},
		"token, bearer in lower case":       {token: token, req: request{path: "/api/status", auth: "bearer " + token}, want: 401},
		"token, right":                      {token: token, req: request{path: "/api/status", token: token}, want: 200},
		"token, right, from another host":   {token: token, req: request{path: "/api/status", token: token, remote: "192.0.2.7:5000"}, want: 200},
		"token, right, unknown path":        {token: token, req: request{path: "/api/nosuch", token: token}, want: 404},
		"token, right, wrong method":        {token: token, req: request{method: "PUT", path: "/api/status", token: token}, want: 405},
		"token, right, readyz with a token": {token: token, req: request{path: "/readyz", token: "wrong"}, want: 200},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := New(newFake(), Options{Token: c.token})
			resp := c.req.do(t, s).Result()
			if resp.StatusCode != c.want {
				t.Fatalf("%d, want %d", resp.StatusCode, c.want)
			}
			if c.want == 401 && resp.Header.Get("WWW-Authenticate") != `Bearer realm="finderbot"` {
				t.Errorf("401 without WWW-Authenticate: %v", resp.Header)
			}
		})
	}
}

func TestTokenMatches(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		configured, given string
		want              bool
	}{
		{"s3cret", "s3cret", true},
		{"s3cret", "s3cre", false},
		{"s3cret", "s3cret ", false},
		{"s3cret", "S3CRET", false},
		{"s3cret", "", false},
		{"", "", false}, // no token configured: nothing signs in with one
		{"", "anything", false},
	} {
		if got := TokenMatches(c.configured, c.given); got != c.want {
			t.Errorf("TokenMatches(%q, %q) = %v, want %v", c.configured, c.given, got, c.want)
		}
	}
}

func TestFromLoopback(t *testing.T) {
	t.Parallel()
	for remote, want := range map[string]bool{
		"127.0.0.1:1":          true,
		"127.3.2.1:80":         true,
		"[::1]:1":              true,
		"[::ffff:127.0.0.1]:1": true,
		"192.0.2.1:1":          false,
		"[fe80::1%eth0]:1":     false,
		"[::]:1":               false,
		"0.0.0.0:1":            false,
		"localhost:1":          false, // a peer address is never a name
		"127.0.0.1":            false, // no port: not a peer address
		"":                     false,
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "127.0.0.1")
		if got := FromLoopback(r); got != want {
			t.Errorf("FromLoopback(%q) = %v, want %v", remote, got, want)
		}
	}
}

// TestAnswers runs each endpoint through its outcomes against the fake.
func TestAnswers(t *testing.T) {
	t.Parallel()
	withDead := func(f *fake) { f.deadLetter(1, store.KindReply); f.deadLetter(2, store.KindSend) }
	for name, c := range map[string]struct {
		setup  func(*fake)
		token  string
		req    request
		status int
		want   string
	}{
		"healthz":                      {req: request{path: "/healthz"}, status: 200, want: "ok\n"},
		"ready":                        {req: request{path: "/readyz"}, status: 200, want: "ready\n"},
		"not ready":                    {setup: func(f *fake) { f.notOnline = []string{"shop", "mall"} }, req: request{path: "/readyz"}, status: 503, want: "not online: shop, mall\n"},
		"status":                       {req: request{path: "/api/status"}, status: 200, want: `"state": "online"`},
		"no metrics configured":        {req: request{path: "/metrics"}, status: 404},
		"dead letters":                 {setup: withDead, req: request{path: "/api/dead-letters"}, status: 200, want: `"reason": "refused"`},
		"dead letters, none":           {req: request{path: "/api/dead-letters"}, status: 200, want: "[]\n"},
		"dead letters, limit 1":        {setup: withDead, req: request{path: "/api/dead-letters?limit=1"}, status: 200, want: `"id": 1,`},
		"dead letters, limit -1":       {req: request{path: "/api/dead-letters?limit=-1"}, status: 400, want: "limit must be a whole number, 0 for all"},
		"dead letters, limit x":        {req: request{path: "/api/dead-letters?limit=x"}, status: 400, want: "limit must be a whole number"},
		"inbound dead letters, none":   {req: request{path: "/api/inbound-dead-letters"}, status: 200, want: "[]\n"},
		"retry":                        {setup: withDead, req: request{method: "POST", path: "/api/dead-letters/1/retry"}, status: 200, want: `"id": 101,`},
		"retry, no such":               {setup: withDead, req: request{method: "POST", path: "/api/dead-letters/9/retry"}, status: 404, want: "no such dead letter"},
		"retry, not an id":             {req: request{method: "POST", path: "/api/dead-letters/x/retry"}, status: 400, want: `\"x\" is not a dead letter id`},
		"retry, outbox full":           {setup: func(f *fake) { withDead(f); f.bounded = true }, req: request{method: "POST", path: "/api/dead-letters/1/retry"}, status: 507, want: "store: full"},
		"retry, by GET":                {req: request{path: "/api/dead-letters/1/retry"}, status: 405},
		"drop":                         {setup: withDead, req: request{method: "DELETE", path: "/api/dead-letters/2"}, status: 200, want: `"status": "dropped"`},
		"drop, no such":                {req: request{method: "DELETE", path: "/api/dead-letters/2"}, status: 404},
		"drop, not an id":              {req: request{method: "DELETE", path: "/api/dead-letters/-2"}, status: 400},
		"code":                         {req: request{method: "POST", path: "/api/accounts/shop/code", body: " 123456\n"}, status: 202, want: `"status": "submitted"`},
		"code, session path":           {req: request{method: "POST", path: "/api/sessions/shop/code", body: "123456"}, status: 202},
		"code, empty":                  {req: request{method: "POST", path: "/api/accounts/shop/code", body: " \n"}, status: 400, want: "send the code as the request body"},
		"code, no such session":        {req: request{method: "POST", path: "/api/sessions/nosuch/code", body: "1"}, status: 404, want: `no account or session \"nosuch\"`},
		"code, not waiting":            {req: request{method: "POST", path: "/api/sessions/crm/code", body: "123456"}, status: 409, want: "crm is not waiting for a code"},
		"plugin restart":               {setup: func(f *fake) { f.plugins = map[string]error{"counter": nil} }, req: request{method: "POST", path: "/api/plugins/counter/restart"}, status: 200, want: "restarted"},
		"plugin restart, refused":      {setup: func(f *fake) { f.plugins = map[string]error{} }, req: request{method: "POST", path: "/api/plugins/nosuch/restart"}, status: 409, want: "plugins: no plugin nosuch"},
		"plugin restart, none at all":  {req: request{method: "POST", path: "/api/plugins/counter/restart"}, status: 404, want: "no plugins are configured"},
		"reload":                       {req: request{method: "POST", path: "/api/reload"}, status: 200, want: `"rules": 2`},
		"reload, broken":               {setup: func(f *fake) { f.reload = errors.New("rules: r.yaml:3:11: unknown name nosuch") }, req: request{method: "POST", path: "/api/reload"}, status: 422, want: "r.yaml:3:11: unknown name nosuch"},
		"check":                        {setup: func(f *fake) { f.report = &store.Report{Path: "x.db", SeenIDs: 7} }, req: request{path: "/api/store/check"}, status: 200, want: `"seen_ids": 7`},
		"check, unsupported":           {req: request{path: "/api/store/check"}, status: 501, want: "cannot be checked through the admin API"},
		"backup, no token configured":  {setup: func(f *fake) { f.backup = []byte("db") }, req: request{path: "/api/store/backup"}, status: 403, want: "set admin.token"},
		"backup, unsupported":          {token: "tok-123456", req: request{path: "/api/store/backup", token: "tok-123456"}, status: 501, want: "cannot be backed up"},
		"backup":                       {setup: func(f *fake) { f.backup = []byte("the bytes") }, token: "tok-123456", req: request{path: "/api/store/backup", token: "tok-123456"}, status: 200, want: "the bytes"},
		"root without a console":       {req: request{path: "/"}, status: 404},
		"unknown path without console": {req: request{path: "/console"}, status: 404},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			if c.setup != nil {
				c.setup(f)
			}
			w := c.req.do(t, New(f, Options{Token: c.token}))
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
				t.Fatalf("%d %q, want %d and %q in it", w.Code, w.Body.String(), c.status, c.want)
			}
			if w.Code >= 400 && w.Code != 404 && w.Code != 405 && w.Code != 503 {
				var e apiError
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Errorf("an error answered without its JSON error: %q", w.Body.String())
				}
			}
		})
	}
}

// TestRetryAllOfAKind retries the dead letters of one kind, leaving the
// others, and passes over one that is gone by the time its turn comes.
func TestRetryAllOfAKind(t *testing.T) {
	t.Parallel()
	f := newFake()
	for i, kind := range []string{store.KindReply, store.KindSend, store.KindPlugin, store.KindReply, store.KindReply} {
		f.deadLetter(uint64(i+1), kind)
	}
	f.vanish = map[uint64]bool{4: true}
	s := New(f, Options{})
	retry := func(query string) (int, Retried, string) {
		w := request{method: "POST", path: "/api/dead-letters/retry" + query}.do(t, s)
		var out Retried
		json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out, w.Body.String()
	}

	if code, _, body := retry("?kind=replies"); code != 400 || !strings.Contains(body, `kind \"replies\" is not an action kind (reply, send, plugin)`) {
		t.Fatalf("a bad kind: %d %s", code, body)
	}
	if len(f.retried) > 0 {
		t.Fatalf("a bad kind retried %v", f.retried)
	}
	code, out, body := retry("?kind=reply")
	if code != 200 || len(out.Items) != 2 || !slices.Equal(f.retried, []uint64{1, 5}) {
		t.Fatalf("kind=reply: %d %s; retried %v, want 1 and 5 (4 vanished)", code, body, f.retried)
	}
	if out.Items[0].Kind != store.KindReply || out.Items[0].ID != 101 {
		t.Errorf("the items queued: %+v", out.Items)
	}
	if code, out, _ := retry("?kind=reply"); code != 200 || len(out.Items) != 0 || out.Items == nil {
		t.Errorf("nothing left of the kind: %d %+v, want an empty list", code, out)
	}
	code, out, body = retry("")
	if code != 200 || len(out.Items) != 2 || !slices.Equal(f.retried, []uint64{1, 5, 2, 3}) {
		t.Fatalf("all: %d %s; retried %v", code, body, f.retried)
	}
}

// TestRetryAllStopsWhenFull: a failure stops the rest and says how many
// went before it.
func TestRetryAllStopsWhenFull(t *testing.T) {
	t.Parallel()
	f := newFake()
	for i := range 3 {
		f.deadLetter(uint64(i+1), store.KindSend)
	}
	f.bounded, f.room = true, 1
	w := request{method: "POST", path: "/api/dead-letters/retry"}.do(t, New(f, Options{}))
	if w.Code != 507 || !strings.Contains(w.Body.String(), "1 dead letters retried, then dead letter 2: store: full") {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	if len(f.dead) != 2 {
		t.Errorf("%d dead letters left, want 2", len(f.dead))
	}
}

// TestRedaction: the secrets are hidden from every answer — a status, an
// error, the metrics, the console — but not from a backup, whose bytes
// must arrive exactly.
func TestRedaction(t *testing.T) {
	t.Parallel()
	const secret, token = "pw-8c1d2e3f4a", "adm-1b2c3d4e5f"
	secrets := redact.New()
	secrets.Add(secret, token)
	f := newFake()
	f.status.Accounts[0].LastError = "upstream echoed password=" + secret
	f.reload = errors.New("rules: r.yaml:1:1: " + secret)
	f.backup = []byte("bytes with " + secret + " inside")
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "finderbot_test_total", Help: secret}))
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo", secret)
		w.Write([]byte("console " + secret))
	})
	s := New(f, Options{Token: token, Secrets: secrets, Metrics: reg, Console: console})
	for _, r := range []request{
		{path: "/api/status", token: token},
		{method: "POST", path: "/api/reload", token: token},
		{path: "/metrics", token: token},
		{path: "/"},
		{path: "/api/status", token: "wrong"}, // the 401
	} {
		w := r.do(t, s)
		got := w.Body.String() + strings.Join(w.Header().Values("X-Echo"), "")
		if strings.Contains(got, secret) || strings.Contains(got, token) {
			t.Errorf("%s %s shows a secret: %s", r.method, r.path, got)
		}
		if w.Code != 401 && !strings.Contains(got, "[redacted]") {
			t.Errorf("%s %s: %d %s, want [redacted] in it", r.method, r.path, w.Code, got)
		}
	}
	w := request{path: "/api/store/backup", token: token}.do(t, s)
	if w.Code != 200 || w.Body.String() != string(f.backup) || w.Header().Get("Content-Length") != strconv.Itoa(len(f.backup)) {
		t.Errorf("backup: %d %q %v, want the bytes as they are", w.Code, w.Body.String(), w.Header())
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "finderbot_test_total", Help: "A test."})
	reg.MustRegister(c)
	c.Add(3)
	w := request{path: "/metrics"}.do(t, New(newFake(), Options{Metrics: reg}))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "finderbot_test_total 3") {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
}

// TestConsole: a console answers every path the API does not own, without
// the bearer token; the API's paths stay the API's, token and all.
func TestConsole(t *testing.T) {
	t.Parallel()
	const token = "tok-4d5e6f7a8b"
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("console " + r.URL.Path))
	})
	s := New(newFake(), Options{Token: token, Console: console})
	for _, c := range []struct {
		req    request
		status int
		want   string
	}{
		{request{path: "/"}, 200, "console /"},
		{request{path: "/login"}, 200, "console /login"},
		{request{method: "POST", path: "/accounts/shop"}, 200, "console /accounts/shop"},
		{request{path: "/apis"}, 200, "console /apis"},
		{request{path: "/healthz/"}, 200, "console /healthz/"},
		{request{path: "/healthz"}, 200, "ok\n"},
		{request{path: "/readyz"}, 200, "ready\n"},
		{request{path: "/api/status"}, 401, "a valid bearer token is required"},
		{request{path: "/api/status", token: token}, 200, `"rules": 2`},
		{request{path: "/api/nosuch"}, 401, "bearer token"},
		{request{path: "/api/nosuch", token: token}, 404, ""},
		{request{path: "/api"}, 401, "bearer token"},
		{request{path: "/metrics"}, 401, "bearer token"},
		{request{method: "PUT", path: "/metrics", token: token}, 404, ""},
		{request{method: "DELETE", path: "/api/status", token: token}, 405, ""},
	} {
		w := c.req.do(t, s)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) || (c.want == "" && strings.Contains(w.Body.String(), "console")) {
			t.Errorf("%s %s: %d %q, want %d and %q", c.req.method, c.req.path, w.Code, w.Body.String(), c.status, c.want)
		}
	}
}

// TestConsoleWithinTheLimits: the console is served by the same listener,
// under the same limits.
func TestConsoleWithinTheLimits(t *testing.T) {
	t.Parallel()
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("console")) })
	addr := serve(t, New(newFake(), Options{Console: console, Limits: Limits{MaxHeaderBytes: 1 << 10}}))
	for size, want := range map[int]int{100: 200, 8 << 10: http.StatusRequestHeaderFieldsTooLarge} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%d bytes of header: %d, want %d", size, resp.StatusCode, want)
		}
	}
}
