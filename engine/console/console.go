// Package console is the operator's browser console: server-rendered pages
// over a Backend, embedded in the binary, with no build step and nothing
// loaded from elsewhere.
//
// Every action is a plain HTML form that posts and redirects back, so the
// console works without JavaScript; its one script only adds live updates,
// re-fetching a page's fragment when the event stream (Server-Sent Events)
// says something changed. A strict Content-Security-Policy forbids inline
// scripts and styles on every response.
//
// Access: with a token configured, the pages want a signed-in session (a
// cookie set by /signin); without one, the console is open but answers only
// on a loopback listener and a loopback Host. Every POST carries a CSRF
// token, per session or, without a token, per browser (double submit), and
// must come from the console's own origin.
package console

import (
	"bytes"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Options configure the console.
type Options struct {
	// Token is the configured admin token; "" leaves the console open,
	// which it allows only on a loopback listener.
	Token string
	// Loopback says the listener is on a loopback address.
	Loopback bool
	// TokenMatches compares the configured token with a given one in
	// constant time; nil uses the console's own comparison.
	TokenMatches func(configured, given string) bool
	// SessionTTL is how long a sign-in lasts (default 12h).
	SessionTTL time.Duration
	// MaxSessions bounds the signed-in browsers (default 64); a sign-in
	// past it ends the session closest to its end.
	MaxSessions int
	// Heartbeat is the pause between comments on a quiet event stream
	// (default 15s), which keeps proxies from closing it.
	Heartbeat time.Duration
	// MaxStreams bounds the event streams open at once (default 32).
	MaxStreams int
}

// Defaults of Options.
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultMaxSessions = 64
	DefaultHeartbeat   = 15 * time.Second
	DefaultMaxStreams  = 32
)

// contentSecurityPolicy allows only the console's own script, style, images
// and connections: no inline code, no framing, no form posting elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxFormBytes bounds a posted form; the largest field is a tried text.
const maxFormBytes = 64 << 10

type console struct {
	b            Backend
	opts         Options
	sessions     *sessions
	failures     failures
	origin       *http.CrossOriginProtection
	pages        map[string]*template.Template
	streams      atomic.Int64
	listings     listings // the Overview's, kept between requests
	overviewHTML renderedOverview
	mux          *http.ServeMux
}

// New returns the console's handler. It starts nothing: the only goroutines
// and timers are those of the event streams open at the moment, and the
// Overview's refresh a request may start.
func New(backend Backend, opts Options) http.Handler {
	if opts.TokenMatches == nil {
		opts.TokenMatches = constantTimeMatch
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	c := &console{
		b:        backend,
		opts:     opts,
		sessions: newSessions(opts.SessionTTL, opts.MaxSessions),
		origin:   http.NewCrossOriginProtection(),
		pages:    pages,
		mux:      http.NewServeMux(),
	}
	c.routes()
	return c
}

// ServeHTTP sets the headers every response carries, then routes.
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

// access is who may reach a route.
type access int

const (
	public access = iota // anyone the listener lets in: the sign-in page
	page                 // a signed-in browser; others are sent to /signin
	data                 // a signed-in browser; others get 401 (fragments, the stream, images)
)

// handle registers a route behind the checks of its access, with the view
// every page starts from.
func (c *console) handle(pattern string, a access, h func(http.ResponseWriter, *http.Request, *view)) {
	c.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		v := &view{lang: pickLang(r), now: time.Now(), path: r.URL.Path, request: r}
		if r.URL.Query().Has("lang") {
			setCookie(w, r, langCookie, string(v.lang), 365*24*3600)
		}
		if c.opts.Token == "" {
			if !c.opts.Loopback {
				c.fail(w, v, http.StatusForbidden, v.T("err.remote"))
				return
			}
			if !loopbackHost(r.Host) {
				c.fail(w, v, http.StatusMisdirectedRequest, v.T("err.host"))
				return
			}
		}
		sid := cookie(r, sessionCookie)
		sess, signedIn := c.sessions.get(sid, v.now)
		v.SignedIn = signedIn
		v.ShowNav = c.opts.Token == "" || signedIn
		if c.opts.Token != "" && a != public && !signedIn {
			if a == page {
				// A form posted after the session ended comes back to the
				// overview once signed in: its page is not known here.
				next := "/"
				if r.Method == http.MethodGet {
					next = r.URL.RequestURI()
				}
				http.Redirect(w, r, "/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
				return
			}
			http.Error(w, "console: sign in first", http.StatusUnauthorized)
			return
		}
		v.CSRF = sess.csrf
		if !signedIn {
			// Double submit: the browser's own random cookie. Another site
			// cannot read it; one that can set it (another port of this
			// host: cookies ignore ports) still fails the origin check.
			if v.CSRF = cookie(r, csrfCookie); v.CSRF == "" {
				v.CSRF = randomToken()
				setCookie(w, r, csrfCookie, v.CSRF, 0)
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.fail(w, v, http.StatusBadRequest, "console: the form cannot be read: "+err.Error())
				return
			}
			if !c.sameOrigin(r, v.CSRF) {
				c.fail(w, v, http.StatusForbidden, v.T("err.csrf"))
				return
			}
		}
		if a == page && r.Method == http.MethodGet {
			v.Flash = takeFlash(w, r)
		}
		h(w, r, v)
	})
}

