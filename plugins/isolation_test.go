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

// raceDetector is set when the tests (and so the test plugins) are built
// with -race.
var raceDetector bool

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
			// Calls get seconds on a loaded machine; the case of a plugin that
			// hangs gets a short deadline, so that it is killed soon.
			cfg := plugins.Config{Dir: pluginDir(t, true, "probe"), CallTimeout: 10 * time.Second, HangLimit: 2, RestartBackoff: time.Millisecond}
			if name == "plugin hangs and is killed" {
				cfg.CallTimeout = 300 * time.Millisecond
			}
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

// TestRefusesWhatOthersCouldChange makes the plugin directory, the lock
// file, the lock file's directory or the executable changeable by another
// user, and expects each refused with a message naming the path, its mode,
// its owner and the command that fixes it.
func TestRefusesWhatOthersCouldChange(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not say who may write on Windows")
	}
	asRoot := os.Geteuid() == 0
	for name, tc := range map[string]struct {
		root bool // needs root to give a file away
		// prepare breaks dir (holding plugin p and its lock) and returns
		// the lock file to use, or "".
		prepare func(t *testing.T, dir string) string
		// startErr, when set, is what Start must fail with; otherwise p
		// must be refused with problem.
		startErr, problem []string
	}{
		"plugin directory group-writable": {
			prepare:  func(t *testing.T, dir string) string { chmod(t, dir, 0o775); return "" },
			startErr: []string{"refusing the plugin directory", "DIR is writable by its group", "mode 0775 drwxrwxr-x", "owner ", "run: chmod go-w " + "DIR"},
		},
		"lock file world-writable": {
			prepare: func(t *testing.T, dir string) string {
				chmod(t, filepath.Join(dir, plugins.LockFileName), 0o646)
				return ""
			},
			startErr: []string{"refusing the lock file", "DIR/plugins.lock is writable by everyone", "mode 0646", "run: chmod go-w DIR/plugins.lock"},
		},
		"lock file in a directory anyone can write": {
			prepare: func(t *testing.T, dir string) string {
				shared := filepath.Join(t.TempDir(), "shared")
				if err := os.Mkdir(shared, 0o777); err != nil {
					t.Fatal(err)
				}
				chmod(t, shared, 0o1777) // like /tmp
				lockAt(t, dir, filepath.Join(shared, "plugins.lock"))
				return filepath.Join(shared, "plugins.lock")
			},
			startErr: []string{"refusing the lock file's directory", "/shared is writable by its group and everyone", "mode 0777 dtrwxrwxrwx", "chmod go-w"},
		},
		"executable group-writable": {
			prepare: func(t *testing.T, dir string) string { chmod(t, filepath.Join(dir, "p"), 0o775); return "" },
			problem: []string{"refused: DIR/p is writable by its group", "mode 0775 -rwxrwxr-x", "run: chmod go-w DIR/p"},
		},
		"executable owned by another user": {
			root: true,
			prepare: func(t *testing.T, dir string) string {
				chown(t, filepath.Join(dir, "p"), 4242)
				return ""
			},
			problem: []string{"DIR/p is owned by uid 4242, not by the daemon's user", "run: chown 0 DIR/p"},
		},
		"plugin directory owned by another user": {
			root:     true,
			prepare:  func(t *testing.T, dir string) string { chown(t, dir, 4242); return "" },
			startErr: []string{"refusing the plugin directory", "DIR is owned by uid 4242, not by the daemon's user", "run: chown 0 DIR"},
		},
		"lock file owned by another user": {
			root: true,
			prepare: func(t *testing.T, dir string) string {
				chown(t, filepath.Join(dir, plugins.LockFileName), 4242)
				return ""
			},
			startErr: []string{"DIR/plugins.lock is owned by uid 4242"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if tc.root && !asRoot {
				t.Skip("giving a file to another user needs root")
			}
			dir := filepath.Join(t.TempDir(), "plugins")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			copyFile(t, filepath.Join(dir, "p"))
			copyFile(t, filepath.Join(dir, "q"))
			lock(t, dir)
			lockFile := tc.prepare(t, dir)
			want := func(s []string) []string {
				out := make([]string, len(s))
				for i, w := range s {
					out[i] = strings.ReplaceAll(w, "DIR", dir)
				}
				return out
			}
			log, _ := testLogger(t)
			m, err := plugins.New(plugins.Config{Dir: dir, LockFile: lockFile}, newMemHost(), log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			err = m.Start(context.Background())
			if tc.startErr != nil {
				if err == nil {
					t.Fatalf("Start succeeded; want it refused (p: %s)", info(t, m, "p").State)
				}
				for _, w := range want(tc.startErr) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Start: %v\nwant it to say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			inf := info(t, m, "p")
			if inf.State != plugins.StateRefused {
				t.Fatalf("p: %s %q, want refused", inf.State, inf.Problem)
			}
			for _, w := range want(tc.problem) {
				if !strings.Contains(inf.Problem, w) {
					t.Errorf("problem: %s\nwant it to say %q", inf.Problem, w)
				}
			}
			if _, err := call(m, "q", "echo", nil); err != nil {
				t.Errorf("the other plugin: %v", err)
			}
		})
	}
}

// TestLockFileOutsideTheDirectory pins into a lock file kept elsewhere and
// runs from it; the plugin directory's own lock file is then not read.
func TestLockFileOutsideTheDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	copyFile(t, filepath.Join(dir, "p"))
	lockFile := filepath.Join(t.TempDir(), "pins")
	lockAt(t, dir, lockFile)
	m, _ := startManager(t, plugins.Config{Dir: dir, LockFile: lockFile}, newMemHost())
	if _, err := call(m, "p", "echo", nil); err != nil {
		t.Fatal(err)
	}
	if inf := info(t, m, "p"); !inf.Pinned {
		t.Errorf("p not pinned: %+v", inf)
	}
	if _, err := os.Stat(filepath.Join(dir, plugins.LockFileName)); err == nil {
		t.Error("a lock file was written into the plugin directory")
	}
	// Changed since pinned: the refusal names the lock file to update.
	appendByte(t, filepath.Join(dir, "p"))
	err := m.Restart(context.Background(), "p")
	if !errors.Is(err, plugins.ErrRefused) || !strings.Contains(err.Error(), "finderbot plugins lock --dir "+dir+" --lock "+lockFile) {
		t.Errorf("Restart = %v, want a refusal naming --lock %s", err, lockFile)
	}
}

