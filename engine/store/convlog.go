package store

import (
	"bytes"
	"context"
	"slices"
	"time"

	json "github.com/goccy/go-json"
	bolt "go.etcd.io/bbolt"

	"github.com/finderbot/finderbot/sdk"
)

// Defaults and bounds of the conversation log.
const (
	// DefaultLogMax is how many messages the log keeps per account.
	DefaultLogMax = 500
	// DefaultLogMaxAge is how long the log keeps a message.
	DefaultLogMaxAge = 72 * time.Hour
	// MaxLogText bounds each text the log keeps (a message's, an
	// action's); a longer one is cut at a character boundary.
	MaxLogText = 4 << 10
	// maxLogName bounds the names the log keeps (conversation, sender,
	// receiver), which come from the upstream.
	maxLogName = 1 << 10
)

// LoggedMessage is one message in an account's conversation log, with
// what the rules made of it. The poller hands the log the page's new
// messages in Commit.Log; the store keeps them in the page's transaction.
type LoggedMessage struct {
	// ID is the message's NewMsgId.
	ID uint64 `json:"id,string"`
	// Conversation is the conversation the message belongs to: its
	// msgSessionId, or else the other party.
	Conversation string `json:"conv"`
	// From and To are the sender and the receiver.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Own marks the account's own messages: the echoes of its replies, and
	// what was typed on the phone.
	Own bool `json:"own,omitempty"`
	// Type is the message's sdk type ("text", "image", "system"…).
	Type string `json:"type"`
	// Text is a text message's text, at most MaxLogText bytes; other
	// types have none (Type says what they are).
	Text string `json:"text,omitempty"`
	// Time is the message's own time (its CreateTime).
	Time time.Time `json:"time"`
	// Rules are the rules the message fired, in evaluation order.
	Rules []string `json:"rules,omitempty"`
	// Actions are the actions it queued.
	Actions []LoggedAction `json:"actions,omitempty"`
	// Logged is when the store took the message in; the store sets it.
	Logged time.Time `json:"logged"`
}

// LoggedAction is an action a logged message queued.
type LoggedAction struct {
	// Rule is the rule that produced it.
	Rule string `json:"rule"`
	// Kind is KindReply, KindSend or KindPlugin.
	Kind string `json:"kind"`
	// Text is a reply's or a send's text, at most MaxLogText bytes.
	Text string `json:"text,omitempty"`
	// To is a send's receiver.
	To string `json:"to,omitempty"`
	// Plugin names a plugin action as plugin.action.
	Plugin string `json:"plugin,omitempty"`
}

// Conversation is the logged messages of one conversation of an account.
type Conversation struct {
	// ID is the conversation (LoggedMessage.Conversation).
	ID string `json:"id"`
	// Messages are its logged messages, oldest first.
	Messages []LoggedMessage `json:"messages"`
}

// bounded is m as the log keeps it: texts and names cut to their bounds,
// stamped with the time it was logged.
func bounded(m LoggedMessage, now time.Time) LoggedMessage {
	m.Conversation, m.From, m.To = sdk.CutText(m.Conversation, maxLogName), sdk.CutText(m.From, maxLogName), sdk.CutText(m.To, maxLogName)
	m.Text = sdk.CutText(m.Text, MaxLogText)
	if len(m.Actions) > 0 {
		acts := slices.Clone(m.Actions)
		for i := range acts {
			acts[i].Text, acts[i].To = sdk.CutText(acts[i].Text, MaxLogText), sdk.CutText(acts[i].To, maxLogName)
		}
		m.Actions = acts
	}
	m.Logged = now
	return m
}

