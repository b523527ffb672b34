package engine

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// AdminLimits bound what clients of the admin listener may hold: a client
// that sends its header or body slowly, or keeps an idle connection open,
// is cut off, and the connections served at once are capped, the others
// waiting in the listen queue. Zero fields take the defaults.
//
// There is no write timeout on the server: a response that streams (Server-
// Sent Events, a copy of the store) may last as long as it needs. A handler
// that wants one sets it with http.ResponseController.
type AdminLimits struct {
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

// Defaults of AdminLimits.
const (
	DefaultAdminReadHeaderTimeout = 5 * time.Second
	DefaultAdminReadTimeout       = 30 * time.Second
	DefaultAdminIdleTimeout       = 60 * time.Second
	DefaultAdminMaxHeaderBytes    = 64 << 10
	DefaultAdminMaxConns          = 256
)

func (l AdminLimits) withDefaults() AdminLimits {
	or := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	or(&l.ReadHeaderTimeout, DefaultAdminReadHeaderTimeout)
	or(&l.ReadTimeout, DefaultAdminReadTimeout)
	or(&l.IdleTimeout, DefaultAdminIdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultAdminMaxHeaderBytes
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultAdminMaxConns
	}
	return l
}

// adminServer returns the server of the admin API with the limits applied,
// and ln capped at the connections it may serve at once.
func adminServer(h http.Handler, ln net.Listener, lim AdminLimits) (*http.Server, net.Listener) {
	lim = lim.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
	}
	return srv, netutil.LimitListener(ln, lim.MaxConns)
}
