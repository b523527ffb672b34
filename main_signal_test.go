package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// stuckPlugin is the plugin the test binary serves when a daemon under test
// starts it (see TestMain): its action and its Close ignore their ctx and
// never return, as a wedged plugin would.
type stuckPlugin struct{}

func (stuckPlugin) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{Name: "stuck", Version: "1.0.0", Actions: []sdk.Action{{Name: "hang"}}}, nil
}

func (stuckPlugin) Handle(context.Context, *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	fmt.Fprintln(os.Stderr, "stuck: holding the call")
	select {}
}

func (stuckPlugin) Close(context.Context) error { select {} }

// servePluginIfAsked serves stuckPlugin when the process was started by a
// daemon as a plugin, and reports whether it did.
func servePluginIfAsked() bool {
	if os.Getenv(sdk.Handshake.MagicCookieKey) != sdk.Handshake.MagicCookieValue {
		return false
	}
	sdk.Serve(stuckPlugin{})
	return true
}

// daemonProc is a `finderbot run` process whose log the test reads as it
// comes.
type daemonProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	more   chan struct{} // closed and replaced at every new line
	exited chan struct{} // closed once the process has exited and its log is read
	err    error         // the process's exit, once exited is closed
}

// runDaemon starts `finderbot run --config cfg`, killed when the test ends.
func runDaemon(t *testing.T, cfg string) *daemonProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return startProc(t, finderbot(t, ctx, "run", "--config", cfg))
}

// startProc starts cmd, whose standard error the returned daemonProc reads
// line by line, and kills it when the test ends.
func startProc(t *testing.T, cmd *exec.Cmd) *daemonProc {
	t.Helper()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{cmd: cmd, more: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			close(d.more)
			d.more = make(chan struct{})
			d.mu.Unlock()
		}
		d.err = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.exited
	})
	return d
}

func (d *daemonProc) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// seen reports whether a log line holds want, and the channel closed at the
// next line.
func (d *daemonProc) seen(want string) (bool, <-chan struct{}) {
	n, more := d.count(want)
	return n > 0, more
}

// count returns how many log lines hold want, and the channel closed at the
// next line.
func (d *daemonProc) count(want string) (int, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.lines {
		if strings.Contains(l, want) {
			n++
		}
	}
	return n, d.more
}

// waitFor waits for a log line holding want; the process exiting first, or
// the deadline passing, fails the test.
func (d *daemonProc) waitFor(t *testing.T, want string) {
	t.Helper()
	d.waitForN(t, want, 1)
}

// waitForN waits for n log lines holding want, as waitFor does.
func (d *daemonProc) waitForN(t *testing.T, want string, n int) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		got, more := d.count(want)
		if got >= n {
			return
		}
		select {
		case <-more:
		case <-d.exited:
			if got, _ := d.count(want); got >= n {
				return
			}
			t.Fatalf("the daemon exited (%v) before logging %q %d times:\n%s", d.err, want, n, d.log())
		case <-timer.C:
			t.Fatalf("the daemon did not log %q %d times within %v:\n%s", want, n, deadline, d.log())
		}
	}
}

// waitExit waits for the process to exit, at most within, and returns how
// it exited and how long that took.
func (d *daemonProc) waitExit(t *testing.T, within time.Duration) (time.Duration, error) {
	t.Helper()
	begin := time.Now()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-d.exited:
		return time.Since(begin), d.err
	case <-timer.C:
		t.Fatalf("the daemon did not exit within %v:\n%s", within, d.log())
		return 0, nil
	}
}

// stop stops the daemon with SIGTERM, which must end it with exit status 0.
func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	d.signal(t, syscall.SIGTERM)
	if _, err := d.waitExit(t, deadline); err != nil {
		t.Errorf("the daemon after SIGTERM: %v, want exit status 0\n%s", err, d.log())
	}
}

func (d *daemonProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v: %v", sig, err)
	}
}

// stuckPluginConfig writes a daemon configuration, its rules and a plugin
// directory holding the stuck plugin (this test binary) under a new
// directory, and returns the configuration's path. The rule calls the
// plugin for the simulator's seed message "哈喽"; extra is added to the
// configuration.
func stuckPluginConfig(t *testing.T, extra string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rule := "rules:\n  - name: hang\n    when: msg.Text == \"哈喽\" && !msg.FromSelf\n    actions:\n      - plugin: stuck.hang\n"
	dir, _ := startupCase{files: map[string]string{
		"finderbot.yaml":  simConfig("./data", "./rules") + "plugins: {dir: ./plugins, dev: true}\n" + extra,
		"rules/hang.yaml": rule,
	}}.setUp(t)
	if err := os.Mkdir(filepath.Join(dir, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(dir, "plugins", "stuck")); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "finderbot.yaml")
}

