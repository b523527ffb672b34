package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// TestMain doubles as the test plugin: started by a Manager (which sets the
// handshake cookie), the test binary serves probe instead of running tests.
// Tests link or copy the test binary into a plugin directory.
func TestMain(m *testing.M) {
	// First: a shim has the plugin's environment, cookie included.
	plugins.RunShimIfRequested()
	if os.Getenv(sdk.Handshake.MagicCookieKey) == sdk.Handshake.MagicCookieValue {
		name := filepath.Base(os.Args[0])
		if isImpostor() {
			// Leave a trace in the working directory, the plugin directory.
			os.WriteFile(fmt.Sprintf("impostor-ran-%d", os.Getpid()), nil, 0o644)
		}
		if name == "future" {
			// A plugin built against a later protocol than the daemon's.
			hs := sdk.Handshake
			hs.ProtocolVersion = 99
			plugin.Serve(&plugin.ServeConfig{
				HandshakeConfig:  hs,
				VersionedPlugins: map[int]plugin.PluginSet{99: sdk.HostPluginSets(nil)[sdk.ProtocolVersion]},
				GRPCServer:       plugin.DefaultGRPCServer,
			})
			os.Exit(0)
		}
		if strings.HasPrefix(name, "bounds") {
			sdk.Serve(&boundsProbe{name: name})
			os.Exit(0)
		}
		sdk.Serve(&probe{name: name})
		os.Exit(0)
	}
	// Checked second: the plugins a test daemon starts inherit its environment.
	if dir := os.Getenv("FINDERBOT_TEST_DAEMON"); dir != "" {
		runDaemon(dir)
		return
	}
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// impostorMark ends the bytes of an executable that must never run.
const impostorMark = "\x00finderbot-test-impostor"

// isImpostor reports whether this process runs an executable that ends
// with impostorMark.
func isImpostor() bool {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return false
	}
	defer f.Close()
	tail := make([]byte, len(impostorMark))
	st, err := f.Stat()
	if err != nil || st.Size() < int64(len(tail)) {
		return false
	}
	if _, err := f.ReadAt(tail, st.Size()-int64(len(tail))); err != nil {
		return false
	}
	return string(tail) == impostorMark
}

// probe is the plugin the tests run as a real subprocess.
type probe struct{ name string }

// hogged keeps what the hog action allocates out of the collector's reach.
var hogged [][]byte

func (p *probe) Describe(context.Context, *sdk.DescribeRequest) (*sdk.DescribeResponse, error) {
	return &sdk.DescribeResponse{
		Name: p.name, Version: "0.0.1", Description: "test plugin",
		Actions: []sdk.Action{
			{Name: "echo", Params: []sdk.Param{
				{Name: "prefix", Default: "echo: "},
				{Name: "suffix"},
			}},
			{Name: "need", Params: []sdk.Param{{Name: "x", Required: true, Description: "anything"}}},
			{Name: "panic"},
			{Name: "exit"},
			{Name: "hang"},
			{Name: "fail"},
			{Name: "pid"},
			{Name: "host"},
			{Name: "hog", Description: "allocate and touch memory without end"},
			{Name: "spawn", Description: "start two `sleep 1000`, one in a session of its own; answer their pids"},
		},
	}, nil
}

// Health reports a problem while a file named "unhealthy" exists in the
// plugin's working directory, which the Manager sets to the plugin directory.
func (p *probe) Health(context.Context) error {
	if _, err := os.Stat("unhealthy"); err == nil {
		return errors.New("the unhealthy file exists")
	}
	return nil
}

func (p *probe) Handle(ctx context.Context, req *sdk.HandleRequest) (*sdk.HandleResponse, error) {
	switch req.Action {
	case "echo":
		text := ""
		if req.Message != nil {
			text = req.Message.Text
		}
		return sdk.TextReply(req.Param("prefix") + text + req.Param("suffix")), nil
	case "need":
		return sdk.TextReply(req.Param("x")), nil
	case "panic":
		panic("probe was asked to panic")
	case "exit":
		os.Exit(3)
	case "hang":
		select {} // ignores ctx on purpose: a plugin stuck for good
	case "fail":
		return nil, sdk.RetryLater(errors.New("backend is down"))
	case "pid":
		return sdk.TextReply(fmt.Sprint(os.Getpid())), nil
	case "hog":
		for {
			chunk := make([]byte, 16<<20)
			for i := 0; i < len(chunk); i += 4096 {
				chunk[i] = 1
			}
			hogged = append(hogged, chunk)
		}
	case "spawn":
		var pids []string
		for _, setsid := range []bool{false, true} {
			c := exec.Command("sleep", "1000")
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
			if err := c.Start(); err != nil {
				return nil, err
			}
			pids = append(pids, fmt.Sprint(c.Process.Pid))
		}
		return sdk.TextReply(strings.Join(pids, " ")), nil
	case "host":
		h := req.Host
		n := 0
		if v, ok, err := h.Get(ctx, "n"); err != nil {
			return nil, err
		} else if ok {
			fmt.Sscan(string(v), &n)
		}
		n++
		if err := h.Put(ctx, "n", []byte(fmt.Sprint(n))); err != nil {
			return nil, err
		}
		keys, err := h.Keys(ctx, "")
		if err != nil {
			return nil, err
		}
		tok, err := h.Token(ctx, "main")
		if err != nil {
			return nil, err
		}
		if err := h.Send(ctx, sdk.Send{To: "wxid_x", Text: "sent " + fmt.Sprint(n)}); err != nil {
			return nil, err
		}
		sdk.NewLogger(h).InfoContext(ctx, "host action ran", "n", n)
		fmt.Fprintln(os.Stderr, "a line on stderr")
		return sdk.TextReply(fmt.Sprintf("n=%d keys=%v token=%s", n, keys, tok)), nil
	}
	return nil, fmt.Errorf("unknown action %q", req.Action)
}

