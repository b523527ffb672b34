package admin

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits bound what clients of the admin listener may hold: a client that
// sends its header or body slowly, or keeps an idle connection open, is cut
// off, and the connections served at once are capped, the others waiting in
// the listen queue. Zero fields take the defaults.
//
// There is no write timeout on the server: a response that streams (Server-
// Sent Events, a copy of the store) may last as long as it needs. A handler
// that wants one sets it with http.ResponseController.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's header (default 5s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (default
	// 30s). Once the request is read, its handler may take as long as it
	// needs: net/http lifts the deadline then.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for this
	// long (default 60s).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's header (default 64 KiB); a larger
	// one gets 431.
	MaxHeaderBytes int
	// MaxConns caps the connections served at once (default 256).
	MaxConns int
}

// Defaults of Limits.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConns          = 256
)

func (l Limits) withDefaults() Limits {
	or := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	or(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	or(&l.ReadTimeout, DefaultReadTimeout)
	or(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

// httpServer returns a server of h with the limits applied.
func (l Limits) httpServer(h http.Handler) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// listener returns ln capped at the connections it may serve at once.
func (l Limits) listener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, l.withDefaults().MaxConns)
}
