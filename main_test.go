package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/finderbot/finderbot/plugins"
)

// runMainEnv, when set, makes the test binary run main instead of the tests,
// so that the tests can start the real command as a separate process and see
// its stderr and exit status exactly as an operator does.
const runMainEnv = "FINDERBOT_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	plugins.RunShimIfRequested()
	if servePluginIfAsked() {
		os.Exit(0)
	}
	if os.Getenv(runMainEnv) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// deadline bounds every wait on a child process; a daemon that hangs fails
// the test instead of the whole run.
const deadline = 30 * time.Second

// finderbot returns the command `finderbot args...`, killed when ctx ends.
func finderbot(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	return cmd
}

// startupCase is a configuration `finderbot run` must refuse, or the files
// of one it runs.
type startupCase struct {
	// files are written under a fresh directory, {dir} replaced by it.
	files map[string]string
	// config is the --config argument, relative to the directory.
	config string
	// want are fragments the one line on stderr must hold, {dir} replaced.
	want []string
}

// simConfig is a configuration with the in-process simulated upstream, whose
// start is logged: a refused start-up must fail before it.
func simConfig(stateDir, rulesPath string) string {
	return fmt.Sprintf(`state_dir: %s
upstream: {base_url: sim}
accounts:
  - name: shop
rules:
  - %s
admin: {listen: 127.0.0.1:0}
`, stateDir, rulesPath)
}

const goodRule = `rules:
  - name: greet
    when: msg.Text == "哈喽"
    actions:
      - reply: "你好"
`

var startupCases = map[string]startupCase{
	"rule with a bad expression": {
		files: map[string]string{
			"finderbot.yaml": simConfig("./data", "./rules"),
			"rules/bad.yaml": "rules:\n  - name: greet\n    when: msg.Text == \"x\" && nosuch(1)\n    actions:\n      - reply: \"hi\"\n",
		},
		config: "finderbot.yaml",
		want:   []string{"rules: {dir}/rules/bad.yaml:3:30: ", "nosuch"},
	},
	"rule file with two bad expressions": {
		files: map[string]string{
			"finderbot.yaml": simConfig("./data", "./rules"),
			"rules/bad.yaml": "rules:\n  - name: a\n    when: nosuch\n    actions:\n      - reply: \"hi\"\n" +
				"  - name: b\n    when: msg.Text ==\n    actions:\n      - reply: \"hi\"\n",
		},
		config: "finderbot.yaml",
		want:   []string{"rules: {dir}/rules/bad.yaml:3:11: ", "; {dir}/rules/bad.yaml:7:", `rule "b"`},
	},
	"rule file with a YAML syntax error": {
		files: map[string]string{
			"finderbot.yaml":    simConfig("./data", "./rules"),
			"rules/broken.yaml": "rules:\n  - name: greet\n    when: a: b\n",
		},
		config: "finderbot.yaml",
		// The YAML reader names the line of a syntax error, not its column.
		want: []string{"rules: {dir}/rules/broken.yaml:3: invalid YAML: "},
	},
	"rules path that does not exist": {
		files:  map[string]string{"finderbot.yaml": simConfig("./data", "./nosuch")},
		config: "finderbot.yaml",
		want:   []string{"rules: ", "{dir}/nosuch: no such file or directory"},
	},
	"state_dir under a regular file": {
		files: map[string]string{
			"finderbot.yaml": simConfig("./file/state", "./rules"),
			"rules/ok.yaml":  goodRule,
			"file":           "not a directory\n",
		},
		config: "finderbot.yaml",
		want:   []string{"store: ", "state directory {dir}/file/state: ", "not a directory"},
	},
	"state_dir that is a regular file": {
		files: map[string]string{
			"finderbot.yaml": simConfig("./file", "./rules"),
			"rules/ok.yaml":  goodRule,
			"file":           "not a directory\n",
		},
		config: "finderbot.yaml",
		want:   []string{"store: ", "state directory {dir}/file: ", "not a directory"},
	},
	"state_dir holding an empty store file": {
		files: map[string]string{
			"finderbot.yaml":    simConfig("./data", "./rules"),
			"rules/ok.yaml":     goodRule,
			"data/finderbot.db": "",
		},
		config: "finderbot.yaml",
		want:   []string{"store: {dir}/data/finderbot.db is damaged: the file is empty (0 bytes); ", "restore", "move the file aside to start over"},
	},
	"state_dir holding a file that is not a store": {
		files: map[string]string{
			"finderbot.yaml":    simConfig("./data", "./rules"),
			"rules/ok.yaml":     goodRule,
			"data/finderbot.db": strings.Repeat("not a store\n", 100),
		},
		config: "finderbot.yaml",
		want:   []string{"store: {dir}/data/finderbot.db is damaged: it is not a finderbot store", "move the file aside to start over"},
	},
	"missing config file": {
		config: "finderbot.yaml",
		want:   []string{"config: ", "finderbot.yaml does not exist"},
	},
	"config with an unknown key": {
		files: map[string]string{
			"finderbot.yaml": "state_dir: ./data\nupstream: {base_urll: sim}\n",
		},
		config: "finderbot.yaml",
		want:   []string{"config: ", "finderbot.yaml:2:12: upstream.base_urll: unknown key"},
	},
}