// TestRunDirectory checks the private run directory: made 0700, emptied of
// what a killed daemon left, holding a copy while the plugin runs and
// nothing once the Manager is closed.
func TestRunDirectory(t *testing.T) {
	t.Parallel()
	runDir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(runDir, "p-123", "p")
	if err := os.MkdirAll(filepath.Dir(stale), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, nil, 0o700); err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	m, err := plugins.New(plugins.Config{Dir: pluginDir(t, true, "p"), RunDir: runDir}, newMemHost(), log)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(runDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("run directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a copy left by an earlier daemon is still there: %v", err)
	}
	pid := pidOf(t, m, "p")
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if runtime.GOOS == "linux" && (err != nil || filepath.Dir(filepath.Dir(exe)) != runDir) {
		t.Errorf("the plugin runs %s (%v), want a copy in %s", exe, err, runDir)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(runDir); len(entries) != 0 {
		t.Errorf("run directory after Close holds %v", entries)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if mode&0o1000 != 0 {
		mode = mode&0o777 | os.ModeSticky
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
}

func lockAt(t *testing.T, dir, lockFile string) {
	t.Helper()
	if _, _, err := plugins.LockDir(dir, lockFile); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryLimitStopsAHog has a plugin allocate without end, again after
// every restart: each time the memory limit stops it (not the kernel's OOM
// killer, whose SIGKILL would read "signal: killed"), the crash is
// reported as such, and after QuarantineAfter times it is quarantined with
// a problem that says so, while the daemon and its other plugin serve on.
func TestMemoryLimitStopsAHog(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("memory limits are applied on Linux")
	}
	if raceDetector {
		t.Skip("the race detector's shadow memory needs more address space than this test's limit")
	}
	// A probe reserves about 1.8 GiB of address space before it allocates;
	// this leaves it some 500 MiB.
	const limit = 2304 << 20
	cfg := plugins.Config{Dir: pluginDir(t, true, "hog", "steady"), MemoryLimit: limit,
		RestartBackoff: time.Millisecond, MaxRestartBackoff: time.Millisecond, QuarantineAfter: 3}
	m, logs := startManager(t, cfg, newMemHost())
	hogUntilQuarantined(t, m, logs, 3, func(i, pid int) {
		// The limit that stops it is the one the Manager set.
		if as := addressSpaceLimit(t, pid); as[0] != "2415919104" || as[1] != "2415919104" {
			t.Fatalf("hog %d runs with an address space limit of %v, want 2304 MiB", i, as)
		}
	})
	inf := info(t, m, "hog")
	for _, want := range []string{"3 crashes within", "process exited (exit status 2; it hit its memory limit (2304 MiB))"} {
		if !strings.Contains(inf.Problem, want) {
			t.Errorf("problem %q does not say %q", inf.Problem, want)
		}
	}
	if inf.Restarts != 3 {
		t.Errorf("restarts = %d, want 3", inf.Restarts)
	}
	if !strings.Contains(logs.String(), "it hit its memory limit") {
		t.Errorf("the crashes were not logged as memory limit hits:\n%s", logs)
	}
	if _, err := call(m, "hog", "echo", nil); !errors.Is(err, plugins.ErrQuarantined) {
		t.Errorf("call to the quarantined hog: %v", err)
	}
}

// TestLimitsApplied reads the limits of a running plugin from the kernel.
func TestLimitsApplied(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("limits are applied on Linux")
	}
	for name, tc := range map[string]struct {
		cfg              plugins.Config
		wantAS, wantNice string
	}{
		"defaults":  {wantAS: "4294967296", wantNice: "10"},
		"set":       {cfg: plugins.Config{MemoryLimit: 3 << 30, Nice: 7}, wantAS: "3221225472", wantNice: "7"},
		"unlimited": {cfg: plugins.Config{MemoryLimit: -1, Nice: -1}, wantAS: "unlimited", wantNice: ownNice(t)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Dir = pluginDir(t, true, "p")
			m, _ := startManager(t, tc.cfg, newMemHost())
			pid := pidOf(t, m, "p")
			if as := addressSpaceLimit(t, pid); as[0] != tc.wantAS || as[1] != tc.wantAS {
				t.Errorf("address space limit (soft, hard) = %v, want %s", as, tc.wantAS)
			}
			if nice := statField(t, pid, 19); nice != tc.wantNice {
				t.Errorf("niceness %s, want %s", nice, tc.wantNice)
			}
		})
	}
}

// addressSpaceLimit returns the soft and hard RLIMIT_AS of a process.
func addressSpaceLimit(t *testing.T, pid int) [2]string {
	t.Helper()
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(limits), "\n") {
		if rest, ok := strings.CutPrefix(l, "Max address space"); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				return [2]string{f[0], f[1]}
			}
		}
	}
	t.Fatalf("no address space limit in /proc/%d/limits", pid)
	return [2]string{}
}

