package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Backup writes a consistent copy of the store to w: the file as of one
// read transaction, taken while writers go on. begin, when set, is called
// with the copy's size before its first byte is written. Writers that need
// the file to grow wait until the copy is done (bbolt cannot remap the file
// under a reader).
func (s *Bolt) Backup(ctx context.Context, w io.Writer, begin func(size int64)) (int64, error) {
	var n int64
	err := s.view(ctx, "backup", func(tx *bolt.Tx) error {
		if begin != nil {
			begin(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	return n, err
}

// ctxWriter stops a copy whose context ended (a client that went away).
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Check checks the running store completely, as CheckFile does, on a copy
// made by Backup into the state directory and removed afterwards: bbolt's
// page check must not run beside writers. The report names the store's own
// file.
func (s *Bolt) Check(ctx context.Context) (Report, error) {
	path := filepath.Join(s.dir, dbName)
	f, err := os.CreateTemp(s.dir, dbName+".check-*")
	if err != nil {
		return Report{}, fmt.Errorf("store: check: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = s.Backup(ctx, f, nil)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Report{}, err
	}
	rep, err := CheckFile(f.Name())
	rep.Path = path
	return rep, err
}

// WriteVerified writes a copy of a store to path and proves it sound before
// path names it: write fills path+".tmp" (mode 0600), which is synced to
// disk and checked completely (CheckFile); only a clean copy is renamed to
// path, and the rename is synced too. A copy that does not check clean is
// removed, and its report returned with an error.
func WriteVerified(path string, write func(io.Writer) error) (Report, error) {
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Report{}, fmt.Errorf("store: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Report{}, fmt.Errorf("store: %w", err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return Report{}, fmt.Errorf("store: write %s: %w", tmp, err)
	}
	rep, err := CheckFile(tmp)
	rep.Path = path
	if err == nil && !rep.OK() {
		err = fmt.Errorf("store: the copy written to %s does not check clean: %s", tmp, strings.Join(rep.Problems, "; "))
	}
	if err != nil {
		os.Remove(tmp)
		return rep, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return rep, fmt.Errorf("store: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return rep, fmt.Errorf("store: %w", err)
	}
	return rep, nil
}

// BackupFile copies the store file src, which no daemon may hold, to dst as
// WriteVerified does. src is opened read-only and checked first: a damaged
// store is refused, not copied.
func BackupFile(src, dst string) (Report, error) {
	db, err := openChecked(src, bolt.Options{ReadOnly: true, Timeout: lockTimeout}, "it cannot be backed up; check it with finderbot store check", 1)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return Report{}, fmt.Errorf("%w: it holds %s; back it up through the daemon (finderbot store backup --config …), or stop it first", ErrLocked, src)
	case errors.Is(err, ErrDamaged):
		return Report{}, fmt.Errorf("store: %w", err)
	case err != nil:
		return Report{}, fmt.Errorf("store: back up %s: %w", src, err)
	}
	defer db.Close()
	return WriteVerified(dst, func(w io.Writer) error {
		return db.View(func(tx *bolt.Tx) error {
			_, err := tx.WriteTo(w)
			return err
		})
	})
}

// snapshotDir is the directory of the periodic snapshots, in the state
// directory.
const snapshotDir = "snapshots"

// snapshotLayout is the UTC time in a snapshot's name:
// finderbot-20261120T090000Z.db.
const snapshotLayout = "20060102T150405Z"

// Snapshot is one periodic copy of the store.
type Snapshot struct {
	// Path is the file.
	Path string
	// Time is when it was taken, from its name.
	Time time.Time
}

// listSnapshots returns the snapshots in dir, oldest first; files whose
// names are not snapshots' are left out.
func listSnapshots(dir string) ([]Snapshot, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, e := range entries { // ReadDir sorts by name, which sorts by time
		stamp, ok := strings.CutPrefix(e.Name(), "finderbot-")
		if stamp, ok = strings.CutSuffix(stamp, ".db"); !ok || !e.Type().IsRegular() {
			continue
		}
		if t, err := time.Parse(snapshotLayout, stamp); err == nil {
			out = append(out, Snapshot{Path: filepath.Join(dir, e.Name()), Time: t})
		}
	}
	return out, nil
}

// Snapshots returns the store's snapshots, oldest first.
func (s *Bolt) Snapshots() ([]Snapshot, error) {
	return listSnapshots(filepath.Join(s.dir, snapshotDir))
}

// TakeSnapshot writes a verified copy of the store (WriteVerified) to
// <state_dir>/snapshots/finderbot-<UTC time>.db, then removes the oldest
// snapshots beyond keep. A snapshot that fails removes nothing.
func (s *Bolt) TakeSnapshot(ctx context.Context, keep int) (Snapshot, error) {
	dir := filepath.Join(s.dir, snapshotDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Snapshot{}, fmt.Errorf("store: snapshot: %w", err)
	}
	var notes []func()
	if err := private(dir, 0o700, "snapshot directory", s.opts.Log, &notes); err != nil {
		return Snapshot{}, err
	}
	for _, note := range notes {
		note()
	}
	// Only this store writes here (it holds the state directory's lock):
	// a temporary file is what a crash left of an earlier snapshot.
	if tmps, err := filepath.Glob(filepath.Join(dir, "finderbot-*.db.tmp")); err == nil {
		for _, tmp := range tmps {
			os.Remove(tmp)
		}
	}
	now := s.opts.Now().UTC()
	snap := Snapshot{Path: filepath.Join(dir, "finderbot-"+now.Format(snapshotLayout)+".db"), Time: now.Truncate(time.Second)}
	_, err := WriteVerified(snap.Path, func(w io.Writer) error {
		_, err := s.Backup(ctx, w, nil)
		return err
	})
	if err != nil {
		return Snapshot{}, err
	}
	snaps, err := listSnapshots(dir)
	if err != nil {
		return snap, fmt.Errorf("store: snapshot: %w", err)
	}
	for len(snaps) > max(keep, 1) {
		if err := os.Remove(snaps[0].Path); err != nil {
			return snap, fmt.Errorf("store: snapshot: %w", err)
		}
		snaps = snaps[1:]
	}
	return snap, nil
}

// RunSnapshots takes a snapshot every interval, keeping the newest keep,
// until ctx ends. The first is due one interval after the newest snapshot
// already there (at once when there is none), so that restarts do not
// multiply them. A failed snapshot is logged and tried again after a tenth
// of the interval; a damaged store ends the loop (the daemon stops).
func (s *Bolt) RunSnapshots(ctx context.Context, every time.Duration, keep int) error {
	next := s.opts.Now()
	if snaps, err := s.Snapshots(); err == nil && len(snaps) > 0 {
		next = snaps[len(snaps)-1].Time.Add(every)
	}
	for {
		if wait := next.Sub(s.opts.Now()); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		start := time.Now()
		snap, err := s.TakeSnapshot(ctx, keep)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrDamaged):
			return err
		case err != nil:
			s.opts.Log.Error("store snapshot failed", "err", err)
			next = s.opts.Now().Add(every / 10)
		default:
			s.opts.Log.Info("store snapshot written", "path", snap.Path, "took", time.Since(start).Round(time.Millisecond))
			next = snap.Time.Add(every)
		}
	}
}
