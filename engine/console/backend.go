package console

import (
	"context"
	"errors"
	"time"
)

// Backend is everything the console reads from and asks of the daemon. The
// console keeps no state of the daemon's own: each page asks again, so a
// Backend must be safe for concurrent use and cheap to ask.
type Backend interface {
	// Overview is the state of every account, session and plugin.
	Overview(ctx context.Context) Overview
	// AccountNames are the names of the accounts, in the daemon's order,
	// for the pages that pick one: cheaper to ask than the Overview.
	AccountNames(ctx context.Context) []string
	// Logins is the login state of every account and session.
	Logins(ctx context.Context) []Login
	// LoginQR is the QR code the named login waits to have scanned, as PNG
	// bytes; an error wrapping ErrNotFound when there is none.
	LoginQR(ctx context.Context, name string) (png []byte, err error)
	// StartLogin begins a login of the named account or session.
	StartLogin(ctx context.Context, name string) error
	// SubmitCode hands the named login the code a person read on the phone
	// (a verify code) or in an SMS.
	SubmitCode(ctx context.Context, name, code string) error
	// Conversations are the recent messages of an account grouped by
	// conversation, at most limit conversations; an error wrapping
	// ErrNotFound for an unknown account.
	Conversations(ctx context.Context, account string, limit int) ([]Conversation, error)
	// DeadLetters are at most limit actions given up on.
	DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error)
	// RetryDeadLetter queues a dead letter again; an error wrapping
	// ErrNotFound for an unknown id.
	RetryDeadLetter(ctx context.Context, id uint64) error
	// DropDeadLetter forgets a dead letter; an error wrapping ErrNotFound
	// for an unknown id.
	DropDeadLetter(ctx context.Context, id uint64) error
	// RetryDeadLetters queues again every dead letter of a kind and says
	// how many.
	RetryDeadLetters(ctx context.Context, kind string) (int, error)
	// Rules are the loaded rules with their counters.
	Rules(ctx context.Context) []Rule
	// TryMessage runs a text through the rules of an account as if it had
	// arrived, performing nothing, and explains each rule's verdict.
	TryMessage(ctx context.Context, account, text string) (Trial, error)
	// Reload loads the rule files again. A broken file leaves the old rules
	// in place and its error names each problem, one a line, with its
	// file:line:col.
	Reload(ctx context.Context) error
	// RecentEvents are at most n of the most recent events, in any order.
	RecentEvents(ctx context.Context, n int) []Event
	// Subscribe delivers the events from now on; the channel is closed
	// when ctx ends. Events may be dropped for a slow reader.
	Subscribe(ctx context.Context) <-chan Event
}

// ErrNotFound is what a Backend wraps when the account, login, QR code or
// dead letter asked for does not exist; the console answers 404 for it.
var ErrNotFound = errors.New("console: not found")

// Overview is the state of the whole daemon at one moment.
type Overview struct {
	Accounts []Account
	Sessions []Session
	Plugins  []Plugin
	// Started is when the daemon started.
	Started time.Time
}

// Account is one WeChat account the daemon syncs.
type Account struct {
	Name, State, Detail, WcID string
	// LastSync is when its last page was committed; zero if never.
	LastSync time.Time
	// InPerMin and OutPerMin count messages read and replies sent in the
	// last minute.
	InPerMin, OutPerMin float64
	// Outbox, InDoubt and DeadLetters count its actions in each state.
	Outbox, InDoubt, DeadLetters int
}

// Session is one login the daemon keeps alive for plugins.
type Session struct {
	Name, Kind, State, Detail string
}

// Plugin is one plugin process.
type Plugin struct {
	Name, Version, State, Problem string
	Restarts                      int
}

// Login is where the login of an account or session stands.
type Login struct {
	Name, Kind, State, Detail string
	// QR says a QR code waits to be scanned (see Backend.LoginQR) until
	// QRExpires.
	QR        bool
	QRExpires time.Time
	// SliderURL is a captcha a person must solve, "" when none.
	SliderURL string
	// NeedsCode says the login waits for a code of CodeKind: "verify" (shown
	// on the phone) or "sms".
	NeedsCode bool
	CodeKind  string
	Online    bool
}

// Conversation is the recent messages with one peer.
type Conversation struct {
	Account, ID, Peer string
	// Last is the time of its newest message.
	Last     time.Time
	Messages []Message
}

// Message is one message of a conversation with what the rules made of it.
type Message struct {
	Time     time.Time
	FromSelf bool
	Text     string
	// Rules are the names of the rules that matched; Actions what they did.
	Rules, Actions []string
}

// DeadLetter is an action given up on.
type DeadLetter struct {
	ID                              uint64
	Kind, Account, To, Text, Reason string
	// InDoubt says it may have gone out: retrying may send it twice.
	InDoubt bool
	Created time.Time
	History []Attempt
}

// Attempt is one failed try of a dead letter.
type Attempt struct {
	Time  time.Time
	Error string
}

// Rule is one loaded rule and how often it fired.
type Rule struct {
	Name, File string
	Line       int
	Kind       string
	// Matches counts the messages it matched, Failures the runs that failed.
	Matches, Failures uint64
}

// Trial is what the rules would do with a message.
type Trial struct {
	// Answer is the rule that answers, "" when none does.
	Answer   string
	Verdicts []Verdict
}

// Verdict is one rule's judgement of a tried message.
type Verdict struct {
	Rule    string
	Matched bool
	// Why explains the verdict: the condition that failed, the cooldown
	// that holds, or what matched.
	Why     string
	Actions []string
}

// Event is one thing that happened in the daemon.
type Event struct {
	Seq                    uint64
	Time                   time.Time
	Kind, Account, Message string
}
