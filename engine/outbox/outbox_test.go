package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
)

// fakeUpstream accepts or refuses each send as scripted, and records what
// it accepted.
type fakeUpstream struct {
	// script answers the n-th call (from 0); nil means accept and answer.
	script   func(n int) (accept bool, err error)
	calls    int
	accepted []string
	nextID   uint64
}

func (f *fakeUpstream) answer(text string) (*upstream.Sent, error) {
	n := f.calls
	f.calls++
	accept, err := true, error(nil)
	if f.script != nil {
		accept, err = f.script(n)
	}
	if accept {
		f.accepted = append(f.accepted, text)
		f.nextID++
	}
	if err != nil {
		return nil, err
	}
	return &upstream.Sent{NewMsgID: 1000 + f.nextID}, nil
}

func (f *fakeUpstream) PrivateSend(_ context.Context, _ string, req upstream.PrivateSendRequest) (*upstream.Sent, error) {
	return f.answer(req.Content)
}
func (f *fakeUpstream) SendText(_ context.Context, _ string, req upstream.SendTextRequest) (*upstream.Sent, error) {
	return f.answer(req.Content)
}
func (f *fakeUpstream) GetSessionID(context.Context, string, upstream.SessionIDRequest) (string, error) {
	return "sess", nil
}

type online struct{}

func (online) Wait(context.Context, string) (Instance, error) {
	return Instance{Token: "t", WID: "w"}, nil
}
func (online) ReportOffline(string, Instance)      {}
func (online) ReportUnauthorized(string, Instance) {}

// clock is a hand-moved clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

var (
	cutAnswer = &upstream.TransportError{Endpoint: "/privateSend", Written: true, Err: io.ErrUnexpectedEOF}
	timeout   = &upstream.TransportError{Endpoint: "/privateSend", Written: true, Err: context.DeadlineExceeded}
	malformed = &upstream.MalformedError{Endpoint: "/privateSend", Reason: "data.newMsgId is missing"}
	refusal   = &upstream.Error{Endpoint: "/privateSend", Code: "1001", Message: "失败"}
)

const doubt = 30 * time.Second

type rig struct {
	st  store.Store
	up  *fakeUpstream
	clk *clock
	ob  *Outbox
	obs Observer // given to every boot; nil for none
}

func newRig(t *testing.T, st store.Store, up *fakeUpstream) *rig {
	t.Helper()
	clk := &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	r := &rig{st: st, up: up, clk: clk}
	r.boot(t)
	return r
}

// boot starts a fresh outbox on the store, as a restart does.
func (r *rig) boot(t *testing.T) {
	t.Helper()
	r.ob = New(Config{MaxAttempts: 5, RetryBackoff: time.Second, Doubt: doubt}, Deps{
		Store: r.st, Sender: r.up, Sessions: online{}, Now: r.clk.Now, Observer: r.obs,
		Sleep: func(_ context.Context, d time.Duration) bool { r.clk.now = r.clk.now.Add(d); return true },
	})
	if err := r.ob.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// drain steps the account until it has nothing due now.
func (r *rig) drain() {
	for range 100 {
		if wait, ok := r.ob.Step(context.Background(), "shop"); !ok || wait != 0 {
			return
		}
	}
}

func (r *rig) enqueue(t *testing.T, kind string, texts ...string) []store.Item {
	t.Helper()
	var items []store.Item
	for _, text := range texts {
		items = append(items, store.Item{Account: "shop", Kind: kind, Text: text, To: "stranger", My: "me@finder", Session: "s1", Conversation: "s1"})
	}
	saved, err := r.st.Enqueue(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	r.ob.Add(saved)
	return saved
}

// echo commits a page holding the echo of the from-th accepted send, as the
// poller would.
func (r *rig) echo(t *testing.T, from int) {
	t.Helper()
	var echoes []store.Echo
	for i, text := range r.up.accepted[from:min(from+1, len(r.up.accepted))] {
		echoes = append(echoes, store.Echo{ID: 1001 + uint64(from+i), From: "me@finder", To: "stranger", Session: "s1", Text: text, Time: r.clk.now})
	}
	res, err := r.st.CommitPage(context.Background(), store.Commit{Account: "shop", KeyBuff: fmt.Sprint(from), Echoes: echoes})
	if err != nil {
		t.Fatal(err)
	}
	r.ob.Settled("shop", res.Settled)
}

// caughtUp reports an empty page from a sync that began now.
func (r *rig) caughtUp() { r.ob.CaughtUp("shop", r.clk.now) }

// TestAcceptedButAnswerSpoiltIsNeverResent: the upstream accepted the reply
// and the answer was cut, malformed or late. The reply is in doubt, waits
// while the sync cannot catch up, and its echo settles it: sent once.
func TestAcceptedButAnswerSpoiltIsNeverResent(t *testing.T) {
	t.Parallel()
	for name, spoilt := range map[string]error{"cut": cutAnswer, "malformed": malformed, "late": timeout} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			up := &fakeUpstream{script: func(n int) (bool, error) {
				if n == 0 {
					return true, spoilt
				}
				return true, nil
			}}
			r := newRig(t, store.NewMemory(store.Options{}), up)
			r.enqueue(t, store.KindReply, "在的")
			r.drain()
			// The sync keeps failing for a long time: nothing is resent.
			for range 10 {
				r.clk.now = r.clk.now.Add(time.Minute)
				r.drain()
			}
			if q, d := r.ob.Depth("shop"); len(up.accepted) != 1 || q != 1 || d != 1 {
				t.Fatalf("accepted %q, depth %d, in doubt %d; want one send, in doubt", up.accepted, q, d)
			}
			if b := r.ob.Backlogs([]string{"home", "shop"}); b[0] != (Backlog{}) || b[1] != (Backlog{Queued: 1, InDoubt: 1}) {
				t.Fatalf("backlogs of home and shop: %+v", b)
			}
			r.echo(t, 0)
			r.caughtUp()
			r.drain()
			if len(up.accepted) != 1 {
				t.Fatalf("accepted %q, want it once", up.accepted)
			}
			if p, _ := r.st.Pending(context.Background()); len(p) != 0 {
				t.Fatalf("pending %+v", p)
			}
		})
	}
}

