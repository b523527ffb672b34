package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/finderbot/finderbot/engine/natstest"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/store/natsstore"
	"github.com/finderbot/finderbot/engine/store/storetest"
)

var streams atomic.Int64

// opener gives each test a stream of its own on the cluster c; every is
// the stores' SnapshotEvery.
func opener(c *natstest.Cluster, replicas, every int) storetest.Factory {
	return func(t *testing.T, opts store.Options) storetest.Opener {
		name := fmt.Sprintf("T%d", streams.Add(1))
		return storetest.Opener{Persistent: true, Open: func(t *testing.T) store.Store {
			s, err := natsstore.Open(context.Background(), c.Connect(t), natsstore.Options{Stream: name, Replicas: replicas, Holder: "test", Store: opts, SnapshotEvery: every})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}}
	}
}

// TestContract runs the store contract on a lone server and on a
// three-node cluster with three replicas, and on a lone server whose
// stores snapshot every two events, so that most reopens replay from a
// snapshot.
func TestContract(t *testing.T) {
	t.Parallel()
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, opener(natstest.Start(t, 1), 1, 0))
	})
	t.Run("single-snapshots", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, opener(natstest.Start(t, 1), 1, 2))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, opener(natstest.Start(t, 3), 3, 0))
	})
}

// TestClaimFencesThePreviousWriter: once a second daemon claimed an account,
// the first cannot commit a page nor record a delivery state for it, and
// the second saw everything the first committed before the claim.
func TestClaimFencesThePreviousWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := natstest.Start(t, 1)
	open := func(holder string) *natsstore.Store {
		s, err := natsstore.Open(ctx, c.Connect(t), natsstore.Options{Stream: "FENCE", Holder: holder})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := open("a"), open("b")
	res, err := a.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: "k1", MsgIDs: []uint64{1},
		Items: []store.Item{{Account: "shop", Kind: store.KindReply, MsgID: 1, Text: "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SaveAccount(ctx, "shop", store.Account{WcID: "wxid", WID: "w-1"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ctx, "shop", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	_, err = a.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: "k2", MsgIDs: []uint64{2}})
	if !errors.Is(err, natsstore.ErrFenced) {
		t.Fatalf("the fenced daemon's commit: err = %v, want ErrFenced", err)
	}
	it := res.Items[0]
	it.State = store.StateAttempting
	if _, err := a.Record(ctx, store.Changes{Put: []store.Item{it}}); !errors.Is(err, natsstore.ErrFenced) {
		t.Fatalf("the fenced daemon's attempt: err = %v, want ErrFenced", err)
	}
	if cur, _ := b.Cursor(ctx, "shop"); cur != "k1" {
		t.Fatalf("the new holder's cursor = %q, want k1", cur)
	}
	if acc, _ := b.Account(ctx, "shop"); acc.WID != "w-1" {
		t.Fatalf("the new holder's instance = %+v, want the same wId", acc)
	}
	p, err := b.Pending(ctx)
	if err != nil || len(p) != 1 || p[0].ID != it.ID || p[0].State != store.StateQueued {
		t.Fatalf("the new holder's outbox = %+v, %v", p, err)
	}
	if _, err := b.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: "k2", MsgIDs: []uint64{1, 2}}); err != nil {
		t.Fatalf("the new holder's commit: %v", err)
	}
}
