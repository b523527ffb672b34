package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/finderbot/finderbot/engine/natstest"
	"github.com/finderbot/finderbot/engine/store"
)

// fakeClock is a clock the workload moves: two runs of it read the same
// times, so they publish the same events.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().Truncate(time.Second).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) clone() *fakeClock   { d := &fakeClock{}; d.ns.Store(c.ns.Load()); return d }
func (c *fakeClock) options() store.Options {
	return store.Options{Now: c.Now, SeenMax: 25, SeenRetention: time.Hour}
}

// snapOptions snapshot every five events, or every 2 KiB, so that the
// workload makes many snapshots.
func snapOptions(stream, holder string, replicas int, clk *fakeClock) Options {
	return Options{Stream: stream, Holder: holder, Replicas: replicas, Store: clk.options(), SnapshotEvery: 5, SnapshotBytes: 2 << 10}
}

// rig starts a lone server and a clock for a test.
func rig(t *testing.T) (context.Context, *natstest.Cluster, *fakeClock) {
	t.Helper()
	t.Parallel()
	return context.Background(), natstest.Start(t, 1), newClock()
}

func openStore(t *testing.T, c *natstest.Cluster, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), c.Connect(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const (
	shop   = "shop"
	plugin = "counter"
)

// workload makes steps writes of every kind on the account shop, the items
// of no account, a session and a plugin's key-value space, drawn from
// seed, moving clk; its new message ids follow maxID, and it returns the
// last. Two stores in the same state given the same arguments make the
// same writes.
func workload(t *testing.T, s *Store, clk *fakeClock, seed uint64, steps int, maxID uint64) uint64 {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 7))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for step := range steps {
		switch r := rng.IntN(100); {
		case r < 45:
			c := store.Commit{Account: shop, KeyBuff: fmt.Sprintf("kb-%d", step)}
			for range 1 + rng.IntN(4) {
				maxID++
				c.MsgIDs = append(c.MsgIDs, maxID)
				conv := fmt.Sprintf("c%d", rng.IntN(3))
				c.Log = append(c.Log, store.LoggedMessage{ID: maxID, Conversation: conv, From: "x", To: "me", Type: "text", Text: "hi", Time: clk.Now()})
				if rng.IntN(2) == 0 {
					c.Items = append(c.Items, store.Item{Account: shop, Kind: store.KindReply, MsgID: maxID, Text: "yo", Conversation: conv})
				}
			}
			if maxID > 3 && rng.IntN(3) == 0 { // an id seen before, or forgotten since
				old := 1 + rng.Uint64N(maxID-1)
				c.MsgIDs = append(c.MsgIDs, old)
				c.Items = append(c.Items, store.Item{Account: shop, Kind: store.KindReply, MsgID: old, Text: "again"})
			}
			if rng.IntN(4) == 0 {
				c.Pauses = []store.Pause{{Account: shop, Conv: fmt.Sprintf("c%d", rng.IntN(3)), Since: clk.Now(), Until: clk.Now().Add(time.Duration(rng.IntN(90)) * time.Minute), MsgID: maxID}}
				c.Cooldowns = []store.CooldownMark{{Rule: "greet", Conv: fmt.Sprintf("c%d", rng.IntN(3)), Fired: clk.Now(), Until: clk.Now().Add(30 * time.Minute)}}
			}
			if rng.IntN(6) == 0 {
				c.Skipped = []store.InboundDeadLetter{{Account: shop, Index: step, Reason: "bad", Raw: "{}", At: clk.Now()}}
			}
			_, err := s.CommitPage(ctx, c)
			must(err)
		case r < 65:
			p, err := s.Of(shop).Pending(ctx)
			must(err)
			if len(p) == 0 {
				continue
			}
			it := p[rng.IntN(len(p))]
			var ch store.Changes
			switch rng.IntN(3) {
			case 0:
				it.State, it.AttemptAt, it.Attempts = store.StateAttempting, clk.Now(), it.Attempts+1
				ch.Put = []store.Item{it}
			case 1:
				ch.Remove = []uint64{it.ID}
			default:
				ch.Dead = []store.DeadLetter{{Item: it, Reason: "gave up", At: clk.Now()}}
			}
			if rng.IntN(3) == 0 {
				ch.Add = []store.Item{{Account: shop, Kind: store.KindSend, Text: "follow-up"}}
			}
			_, err = s.Record(ctx, ch)
			must(err)
		case r < 68:
			dead, err := s.DeadLetters(ctx, 0)
			must(err)
			if len(dead) == 0 {
				continue
			}
			if id := dead[rng.IntN(len(dead))].Item.ID; rng.IntN(2) == 0 {
				_, err = s.Revive(ctx, id)
			} else {
				err = s.DropDeadLetter(ctx, id)
			}
			must(err)
		case r < 85:
			key := fmt.Sprintf("k%d", rng.IntN(6))
			if rng.IntN(3) == 0 {
				must(s.KV(plugin).Delete(ctx, key))
			} else {
				must(s.KV(plugin).Put(ctx, key, []byte(fmt.Sprint(step))))
			}
		case r < 90:
			must(s.SaveAccount(ctx, shop, store.Account{WcID: "wxid", WID: fmt.Sprintf("w-%d", step), LoggedIn: clk.Now()}))
		case r < 93:
			_, err := s.Resume(ctx, shop, "c1")
			must(err)
		case r < 96:
			must(s.SaveSession(ctx, "crm", store.SessionState{Access: store.Token{Value: fmt.Sprint(step), Expire: clk.Now()}}))
		default:
			_, err := s.Enqueue(ctx, []store.Item{{Kind: store.KindPlugin, Plugin: "p", Action: "a"}})
			must(err)
		}
		if rng.IntN(15) == 0 {
			clk.Add(20 * time.Minute) // past the seen ids' retention, now and then
		} else {
			clk.Add(time.Duration(rng.IntN(30)) * time.Second)
		}
	}
	return maxID
}

