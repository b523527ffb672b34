package plugins_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

func call(m *plugins.Manager, plugin, action string, params map[string]string) (string, error) {
	resp, err := m.Call(context.Background(), plugin, action, &sdk.HandleRequest{
		Params: params, Message: sdktest.Text("你好"), Account: "acc",
	})
	if err != nil {
		return "", err
	}
	if len(resp.Replies) != 1 {
		return "", errors.New("want exactly one reply")
	}
	return resp.Replies[0].Text, nil
}

func pidOf(t *testing.T, m *plugins.Manager, plugin string) int {
	t.Helper()
	s, err := call(m, plugin, "pid", nil)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestCallRoundTrip(t *testing.T) {
	t.Parallel()
	m, _ := startManager(t, plugins.Config{Dir: pluginDir(t, true, "probe")}, newMemHost())

	for name, tc := range map[string]struct {
		action string
		params map[string]string
		want   string
	}{
		"defaults filled": {action: "echo", want: "echo: 你好"},
		"params given":    {action: "echo", params: map[string]string{"prefix": "» ", "suffix": "!"}, want: "» 你好!"},
		"required given":  {action: "need", params: map[string]string{"x": "1"}, want: "1"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := call(m, "probe", tc.action, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("reply = %q, want %q", got, tc.want)
			}
		})
	}

	if got := strings.Join(m.Actions(), " "); got != "probe.echo probe.exit probe.fail probe.hang probe.hog probe.host probe.need probe.panic probe.pid probe.spawn" {
		t.Errorf("Actions = %s", got)
	}
	inf := info(t, m, "probe")
	if inf.State != plugins.StateReady || inf.Version != "0.0.1" || !inf.Pinned || inf.PID == 0 || len(inf.Actions) != 10 {
		t.Errorf("List entry = %+v", inf)
	}
}

func TestCallErrors(t *testing.T) {
	t.Parallel()
	m, _ := startManager(t, plugins.Config{Dir: pluginDir(t, true, "probe")}, newMemHost())
	for name, tc := range map[string]struct {
		plugin, action string
		params         map[string]string
		kind           error
		retryable      bool
		msg            string
	}{
		"unknown plugin":    {plugin: "nope", action: "echo", kind: plugins.ErrNotFound, msg: `no plugin named "nope"`},
		"unknown action":    {plugin: "probe", action: "nope", kind: plugins.ErrNotFound, msg: "the plugin offers echo, exit, fail"},
		"missing param":     {plugin: "probe", action: "need", kind: plugins.ErrBadRequest, msg: `missing required parameter "x"`},
		"unknown param":     {plugin: "probe", action: "echo", params: map[string]string{"prefx": "1"}, kind: plugins.ErrBadRequest, msg: `unknown parameter "prefx"; echo takes prefix, suffix`},
		"plugin says retry": {plugin: "probe", action: "fail", kind: plugins.ErrFailed, retryable: true, msg: "backend is down"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := call(m, tc.plugin, tc.action, tc.params)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want kind %v", err, tc.kind)
			}
			if got := plugins.Retryable(err); got != tc.retryable {
				t.Errorf("Retryable = %v, want %v", got, tc.retryable)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tc.msg)
			}
		})
	}
}

func TestCrashRestartsWhileOthersServe(t *testing.T) {
	t.Parallel()
	for name, action := range map[string]string{"panic": "panic", "exit": "exit"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := plugins.Config{Dir: pluginDir(t, true, "crashy", "steady"), RestartBackoff: 20 * time.Millisecond}
			m, logs := startManager(t, cfg, newMemHost())
			oldPID := pidOf(t, m, "crashy")

			_, err := call(m, "crashy", action, nil)
			if !errors.Is(err, plugins.ErrUnavailable) || !plugins.Retryable(err) {
				t.Fatalf("crash mid-call: err = %v, want a retryable ErrUnavailable", err)
			}
			// The other plugin keeps answering while crashy is down.
			if got, err := call(m, "steady", "echo", nil); err != nil || got != "echo: 你好" {
				t.Fatalf("steady: %q, %v", got, err)
			}
			callWhenReady(t, m, "crashy", "echo")
			if newPID := pidOf(t, m, "crashy"); newPID == oldPID {
				t.Errorf("pid unchanged (%d): not restarted", newPID)
			}
			if alive(oldPID) {
				t.Errorf("crashed process %d still exists", oldPID)
			}
			if inf := info(t, m, "crashy"); inf.Restarts != 1 || inf.State != plugins.StateReady {
				t.Errorf("after restart: %+v", inf)
			}
			if name == "panic" && !strings.Contains(logs.String(), "probe was asked to panic") {
				t.Errorf("the panic did not reach the daemon's log:\n%s", logs)
			}
		})
	}
}

