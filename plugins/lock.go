package plugins

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/finderbot/finderbot/sdk"
)

// LockFileName is the name of the pinned-checksum file inside the plugin
// directory, unless Config.LockFile says otherwise.
const LockFileName = "plugins.lock"

// Lock maps plugin names to the SHA-256 of the executable the operator
// trusts. Its file format is that of sha256sum, one "<hex digest>  <file
// name>" per line, so `sha256sum -c plugins.lock` checks it too.
type Lock map[string][]byte

// Executable is a plugin executable found in the plugin directory.
type Executable struct {
	// Name is the plugin's name: the file name without a ".exe" suffix.
	Name string
	// Path is the executable's path.
	Path string
}

// validName is what a plugin name must look like: rules write
// "plugin: <name>.<action>", so a name cannot contain a dot.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Discover returns the plugin executables in dir, sorted by name: regular
// files (or links to them) with an execute bit, except hidden files and the
// lock file. Files whose names cannot name a plugin are returned as
// problems, not silently skipped.
func Discover(dir string) (exes []Executable, problems []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("plugins: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || name == LockFileName {
			continue
		}
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		pname := strings.TrimSuffix(name, ".exe")
		if !validName.MatchString(pname) {
			problems = append(problems, fmt.Sprintf("%s: %q is not a valid plugin name (letters, digits, '-' and '_' only); skipped", path, pname))
			continue
		}
		exes = append(exes, Executable{Name: pname, Path: path})
	}
	slices.SortFunc(exes, func(a, b Executable) int { return strings.Compare(a.Name, b.Name) })
	return exes, problems, nil
}

// checkLockPaths refuses a plugin directory, lock file or directory of the
// lock file that a user other than the daemon's could change (see
// Config.LockFile). A missing lock file is fine: nothing is pinned.
func checkLockPaths(dir, lockFile string) error {
	type place struct{ path, what string }
	places := []place{{dir, "the plugin directory"}}
	if d := filepath.Dir(lockFile); d != dir {
		places = append(places, place{d, "the lock file's directory"})
	}
	for _, p := range places {
		fi, err := os.Stat(p.path)
		if err != nil {
			return fmt.Errorf("plugins: %w", err)
		}
		if err := checkPrivate(p.path, fi); err != nil {
			return fmt.Errorf("plugins: refusing %s: %w", p.what, err)
		}
	}
	fi, err := os.Stat(lockFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	if err := checkPrivate(lockFile, fi); err != nil {
		return fmt.Errorf("plugins: refusing the lock file: %w", err)
	}
	return nil
}

// MaxExecutableSize bounds what HashFile reads: far above any plugin
// executable, and far below a device that never ends.
const MaxExecutableSize = 1 << 30

// HashFile returns the SHA-256 of the regular file at path, refusing
// anything else (a named pipe would block the hash, a device feed it for
// ever) and a file past MaxExecutableSize.
func HashFile(path string) ([]byte, error) {
	f, err := sdk.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	defer f.Close()
	tooLarge := fmt.Errorf("plugins: %s is larger than %d GiB; is it a plugin executable?", path, MaxExecutableSize>>30)
	if st, err := f.Stat(); err == nil && st.Size() > MaxExecutableSize {
		return nil, tooLarge
	}
	h := sha256.New()
	// The size was a hint: the file may grow while it is hashed.
	n, err := io.Copy(h, io.LimitReader(f, MaxExecutableSize+1))
	if err != nil {
		return nil, fmt.Errorf("plugins: hash %s: %w", path, err)
	}
	if n > MaxExecutableSize {
		return nil, tooLarge
	}
	return h.Sum(nil), nil
}

// ReadLock reads a lock file. A missing file is an empty Lock: every plugin
// is then unpinned.
func ReadLock(path string) (Lock, error) {
	data, err := sdk.ReadFile(path, sdk.MaxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return Lock{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	return ParseLock(path, data)
}

// ParseLock parses the contents of a lock file; path is used in errors.
func ParseLock(path string, data []byte) (Lock, error) {
	lock := Lock{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimSpace(name), "*") // sha256sum's binary-mode marker
		if !ok || name == "" {
			return nil, fmt.Errorf("plugins: %s:%d: want \"<sha256>  <name>\", got %q", path, n, line)
		}
		digest, err := hex.DecodeString(sum)
		if err != nil || len(digest) != sha256.Size {
			return nil, fmt.Errorf("plugins: %s:%d: %q is not a SHA-256 in hex", path, n, sum)
		}
		name = strings.TrimSuffix(name, ".exe")
		if !validName.MatchString(name) {
			return nil, fmt.Errorf("plugins: %s:%d: %q is not a valid plugin name (letters, digits, '-' and '_' only)", path, n, name)
		}
		if _, dup := lock[name]; dup {
			return nil, fmt.Errorf("plugins: %s:%d: %s is pinned twice", path, n, name)
		}
		lock[name] = digest
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("plugins: %s: %w", path, err)
	}
	return lock, nil
}

// Format returns the lock in its file format, sorted by name.
func (l Lock) Format() []byte {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	slices.Sort(names)
	var b bytes.Buffer
	b.WriteString("# Pinned plugin checksums, written by `finderbot plugins lock`.\n")
	b.WriteString("# Check with: sha256sum -c plugins.lock\n")
	for _, n := range names {
		fmt.Fprintf(&b, "%x  %s\n", l[n], n)
	}
	return b.Bytes()
}

// WriteLock writes l to path atomically: readers see the old file or the new
// one, never half of it.
func WriteLock(path string, l Lock) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".plugins.lock-*")
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(l.Format()); err != nil {
		tmp.Close()
		return fmt.Errorf("plugins: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("plugins: write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	return nil
}

// LockDir pins every plugin executable in dir as it is now: it hashes them
// and writes the lock file (lockPath, or dir/plugins.lock when empty). It
// returns what it pinned and the problems Discover reported.
func LockDir(dir, lockPath string) ([]Pin, []string, error) {
	if lockPath == "" {
		lockPath = filepath.Join(dir, LockFileName)
	}
	exes, problems, err := Discover(dir)
	if err != nil {
		return nil, nil, err
	}
	lock := Lock{}
	pins := make([]Pin, 0, len(exes))
	for _, e := range exes {
		sum, err := HashFile(e.Path)
		if err != nil {
			return nil, problems, err
		}
		lock[e.Name] = sum
		pins = append(pins, Pin{Name: e.Name, Path: e.Path, SHA256: hex.EncodeToString(sum)})
	}
	if err := WriteLock(lockPath, lock); err != nil {
		return nil, problems, err
	}
	return pins, problems, nil
}

// Pin is one plugin pinned by LockDir.
type Pin struct {
	Name, Path string
	// SHA256 is the executable's checksum in hex.
	SHA256 string
}