// statField returns field n (1-based, as in proc(5)) of /proc/pid/stat.
func statField(t *testing.T, pid, n int) string {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:])) // from field 3 on
	return f[n-3]
}

func ownNice(t *testing.T) string { return statField(t, os.Getpid(), 19) }

// TestConfiguredCgroupMustBeUsable: a cgroup named in the configuration
// that cannot hold the plugins fails Start rather than be silently
// replaced by RLIMIT_AS.
func TestConfiguredCgroupMustBeUsable(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("cgroups are Linux's")
	}
	notCgroup := t.TempDir()
	log, _ := testLogger(t)
	m, err := plugins.New(plugins.Config{Dir: pluginDir(t, true, "p"), Cgroup: notCgroup}, newMemHost(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	err = m.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "plugins: cgroup: "+notCgroup+" is not a cgroup v2 directory") {
		t.Errorf("Start = %v, want it refused naming the cgroup", err)
	}
}

// TestCgroupMemoryLimit runs the hog in a real cgroup v2 directory named by
// FINDERBOT_TEST_CGROUP, which must be delegated to the test's user and
// enable the memory controller for its children: the kernel stops it at
// memory.max, and it is reported and quarantined like the RLIMIT_AS hog.
func TestCgroupMemoryLimit(t *testing.T) {
	t.Parallel()
	cg := os.Getenv("FINDERBOT_TEST_CGROUP")
	if cg == "" {
		t.Skip("set FINDERBOT_TEST_CGROUP to a delegated cgroup v2 directory with the memory controller enabled for its children")
	}
	cfg := plugins.Config{Dir: pluginDir(t, true, "hog", "steady"), Cgroup: cg, MemoryLimit: 256 << 20,
		RestartBackoff: time.Millisecond, MaxRestartBackoff: time.Millisecond, QuarantineAfter: 2}
	m, logs := startManager(t, cfg, newMemHost())
	hogUntilQuarantined(t, m, logs, 2, func(int, int) {})
	if p := info(t, m, "hog").Problem; !strings.Contains(p, "it hit its memory limit (256 MiB)") {
		t.Errorf("problem = %q", p)
	}
}

// hogUntilQuarantined has the plugin "hog" allocate without end n times,
// each time in a new process that check is given first, while "steady"
// keeps answering; it returns once hog is quarantined.
func hogUntilQuarantined(t *testing.T, m *plugins.Manager, logs *logBuffer, n int, check func(i, pid int)) {
	t.Helper()
	last := 0
	for i := range n {
		// A new process each time: the last one may look ready for the
		// moment it takes to notice it is gone.
		waitFor(t, "the hog to be running again", 10*time.Second, func() bool {
			inf := info(t, m, "hog")
			return inf.State == plugins.StateReady && inf.PID != last
		}, logs)
		last = info(t, m, "hog").PID
		check(i, last)
		if _, err := call(m, "hog", "hog", nil); !errors.Is(err, plugins.ErrUnavailable) {
			t.Fatalf("hog %d: err = %v, want the plugin gone mid-call", i, err)
		}
		if got, err := call(m, "steady", "echo", nil); err != nil || got != "echo: 你好" {
			t.Fatalf("steady beside the hog: %q, %v", got, err)
		}
	}
	waitFor(t, "the hog to be quarantined", 10*time.Second, func() bool {
		return info(t, m, "hog").State == plugins.StateQuarantined
	}, logs)
}