// observe is everything s answers about the workload's scopes, as JSON.
// The pauses and cooldowns are read as of the zero time: all of them,
// ended or not, and none dropped by the read.
func observe(t *testing.T, s *Store, maxID uint64) string {
	t.Helper()
	ctx := context.Background()
	o := map[string]any{}
	note := func(name string, v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		o[name] = v
	}
	ids := make([]uint64, maxID)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	// The reads of single scopes first: they load them for the others.
	cur, err := s.Cursor(ctx, shop)
	note("cursor", cur, err)
	acc, err := s.Account(ctx, shop)
	note("account", acc, err)
	unseen, err := s.Unseen(ctx, shop, ids)
	note("unseen", unseen, err)
	convs, err := s.Conversations(ctx, shop, 0)
	note("conversations", convs, err)
	sess, err := s.Session(ctx, "crm")
	note("session", sess, err)
	keys, err := s.KV(plugin).List(ctx, "", 0)
	note("keys", keys, err)
	for _, k := range keys {
		v, _, err := s.KV(plugin).Get(ctx, k)
		note("kv "+k, string(v), err)
	}
	pending, err := s.Pending(ctx)
	note("pending", pending, err)
	dead, err := s.DeadLetters(ctx, 0)
	note("dead", dead, err)
	inbound, err := s.InboundDeadLetters(ctx, 0)
	note("inbound", inbound, err)
	pauses, err := s.Pauses(ctx, time.Time{})
	note("pauses", pauses, err)
	cds, err := s.Cooldowns(ctx, time.Time{})
	note("cooldowns", cds, err)
	data, err := json.MarshalIndent(o, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// fullReplay replays the whole log of stream, skipping its snapshots, into
// a fresh store: what a daemon without snapshots would hold.
func fullReplay(t *testing.T, c *natstest.Cluster, stream string, clk *fakeClock) *Store {
	t.Helper()
	ctx := context.Background()
	opts := Options{Stream: stream, Holder: "full", Store: clk.options(), SnapshotEvery: -1}
	s := openStore(t, c, opts)
	info, err := s.stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	scopes := map[string]*scope{
		Subject(stream, shop):    s.accountScope(shop),
		stream + ".ev.glob":      s.accountScope(""),
		s.subject("sess", "crm"): s.scope(s.subject("sess", "crm"), ""),
		s.subject("kv", plugin):  s.scope(s.subject("kv", plugin), ""),
	}
	for _, sc := range scopes {
		sc.loaded = true
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		var ev event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		sc := scopes[m.Subject]
		if sc == nil {
			t.Fatalf("an event on %s, which the workload does not write", m.Subject)
		}
		if ev.Op == opSnapPart || ev.Op == opSnapshot {
			sc.last = seq
			continue
		}
		if _, err := s.apply(sc, &ev, seq, len(m.Data)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// subjectCounts returns how many messages each subject of stream holds.
func subjectCounts(t *testing.T, s *Store) map[string]uint64 {
	t.Helper()
	info, err := s.stream.Info(context.Background(), jetstream.WithSubjectFilter(s.opts.Stream+".>"))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects
}

// TestSnapshotReplaysToTheWritersState runs the same workload twice, on a
// stream whose writer snapshots and purges (P) and on one whose writer
// snapshots but never purges (K), and then checks that all these answer
// the same: P's writer, a store that followed P while it was written, a
// fresh store replaying P from its snapshots, K's writer, and a full
// replay of K that skips every snapshot. The item ids assigned after a
// snapshot are thus the ones a replay without snapshots assigns, and the
// seen ids the bounds forgot are the same everywhere. P's subjects stay
// bounded; the snapshots are cut in parts, the message bound made small.
func TestSnapshotReplaysToTheWritersState(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d servers", n), func(t *testing.T) {
			t.Parallel()
			c := natstest.Start(t, n)
			clk := newClock()
			kclk := clk.clone()
			p := openStore(t, c, snapOptions("P", "w", n, clk))
			p.chunk = 512
			follower := openStore(t, c, snapOptions("P", "f", n, clk))
			k := openStore(t, c, snapOptions("K", "w", n, kclk))
			k.chunk = 512
			k.purge = func(context.Context, string, uint64) error { return nil }

			const steps = 400
			var maxID uint64
			for round := range 8 {
				next := workload(t, p, clk, uint64(round), steps/8, maxID)
				if workload(t, k, kclk, uint64(round), steps/8, maxID) != next {
					t.Fatal("the two runs of the workload differ")
				}
				maxID = next
				// The follower catches up between writes, as a daemon
				// does before it writes: it meets the snapshots and the
				// purges as they happen.
				for _, sc := range follower.loadedScopes() {
					sc.mu.Lock()
					sc.loaded = false
					sc.mu.Unlock()
				}
				_ = observe(t, follower, maxID)
			}
			if p.SnapshotFailures() != 0 || k.SnapshotFailures() != 0 {
				t.Fatalf("snapshots failed: %d, %d", p.SnapshotFailures(), k.SnapshotFailures())
			}
			want := observe(t, p, maxID)
			for name, s := range map[string]*Store{
				"the follower":              follower,
				"a fresh store replaying P": openStore(t, c, snapOptions("P", "r", n, clk)),
				"K's writer":                k,
				"a full replay of K":        fullReplay(t, c, "K", clk),
				"a fresh store replaying K": openStore(t, c, snapOptions("K", "r", n, clk)),
			} {
				if got := observe(t, s, maxID); got != want {
					t.Errorf("%s differs from P's writer:\n%s\nwant\n%s", name, got, want)
				}
			}
			var seen struct{ Unseen []uint64 }
			json.Unmarshal([]byte(want), &seen)
			if !strings.Contains(want, `"pauses": [`) || !strings.Contains(want, `"dead": [`) {
				t.Error("the workload left no pauses or no dead letters to compare")
			}
			if !slices.Contains(seen.Unseen, 1) || len(seen.Unseen) < int(maxID)-25 {
				t.Errorf("the seen ids' bounds forgot %d ids of %d", len(seen.Unseen), maxID)
			}
			pc, kc := subjectCounts(t, p), subjectCounts(t, k)
			for subject, held := range pc {
				// At most the events since the last snapshot, which
				// SnapshotEvery or SnapshotBytes bound, and its parts.
				if held > 5+40 {
					t.Errorf("%s holds %d messages", subject, held)
				}
			}
			if kc[Subject("K", shop)] < 5*pc[Subject("P", shop)] {
				t.Errorf("the purges took little out: %v kept against %v", pc, kc)
			}
			t.Logf("messages held with purges %v, without %v", pc, kc)
		})
	}
}

// TestFencedDaemonCannotSnapshot: a daemon another one took the account
// from can publish no snapshot, neither stale (the compare-and-set
// refuses it) nor caught up (it does not try); and the claim, once purged
// into a snapshot, still fences it when it replays from scratch.
func TestFencedDaemonCannotSnapshot(t *testing.T) {
	ctx, c, clk := rig(t)
	a := openStore(t, c, snapOptions("F", "a", 1, clk))
	b := openStore(t, c, snapOptions("F", "b", 1, clk))
	commit := func(s *Store, n int) error {
		_, err := s.CommitPage(ctx, store.Commit{Account: shop, KeyBuff: fmt.Sprint(n), MsgIDs: []uint64{uint64(n)}})
		return err
	}
	for n := range 3 {
		if err := commit(a, n+1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Claim(ctx, shop, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	last := func() uint64 {
		m, err := a.stream.GetLastMsgForSubject(ctx, Subject("F", shop))
		if err != nil {
			t.Fatal(err)
		}
		return m.Sequence
	}
	before := last()
	sc := a.accountScope(shop)
	sc.mu.Lock()
	if _, err := a.publishSnapshot(ctx, sc); !wrongLast(err) {
		t.Errorf("a stale daemon's snapshot: err = %v, want a wrong last sequence", err)
	}
	sc.mu.Unlock()
	if err := commit(a, 10); !errors.Is(err, ErrFenced) {
		t.Fatalf("the fenced daemon's commit: %v", err)
	}
	sc.mu.Lock()
	sc.since = 1000 // due, and caught up with the claim
	a.snapshot(ctx, sc)
	sc.mu.Unlock()
	if got := last(); got != before {
		t.Fatalf("the fenced daemon published at sequence %d", got)
	}
	for n := range 12 { // b's snapshots take the claim out of the log
		if err := commit(b, 20+n); err != nil {
			t.Fatal(err)
		}
	}
	info, err := a.stream.Info(ctx, jetstream.WithSubjectFilter(Subject("F", shop)))
	if err != nil {
		t.Fatal(err)
	}
	if held := info.State.Subjects[Subject("F", shop)]; held >= 16 {
		t.Fatalf("the account's subject holds %d messages: not purged", held)
	}
	again := openStore(t, c, snapOptions("F", "a", 1, clk))
	if err := commit(again, 40); !errors.Is(err, ErrFenced) {
		t.Fatalf("daemon a, restarted, replaying b's snapshot: commit err = %v, want ErrFenced", err)
	}
	if a.SnapshotFailures() != 0 || b.SnapshotFailures() != 0 {
		t.Fatalf("snapshot failures: %d, %d", a.SnapshotFailures(), b.SnapshotFailures())
	}
}

// TestFailedPurgeFailsNoWrite: when the purge after a snapshot fails, the
// writes go on, the failure is counted, and a replay of the longer log
// still gives the writer's state.
func TestFailedPurgeFailsNoWrite(t *testing.T) {
	_, c, clk := rig(t)
	w := openStore(t, c, snapOptions("U", "w", 1, clk))
	w.purge = func(context.Context, string, uint64) error { return errors.New("no purge today") }
	maxID := workload(t, w, clk, 3, 60, 0)
	if w.SnapshotFailures() == 0 {
		t.Fatal("no failure counted")
	}
	r := openStore(t, c, snapOptions("U", "r", 1, clk))
	if got, want := observe(t, r, maxID), observe(t, w, maxID); got != want {
		t.Fatalf("the replay differs:\n%s\nwant\n%s", got, want)
	}
}

// TestReplayRefusesMissingEvents: an event gone from the middle of a
// subject, which no purge takes (a purge keeps a snapshot and all after
// it), makes the replay fail rather than serve a state that lacks it.
func TestReplayRefusesMissingEvents(t *testing.T) {
	ctx, c, clk := rig(t)
	opts := Options{Stream: "M", Holder: "w", Store: clk.options(), SnapshotEvery: -1}
	w := openStore(t, c, opts)
	var seqs []uint64
	for n := range 3 {
		if _, err := w.CommitPage(ctx, store.Commit{Account: shop, KeyBuff: fmt.Sprint(n), MsgIDs: []uint64{uint64(n + 1)}}); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, w.accountScope(shop).last)
	}
	if err := w.stream.DeleteMsg(ctx, seqs[1]); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, c, opts)
	for range 2 { // and again, from the start
		if cur, err := r.Cursor(ctx, shop); err == nil {
			t.Fatalf("a replay missing an event read cursor %q", cur)
		}
	}
}
