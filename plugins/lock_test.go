package plugins_test

import (
	"bytes"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finderbot/finderbot/plugins"
)

const sumA = "509134e11c6e1f43175c286e4eb59c5fbf9fbe2e19df3b7f294c65828c05b811"

func TestParseLock(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		in   string
		want map[string]string
		err  string
	}{
		"sha256sum output":  {in: sumA + "  greeter\n", want: map[string]string{"greeter": sumA}},
		"binary marker":     {in: sumA + " *greeter.exe\n", want: map[string]string{"greeter": sumA}},
		"comments, blanks":  {in: "# pins\n\n" + sumA + "  a\n", want: map[string]string{"a": sumA}},
		"empty":             {in: "", want: map[string]string{}},
		"no name":           {in: sumA + "\n", err: "plugins.lock:1: want"},
		"short digest":      {in: "abcd  a\n", err: `plugins.lock:1: "abcd" is not a SHA-256 in hex`},
		"not hex":           {in: strings.Repeat("z", 64) + "  a\n", err: "is not a SHA-256"},
		"pinned twice":      {in: sumA + "  a\n" + sumA + "  a\n", err: "plugins.lock:2: a is pinned twice"},
		"error names line":  {in: "# c\n" + sumA + "  a\nnonsense\n", err: "plugins.lock:3:"},
		"uppercase hex too": {in: strings.ToUpper(sumA) + "  a\n", want: map[string]string{"a": sumA}},
	} {
		t.Run(name, func(t *testing.T) {
			lock, err := plugins.ParseLock("plugins.lock", []byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range lock {
				got[k] = hex.EncodeToString(v)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDiscoverAndLockDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("b", 0o755)
	write("a.exe", 0o755)
	write("README.md", 0o644) // not executable
	write(".hidden", 0o755)   // hidden
	write("bad.name", 0o755)  // cannot be named in a rule
	write("keywords.yaml", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}

	pins, problems, err := plugins.LockDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pins {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "a,b" {
		t.Errorf("pinned %v, want [a b]", names)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], `"bad.name" is not a valid plugin name`) {
		t.Errorf("problems = %q", problems)
	}
	lock, err := plugins.ReadLock(filepath.Join(dir, plugins.LockFileName))
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := plugins.HashFile(filepath.Join(dir, "b"))
	if !bytes.Equal(lock["b"], sum) || len(lock) != 2 {
		t.Errorf("lock = %x", lock)
	}
	// The lock file is never taken for a plugin, even if executable.
	if err := os.Chmod(filepath.Join(dir, plugins.LockFileName), 0o755); err != nil {
		t.Fatal(err)
	}
	exes, _, err := plugins.Discover(dir)
	if err != nil || len(exes) != 2 {
		t.Errorf("Discover = %v, %v", exes, err)
	}
}

func FuzzParseLock(f *testing.F) {
	f.Add([]byte(sumA + "  greeter\n# c\n"))
	f.Add([]byte(sumA + " *a.exe\r\n"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lock, err := plugins.ParseLock("f", data)
		if err != nil {
			return
		}
		// What parses formats back to the same pins.
		again, err := plugins.ParseLock("f", lock.Format())
		if err != nil {
			t.Fatalf("formatted lock does not parse: %v\n%s", err, lock.Format())
		}
		if !maps.EqualFunc(lock, again, bytes.Equal) {
			t.Fatalf("round trip changed the pins: %x -> %x", lock, again)
		}
	})
}
