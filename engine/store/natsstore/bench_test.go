package natsstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/natstest"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/store/natsstore"
)

// page is a page like the upstream's own example: 20 new messages, a reply
// to every fourth, each message for the conversation log.
func page(account string, n int) store.Commit {
	c := store.Commit{Account: account, KeyBuff: fmt.Sprintf("keybuff-%d", n)}
	for i := range 20 {
		id := uint64(n*20 + i + 1)
		c.MsgIDs = append(c.MsgIDs, id)
		m := store.LoggedMessage{ID: id, Conversation: "s@findermsg", From: "fv1_stranger@findermsgstranger", To: "me@finder",
			Type: "text", Text: "在吗？想问一下这个怎么买", Time: time.Date(2026, 11, 20, 9, 0, i, 0, time.UTC)}
		if i%4 == 0 {
			it := store.Item{Account: account, Kind: store.KindReply, MsgID: id, Text: "你好！有什么可以帮您？",
				To: "fv1_stranger@findermsgstranger", My: "me@finder", Session: "s@findermsg", Conversation: "s@findermsg"}
			c.Items = append(c.Items, it)
			m.Rules, m.Actions = []string{"greet"}, []store.LoggedAction{{Rule: "greet", Kind: store.KindReply, Text: it.Text}}
		}
		c.Log = append(c.Log, m)
	}
	return c
}

// BenchmarkCommitPage compares a page commit on the bbolt store (with
// fsync) and on JetStream (one server; three servers with three
// replicas), one account committing after another (serial) and 64
// accounts at once (parallel), and reports commits/s.
func BenchmarkCommitPage(b *testing.B) {
	kinds := map[string]func(b *testing.B) store.Store{
		"bolt": func(b *testing.B) store.Store {
			s, err := store.Open(b.TempDir(), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
	}
	for _, n := range []int{1, 3} {
		kinds[fmt.Sprintf("jetstream-%d", n)] = func(b *testing.B) store.Store {
			c := natstest.Start(b, n)
			s, err := natsstore.Open(context.Background(), c.Connect(b), natsstore.Options{Stream: "BENCH", Replicas: n, Store: store.Options{LogMax: 100}})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}
	}
	for _, kind := range []string{"bolt", "jetstream-1", "jetstream-3"} {
		b.Run(kind+"/serial", func(b *testing.B) {
			s := kinds[kind](b)
			ctx := context.Background()
			n := 0
			start := time.Now()
			for b.Loop() {
				if _, err := s.CommitPage(ctx, page("shop", n)); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "commits/s")
		})
		b.Run(kind+"/parallel", func(b *testing.B) {
			s := kinds[kind](b)
			ctx := context.Background()
			var accounts, commits atomic.Int64
			b.SetParallelism(32) // 64 committers on two cores
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				account := fmt.Sprintf("acct%d", accounts.Add(1))
				n := 0
				for pb.Next() {
					if _, err := s.CommitPage(ctx, page(account, n)); err != nil {
						b.Error(err)
						return
					}
					n++
					commits.Add(1)
				}
			})
			b.ReportMetric(float64(commits.Load())/time.Since(start).Seconds(), "commits/s")
		})
	}
}

// BenchmarkLoadAccount times a daemon loading an account whose history is
// 10,000 page commits, as one that takes the account over does: with
// snapshots (the defaults), it reads the last snapshot and the events
// since; without, the whole log. The commits are made before the clock
// starts; each load starts from nothing (Forget).
func BenchmarkLoadAccount(b *testing.B) {
	const pages = 10_000
	c := natstest.Start(b, 1)
	for _, every := range []int{0, -1} {
		name := map[int]string{0: "snapshots", -1: "full-log"}[every]
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			opts := natsstore.Options{Stream: "LOAD" + strings.ToUpper(strings.ReplaceAll(name, "-", "")), Store: store.Options{LogMax: 100}, SnapshotEvery: every}
			w, err := natsstore.Open(ctx, c.Connect(b), opts)
			if err != nil {
				b.Fatal(err)
			}
			for n := range pages {
				if _, err := w.CommitPage(ctx, page("shop", n)); err != nil {
					b.Fatal(err)
				}
			}
			want, _ := w.Cursor(ctx, "shop")
			r, err := natsstore.Open(ctx, c.Connect(b), opts)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				r.Forget("shop")
				if cur, err := r.Cursor(ctx, "shop"); err != nil || cur != want {
					b.Fatalf("cursor %q, %v; want %q", cur, err, want)
				}
			}
		})
	}
}