// memHost is the daemon's side in memory.
type memHost struct {
	mu    sync.Mutex
	kv    map[string][]byte // "plugin/key"
	sends []string
}

var _ plugins.Host = (*memHost)(nil)

func newMemHost() *memHost { return &memHost{kv: map[string][]byte{}} }

func (h *memHost) Send(_ context.Context, plugin string, msg sdk.Send) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sends = append(h.sends, fmt.Sprintf("%s:%s->%s:%s", plugin, msg.Account, msg.To, msg.Text))
	return nil
}

func (h *memHost) Get(_ context.Context, plugin, key string) ([]byte, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.kv[plugin+"/"+key]
	return v, ok, nil
}

func (h *memHost) Put(_ context.Context, plugin, key string, value []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kv[plugin+"/"+key] = slices.Clone(value)
	return nil
}

func (h *memHost) Delete(_ context.Context, plugin, key string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.kv, plugin+"/"+key)
	return nil
}

func (h *memHost) Keys(_ context.Context, plugin, prefix string) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var keys []string
	for k := range h.kv {
		if rest, ok := strings.CutPrefix(k, plugin+"/"); ok && strings.HasPrefix(rest, prefix) {
			keys = append(keys, rest)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (h *memHost) Token(_ context.Context, plugin, session string) (string, error) {
	if session != "main" {
		return "", fmt.Errorf("no session %q", session)
	}
	return "tok-for-" + plugin, nil
}

func (h *memHost) Sent() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sends)
}

// pluginDir makes a plugin directory holding the test binary under each of
// names, pinned unless pin is false.
func pluginDir(t testing.TB, pin bool, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.Symlink(self, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	if pin {
		if _, _, err := plugins.LockDir(dir, ""); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// copyFile copies the test binary to dst, as an executable of its own.
func copyFile(t testing.TB, dst string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects the Manager's log records for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// startManager starts a Manager on dir and closes it when the test ends.
func startManager(t testing.TB, cfg plugins.Config, host plugins.Host) (*plugins.Manager, *logBuffer) {
	t.Helper()
	log, buf := testLogger(t)
	m, err := plugins.New(cfg, host, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, buf
}

func info(t testing.TB, m *plugins.Manager, name string) plugins.Info {
	t.Helper()
	for _, i := range m.List() {
		if i.Name == name {
			return i
		}
	}
	t.Fatalf("plugin %s not listed", name)
	return plugins.Info{}
}

// waitFor polls cond until it holds or the deadline passes. Plugin restarts
// happen in another process and a supervisor goroutine; polling their
// observable state is the only way to wait for them from outside.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool, logs ...*logBuffer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			for _, l := range logs {
				t.Log(l)
			}
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// callWhenReady calls action until the plugin answers, waiting for it to be
// ready between tries.
func callWhenReady(t testing.TB, m *plugins.Manager, plugin, action string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if err := m.WaitReady(ctx, plugin); err != nil {
			t.Fatalf("waiting for %s: %v", plugin, err)
		}
		resp, err := m.Call(ctx, plugin, action, &sdk.HandleRequest{Message: sdktest.Text("你好"), Account: "acc"})
		if err == nil {
			if len(resp.Replies) != 1 {
				t.Fatalf("%s.%s: %+v", plugin, action, resp)
			}
			return resp.Replies[0].Text
		}
		if !plugins.Retryable(err) {
			t.Fatalf("%s.%s: %v", plugin, action, err)
		}
	}
}

// alive reports whether a process with pid exists and is not a zombie (an
// orphan's zombie lingers until init reaps it, but runs nothing).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return procState(pid) != 'Z'
}

// procState returns the state letter of a process from /proc (R running,
// S sleeping, T stopped, Z zombie), or 0 when it cannot be read.
func procState(pid int) byte {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2]
	}
	return 0
}

// runDaemon plays a daemon for TestDaemonKilledLeavesNoPlugin: it starts the
// plugins in dir, has each start two grandchildren, prints the pids of
// plugins and grandchildren, and waits to be killed.
func runDaemon(dir string) {
	// Killed, it cannot remove a temporary run directory; the test's own
	// temporary directory goes with the test.
	runDir := filepath.Join(filepath.Dir(dir), "run")
	m, err := plugins.New(plugins.Config{Dir: dir, RunDir: runDir}, newMemHost(), nil)
	if err == nil {
		err = m.Start(context.Background())
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for _, inf := range m.List() {
		fmt.Println(inf.PID)
		resp, err := m.Call(context.Background(), inf.Name, "spawn", &sdk.HandleRequest{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		for _, pid := range strings.Fields(resp.Replies[0].Text) {
			fmt.Println(pid)
		}
	}
	fmt.Println("ready")
	select {}
}