// setUp writes the case's files under a new directory and returns it and
// the case's expected fragments with {dir} filled in.
func (c startupCase) setUp(t *testing.T) (dir string, want []string) {
	t.Helper()
	dir = t.TempDir()
	for name, text := range c.files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range c.want {
		want = append(want, strings.ReplaceAll(w, "{dir}", dir))
	}
	return dir, want
}

func TestRunRefusesBadStartUp(t *testing.T) {
	t.Parallel()
	for name, c := range startupCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, want := c.setUp(t)
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			defer cancel()
			cmd := finderbot(t, ctx, "run", "--config", filepath.Join(dir, c.config))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			checkRefused(t, err, stdout.String(), stderr.String(), want...)
		})
	}
}

// checkRefused checks that a start-up failed the way an operator needs it
// to: exit status 1 and one plain line on stderr that says what is wrong.
func checkRefused(t *testing.T, err error, stdout, stderr string, want ...string) {
	t.Helper()
	var problems []string
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		problems = append(problems, fmt.Sprintf("exit: %v, want exit status 1", err))
	}
	if stdout != "" {
		problems = append(problems, fmt.Sprintf("stdout is not empty: %q", stdout))
	}
	line, ok := strings.CutSuffix(stderr, "\n")
	if !ok || strings.Contains(line, "\n") {
		problems = append(problems, "stderr is not one line")
	}
	if !strings.HasPrefix(line, "finderbot: ") {
		problems = append(problems, `stderr does not start with "finderbot: "`)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			problems = append(problems, fmt.Sprintf("stderr does not hold %q", w))
		}
	}
	for _, bad := range []string{"panic", "goroutine "} {
		if strings.Contains(stderr, bad) {
			problems = append(problems, fmt.Sprintf("stderr holds %q", bad))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s\nstderr:\n%s", strings.Join(problems, "\n"), stderr)
	}
}

func TestRunRefusesAnAdminAddressInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := strings.Replace(simConfig("./data", "./rules"), "127.0.0.1:0", ln.Addr().String(), 1)
	dir, _ := startupCase{files: map[string]string{"finderbot.yaml": cfg, "rules/ok.yaml": goodRule}}.setUp(t)
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	cmd := finderbot(t, ctx, "run", "--config", filepath.Join(dir, "finderbot.yaml"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	checkRefused(t, cmd.Run(), stdout.String(), stderr.String(), "admin listener", ln.Addr().String())
}

func TestRunRefusesAStateDirInUse(t *testing.T) {
	t.Parallel()
	dir, _ := startupCase{files: map[string]string{
		"finderbot.yaml": simConfig("./data", "./rules"),
		"rules/ok.yaml":  goodRule,
	}}.setUp(t)
	cfg := filepath.Join(dir, "finderbot.yaml")
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()

	first := runDaemon(t, cfg)
	first.waitFor(t, `msg="finderbot started"`)
	second := finderbot(t, ctx, "run", "--config", cfg)
	var stdout, stderr bytes.Buffer
	second.Stdout, second.Stderr = &stdout, &stderr
	begin := time.Now()
	err := second.Run()
	took := time.Since(begin)
	checkRefused(t, err, stdout.String(), stderr.String(), "store: the state directory is in use by another finderbot process")
	// The store waits a second for the lock before it gives up; the rest is
	// slack for a loaded machine, far below the deadline of a hang.
	if took > 10*time.Second {
		t.Errorf("the second daemon took %v to give up", took)
	}

	first.stop(t)
}

// TestRunRefusalLeaksNothing runs the refused start-ups in this process, to
// see that everything opened before the failure is closed again.
func TestRunRefusalLeaksNothing(t *testing.T) {
	// Not parallel: goleak looks at every goroutine of the process.
	before := goleak.IgnoreCurrent()
	for name, c := range startupCases {
		t.Run(name, func(t *testing.T) {
			dir, _ := c.setUp(t)
			root := newRootCmd(nil)
			root.SetArgs([]string{"run", "--config", filepath.Join(dir, c.config)})
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			defer cancel()
			if err := root.ExecuteContext(ctx); err == nil {
				t.Fatalf("run succeeded:\n%s", out.String())
			}
			if out.Len() > 0 {
				t.Errorf("run wrote before it failed:\n%s", out.String())
			}
		})
	}
	goleak.VerifyNone(t, before)
}

// TestStoreBackupAndCheck runs the store command as an operator does: a
// backup and a check through a running daemon, a check of the backup file,
// the same with the daemon stopped, and a check of a damaged copy.
func TestStoreBackupAndCheck(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the daemon listens there
	cfgText := strings.Replace(simConfig("./data", "./rules"), "admin: {listen: 127.0.0.1:0}", "admin: {listen: "+addr+", token: s3cret}", 1)
	dir, _ := startupCase{files: map[string]string{"finderbot.yaml": cfgText, "rules/ok.yaml": goodRule}}.setUp(t)
	cfg := filepath.Join(dir, "finderbot.yaml")
	run := func(args ...string) (stdout string, code int) {
		t.Helper()
		out, errOut, code := runFinderbot(t, args...)
		if errOut != "" && code == 0 {
			t.Errorf("finderbot %s wrote to stderr:\n%s", strings.Join(args, " "), errOut)
		}
		return out, code
	}
	expect := func(args []string, wantCode int, want ...string) {
		t.Helper()
		out, code := run(args...)
		if code != wantCode {
			t.Errorf("finderbot %s: exit status %d, want %d\n%s", strings.Join(args, " "), code, wantCode, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("finderbot %s does not say %q:\n%s", strings.Join(args, " "), w, out)
			}
		}
	}
	db := filepath.Join(dir, "data", "finderbot.db")
	live, stopped := filepath.Join(dir, "live.db"), filepath.Join(dir, "stopped.db")

	d := runDaemon(t, cfg)
	d.waitFor(t, `msg="page synced"`) // the seed page is in the store
	expect([]string{"store", "backup", live, "--config", cfg}, 0,
		"wrote "+live+" (", "from the daemon running at "+addr+"\nok: "+live+": 1 accounts, ")
	expect([]string{"store", "check", "--config", cfg}, 0, "ok: "+db+" (through the daemon running at "+addr+"): 1 accounts, ")
	expect([]string{"store", "check", live}, 0, "ok: "+live+": 1 accounts, ")
	d.stop(t)

	expect([]string{"store", "backup", stopped, "--config", cfg}, 0,
		"wrote "+stopped+" from "+db+" (no daemon is running)\nok: "+stopped+": 1 accounts, ")
	expect([]string{"store", "check", "--config", cfg}, 0, "ok: "+db+": 1 accounts, ")

	data, err := os.ReadFile(stopped)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.db")
	if err := os.WriteFile(cut, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	expect([]string{"store", "check", cut}, 1, cut+": the file is ", "it was cut short")
	for _, f := range []string{live, stopped} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want a file of mode 0600", f, fi, err)
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmps) > 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}
