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
	// Image is the URL of the image a reply sends (/privateSendImg)
	// instead of a text; such a reply has no Text.
	Image string `json:"image,omitempty"`
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
	// State is where the item stands in its delivery; see State.
	State State `json:"state,omitempty"`
	// AttemptAt is when the latest attempt began: the moment from which an
	// echo can prove it delivered, and from which an attempt in doubt
	// waits before it may be made again.
	AttemptAt time.Time `json:"attempt_at,omitzero"`
	// NewMsgID is the id the upstream gave a delivered reply; its echo
	// carries it.
	NewMsgID uint64 `json:"new_msg_id,omitempty"`
	// DeliveredAt is when the upstream's acceptance of a reply was
	// recorded.
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
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

// State is an outbox item's place in its delivery:
//
//	queued ──▶ attempting ──▶ delivered (a reply awaiting its echo) | gone (accepted)
//	  ▲             │
//	  └── refused ◀─┼──▶ in doubt ──▶ gone (echo) | queued (no echo in time) | dead
//	                └──▶ dead (attempts exhausted, or a send in doubt)
//
// The store keeps the state with the item; engine/outbox documents the
// transitions and why they make replies exactly-once.
type State string

// Delivery states, as found in Item.State.
const (
	// StateQueued waits for its turn (and for NextAt after a refusal).
	StateQueued State = ""
	// StateAttempting is recorded before the action is handed to the
	// upstream: until its outcome is recorded, it may have been accepted.
	StateAttempting State = "attempting"
	// StateInDoubt is an attempt whose outcome does not prove a refusal: a
	// timeout, a cut or malformed answer, a crash.
	StateInDoubt State = "in_doubt"
	// StateDelivered is a reply the upstream accepted with a known
	// newMsgId, kept until its echo arrives so that the echo cannot be
	// credited to another reply of the same text.
	StateDelivered State = "delivered"
)

// Attempted reports whether an item in state s may have reached the
// upstream, so that its echo may settle it.
func (s State) Attempted() bool {
	return s == StateAttempting || s == StateInDoubt || s == StateDelivered
}

