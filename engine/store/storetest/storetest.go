// Package storetest is the contract every store.Store keeps: the bbolt
// store, the in-memory one and the JetStream one run the same tests.
package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
)

// Opener opens a store on one backing state. Calling it again after the
// previous store was closed opens the same state again, as a restart
// would; Persistent says whether it survives that.
type Opener struct {
	// Open opens a store on the state; the test closes it.
	Open func(t *testing.T) store.Store
	// Persistent is false for a store that forgets everything when closed.
	Persistent bool
}

// Factory returns an Opener of a new, empty state bounded by opts.
type Factory func(t *testing.T, opts store.Options) Opener

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// Run runs the contract against the stores newState makes.
func Run(t *testing.T, newState Factory) {
	tests := map[string]func(*testing.T, Factory){
		"CommitPageIsAtomicAndDeduplicates":     commitPage,
		"FullOutboxRefusesTheWholePage":         fullOutbox,
		"KV":                                    kv,
		"SessionsAndLeases":                     sessionsAndLeases,
		"EchoesSettleInTheirCommit":             settlesEchoes,
		"RepeatedIDInOnePageActsOnce":           repeatedID,
		"CooldownsAndInboundDeadLettersPersist": cooldowns,
		"ReviveAndDropDeadLetters":              revive,
		"AccountsPersist":                       accounts,
		"ConcurrentCommits":                     concurrent,
		"ConversationLog":                       conversationLog,
		"PausesGoWithTheirPage":                 pauses,
		"SeenIDsAreBounded":                     seenBounds,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, newState)
		})
	}
}