// TestStopEndsAStuckDaemon stops a daemon whose plugin hangs in its action
// and in its Close: past shutdown_timeout the process exits non-zero and
// says what it was waiting for, instead of waiting on the plugin.
func TestStopEndsAStuckDaemon(t *testing.T) {
	t.Parallel()
	d := runDaemon(t, stuckPluginConfig(t, "shutdown_timeout: 1s\n"))
	d.waitFor(t, "stuck: holding the call")
	d.signal(t, syscall.SIGTERM)
	took, err := d.waitExit(t, deadline)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want exit status 1\n%s", err, d.log())
	}
	for _, want := range []string{
		`msg="shutdown timed out; exiting without waiting any longer" timeout=1s waiting_for=`,
		"finderbot: engine: shutdown did not finish within shutdown_timeout (1s); still waiting for ",
	} {
		if ok, _ := d.seen(want); !ok {
			t.Errorf("the log does not hold %q:\n%s", want, d.log())
		}
	}
	log := d.log()
	t.Logf("exited %v after SIGTERM:\n%s", took.Round(time.Millisecond), log[strings.LastIndex(log, "msg=\"shutting down\""):])
}

// TestSecondSignalExitsAtOnce sends a second SIGTERM while the shutdown
// waits on a stuck plugin: the process exits at once, non-zero, rather than
// when the plugin is finally killed (with status 0).
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	d := runDaemon(t, stuckPluginConfig(t, ""))
	d.waitFor(t, "stuck: holding the call")
	d.signal(t, syscall.SIGTERM)
	d.waitFor(t, `msg="shutting down" timeout=30s`)
	d.signal(t, syscall.SIGTERM)
	_, err := d.waitExit(t, deadline)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want exit status 1\n%s", err, d.log())
	}
	if ok, _ := d.seen("finderbot: terminated again: exiting without waiting for the shutdown to finish"); !ok {
		t.Errorf("the log does not say why it exited:\n%s", d.log())
	}
	if ok, _ := d.seen(`msg=stopped`); ok {
		t.Errorf("the shutdown finished before the second signal took effect:\n%s", d.log())
	}
}

// TestStopAfterAReloadOfANamedPipe puts a named pipe nobody writes to among
// the rule files of a running daemon and asks for a reload: the reload is
// refused at once, naming the pipe, and SIGTERM then stops the daemon
// cleanly. (A reload used to wait on the pipe for ever, and hold up every
// later signal with it.)
func TestStopAfterAReloadOfANamedPipe(t *testing.T) {
	t.Parallel()
	dir, _ := startupCase{files: map[string]string{
		"finderbot.yaml": simConfig("./data", "./rules"),
		"rules/ok.yaml":  goodRule,
	}}.setUp(t)
	d := runDaemon(t, filepath.Join(dir, "finderbot.yaml"))
	d.waitFor(t, `msg="finderbot started"`)
	pipe := filepath.Join(dir, "rules", "pipe.yaml")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	d.waitFor(t, "SIGHUP: reloading rules")
	d.signal(t, syscall.SIGTERM)
	_, err := d.waitExit(t, deadline)
	if err != nil {
		t.Fatalf("exit: %v, want exit status 0\n%s", err, d.log())
	}
	if ok, _ := d.seen(pipe + " is a named pipe, not a regular file"); !ok {
		t.Errorf("no reload refused the named pipe:\n%s", d.log())
	}
}

// TestStopWhileTheUpstreamNeverAnswers stops a daemon whose member login
// hangs on an upstream that accepts the request and never answers.
func TestStopWhileTheUpstreamNeverAnswers(t *testing.T) {
	t.Parallel()
	asked := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := strings.Replace(simConfig("./data", "./rules"), "upstream: {base_url: sim}",
		fmt.Sprintf("upstream: {base_url: %q, account: a, password: p, timeout: 10m}", srv.URL), 1)
	dir, _ := startupCase{files: map[string]string{"finderbot.yaml": cfg, "rules/ok.yaml": goodRule}}.setUp(t)
	d := runDaemon(t, filepath.Join(dir, "finderbot.yaml"))
	d.waitFor(t, `msg="finderbot started"`)
	select {
	case <-asked:
	case <-d.exited:
		t.Fatalf("the daemon exited: %v\n%s", d.err, d.log())
	case <-time.After(deadline):
		t.Fatalf("the daemon called no upstream within %v:\n%s", deadline, d.log())
	}
	d.signal(t, syscall.SIGTERM)
	if _, err := d.waitExit(t, deadline); err != nil {
		t.Fatalf("exit: %v, want exit status 0\n%s", err, d.log())
	}
}

// TestSIGHUPDuringStartUp sends SIGHUP again and again from the daemon's
// first log line until it has started: it must neither die of it (the
// signal's default action, status 129) nor lose it, but reload once
// started, and then stop cleanly.
func TestSIGHUPDuringStartUp(t *testing.T) {
	t.Parallel()
	// The plugin makes the start-up last long enough for signals to land
	// in it: its process is started and asked to describe itself first.
	d := runDaemon(t, stuckPluginConfig(t, ""))
	d.waitFor(t, "simulated upstream started")
	sent := 0
	for {
		if ok, _ := d.seen(`msg="finderbot started"`); ok {
			break
		}
		select {
		case <-d.exited:
			t.Fatalf("the daemon exited (%v) after %d SIGHUPs during its start-up:\n%s", d.err, sent, d.log())
		default:
		}
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP: %v", err)
		}
		sent++
	}
	d.waitFor(t, `msg="rules reloaded"`)
	d.signal(t, syscall.SIGTERM)
	if _, err := d.waitExit(t, deadline); err != nil {
		t.Fatalf("exit: %v, want exit status 0\n%s", err, d.log())
	}
	t.Logf("%d SIGHUPs sent during the start-up", sent)
}
