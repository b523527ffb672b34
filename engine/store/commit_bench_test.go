package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// benchPage is a page like the upstream's own example: 20 new messages,
// a reply to every fourth, and with log the messages for the
// conversation log.
func benchPage(account string, page int, log bool) Commit {
	c := Commit{Account: account, KeyBuff: fmt.Sprintf("keybuff-%d", page)}
	for i := range 20 {
		id := uint64(page*20 + i + 1)
		c.MsgIDs = append(c.MsgIDs, id)
		var m LoggedMessage
		if log {
			m = LoggedMessage{ID: id, Conversation: "s@findermsg", From: "fv1_stranger@findermsgstranger", To: "me@finder",
				Type: "text", Text: "在吗？想问一下这个怎么买", Time: time.Date(2026, 11, 20, 9, 0, i, 0, time.UTC)}
		}
		if i%4 == 0 {
			it := Item{Account: account, Kind: KindReply, MsgID: id, Text: "你好！有什么可以帮您？",
				To: "fv1_stranger@findermsgstranger", My: "me@finder", Session: "s@findermsg", Conversation: "s@findermsg"}
			c.Items = append(c.Items, it)
			m.Rules, m.Actions = []string{"greet"}, []LoggedAction{{Rule: "greet", Kind: KindReply, Text: it.Text}}
		}
		if log {
			c.Log = append(c.Log, m)
		}
	}
	return c
}

// BenchmarkCommitPage measures one page's commit: with fsync (what the
// daemon pays) and without (the CPU and page writes alone), with the
// page's messages for the conversation log and without. With the log the
// account's log is full (500 messages), so every commit also prunes.
func BenchmarkCommitPage(b *testing.B) {
	for _, c := range []struct{ sync, log bool }{{true, false}, {true, true}, {false, false}, {false, true}} {
		sync, log := c.sync, c.log
		b.Run(fmt.Sprintf("fsync=%v/log=%v", sync, log), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{NoSync: !sync, NoBatch: true, Now: func() time.Time { return time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC) }})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			page := 0
			for ; page < DefaultLogMax/20; page++ {
				if _, err := s.CommitPage(ctx, benchPage("shop", page, log)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.CommitPage(ctx, benchPage("shop", page, log)); err != nil {
					b.Fatal(err)
				}
				page++
			}
		})
	}
}