// TestInDoubtWithoutEchoIsSentAgainOnlyAfterCatchingUp: a reply the upstream
// never accepted (the request timed out unanswered) goes again once a sync
// that began after its attempt plus the call timeout found no echo.
func TestInDoubtWithoutEchoIsSentAgainOnlyAfterCatchingUp(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{script: func(n int) (bool, error) { return n > 0, map[bool]error{true: timeout, false: nil}[n == 0] }}
	r := newRig(t, store.NewMemory(store.Options{}), up)
	r.enqueue(t, store.KindReply, "在的")
	r.drain()
	r.caughtUp() // too early: the upstream may still accept the attempt
	r.drain()
	if up.calls != 1 {
		t.Fatalf("resent before the call timeout passed: %d calls", up.calls)
	}
	r.clk.now = r.clk.now.Add(doubt + time.Second)
	r.caughtUp()
	r.drain()
	if up.calls != 2 || len(up.accepted) != 1 {
		t.Fatalf("calls %d, accepted %q; want one resend", up.calls, up.accepted)
	}
}

// TestEqualTextsEachSentOnce: a rule answering "收到" to everything. The first
// reply is delivered; the second's request times out and the upstream never
// took it. The first's echo must not settle the second (which would lose
// it): after a restart and the call timeout, the second goes again, then the
// third. Each is sent once.
func TestEqualTextsEachSentOnce(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{script: func(n int) (bool, error) {
		if n == 1 {
			return false, timeout
		}
		return true, nil
	}}
	r := newRig(t, store.NewMemory(store.Options{}), up)
	r.enqueue(t, store.KindReply, "收到", "收到", "收到")
	r.drain()
	if len(up.accepted) != 1 || up.calls != 2 {
		t.Fatalf("accepted %q after %d calls; the third must wait behind the one in doubt", up.accepted, up.calls)
	}
	r.echo(t, 0)
	r.boot(t)
	r.clk.now = r.clk.now.Add(doubt + time.Second)
	r.caughtUp()
	r.drain()
	r.echo(t, 1)
	r.drain()
	if len(up.accepted) != 3 || up.calls != 4 {
		t.Fatalf("accepted %q after %d calls, want each of the three once", up.accepted, up.calls)
	}
}

// stopStore lets allow writes through, then fails every write while failing
// is set, as a disk that fills up does.
type stopStore struct {
	*store.Memory
	failing bool
	allow   int
}

func (s *stopStore) Record(ctx context.Context, c store.Changes) (store.Recorded, error) {
	if s.failing {
		if s.allow == 0 {
			return store.Recorded{}, errors.New("no space left on device")
		}
		s.allow--
	}
	return s.Memory.Record(ctx, c)
}

