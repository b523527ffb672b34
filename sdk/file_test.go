//go:build unix

package sdk

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// prompt runs read in a goroutine and fails the test if it has not returned
// within a deadline: a read that blocks on a named pipe would otherwise hang
// the whole test binary.
func prompt(t *testing.T, read func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- read() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the read is still blocked after 10s")
		return nil
	}
}

func TestReadFileRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.yaml")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // after the parallel subtests
	for name, c := range map[string]struct {
		path string
		want string
		is   error
	}{
		"a named pipe nobody writes to": {fifo, fifo + " is a named pipe, not a regular file", ErrNotRegular},
		"a link to /dev/zero":           {zero, zero + " is a device, not a regular file", ErrNotRegular},
		"/dev/zero itself":              {"/dev/zero", "/dev/zero is a device, not a regular file", ErrNotRegular},
		"a socket":                      {sock, sock + " is a socket, not a regular file", ErrNotRegular},
		"a directory":                   {dir, dir + " is a directory, not a regular file", ErrNotRegular},
		"1 MiB and one byte":            {big, big + " is larger than 1 MiB", ErrTooLarge},
		"a missing file":                {filepath.Join(dir, "nosuch"), "no such file or directory", fs.ErrNotExist},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var data []byte
			err := prompt(t, func() (err error) {
				data, err = ReadFile(c.path, MaxFileSize)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.is) {
				t.Fatalf("ReadFile(%s) = %d bytes, %v; want an error %q wrapping %v", c.path, len(data), err, c.want, c.is)
			}
		})
	}
}

func TestReadFileReadsUpToTheLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := bytes.Repeat([]byte("y"), MaxFileSize)
	p := filepath.Join(dir, "full.yaml")
	if err := os.WriteFile(p, want, 0o600); err != nil {
		t.Fatal(err)
	}
	// Through a link, as an operator's deploy tool may lay rule files out.
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(link, MaxFileSize)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadFile of a file of exactly the limit: %d bytes, %v", len(got), err)
	}
	if _, err := ReadFile(p, 1000); err == nil || !strings.Contains(err.Error(), "is larger than 1000 bytes") {
		t.Fatalf("ReadFile with a limit of 1000 bytes: err = %v", err)
	}
}

// TestOpenNoWaitRefusesANamedPipe is the named pipe swapped in after
// OpenRegular looked at the path: the open must neither wait for a writer
// nor keep what it opened.
func TestOpenNoWaitRefusesANamedPipe(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "swapped.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	err := prompt(t, func() error {
		f, err := openNoWait(fifo)
		if f != nil {
			f.Close()
		}
		return err
	})
	if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "is a named pipe") {
		t.Fatalf("openNoWait of a named pipe: err = %v", err)
	}
}

func TestSizeString(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{1 << 20: "1 MiB", 1 << 30: "1 GiB", 8 << 20: "8 MiB", 64 << 10: "64 KiB", 1000: "1000 bytes", 1: "1 byte", 1<<20 + 1: "1048577 bytes"} {
		if got := sizeString(n); got != want {
			t.Errorf("sizeString(%d) = %q, want %q", n, got, want)
		}
	}
}
