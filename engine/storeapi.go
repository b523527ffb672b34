package engine

import (
	"context"
	"io"
	"net/http"
	"strconv"

	"github.com/finderbot/finderbot/engine/redact"
	"github.com/finderbot/finderbot/engine/store"
)

// backupStore is a store that can copy and check itself while it runs
// (store.Bolt).
type backupStore interface {
	Backup(ctx context.Context, w io.Writer, begin func(size int64)) (int64, error)
	Check(ctx context.Context) (store.Report, error)
}

// handleStoreBackup streams a consistent copy of the running store, for
// `finderbot store backup`. The copy holds the logins' tokens, which the
// state directory keeps from other users; a loopback listener does not (any
// local user reaches it), so a backup needs admin.token even there.
func (d *Daemon) handleStoreBackup(w http.ResponseWriter, r *http.Request) {
	if d.cfg.Admin.Token.Reveal() == "" {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "a backup holds the logins' tokens: set admin.token to take one through the admin API, or stop the daemon and run finderbot store backup"})
		return
	}
	bs, ok := d.store.(backupStore)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "this store cannot be backed up through the admin API"})
		return
	}
	// The copy is bytes of the store, not text: redacting a secret inside
	// it (a login's token) would damage the copy.
	w = redact.Unfiltered(w)
	started := false
	n, err := bs.Backup(r.Context(), w, func(size int64) {
		started = true
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
	})
	switch {
	case err != nil && !started:
		writeStoreError(w, err)
	case err != nil:
		// The client sees fewer bytes than Content-Length announced.
		d.log.Warn("store backup through the admin API cut short", "bytes", n, "err", err)
	default:
		d.log.Info("store backup taken through the admin API", "bytes", n)
	}
}

// handleStoreCheck checks the running store completely (store.Bolt.Check)
// and answers its report: counts and problems, no secrets.
func (d *Daemon) handleStoreCheck(w http.ResponseWriter, r *http.Request) {
	bs, ok := d.store.(backupStore)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "this store cannot be checked through the admin API"})
		return
	}
	rep, err := bs.Check(r.Context())
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