// TestOutcomesUnwrittenAtStopAreInDoubt: a clean stop whose writes fail
// (ENOSPC) leaves the delivered reply attempting in the store; after the
// restart it is in doubt, and its echo settles it, not a resend.
func TestOutcomesUnwrittenAtStopAreInDoubt(t *testing.T) {
	t.Parallel()
	st := &stopStore{Memory: store.NewMemory(store.Options{})}
	up := &fakeUpstream{}
	r := newRig(t, st, up)
	r.enqueue(t, store.KindReply, "在的")
	st.failing, st.allow = true, 1 // the attempt is recorded, its outcome never
	r.drain()
	r.ob.Close()
	st.failing = false
	r.boot(t)
	r.clk.now = r.clk.now.Add(time.Second)
	r.drain()
	if len(up.accepted) != 1 {
		t.Fatalf("resent after the restart: %q", up.accepted)
	}
	r.echo(t, 0)
	r.clk.now = r.clk.now.Add(doubt + time.Second)
	r.caughtUp()
	r.drain()
	if len(up.accepted) != 1 {
		t.Fatalf("accepted %q, want once", up.accepted)
	}
}

// TestSendInDoubtGoesToTheDeadLetters: a /sendText has no echo, so one in
// doubt is never repeated: the operator decides.
func TestSendInDoubtGoesToTheDeadLetters(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{script: func(int) (bool, error) { return true, timeout }}
	r := newRig(t, store.NewMemory(store.Options{}), up)
	r.enqueue(t, store.KindSend, "通知")
	r.drain()
	r.ob.Close()
	dead, _ := r.st.DeadLetters(context.Background(), 0)
	if len(dead) != 1 || !dead[0].InDoubt || up.calls != 1 {
		t.Fatalf("dead letters %+v after %d calls; want one, in doubt", dead, up.calls)
	}
}

// TestRefusalIsRetried: a refusal proves the upstream did nothing, so the
// reply simply goes again after its backoff.
func TestRefusalIsRetried(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{script: func(n int) (bool, error) {
		if n == 0 {
			return false, refusal
		}
		return true, nil
	}}
	r := newRig(t, store.NewMemory(store.Options{}), up)
	r.enqueue(t, store.KindReply, "在的")
	r.drain()
	r.clk.now = r.clk.now.Add(2 * time.Second)
	r.drain()
	if up.calls != 2 || len(up.accepted) != 1 {
		t.Fatalf("calls %d, accepted %q", up.calls, up.accepted)
	}
}

// TestPluginActionKeepsItsKeyAcrossRetries: a plugin action is called again
// after a failure and after a restart with the same item, so the same
// idempotency key; its answer replaces it in one write.
func TestPluginActionKeepsItsKeyAcrossRetries(t *testing.T) {
	t.Parallel()
	st := store.NewMemory(store.Options{})
	up := &fakeUpstream{}
	var seen []uint64
	r := newRig(t, st, up)
	call := func(_ context.Context, it store.Item) ([]store.Item, error) {
		seen = append(seen, it.ID)
		if len(seen) == 1 {
			return nil, errors.New("plugin crashed")
		}
		return []store.Item{{Account: "shop", Kind: store.KindReply, Text: "插件的回答", To: "stranger", My: "me@finder", Session: "s1", Conversation: "s1"}}, nil
	}
	r.ob.deps.Plugins = call
	saved, _ := st.Enqueue(context.Background(), []store.Item{{Account: "shop", Kind: store.KindPlugin, Plugin: "p", Action: "a", Conversation: "s1"}})
	r.ob.Add(saved)
	r.drain()
	r.boot(t)
	r.ob.deps.Plugins = call
	r.clk.now = r.clk.now.Add(time.Minute)
	r.drain()
	if len(seen) != 2 || seen[0] != seen[1] || len(up.accepted) != 1 {
		t.Fatalf("plugin called for %v, accepted %q", seen, up.accepted)
	}
}

// TestDoubtIsTimedFromTheSendNotTheBatch: one write begins two replies; the
// first send is slow, the second's answer is cut. A sync that began after
// the batch's start plus the call timeout, but before the second send,
// cannot show its echo: it must not count as proof that the reply was not
// accepted.
func TestDoubtIsTimedFromTheSendNotTheBatch(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{}
	r := newRig(t, store.NewMemory(store.Options{}), up)
	begun := r.clk.now
	up.script = func(n int) (bool, error) {
		if n == 0 {
			r.clk.now = r.clk.now.Add(doubt + 10*time.Second) // a slow answer
			return true, nil
		}
		return true, cutAnswer
	}
	for _, conv := range []string{"s1", "s2"} {
		saved, err := r.st.Enqueue(context.Background(), []store.Item{{Account: "shop", Kind: store.KindReply, Text: "在的", To: "stranger-" + conv, My: "me@finder", Session: conv, Conversation: conv}})
		if err != nil {
			t.Fatal(err)
		}
		r.ob.Add(saved)
	}
	r.drain()
	if up.calls != 2 {
		t.Fatalf("%d calls, want both replies sent", up.calls)
	}
	// An empty page from a sync that began before the second send.
	r.ob.CaughtUp("shop", begun.Add(doubt+5*time.Second))
	r.drain()
	if up.calls != 2 {
		t.Fatalf("the reply in doubt was sent again on the word of a sync older than its send")
	}
}

