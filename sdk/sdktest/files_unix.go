//go:build unix

package sdktest

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// NotFiles are what an operator may name by mistake where a plugin (or the
// daemon) expects a file to read. sdk.ReadFile refuses each at once; a test
// hands them to its own loading code to see that it does too.
type NotFiles struct {
	// NamedPipe is a named pipe nobody writes to: os.ReadFile waits on it
	// for ever.
	NamedPipe string
	// DevZero is a link to /dev/zero: os.ReadFile reads it until memory
	// runs out.
	DevZero string
	// TooLarge is the good content given to MakeNotFiles, padded with
	// spaces to one byte past the limit.
	TooLarge string
}

// MakeNotFiles creates NotFiles in dir, named after name ("table.yaml"
// gives "pipe-table.yaml", "zero-table.yaml" and "large-table.yaml"), with
// good, padded past limit, as the content of TooLarge.
func MakeNotFiles(t testing.TB, dir, name string, good []byte, limit int64) NotFiles {
	t.Helper()
	nf := NotFiles{
		NamedPipe: filepath.Join(dir, "pipe-"+name),
		DevZero:   filepath.Join(dir, "zero-"+name),
		TooLarge:  filepath.Join(dir, "large-"+name),
	}
	if err := syscall.Mkfifo(nf.NamedPipe, 0o600); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	if err := os.Symlink("/dev/zero", nf.DevZero); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	pad := max(limit+1-int64(len(good)), 0)
	if err := os.WriteFile(nf.TooLarge, append(bytes.Clone(good), bytes.Repeat([]byte(" "), int(pad))...), 0o600); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	return nf
}

// Returns runs f and fails the test unless f returns within d: a read
// blocked on a named pipe would otherwise hang the whole test binary. Call
// it from the test's own goroutine.
func Returns(t testing.TB, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("sdktest: still blocked after %v", d)
	}
}
