package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TokenMatches reports whether given is the configured token, taking the
// same time whatever given is, so that a client cannot find the token, or
// its length, by timing guesses: both are hashed to equal lengths before
// they are compared. An empty configured token matches nothing.
func TokenMatches(configured, given string) bool {
	want, got := sha256.Sum256([]byte(configured)), sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && configured != ""
}

// FromLoopback reports whether r came over a loopback connection: its peer
// address, not any header a client or proxy may set.
func FromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// authorize applies the API's access rules: with a token configured, every
// request but the probes must bear it; without one, only loopback clients
// are served (the configuration refuses a listener elsewhere without a
// token; this holds the same at each request). /healthz and /readyz stay
// open for probes.
func (s *Server) authorize(next http.Handler) http.Handler {
	token := s.opts.Token
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		if token == "" {
			if !FromLoopback(r) {
				writeError(w, http.StatusForbidden, "admin.token is not set, so the admin API answers loopback clients only")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !TokenMatches(token, got) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="finderbot"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}
