package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/finderbot/finderbot/engine/lease"
	"github.com/finderbot/finderbot/engine/natstest"
)

// clock is a manual clock shared by the fake bucket and the holders.
type clock struct{ elapsed atomic.Int64 }

var epoch = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func (c *clock) Now() time.Time      { return epoch.Add(time.Duration(c.elapsed.Load())) }
func (c *clock) Add(d time.Duration) { c.elapsed.Add(int64(d)) }

// fakeKV is a bucket with a TTL on the clock: a key is gone TTL after its
// last write, as in a JetStream bucket with MaxAge.
type fakeKV struct {
	clk *clock
	ttl time.Duration

	mu   sync.Mutex
	rev  uint64
	keys map[string]entry
}

type entry struct {
	key     string
	value   []byte
	rev     uint64
	written time.Time
}

func (e entry) Bucket() string                  { return "fake" }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return e.value }
func (e entry) Revision() uint64                { return e.rev }
func (e entry) Created() time.Time              { return e.written }
func (e entry) Delta() uint64                   { return 0 }
func (e entry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

func (f *fakeKV) live(key string) (entry, bool) {
	e, ok := f.keys[key]
	if ok && !f.clk.Now().Before(e.written.Add(f.ttl)) {
		delete(f.keys, key)
		return entry{}, false
	}
	return e, ok
}

func (f *fakeKV) Get(_ context.Context, key string) (jetstream.KeyValueEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.live(key)
	if !ok {
		return nil, jetstream.ErrKeyNotFound
	}
	return e, nil
}

func (f *fakeKV) write(key string, value []byte, want uint64) (uint64, error) {
	e, ok := f.live(key)
	var cur uint64
	if ok {
		cur = e.rev
	}
	if cur != want {
		return 0, jetstream.ErrKeyRevisionMismatch
	}
	f.rev++
	f.keys[key] = entry{key: key, value: value, rev: f.rev, written: f.clk.Now()}
	return f.rev, nil
}

func (f *fakeKV) Create(_ context.Context, key string, value []byte, _ ...jetstream.KVCreateOpt) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rev, err := f.write(key, value, 0)
	if err != nil {
		return 0, jetstream.ErrKeyExists
	}
	return rev, nil
}

func (f *fakeKV) Update(_ context.Context, key string, value []byte, revision uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.write(key, value, revision)
}

func (f *fakeKV) Delete(_ context.Context, key string, _ ...jetstream.KVDeleteOpt) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.keys, key)
	return nil
}

const ttl = 30 * time.Second

func managers(t *testing.T, names ...string) (*clock, []*lease.Manager, *[]string) {
	t.Helper()
	clk := &clock{}
	kv := &fakeKV{clk: clk, ttl: ttl, keys: map[string]entry{}}
	var mu sync.Mutex
	lost := &[]string{}
	var out []*lease.Manager
	for _, n := range names {
		m, err := lease.New(kv, lease.Options{Holder: n, TTL: ttl, Now: clk.Now, OnLost: func(key string) {
			mu.Lock()
			*lost = append(*lost, n+":"+key)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return clk, out, lost
}

// TestOneHolderAtATime: a running lease cannot be taken; renewed in time
// it runs on; left to expire it passes to the next taker, and the old
// holder's renewal is refused and reported lost.
func TestOneHolderAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk, ms, lost := managers(t, "a", "b")
	a, b := ms[0], ms[1]
	la, err := a.Acquire(ctx, "acct.shop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, "acct.shop"); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("a second holder: err = %v, want ErrHeld", err)
	}
	for range 10 { // five minutes of renewals every TTL/3
		clk.Add(ttl / 3)
		if err := a.RenewAll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Acquire(ctx, "acct.shop"); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("taken while renewed: %v", err)
		}
	}
	if err := a.Check("acct.shop"); err != nil {
		t.Fatal(err)
	}
	clk.Add(ttl)
	if err := la.Check(); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("check past the TTL without renewal: %v", err)
	}
	if _, err := b.Acquire(ctx, "acct.shop"); err != nil {
		t.Fatalf("an expired lease was not taken over: %v", err)
	}
	if err := la.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("the old holder's renewal: %v", err)
	}
	if fmt.Sprint(*lost) != "[a:acct.shop]" {
		t.Fatalf("lost = %v", *lost)
	}
	if a.Get("acct.shop") != nil || b.Check("acct.shop") != nil {
		t.Fatal("the lease is not b's alone")
	}
}