// DeadLetter is an item given up on, with the reason.
type DeadLetter struct {
	Item   Item      `json:"item"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// InDoubt marks an action that may have been performed: the upstream
	// may have accepted it, and nothing can tell (a /sendText has no
	// echo). Retrying it may perform it twice; the operator decides.
	InDoubt bool `json:"in_doubt,omitempty"`
}

// InboundDeadLetter is a page item that could not be processed (no id, an id
// that does not decode): it is skipped alone, so that its account never
// stalls on it, and kept here for the operator.
type InboundDeadLetter struct {
	Account string    `json:"account"`
	Index   int       `json:"index"`
	Reason  string    `json:"reason"`
	Raw     string    `json:"raw,omitempty"`
	At      time.Time `json:"at"`
}

// Echo is one of the account's own messages on a synced page: the upstream
// echoes every accepted reply this way, which settles replies in doubt.
type Echo struct {
	// ID is the message's NewMsgId, the newMsgId /privateSend answered.
	ID uint64
	// From is the account's Finder name (a reply's myUserName), To the
	// receiver (its toUserName), Session the msgSessionId.
	From, To, Session string
	// Text is the message's content.
	Text string
	// Image marks an image message (MsgType 3): the echo of an image
	// reply, whose content is the upstream's <img> XML, not the URL sent.
	Image bool
	// Time is the message's CreateTime.
	Time time.Time
}

// CooldownMark records that a rule fired in a conversation, so that its
// cooldown survives a restart. It is committed with the page whose message
// fired the rule, never before.
type CooldownMark struct {
	Rule  string    `json:"rule"`
	Conv  string    `json:"conv"`
	Fired time.Time `json:"fired"`
	Until time.Time `json:"until"`
}

// Pause is a conversation whose automated replies are paused because a
// person answered in it from the phone (human takeover). It is committed
// with the page that carried the person's message, never before.
type Pause struct {
	// Account and Conv name the conversation (outbox.Conversation).
	Account string `json:"account"`
	Conv    string `json:"conv"`
	// Since is when the person's latest message was written, Until when
	// the pause ends unless another message of theirs extends it.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// MsgID is the id of the person's latest message.
	MsgID uint64 `json:"msg_id,omitempty"`
}

// Changes are delivery-state transitions recorded in one transaction.
type Changes struct {
	// Put stores items whose state changed. An item no longer in the
	// outbox (settled by its echo meanwhile) is not brought back: its id
	// is reported in Recorded.Missing instead.
	Put []Item
	// Remove takes items out of the outbox: delivered, or settled.
	Remove []uint64
	// Dead moves items to the dead letters.
	Dead []DeadLetter
	// Add enqueues new items (a plugin's answers); their IDs are assigned.
	Add []Item
}

// Empty reports whether c changes nothing.
func (c *Changes) Empty() bool {
	return len(c.Put) == 0 && len(c.Remove) == 0 && len(c.Dead) == 0 && len(c.Add) == 0
}

// revived is a dead letter's item made ready to be tried again.
func revived(d DeadLetter) Item {
	it := d.Item
	it.ID, it.Created = 0, time.Time{}
	it.State, it.Attempts, it.NextAt, it.LastError, it.AttemptAt, it.NewMsgID = StateQueued, 0, time.Time{}, "", time.Time{}, 0
	return it
}

// Recorded is the outcome of Record.
type Recorded struct {
	// Added are Changes.Add with their IDs assigned.
	Added []Item
	// Missing are the ids of Changes.Put and Changes.Dead items that were
	// no longer in the outbox and were left alone.
	Missing []uint64
}

// PageResult is the outcome of CommitPage.
type PageResult struct {
	// Items are the new actions with their IDs assigned.
	Items []Item
	// Settled are the outbox items the page's echoes proved delivered;
	// they left the outbox with the page.
	Settled []uint64
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
	// Echoes are the page's new own messages. Within the transaction they
	// settle the replies they prove delivered (see MatchEchoes), which
	// leave the outbox with the page.
	Echoes []Echo
	// Cooldowns are the rule cooldowns the page's messages started.
	Cooldowns []CooldownMark
	// Pauses are the conversations the page's messages paused, or whose
	// pause they extended; each replaces the stored pause of its
	// conversation.
	Pauses []Pause
	// Skipped are the page's items that could not be processed.
	Skipped []InboundDeadLetter
	// Log are the page's messages for the account's conversation log.
	// Those of messages in MsgIDs not seen before are kept, once each,
	// in this transaction, which also drops the account's logged
	// messages past Options.LogMax and older than Options.LogMaxAge.
	Log []LoggedMessage
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
	// CommitPage stores the new cursor, the message ids, the items, the
	// cooldowns and the inbound dead letters in one transaction, settles
	// the replies the page's echoes prove delivered, and returns the items
	// with their IDs assigned. Ids seen before this commit are skipped
	// with the items they produced, so a page synced again is harmless.
	CommitPage(ctx context.Context, c Commit) (PageResult, error)
	// Enqueue adds items that no page produced (cron, events, plugin
	// sends) and returns them with their IDs assigned.
	Enqueue(ctx context.Context, items []Item) ([]Item, error)
	// Pending returns every item in the outbox, in ID order.
	Pending(ctx context.Context) ([]Item, error)
	// Record applies delivery-state changes in one transaction.
	Record(ctx context.Context, c Changes) (Recorded, error)
	// Cooldowns returns the recorded rule cooldowns still running at now.
	Cooldowns(ctx context.Context, now time.Time) ([]CooldownMark, error)
	// Foreign returns the indexes, in echoes, of the account's own new
	// messages that no send of finderbot's accounts for (see
	// ClassifyEchoes), judged against the outbox as it stands.
	Foreign(ctx context.Context, account string, echoes []Echo) ([]int, error)
	// Pauses returns the recorded conversation pauses still running at
	// now, forgetting those that ended.
	Pauses(ctx context.Context, now time.Time) ([]Pause, error)
	// Resume ends the pause of a conversation; it reports whether there
	// was one.
	Resume(ctx context.Context, account, conv string) (bool, error)
	// InboundDeadLetters returns up to limit skipped page items, oldest
	// first.
	InboundDeadLetters(ctx context.Context, limit int) ([]InboundDeadLetter, error)
	// DeadLetters returns up to limit dead letters, oldest first.
	DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error)
	// Revive moves the dead letter of item id back into the outbox as a
	// new item (a new id, so the end of its conversation's queue), with
	// its attempts reset, and returns it; DropDeadLetter forgets it. Both
	// fail with ErrNotFound when there is none.
	Revive(ctx context.Context, id uint64) (Item, error)
	DropDeadLetter(ctx context.Context, id uint64) error
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
	// Conversations returns the account's logged conversations, the one
	// whose latest message was committed last first, at most limit (0 for
	// all), each with its messages oldest first (by their times, ties in
	// the order they came). Messages older than Options.LogMaxAge are left
	// out.
	Conversations(ctx context.Context, account string, limit int) ([]Conversation, error)
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

// ErrNotFound is returned for a dead letter that does not exist.
var ErrNotFound = errors.New("store: no such dead letter")

// ErrFull is returned when the outbox or a KV space is past its bound.
var ErrFull = errors.New("store: full")
