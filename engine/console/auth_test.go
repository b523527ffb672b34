package console

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var tlsState tls.ConnectionState

const token = "s3cret-admin-token"

func tokenConsole(t *testing.T, opts Options) (*browser, *fake) {
	f := newFake()
	opts.Token = token
	return newBrowser(t, New(f, opts)), f
}

func TestOpenWithoutToken(t *testing.T) {
	t.Parallel()
	b, _ := openConsole(t, nil)
	if w := b.get("/"); w.Code != 200 {
		t.Fatalf("no token: %d", w.Code)
	}
	if strings.Contains(b.get("/").Body.String(), "/signout") {
		t.Error("a sign-out button without sessions")
	}
}

func TestNoTokenNeedsLoopback(t *testing.T) {
	t.Parallel()
	b := newBrowser(t, New(newFake(), Options{Loopback: false}))
	for _, path := range []string{"/", "/signin", "/events/stream", "/login/shop/qr.png"} {
		if w := b.get(path); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "admin.token") {
			t.Errorf("%s on a public listener without a token: %d", path, w.Code)
		}
	}
}

// TestNoTokenRefusesOtherHosts: a site that rebinds its own name to
// 127.0.0.1 is same-origin with the console unless the Host is checked.
func TestNoTokenRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	h := New(newFake(), Options{Loopback: true})
	for host, want := range map[string]int{
		"127.0.0.1:9090": 200, "localhost:9090": 200, "[::1]:9090": 200, "127.8.9.1": 200, "app.localhost:1": 200,
		"evil.example:9090": 421, "evil.example": 421, "127.0.0.1.evil.example": 421, "": 421, "10.0.0.1:9090": 421,
	} {
		b := newBrowser(t, h)
		b.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { r.Host = host; h.ServeHTTP(w, r) })
		if w := b.get("/"); w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
	// With a token the cookie, bound to the real host, is the defence.
	tb, _ := tokenConsole(t, Options{})
	inner := tb.h
	tb.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { r.Host = "console.example"; inner.ServeHTTP(w, r) })
	if w := tb.get("/signin"); w.Code != 200 {
		t.Errorf("token console on another host: %d", w.Code)
	}
}

func TestTokenRequiresSignIn(t *testing.T) {
	t.Parallel()
	b, _ := tokenConsole(t, Options{})
	for _, path := range []string{"/", "/login", "/rules?account=shop&text=x", "/nowhere"} {
		w := b.get(path)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/signin?next="+url.QueryEscape(path) {
			t.Errorf("GET %s: %d to %q", path, w.Code, w.Header().Get("Location"))
		}
	}
	if w := b.post("/rules/reload", nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/signin?next=%2F" {
		t.Errorf("POST without a session: %d to %q", w.Code, w.Header().Get("Location"))
	}
	for _, path := range []string{"/fragments/overview", "/fragments/login/shop", "/events/stream", "/login/shop/qr.png"} {
		if w := b.get(path); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 401", path, w.Code)
		}
	}
	w := b.get("/signin")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `<label for="token">`) || !strings.Contains(w.Body.String(), `type="password"`) {
		t.Fatalf("sign-in page: %d\n%s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), `href="/rules"`) {
		t.Error("the sign-in page shows the navigation")
	}
}