// reopen closes s and opens its state again, when the state persists.
func reopen(t *testing.T, o Opener, s store.Store) store.Store {
	t.Helper()
	if !o.Persistent {
		return s
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return o.Open(t)
}

func commitPage(t *testing.T, newState Factory) {
	ctx := context.Background()
	o := newState(t, store.Options{})
	s := o.Open(t)
	const big = 9008843899058959155 // past 2^53
	res, err := s.CommitPage(ctx, store.Commit{
		Account: "shop", KeyBuff: "k1\x00\xff", MsgIDs: []uint64{1, big},
		Items: []store.Item{{Account: "shop", Kind: store.KindReply, MsgID: big, Text: "hi"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 1 || res.Items[0].ID == 0 || res.Items[0].Created.IsZero() {
		t.Fatalf("items = %+v", res.Items)
	}
	unseen, err := s.Unseen(ctx, "shop", []uint64{1, 2, big, big - 1})
	if err != nil || !slices.Equal(unseen, []uint64{2, big - 1}) {
		t.Fatalf("unseen = %v, %v", unseen, err)
	}
	if u, _ := s.Unseen(ctx, "other", []uint64{1}); len(u) != 1 {
		t.Fatalf("another account sees shop's ids: %v", u)
	}
	again, err := s.CommitPage(ctx, store.Commit{
		Account: "shop", KeyBuff: "k2", MsgIDs: []uint64{big},
		Items: []store.Item{{Account: "shop", Kind: store.KindReply, MsgID: big, Text: "hi"}},
	})
	if err != nil || len(again.Items) != 0 {
		t.Fatalf("a page committed again = %+v, %v; want no items", again, err)
	}
	s = reopen(t, o, s)
	if c, _ := s.Cursor(ctx, "shop"); c != "k2" {
		t.Errorf("cursor after reopen = %q", c)
	}
	if u, _ := s.Unseen(ctx, "shop", []uint64{big}); len(u) != 0 {
		t.Errorf("seen id forgotten after reopen")
	}
	pending, err := s.Pending(ctx)
	if err != nil || len(pending) != 1 || pending[0].Text != "hi" || pending[0].ID != res.Items[0].ID {
		t.Fatalf("pending after reopen = %+v, %v", pending, err)
	}
	if _, err := s.Record(ctx, store.Changes{Remove: []uint64{pending[0].ID}}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, o, s)
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Fatalf("pending after ack = %+v", p)
	}
	s.Close()
}

func fullOutbox(t *testing.T, newState Factory) {
	ctx := context.Background()
	o := newState(t, store.Options{OutboxMax: 2, DeadMax: 1})
	s := o.Open(t)
	defer func() { s.Close() }()
	items, err := s.Enqueue(ctx, []store.Item{{Account: "a", Kind: store.KindSend, Text: "1"}, {Account: "a", Kind: store.KindSend, Text: "2"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CommitPage(ctx, store.Commit{Account: "a", KeyBuff: "next", MsgIDs: []uint64{7}, Items: []store.Item{{Account: "a", Kind: store.KindReply, MsgID: 7}}})
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("commit past the outbox bound: err = %v", err)
	}
	if c, _ := s.Cursor(ctx, "a"); c != "" {
		t.Errorf("a refused commit moved the cursor to %q", c)
	}
	if u, _ := s.Unseen(ctx, "a", []uint64{7}); len(u) != 1 {
		t.Error("a refused commit remembered its message id")
	}
	for _, it := range items {
		if _, err := s.Record(ctx, store.Changes{Dead: []store.DeadLetter{{Item: it, Reason: "gave up"}}}); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := s.DeadLetters(ctx, 0)
	if err != nil || len(dead) != 1 || dead[0].Item.Text != "2" || dead[0].Reason != "gave up" {
		t.Fatalf("dead letters = %+v, %v", dead, err)
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Fatalf("dead items still pending: %+v", p)
	}
	if _, err := s.Enqueue(ctx, []store.Item{{Account: "a", Kind: store.KindSend}}); err != nil {
		t.Fatal(err)
	}
}

func kv(t *testing.T, newState Factory) {
	ctx := context.Background()
	o := newState(t, store.Options{KVMaxKeys: 2, KVMaxValue: 4})
	s := o.Open(t)
	kv, other := s.KV("counter"), s.KV("keyword")
	for _, step := range []struct {
		key, value string
		full       bool
	}{{"a/1", "1", false}, {"a/2", "22", false}, {"a/2", "23", false}, {"b", "3", true}, {"c", "12345", true}} {
		err := kv.Put(ctx, step.key, []byte(step.value))
		if step.full != errors.Is(err, store.ErrFull) || (!step.full && err != nil) {
			t.Fatalf("put %s=%s: %v", step.key, step.value, err)
		}
	}
	if v, ok, _ := kv.Get(ctx, "a/2"); !ok || string(v) != "23" {
		t.Fatalf("get = %q %v", v, ok)
	}
	if _, ok, _ := other.Get(ctx, "a/2"); ok {
		t.Fatal("plugins share keys")
	}
	if keys, _ := kv.List(ctx, "a/", 0); len(keys) != 2 {
		t.Fatalf("list = %v", keys)
	}
	if err := kv.Delete(ctx, "a/1"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Put(ctx, "b", []byte("3")); err != nil {
		t.Fatalf("put after delete: %v", err)
	}
	s = reopen(t, o, s)
	defer s.Close()
	if keys, _ := s.KV("counter").List(ctx, "", 0); !slices.Equal(keys, []string{"a/2", "b"}) {
		t.Fatalf("keys after reopen = %v", keys)
	}
}

func sessionsAndLeases(t *testing.T, newState Factory) {
	ctx := context.Background()
	var now atomic.Int64 // minutes past t0
	o := newState(t, store.Options{Now: func() time.Time { return t0.Add(time.Duration(now.Load()) * time.Minute) }})
	s := o.Open(t)
	defer func() { s.Close() }()
	st := store.SessionState{Access: store.Token{Value: "a", Expire: t0.Add(time.Hour)}, Refresh: store.Token{Value: "r"}}
	if err := s.SaveSession(ctx, "crm", st); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, o, s)
	if got, _ := s.Session(ctx, "crm"); got.Access.Value != "a" || !got.Access.Expire.Equal(st.Access.Expire) || !got.Refresh.Valid(t0) {
		t.Fatalf("session = %+v", got)
	}
	if got, _ := s.Session(ctx, "none"); got.Access.Value != "" {
		t.Fatalf("missing session = %+v", got)
	}
	if l, err := s.Lease(ctx, "appkey:k", "daemon-1", time.Minute); err != nil || l.Holder != "daemon-1" {
		t.Fatalf("first lease = %+v, %v", l, err)
	}
	if l, _ := s.Lease(ctx, "appkey:k", "daemon-2", time.Minute); l.Holder != "daemon-1" {
		t.Fatalf("a running lease was taken: %+v", l)
	}
	if l, _ := s.Lease(ctx, "appkey:k", "daemon-1", time.Minute); l.Holder != "daemon-1" || !l.Until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("renewal = %+v", l)
	}
	now.Add(2)
	if l, _ := s.Lease(ctx, "appkey:k", "daemon-2", time.Minute); l.Holder != "daemon-2" {
		t.Fatalf("an expired lease was not taken over: %+v", l)
	}
}

func reply(text string) store.Item {
	return store.Item{Account: "shop", Kind: store.KindReply, Text: text, To: "stranger", My: "me@finder", Session: "s1", Conversation: "s1"}
}

func echo(id uint64, text string) store.Echo {
	return store.Echo{ID: id, From: "me@finder", To: "stranger", Session: "s1", Text: text, Time: t0.Add(time.Second)}
}

func settlesEchoes(t *testing.T, newState Factory) {
	ctx := context.Background()
	s := newState(t, store.Options{}).Open(t)
	defer s.Close()
	items, err := s.Enqueue(ctx, []store.Item{reply("收到"), reply("收到")})
	if err != nil {
		t.Fatal(err)
	}
	first, second := items[0], items[1]
	first.State, first.NewMsgID, first.DeliveredAt, first.AttemptAt = store.StateDelivered, 501, t0, t0
	second.State, second.AttemptAt = store.StateAttempting, t0
	if _, err := s.Record(ctx, store.Changes{Put: []store.Item{first, second}}); err != nil {
		t.Fatal(err)
	}
	res, err := s.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: "k", MsgIDs: []uint64{501}, Echoes: []store.Echo{echo(501, "收到")}})
	if err != nil || !slices.Equal(res.Settled, []uint64{first.ID}) {
		t.Fatalf("settled %v, %v; want the delivered reply %d alone", res.Settled, err, first.ID)
	}
	res, err = s.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: "k", MsgIDs: []uint64{501}, Echoes: []store.Echo{echo(501, "收到")}})
	if err != nil || len(res.Settled) != 0 {
		t.Fatalf("repeated page settled %v, %v", res.Settled, err)
	}
	res, err = s.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: "k2", MsgIDs: []uint64{502}, Echoes: []store.Echo{echo(502, "收到")}})
	if err != nil || !slices.Equal(res.Settled, []uint64{second.ID}) {
		t.Fatalf("settled %v, %v; want %d", res.Settled, err, second.ID)
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Fatalf("still pending: %+v", p)
	}
	rec, err := s.Record(ctx, store.Changes{Put: []store.Item{second}})
	if err != nil || !slices.Equal(rec.Missing, []uint64{second.ID}) {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	if p, _ := s.Pending(ctx); len(p) != 0 {
		t.Fatalf("a settled item came back: %+v", p)
	}
}

func repeatedID(t *testing.T, newState Factory) {
	s := newState(t, store.Options{}).Open(t)
	defer s.Close()
	res, err := s.CommitPage(context.Background(), store.Commit{Account: "a", KeyBuff: "k", MsgIDs: []uint64{7, 7},
		Items: []store.Item{{Account: "a", Kind: store.KindReply, MsgID: 7, Text: "hi"}}})
	if err != nil || len(res.Items) != 1 {
		t.Fatalf("items = %+v, %v; want the one reply", res.Items, err)
	}
}

func cooldowns(t *testing.T, newState Factory) {
	ctx := context.Background()
	o := newState(t, store.Options{})
	s := o.Open(t)
	_, err := s.CommitPage(ctx, store.Commit{Account: "a", KeyBuff: "k",
		Cooldowns: []store.CooldownMark{{Rule: "greet", Conv: "s1", Fired: t0, Until: t0.Add(time.Minute)}, {Rule: "old", Conv: "s1", Fired: t0.Add(-time.Hour), Until: t0.Add(-time.Minute)}},
		Skipped:   []store.InboundDeadLetter{{Account: "a", Index: 3, Reason: "NewMsgId is missing", Raw: `{"x":1}`, At: t0}}})
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, o, s)
	defer s.Close()
	s.Cursor(ctx, "a") // a store that loads accounts on demand knows of this one now
	cds, err := s.Cooldowns(ctx, t0)
	if err != nil || len(cds) != 1 || cds[0].Rule != "greet" {
		t.Fatalf("cooldowns = %+v, %v", cds, err)
	}
	in, err := s.InboundDeadLetters(ctx, 0)
	if err != nil || len(in) != 1 || in[0].Index != 3 || in[0].Reason != "NewMsgId is missing" {
		t.Fatalf("inbound dead letters = %+v, %v", in, err)
	}
}

