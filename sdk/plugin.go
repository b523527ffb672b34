package sdk

import (
	"context"
	"errors"
	"time"
)

// Plugin is what a plugin author implements. Serve runs a Plugin as a
// finderbot plugin process; sdktest runs one in-process for tests.
//
// Both methods may be called concurrently. Their ctx carries the daemon's
// deadline for the call and is cancelled when the daemon gives up on it, so a
// plugin that passes ctx on to its own I/O never works for nobody.
type Plugin interface {
	// Describe says who the plugin is and which actions it offers. The
	// daemon calls it once after each start.
	Describe(ctx context.Context, req *DescribeRequest) (*DescribeResponse, error)
	// Handle runs one action. A returned error means the plugin could not do
	// the action; the daemon logs it and, when it is marked with RetryLater,
	// tries again later. Problems meant for the operator that do not stop the
	// action travel as Diagnostics in the response.
	Handle(ctx context.Context, req *HandleRequest) (*HandleResponse, error)
}

// HealthChecker is implemented by plugins that can tell whether they are
// able to work, for example whether a configuration file they depend on
// parsed. The daemon calls Health periodically and shows a non-nil error to
// the operator. Plugins without it are healthy while their process answers.
type HealthChecker interface {
	Health(ctx context.Context) error
}

// Closer is implemented by plugins that hold resources to release when the
// daemon stops them: files to flush, connections to close. Close is called
// once, after the last call has returned.
type Closer interface {
	Close(ctx context.Context) error
}

// DescribeRequest asks a plugin to describe itself. It has no fields yet;
// it exists so that later versions can add some without breaking plugins.
type DescribeRequest struct{}

// DescribeResponse describes a plugin.
type DescribeResponse struct {
	// Name is the plugin's name, usually the name of its executable, which
	// is how rules refer to it (plugin: <name>.<action>).
	Name string
	// Version is the plugin's own version, shown by `finderbot plugins ls`.
	Version string
	// Description is one sentence about what the plugin does.
	Description string
	// Actions are the actions the plugin offers.
	Actions []Action
}

// Action describes one action a plugin offers.
type Action struct {
	// Name is the action's name, unique within the plugin.
	Name string
	// Description is one sentence about what the action does.
	Description string
	// Params are the parameters the action accepts. The daemon refuses a
	// call that lacks a required one and fills in defaults for the others.
	Params []Param
}

// Param describes one parameter of an action.
type Param struct {
	// Name is the parameter's name as written in a rule's params.
	Name string
	// Description says what the parameter means and what values it takes.
	Description string
	// Required parameters must be given by every rule using the action.
	Required bool
	// Default is the value used when a rule does not give the parameter.
	Default string
}

// HandleRequest asks a plugin to run one action.
type HandleRequest struct {
	// ID identifies the action being performed; it is the same on every
	// retry of the same action (after a timeout, a plugin crash or a daemon
	// crash) and differs between actions. A plugin whose effect must happen
	// once records the IDs it has handled (for example in req.Host's
	// key-value store) and answers a repeated ID as it did the first time.
	//
	// The daemon performs actions at least once, so without ID a plugin
	// cannot tell a retry from a new action that looks the same. ID is ""
	// only when the caller set none (a daemon older than this field, or a
	// test); a plugin must not treat "" as an action it has already done.
	ID string
	// Action is the name of the action to run.
	Action string
	// Params are the action's parameters, with templates already rendered
	// and defaults filled in.
	Params map[string]string
	// Message is the message that triggered the action, or nil when a cron
	// schedule did.
	Message *Message
	// Tick is the cron tick that triggered the action, or nil when a message
	// did.
	Tick *Tick
	// Account is the name of the finderbot account the action runs for.
	Account string
	// Host calls back into the daemon: send messages, keep state, log, ask
	// for session tokens. Serve and sdktest always set it; it is ignored on
	// the way from the daemon to the plugin.
	Host Host
}

