package engine

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/upstream/sim"
)

// TestPluginActionsGoThroughTheOutbox runs the counter example plugin as a
// real subprocess: a rule's plugin action is performed from the outbox, the
// plugin keeps its counts in the daemon's store, and its replies go out
// like any other.
func TestPluginActionsGoThroughTheOutbox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	t.Parallel()
	pluginDir := buildPlugin(t, t.TempDir(), "counter", "../examples/plugins/counter")

	h := newHarness(t, sim.Options{NoSeed: true, NoEcho: true})
	h.d.Close()
	writeFile(t, filepath.Join(h.cfg.Rules[0], "greet.yaml"), `rules:
  - name: count
    when: "!msg.FromSelf && msg.Text startsWith 'count'"
    actions:
      - plugin: counter.count
        with: { reply: "第 {n} 条" }
`)
	h.cfg.Plugins.Dir = pluginDir
	h.start()
	_, wcID := h.online("shop")
	for range 3 {
		if _, err := h.sim.Inject(wcID, sim.Text("", "count me")); err != nil {
			t.Fatal(err)
		}
	}
	s := h.sent(3)
	for i, want := range []string{"第 1 条", "第 2 条", "第 3 条"} {
		if s[i].Content != want || s[i].Endpoint != "/privateSend" {
			t.Fatalf("reply %d = %+v, want %q", i, s[i], want)
		}
	}
	keys, err := h.d.Store().KV("counter").List(context.Background(), "count/", 0)
	if err != nil || len(keys) != 1 {
		t.Fatalf("counter keys = %v, %v", keys, err)
	}
	infos := h.d.Plugins().List()
	if len(infos) != 1 || infos[0].Name != "counter" {
		t.Fatalf("plugins = %+v", infos)
	}
	// The daemon runs a private copy from its state directory.
	if runtime.GOOS == "linux" {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", infos[0].PID))
		if want := filepath.Join(h.cfg.StateDir, "plugins-run"); err != nil || !strings.HasPrefix(exe, want+string(filepath.Separator)) {
			t.Errorf("the plugin runs %q (%v), want a copy in %s", exe, err, want)
		}
	}
	for name, want := range map[string]int{"counter": 200, "nobody": 409} {
		resp, err := http.Post("http://"+h.d.AdminAddr()+"/api/plugins/"+name+"/restart", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("restart %s = %d, want %d", name, resp.StatusCode, want)
		}
	}
	if err := h.d.Plugins().WaitReady(context.Background(), "counter"); err != nil {
		t.Fatal(err)
	}
	if st := h.d.Status(); len(st.Plugins) != 1 || st.Plugins[0].Version != "1.0.0" || st.Plugins[0].State != "ready" {
		t.Fatalf("status plugins = %+v", st.Plugins)
	}
	// The event bus heard the plugin come up, and come up again after
	// the restart.
	var changes []string
	for _, e := range h.d.Events().Recent(0) {
		if e.Kind == events.KindPlugin && e.Account == "counter" {
			changes = append(changes, e.Message)
		}
	}
	if n := strings.Count(strings.Join(changes, ","), "ready"); n < 2 {
		t.Errorf("plugin events = %q, want ready twice", changes)
	}
}
