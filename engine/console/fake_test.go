package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostile is put into every text the fake hands the console.
const hostile = `<script>alert(1)</script>`

// pngBytes is a QR-code-sized checkerboard, so that the demo shows an image.
var pngBytes = func() []byte {
	img := image.NewGray(image.Rect(0, 0, 29, 29))
	for i := range img.Pix {
		img.Pix[i] = uint8(255 * ((i/29 + i%29) % 2))
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}()

// fake is a Backend with fixed data that records the actions asked of it.
type fake struct {
	failWith error // returned by every action when set

	mu    sync.Mutex
	calls []string

	events     chan Event    // published to the subscriber
	subscribed chan struct{} // one value per Subscribe
	ended      chan struct{} // one value per subscription that ended
	subs       atomic.Int64  // subscriptions alive
}

var _ Backend = (*fake)(nil)

func newFake() *fake {
	return &fake{events: make(chan Event), subscribed: make(chan struct{}, 16), ended: make(chan struct{}, 16)}
}

func (f *fake) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.failWith
}

func (f *fake) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var t0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.Local)

func (f *fake) Overview(context.Context) Overview {
	return Overview{
		Started: t0,
		Accounts: []Account{
			{Name: "shop", State: "online", Detail: hostile, WcID: "wxid_shop", LastSync: time.Now().Add(-90 * time.Second),
				InPerMin: 2.5, OutPerMin: 1, Outbox: 3, InDoubt: 1, DeadLetters: 2},
			{Name: "idle", State: "logged_out"},
		},
		Sessions: []Session{{Name: "crm", Kind: "token", State: "needs_code", Detail: hostile}},
		Plugins:  []Plugin{{Name: "keyword", Version: "v1.2.0", State: "running", Restarts: 4, Problem: hostile}},
	}
}

func (f *fake) AccountNames(ctx context.Context) []string {
	var names []string
	for _, a := range f.Overview(ctx).Accounts {
		names = append(names, a.Name)
	}
	return names
}

func (f *fake) Logins(context.Context) []Login {
	return []Login{
		{Name: "shop", Kind: "wkteam", State: "waiting_for_scan", QR: true, QRExpires: time.Now().Add(2 * time.Minute),
			SliderURL: "https://slider.example/check?x=1"},
		{Name: "crm", Kind: "token", State: "needs_code", NeedsCode: true, CodeKind: "sms", Detail: hostile},
		{Name: "idle", Kind: "wkteam", State: "logged_out"},
		{Name: "evil", Kind: "wkteam", State: "slider", SliderURL: "javascript:alert(1)"},
		{Name: "done", Kind: "appkey", State: "online", Online: true},
		{Name: "a/b", Kind: "token", State: "logged_out"},
	}
}

func (f *fake) LoginQR(_ context.Context, name string) ([]byte, error) {
	switch name {
	case "shop":
		return pngBytes, nil
	case "broken":
		return []byte("<svg/>"), nil
	}
	return nil, fmt.Errorf("no QR code for %s: %w", name, ErrNotFound)
}

func (f *fake) StartLogin(_ context.Context, name string) error { return f.record("start %s", name) }

func (f *fake) SubmitCode(_ context.Context, name, code string) error {
	return f.record("code %s %s", name, code)
}

func (f *fake) Conversations(_ context.Context, account string, limit int) ([]Conversation, error) {
	if account != "shop" {
		return nil, fmt.Errorf("account %q: %w", account, ErrNotFound)
	}
	return []Conversation{
		{Account: "shop", ID: "old", Peer: "alice", Last: t0, Messages: []Message{{Time: t0, Text: "old conversation"}}},
		{Account: "shop", ID: "new", Peer: "bob", Last: t0.Add(time.Hour), Messages: []Message{
			{Time: t0.Add(time.Minute), Text: "first " + hostile, Rules: []string{"greet"}, Actions: []string{"reply"}},
			{Time: t0.Add(time.Hour), FromSelf: true, Text: "second"},
		}},
	}, nil
}

func (f *fake) DeadLetters(context.Context, int) ([]DeadLetter, error) {
	return []DeadLetter{
		{ID: 7, Kind: "reply", Account: "shop", To: "bob", Text: strings.Repeat("长", 100) + hostile, Reason: hostile,
			Created: t0, History: []Attempt{{Time: t0, Error: "timeout"}, {Time: t0.Add(time.Second), Error: "1001"}}},
		{ID: 8, Kind: "send", Account: "shop", To: "carol", Text: "hi", Reason: "in doubt", InDoubt: true, Created: t0},
		{ID: 9, Kind: "reply", Account: "idle", To: "dan", Text: "yo", Reason: "offline", Created: t0},
	}, nil
}

