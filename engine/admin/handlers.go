package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/finderbot/finderbot/engine/redact"
	"github.com/finderbot/finderbot/engine/store"
)

// mux routes the API's requests to their handlers.
func (s *Server) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.handleReady)
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Metrics, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.b.Status()) })
	mux.HandleFunc("GET /api/dead-letters", func(w http.ResponseWriter, r *http.Request) { listLimited(w, r, s.b.DeadLetters) })
	mux.HandleFunc("POST /api/dead-letters/retry", s.handleRetryDeadLetters)
	mux.HandleFunc("POST /api/dead-letters/{id}/retry", s.handleRetryDeadLetter)
	mux.HandleFunc("DELETE /api/dead-letters/{id}", s.handleDropDeadLetter)
	mux.HandleFunc("GET /api/inbound-dead-letters", func(w http.ResponseWriter, r *http.Request) { listLimited(w, r, s.b.InboundDeadLetters) })
	mux.HandleFunc("GET /api/store/backup", s.handleStoreBackup)
	mux.HandleFunc("GET /api/store/check", s.handleStoreCheck)
	mux.HandleFunc("POST /api/accounts/{name}/code", s.handleCode)
	mux.HandleFunc("POST /api/sessions/{name}/code", s.handleCode)
	mux.HandleFunc("POST /api/plugins/{name}/restart", s.handlePluginRestart)
	mux.HandleFunc("POST /api/reload", s.handleReload)
	mux.HandleFunc("GET /api/conversations/paused", func(w http.ResponseWriter, r *http.Request) {
		out := s.b.Paused()
		if out == nil {
			out = []store.Pause{}
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /api/accounts/{name}/conversations/{conv}/resume", s.handleResume)
	return mux
}

// handleReady answers 200 once every account is online. Like /healthz it
// needs no token, so it stays cheap: Backend.NotOnline reads no store.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if waiting := s.b.NotOnline(); len(waiting) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not online: %s\n", strings.Join(waiting, ", "))
		return
	}
	io.WriteString(w, "ready\n")
}

// handleRetryDeadLetter puts a dead letter back into the outbox: the
// operator's answer to an action that failed for good or a send in doubt
// that did not arrive.
func (s *Server) handleRetryDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, ok := deadLetterID(w, r)
	if !ok {
		return
	}
	it, err := s.b.RetryDeadLetter(r.Context(), id)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	s.log.Info("dead letter retried by the operator", "dead_letter", id, "item", it.ID, "account", it.Account)
	writeJSON(w, http.StatusOK, it)
}

// Retried is the answer of POST /api/dead-letters/retry.
type Retried struct {
	// Items are the actions queued again, one per dead letter retried.
	Items []store.Item `json:"items"`
}

// kinds are the action kinds a dead letter may hold.
var kinds = []string{store.KindReply, store.KindSend, store.KindPlugin}

// handleRetryDeadLetters retries every dead letter, or those of ?kind=
// (reply, send or plugin), oldest first. Each is retried on its own: one
// dropped or retried meanwhile by another request is passed over, and a
// failure stops the rest, answering how many went before it.
func (s *Server) handleRetryDeadLetters(w http.ResponseWriter, r *http.Request) {
	kind := r.URL.Query().Get("kind")
	if kind != "" && !slices.Contains(kinds, kind) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("kind %q is not an action kind (%s)", kind, strings.Join(kinds, ", ")))
		return
	}
	items, err := RetryAll(r.Context(), s.b, kind, s.log)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	out := Retried{Items: items}
	writeJSON(w, http.StatusOK, out)
}

// DeadLetterRetrier is what RetryAll needs of a backend.
type DeadLetterRetrier interface {
	DeadLetters(ctx context.Context, limit int) ([]store.DeadLetter, error)
	RetryDeadLetter(ctx context.Context, id uint64) (store.Item, error)
}

// RetryAll retries every dead letter, or those of kind when it is
// not empty, oldest first, logging each to log. Each is retried on its
// own: one dropped or retried meanwhile by someone else is passed over, and
// a failure stops the rest, saying how many went before it.
func RetryAll(ctx context.Context, b DeadLetterRetrier, kind string, log *slog.Logger) ([]store.Item, error) {
	dead, err := b.DeadLetters(ctx, 0)
	if err != nil {
		return nil, err
	}
	items := []store.Item{}
	for _, d := range dead {
		if kind != "" && d.Item.Kind != kind {
			continue
		}
		it, err := b.RetryDeadLetter(ctx, d.Item.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return items, fmt.Errorf("%d dead letters retried, then dead letter %d: %w", len(items), d.Item.ID, err)
		}
		log.Info("dead letter retried by the operator", "dead_letter", d.Item.ID, "item", it.ID, "account", it.Account)
		items = append(items, it)
	}
	return items, nil
}

