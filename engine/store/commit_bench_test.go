package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// benchPage is a page like the upstream's own example: 20 new messages,
// a reply to every fourth.
func benchPage(account string, page int) Commit {
	c := Commit{Account: account, KeyBuff: fmt.Sprintf("keybuff-%d", page)}
	for i := range 20 {
		id := uint64(page*20 + i + 1)
		c.MsgIDs = append(c.MsgIDs, id)
		if i%4 == 0 {
			c.Items = append(c.Items, Item{Account: account, Kind: KindReply, MsgID: id, Text: "你好！有什么可以帮您？",
				To: "fv1_stranger@findermsgstranger", My: "me@finder", Session: "s@findermsg", Conversation: "s@findermsg"})
		}
	}
	return c
}

// BenchmarkCommitPage measures one page's commit: with fsync (what the
// daemon pays) and without (the CPU and page writes alone).
func BenchmarkCommitPage(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{NoSync: !sync, NoBatch: true, Now: func() time.Time { return time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC) }})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			page := 0
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.CommitPage(ctx, benchPage("shop", page)); err != nil {
					b.Fatal(err)
				}
				page++
			}
		})
	}
}