// TestCheckFailsBeforeTheServerExpires: the holder's own deadline comes
// before the key can expire, by the margin, so that a holder acting while
// Check passes can never overlap with a new holder.
func TestCheckFailsBeforeTheServerExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk, ms, _ := managers(t, "a", "b")
	l, err := ms[0].Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(ttl - ttl/10)
	if err := l.Check(); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("check at TTL - margin: %v", err)
	}
	if _, err := ms[1].Acquire(ctx, "k"); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("taken before the key expired: %v", err)
	}
}

// TestReleaseHandsOverAtOnce: a released lease can be taken without
// waiting for its TTL.
func TestReleaseHandsOverAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, ms, lost := managers(t, "a", "b")
	l, err := ms[0].Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ms[1].Acquire(ctx, "k"); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if l.Check() == nil || len(*lost) != 0 {
		t.Fatalf("a released lease still checks, or was reported lost: %v", *lost)
	}
}

// TestKeyEscapes: any account name becomes a valid key, and distinct names
// distinct keys.
func TestKeyEscapes(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, name := range []string{"shop", "shop.1", "shop_2e1", "店铺 A", "a*b>c", ""} {
		k := lease.Key("acct", name)
		for _, c := range k[len("acct."):] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/' || c == '=') {
				t.Errorf("key %q of %q holds %q", k, name, c)
			}
		}
		if other, ok := seen[k]; ok {
			t.Errorf("%q and %q share the key %q", name, other, k)
		}
		seen[k] = name
	}
}

// TestPausedHolderLosesTheLeaseOnJetStream runs the lease on a real
// bucket: a holder that stops renewing (a paused process) fails Check once
// its deadline passed, another daemon takes the key once the server
// expired it, and the old holder's renewal is refused.
func TestPausedHolderLosesTheLeaseOnJetStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := natstest.Start(t, 1)
	js, err := jetstream.New(c.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	const short = 1500 * time.Millisecond
	// Memory storage: what is under test is the lease protocol against the
	// server's expiry and compare-and-set, which do not depend on it; the
	// stores' tests cover the file storage the daemon uses.
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "L", TTL: short, History: 1, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := lease.New(kv, lease.Options{Holder: "a", TTL: short})
	b, _ := lease.New(kv, lease.Options{Holder: "b", TTL: short})
	la, err := a.Acquire(ctx, "acct.shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	// a is paused now: it renews no more. b tries until the server expired
	// the key.
	deadline := time.Now().Add(10 * time.Second)
	var lb *lease.Lease
	for lb == nil {
		if lb, err = b.Acquire(ctx, "acct.shop"); err != nil && !errors.Is(err, lease.ErrHeld) {
			t.Fatal(err)
		}
		if lb == nil && la.Check() != nil && time.Now().After(deadline) {
			t.Fatal("the expired lease was never taken over")
		}
		if lb != nil && la.Check() == nil {
			t.Fatal("b took the lease while a's Check still passed")
		}
		if lb == nil {
			time.Sleep(50 * time.Millisecond) // waiting on the server's expiry, which has no notification
		}
	}
	if err := la.Check(); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("a's check after b took over: %v", err)
	}
	if err := la.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("a's renewal after b took over: %v", err)
	}
	if err := lb.Renew(ctx); err != nil {
		t.Fatalf("b's renewal: %v", err)
	}
}
