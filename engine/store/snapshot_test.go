package store

import (
	"bytes"
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestMemoryForgetsSeenIDsAsBoltDoes commits the same random pages, with a
// clock that jumps forward and sometimes back, to the bbolt store and the
// in-memory one, and after each compares which ids each still knows.
func TestMemoryForgetsSeenIDsAsBoltDoes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 1))
		clk := &clock{now: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
		opts := Options{SeenMax: 40, SeenRetention: time.Hour, Now: clk.Now, NoSync: true, NoBatch: true}
		b, m := open(t, t.TempDir(), opts), NewMemory(opts)
		all := make([]uint64, 120)
		for i := range all {
			all[i] = uint64(i + 1)
		}
		for step := range 300 {
			c := Commit{Account: "a", KeyBuff: "k"}
			for range rng.IntN(6) {
				c.MsgIDs = append(c.MsgIDs, all[rng.IntN(len(all))])
			}
			for _, s := range []Store{b, m} {
				if _, err := s.CommitPage(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			ub, _ := b.Unseen(ctx, "a", all)
			um, _ := m.Unseen(ctx, "a", all)
			if !slices.Equal(ub, um) {
				t.Fatalf("seed %d, step %d: bolt forgot %v, memory %v", seed, step, ub, um)
			}
			switch r := rng.IntN(20); {
			case r == 0:
				clk.Add(-time.Duration(rng.IntN(600)) * time.Second)
			case r == 1:
				clk.Add(time.Duration(rng.IntN(7200)) * time.Second)
			case r < 10:
				clk.Add(time.Duration(rng.IntN(60)) * time.Second)
			}
		}
	}
}

// TestMemorySnapshotRestoresEverything fills a store with some of every
// kind of state, restores its snapshot into another, and compares what
// both answer and their snapshots, byte for byte.
func TestMemorySnapshotRestoresEverything(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	opts := Options{Now: func() time.Time { return t0 }}
	m := NewMemory(opts)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.CommitPage(ctx, Commit{Account: "shop", KeyBuff: "k1", MsgIDs: []uint64{1, 2, 1 << 60},
		Items:     []Item{{Account: "shop", Kind: KindReply, MsgID: 1, Text: "hi"}, {Account: "shop", Kind: KindReply, MsgID: 2, Text: "yo"}},
		Cooldowns: []CooldownMark{{Rule: "greet", Conv: "s1", Fired: t0, Until: t0.Add(time.Hour)}},
		Pauses:    []Pause{{Account: "shop", Conv: "s1", Since: t0, Until: t0.Add(time.Hour), MsgID: 2}},
		Skipped:   []InboundDeadLetter{{Account: "shop", Index: 1, Reason: "bad", Raw: "{}", At: t0}},
		Log:       []LoggedMessage{{ID: 1, Conversation: "s1", From: "x", To: "me", Type: "text", Text: "hi", Time: t0}}})
	must(err)
	p, _ := m.Pending(ctx)
	_, err = m.Record(ctx, Changes{Dead: []DeadLetter{{Item: p[0], Reason: "gave up", At: t0}}})
	must(err)
	must(m.SaveAccount(ctx, "shop", Account{WcID: "wxid", WID: "w-1", LoggedIn: t0}))
	must(m.SaveSession(ctx, "crm", SessionState{Access: Token{Value: "a", Expire: t0}}))
	must(m.KV("counter").Put(ctx, "n", []byte{0, 1, 2}))
	m.SetNextID(1000)

	data, err := m.Snapshot()
	must(err)
	r := NewMemory(opts)
	must(r.Restore(data))
	again, err := r.Snapshot()
	must(err)
	if !bytes.Equal(data, again) {
		t.Fatalf("the restored store's snapshot differs:\n%s\n%s", data, again)
	}
	same := func(what string, f func(*Memory) any) {
		t.Helper()
		if a, b := f(m), f(r); !reflect.DeepEqual(a, b) {
			t.Errorf("%s: %+v, restored %+v", what, a, b)
		}
	}
	same("pending", func(s *Memory) any { v, _ := s.Pending(ctx); return v })
	same("dead letters", func(s *Memory) any { v, _ := s.DeadLetters(ctx, 0); return v })
	same("inbound", func(s *Memory) any { v, _ := s.InboundDeadLetters(ctx, 0); return v })
	same("cooldowns", func(s *Memory) any { v, _ := s.Cooldowns(ctx, t0); return v })
	same("pauses", func(s *Memory) any { v, _ := s.Pauses(ctx, t0); return v })
	same("cursor", func(s *Memory) any { v, _ := s.Cursor(ctx, "shop"); return v })
	same("unseen", func(s *Memory) any { v, _ := s.Unseen(ctx, "shop", []uint64{1, 2, 3, 1 << 60}); return v })
	same("account", func(s *Memory) any { v, _ := s.Account(ctx, "shop"); return v })
	same("session", func(s *Memory) any { v, _ := s.Session(ctx, "crm"); return v })
	same("kv", func(s *Memory) any { v, _, _ := s.KV("counter").Get(ctx, "n"); return v })
	same("conversations", func(s *Memory) any { v, _ := s.Conversations(ctx, "shop", 0); return v })
	same("next id", func(s *Memory) any { v, _ := s.Enqueue(ctx, []Item{{Account: "shop", Kind: KindSend}}); return v[0].ID })

	if err := r.Restore([]byte(`{"v":99}`)); err == nil {
		t.Fatal("a snapshot of another version was restored")
	}
	if c, _ := r.Cursor(ctx, "shop"); c != "k1" {
		t.Fatalf("a refused restore changed the state: cursor %q", c)
	}
}
