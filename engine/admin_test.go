package engine

import (
	"net/http"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/engine/admin"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// TestAdminLimitsApply: the daemon serves its admin API within
// Options.Admin (the limits themselves are tested in engine/admin).
func TestAdminLimitsApply(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	h.d.Close()
	h.opts.Admin = admin.Limits{MaxHeaderBytes: 1 << 10}
	h.start()
	// 8 KiB of header are well within the default 64 KiB.
	req, _ := http.NewRequestWithContext(h.ctx, "GET", "http://"+h.d.AdminAddr()+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 8<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("8 KiB of header past a limit of 1 KiB: %s, want 431", resp.Status)
	}
}
