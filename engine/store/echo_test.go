package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func reply(id uint64, state State, text string) Item {
	return Item{ID: id, Account: "shop", Kind: KindReply, State: state, Text: text, To: "stranger", My: "me@finder", Session: "s1", Conversation: "s1", AttemptAt: t0}
}

func echo(id uint64, text string) Echo {
	return Echo{ID: id, From: "me@finder", To: "stranger", Session: "s1", Text: text, Time: t0.Add(time.Second)}
}

// TestMatchEchoes covers the shapes that fooled matching by text alone: equal
// texts, an echo of a reply already delivered, k pending replies and j
// echoes.
func TestMatchEchoes(t *testing.T) {
	t.Parallel()
	delivered := reply(1, StateDelivered, "收到")
	delivered.NewMsgID = 501
	tests := map[string]struct {
		cands  []Item
		echoes []Echo
		want   []uint64
	}{
		"echo of a delivered reply settles it and not the equal one in doubt": {
			cands:  []Item{delivered, reply(2, StateInDoubt, "收到")},
			echoes: []Echo{echo(501, "收到")},
			want:   []uint64{1},
		},
		"two equal echoes after a crash settle both, each once": {
			cands:  []Item{delivered, reply(2, StateInDoubt, "收到")},
			echoes: []Echo{echo(501, "收到"), echo(502, "收到")},
			want:   []uint64{1, 2},
		},
		"k pending, j echoes: the j oldest": {
			cands:  []Item{reply(1, StateInDoubt, "收到"), reply(2, StateAttempting, "收到"), reply(3, StateInDoubt, "收到")},
			echoes: []Echo{echo(601, "收到"), echo(602, "收到")},
			want:   []uint64{1, 2},
		},
		"a delivered reply is never settled by text": {
			cands:  []Item{delivered},
			echoes: []Echo{echo(999, "收到")},
		},
		"another conversation's echo settles nothing": {
			cands:  []Item{reply(2, StateInDoubt, "收到")},
			echoes: []Echo{{ID: 7, From: "me@finder", To: "someone else", Session: "s2", Text: "收到", Time: t0}},
		},
		"an echo older than the attempt settles nothing": {
			cands:  []Item{reply(2, StateInDoubt, "收到")},
			echoes: []Echo{{ID: 7, From: "me@finder", To: "stranger", Session: "s1", Text: "收到", Time: t0.Add(-time.Hour)}},
		},
		"a queued reply was never sent": {
			cands:  []Item{reply(2, StateQueued, "收到")},
			echoes: []Echo{echo(7, "收到")},
		},
		"different text": {
			cands:  []Item{reply(2, StateInDoubt, "好的")},
			echoes: []Echo{echo(7, "收到")},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := MatchEchoes(tc.cands, tc.echoes); !slices.Equal(got, tc.want) {
				t.Errorf("settled %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCommitPageSettlesEchoesInItsTransaction: the echo of a reply in doubt
// removes it from the outbox with the page; an echo of a reply delivered
// with a known newMsgId is credited to it alone.
func TestCommitPageSettlesEchoesInItsTransaction(t *testing.T) {
	t.Parallel()
	forEachStore(t, testSettlesEchoes)
}

// forEachStore runs test against the bbolt store and the in-memory one,
// which must behave alike.
func forEachStore(t *testing.T, test func(*testing.T, Store)) {
	forEachStoreKind(t, func(t *testing.T, newStore func(Options) Store) { test(t, newStore(Options{})) })
}

func testSettlesEchoes(t *testing.T, s Store) {
	ctx := context.Background()
	items, err := s.Enqueue(ctx, []Item{reply(0, StateQueued, "收到"), reply(0, StateQueued, "收到")})
	if err != nil {
		t.Fatal(err)
	}
	first, second := items[0], items[1]
	first.State, first.NewMsgID, first.DeliveredAt = StateDelivered, 501, t0
	second.State, second.AttemptAt = StateAttempting, t0
	if _, err := s.Record(ctx, Changes{Put: []Item{first, second}}); err != nil {
		t.Fatal(err)
	}
	res, err := s.CommitPage(ctx, Commit{Account: "shop", KeyBuff: "k", MsgIDs: []uint64{501}, Echoes: []Echo{echo(501, "收到")}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Settled, []uint64{first.ID}) {
		t.Fatalf("settled %v, want the delivered reply %d alone", res.Settled, first.ID)
	}
	// The same page again settles nothing more.
	res, err = s.CommitPage(ctx, Commit{Account: "shop", KeyBuff: "k", MsgIDs: []uint64{501}, Echoes: []Echo{echo(501, "收到")}})
	if err != nil || len(res.Settled) != 0 {
		t.Fatalf("repeated page settled %v, %v", res.Settled, err)
	}
	res, err = s.CommitPage(ctx, Commit{Account: "shop", KeyBuff: "k2", MsgIDs: []uint64{502}, Echoes: []Echo{echo(502, "收到")}})
	if err != nil || !slices.Equal(res.Settled, []uint64{second.ID}) {
		t.Fatalf("settled %v, %v; want %d", res.Settled, err, second.ID)
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Fatalf("still pending: %+v", p)
	}
	// Putting a settled item back does not resurrect it.
	rec, err := s.Record(ctx, Changes{Put: []Item{second}})
	if err != nil || !slices.Equal(rec.Missing, []uint64{second.ID}) {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Fatalf("a settled item came back: %+v", p)
	}
}

// TestRepeatedIDInOnePageActsOnce: a page giving one id twice is one message:
// its action is kept (not dropped as "seen"), once.
func TestRepeatedIDInOnePageActsOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, testRepeatedID)
}

func testRepeatedID(t *testing.T, s Store) {
	ctx := context.Background()
	res, err := s.CommitPage(ctx, Commit{Account: "a", KeyBuff: "k", MsgIDs: []uint64{7, 7},
		Items: []Item{{Account: "a", Kind: KindReply, MsgID: 7, Text: "hi"}}})
	if err != nil || len(res.Items) != 1 {
		t.Fatalf("items = %+v, %v; want the one reply", res.Items, err)
	}
}

// TestCooldownsAndInboundDeadLettersPersist: both are committed with their
// page and read back after a reopen.
func TestCooldownsAndInboundDeadLettersPersist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, Options{})
	_, err := s.CommitPage(ctx, Commit{Account: "a", KeyBuff: "k",
		Cooldowns: []CooldownMark{{Rule: "greet", Conv: "s1", Fired: t0, Until: t0.Add(time.Minute)}, {Rule: "old", Conv: "s1", Fired: t0.Add(-time.Hour), Until: t0.Add(-time.Minute)}},
		Skipped:   []InboundDeadLetter{{Account: "a", Index: 3, Reason: "NewMsgId is missing", Raw: `{"x":1}`, At: t0}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, Options{})
	cds, err := s.Cooldowns(ctx, t0)
	if err != nil || len(cds) != 1 || cds[0].Rule != "greet" {
		t.Fatalf("cooldowns = %+v, %v", cds, err)
	}
	in, err := s.InboundDeadLetters(ctx, 0)
	if err != nil || len(in) != 1 || in[0].Index != 3 || in[0].Reason != "NewMsgId is missing" {
		t.Fatalf("inbound dead letters = %+v, %v", in, err)
	}
}

// TestReviveAndDropDeadLetters: a revived dead letter is queued again as a
// new item with its attempts reset; a dropped one is gone; unknown ids are
// ErrNotFound.
func TestReviveAndDropDeadLetters(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		items, err := s.Enqueue(ctx, []Item{reply(0, StateQueued, "a"), reply(0, StateQueued, "b")})
		if err != nil {
			t.Fatal(err)
		}
		var dead []DeadLetter
		for _, it := range items {
			it.Attempts, it.State = 8, StateInDoubt
			dead = append(dead, DeadLetter{Item: it, Reason: "gave up", InDoubt: true})
		}
		if _, err := s.Record(ctx, Changes{Dead: dead}); err != nil {
			t.Fatal(err)
		}
		it, err := s.Revive(ctx, items[0].ID)
		if err != nil || it.ID <= items[1].ID || it.Attempts != 0 || it.State != StateQueued || it.Text != "a" {
			t.Fatalf("revived %+v, %v", it, err)
		}
		if err := s.DropDeadLetter(ctx, items[1].ID); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.DeadLetters(ctx, 0); len(d) != 0 {
			t.Fatalf("dead letters left: %+v", d)
		}
		if p, _ := s.Pending(ctx); len(p) != 1 || p[0].ID != it.ID {
			t.Fatalf("pending %+v", p)
		}
		if _, err := s.Revive(ctx, items[1].ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revive of a dropped letter: %v", err)
		}
		if err := s.DropDeadLetter(ctx, 12345); !errors.Is(err, ErrNotFound) {
			t.Fatalf("drop of an unknown letter: %v", err)
		}
	})
}

// TestInboundDeadLettersAreBounded: past DeadMax, the oldest skipped items
// are forgotten, as the dead letters are.
func TestInboundDeadLettersAreBounded(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]Store{"bolt": open(t, t.TempDir(), Options{DeadMax: 2}), "memory": NewMemory(Options{DeadMax: 2})} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			for i := range 3 {
				if _, err := s.CommitPage(ctx, Commit{Account: "a", KeyBuff: "k", Skipped: []InboundDeadLetter{{Account: "a", Index: i, Reason: "NewMsgId is missing"}}}); err != nil {
					t.Fatal(err)
				}
			}
			in, err := s.InboundDeadLetters(ctx, 0)
			if err != nil || len(in) != 2 || in[0].Index != 1 || in[1].Index != 2 {
				t.Fatalf("inbound dead letters = %+v, %v; want the newest two", in, err)
			}
		})
	}
}