func revive(t *testing.T, newState Factory) {
	ctx := context.Background()
	s := newState(t, store.Options{}).Open(t)
	defer s.Close()
	items, err := s.Enqueue(ctx, []store.Item{reply("a"), reply("b")})
	if err != nil {
		t.Fatal(err)
	}
	var dead []store.DeadLetter
	for _, it := range items {
		it.Attempts, it.State = 8, store.StateInDoubt
		dead = append(dead, store.DeadLetter{Item: it, Reason: "gave up", InDoubt: true})
	}
	if _, err := s.Record(ctx, store.Changes{Dead: dead}); err != nil {
		t.Fatal(err)
	}
	it, err := s.Revive(ctx, items[0].ID)
	if err != nil || it.ID <= items[1].ID || it.Attempts != 0 || it.State != store.StateQueued || it.Text != "a" {
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
	if _, err := s.Revive(ctx, items[1].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revive of a dropped letter: %v", err)
	}
	if err := s.DropDeadLetter(ctx, 12345); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("drop of an unknown letter: %v", err)
	}
}

func accounts(t *testing.T, newState Factory) {
	ctx := context.Background()
	o := newState(t, store.Options{})
	s := o.Open(t)
	a := store.Account{WcID: "wxid_1", WID: "w-42", Nick: "店", LoggedIn: t0}
	if err := s.SaveAccount(ctx, "shop", a); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, o, s)
	defer s.Close()
	if got, err := s.Account(ctx, "shop"); err != nil || got.WID != "w-42" || got.WcID != "wxid_1" || !got.LoggedIn.Equal(t0) {
		t.Fatalf("account after reopen = %+v, %v", got, err)
	}
	if got, _ := s.Account(ctx, "none"); got.WID != "" {
		t.Fatalf("unknown account = %+v", got)
	}
}