func TestQuarantineAfterRepeatedCrashes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var changes []string // state: problem, as OnStateChange tells them
	cfg := plugins.Config{Dir: pluginDir(t, true, "crashy"), RestartBackoff: time.Millisecond, MaxRestartBackoff: time.Millisecond, QuarantineAfter: 3,
		OnStateChange: func(plugin string, state plugins.State, problem string) {
			mu.Lock()
			changes = append(changes, fmt.Sprintf("%s %s: %s", plugin, state, problem))
			mu.Unlock()
		}}
	m, _ := startManager(t, cfg, newMemHost())
	defer func() {
		// Every state the plugin went through was told, in order: three
		// crashes, the quarantine, and the operator's restart.
		mu.Lock()
		defer mu.Unlock()
		var states []string
		for _, c := range changes {
			states = append(states, strings.SplitN(c, ":", 2)[0])
		}
		want := "crashy ready,crashy restarting,crashy starting,crashy ready,crashy restarting,crashy starting,crashy ready,crashy restarting,crashy quarantined,crashy starting,crashy ready"
		if strings.Join(states, ",") != want {
			t.Errorf("state changes:\n%s\nwant the states %s", strings.Join(changes, "\n"), want)
		}
		for _, c := range changes {
			if (strings.Contains(c, " restarting:") || strings.Contains(c, " quarantined:")) && strings.HasSuffix(c, ": ") {
				t.Errorf("%q carries no reason", c)
			}
		}
	}()
	for i := range 3 {
		callWhenReady(t, m, "crashy", "echo")
		if _, err := call(m, "crashy", "exit", nil); !plugins.Retryable(err) {
			t.Fatalf("crash %d: err = %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		// Ready only for the moment it takes to notice the last crash.
		if err := m.WaitReady(ctx, "crashy"); err != nil {
			if !errors.Is(err, plugins.ErrQuarantined) {
				t.Fatalf("WaitReady = %v, want ErrQuarantined", err)
			}
			break
		}
	}
	if inf := info(t, m, "crashy"); inf.State != plugins.StateQuarantined || inf.Restarts != 3 {
		t.Errorf("List entry = %+v", inf)
	}
	_, err := call(m, "crashy", "echo", nil)
	if !errors.Is(err, plugins.ErrQuarantined) || !errors.Is(err, plugins.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrQuarantined", err)
	}
	if err := m.Restart(context.Background(), "crashy"); err != nil {
		t.Fatal(err)
	}
	if _, err := call(m, "crashy", "echo", nil); err != nil {
		t.Errorf("after Restart: %v", err)
	}
}

func TestHungPluginHitsDeadline(t *testing.T) {
	t.Parallel()
	cfg := plugins.Config{Dir: pluginDir(t, true, "probe"), CallTimeout: 100 * time.Millisecond, HangLimit: 2, RestartBackoff: time.Millisecond}
	m, logs := startManager(t, cfg, newMemHost())
	oldPID := pidOf(t, m, "probe")

	// Hung calls do not block others.
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := call(m, "probe", "hang", nil)
		errc <- err
	}()
	if _, err := call(m, "probe", "echo", nil); err != nil {
		t.Errorf("echo beside a hung call: %v", err)
	}
	if err := <-errc; !errors.Is(err, context.DeadlineExceeded) || !plugins.Retryable(err) {
		t.Fatalf("err = %v, want a retryable deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a hung call took %s; the deadline is 100ms", d)
	}
	// A caller's shorter deadline wins, and is the caller's own error.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := m.Call(ctx, "probe", "hang", &sdk.HandleRequest{})
	var ce *plugins.CallError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ce) {
		t.Errorf("caller deadline: err = %v, want the caller's ctx error", err)
	}
	// HangLimit deadline hits in a row get the plugin restarted.
	for range 2 {
		if _, err := call(m, "probe", "hang", nil); !plugins.Retryable(err) {
			t.Fatalf("hang: %v", err)
		}
	}
	if s := callWhenReady(t, m, "probe", "pid"); s == strconv.Itoa(oldPID) {
		t.Fatalf("the hung plugin was not restarted:\n%s", logs)
	}
	if alive(oldPID) {
		t.Errorf("hung process %d still exists", oldPID)
	}
}

