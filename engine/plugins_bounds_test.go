package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/admin"
	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/sdk"
)

// buildPlugin builds the plugin package pkg as name into dir/plugins, pins
// it, and returns that plugin directory.
func buildPlugin(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	pluginDir := filepath.Join(dir, "plugins")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(pluginDir, name), pkg).CombinedOutput(); err != nil {
		t.Fatalf("build the %s plugin: %v\n%s", name, err, out)
	}
	if _, _, err := plugins.LockDir(pluginDir, ""); err != nil {
		t.Fatal(err)
	}
	return pluginDir
}

// TestPluginTextsPastTheBoundsAreNotStored runs a real plugin that hands the
// daemon, through Host, texts one byte past their bounds: each is refused
// with an error naming the bound, and none reaches the store. Its flood of
// output is cut to plugins.output and counted in /api/status.
func TestPluginTextsPastTheBoundsAreNotStored(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	t.Parallel()
	pluginDir := buildPlugin(t, t.TempDir(), "boundsplugin", "./testdata/boundsplugin")
	h := newHarness(t, sim.Options{NoSeed: true, NoEcho: true})
	h.d.Close()
	writeFile(t, filepath.Join(h.cfg.Rules[0], "bounds.yaml"), `rules:
  - name: bounds
    when: "!msg.FromSelf && msg.Text == 'bounds'"
    actions:
      - plugin: boundsplugin.send
  - name: flood
    when: "!msg.FromSelf && msg.Text == 'flood'"
    actions:
      - plugin: boundsplugin.flood
`)
	h.cfg.Plugins.Dir = pluginDir
	h.cfg.Plugins.Output = config.PluginOutput{LineBytes: 4096, LinesPerSecond: 1, Burst: 5}
	// The daemon's own start, with its log kept: output is bounded where it
	// would be logged.
	var logs syncBuffer
	d, err := New(h.cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.d = d
	t.Cleanup(func() { d.Close() })
	_, wcID := h.online("shop")

	if _, err := h.sim.Inject(wcID, sim.Text("", "bounds")); err != nil {
		t.Fatal(err)
	}
	reply := h.sent(1)[0].Content
	for what, want := range map[string]string{
		"text":  "text: sdk: host: send: text is 65537 bytes, more than the limit of 65536; refused",
		"to":    "to: sdk: host: send: to is 65537 bytes, more than the limit of 1024; refused",
		"key":   "key: sdk: host: put x",
		"value": "value: sdk: host: put k: store: full: kv boundsplugin",
	} {
		if !strings.Contains(reply, want) {
			t.Errorf("%s: the plugin was told\n%s\nwant %q", what, reply, want)
		}
	}
	if strings.Contains(reply, "<nil>") {
		t.Errorf("a text past its bound was taken:\n%s", reply)
	}
	ctx := context.Background()
	pending, err := h.d.Store().Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range pending {
		if len(it.Text) > sdk.MaxResponseText || len(it.To) > sdk.MaxNameBytes {
			t.Errorf("the outbox holds a %d-byte text to a %d-byte receiver", len(it.Text), len(it.To))
		}
	}
	if keys, err := h.d.Store().KV("boundsplugin").List(ctx, "", 0); err != nil || len(keys) != 0 {
		t.Errorf("the plugin's store holds %d keys, %v", len(keys), err)
	}

	if _, err := h.sim.Inject(wcID, sim.Text("", "flood")); err != nil {
		t.Fatal(err)
	}
	if got := h.sent(2)[1].Content; got != "flooded" {
		t.Fatalf("flood: %q", got)
	}
	// The lines are relayed a moment after the answer.
	var st admin.Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + h.d.AdminAddr() + "/api/status")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Plugins) == 1 && st.Plugins[0].OutputDroppedLines >= 1000-5-10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/status plugins = %+v, want about 995 dropped lines", st.Plugins)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p := st.Plugins[0]; p.OutputDroppedBytes < p.OutputDroppedLines*int64(len("flood 1")) {
		t.Errorf("/api/status plugin = %+v", p)
	}
	if n := strings.Count(logs.String(), `msg="flood `); n > 5+10 {
		t.Errorf("the daemon logged %d lines of the flood; the burst is 5 and the rate 1/s", n)
	}
}
