package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// logged is an incoming text message of conversation conv, or the
// account's own (an echo) when own is set.
func logged(id uint64, conv, text string, at time.Time, own bool) LoggedMessage {
	m := LoggedMessage{ID: id, Conversation: conv, From: "fv1_" + conv + "@findermsgstranger", To: "me@finder", Type: "text", Text: text, Time: at}
	if own {
		m.From, m.To, m.Own = m.To, m.From, true
	}
	return m
}

// logPage commits a page of the given messages with their ids.
func logPage(t *testing.T, s Store, account string, msgs ...LoggedMessage) {
	t.Helper()
	c := Commit{Account: account, KeyBuff: fmt.Sprint("k", msgs[0].ID), Log: msgs}
	for _, m := range msgs {
		c.MsgIDs = append(c.MsgIDs, m.ID)
	}
	if _, err := s.CommitPage(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

// shape renders conversations as "conv: id id | conv: id".
func shape(convs []Conversation) string {
	var parts []string
	for _, c := range convs {
		var ids []string
		for _, m := range c.Messages {
			ids = append(ids, fmt.Sprint(m.ID))
		}
		parts = append(parts, c.ID+": "+strings.Join(ids, " "))
	}
	return strings.Join(parts, " | ")
}

func conversationsOf(t *testing.T, s Store, account string, limit int) []Conversation {
	t.Helper()
	convs, err := s.Conversations(context.Background(), account, limit)
	if err != nil {
		t.Fatal(err)
	}
	return convs
}

var logT0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

func TestConversationLog(t *testing.T) {
	t.Parallel()
	forEachStoreKind(t, func(t *testing.T, newStore func(Options) Store) {
		testConversationLog(t, newStore(Options{Now: func() time.Time { return logT0 }}))
	})
}

func testConversationLog(t *testing.T, s Store) {
	at := func(min int) time.Time { return logT0.Add(time.Duration(min) * time.Minute) }
	greet := logged(1, "a", "哈喽", at(1), false)
	greet.Rules = []string{"greet"}
	greet.Actions = []LoggedAction{{Rule: "greet", Kind: KindReply, Text: "你好！"}}
	logPage(t, s, "shop", greet, logged(2, "b", "在吗", at(2), false))
	// The echo of the reply comes in a later page, in its conversation; a
	// page repeating message 2 adds nothing, and an id given twice in a
	// page is logged once.
	logPage(t, s, "shop", logged(2, "b", "在吗", at(2), false), logged(3, "a", "你好！", at(3), true), logged(3, "a", "你好！", at(3), true))
	logPage(t, s, "other", logged(4, "c", "elsewhere", at(4), false))

	convs := conversationsOf(t, s, "shop", 0)
	if got, want := shape(convs), "a: 1 3 | b: 2"; got != want {
		t.Fatalf("conversations = %q, want %q", got, want)
	}
	first := convs[0].Messages
	if first[0].Rules[0] != "greet" || first[0].Actions[0].Text != "你好！" || first[0].Own || !first[1].Own || !first[0].Logged.Equal(logT0) {
		t.Errorf("conversation a = %+v", first)
	}
	if got := shape(conversationsOf(t, s, "shop", 1)); got != "a: 1 3" {
		t.Errorf("limit 1 gives %q", got)
	}
	if got := shape(conversationsOf(t, s, "other", 0)); got != "c: 4" {
		t.Errorf("the other account's log is %q", got)
	}
	if got := conversationsOf(t, s, "nobody", 0); len(got) != 0 {
		t.Errorf("an account with no log has %+v", got)
	}

	// A message's text and an action's are bounded, cut between
	// characters.
	long := logged(5, "d", strings.Repeat("长", MaxLogText), at(5), false)
	long.Actions = []LoggedAction{{Rule: "echo", Kind: KindReply, Text: strings.Repeat("x", 3*MaxLogText)}}
	logPage(t, s, "shop", long)
	m := conversationsOf(t, s, "shop", 1)[0].Messages[0]
	if len(m.Text) > MaxLogText || !utf8.ValidString(m.Text) || len(m.Text) < MaxLogText-3 || len(m.Actions[0].Text) != MaxLogText {
		t.Errorf("bounded texts: %d bytes (valid %v), action %d bytes", len(m.Text), utf8.ValidString(m.Text), len(m.Actions[0].Text))
	}
}

// TestConversationLogRetention: the log keeps LogMax messages per account
// and none older than LogMaxAge; the oldest go in the commit that adds new
// ones, and the read leaves out the expired ones meanwhile.
func TestConversationLogRetention(t *testing.T) {
	t.Parallel()
	forEachStoreKind(t, func(t *testing.T, newStore func(Options) Store) {
		clk := &clock{now: logT0}
		s := newStore(Options{Now: clk.Now, LogMax: 3, LogMaxAge: time.Hour})
		for id := uint64(1); id <= 5; id++ {
			logPage(t, s, "shop", logged(id, "a", "hi", logT0, false))
		}
		logPage(t, s, "home", logged(6, "b", "hi", logT0, false))
		if got := shape(conversationsOf(t, s, "shop", 0)); got != "a: 3 4 5" {
			t.Fatalf("past LogMax: %q, want the newest 3", got)
		}
		if got := storedLog(t, s, "shop"); got != 3 {
			t.Fatalf("%d messages stored past LogMax, want 3", got)
		}
		clk.Add(time.Hour)
		if got := conversationsOf(t, s, "shop", 0); len(got) != 0 {
			t.Fatalf("expired messages are shown: %q", shape(got))
		}
		logPage(t, s, "shop", logged(7, "a", "again", clk.Now(), false))
		if got := shape(conversationsOf(t, s, "shop", 0)); got != "a: 7" {
			t.Fatalf("after expiry: %q", got)
		}
		if got := storedLog(t, s, "shop"); got != 1 {
			t.Fatalf("%d messages stored after the expired were pruned, want 1", got)
		}
		if got := storedLog(t, s, "home"); got != 1 {
			t.Fatalf("another account's log was pruned: %d left", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		forEachStoreKind(t, func(t *testing.T, newStore func(Options) Store) {
			s := newStore(Options{LogMax: -1})
			logPage(t, s, "shop", logged(1, "a", "hi", logT0, false))
			if got := conversationsOf(t, s, "shop", 0); len(got) != 0 {
				t.Fatalf("a log turned off keeps %q", shape(got))
			}
		})
	})
	t.Run("turned off after a run that kept some", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := open(t, dir, Options{})
		logPage(t, s, "shop", logged(1, "a", "hi", logT0, false))
		s.Close()
		s = open(t, dir, Options{LogMax: -1})
		logPage(t, s, "shop", logged(2, "a", "again", logT0, false))
		if got := storedLog(t, s, "shop"); got != 0 {
			t.Fatalf("%d messages still stored once the log was turned off", got)
		}
	})
}

// storedLog counts the messages stored in the account's log, expired or
// not.
func storedLog(t *testing.T, s Store, account string) int {
	t.Helper()
	switch s := s.(type) {
	case *Memory:
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.log[account])
	case *Bolt:
		rep, err := s.Check(context.Background())
		if err != nil || !rep.OK() {
			t.Fatalf("check: %v\n%s", err, rep.String())
		}
		n := 0
		s.view(context.Background(), "count", func(tx *bolt.Tx) error {
			n = count(tx, "log_n:"+account)
			return nil
		})
		return n
	}
	t.Fatalf("unknown store %T", s)
	return 0
}

// TestConversationLogIsPartOfThePageCommit: the log is written in the
// page's transaction, so a commit that fails leaves no message logged,
// and the page synced again logs each message once. (A crash is the same
// case: bbolt applies a transaction whole or not at all, fsync included;
// nothing is written apart.)
func TestConversationLogIsPartOfThePageCommit(t *testing.T) {
	t.Parallel()
	forEachStoreKind(t, func(t *testing.T, newStore func(Options) Store) {
		s := newStore(Options{OutboxMax: 1})
		ctx := context.Background()
		c := Commit{Account: "shop", KeyBuff: "k1", MsgIDs: []uint64{1, 2}, Log: []LoggedMessage{logged(1, "a", "x", logT0, false), logged(2, "a", "y", logT0, false)},
			Items: []Item{{Account: "shop", Kind: KindReply, MsgID: 1}, {Account: "shop", Kind: KindReply, MsgID: 2}}}
		if _, err := s.CommitPage(ctx, c); !errors.Is(err, ErrFull) {
			t.Fatalf("commit past the outbox bound: %v", err)
		}
		if got := conversationsOf(t, s, "shop", 0); len(got) != 0 {
			t.Fatalf("a failed commit logged %q", shape(got))
		}
		c.Items = c.Items[:1]
		for range 2 {
			if _, err := s.CommitPage(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if got := shape(conversationsOf(t, s, "shop", 0)); got != "a: 1 2" {
			t.Fatalf("after the page committed twice: %q", got)
		}
	})
}

// forEachStoreKind runs test with a maker of bbolt stores and one of
// in-memory stores, which must behave alike.
func forEachStoreKind(t *testing.T, test func(t *testing.T, newStore func(Options) Store)) {
	t.Run("bolt", func(t *testing.T) {
		t.Parallel()
		test(t, func(o Options) Store { return open(t, t.TempDir(), o) })
	})
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		test(t, func(o Options) Store { return NewMemory(o) })
	})
}
