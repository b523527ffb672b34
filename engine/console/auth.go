package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	sessionCookie = "finderbot_session"
	csrfCookie    = "finderbot_csrf"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

// constantTimeMatch compares hashes, so that neither the content nor the
// length of the configured token leaks through timing.
func constantTimeMatch(configured, given string) bool {
	a, b := sha256.Sum256([]byte(configured)), sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// randomToken is 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// loopbackHost says whether a Host header names this machine. Without a
// token the console answers only such hosts: a page of another site that
// rebinds its own name to 127.0.0.1 (DNS rebinding) would otherwise be
// same-origin with it and could read it and post to it.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// session is one signed-in browser.
type session struct {
	csrf    string
	expires time.Time
}

// sessions are the signed-in browsers, kept in memory only: a restart signs
// everyone out, which is the safe direction. Keys are hashes of the ids, so
// a map lookup's timing says nothing about an id.
type sessions struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[[32]byte]session
}

func newSessions(ttl time.Duration, max int) *sessions {
	return &sessions{ttl: ttl, max: max, m: make(map[[32]byte]session)}
}

// start opens a session, making room by forgetting expired sessions and then
// the one closest to its end.
func (s *sessions) start(now time.Time) (id string, sess session) {
	id = randomToken()
	sess = session{csrf: randomToken(), expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		var oldest [32]byte
		var oldestEnd time.Time
		for k, v := range s.m {
			if !v.expires.After(now) {
				delete(s.m, k)
				continue
			}
			if oldestEnd.IsZero() || v.expires.Before(oldestEnd) {
				oldest, oldestEnd = k, v.expires
			}
		}
		if len(s.m) >= s.max {
			delete(s.m, oldest)
		}
	}
	s.m[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// get finds the live session of id.
func (s *sessions) get(id string, now time.Time) (session, bool) {
	if id == "" {
		return session{}, false
	}
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[key]
	if ok && !sess.expires.After(now) {
		delete(s.m, key)
		return session{}, false
	}
	return sess, ok
}

// end forgets the session of id.
func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(id)))
	s.mu.Unlock()
}

// failures limits wrong tokens per client IP: a burst of signInBurst, then
// one every signInEvery.
type failures struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

const (
	signInBurst   = 5
	signInEvery   = 12 * time.Second
	maxFailingIPs = 4096
)

func clientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func (f *failures) limiter(ip string) *rate.Limiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || len(f.m) >= maxFailingIPs {
		// Forgetting everyone only hands each address a fresh burst, which
		// a new address gets anyway.
		f.m = make(map[string]*rate.Limiter)
	}
	l, ok := f.m[ip]
	if !ok {
		l = rate.NewLimiter(rate.Every(signInEvery), signInBurst)
		f.m[ip] = l
	}
	return l
}

// blocked says the client has no failure left to spend.
func (f *failures) blocked(r *http.Request, now time.Time) bool {
	return f.limiter(clientIP(r)).TokensAt(now) < 1
}

// failed spends one failure of the client.
func (f *failures) failed(r *http.Request, now time.Time) {
	f.limiter(clientIP(r)).AllowN(now, 1)
}

// setCookie sets a console cookie: HttpOnly, SameSite=Strict, Path=/, and
// Secure when the request came over TLS. maxAge < 0 deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

func cookie(r *http.Request, name string) string {
	if c, err := r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

// safeNext keeps a redirect target after sign-in on this site: a path, not
// "//host" or "/\host", which browsers take for another host.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}