// sameOrigin says a state-changing request came from the console's own
// pages: the browser says it is same-origin, and it carries the CSRF token.
func (c *console) sameOrigin(r *http.Request, want string) bool {
	if c.origin.Check(r) != nil {
		return false
	}
	given := r.Header.Get(csrfHeader)
	if given == "" {
		given = r.PostFormValue(csrfField)
	}
	return want != "" && given != "" && constantTimeMatch(want, given)
}

// render writes a page, or with fragment != "" one of its fragments. The
// template runs into a buffer first, so that a failing one is a clean 500.
func (c *console) render(w http.ResponseWriter, status int, name, fragment string, v *view) {
	if page, ok := c.execute(w, name, fragment, v); ok {
		writeHTML(w, status, page)
	}
}

// execute runs the template of page name, or of its fragment, into a
// buffer and returns the bytes; it answers 500 itself when the template
// fails.
func (c *console) execute(w http.ResponseWriter, name, fragment string, v *view) ([]byte, bool) {
	t := c.pages[name]
	if fragment == "" {
		fragment = "layout"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, fragment, v); err != nil {
		http.Error(w, fmt.Sprintf("console: page %s: %v", name, err), http.StatusInternalServerError)
		return nil, false
	}
	return buf.Bytes(), true
}

// writeHTML answers with an HTML page.
func writeHTML(w http.ResponseWriter, status int, page []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(page)
}

// fail answers with the error page.
func (c *console) fail(w http.ResponseWriter, v *view, status int, text string) {
	v.Title, v.Fragment, v.Append = v.T("title.error"), "", false
	v.Flash = &flash{Text: text}
	c.render(w, status, "error", "", v)
}

// flash is the outcome of an action, shown once on the page it returns to.
type flash struct {
	OK   bool
	Text string
}

const (
	flashCookie   = "finderbot_flash"
	maxFlashBytes = 2048 // a cookie holds about 4 KiB
)

// back redirects after a POST to the page it came from (Post/Redirect/Get),
// carrying the outcome in a short-lived cookie rather than the URL, so that
// no link can make the console show a message of someone else's choosing.
func back(w http.ResponseWriter, r *http.Request, to string, ok bool, text string) {
	if len(text) > maxFlashBytes {
		text = strings.ToValidUTF8(text[:maxFlashBytes], "") + "…"
	}
	mark := "0"
	if ok {
		mark = "1"
	}
	setCookie(w, r, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(mark+text)), 60)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// takeFlash reads the outcome left by back, and clears it.
func takeFlash(w http.ResponseWriter, r *http.Request) *flash {
	raw, err := base64.RawURLEncoding.DecodeString(cookie(r, flashCookie))
	if err != nil || len(raw) == 0 {
		return nil
	}
	setCookie(w, r, flashCookie, "", -1)
	return &flash{OK: raw[0] == '1', Text: string(raw[1:])}
}

// outcome is back with an action's error, or with the success text.
func outcome(w http.ResponseWriter, r *http.Request, to string, err error, okText string) {
	if err != nil {
		back(w, r, to, false, err.Error())
		return
	}
	back(w, r, to, true, okText)
}

//go:embed assets
var assets embed.FS
