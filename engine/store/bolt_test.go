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

func TestCommitPageIsAtomicAndDeduplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, Options{})
	res, err := s.CommitPage(ctx, Commit{
		Account: "shop", KeyBuff: "k1", MsgIDs: []uint64{1, 9008843899058959155},
		Items: []Item{{Account: "shop", Kind: KindReply, MsgID: 9008843899058959155, Text: "hi"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	items := res.Items
	if len(items) != 1 || items[0].ID == 0 || items[0].Created.IsZero() {
		t.Fatalf("items = %+v", items)
	}
	unseen, err := s.Unseen(ctx, "shop", []uint64{1, 2, 9008843899058959155, 9008843899058959154})
	if err != nil {
		t.Fatal(err)
	}
	if len(unseen) != 2 || unseen[0] != 2 || unseen[1] != 9008843899058959154 {
		t.Fatalf("unseen = %v", unseen)
	}
	// Other accounts have their own ids.
	if u, _ := s.Unseen(ctx, "other", []uint64{1}); len(u) != 1 {
		t.Fatalf("other account sees shop's ids: %v", u)
	}
	// A retried commit of the same page adds nothing.
	again, err := s.CommitPage(ctx, Commit{
		Account: "shop", KeyBuff: "k2", MsgIDs: []uint64{9008843899058959155},
		Items: []Item{{Account: "shop", Kind: KindReply, MsgID: 9008843899058959155, Text: "hi"}},
	})
	if err != nil || len(again.Items) != 0 {
		t.Fatalf("retried commit = %v, %v", again, err)
	}
	s.Close()

	s = open(t, dir, Options{})
	if c, _ := s.Cursor(ctx, "shop"); c != "k2" {
		t.Errorf("cursor after reopen = %q", c)
	}
	pending, err := s.Pending(ctx)
	if err != nil || len(pending) != 1 || pending[0].Text != "hi" {
		t.Fatalf("pending after reopen = %+v, %v", pending, err)
	}
	if _, err := s.Record(ctx, Changes{Remove: []uint64{pending[0].ID}}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Fatalf("pending after ack = %+v", p)
	}
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

func TestOutboxAndDeadLettersAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, t.TempDir(), Options{OutboxMax: 2, DeadMax: 1})
	items, err := s.Enqueue(ctx, []Item{{Kind: KindSend, Text: "1"}, {Kind: KindSend, Text: "2"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CommitPage(ctx, Commit{Account: "a", KeyBuff: "next", MsgIDs: []uint64{7}, Items: []Item{{Kind: KindReply, MsgID: 7}}})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("commit past the outbox bound: err = %v", err)
	}
	// The failed commit left no trace: the cursor did not move and the id is unseen.
	if c, _ := s.Cursor(ctx, "a"); c != "" {
		t.Errorf("cursor moved to %q", c)
	}
	if u, _ := s.Unseen(ctx, "a", []uint64{7}); len(u) != 1 {
		t.Error("message id remembered by a failed commit")
	}
	for _, it := range items {
		if _, err := s.Record(ctx, Changes{Dead: []DeadLetter{{Item: it, Reason: "gave up"}}}); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := s.DeadLetters(ctx, 0)
	if err != nil || len(dead) != 1 || dead[0].Item.Text != "2" || dead[0].Reason != "gave up" {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Fatalf("killed items still pending: %+v", p)
	}
	// Room again.
	if _, err := s.Enqueue(ctx, []Item{{Kind: KindSend}}); err != nil {
		t.Fatal(err)
	}
}

func TestKV(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, t.TempDir(), Options{KVMaxKeys: 2, KVMaxValue: 4})
	kv, other := s.KV("counter"), s.KV("keyword")
	if err := kv.Put(ctx, "a/1", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Put(ctx, "a/2", []byte("22")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Put(ctx, "a/2", []byte("23")); err != nil {
		t.Fatalf("overwrite at the key bound: %v", err)
	}
	if err := kv.Put(ctx, "b", []byte("3")); !errors.Is(err, ErrFull) {
		t.Fatalf("put past the key bound: %v", err)
	}
	if err := kv.Put(ctx, "c", []byte("12345")); !errors.Is(err, ErrFull) {
		t.Fatalf("put past the value bound: %v", err)
	}
	if v, ok, _ := kv.Get(ctx, "a/2"); !ok || string(v) != "23" {
		t.Fatalf("get = %q %v", v, ok)
	}
	if _, ok, _ := other.Get(ctx, "a/2"); ok {
		t.Fatal("plugins share keys")
	}
	keys, _ := kv.List(ctx, "a/", 0)
	if len(keys) != 2 {
		t.Fatalf("list = %v", keys)
	}
	if err := kv.Delete(ctx, "a/1"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Put(ctx, "b", []byte("3")); err != nil {
		t.Fatalf("put after delete: %v", err)
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

func TestSessionsAndLeases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), Options{Now: clk.Now})
	st := SessionState{Access: Token{Value: "a", Expire: clk.Now().Add(time.Hour)}, Refresh: Token{Value: "r"}}
	if err := s.SaveSession(ctx, "crm", st); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Session(ctx, "crm"); got.Access.Value != "a" || !got.Access.Expire.Equal(st.Access.Expire) || !got.Refresh.Valid(clk.Now()) {
		t.Fatalf("session = %+v", got)
	}
	if got, _ := s.Session(ctx, "none"); got.Access.Value != "" {
		t.Fatalf("missing session = %+v", got)
	}

	l, err := s.Lease(ctx, "appkey:k", "daemon-1", time.Minute)
	if err != nil || l.Holder != "daemon-1" {
		t.Fatalf("first lease = %+v, %v", l, err)
	}
	if l, _ := s.Lease(ctx, "appkey:k", "daemon-2", time.Minute); l.Holder != "daemon-1" {
		t.Fatalf("a running lease was taken: %+v", l)
	}
	if l, _ := s.Lease(ctx, "appkey:k", "daemon-1", time.Minute); l.Holder != "daemon-1" || !l.Until.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("renewal = %+v", l)
	}
	clk.Add(2 * time.Minute)
	if l, _ := s.Lease(ctx, "appkey:k", "daemon-2", time.Minute); l.Holder != "daemon-2" {
		t.Fatalf("an expired lease was not taken over: %+v", l)
	}
}
