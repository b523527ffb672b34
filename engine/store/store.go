// Package store holds the daemon's durable state: each account's sync cursor
// and login, the ids of the messages already seen, the outbox of actions not
// yet accepted by the upstream, the dead letters, and the plugins' key-value
// data.
//
// Store is an interface so that a distributed implementation can replace the
// embedded one (Open, backed by bbolt) when accounts outgrow one machine.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/finderbot/finderbot/sdk"
)

// Action kinds, as found in Item.Kind.
const (
	KindReply  = "reply"  // answer the triggering Finder message (/privateSend)
	KindSend   = "send"   // a WeChat text message to a user (/sendText)
	KindPlugin = "plugin" // call a plugin action
)

// Item is one action in the outbox. The daemon fills in everything the
// dispatcher needs to perform it, so that performing it never depends on
// state that may have changed since (rules reloaded, message forgotten).
type Item struct {
	// ID orders the outbox; it is assigned by the store.
	ID uint64 `json:"id"`
	// Account is the name of the account the action is performed for.
	Account string `json:"account"`
	// Conversation groups items whose order must be kept: items of one
	// conversation are performed one at a time, in ID order.
	Conversation string `json:"conv"`
	// Kind is KindReply, KindSend or KindPlugin.
	Kind string `json:"kind"`
	// Rule is the name of the rule that produced the action, if any.
	Rule string `json:"rule,omitempty"`
	// Text is the text of a reply or send.
	Text string `json:"text,omitempty"`
	// To is the receiver: a send's wcId, or a reply's toUserName (the
	// triggering message's From).
	To string `json:"to,omitempty"`
	// My is a reply's myUserName: the triggering message's To.
	My string `json:"my,omitempty"`
	// Session is a reply's sessionId: the triggering message's Session. When
	// empty, the dispatcher looks it up with /getSessionId.
	Session string `json:"session,omitempty"`
	// MsgID is the id of the triggering message, 0 for cron and plugin sends.
	MsgID uint64 `json:"msg_id,omitempty"`
	// Plugin and Action name a plugin action; Params are its rendered
	// parameters.
	Plugin string            `json:"plugin,omitempty"`
	Action string            `json:"action,omitempty"`
	Params map[string]string `json:"params,omitempty"`
	// Msg is the triggering message, kept for plugin actions.
	Msg *sdk.Message `json:"msg,omitempty"`
	// Attempts counts the failed attempts so far.
	Attempts int `json:"attempts,omitempty"`
	// NextAt is the earliest time of the next attempt.
	NextAt time.Time `json:"next_at,omitzero"`
	// LastError is the error of the last failed attempt.
	LastError string `json:"last_error,omitempty"`
	// Created is when the action entered the outbox.
	Created time.Time `json:"created"`
	// Received is when the page that produced the action arrived, for the
	// latency metrics; it is not stored.
	Received time.Time `json:"-"`
}