// Param returns the named parameter, or "" when the request has none.
func (r *HandleRequest) Param(name string) string {
	if r == nil {
		return ""
	}
	return r.Params[name]
}

// Tick is a cron schedule firing.
type Tick struct {
	// Schedule names the schedule that fired, as written in the config.
	Schedule string
	// Time is when it fired.
	Time time.Time
}

// HandleResponse is what an action produced. The daemon puts replies and
// sends through the same durable outbox and per-account rate limit as the
// actions of rules.
type HandleResponse struct {
	// Replies answer the message that triggered the action, in order.
	// They are ignored for cron ticks, which have no message to answer.
	Replies []Reply
	// Sends are messages to anyone the account can write to.
	Sends []Send
	// Diagnostics are problems and notes meant for the operator.
	Diagnostics []Diagnostic
}

// Reply is a text, or an image, answering the message that triggered an action. The daemon
// addresses it: in the same Finder conversation, from the account that
// received the message.
type Reply struct {
	Text string
	// Image is the URL of an image to answer with (/privateSendImg)
	// instead of Text; the upstream fetches it from there.
	Image string
}

// Send is a text message to a chosen recipient.
type Send struct {
	// Account is the finderbot account to send from; "" means the account
	// the action runs for.
	Account string
	// To is the recipient's user name: a Finder user name for Finder private
	// messages, a wxid or chat room id for ordinary WeChat messages.
	To string
	// Session is the Finder conversation id (a "...@findermsg" value). When
	// set, the text goes as a Finder private message in that conversation;
	// when empty, as an ordinary WeChat text message to To.
	Session string
	// Text is the message text.
	Text string
}

// Severity ranks a Diagnostic.
type Severity int

// Severities of diagnostics, most serious first.
const (
	SeverityError Severity = iota + 1
	SeverityWarning
	SeverityInfo
)

// String returns "error", "warning" or "info".
func (s Severity) String() string {
	switch s {
	case SeverityError:
		return "error"
	case SeverityWarning:
		return "warning"
	case SeverityInfo:
		return "info"
	}
	return "unknown"
}

// Diagnostic is a problem or note for the operator, shown in the daemon's
// log and status. It does not by itself make an action fail.
type Diagnostic struct {
	Severity Severity
	// Summary is one short line.
	Summary string
	// Detail says more, for example which input was wrong and how to fix it.
	Detail string
}

// TextReply returns a response carrying one reply with the given text, the
// most common answer of an action.
func TextReply(text string) *HandleResponse {
	return &HandleResponse{Replies: []Reply{{Text: text}}}
}

// ImageReply returns a response answering the message with the image at
// url (http:// or https://).
func ImageReply(url string) *HandleResponse {
	return &HandleResponse{Replies: []Reply{{Image: url}}}
}

// RetryLater marks err as temporary: the daemon keeps the action in its
// outbox and tries again later (and dead-letters it after repeated failures)
// instead of giving up at once. Use it for outages of services the plugin
// depends on.
func RetryLater(err error) error {
	if err == nil {
		return nil
	}
	return &temporaryError{err}
}

// IsTemporary reports whether err, or an error it wraps, was marked with
// RetryLater.
func IsTemporary(err error) bool {
	var t *temporaryError
	return errors.As(err, &t)
}

type temporaryError struct{ err error }

func (e *temporaryError) Error() string { return e.err.Error() }
func (e *temporaryError) Unwrap() error { return e.err }

// ActionError is the error RemotePlugin.Handle returns when the plugin
// process answered with an error. Any other error from a RemotePlugin means
// the call itself failed: the process died, the deadline passed, the
// connection broke.
type ActionError struct {
	// Message is the text of the plugin's error.
	Message string
	// Temporary reports whether the plugin marked the error with RetryLater.
	Temporary bool
}

// Error returns the plugin's message.
func (e *ActionError) Error() string { return e.Message }
