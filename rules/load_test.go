package rules

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with the golden file at path, or rewrites it with
// -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// TestLoadErrors pins the text of load errors, positions and carets
// included: each testdata/errors/X.yaml is refused with X.golden.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatal("no testdata/errors/*.yaml", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := Options{}
			if strings.HasPrefix(name, "plugin") {
				opts.Plugins = []string{"crm.record", "crm.tag"}
			}
			_, err := Load(opts, f)
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load(%s) = %v, want a *LoadError", f, err)
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", err.Error()+"\n")
		})
	}
}

func TestLoadDirectorySkipsTests(t *testing.T) {
	t.Parallel()
	set, err := Load(Options{}, "../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range set.Rules() {
		if strings.HasSuffix(r.File, "_test.yaml") {
			t.Errorf("rule %s loaded from test file %s", r.Name, r.File)
		}
	}
	if set.Rule("greet") == nil || set.Rule("morning") == nil {
		t.Errorf("example rules missing: %s", set.Summary())
	}
}

func TestLoadBounds(t *testing.T) {
	t.Parallel()
	long := `msg.Text == "` + strings.Repeat("a", 300) + `"`
	tests := map[string]struct {
		src  string
		opts Options
		want string
	}{
		"expression too long": {
			src:  "rules:\n  - name: a\n    when: " + long + "\n    actions: [{reply: x}]\n",
			opts: Options{MaxExprLen: 100},
			want: "x.yaml:3:11: rule \"a\": when: expression is 314 bytes, more than the limit of 100",
		},
		"template expression too long": {
			src:  "rules:\n  - name: a\n    actions: [{reply: '{{ " + long + " }}'}]\n",
			opts: Options{MaxExprLen: 100},
			want: "expression is 316 bytes, more than the limit of 100",
		},
		"too many nodes": {
			src:  "rules:\n  - name: a\n    when: " + strings.Repeat("1 + ", 600) + "1 > 0\n    actions: [{reply: x}]\n",
			want: "exceeds maximum allowed nodes",
		},
		"no paths": {want: "no rule files given"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.src == "" {
				_, err = Load(tc.opts)
			} else {
				_, err = Compile(tc.opts, Source{Name: "x.yaml", Data: []byte(tc.src)})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	set := mustCompile(t, Options{}, `
rules:
  - name: loops
    when: msg.Text contains "价格"
    actions: [{reply: "价格见橱窗"}]
  - name: guarded
    when: msg.Text contains "价格" && !msg.FromSelf
    actions: [{reply: "价格见橱窗"}]
  - name: records-only
    actions: [{plugin: crm.record}]
`)
	w := set.Warnings()
	if len(w) != 1 || w[0].Rule != "loops" || w[0].Line != 3 {
		t.Errorf("warnings = %v, want one for rule loops at line 3", w)
	}
}

func TestLoadSkipsTestdataAndHiddenDirs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for path, body := range map[string]string{
		"a.yaml":            "rules:\n  - name: a\n    actions: [{plugin: x.y}]\n",
		"sub/b.yml":         "rules:\n  - name: b\n    actions: [{plugin: x.y}]\n",
		"a_test.yaml":       "not: rules\n",
		"testdata/bad.yaml": "broken: [\n",
		".git/x.yaml":       "broken: [\n",
	} {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := Load(Options{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Summary(); got != "2 rules (2 message, 0 cron, 0 event) from 2 files" {
		t.Errorf("Summary() = %q", got)
	}
}
