package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, dir string, opts Options) *Bolt {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSeenRetentionIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), Options{SeenMax: 3, SeenRetention: time.Hour, Now: clk.Now})
	for id := uint64(1); id <= 5; id++ {
		if _, err := s.CommitPage(ctx, Commit{Account: "a", MsgIDs: []uint64{id}}); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
	}
	u, _ := s.Unseen(ctx, "a", []uint64{1, 2, 3, 4, 5})
	if len(u) != 2 || u[0] != 1 || u[1] != 2 {
		t.Fatalf("past SeenMax the oldest should go: unseen = %v", u)
	}
	clk.Add(2 * time.Hour)
	if _, err := s.CommitPage(ctx, Commit{Account: "a", MsgIDs: []uint64{6}}); err != nil {
		t.Fatal(err)
	}
	u, _ = s.Unseen(ctx, "a", []uint64{3, 4, 5, 6})
	if len(u) != 3 {
		t.Fatalf("past the retention ids should be forgotten: unseen = %v", u)
	}
}

func TestSecondOpenFailsFastAndFilesArePrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	open(t, dir, Options{})
	start := time.Now()
	_, err := Open(dir, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("second open hung for %v", time.Since(start))
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "finderbot.db"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %v, want %v", path, got, want)
		}
	}
}

func TestConcurrentCommitsShareTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, t.TempDir(), Options{})
	const accounts, pages = 32, 10
	var wg sync.WaitGroup
	for a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range pages {
				_, err := s.CommitPage(ctx, Commit{Account: string(rune('A' + a)), KeyBuff: "k", MsgIDs: []uint64{uint64(p + 1)},
					Items: []Item{{Kind: KindReply, MsgID: uint64(p + 1)}}})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	p, _ := s.Pending(ctx)
	if len(p) != accounts*pages {
		t.Fatalf("pending = %d, want %d", len(p), accounts*pages)
	}
	if c := s.Commits(); c == 0 || c >= accounts*pages {
		t.Errorf("%d commits for %d pages: commits are not grouped", c, accounts*pages)
	}
}
