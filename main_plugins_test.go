package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/plugins"
)

// pluginsDir makes a plugin directory under dir holding the counter example
// plugin, pinned, and an unpinned copy of it named other.
func pluginsDir(t *testing.T, dir string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a plugin")
	}
	pd := filepath.Join(dir, "plugins")
	counter := filepath.Join(pd, "counter")
	if out, err := exec.Command("go", "build", "-o", counter, "./examples/plugins/counter").CombinedOutput(); err != nil {
		t.Fatalf("build the counter plugin: %v\n%s", err, out)
	}
	if _, _, err := plugins.LockDir(pd, ""); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(counter)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(pd, "other"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return pd
}

// runFinderbot runs the command and returns its output and exit status.
func runFinderbot(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	cmd := finderbot(t, ctx, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func TestPluginsLsFailsWhenAPluginCannotRun(t *testing.T) {
	t.Parallel()
	pd := pluginsDir(t, t.TempDir())

	stdout, stderr, code := runFinderbot(t, "plugins", "ls", "--dir", pd)
	if code != 1 || !strings.Contains(stdout, "counter") || !strings.Contains(stdout, "other") ||
		!strings.Contains(stdout, "refused") || stderr == "" ||
		!strings.HasSuffix(stderr, "finderbot: plugins: 1 of 2 cannot run: other (refused)\n") {
		t.Errorf("plugins ls with an unpinned plugin: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	stdout, stderr, code = runFinderbot(t, "plugins", "ls", "--dir", pd, "--dev")
	if code != 0 || strings.Count(stdout, "ready") != 2 {
		t.Errorf("plugins ls --dev: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	if err := os.Remove(filepath.Join(pd, "other")); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = runFinderbot(t, "plugins", "ls", "--dir", pd, "-v")
	if code != 0 || !strings.Contains(stdout, "output dropped: 0 lines, 0 bytes") {
		t.Errorf("plugins ls -v with every plugin pinned: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

const pluginRules = `rules:
  - name: plugins
    when: "!msg.FromSelf"
    actions:
      - plugin: counter.count
      - plugin: counter.nosuch
      - plugin: other.count
      - plugin: ghost.count
`

func TestCheckConfigFindsPluginActionsThatCannotBeCalled(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		plugins string // the configuration's plugins key
		want    []string
	}{
		"pinned": {plugins: "{dir: ./plugins}", want: []string{
			`rules: {dir}/rules/r.yaml:6:17: rule "plugins": plugin: plugin "counter" has no action "nosuch"; it offers count, reset, report`,
			`rules: {dir}/rules/r.yaml:7:17: rule "plugins": plugin: plugin "other" is refused: {dir}/plugins/other is not pinned in {dir}/plugins/plugins.lock`,
			`rules: {dir}/rules/r.yaml:8:17: rule "plugins": plugin: no plugin "ghost": {dir}/plugins holds no executable of that name`,
			"3 problems",
		}},
		"dev mode": {plugins: "{dir: ./plugins, dev: true}", want: []string{
			`rules: {dir}/rules/r.yaml:6:17: rule "plugins": plugin: plugin "counter" has no action "nosuch"`,
			`rules: {dir}/rules/r.yaml:8:17: rule "plugins": plugin: no plugin "ghost"`,
			"2 problems",
		}},
		"no plugins": {plugins: "{}", want: []string{
			`rules: {dir}/rules/r.yaml:5:17: rule "plugins": plugin: no plugins are configured (plugins.dir in {dir}/finderbot.yaml)`,
			"4 problems",
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tc.plugins != "{}" {
				pluginsDir(t, dir)
			}
			cfg := simConfig("./data", "./rules") + "plugins: " + tc.plugins + "\n"
			for path, text := range map[string]string{"finderbot.yaml": cfg, "rules/r.yaml": pluginRules} {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, path)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, path), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			stdout, stderr, code := runFinderbot(t, "check", "--config", filepath.Join(dir, "finderbot.yaml"))
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want exit 1 and nothing on stdout", code, stdout)
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "{dir}", dir); !strings.Contains(stderr, w) {
					t.Errorf("stderr does not hold %q", w)
				}
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "finderbot: ") {
				t.Errorf("stderr holds more than the problems")
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", stderr)
			}

			if name != "pinned" {
				return
			}
			// The rule files alone hold no problem.
			stdout, stderr, code = runFinderbot(t, "check", filepath.Join(dir, "rules"))
			if code != 0 || !strings.HasPrefix(stdout, "ok: 1 rule") {
				t.Errorf("check PATH: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
		})
	}
}

func TestCheckRefusesMixedArguments(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"nothing to check":     {"check"},
		"config and paths":     {"check", "--config", "finderbot.yaml", "rules"},
		"config and time zone": {"check", "--config", "finderbot.yaml", "--timezone", "UTC"},
	} {
		root := newRootCmd(nil)
		root.SetArgs(args)
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		if err := root.ExecuteContext(t.Context()); err == nil || !strings.Contains(err.Error(), "--config") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestPluginsNew runs `finderbot plugins new` as a user does: into --dir,
// and refusing a bad name or a directory that holds something.
func TestPluginsNew(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mod := filepath.Join(dir, "mine")
	stdout, stderr, code := runFinderbot(t, "plugins", "new", "greeter", "--dir", mod)
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "wrote the plugin greeter in "+mod+":\n") {
		t.Errorf("plugins new --dir: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(mod, "main.go")); err != nil {
		t.Error(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"a bad name":         {[]string{"plugins", "new", "my.bot", "--dir", filepath.Join(dir, "x")}, `finderbot: plugins: new: "my.bot" is not a valid plugin name`},
		"a directory in use": {[]string{"plugins", "new", "greeter", "--dir", mod}, "finderbot: plugins: new: " + mod + " is not empty (it holds "},
		"no name":            {[]string{"plugins", "new"}, "finderbot: accepts 1 arg(s), received 0"},
	} {
		stdout, stderr, code := runFinderbot(t, tc.args...)
		if code != 1 || stdout != "" || !strings.HasPrefix(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1 and one line starting %q", name, code, stdout, stderr, tc.want)
		}
	}
}
