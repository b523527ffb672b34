//go:build unix

package plugins_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/finderbot/finderbot/plugins"
	"github.com/finderbot/finderbot/sdk"
	"github.com/finderbot/finderbot/sdk/sdktest"
)

// TestReadsRefuseWhatIsNotAFile gives the lock file reader and the
// executable hasher named pipes, a link to /dev/zero and files past their
// bounds: each is refused at once, by name.
func TestReadsRefuseWhatIsNotAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lock := sdktest.MakeNotFiles(t, dir, "plugins.lock", nil, sdk.MaxFileSize)
	exe := sdktest.MakeNotFiles(t, dir, "greeter", nil, 0)
	// A sparse file: past the bound without a gibibyte on disk, and refused
	// before a byte of it is hashed.
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, plugins.MaxExecutableSize+1); err != nil {
		t.Fatal(err)
	}
	readLock := func(path string) func() error {
		return func() error { _, err := plugins.ReadLock(path); return err }
	}
	hash := func(path string) func() error {
		return func() error { _, err := plugins.HashFile(path); return err }
	}
	for name, c := range map[string]struct {
		read func() error
		want string
	}{
		"lock file that is a named pipe":         {readLock(lock.NamedPipe), "plugins: " + lock.NamedPipe + " is a named pipe, not a regular file"},
		"lock file that is a link to /dev/zero":  {readLock(lock.DevZero), "plugins: " + lock.DevZero + " is a device, not a regular file"},
		"lock file of 1 MiB and one byte":        {readLock(lock.TooLarge), "plugins: " + lock.TooLarge + " is larger than 1 MiB"},
		"executable that is a named pipe":        {hash(exe.NamedPipe), "plugins: " + exe.NamedPipe + " is a named pipe, not a regular file"},
		"executable that is a link to /dev/zero": {hash(exe.DevZero), "plugins: " + exe.DevZero + " is a device, not a regular file"},
		"executable of 1 GiB and one byte":       {hash(huge), "plugins: " + huge + " is larger than 1 GiB; is it a plugin executable?"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var err error
			sdktest.Returns(t, 10*time.Second, func() { err = c.read() })
			if err == nil || err.Error() != c.want {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	// A missing lock file still means: nothing is pinned.
	if l, err := plugins.ReadLock(filepath.Join(dir, "nosuch.lock")); err != nil || len(l) != 0 {
		t.Fatalf("ReadLock of a missing file = %v, %v; want an empty lock", l, err)
	}
}
