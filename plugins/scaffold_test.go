package plugins

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestScaffoldRefuses(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		plugin string
		setUp  func(t *testing.T, dir string) // makes what is at dir before
		want   []string
	}{
		"a dot in the name": {plugin: "my.bot", want: []string{`"my.bot" is not a valid plugin name`, "plugin: <name>.<action>"}},
		"an empty name":     {plugin: "", want: []string{`"" is not a valid plugin name`}},
		"a leading dash":    {plugin: "-x", want: []string{`"-x" is not a valid plugin name`}},
		"a path":            {plugin: "../x", want: []string{`"../x" is not a valid plugin name`}},
		"a space":           {plugin: "a b", want: []string{`"a b" is not a valid plugin name`}},
		"a directory that holds a file": {plugin: "greeter", setUp: func(t *testing.T, dir string) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"is not empty (it holds notes.txt); give a new or empty directory with --dir"}},
		"a regular file": {plugin: "greeter", setUp: func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"cannot hold the new plugin", "not a directory"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "greeter")
			if tc.setUp != nil {
				tc.setUp(t, dir)
			}
			before := listTree(t, dir)
			_, err := Scaffold(dir, tc.plugin, "test")
			if err == nil {
				t.Fatal("Scaffold succeeded")
			}
			for _, w := range append(tc.want, "plugins: new: ") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not hold %q", err, w)
				}
			}
			if after := listTree(t, dir); !slices.Equal(before, after) {
				t.Errorf("Scaffold changed %s: %v, then %v", dir, before, after)
			}
		})
	}
}

// listTree returns the paths under dir (none when it does not exist).
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return nil
	})
	return paths
}

func TestScaffoldWrites(t *testing.T) {
	t.Parallel()
	// An empty directory is as good as a new one.
	dir := t.TempDir()
	written, err := Scaffold(dir, "order-bot", "v1.2.3 (test)")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "go.sum", "main.go", "main_test.go", "README.md",
		ScaffoldSDKDir + "/go.mod", ScaffoldSDKDir + "/serve.go", ScaffoldSDKDir + "/sdktest/sdktest.go",
		ScaffoldSDKDir + "/internal/pluginpb/plugin.pb.go"} {
		if !slices.Contains(written, f) {
			t.Errorf("%s was not written", f)
		}
	}
	for _, f := range written {
		if strings.HasSuffix(f, "_test.go") && f != "main_test.go" {
			t.Errorf("%s: the SDK's tests are written too", f)
		}
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	for _, f := range []string{"main.go", "main_test.go"} {
		if _, err := parser.ParseFile(token.NewFileSet(), f, read(f), 0); err != nil {
			t.Errorf("%s does not parse: %v", f, err)
		}
	}
	if m := read("main.go"); !strings.Contains(m, "type orderBot struct{}") || !strings.Contains(m, `Name: "order-bot"`) ||
		!strings.Contains(m, "sdk.Serve(orderBot{})") {
		t.Errorf("main.go does not name the plugin order-bot with a type orderBot:\n%s", m)
	}
	if r := read("README.md"); !strings.Contains(r, "plugin: order-bot.greet") || !strings.Contains(r, "v1.2.3 (test)") {
		t.Errorf("README.md lacks the plugin's rule or the SDK's version:\n%s", r)
	}
	mod := read("go.mod")
	for _, want := range []string{"module order-bot\n", "\nrequire " + SDKModule + " " + noVersion + "\n",
		"\tgithub.com/hashicorp/go-plugin v", "\tgoogle.golang.org/grpc v", "\tgoogle.golang.org/protobuf v",
		"\nreplace " + SDKModule + " => ./" + ScaffoldSDKDir + "\n"} {
		if !strings.Contains(mod, want) {
			t.Errorf("go.mod lacks %q:\n%s", want, mod)
		}
	}
	if strings.Contains(mod, "goleak") {
		t.Errorf("go.mod requires what only the SDK's tests need:\n%s", mod)
	}
	reqs := regexp.MustCompile(`(?m)^\t(\S+) \S+ // indirect$`).FindAllStringSubmatch(mod, -1)
	if !slices.IsSortedFunc(reqs, func(a, b []string) int { return strings.Compare(a[1], b[1]) }) || len(reqs) < 5 {
		t.Errorf("go.mod's indirect requirements are not sorted as go mod tidy writes them:\n%s", mod)
	}
}

