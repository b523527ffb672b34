package sdk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxFileSize is the usual bound of ReadFile: a file a person writes (a
// configuration, a rule file, a keyword table) is a few KiB, and anything
// past 1 MiB is a mistake, such as a log or a binary named by accident.
const MaxFileSize = 1 << 20

// ErrNotRegular is wrapped by the errors of ReadFile and OpenRegular for a
// path that names a named pipe, a device, a socket or a directory.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by the error of ReadFile for a file larger than its
// limit.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads the regular file at path, refusing it when it holds more
// than limit bytes. Use it for every file an operator names, instead of
// os.ReadFile: a named pipe, a device or a socket in its place (a rule file
// linked to /dev/zero, a FIFO nobody writes to) is refused at once with an
// error such as "rules/a.yaml is a named pipe, not a regular file", never
// read without end or waited on; a file past limit is refused with "… is
// larger than 1 MiB". The errors wrap ErrNotRegular, ErrTooLarge, or the
// error of os.Stat or os.Open (a missing file satisfies
// errors.Is(err, fs.ErrNotExist)).
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	// The size was a hint: the file may grow while it is read.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(path, limit)
	}
	return data, nil
}

// OpenRegular opens the regular file at path for reading, without ever
// blocking, and refuses anything else. The caller bounds what it reads.
//
// A device is refused before it is opened (opening one may have effects, a
// tape rewinding); the open itself does not wait for a writer even when a
// named pipe replaced the file after that check; and what was opened is
// checked again.
func OpenRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	return openNoWait(path)
}

// openNoWait opens path and keeps it only if what it opened is a regular
// file. O_NONBLOCK makes the open of a named pipe return at once instead of
// waiting for a writer; it changes nothing for a regular file.
func openNoWait(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, notRegular(path, st.Mode())
	}
	return f, nil
}

// fileError names the refused path and what it is, and wraps the sentinel.
type fileError struct {
	path, what string
	err        error
}

func (e *fileError) Error() string { return e.path + " " + e.what }
func (e *fileError) Unwrap() error { return e.err }

func notRegular(path string, mode fs.FileMode) error {
	what := "is not a regular file"
	switch {
	case mode&fs.ModeNamedPipe != 0:
		what = "is a named pipe, not a regular file"
	case mode&fs.ModeSocket != 0:
		what = "is a socket, not a regular file"
	case mode&fs.ModeDevice != 0:
		what = "is a device, not a regular file"
	case mode.IsDir():
		what = "is a directory, not a regular file"
	}
	return &fileError{path, what, ErrNotRegular}
}

func tooLarge(path string, limit int64) error {
	return &fileError{path, "is larger than " + sizeString(limit), ErrTooLarge}
}

// sizeString writes a limit the way a person would: "1 MiB", "1 GiB",
// "300 bytes".
func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n == 1:
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}