// TestFencedAttemptIsNeverHandedOver: a daemon that lost the account
// between recording an attempt and handing it over (paused past its lease)
// hands nothing to the upstream; the daemon that took the account over
// finds the attempt in doubt and sends the reply, once.
func TestFencedAttemptIsNeverHandedOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.NewMemory(store.Options{})
	up := &fakeUpstream{}
	r := newRig(t, st, up)
	lost := errors.New("lease: lost: acct.shop")
	r.ob.deps.Fence = func(string) error { return lost }
	r.enqueue(t, store.KindReply, "hi")
	r.drain()
	if up.calls != 0 {
		t.Fatalf("the fenced daemon made %d upstream calls", up.calls)
	}
	p, _ := st.Pending(ctx)
	if len(p) != 1 || p[0].State != store.StateAttempting {
		t.Fatalf("store after the fenced attempt: %+v", p)
	}
	r.ob.Drop("shop")
	if q, _ := r.ob.Depth("shop"); q != 0 {
		t.Fatalf("a dropped account keeps %d actions queued", q)
	}

	holder := New(Config{MaxAttempts: 5, RetryBackoff: time.Second, Doubt: doubt}, Deps{
		Store: st, Sender: up, Sessions: online{}, Now: r.clk.Now,
		Fence: func(string) error { return nil },
	})
	if err := holder.RecoverAccount(ctx, "shop", st); err != nil {
		t.Fatal(err)
	}
	if _, doubts := holder.Depth("shop"); doubts != 1 {
		t.Fatalf("the new holder sees %d replies in doubt, want 1", doubts)
	}
	r.clk.now = r.clk.now.Add(2 * doubt)
	holder.CaughtUp("shop", r.clk.now)
	for range 10 {
		if wait, ok := holder.Step(ctx, "shop"); !ok || wait != 0 {
			break
		}
	}
	if len(up.accepted) != 1 {
		t.Fatalf("accepted %v, want the reply once", up.accepted)
	}
}

// TestAnIdleAccountKeepsNoQueue: once its reply's echo came, an account
// with nothing queued costs the outbox nothing, as one that never sent.
func TestAnIdleAccountKeepsNoQueue(t *testing.T) {
	t.Parallel()
	up := &fakeUpstream{}
	r := newRig(t, store.NewMemory(store.Options{}), up)
	r.enqueue(t, store.KindReply, "在的")
	r.drain()
	r.ob.mu.Lock()
	q := r.ob.accounts["shop"]
	r.ob.mu.Unlock()
	if q == nil || len(q.delivered) != 1 {
		t.Fatalf("the delivered reply awaiting its echo: queue %+v", q)
	}
	r.echo(t, 0)
	r.ob.mu.Lock()
	defer r.ob.mu.Unlock()
	if q := r.ob.accounts["shop"]; q != nil {
		t.Fatalf("the queue is kept after the echo: %+v", q)
	}
}

// blockingUpstream holds every send until released, telling when one is
// under way.
type blockingUpstream struct {
	fakeUpstream
	entered chan struct{}
	release chan struct{}
}

func (b *blockingUpstream) PrivateSend(ctx context.Context, token string, req upstream.PrivateSendRequest) (*upstream.Sent, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeUpstream.PrivateSend(ctx, token, req)
}

// TestDropWaitsForTheSendUnderWay: the channel Drop returns closes only
// once the send the account's worker had under way returned, so that a
// daemon handing the account over releases it only then.
func TestDropWaitsForTheSendUnderWay(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := store.NewMemory(store.Options{})
	up := &blockingUpstream{entered: make(chan struct{}), release: make(chan struct{})}
	ob := New(Config{MaxAttempts: 5, RetryBackoff: time.Second, Doubt: doubt}, Deps{Store: st, Sender: up, Sessions: online{}})
	saved, err := st.Enqueue(ctx, []store.Item{{Account: "shop", Kind: store.KindReply, Text: "hi", To: "stranger", My: "me@finder", Session: "s1", Conversation: "s1"}})
	if err != nil {
		t.Fatal(err)
	}
	ob.Add(saved)
	ob.Start(ctx)
	<-up.entered
	stopped := ob.Drop("shop")
	select {
	case <-stopped:
		t.Fatal("Drop reported the worker stopped while its send was under way")
	default:
	}
	close(up.release)
	<-stopped // the worker ends once its send returned
	if up.calls != 1 {
		t.Fatalf("%d sends, want 1", up.calls)
	}
	if closed := ob.Drop("shop"); closed == nil {
		t.Fatal("Drop of an account with no queue returned no channel")
	} else {
		<-closed // already closed: nothing runs
	}
	cancel()
	ob.Close()
}