func (f *fake) RetryDeadLetter(_ context.Context, id uint64) error { return f.record("retry %d", id) }
func (f *fake) DropDeadLetter(_ context.Context, id uint64) error  { return f.record("drop %d", id) }

func (f *fake) RetryDeadLetters(_ context.Context, kind string) (int, error) {
	return 2, f.record("retry-kind %s", kind)
}

func (f *fake) Rules(context.Context) []Rule {
	return []Rule{{Name: "greet", File: "rules/greet.yaml", Line: 3, Kind: "message", Matches: 12, Failures: 1}}
}

func (f *fake) TryMessage(_ context.Context, account, text string) (Trial, error) {
	if text == "fail" {
		return Trial{}, errors.New("rules: no account " + account)
	}
	return Trial{Answer: "greet", Verdicts: []Verdict{
		{Rule: "greet", Matched: true, Why: "msg.Text == " + text, Actions: []string{"reply"}},
		{Rule: "late", Why: "cooldown " + hostile},
	}}, nil
}

func (f *fake) Reload(context.Context) error { return f.record("reload") }

func (f *fake) RecentEvents(context.Context, int) []Event {
	return []Event{
		{Seq: 1, Time: t0, Kind: "session.online", Account: "shop", Message: "older"},
		{Seq: 2, Time: t0.Add(time.Second), Kind: "session.needs_scan", Account: "shop", Message: "newer " + hostile},
	}
}

func (f *fake) Subscribe(ctx context.Context) <-chan Event {
	out := make(chan Event)
	f.subs.Add(1)
	signal(f.subscribed)
	go func() {
		defer func() {
			f.subs.Add(-1)
			close(out)
			signal(f.ended)
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-f.events:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// signal notes an event for a test that waits on ch, never blocking one
// that does not.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// browser is a test client that keeps cookies and sends what a browser
// sends on a same-origin form post.
type browser struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]string
	remote  string
	tls     bool
}

func newBrowser(t *testing.T, h http.Handler) *browser {
	return &browser{t: t, h: h, cookies: map[string]string{}, remote: "127.0.0.1:40000"}
}

// do sends a request; headers are name, value pairs.
func (b *browser) do(method, target string, form url.Values, headers ...string) *httptest.ResponseRecorder {
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequest(method, target, body)
	r.Host = "127.0.0.1:9090"
	r.RemoteAddr = b.remote
	if b.tls {
		r.TLS = &tlsState
	}
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost {
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.Header.Set("Origin", "http://127.0.0.1:9090")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			r.Header.Del(headers[i])
		} else {
			r.Header.Set(headers[i], headers[i+1])
		}
	}
	for k, v := range b.cookies {
		r.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return w
}

func (b *browser) get(target string, headers ...string) *httptest.ResponseRecorder {
	return b.do(http.MethodGet, target, nil, headers...)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the token the console puts into this browser's forms.
func (b *browser) csrf() string {
	w := b.get("/dead-letters")
	if w.Code == http.StatusSeeOther {
		w = b.get("/signin")
	}
	m := csrfInput.FindStringSubmatch(w.Body.String())
	if m == nil {
		b.t.Fatalf("no csrf field in %s", w.Body)
	}
	return m[1]
}

// post submits a form with the browser's CSRF token.
func (b *browser) post(target string, form url.Values, headers ...string) *httptest.ResponseRecorder {
	if form == nil {
		form = url.Values{}
	}
	if !form.Has(csrfField) {
		form.Set(csrfField, b.csrf())
	}
	return b.do(http.MethodPost, target, form, headers...)
}

// signIn signs the browser in with token.
func (b *browser) signIn(token string) {
	w := b.post("/signin", url.Values{"token": {token}, "next": {"/"}})
	if w.Code != http.StatusSeeOther || b.cookies[sessionCookie] == "" {
		b.t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
}

func openConsole(t *testing.T, f *fake) (*browser, *fake) {
	if f == nil {
		f = newFake()
	}
	return newBrowser(t, New(f, Options{Loopback: true})), f
}
