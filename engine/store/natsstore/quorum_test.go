package natsstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/finderbot/finderbot/engine/lease"
	"github.com/finderbot/finderbot/engine/natstest"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/store/natsstore"
)

// TestQuorumLoss stops two of a three-node cluster's servers. Without a
// quorum no write is acknowledged and no lease renewed, so the holder's
// lease check fails once its TTL ran out (or at once, when a server
// refused the renewal); once the servers are back,
// writes go on, every acknowledged write is there, and a daemon that reads
// the account afresh sees exactly what the writer sees — including the
// write that failed, which is either in both or in neither.
func TestQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and restarts servers of a three-node cluster")
	}
	t.Parallel()
	ctx := context.Background()
	c := natstest.Start(t, 3)
	var logs lockedBuffer
	open := func(holder string, timeout time.Duration) *natsstore.Store {
		log := slog.New(slog.NewTextHandler(&logs, nil))
		s, err := natsstore.Open(ctx, c.Connect(t), natsstore.Options{Stream: "QUORUM", Replicas: 3, Holder: holder, Timeout: timeout, Store: store.Options{Log: log}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	// The first Open creates the stream and its bucket, which a cluster
	// just formed may take a few seconds to place; the writer's requests
	// then time out after a second, for its writes without a quorum to
	// fail quickly.
	open("setup", 0)
	w := open("writer", time.Second)
	page := func(s *natsstore.Store, cursor string, id uint64) error {
		_, err := s.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: cursor, MsgIDs: []uint64{id},
			Items: []store.Item{{Account: "shop", Kind: store.KindReply, MsgID: id, Text: cursor}}})
		return err
	}
	if err := page(w, "k1", 1); err != nil {
		t.Fatal(err)
	}

	js, err := jetstream.New(c.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 3 * time.Second
	// EnsureKeyValue, as the daemon does: a cluster just formed can still
	// refuse to place three replicas for a moment.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	kv, err := natsstore.EnsureKeyValue(cctx, js, jetstream.KeyValueConfig{Bucket: "QUORUM_HOLDERS", TTL: ttl, History: 1, Replicas: 3})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	var (
		clockMu sync.Mutex
		now     = time.Now()
	)
	clock := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return now
	}
	m, err := lease.New(kv, lease.Options{Holder: "writer", TTL: ttl, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Acquire(ctx, lease.Key("acct", "shop"))
	if err != nil {
		t.Fatal(err)
	}

	c.Stop(1)
	c.Stop(2)
	if err := page(w, "k2", 2); err == nil {
		t.Fatal("a page was acknowledged with two of three servers down")
	}
	if !strings.Contains(logs.String(), "no acknowledgement from JetStream; writing again") {
		t.Errorf("the unacknowledged write was tried again without a word in the log:\n%s", logs.String())
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = l.Renew(rctx)
	cancel()
	if err == nil {
		t.Fatal("a lease was renewed with two of three servers down")
	}
	// The renewal's request goes unanswered, or a server without the
	// quorum refuses it (it reads the key as absent); a refusal loses the
	// lease at once, which is on the safe side.
	t.Logf("the renewal without a quorum: %v", err)
	if cerr := l.Check(); cerr != nil && !errors.Is(err, lease.ErrLost) {
		t.Fatalf("the lease failed its check before its TTL ran out, with no renewal refused: %v", cerr)
	}
	clockMu.Lock()
	now = now.Add(ttl)
	clockMu.Unlock()
	if err := l.Check(); err == nil {
		t.Fatal("the lease still checks a TTL after its last renewal, with no quorum to renew it")
	}

	c.Restart(1)
	c.Restart(2)
	c.WaitJetStream()
	// The cluster elects its leaders again: the next page goes through
	// once it has.
	deadline := time.Now().Add(30 * time.Second)
	for err := page(w, "k3", 3); err != nil; err = page(w, "k3", 3) {
		if time.Now().After(deadline) {
			t.Fatalf("no page committed after the quorum came back: %v", err)
		}
	}
	r := open("reader", 0)
	for _, s := range []*natsstore.Store{w, r} {
		if cur, err := s.Cursor(ctx, "shop"); err != nil || cur != "k3" {
			t.Fatalf("cursor %q, %v; want k3", cur, err)
		}
	}
	wu, err := w.Unseen(ctx, "shop", []uint64{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	ru, err := r.Unseen(ctx, "shop", []uint64{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(wu, ru) || slices.Contains(wu, 1) || slices.Contains(wu, 3) {
		t.Fatalf("unseen ids: the writer says %v, a fresh reader %v; 1 and 3 were acknowledged", wu, ru)
	}
	texts := func(s *natsstore.Store) []string {
		p, err := s.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range p {
			out = append(out, it.Text)
		}
		slices.Sort(out)
		return out
	}
	wp, rp := texts(w), texts(r)
	if !slices.Equal(wp, rp) || !slices.Contains(wp, "k1") || !slices.Contains(wp, "k3") {
		t.Fatalf("outbox: the writer holds %v, a fresh reader %v; k1 and k3 were acknowledged", wp, rp)
	}
	t.Logf("the write made without a quorum: %s", map[bool]string{true: "stored later", false: "not stored"}[slices.Contains(wp, "k2")])
}

// TestOwnLateWriteIsNoFence: a write of this daemon's that reached the
// stream after its acknowledgement was given up on (as after a quorum
// loss) makes the next write's expected sequence wrong; the daemon reads
// it and writes on, instead of taking its own write for another daemon's.
// A write of another daemon's still fences it. The late write is played by
// a second Store with the same holder name.
func TestOwnLateWriteIsNoFence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := natstest.Start(t, 1)
	open := func(holder string) *natsstore.Store {
		s, err := natsstore.Open(ctx, c.Connect(t), natsstore.Options{Stream: "LATE", Holder: holder})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	page := func(s *natsstore.Store, cursor string, id uint64) error {
		_, err := s.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: cursor, MsgIDs: []uint64{id}})
		return err
	}
	w, late, other := open("writer"), open("writer"), open("other")
	if err := page(w, "k1", 1); err != nil {
		t.Fatal(err)
	}
	if err := page(late, "k2", 2); err != nil {
		t.Fatal(err)
	}
	if err := page(w, "k3", 3); err != nil {
		t.Fatalf("the write after its own late write: %v", err)
	}
	if cur, err := w.Cursor(ctx, "shop"); err != nil || cur != "k3" {
		t.Fatalf("cursor %q, %v; want k3", cur, err)
	}
	if unseen, err := w.Unseen(ctx, "shop", []uint64{1, 2, 3, 4}); err != nil || !slices.Equal(unseen, []uint64{4}) {
		t.Fatalf("unseen %v, %v; want [4]: the late write is part of the state", unseen, err)
	}
	if err := page(other, "k4", 4); err != nil {
		t.Fatal(err)
	}
	if err := page(w, "k5", 5); !errors.Is(err, natsstore.ErrFenced) {
		t.Fatalf("the write after another daemon's: %v, want ErrFenced", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for the store's goroutines to log
// into while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