func TestVerification(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		dev     bool
		prepare func(t *testing.T, dir string)
		refused string // "" when the plugin must run
	}{
		"pinned": {prepare: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "p"))
			lock(t, dir)
		}},
		"changed after pinning": {prepare: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "p"))
			lock(t, dir)
			appendByte(t, filepath.Join(dir, "p"))
		}, refused: "changed since it was pinned"},
		"unpinned": {prepare: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "p"))
		}, refused: "is not pinned in"},
		"unpinned in dev mode": {dev: true, prepare: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "p"))
		}},
		"changed in dev mode": {dev: true, prepare: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "p"))
			lock(t, dir)
			appendByte(t, filepath.Join(dir, "p"))
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tc.prepare(t, dir)
			m, _ := startManager(t, plugins.Config{Dir: dir, DevMode: tc.dev}, newMemHost())
			inf := info(t, m, "p")
			_, err := call(m, "p", "echo", nil)
			if tc.refused == "" {
				if err != nil || inf.State != plugins.StateReady {
					t.Fatalf("state %s (%s), call err %v; want it running", inf.State, inf.Problem, err)
				}
				return
			}
			if inf.State != plugins.StateRefused || !strings.Contains(inf.Problem, tc.refused) {
				t.Errorf("List: %s %q, want refused with %q", inf.State, inf.Problem, tc.refused)
			}
			if !errors.Is(err, plugins.ErrRefused) || !strings.Contains(err.Error(), "finderbot plugins lock") {
				t.Errorf("call err = %v, want ErrRefused telling how to pin", err)
			}
			// Pinning the binary as it is now and restarting brings it in.
			lock(t, dir)
			if err := m.Restart(context.Background(), "p"); err != nil {
				t.Fatal(err)
			}
			if _, err := call(m, "p", "echo", nil); err != nil {
				t.Errorf("after lock and restart: %v", err)
			}
		})
	}
}

func lock(t *testing.T, dir string) {
	t.Helper()
	if _, _, err := plugins.LockDir(dir, ""); err != nil {
		t.Fatal(err)
	}
}

func appendByte(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestHostCallbacks(t *testing.T) {
	t.Parallel()
	host := newMemHost()
	m, logs := startManager(t, plugins.Config{Dir: pluginDir(t, true, "alpha", "beta")}, host)

	for _, want := range []string{"n=1 keys=[n] token=tok-for-alpha", "n=2 keys=[n] token=tok-for-alpha"} {
		if got, err := call(m, "alpha", "host", nil); err != nil || got != want {
			t.Fatalf("alpha: %q, %v; want %q", got, err, want)
		}
	}
	// beta has a store of its own.
	if got, err := call(m, "beta", "host", nil); err != nil || got != "n=1 keys=[n] token=tok-for-beta" {
		t.Fatalf("beta: %q, %v", got, err)
	}
	wantSent := []string{"alpha:acc->wxid_x:sent 1", "alpha:acc->wxid_x:sent 2", "beta:acc->wxid_x:sent 1"}
	if got := host.Sent(); strings.Join(got, "|") != strings.Join(wantSent, "|") {
		t.Errorf("sent = %v, want %v", got, wantSent)
	}
	// Structured records and raw stderr both land in the daemon's log under
	// the plugin's name. Stderr is streamed, so it may trail the reply.
	waitFor(t, "plugin output in the log", 5*time.Second, func() bool {
		l := logs.String()
		return strings.Contains(l, `msg="host action ran" plugin=alpha n=2`) &&
			strings.Contains(l, `msg="a line on stderr" plugin=beta stream=stderr`)
	})
}

func TestCloseLeavesNoProcess(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	log, _ := testLogger(t)
	m, err := plugins.New(plugins.Config{Dir: pluginDir(t, true, "a", "b", "c")}, newMemHost(), log)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Leave a call hanging in one plugin: Close must not wait for it.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		call(m, "a", "hang", nil)
	}()
	var pids []int
	for _, inf := range m.List() {
		if inf.State != plugins.StateReady || inf.PID == 0 {
			t.Fatalf("%s not ready: %+v", inf.Name, inf)
		}
		pids = append(pids, inf.PID)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("plugin process %d outlived Close", pid)
		}
	}
	for _, inf := range m.List() {
		if inf.State != plugins.StateStopped {
			t.Errorf("%s: state %s after Close", inf.Name, inf.State)
		}
	}
	wg.Wait()
	if _, err := call(m, "b", "echo", nil); !errors.Is(err, plugins.ErrUnavailable) {
		t.Errorf("call after Close: %v", err)
	}
}

