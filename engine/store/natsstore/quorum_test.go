package natsstore_test

import (
	"context"
	"slices"
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
// lease check fails once its TTL ran out; once the servers are back,
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
	open := func(holder string) *natsstore.Store {
		s, err := natsstore.Open(ctx, c.Connect(t), natsstore.Options{Stream: "QUORUM", Replicas: 3, Holder: holder, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	w := open("writer")
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
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "QUORUM_HOLDERS", TTL: ttl, History: 1, Replicas: 3})
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
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = l.Renew(rctx)
	cancel()
	if err == nil {
		t.Fatal("a lease was renewed with two of three servers down")
	}
	if err := l.Check(); err != nil {
		t.Fatalf("the lease failed its check before its TTL ran out: %v", err)
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
	r := open("reader")
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