// handleDropDeadLetter forgets a dead letter.
func (s *Server) handleDropDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, ok := deadLetterID(w, r)
	if !ok {
		return
	}
	if err := s.b.DropDeadLetter(r.Context(), id); err != nil {
		writeStoreError(w, err)
		return
	}
	s.log.Info("dead letter dropped by the operator", "dead_letter", id)
	writeJSON(w, http.StatusOK, map[string]string{"status": "dropped"})
}

func deadLetterID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a dead letter id (the item.id of /api/dead-letters)", r.PathValue("id")))
		return 0, false
	}
	return id, true
}

// handleResume hands a conversation a person took over back to the bot.
func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	account, conv := r.PathValue("name"), r.PathValue("conv")
	switch err := s.b.Resume(r.Context(), account, conv); {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]string{"account": account, "conversation": conv, "state": "resumed"})
	case errors.Is(err, ErrNotPaused):
		writeError(w, http.StatusNotFound, fmt.Sprintf("conversation %s of %s is not paused (see /api/conversations/paused)", conv, account))
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeStoreError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrFull):
		status = http.StatusInsufficientStorage
	}
	writeError(w, status, err.Error())
}

// listLimited answers a list, oldest first: 1,000 items unless ?limit= says
// otherwise (0 for all).
func listLimited[T any](w http.ResponseWriter, r *http.Request, list func(context.Context, int) ([]T, error)) {
	limit := 1000
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "limit must be a whole number, 0 for all")
			return
		}
		limit = n
	}
	out, err := list(r.Context(), limit)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if out == nil {
		out = []T{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleStoreBackup streams a consistent copy of the running store, for
// `finderbot store backup`. The copy holds the logins' tokens, which the
// state directory keeps from other users; a loopback listener does not (any
// local user reaches it), so a backup needs admin.token even there.
func (s *Server) handleStoreBackup(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token == "" {
		writeError(w, http.StatusForbidden, "a backup holds the logins' tokens: set admin.token to take one through the admin API, or stop the daemon and run finderbot store backup")
		return
	}
	// The copy is bytes of the store, not text: redacting a secret inside
	// it (a login's token) would damage the copy.
	w = redact.Unfiltered(w)
	started := false
	n, err := s.b.BackupStore(r.Context(), w, func(size int64) {
		started = true
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
	})
	switch {
	case errors.Is(err, ErrUnsupported) && !started:
		writeError(w, http.StatusNotImplemented, "this store cannot be backed up through the admin API")
	case err != nil && !started:
		writeStoreError(w, err)
	case err != nil:
		// The client sees fewer bytes than Content-Length announced.
		s.log.Warn("store backup through the admin API cut short", "bytes", n, "err", err)
	default:
		s.log.Info("store backup taken through the admin API", "bytes", n)
	}
}

// handleStoreCheck checks the running store completely and answers its
// report: counts and problems, no secrets.
func (s *Server) handleStoreCheck(w http.ResponseWriter, r *http.Request) {
	rep, err := s.b.CheckStore(r.Context())
	switch {
	case errors.Is(err, ErrUnsupported):
		writeError(w, http.StatusNotImplemented, "this store cannot be checked through the admin API")
	case err != nil:
		writeStoreError(w, err)
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}

// handleCode takes a code a person read during a login: the verify code
// WeChat shows on the phone, or a token session's SMS code.
func (s *Server) handleCode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := io.ReadAll(io.LimitReader(r.Body, 64))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("reading the code: %v", err))
		return
	}
	code := strings.TrimSpace(string(body))
	if code == "" {
		writeError(w, http.StatusBadRequest, "send the code as the request body")
		return
	}
	switch err := s.b.SubmitCode(name, code); {
	case errors.Is(err, ErrUnknownSession):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no account or session %q", name))
	case errors.Is(err, ErrNotWaiting):
		writeError(w, http.StatusConflict, fmt.Sprintf("%s is not waiting for a code", name))
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "submitted"})
	}
}

// handlePluginRestart brings back a quarantined plugin, or a refused one
// after it was pinned again.
func (s *Server) handlePluginRestart(w http.ResponseWriter, r *http.Request) {
	switch err := s.b.RestartPlugin(r.Context(), r.PathValue("name")); {
	case errors.Is(err, ErrNoPlugins):
		writeError(w, http.StatusNotFound, "no plugins are configured")
	case err != nil:
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "restarted"})
	}
}

// handleReload compiles the rule files again; a broken file keeps the old
// rules and is answered 422 with its positioned problems.
func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	n, err := s.b.Reload()
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, Reloaded{Rules: n})
}

// Reloaded is the answer of POST /api/reload.
type Reloaded struct {
	// Rules counts the rules in force.
	Rules int `json:"rules"`
}

// apiError is the body of every answer that is not a success.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
