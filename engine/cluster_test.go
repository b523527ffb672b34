package engine

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/natstest"
	"github.com/finderbot/finderbot/engine/session"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// clusterDaemon starts a daemon of h's configuration on the JetStream of
// c, as node, with its own state directory.
func clusterDaemon(t *testing.T, h *harness, c *natstest.Cluster, node string) *Daemon {
	t.Helper()
	cfg := *h.cfg
	cfg.StateDir = filepath.Join(t.TempDir(), node)
	cfg.Store = config.Store{Kind: config.StoreNATS, URL: c.URL(), Stream: "FB", Replicas: 1, Node: node,
		LeaseTTL: 2 * time.Second, MovesPerSecond: 50, SnapshotKeep: 1}
	d, err := New(&cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(h.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// held returns how many accounts d serves.
func held(d *Daemon) int {
	if st := d.Status().Cluster; st != nil {
		return len(st.Held)
	}
	return 0
}

// waitUntil polls cond until it holds, failing the test at the deadline.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within the deadline", what)
		case <-tick.C:
		}
	}
}

// TestClusterSharesAccountsAndHandsThemOver: two daemons on one stream
// split six accounts evenly; when one stops, the other serves all six with
// the same logins (no new login at the upstream), and every message is
// answered exactly once.
func TestClusterSharesAccountsAndHandsThemOver(t *testing.T) {
	t.Parallel()
	accounts := []string{"a1", "a2", "a3", "a4", "a5", "a6"}
	h := prepareHarness(t, sim.Options{AutoConfirm: true}, accounts...)
	c := natstest.Start(t, 1)
	d1 := clusterDaemon(t, h, c, "d1")
	d2 := clusterDaemon(t, h, c, "d2")
	waitUntil(t, h.ctx, "the accounts split", func() bool { return held(d1) == 3 && held(d2) == 3 })
	waitUntil(t, h.ctx, "every account replied to its seed page", func() bool { return len(h.sim.Sent()) >= len(accounts) })
	logins := len(h.sim.Instances())
	if logins != len(accounts) {
		t.Fatalf("%d logins for %d accounts", logins, len(accounts))
	}
	d1.Close()
	waitUntil(t, h.ctx, "d2 took every account", func() bool { return held(d2) == len(accounts) })
	for _, in := range h.sim.Instances() {
		if _, err := h.sim.Inject(in.WcID, sim.Text("", "echo after "+in.WcID)); err != nil {
			t.Fatal(err)
		}
	}
	sent := h.sent(2 * len(accounts))
	if got := len(h.sim.Instances()); got != logins {
		t.Fatalf("the hand-over logged in again: %d instances, want %d", got, logins)
	}
	seen := map[string]int{}
	for _, s := range sent {
		seen[s.Account+"|"+s.Content]++
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s sent %d times", k, n)
		}
	}
	if len(seen) != 2*len(accounts) {
		t.Errorf("sent %s", describeSent(sent))
	}
}

// TestClusterRunsASessionOnOneDaemon: a token session runs on the one daemon
// holding its lease; when that daemon stops, the other takes it over with
// the tokens in the store — the same access token, no new login.
func TestClusterRunsASessionOnOneDaemon(t *testing.T) {
	t.Parallel()
	h := prepareHarness(t, sim.Options{AutoConfirm: true}, "a1")
	h.cfg.Sessions = []config.Session{{Name: "crm", Kind: config.KindToken, BaseURL: h.sim.URL, Mobile: sim.DefaultMobile,
		ValidateNo: config.Secret(sim.DefaultSMSCode), DeviceNumber: "dev1", RefreshMargin: 10 * time.Minute, CheckInterval: time.Minute}}
	c := natstest.Start(t, 1)
	d1 := clusterDaemon(t, h, c, "d1")
	d2 := clusterDaemon(t, h, c, "d2")
	online := func(d *Daemon) bool { st, _ := d.Session("crm").State(); return st == session.StateOnline }
	waitUntil(t, h.ctx, "the session online on one daemon", func() bool { return online(d1) || online(d2) })
	holder, other := d1, d2
	if online(d2) {
		holder, other = d2, d1
	}
	if online(other) {
		t.Fatal("the session runs on both daemons")
	}
	token, err := holder.SessionToken(h.ctx, "crm")
	if err != nil {
		t.Fatal(err)
	}
	holder.Close()
	waitUntil(t, h.ctx, "the other daemon takes the session over", func() bool { return online(other) })
	if got, _ := other.SessionToken(h.ctx, "crm"); got != token {
		t.Fatalf("the take-over logged in again: token %q, want %q", got, token)
	}
}
