package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finderbot/finderbot/plugins"
)

// TestSwappedBinaryNeverRuns replaces the pinned executable with an
// impostor and back, by rename, as fast as it can while the plugin is
// restarted over and over: whatever the timing, the bytes that run are the
// bytes that were checked, so the impostor is refused and never executed.
func TestSwappedBinaryNeverRuns(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the impostor recognises itself through /proc")
	}
	dir := t.TempDir()
	good, bad, target := filepath.Join(dir, ".good"), filepath.Join(dir, ".bad"), filepath.Join(dir, "p")
	copyFile(t, good)
	copyFile(t, bad)
	appendBytes(t, bad, impostorMark)
	if err := os.Link(good, target); err != nil {
		t.Fatal(err)
	}
	lock(t, dir)
	m, logs := startManager(t, plugins.Config{Dir: dir, RestartBackoff: time.Millisecond}, newMemHost())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tmp := filepath.Join(dir, ".swap")
		// Far more often than a start takes, without spinning a core.
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			src := good
			if i%2 == 0 {
				src = bad
			}
			os.Remove(tmp)
			if os.Link(src, tmp) == nil {
				os.Rename(tmp, target)
			}
		}
	}()
	const restarts = 60
	ran, refused := 0, 0
	for range restarts {
		err := m.Restart(context.Background(), "p")
		switch {
		case err == nil:
			ran++
		case errors.Is(err, plugins.ErrRefused):
			refused++
		default:
			t.Logf("restart: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	marks, _ := filepath.Glob(filepath.Join(dir, "impostor-ran-*"))
	if len(marks) > 0 {
		t.Errorf("the impostor ran %d times in %d restarts (%d started, %d refused)", len(marks), restarts, ran, refused)
	}
	if ran == 0 || refused == 0 {
		t.Errorf("%d restarts ran the pinned binary and %d refused the impostor; the race did not happen\n%s", ran, refused, logs)
	}
}

func appendBytes(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNoOrphans has the plugin start two grandchildren, one of them in a
// session of its own, and ends the plugin every way it can end: none of
// them outlives it.
func TestNoOrphans(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("process trees are kept together on Linux")
	}
	for name, end := range map[string]func(t *testing.T, m *plugins.Manager){
		"plugin crashes": func(t *testing.T, m *plugins.Manager) {
			if _, err := call(m, "probe", "exit", nil); !plugins.Retryable(err) {
				t.Fatalf("exit: %v", err)
			}
		},
		"plugin hangs and is killed": func(t *testing.T, m *plugins.Manager) {
			for range 2 {
				if _, err := call(m, "probe", "hang", nil); !plugins.Retryable(err) {
					t.Fatalf("hang: %v", err)
				}
			}
		},
		"operator restarts it": func(t *testing.T, m *plugins.Manager) {
			if err := m.Restart(context.Background(), "probe"); err != nil {
				t.Fatal(err)
			}
		},
		"manager closes": func(t *testing.T, m *plugins.Manager) {
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := plugins.Config{Dir: pluginDir(t, true, "probe"), CallTimeout: 200 * time.Millisecond, HangLimit: 2, RestartBackoff: time.Millisecond}
			m, _ := startManager(t, cfg, newMemHost())
			pids := []int{pidOf(t, m, "probe")}
			out, err := call(m, "probe", "spawn", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range strings.Fields(out) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("spawn answered %q", out)
				}
				pids = append(pids, pid)
			}
			end(t, m)
			for _, pid := range pids {
				waitFor(t, fmt.Sprintf("process %d to end with its plugin", pid), 5*time.Second, func() bool { return !alive(pid) })
			}
		})
	}
}