func TestSignIn(t *testing.T) {
	t.Parallel()
	for _, overTLS := range []bool{false, true} {
		b, _ := tokenConsole(t, Options{})
		b.tls = overTLS
		w := b.post("/signin", url.Values{"token": {"wrong"}, "next": {"/rules"}})
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "令牌不正确") {
			t.Fatalf("wrong token: %d\n%s", w.Code, w.Body)
		}
		if b.cookies[sessionCookie] != "" {
			t.Fatal("a wrong token got a session")
		}
		w = b.post("/signin", url.Values{"token": {token}, "next": {"/rules"}})
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/rules" {
			t.Fatalf("right token: %d to %q", w.Code, w.Header().Get("Location"))
		}
		var c *http.Cookie
		for _, k := range w.Result().Cookies() {
			if k.Name == sessionCookie {
				c = k
			}
		}
		if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != overTLS ||
			c.MaxAge != int(DefaultSessionTTL/time.Second) || len(c.Value) < 43 {
			t.Fatalf("session cookie over TLS=%v: %+v", overTLS, c)
		}
		if w := b.get("/"); w.Code != 200 || !strings.Contains(w.Body.String(), `action="/signout"`) {
			t.Fatalf("signed in: %d", w.Code)
		}
		if w := b.get("/signin?next=/events"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/events" {
			t.Errorf("sign-in page when signed in: %d to %q", w.Code, w.Header().Get("Location"))
		}
		id := b.cookies[sessionCookie]
		if w := b.post("/signout", nil); w.Code != http.StatusSeeOther || b.cookies[sessionCookie] != "" {
			t.Fatalf("sign-out: %d, cookie %q", w.Code, b.cookies[sessionCookie])
		}
		b.cookies[sessionCookie] = id
		if w := b.get("/"); w.Code != http.StatusSeeOther {
			t.Errorf("a signed-out session still works: %d", w.Code)
		}
	}
}

func TestForgedSessionRefused(t *testing.T) {
	t.Parallel()
	b, _ := tokenConsole(t, Options{})
	b.signIn(token)
	real := b.cookies[sessionCookie]
	for _, forged := range []string{"", "x", real[:len(real)-1], real + "A", strings.ToUpper(real), token} {
		b.cookies[sessionCookie] = forged
		if w := b.get("/"); w.Code != http.StatusSeeOther {
			t.Errorf("forged cookie %q: %d", forged, w.Code)
		}
	}
}

func TestSessionExpires(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b, _ := tokenConsole(t, Options{SessionTTL: time.Hour})
		b.signIn(token)
		time.Sleep(time.Hour - time.Second)
		if w := b.get("/"); w.Code != 200 {
			t.Fatalf("before expiry: %d", w.Code)
		}
		time.Sleep(time.Second)
		if w := b.get("/"); w.Code != http.StatusSeeOther {
			t.Fatalf("after expiry: %d", w.Code)
		}
	})
}

func TestSessionsBounded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(newFake(), Options{Token: token, MaxSessions: 2})
		var browsers []*browser
		for range 3 {
			b := newBrowser(t, h)
			b.signIn(token)
			browsers = append(browsers, b)
			time.Sleep(time.Second) // so that the first is the one closest to its end
		}
		for i, want := range []int{http.StatusSeeOther, 200, 200} {
			if w := browsers[i].get("/"); w.Code != want {
				t.Errorf("session %d: %d, want %d", i, w.Code, want)
			}
		}
	})
}

func TestSignInRateLimited(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b, _ := tokenConsole(t, Options{})
		for i := range signInBurst {
			if w := b.post("/signin", url.Values{"token": {"guess"}}); w.Code != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i, w.Code)
			}
		}
		w := b.post("/signin", url.Values{"token": {token}})
		if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "失败次数太多") || b.cookies[sessionCookie] != "" {
			t.Fatalf("past the limit, the right token: %d", w.Code)
		}
		other := newBrowser(t, b.h)
		other.remote = "192.0.2.7:5000"
		if w := other.post("/signin", url.Values{"token": {"guess"}}); w.Code != http.StatusUnauthorized {
			t.Errorf("another address is limited too: %d", w.Code)
		}
		time.Sleep(signInEvery)
		b.signIn(token)
	})
}

func TestSignInStaysOnSite(t *testing.T) {
	t.Parallel()
	for _, next := range []string{"//evil.example/x", "/\\evil.example", "https://evil.example", "evil", ""} {
		b, _ := tokenConsole(t, Options{})
		w := b.post("/signin", url.Values{"token": {token}, "next": {next}})
		if loc := w.Header().Get("Location"); loc != "/" {
			t.Errorf("next %q: redirected to %q", next, loc)
		}
	}
}

func TestTokenMatchesHook(t *testing.T) {
	t.Parallel()
	var asked []string
	b, _ := tokenConsole(t, Options{TokenMatches: func(configured, given string) bool {
		asked = append(asked, configured+"="+given)
		return given == "via-hook"
	}})
	b.signIn("via-hook")
	if !slices.Equal(asked, []string{token + "=via-hook"}) {
		t.Errorf("hook asked %q", asked)
	}
}

func TestConstantTimeMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"abc", "abc", true}, {"abc", "abd", false}, {"abc", "abcd", false}, {"", "", true}, {"abc", "", false}} {
		if got := constantTimeMatch(tc.a, tc.b); got != tc.want {
			t.Errorf("%q vs %q: %v", tc.a, tc.b, got)
		}
	}
}

// TestCSRF posts with every way a forged request could look, in both modes.
func TestCSRF(t *testing.T) {
	t.Parallel()
	modes := map[string]func(t *testing.T) (*browser, *fake){
		"no token": func(t *testing.T) (*browser, *fake) { return openConsole(t, nil) },
		"token": func(t *testing.T) (*browser, *fake) {
			b, f := tokenConsole(t, Options{})
			b.signIn(token)
			return b, f
		},
	}
	attempts := map[string]struct {
		csrf    func(b *browser) string
		headers []string
		want    int
	}{
		"right":                {func(b *browser) string { return b.csrf() }, nil, http.StatusSeeOther},
		"right by header":      {func(*browser) string { return "" }, []string{csrfHeader, "from-page"}, http.StatusSeeOther},
		"none":                 {func(*browser) string { return "" }, nil, http.StatusForbidden},
		"wrong":                {func(*browser) string { return "AAAA" + strings.Repeat("x", 39) }, nil, http.StatusForbidden},
		"cross-site":           {func(b *browser) string { return b.csrf() }, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		"same-site other port": {func(b *browser) string { return b.csrf() }, []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		"foreign origin":       {func(b *browser) string { return b.csrf() }, []string{"Sec-Fetch-Site", "", "Origin", "http://evil.example"}, http.StatusForbidden},
		"no browser headers":   {func(b *browser) string { return b.csrf() }, []string{"Sec-Fetch-Site", "", "Origin", ""}, http.StatusSeeOther},
	}
	for mode, open := range modes {
		for name, tc := range attempts {
			t.Run(mode+"/"+name, func(t *testing.T) {
				t.Parallel()
				b, f := open(t)
				headers := slices.Clone(tc.headers)
				if len(headers) == 2 && headers[1] == "from-page" {
					headers[1] = b.csrf()
				}
				form := url.Values{csrfField: {tc.csrf(b)}}
				w := b.do(http.MethodPost, "/dead-letters/7/retry", form, headers...)
				if w.Code != tc.want {
					t.Fatalf("%d, want %d\n%s", w.Code, tc.want, w.Body)
				}
				if calls := f.called(); (tc.want == http.StatusForbidden) != (len(calls) == 0) {
					t.Errorf("backend calls %q after %d", calls, w.Code)
				}
			})
		}
	}
}

// TestCSRFTokenBelongsToItsSession: the token of one session does not work
// for another, nor the browser's double-submit cookie for a session.
func TestCSRFTokenBelongsToItsSession(t *testing.T) {
	t.Parallel()
	h := New(newFake(), Options{Token: token})
	alice, mallory := newBrowser(t, h), newBrowser(t, h)
	alice.signIn(token)
	mallory.signIn(token)
	if w := alice.post("/rules/reload", url.Values{csrfField: {mallory.csrf()}}); w.Code != http.StatusForbidden {
		t.Errorf("another session's token: %d", w.Code)
	}
	if w := alice.post("/rules/reload", url.Values{csrfField: {alice.cookies[csrfCookie]}}); w.Code != http.StatusForbidden {
		t.Errorf("the pre-session cookie's token: %d", w.Code)
	}
}

// TestCSRFCookie: without a token the browser's token lives in a cookie no
// script can read.
func TestCSRFCookie(t *testing.T) {
	t.Parallel()
	b, _ := openConsole(t, nil)
	w := b.get("/")
	var c *http.Cookie
	for _, k := range w.Result().Cookies() {
		if k.Name == csrfCookie {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || len(c.Value) < 43 {
		t.Fatalf("csrf cookie: %+v", c)
	}
	if b.csrf() != c.Value {
		t.Error("the form's token is not the cookie's")
	}
	if w := b.get("/"); len(w.Result().Cookies()) != 0 {
		t.Errorf("the cookie is set again: %v", w.Result().Cookies())
	}
}