// newLogEntries returns the entries of c.Log the commit takes in: those of
// messages new to the store (in c.MsgIDs, not seen before), once each.
func newLogEntries(c *Commit, seenBefore func(uint64) bool, now time.Time) []LoggedMessage {
	if len(c.Log) == 0 {
		return nil
	}
	inPage := make(map[uint64]bool, len(c.MsgIDs))
	for _, id := range c.MsgIDs {
		inPage[id] = true
	}
	out := make([]LoggedMessage, 0, len(c.Log))
	for _, m := range c.Log {
		if !inPage[m.ID] || seenBefore(m.ID) {
			continue
		}
		inPage[m.ID] = false // a second entry of one message is dropped
		out = append(out, bounded(m, now))
	}
	return out
}

// conversations groups an account's log, in the order it was logged, into
// conversations: the one whose latest message came in last first, at most
// limit (0 for all), each with its messages oldest first. Entries logged
// at or before expired are left out: pruning happens as new messages come
// in, so an idle account's old ones may still be stored.
//
// The order the messages came in decides, not their own times, which the
// upstream gives in whole seconds: a conversation's messages are sorted by
// their times, ties in the order they came.
func conversations(log []LoggedMessage, expired time.Time, limit int) []Conversation {
	byID := map[string]int{}
	var out []Conversation
	var latest []int // the log position of each conversation's latest message
	for pos, m := range log {
		if !m.Logged.After(expired) {
			continue
		}
		i, ok := byID[m.Conversation]
		if !ok {
			i = len(out)
			byID[m.Conversation] = i
			out = append(out, Conversation{ID: m.Conversation})
			latest = append(latest, 0)
		}
		out[i].Messages = append(out[i].Messages, m)
		latest[i] = pos
	}
	for i := range out {
		slices.SortStableFunc(out[i].Messages, func(a, b LoggedMessage) int { return a.Time.Compare(b.Time) })
	}
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return latest[b] - latest[a] })
	if limit > 0 && len(order) > limit {
		order = order[:limit]
	}
	sorted := make([]Conversation, len(order))
	for i, j := range order {
		sorted[i] = out[j]
	}
	return sorted
}

// logKeyLen is the length of a key of the bbolt log: the time the message
// was logged (Unix nanoseconds) and a sequence number, both big-endian, so
// that the oldest come first.
const logKeyLen = 16

// putLog appends entries to the account's log and drops its messages past
// LogMax and older than LogMaxAge, oldest first. With the log turned off
// (LogMax < 0) it keeps nothing, and drops what an earlier run kept.
func (s *Bolt) putLog(tx *bolt.Tx, account string, entries []LoggedMessage, now time.Time) error {
	if len(entries) == 0 {
		return nil
	}
	keep := s.opts.LogMax
	if keep < 0 {
		keep, entries = 0, nil
		if tx.Bucket(bucketLog).Bucket([]byte(account)) == nil {
			return nil
		}
	}
	b, err := tx.Bucket(bucketLog).CreateBucketIfNotExists([]byte(account))
	if err != nil {
		return err
	}
	countKey := "log_n:" + account
	n := count(tx, countKey)
	stamp := u64(uint64(now.UnixNano()))
	for i := range entries {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(&entries[i])
		if err != nil {
			return err
		}
		if err := b.Put(append(append(make([]byte, 0, logKeyLen), stamp...), u64(seq)...), v); err != nil {
			return err
		}
		n++
	}
	limit := u64(uint64(now.Add(-s.opts.LogMaxAge).UnixNano()))
	cur := b.Cursor()
	for k, _ := cur.First(); k != nil && (n > keep || bytes.Compare(k[:min(len(k), 8)], limit) <= 0); k, _ = cur.First() {
		if err := cur.Delete(); err != nil {
			return err
		}
		n--
	}
	return setCount(tx, countKey, n)
}

// Conversations implements Store.
func (s *Bolt) Conversations(ctx context.Context, account string, limit int) ([]Conversation, error) {
	now := s.opts.Now()
	var log []LoggedMessage
	err := s.view(ctx, "conversations of "+account, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		if b != nil {
			b = b.Bucket([]byte(account))
		}
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var m LoggedMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			log = append(log, m)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return conversations(log, now.Add(-s.opts.LogMaxAge), limit), nil
}
