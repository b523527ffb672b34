package engine

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/rules"
)

// TestCloseDoesNotWaitForAReload holds reloads in the middle of reading the
// rule files, where a named pipe or a hung file system would hold them,
// and stops the daemon: Close must not wait for them, and the reloads that
// end after it must schedule nothing.
func TestCloseDoesNotWaitForAReload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{NoSeed: true})
	rh := h.d.rules
	entered, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	t.Cleanup(free) // before the harness's Close, should the test fail
	rh.mu.Lock()
	load := rh.compile
	rh.compile = func() (*rules.Set, error) {
		once.Do(func() { close(entered) })
		<-release
		return load()
	}
	rh.mu.Unlock()

	attempted := rh.reloadAttempted()
	// A file change (through the watcher) and a SIGHUP (requestReload, as
	// Run does) both ask for a reload, with a cron rule to schedule.
	writeFile(t, filepath.Join(h.cfg.Rules[0], "cron.yaml"),
		"rules:\n  - name: morning\n    on: cron\n    schedule: \"0 9 * * *\"\n    actions:\n      - send: {to: wxid_x, text: hi}\n")
	rh.requestReload()
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still waiting after 10s", what)
		}
	}
	wait(entered, "the reload to begin")

	closed := make(chan struct{})
	go func() { h.d.Close(); close(closed) }()
	wait(closed, "Close, while a reload reads the rule files")

	free()
	wait(attempted, "the held reload to end")
	rh.mu.Lock()
	scheduled := rh.cron != nil
	rh.mu.Unlock()
	if scheduled {
		t.Error("a reload that ended after Close started a cron scheduler")
	}
}
