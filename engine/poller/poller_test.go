package poller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/rules"
	"github.com/finderbot/finderbot/sdk"
)

const testRules = `rules:
  - name: once
    when: msg.Text == "在吗" && !msg.FromSelf
    cooldown: 1h
    stop: true
    actions:
      - reply: "在的"
  - name: hello
    when: msg.Text == "哈喽" && !msg.FromSelf
    actions:
      - reply: "你好"
`

func loadRules(t *testing.T) *rules.Set {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(path, []byte(testRules), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Load(rules.Options{Location: time.UTC}, path)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// sink records what the outbox would hear.
type sink struct {
	items    []store.Item
	caughtUp int
}

func (s *sink) Add(items []store.Item)               { s.items = append(s.items, items...) }
func (s *sink) Settled(string, []uint64)             {}
func (s *sink) CaughtUp(account string, _ time.Time) { s.caughtUp++ }

// failingStore fails the next CommitPage when fail is set.
type failingStore struct {
	*store.Memory
	fail bool
}

func (s *failingStore) CommitPage(ctx context.Context, c store.Commit) (store.PageResult, error) {
	if s.fail {
		s.fail = false
		return store.PageResult{}, errors.New("no space left on device")
	}
	return s.Memory.CommitPage(ctx, c)
}

func text(id uint64, from, s string) sdk.Message {
	return sdk.Message{ID: id, Type: sdk.TypeText, Text: s, Content: s, From: from, To: "me@finder", Session: "sess-" + from}
}

func newPoller(t *testing.T, st Store, sk *sink) *Poller {
	set := loadRules(t)
	return New("shop", Deps{Store: st, Sink: sk, Rules: func() *rules.Set { return set }, Cooldowns: rules.NewCooldowns(0)})
}

// TestCooldownIsRecordedOnlyWithItsPage: a rule with a cooldown fires on a
// page whose commit fails; the page synced again must answer, since nothing
// of the failed commit happened.
func TestCooldownIsRecordedOnlyWithItsPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &failingStore{Memory: store.NewMemory(store.Options{}), fail: true}
	sk := &sink{}
	p := newPoller(t, st, sk)
	page := &upstream.Page{KeyBuff: "k1", Messages: []sdk.Message{text(1, "u1", "在吗")}}
	if _, err := p.Commit(ctx, page, time.Now()); err == nil {
		t.Fatal("the failing commit succeeded")
	}
	if _, err := p.Commit(ctx, page, time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(sk.items) != 1 || sk.items[0].Text != "在的" {
		t.Fatalf("items = %+v, want the one answer", sk.items)
	}
	// And the committed cooldown holds: the next message is not answered.
	if _, err := p.Commit(ctx, &upstream.Page{KeyBuff: "k2", Messages: []sdk.Message{text(2, "u1", "在吗")}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(sk.items) != 1 {
		t.Fatalf("answered within the cooldown: %+v", sk.items)
	}
	marks, _ := st.Cooldowns(ctx, time.Now())
	if len(marks) != 1 || marks[0].Rule != "once" {
		t.Fatalf("stored cooldowns = %+v", marks)
	}
}

// TestRepeatedIDInOnePageIsAnsweredOnce: an item the page gives twice is one
// message, answered once — not zero times.
func TestRepeatedIDInOnePageIsAnsweredOnce(t *testing.T) {
	t.Parallel()
	sk := &sink{}
	p := newPoller(t, store.NewMemory(store.Options{}), sk)
	m := text(7, "u1", "哈喽")
	if _, err := p.Commit(context.Background(), &upstream.Page{KeyBuff: "k", Messages: []sdk.Message{m, m}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(sk.items) != 1 {
		t.Fatalf("answered %d times, want once: %+v", len(sk.items), sk.items)
	}
}

// TestUnreadableItemsAreSkippedAlone: an item without an id, or one the
// decoder could not read, goes to the inbound dead letters; the cursor moves
// on and the other messages are answered, so the account never stalls; a
// later item without an id is not taken for a duplicate of the first.
func TestUnreadableItemsAreSkippedAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.NewMemory(store.Options{})
	sk := &sink{}
	p := newPoller(t, st, sk)
	page := &upstream.Page{KeyBuff: "k1", Messages: []sdk.Message{text(0, "u1", "哈喽"), text(8, "u2", "哈喽")},
		Skipped: []upstream.SkippedItem{{Index: 2, Reason: "NewMsgId does not decode", Raw: `{"NewMsgId":"x"}`}}}
	res, err := p.Commit(ctx, page, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != 2 || len(sk.items) != 1 || sk.items[0].To != "u2" {
		t.Fatalf("result %+v, items %+v", res, sk.items)
	}
	if c, _ := st.Cursor(ctx, "shop"); c != "k1" {
		t.Fatalf("cursor = %q, want it moved on", c)
	}
	in, _ := st.InboundDeadLetters(ctx, 0)
	if len(in) != 2 {
		t.Fatalf("inbound dead letters = %+v", in)
	}
	// A later item without an id is skipped again, and a later message
	// with an id answered.
	if _, err := p.Commit(ctx, &upstream.Page{KeyBuff: "k2", Messages: []sdk.Message{text(0, "u3", "哈喽"), text(9, "u3", "哈喽")}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(sk.items) != 2 {
		t.Fatalf("items = %+v", sk.items)
	}
}

// TestOnlyAnEmptyPageIsCaughtUp: replies in doubt wait for a sync that read
// everything; a page with messages, even all seen, is not one.
func TestOnlyAnEmptyPageIsCaughtUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sk := &sink{}
	p := newPoller(t, store.NewMemory(store.Options{}), sk)
	page := &upstream.Page{KeyBuff: "k1", Messages: []sdk.Message{text(1, "u1", "x")}}
	for range 2 {
		if _, err := p.Commit(ctx, page, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if sk.caughtUp != 0 {
		t.Fatalf("caught up after pages with messages")
	}
	if _, err := p.Commit(ctx, &upstream.Page{KeyBuff: "k1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if sk.caughtUp != 1 {
		t.Fatalf("not caught up after an empty page")
	}
}
