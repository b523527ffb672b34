package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestBackupDuringWritesIsConsistent copies a store while writers commit
// pages: the copy checks clean, holds every page acknowledged before the
// copy began, and each account's cursor agrees with its seen ids (no page
// is half in it).
func TestBackupDuringWritesIsConsistent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, t.TempDir(), Options{NoSync: true, SeenMax: 1 << 20})
	fill(t, s, 20_000) // a copy that takes a while

	const writers = 4
	var acked [writers]atomic.Int64
	total := func() (n int64) {
		for w := range writers {
			n += acked[w].Load()
		}
		return n
	}
	var target atomic.Int64 // the total of pages that closes reached
	target.Store(1 << 62)
	reached := make(chan struct{})
	var reachedOnce sync.Once
	stop := make(chan struct{})
	var wg, warm sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		warm.Add(1)
		go func() {
			defer wg.Done()
			warmed := false
			defer func() {
				if !warmed {
					warm.Done()
				}
			}()
			for n := int64(1); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := s.CommitPage(ctx, Commit{Account: fmt.Sprint("w", w), KeyBuff: fmt.Sprint(n), MsgIDs: []uint64{uint64(n)}})
				if err != nil {
					errs <- err
					return
				}
				acked[w].Store(n)
				if total() >= target.Load() {
					reachedOnce.Do(func() { close(reached) })
				}
				if n == 5 {
					warmed = true
					warm.Done()
				}
			}
		}()
	}
	// Every writer has committed pages before the copy begins.
	warm.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	var before [writers]int64
	for w := range writers {
		before[w] = acked[w].Load()
	}
	// The copy pauses after its first bytes until the writers committed
	// more pages, so that it runs across commits.
	target.Store(total() + 20)
	dir := t.TempDir()
	rep, err := WriteVerified(filepath.Join(dir, dbName), func(w io.Writer) error {
		_, err := s.Backup(ctx, &pauseOnce{w: w, until: reached}, nil)
		return err
	})
	var during int64
	for w := range writers {
		during += acked[w].Load() - before[w]
	}
	close(stop)
	wg.Wait()
	if err != nil || !rep.OK() {
		t.Fatalf("backup: %v\n%s", err, rep.String())
	}
	t.Logf("%d pages were committed while the copy was made", during)

	c := open(t, dir, Options{SeenMax: 1 << 20})
	for w := range writers {
		account := fmt.Sprint("w", w)
		cur, err := c.Cursor(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		fmt.Sscan(cur, &n)
		if n < before[w] {
			t.Errorf("%s: the copy's cursor is page %d; page %d was acknowledged before the copy began", account, n, before[w])
		}
		ids := make([]uint64, n+1)
		for i := range ids {
			ids[i] = uint64(i + 1)
		}
		if u, _ := c.Unseen(ctx, account, ids); !slices.Equal(u, []uint64{uint64(n + 1)}) {
			t.Errorf("%s: the copy's cursor is page %d but its unseen ids of 1..%d are %v: a page is half in it", account, n, n+1, u)
		}
	}
}

// pauseOnce writes through to w, and after the first write waits until
// until is closed or five seconds have passed.
type pauseOnce struct {
	w      io.Writer
	until  <-chan struct{}
	paused bool
}

func (p *pauseOnce) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if !p.paused {
		p.paused = true
		select {
		case <-p.until:
		case <-time.After(5 * time.Second):
		}
	}
	return n, err
}

// TestSnapshotRetention takes snapshots at times an injected clock gives:
// each is named by its UTC time, checks clean and holds what was committed
// before it; past keep the oldest go; a failed snapshot removes nothing.
func TestSnapshotRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))}
	dir := t.TempDir()
	s := open(t, dir, Options{Now: clk.Now})
	for i := 1; i <= 5; i++ {
		if _, err := s.CommitPage(ctx, Commit{Account: "shop", KeyBuff: fmt.Sprint(i), MsgIDs: []uint64{uint64(i)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeSnapshot(ctx, 3); err != nil {
			t.Fatal(err)
		}
		clk.Add(6 * time.Hour)
	}
	snapDir := filepath.Join(dir, "snapshots")
	want := []string{"finderbot-20261120T130000Z.db", "finderbot-20261120T190000Z.db", "finderbot-20261121T010000Z.db"}
	if got := names(t, snapDir); !slices.Equal(got, want) {
		t.Fatalf("snapshots = %v, want %v", got, want)
	}
	for i, name := range want {
		rep, err := CheckFile(filepath.Join(snapDir, name))
		if err != nil || !strings.Contains(rep.String(), fmt.Sprintf("ok: %s: 0 accounts, %d seen ids", filepath.Join(snapDir, name), i+3)) {
			t.Errorf("%s: %s, %v", name, rep.String(), err)
		}
	}
	if fi, err := os.Stat(snapDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the snapshot directory: %v, %v", fi.Mode(), err)
	}

	// A snapshot that cannot be written (its temporary name is taken by a
	// directory that cannot be removed) fails and removes nothing.
	blocker := filepath.Join(snapDir, "finderbot-"+clk.Now().UTC().Format(snapshotLayout)+".db.tmp")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeSnapshot(ctx, 1); err == nil {
		t.Fatal("a snapshot that could not be written succeeded")
	}
	if got := names(t, snapDir); len(got) != 4 || !slices.Equal(got[:3], want) {
		t.Errorf("after a failed snapshot: %v, want %v and the blocker", got, want)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestRunSnapshotsOnSchedule runs the snapshot loop in virtual time: one at
// once when there is none, then one each interval, the oldest beyond keep
// removed; a restart waits for the next one due instead of taking another.
func TestRunSnapshotsOnSchedule(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		start := time.Now().UTC()
		at := func(d time.Duration) string { return "finderbot-" + start.Add(d).Format(snapshotLayout) + ".db" }
		run := func() (stop func()) {
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error)
			go func() { done <- s.RunSnapshots(ctx, time.Hour, 2) }()
			return func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("RunSnapshots: %v", err)
				}
			}
		}
		snapDir := filepath.Join(dir, "snapshots")
		stop := run()
		synctest.Wait()
		if got := names(t, snapDir); !slices.Equal(got, []string{at(0)}) {
			t.Fatalf("at the start: %v", got)
		}
		time.Sleep(3*time.Hour + time.Minute)
		synctest.Wait()
		if got, want := names(t, snapDir), []string{at(2 * time.Hour), at(3 * time.Hour)}; !slices.Equal(got, want) {
			t.Fatalf("after 3 hours: %v, want %v", got, want)
		}
		stop()

		time.Sleep(30 * time.Minute) // restarted half an hour before the next is due
		stop = run()
		synctest.Wait()
		if got := names(t, snapDir); len(got) != 2 || got[1] != at(3*time.Hour) {
			t.Fatalf("a restart took a snapshot before one was due: %v", got)
		}
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if got, want := names(t, snapDir), []string{at(3 * time.Hour), at(4 * time.Hour)}; !slices.Equal(got, want) {
			t.Fatalf("after the restart: %v, want %v", got, want)
		}
		stop()
	})
}