// TestScaffoldReadmeSections checks that a new plugin's README has the
// sections every example plugin's has.
func TestScaffoldReadmeSections(t *testing.T) {
	t.Parallel()
	sections := func(text string) []string {
		var s []string
		for _, line := range strings.Split(text, "\n") {
			if h, ok := strings.CutPrefix(line, "## "); ok {
				// One rule or several: the same section.
				s = append(s, strings.TrimSuffix(h, "s"))
			}
		}
		return s
	}
	dir := t.TempDir()
	if _, err := Scaffold(dir, "greeter", "test"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	have := sections(string(data))
	readmes, err := filepath.Glob("../examples/plugins/*/README.md")
	if err != nil || len(readmes) == 0 {
		t.Fatalf("no example plugin READMEs: %v", err)
	}
	for _, r := range readmes {
		data, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"Action", "Rule", "Build and pin"} {
			if !slices.Contains(sections(string(data)), s) {
				t.Errorf("%s has no section %q", r, s)
			}
			if !slices.Contains(have, s) {
				t.Errorf("a new plugin's README has no section %q, which %s has", s, r)
			}
		}
	}
}

func TestGoTypeName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"greeter": "greeter", "order-bot": "orderBot", "crm_sync": "crmSync", "a--b": "aB", "x-": "x",
		"9lives": "plugin9lives", "func": "funcPlugin", "main": "mainPlugin", "sdk": "sdkPlugin",
		"t": "tPlugin", "string": "stringPlugin", "Echo": "Echo",
	} {
		if got := goTypeName(name); got != want || !token.IsIdentifier(got) {
			t.Errorf("goTypeName(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestScaffoldDependsOnTheSDKAlone checks the module graph of a new plugin
// for what the daemon requires and the SDK does not: none of it may be
// there, and none of it is built into the plugin or its test.
func TestScaffoldDependsOnTheSDKAlone(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs go mod graph, which may download go.mod files")
	}
	sdkReqs := map[string]bool{}
	for _, r := range modRequires(t, "../sdk/go.mod") {
		sdkReqs[r.Path] = true
	}
	var daemonOnly []string
	for _, r := range modRequires(t, "../go.mod") {
		if !r.Indirect && !sdkReqs[r.Path] && r.Path != SDKModule {
			daemonOnly = append(daemonOnly, r.Path)
		}
	}
	for _, m := range []string{"go.etcd.io/bbolt", "github.com/spf13/cobra", "github.com/prometheus/client_golang",
		"github.com/expr-lang/expr", "gopkg.in/yaml.v3"} {
		if !slices.Contains(daemonOnly, m) {
			t.Fatalf("%s is not among the daemon's own requirements %v", m, daemonOnly)
		}
	}
	dir := t.TempDir()
	if _, err := Scaffold(dir, "greeter", "test"); err != nil {
		t.Fatal(err)
	}
	graph := goCmd(t, dir, "mod", "graph")
	deps := goCmd(t, dir, "list", "-deps", "-test", "./...")
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range daemonOnly {
		for _, edge := range strings.Split(graph, "\n") {
			from, to, _ := strings.Cut(edge, " ")
			if !strings.HasPrefix(to, m+"@") {
				continue
			}
			// go-plugin logs with go-hclog, whose go.mod requires
			// testify for its tests, which requires yaml.v3: a go.mod
			// in the graph, never code in the build (checked below).
			if m == "gopkg.in/yaml.v3" && strings.HasPrefix(from, "github.com/stretchr/testify@") {
				continue
			}
			t.Errorf("the plugin's module graph holds %s, which only the daemon needs: %s", m, edge)
		}
		if m != "gopkg.in/yaml.v3" && strings.Contains(string(sum), m+" ") {
			t.Errorf("the plugin's go.sum holds %s, which only the daemon needs", m)
		}
		for _, pkg := range strings.Split(deps, "\n") {
			if pkg == m || strings.HasPrefix(pkg, m+"/") {
				t.Errorf("the plugin builds %s, of %s, which only the daemon needs", pkg, m)
			}
		}
	}
	if !strings.Contains(deps, "github.com/hashicorp/go-plugin\n") || !strings.Contains(deps, "google.golang.org/grpc\n") {
		t.Errorf("the plugin does not build go-plugin and gRPC:\n%s", deps)
	}
}

type modRequire struct {
	Path     string
	Indirect bool
}

// modRequires returns the requirements of a go.mod file.
func modRequires(t *testing.T, gomod string) []modRequire {
	t.Helper()
	var f struct{ Require []modRequire }
	out := goCmd(t, ".", "mod", "edit", "-json", gomod)
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatal(err)
	}
	return f.Require
}

// goCmd runs the go command in dir and returns its standard output.
func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if exit, ok := err.(*exec.ExitError); ok {
			stderr = exit.Stderr
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}
