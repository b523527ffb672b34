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