func concurrent(t *testing.T, newState Factory) {
	ctx := context.Background()
	s := newState(t, store.Options{}).Open(t)
	defer s.Close()
	const accounts, pages = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, accounts*pages)
	for a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := string(rune('A' + a))
			for p := range pages {
				_, err := s.CommitPage(ctx, store.Commit{Account: name, KeyBuff: "k", MsgIDs: []uint64{uint64(p + 1)},
					Items: []store.Item{{Account: name, Kind: store.KindReply, MsgID: uint64(p + 1)}}})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	p, _ := s.Pending(ctx)
	if len(p) != accounts*pages {
		t.Fatalf("pending = %d, want %d", len(p), accounts*pages)
	}
	for i := 1; i < len(p); i++ {
		if p[i].ID <= p[i-1].ID {
			t.Fatalf("pending not in ID order at %d: %d after %d", i, p[i].ID, p[i-1].ID)
		}
	}
}

func conversationLog(t *testing.T, newState Factory) {
	ctx := context.Background()
	o := newState(t, store.Options{Now: func() time.Time { return t0 }})
	s := o.Open(t)
	msg := func(id uint64, conv, text string) store.LoggedMessage {
		return store.LoggedMessage{ID: id, Conversation: conv, From: "stranger", To: "me", Type: "text", Text: text, Time: t0}
	}
	for _, c := range []store.Commit{
		{Account: "shop", KeyBuff: "1", MsgIDs: []uint64{1, 2}, Log: []store.LoggedMessage{msg(1, "a", "hi"), msg(2, "b", "yo")}},
		{Account: "shop", KeyBuff: "2", MsgIDs: []uint64{2, 3}, Log: []store.LoggedMessage{msg(2, "b", "yo"), msg(3, "a", "again")}},
	} {
		if _, err := s.CommitPage(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, o, s)
	defer s.Close()
	convs, err := s.Conversations(ctx, "shop", 0)
	if err != nil || len(convs) != 2 || len(convs[0].Messages) != 2 || len(convs[1].Messages) != 1 {
		t.Fatalf("conversations = %+v, %v; want a (2 messages) then b (1)", convs, err)
	}
}

// pauses: a pause goes in with its page, survives a reopen, is read back
// until it ends, replaced by a later one of its conversation, and gone
// once resumed.
func pauses(t *testing.T, newState Factory) {
	ctx := context.Background()
	o := newState(t, store.Options{})
	s := o.Open(t)
	p := store.Pause{Account: "shop", Conv: "s1", Since: t0, Until: t0.Add(30 * time.Minute), MsgID: 9}
	if _, err := s.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: "k", MsgIDs: []uint64{9}, Pauses: []store.Pause{p}}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, o, s)
	s.Cursor(ctx, "shop") // a store that loads accounts on demand knows of this one now
	got, err := s.Pauses(ctx, t0.Add(time.Minute))
	if err != nil || len(got) != 1 || !got[0].Until.Equal(p.Until) || got[0].Conv != "s1" {
		t.Fatalf("pauses %+v, %v; want %+v", got, err, p)
	}
	p.Until, p.MsgID = t0.Add(time.Hour), 10
	if _, err := s.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: "k2", MsgIDs: []uint64{10}, Pauses: []store.Pause{p}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Pauses(ctx, t0.Add(45*time.Minute)); len(got) != 1 || got[0].MsgID != 10 {
		t.Fatalf("extended pause: %+v", got)
	}
	if got, _ := s.Pauses(ctx, t0.Add(2*time.Hour)); len(got) != 0 {
		t.Fatalf("an ended pause is still there: %+v", got)
	}
	if _, err := s.CommitPage(ctx, store.Commit{Account: "shop", KeyBuff: "k3", MsgIDs: []uint64{11}, Pauses: []store.Pause{p}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Resume(ctx, "shop", "s1"); !ok || err != nil {
		t.Fatalf("resume = %v, %v", ok, err)
	}
	s = reopen(t, o, s)
	s.Cursor(ctx, "shop")
	if got, _ := s.Pauses(ctx, t0); len(got) != 0 {
		t.Fatalf("a resumed pause is still there after a reopen: %+v", got)
	}
	if ok, _ := s.Resume(ctx, "shop", "s1"); ok {
		t.Fatal("resumed a pause twice")
	}
}

// seenBounds: a page commit forgets the ids first seen longer than
// SeenRetention before it, then the oldest past SeenMax; they stay
// forgotten after a reopen (a store that replays a log forgets the same
// ones), and a forgotten id is new again.
func seenBounds(t *testing.T, newState Factory) {
	ctx := context.Background()
	var now atomic.Int64 // seconds past t0
	o := newState(t, store.Options{SeenMax: 3, SeenRetention: time.Hour, Now: func() time.Time { return t0.Add(time.Duration(now.Load()) * time.Second) }})
	s := o.Open(t)
	defer func() { s.Close() }()
	commit := func(id uint64) store.PageResult {
		t.Helper()
		res, err := s.CommitPage(ctx, store.Commit{Account: "a", KeyBuff: "k", MsgIDs: []uint64{id},
			Items: []store.Item{{Account: "a", Kind: store.KindReply, MsgID: id}}})
		if err != nil {
			t.Fatal(err)
		}
		now.Add(1)
		return res
	}
	expect := func(ids, want []uint64, why string) {
		t.Helper()
		if u, err := s.Unseen(ctx, "a", ids); err != nil || !slices.Equal(u, want) {
			t.Fatalf("%s: unseen = %v, %v; want %v", why, u, err, want)
		}
	}
	for id := uint64(1); id <= 5; id++ {
		commit(id)
	}
	expect([]uint64{1, 2, 3, 4, 5}, []uint64{1, 2}, "past SeenMax the oldest go")
	s = reopen(t, o, s)
	expect([]uint64{1, 2, 3, 4, 5}, []uint64{1, 2}, "after a reopen")
	now.Add(2 * 3600)
	commit(6)
	expect([]uint64{3, 4, 5, 6}, []uint64{3, 4, 5}, "past the retention")
	s = reopen(t, o, s)
	expect([]uint64{3, 4, 5, 6}, []uint64{3, 4, 5}, "past the retention, after a reopen")
	if res := commit(3); len(res.Items) != 1 {
		t.Fatalf("a forgotten id is new again: items = %+v", res.Items)
	}
}