func TestHealthChecks(t *testing.T) {
	t.Parallel()
	t.Run("problem reported by the plugin", func(t *testing.T) {
		t.Parallel()
		dir := pluginDir(t, true, "probe")
		m, _ := startManager(t, plugins.Config{Dir: dir, HealthInterval: 10 * time.Millisecond}, newMemHost())
		if err := os.WriteFile(filepath.Join(dir, "unhealthy"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the problem in List", 5*time.Second, func() bool {
			return info(t, m, "probe").Problem == "health: the unhealthy file exists"
		})
		// A plugin with a problem still serves: it may be degraded, not dead.
		if _, err := call(m, "probe", "echo", nil); err != nil {
			t.Errorf("call while unhealthy: %v", err)
		}
		if err := os.Remove(filepath.Join(dir, "unhealthy")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the problem to clear", 5*time.Second, func() bool { return info(t, m, "probe").Problem == "" })
	})
	t.Run("frozen process restarted", func(t *testing.T) {
		t.Parallel()
		cfg := plugins.Config{Dir: pluginDir(t, true, "probe"), HealthInterval: 50 * time.Millisecond,
			CallTimeout: 200 * time.Millisecond, RestartBackoff: time.Millisecond}
		m, logs := startManager(t, cfg, newMemHost())
		pid := pidOf(t, m, "probe")
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// The kernel stops a process's threads asynchronously.
		waitFor(t, "the process to stop", 5*time.Second, func() bool { return procState(pid) == 'T' })
		if s := callWhenReady(t, m, "probe", "pid"); s == strconv.Itoa(pid) {
			t.Fatalf("the frozen process answered\n%s", logs)
		}
		if alive(pid) {
			t.Errorf("frozen process %d still exists", pid)
		}
		if inf := info(t, m, "probe"); inf.Restarts != 1 {
			t.Errorf("restarts = %d, want 1", inf.Restarts)
		}
	})
}

func TestProtocolVersionMismatchRefused(t *testing.T) {
	t.Parallel()
	m, _ := startManager(t, plugins.Config{Dir: pluginDir(t, true, "future", "probe")}, newMemHost())
	inf := info(t, m, "future")
	if inf.State != plugins.StateRefused || !strings.Contains(inf.Problem, "Plugin version: 99") ||
		!strings.Contains(inf.Problem, "speaks protocol version 1") {
		t.Errorf("future: %s %q, want refused naming both versions", inf.State, inf.Problem)
	}
	if _, err := call(m, "probe", "echo", nil); err != nil {
		t.Errorf("a plugin of the right version: %v", err)
	}
}

func TestDaemonKilledLeavesNoPlugin(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the kernel ties plugins to the daemon only on Linux")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(self)
	daemon.Env = append(os.Environ(), "FINDERBOT_TEST_DAEMON="+pluginDir(t, true, "a", "b"))
	out, err := daemon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		pid, err := strconv.Atoi(sc.Text())
		if err != nil {
			daemon.Process.Kill()
			t.Fatalf("daemon said %q", sc.Text())
		}
		pids = append(pids, pid)
	}
	if len(pids) != 6 {
		t.Fatalf("plugin and grandchild pids = %v", pids)
	}
	// SIGKILL: the daemon gets no chance to stop its plugins.
	if err := daemon.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	daemon.Wait()
	for _, pid := range pids {
		// The kernel kills orphans asynchronously; give it a moment.
		waitFor(t, fmt.Sprintf("plugin or grandchild %d to die with its daemon", pid), 5*time.Second, func() bool { return !alive(pid) })
	}
}
