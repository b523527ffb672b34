package plugins

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/finderbot/finderbot/sdk"
)

// privateCopy is a plugin executable copied into the run directory: exactly
// the bytes that were hashed, where no other user can change them between
// the check and the start.
type privateCopy struct {
	dir  string // holds the copy alone; removed with it
	path string
	sum  []byte
}

// remove deletes the copy. A running process keeps its image.
func (c *privateCopy) remove() {
	if c != nil {
		os.RemoveAll(c.dir)
	}
}

// copyExecutable reads the executable at path once, writing what it reads
// both into a SHA-256 and into a new private copy under runDir. Whatever
// happens to path meanwhile — a rename over it, a rewrite — the copy holds
// the bytes the sum is of. Problems with the file itself (not a regular
// file, writable by others, too large) are ErrRefused.
func copyExecutable(path, runDir string) (*privateCopy, error) {
	// The one opener of operator-named files: a named pipe or a device is
	// refused without blocking, and the bytes read next are this file's.
	f, err := sdk.OpenRegular(path)
	switch {
	case errors.Is(err, sdk.ErrNotRegular):
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	case err != nil:
		return nil, fmt.Errorf("read the executable: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read the executable: %w", err)
	}
	if fi.Size() > MaxExecutableSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrRefused, path, MaxExecutableSize)
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	dir, err := os.MkdirTemp(runDir, filepath.Base(path)+"-")
	if err != nil {
		return nil, fmt.Errorf("copy the executable: %w", err)
	}
	c := &privateCopy{dir: dir, path: filepath.Join(dir, filepath.Base(path))}
	n, sum, err := writeCopy(c.path, f)
	switch {
	case err != nil:
		c.remove()
		return nil, fmt.Errorf("copy the executable: %w", err)
	case n > MaxExecutableSize:
		c.remove()
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrRefused, path, MaxExecutableSize)
	}
	c.sum = sum
	return c, nil
}

// writeCopy writes what r holds (up to one byte past MaxExecutableSize) into a
// new executable file at dst, and returns its size and SHA-256.
func writeCopy(dst string, r io.Reader) (int64, []byte, error) {
	// No process may be forked while the copy is open for writing: a child
	// would hold the descriptor until it execs, and starting the copy
	// meanwhile would fail with "text file busy".
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return 0, nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, MaxExecutableSize+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, h.Sum(nil), err
}

// prepareRunDir makes dir the private directory the Manager runs copies
// from: created 0700 if missing, refused if others could write it, and
// emptied of copies a previous daemon left when it was killed.
func prepareRunDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("plugins: run directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("plugins: run directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("plugins: run directory %s is not a directory (%s)", dir, fi.Mode().Type())
	}
	if err := checkPrivate(dir, fi); err != nil {
		return fmt.Errorf("plugins: run directory: %w", err)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("plugins: run directory: %w", err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("plugins: run directory: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("plugins: clean the run directory: %w", errors.Join(errs...))
	}
	return nil
}
