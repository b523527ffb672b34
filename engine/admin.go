package engine

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/finderbot/finderbot/engine/redact"
	"github.com/finderbot/finderbot/engine/store"
)

// AccountStatus is one account in /api/status.
type AccountStatus struct {
	Name        string    `json:"name"`
	State       string    `json:"state"`
	Detail      string    `json:"detail,omitempty"`
	WcID        string    `json:"wc_id,omitempty"`
	WID         string    `json:"w_id,omitempty"`
	LastSync    time.Time `json:"last_sync,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Messages    uint64    `json:"messages"`
	OutboxDepth int       `json:"outbox_depth"`
	// InDoubt counts the replies whose last attempt may have been
	// accepted, waiting for their echo.
	InDoubt int `json:"in_doubt"`
	// Skipped counts the page items that could not be processed since
	// the start (see /api/inbound-dead-letters).
	Skipped uint64 `json:"skipped"`
}

// SessionStatus is one token or app-key session in /api/status.
type SessionStatus struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// PluginStatus is one plugin in /api/status.
type PluginStatus struct {
	Name     string `json:"name"`
	Version  string `json:"version,omitempty"`
	State    string `json:"state"`
	Problem  string `json:"problem,omitempty"`
	Restarts int    `json:"restarts"`
	// OutputDroppedLines and OutputDroppedBytes count the plugin's output
	// the daemon did not log, past plugins.output.
	OutputDroppedLines int64 `json:"output_dropped_lines"`
	OutputDroppedBytes int64 `json:"output_dropped_bytes"`
}

// Status is the body of /api/status.
type Status struct {
	Started  time.Time       `json:"started"`
	Rules    int             `json:"rules"`
	Accounts []AccountStatus `json:"accounts"`
	Sessions []SessionStatus `json:"sessions,omitempty"`
	Plugins  []PluginStatus  `json:"plugins,omitempty"`
}

// Status reports every account's session and sync state. It holds no
// secret: tokens and passwords never appear in it.
func (d *Daemon) Status() Status {
	st := Status{Started: d.started, Rules: d.rules.count()}
	for _, name := range d.order {
		a := d.accounts[name]
		state, detail := a.keeper.State()
		as := AccountStatus{Name: name, State: state, Detail: detail}
		as.OutboxDepth, as.InDoubt = d.outbox.Depth(name)
		if inst, ok := a.keeper.Current(); ok {
			as.WcID, as.WID = inst.WcID, inst.WID
		}
		a.mu.Lock()
		as.LastSync, as.LastError, as.Messages, as.Skipped = a.lastSync, a.lastErr, a.messages, a.skipped
		a.mu.Unlock()
		st.Accounts = append(st.Accounts, as)
	}
	for _, sc := range d.cfg.Sessions {
		s := d.sessions[sc.Name]
		state, detail := s.State()
		st.Sessions = append(st.Sessions, SessionStatus{Name: sc.Name, Kind: s.Kind(), State: state, Detail: detail})
	}
	if d.pluginManager != nil {
		for _, p := range d.pluginManager.List() {
			st.Plugins = append(st.Plugins, PluginStatus{Name: p.Name, Version: p.Version, State: string(p.State), Problem: p.Problem, Restarts: p.Restarts,
				OutputDroppedLines: p.DroppedLines, OutputDroppedBytes: p.DroppedBytes})
		}
	}
	return st
}

// AdminAddr returns the address the admin listener is bound to, or "".
func (d *Daemon) AdminAddr() string {
	if d.adminLn == nil {
		return ""
	}
	return d.adminLn.Addr().String()
}

// listenAdmin binds the admin listener. New does it before anything logs,
// so that an address in use is refused like any other start-up mistake.
func (d *Daemon) listenAdmin() error {
	if d.cfg.Admin.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", d.cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("engine: admin listener: %w", err)
	}
	d.adminLn = ln
	d.closers = append(d.closers, func() error {
		if d.admin == nil {
			return ln.Close()
		}
		return nil
	})
	return nil
}

func (d *Daemon) startAdmin() error {
	ln := d.adminLn
	if ln == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", d.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, d.Status()) })
	mux.HandleFunc("GET /api/dead-letters", d.handleDeadLetters)
	mux.HandleFunc("POST /api/dead-letters/{id}/retry", d.handleRetryDeadLetter)
	mux.HandleFunc("DELETE /api/dead-letters/{id}", d.handleDropDeadLetter)
	mux.HandleFunc("GET /api/inbound-dead-letters", d.handleInboundDeadLetters)
	mux.HandleFunc("GET /api/store/backup", d.handleStoreBackup)
	mux.HandleFunc("GET /api/store/check", d.handleStoreCheck)
	mux.HandleFunc("POST /api/accounts/{name}/code", d.handleCode)
	mux.HandleFunc("POST /api/sessions/{name}/code", d.handleCode)
	mux.HandleFunc("POST /api/plugins/{name}/restart", d.handlePluginRestart)
	mux.HandleFunc("POST /api/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := d.Reload(); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"rules": d.rules.count()})
	})
	// Everything served goes through the secrets filter; a handler whose
	// bytes must arrive exactly (a copy of the store) opts out with
	// redact.Unfiltered.
	d.admin, ln = adminServer(redact.Filter(d.secrets, d.authorize(mux)), ln, d.opts.Admin)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.admin.Serve(ln); err != nil && err != http.ErrServerClosed {
			d.log.Error("admin listener stopped", "err", err)
		}
	}()
	return nil
}

// authorize requires the bearer token when one is configured; /healthz and
// /readyz stay open for probes.
func (d *Daemon) authorize(next http.Handler) http.Handler {
	token := d.cfg.Admin.Token.Reveal()
	if token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="finderbot"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token is required"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleReady answers 200 once every account is online. Like /healthz it
// needs no token, so it stays cheap: it copies each keeper's current
// instance under that keeper's short-held lock and never reads the store.
func (d *Daemon) handleReady(w http.ResponseWriter, r *http.Request) {
	var waiting []string
	for _, name := range d.order {
		if _, ok := d.accounts[name].keeper.Current(); !ok {
			waiting = append(waiting, name)
		}
	}
	if len(waiting) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not online: %s\n", strings.Join(waiting, ", "))
		return
	}
	io.WriteString(w, "ready\n")
}

// handleDeadLetters lists the dead letters, oldest first: 1,000 unless
// ?limit= says otherwise (0 for all).
func (d *Daemon) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	listLimited(w, r, d.store.DeadLetters)
}

// handleRetryDeadLetter puts a dead letter back into the outbox, at the end
// of its conversation, with its attempts reset: the operator's answer to an
// action that failed for good or a send in doubt that did not arrive.
func (d *Daemon) handleRetryDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, ok := deadLetterID(w, r)
	if !ok {
		return
	}
	it, err := d.store.Revive(r.Context(), id)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	d.outbox.Add([]store.Item{it})
	d.log.Info("dead letter retried by the operator", "dead_letter", id, "item", it.ID, "account", it.Account)
	writeJSON(w, http.StatusOK, it)
}

// handleDropDeadLetter forgets a dead letter.
func (d *Daemon) handleDropDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, ok := deadLetterID(w, r)
	if !ok {
		return
	}
	if err := d.store.DropDeadLetter(r.Context(), id); err != nil {
		writeStoreError(w, err)
		return
	}
	d.log.Info("dead letter dropped by the operator", "dead_letter", id)
	writeJSON(w, http.StatusOK, map[string]string{"status": "dropped"})
}

func deadLetterID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%q is not a dead letter id (the item.id of /api/dead-letters)", r.PathValue("id"))})
		return 0, false
	}
	return id, true
}

func writeStoreError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrFull):
		status = http.StatusInsufficientStorage
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// handleInboundDeadLetters lists the page items that could not be
// processed (no id, an id that does not decode), oldest first, limited like
// the dead letters.
func (d *Daemon) handleInboundDeadLetters(w http.ResponseWriter, r *http.Request) {
	listLimited(w, r, d.store.InboundDeadLetters)
}

func listLimited[T any](w http.ResponseWriter, r *http.Request, list func(context.Context, int) ([]T, error)) {
	limit := 1000
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be a whole number, 0 for all"})
			return
		}
		limit = n
	}
	out, err := list(r.Context(), limit)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if out == nil {
		out = []T{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleCode takes a code a person read during a login: the verify code
// WeChat shows on the phone, or a token session's SMS code.
func (d *Daemon) handleCode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s := d.sessions[name]
	if s == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no account or session %q", name)})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("reading the code: %v", err)})
		return
	}
	code := strings.TrimSpace(string(body))
	if code == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "send the code as the request body"})
		return
	}
	if !s.SubmitCode(code) {
		writeJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("%s is not waiting for a code", name)})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "submitted"})
}

// handlePluginRestart brings back a quarantined plugin, or a refused one
// after it was pinned again.
func (d *Daemon) handlePluginRestart(w http.ResponseWriter, r *http.Request) {
	if d.pluginManager == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no plugins are configured"})
		return
	}
	if err := d.pluginManager.Restart(r.Context(), r.PathValue("name")); err != nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "restarted"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