// DeadLetter is an item given up on, with the reason.
type DeadLetter struct {
	Item   Item      `json:"item"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Account is what the store keeps of one account's login.
type Account struct {
	// WcID is the WeChat id, learned at the first login and stable after.
	WcID string `json:"wc_id,omitempty"`
	// WID is the id of the current login instance; it changes at every login.
	WID string `json:"w_id,omitempty"`
	// Nick is the account's nickname, for the operator's eyes.
	Nick string `json:"nick,omitempty"`
	// LoggedIn is when the current instance logged in.
	LoggedIn time.Time `json:"logged_in,omitzero"`
}

// Token is a token and the time it stops working.
type Token struct {
	Value  string    `json:"value,omitempty"`
	Expire time.Time `json:"expire,omitzero"`
}

// Valid reports whether the token is set and still valid at now.
func (t Token) Valid(now time.Time) bool {
	return t.Value != "" && (t.Expire.IsZero() || now.Before(t.Expire))
}

// SessionState is what the store keeps of a token or app-key session.
type SessionState struct {
	// Access and Refresh are the token kind's tokens.
	Access  Token `json:"access,omitzero"`
	Refresh Token `json:"refresh,omitzero"`
	// LoggedIn is when the current login happened.
	LoggedIn time.Time `json:"logged_in,omitzero"`
}

// Lease is a time-limited claim on a shared resource, such as the single
// login an app key allows.
type Lease struct {
	Key    string    `json:"key"`
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Commit is one synced page, committed atomically by CommitPage.
type Commit struct {
	// Account is the account whose cursor advances.
	Account string
	// KeyBuff is the new cursor, stored byte-exact.
	KeyBuff string
	// MsgIDs are the ids of the page's new messages, remembered so that a
	// page repeating them does not act on them again.
	MsgIDs []uint64
	// Items are the actions the page's new messages produced; the store
	// assigns their IDs.
	Items []Item
	// Acks are outbox items the page shows delivered (their echo arrived
	// as the account's own message); they leave the outbox with the page.
	Acks []uint64
}

// Store is the daemon's durable state. Implementations are safe for
// concurrent use.
type Store interface {
	// Account returns the stored login of the named account, or a zero
	// Account when there is none.
	Account(ctx context.Context, name string) (Account, error)
	// SaveAccount stores the login of the named account.
	SaveAccount(ctx context.Context, name string, a Account) error
	// Cursor returns the account's stored keyBuff, "" when none.
	Cursor(ctx context.Context, account string) (string, error)
	// Unseen returns the subset of ids not yet committed for the account,
	// in the order given.
	Unseen(ctx context.Context, account string, ids []uint64) ([]uint64, error)
	// CommitPage stores the new cursor, the message ids and the items in
	// one transaction and returns the items with their IDs assigned. Ids
	// already seen are skipped, so a commit retried after a crash is
	// harmless.
	CommitPage(ctx context.Context, c Commit) ([]Item, error)
	// Enqueue adds items that no page produced (cron, plugin sends) and
	// returns them with their IDs assigned.
	Enqueue(ctx context.Context, items []Item) ([]Item, error)
	// Pending returns every item in the outbox, in ID order.
	Pending(ctx context.Context) ([]Item, error)
	// Ack removes items the upstream accepted, in one transaction.
	Ack(ctx context.Context, ids ...uint64) error
	// Complete removes a performed item and adds the items it led to (a
	// plugin's answers) in one transaction, returning the new items with
	// their IDs assigned.
	Complete(ctx context.Context, id uint64, follow []Item) ([]Item, error)
	// MarkShutdown records a clean shutdown and the items whose attempts
	// it interrupted; TakeShutdown returns and clears that record. A start
	// that finds none follows a crash.
	MarkShutdown(ctx context.Context, interrupted []uint64) error
	TakeShutdown(ctx context.Context) (clean bool, interrupted []uint64, err error)
	// Update stores a changed item (its attempts, next time, last error).
	Update(ctx context.Context, it Item) error
	// Kill moves an item from the outbox to the dead letters.
	Kill(ctx context.Context, it Item, reason string) error
	// DeadLetters returns up to limit dead letters, oldest first.
	DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error)
	// Session returns the stored tokens of a named session (token and
	// app-key kinds), or a zero SessionState when there are none.
	Session(ctx context.Context, name string) (SessionState, error)
	// SaveSession stores the tokens of a named session.
	SaveSession(ctx context.Context, name string, s SessionState) error
	// Lease takes the lease named key for holder until now+ttl, or renews
	// it when holder already has it. When another holder's lease is still
	// running it is left alone. Either way the lease as it stands is
	// returned: the caller holds it when Lease.Holder is holder.
	Lease(ctx context.Context, key, holder string, ttl time.Duration) (Lease, error)
	// KV returns the key-value space of the named plugin.
	KV(plugin string) KV
	// Close releases the store.
	Close() error
}

// KV is a small persistent key-value space.
type KV interface {
	// Get returns the value of key and whether it exists.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Put sets key to value.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key; removing a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the keys starting with prefix, in order, at most limit.
	List(ctx context.Context, prefix string, limit int) ([]string, error)
}

// ErrLocked is returned by Open when another process holds the state
// directory.
var ErrLocked = errors.New("store: the state directory is in use by another finderbot process")

// ErrFull is returned when the outbox or a KV space is past its bound.
var ErrFull = errors.New("store: full")
