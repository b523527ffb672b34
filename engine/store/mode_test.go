package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// openDirEnv, when set, makes the test binary open the store in the
// directory it names and print the error, so that a test can run Open as
// another user.
const openDirEnv = "FINDERBOT_STORE_TEST_OPEN"

func TestMain(m *testing.M) {
	if dir := os.Getenv(openDirEnv); dir != "" {
		s, err := Open(dir, Options{})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		s.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLooseModesAreTightened opens stores in real directories left open to
// other users: the directory becomes 0700 and the file 0600, each said in
// one log record; a private directory says nothing.
func TestLooseModesAreTightened(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		dir, file os.FileMode // 0: leave as Open makes it
		records   int
	}{
		"world-writable directory":  {dir: 0o777, records: 1},
		"group and world readable":  {dir: 0o755, records: 1},
		"group-writable directory":  {dir: 0o770, records: 1},
		"readable file":             {file: 0o644, records: 1},
		"both":                      {dir: 0o755, file: 0o666, records: 2},
		"already private":           {dir: 0o700, file: 0o600, records: 0},
		"private, owner-only umask": {dir: 0o700, records: 0},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "state")
			open(t, dir, Options{}).Close() // a store to reopen
			if c.dir != 0 {
				chmod(t, dir, c.dir)
			}
			if c.file != 0 {
				chmod(t, filepath.Join(dir, dbName), c.file)
			}
			var log bytes.Buffer
			s, err := Open(dir, Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, dbName): 0o600} {
				if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
					t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
				}
			}
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if log.Len() == 0 {
				lines = nil
			}
			if len(lines) != c.records {
				t.Fatalf("%d log records, want %d:\n%s", len(lines), c.records, log.String())
			}
			for _, l := range lines {
				if !strings.Contains(l, "was open to other users; made it private") || !strings.Contains(l, "path="+dir) {
					t.Errorf("the log record does not say what was changed where: %s", l)
				}
			}
			if c.dir != 0 && c.dir != 0o700 && !strings.Contains(log.String(), fmt.Sprintf("was=%04o now=0700", c.dir)) {
				t.Errorf("the record does not give the old and new modes:\n%s", log.String())
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestLooseModeThatCannotBeTightenedIsRefused opens, as an unprivileged
// user, a state directory open to everyone that another user owns: chmod
// fails, and Open refuses with one clear error instead of running in it.
func TestLooseModeThatCannotBeTightenedIsRefused(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to own a directory that the user nobody cannot chmod")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// nobody must reach the binary and the state directory.
	base := t.TempDir()
	chmod(t, filepath.Dir(base), 0o755) // the test's own directory, above base
	chmod(t, base, 0o755)
	bin := filepath.Join(base, "store.test")
	copyFile(t, exe, bin, 0o755)
	dir := filepath.Join(base, "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, dir, 0o777)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), openDirEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("Open succeeded in a directory it could not make private:\n%s", out)
	}
	want := fmt.Sprintf("store: state directory %s has mode 0777, open to other users, and making it 0700 failed: chmod %s: operation not permitted; make it private (chmod 700 %s) or use another state_dir\n", dir, dir, dir)
	if string(out) != want {
		t.Errorf("output (%v):\n%s\nwant:\n%s", err, out, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("Open left files in the refused directory: %v", entries)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
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
