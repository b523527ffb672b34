// Package admin is the daemon's admin HTTP API, the server that carries it,
// and the client the finderbot commands use to reach it.
//
// The API serves probes (/healthz, /readyz), Prometheus metrics (/metrics)
// and the operator's actions under /api/: status, dead letters, the store's
// backup and check, login codes, plugin restarts and rule reloads. It knows
// the daemon only through Backend, so that its HTTP behaviour (auth, status
// codes, limits, redaction) is tested against a fake.
//
// Every response passes the secrets filter (engine/redact); every
// connection is bounded by Limits. A configured bearer token guards
// everything but the probes; without one, only loopback clients are served.
// A browser console may be mounted at "/" (Options.Console): it sits inside
// the filter and the limits but outside the bearer check, since it signs
// its users in itself, with TokenMatches and FromLoopback applying the
// API's own rules.
package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/finderbot/finderbot/engine/redact"
	"github.com/finderbot/finderbot/engine/store"
)

// Backend is what the admin API asks of the daemon. Its methods may be
// called concurrently, from any request.
type Backend interface {
	// Status reports every account, session and plugin. It holds no
	// secret.
	Status() Status
	// NotOnline names the accounts not online yet; none means ready. It is
	// cheap and reads no store: /readyz serves probes without a token.
	NotOnline() []string
	// DeadLetters lists the dead letters, oldest first, at most limit of
	// them (0 for all).
	DeadLetters(ctx context.Context, limit int) ([]store.DeadLetter, error)
	// RetryDeadLetter puts the dead letter of item id back into the outbox,
	// at the end of its conversation with its attempts reset, and returns
	// the item queued. It fails with store.ErrNotFound when there is none.
	RetryDeadLetter(ctx context.Context, id uint64) (store.Item, error)
	// DropDeadLetter forgets the dead letter of item id, failing with
	// store.ErrNotFound when there is none.
	DropDeadLetter(ctx context.Context, id uint64) error
	// InboundDeadLetters lists the page items that could not be processed,
	// oldest first, at most limit of them (0 for all).
	InboundDeadLetters(ctx context.Context, limit int) ([]store.InboundDeadLetter, error)
	// BackupStore writes a consistent copy of the running store to w,
	// calling begin with its size before the first byte, and returns the
	// bytes written; ErrUnsupported when the store cannot do it.
	BackupStore(ctx context.Context, w io.Writer, begin func(size int64)) (int64, error)
	// CheckStore checks the running store completely; ErrUnsupported when
	// the store cannot do it.
	CheckStore(ctx context.Context) (store.Report, error)
	// SubmitCode hands a code a person read during a login (a verify or
	// SMS code) to the named account or session: ErrUnknownSession when
	// there is none of that name, ErrNotWaiting when it asked for none.
	SubmitCode(name, code string) error
	// RestartPlugin brings back a quarantined or refused plugin;
	// ErrNoPlugins when none are configured.
	RestartPlugin(ctx context.Context, name string) error
	// Reload compiles the rule files again and swaps them in, returning
	// how many rules are in force; a broken file keeps the old rules and
	// fails with the problems, each with its file, line and column.
	Reload() (rules int, err error)
	// Paused lists the conversations where a person took over from the
	// phone and the bot is paused, with when each pause ends.
	Paused() []store.Pause
	// Resume hands a paused conversation of an account back to the bot;
	// ErrNotPaused when it is not paused.
	Resume(ctx context.Context, account, conv string) error
}

// Errors a Backend returns for the API to answer with the right status.
var (
	ErrUnknownSession = errors.New("admin: no such account or session")
	ErrNotWaiting     = errors.New("admin: not waiting for a code")
	ErrNoPlugins      = errors.New("admin: no plugins are configured")
	ErrUnsupported    = errors.New("admin: the store cannot do this while it runs")
	ErrNotPaused      = errors.New("admin: the conversation is not paused")
)

// Options are the parts of the admin API that do not come from the Backend.
type Options struct {
	// Token is the bearer token required of every request but the probes
	// (admin.token); "" serves loopback clients only, without a token,
	// and refuses backups.
	Token string
	// Secrets are hidden from every response (default: none).
	Secrets *redact.Set
	// Metrics are served at /metrics; nil serves none there.
	Metrics prometheus.Gatherer
	// Console, when set, serves every path the API does not own (all but
	// /api/..., /healthz, /readyz and /metrics): a browser console with its
	// own sign-in. It is not behind the bearer token; it is behind the
	// secrets filter and the listener's limits. nil answers those paths as
	// the API does (404, or 401 without the token).
	Console http.Handler
	// Limits bound the listener's clients.
	Limits Limits
	// Logger receives what the API does for the operator (default:
	// discard).
	Logger *slog.Logger
}

// Server serves the admin API.
type Server struct {
	b       Backend
	opts    Options
	log     *slog.Logger
	handler http.Handler
	srv     *http.Server
}

// New returns the admin API of b. Nothing is served until Serve.
func New(b Backend, opts Options) *Server {
	if opts.Secrets == nil {
		opts.Secrets = redact.New()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, opts: opts, log: opts.Logger}
	// Everything served goes through the secrets filter, the console
	// included; a handler whose bytes must arrive exactly (a copy of the
	// store) opts out with redact.Unfiltered.
	s.handler = redact.Filter(opts.Secrets, s.route())
	s.srv = opts.Limits.httpServer(s.handler)
	return s
}

// Handler returns the whole API as one handler, without the listener's
// limits: what Serve serves.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves the API on ln, within the Limits, until Shutdown; then it
// returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(s.opts.Limits.listener(ln))
}

// Shutdown stops Serve, waiting for the requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// route sends the API's paths to the API, behind the bearer token, and the
// others to the console when there is one.
func (s *Server) route() http.Handler {
	api := s.authorize(s.mux())
	console := s.opts.Console
	if console == nil {
		return api
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if apiPath(r.URL.Path) {
			api.ServeHTTP(w, r)
			return
		}
		console.ServeHTTP(w, r)
	})
}

// apiPath reports whether the API owns path, whatever the method: a
// console mounted beside it never answers for these.
func apiPath(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics", "/api":
		return true
	}
	return strings.HasPrefix(path, "/api/")
}
