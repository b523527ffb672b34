package store

import (
	"context"
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
		"an image echo settles the oldest image reply of its conversation, not a text one": {
			cands:  []Item{reply(1, StateInDoubt, "收到"), imageReply(2, StateAttempting), imageReply(3, StateInDoubt)},
			echoes: []Echo{imageEcho(701)},
			want:   []uint64{2},
		},
		"a text echo never settles an image reply": {
			cands:  []Item{imageReply(2, StateInDoubt)},
			echoes: []Echo{echo(7, "")},
		},
		"an image echo of a delivered image reply settles it alone": {
			cands:  []Item{func() Item { it := imageReply(1, StateDelivered); it.NewMsgID = 801; return it }(), imageReply(2, StateInDoubt)},
			echoes: []Echo{imageEcho(801)},
			want:   []uint64{1},
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

func imageReply(id uint64, state State) Item {
	it := reply(id, state, "")
	it.Image = "https://example.com/price.png"
	return it
}

func imageEcho(id uint64) Echo {
	e := echo(id, `<msg><img md5="x"/></msg>`)
	e.Image = true
	return e
}

// TestClassifyEchoesFindsWhatNoSendAccountsFor: the echoes that settle
// nothing are exactly the person's messages; every echo of a reply, by id
// or by text in doubt, is the bot's.
func TestClassifyEchoesFindsWhatNoSendAccountsFor(t *testing.T) {
	t.Parallel()
	delivered := reply(1, StateDelivered, "收到")
	delivered.NewMsgID = 501
	tests := map[string]struct {
		cands   []Item
		echoes  []Echo
		foreign []int
	}{
		"no outbox: every own message is a person's": {
			echoes: []Echo{echo(1, "我来"), echo(2, "好")}, foreign: []int{0, 1},
		},
		"the echo of a delivered reply is the bot's": {
			cands: []Item{delivered}, echoes: []Echo{echo(501, "收到")},
		},
		"the echo of a reply in doubt is the bot's, the person's equal text after it is not": {
			cands: []Item{reply(2, StateInDoubt, "收到")}, echoes: []Echo{echo(9, "收到"), echo(10, "收到")}, foreign: []int{1},
		},
		"a person's text beside the bot's echo": {
			cands: []Item{delivered}, echoes: []Echo{echo(7, "我来处理"), echo(501, "收到")}, foreign: []int{0},
		},
		"the echo of an image reply is the bot's": {
			cands: []Item{imageReply(2, StateAttempting)}, echoes: []Echo{imageEcho(9)},
		},
		"a person's image with no image reply pending": {
			cands: []Item{reply(2, StateInDoubt, "收到")}, echoes: []Echo{imageEcho(9)}, foreign: []int{0},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, got := ClassifyEchoes(tc.cands, tc.echoes); !slices.Equal(got, tc.foreign) {
				t.Errorf("foreign %v, want %v", got, tc.foreign)
			}
		})
	}
}

// TestForeignJudgesAgainstTheOutbox: an own message equal to a reply in
// doubt is the reply's echo; one no attempted reply accounts for is a
// person's.
func TestForeignJudgesAgainstTheOutbox(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		items, err := s.Enqueue(ctx, []Item{imageReply(0, StateQueued)})
		if err != nil {
			t.Fatal(err)
		}
		it := items[0]
		it.State, it.AttemptAt = StateInDoubt, t0
		if _, err := s.Record(ctx, Changes{Put: []Item{it}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Foreign(ctx, "shop", []Echo{imageEcho(5), echo(6, "我是店主")})
		if err != nil || !slices.Equal(got, []int{1}) {
			t.Fatalf("foreign %v, %v; want [1]", got, err)
		}
	})
}

// forEachStore runs test against the bbolt store and the in-memory one,
// which must behave alike.
func forEachStore(t *testing.T, test func(*testing.T, Store)) {
	forEachStoreKind(t, func(t *testing.T, newStore func(Options) Store) { test(t, newStore(Options{})) })
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
