package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/finderbot/finderbot/sdk"
)

// Env is what a rule's expressions see. Conditions and templates are
// type-checked against it at load, so a misspelt field is a load error.
//
// Msg and Event are held by value: expr reads fields of a value without
// copying them to the heap, which keeps evaluation allocation-free.
type Env struct {
	// Msg is the message being matched. In event rules it is the event's
	// message, when the event carries one; in cron rules it is empty.
	Msg sdk.Message `expr:"msg"`
	// Now is the evaluation time in the rule set's time zone.
	Now time.Time `expr:"now"`
	// Account is the name of the finderbot account the message or event
	// belongs to.
	Account string `expr:"account"`
	// Event is the event being matched by an `on: event` rule.
	Event Event `expr:"event"`
	// Conversation is the state of the message's conversation.
	Conversation Conversation `expr:"conversation"`
}

// PausedKeeps reports whether the daemon still queues action a of a rule
// that fired on a message of a paused conversation: only sends to someone
// else do; replies, image replies and plugin actions on the message are
// withheld while a person has the conversation. Rule tests withhold the
// same.
func PausedKeeps(a Action) bool { return a.Kind == KindSend }

// Conversation is what rules see of the conversation a message belongs
// to, as `conversation`.
type Conversation struct {
	// Paused is true while a person who answered the conversation from
	// the phone has it: the daemon queues no reply there then, whatever
	// the rules say, but rules may still act elsewhere (alert someone
	// with a send, say).
	Paused bool
	// PausedUntil is when the pause ends, unless the person writes again;
	// zero when not paused.
	PausedUntil time.Time
}

// Event types the daemon reports about its sessions; Event.Type holds one of
// them.
const (
	EventSessionOnline    = "session.online"
	EventSessionOffline   = "session.offline"
	EventSessionKicked    = "session.kicked"
	EventSessionNeedsScan = "session.needs_scan"
	EventSessionNeedsCode = "session.needs_code"
	EventSessionRefreshed = "session.refreshed"
	EventSessionFailed    = "session.failed"
)

// Event is something that happened to a session or account, matched by
// `on: event` rules. Expressions see it as `event`, with fields Type,
// Session, Account, Message and Fields.
type Event struct {
	// Type is one of the Event* constants, or a type a plugin defines.
	Type string `json:"type"`
	// Session is the name of the session the event is about.
	Session string `json:"session,omitempty"`
	// Account is the name of the account the session belongs to.
	Account string `json:"account,omitempty"`
	// Message is the message the event concerns, or nil.
	Message *sdk.Message `json:"message,omitempty"`
	// Fields carries event details, such as a QR code URL or an error text.
	Fields map[string]string `json:"fields,omitempty"`
}

// Bounds on what rules may make the engine do.
const (
	// DefaultMaxExprLen bounds the length in bytes of one expression.
	DefaultMaxExprLen = 4096
	// DefaultMaxNodes bounds the number of syntax nodes of one expression.
	DefaultMaxNodes = 500
	// DefaultMaxOutput bounds the length in bytes of one rendered action
	// string; a template that renders longer fails.
	DefaultMaxOutput = 16 << 10
	// DefaultMaxCost bounds the work of one evaluation of one expression:
	// each pass of a loop (all, any, map, filter, reduce, ...) costs 1, and
	// each element of a list or range it builds costs 1. An evaluation
	// that goes past it fails, so a rule like `all(1..1000, all(1..1000,
	// true))` cannot stall the daemon.
	DefaultMaxCost = 100_000
	// MaxString bounds the length in bytes of a string an expression
	// builds with +, repeat, replace or join; going past it fails the
	// evaluation rather than exhausting memory.
	MaxString = 1 << 20
)

// errCost is expr's message when an evaluation passes its budget.
const errCost = "memory budget exceeded"

func errLongString(n int) error {
	return fmt.Errorf("the string would be %d bytes, more than the limit of %d", n, MaxString)
}

// timeHelpers take an optional time first and default it to `now`.
var timeHelpers = map[string]bool{"hour": true, "minute": true, "weekday": true, "clock": true, "between": true}

// newConfig builds the expr configuration every expression of a Set is
// compiled with: the typed Env, expr's builtins minus the wall clock, and the
// helpers. asBool selects conditions (which must be bool) over templates.
func newConfig(loc *time.Location, maxNodes uint, asBool bool) *conf.Config {
	c := conf.CreateNew()
	opts := []expr.Option{
		expr.Env(Env{}),
		expr.MaxNodes(maxNodes),
		// The clock is an input: rules must see the time they are given,
		// so tests and replays are deterministic.
		expr.DisableBuiltin("now"),
		expr.Patch(nowPatcher{}),
		expr.Function("hour", func(p ...any) (any, error) { return p[0].(time.Time).In(loc).Hour(), nil },
			new(func(time.Time) int)),
		expr.Function("minute", func(p ...any) (any, error) { return p[0].(time.Time).In(loc).Minute(), nil },
			new(func(time.Time) int)),
		expr.Function("weekday", func(p ...any) (any, error) { return int(p[0].(time.Time).In(loc).Weekday()), nil },
			new(func(time.Time) int)),
		expr.Function("clock", func(p ...any) (any, error) { return p[0].(time.Time).In(loc).Format("15:04"), nil },
			new(func(time.Time) string)),
		expr.Function("between", func(p ...any) (any, error) {
			return between(p[0].(time.Time).In(loc), p[1].(string), p[2].(string))
		}, new(func(time.Time, string, string) bool)),
		// The string builders that can grow faster than the work spent on
		// them are replaced by bounded ones.
		expr.DisableBuiltin("repeat"),
		expr.DisableBuiltin("replace"),
		expr.DisableBuiltin("join"),
		expr.Function("concat", func(p ...any) (any, error) {
			a, b := p[0].(string), p[1].(string)
			if len(a)+len(b) > MaxString {
				return nil, errLongString(len(a) + len(b))
			}
			return a + b, nil
		}, new(func(string, string) string)),
		expr.Operator("+", "concat"),
		// + of values whose type is only known at run time (#acc, list
		// elements) is checked there, so that it cannot double a string
		// past the bound either.
		expr.Function("add", func(p ...any) (any, error) {
			if a, ok := p[0].(string); ok {
				if b, ok := p[1].(string); ok {
					if len(a)+len(b) > MaxString {
						return nil, errLongString(len(a) + len(b))
					}
					return a + b, nil
				}
			}
			return runtime.Add(p[0], p[1]), nil
		}, new(func(any, any) any)),
		expr.Patch(dynamicAdd{}),
		expr.Function("repeat", func(p ...any) (any, error) {
			s, n := p[0].(string), p[1].(int)
			if n < 0 {
				return nil, fmt.Errorf("repeat: count %d is negative", n)
			}
			if n > 0 && len(s) > MaxString/n {
				return nil, errLongString(MaxString + 1)
			}
			return strings.Repeat(s, n), nil
		}, new(func(string, int) string)),
		expr.Function("replace", func(p ...any) (any, error) {
			s, old, repl := p[0].(string), p[1].(string), p[2].(string)
			n := strings.Count(s, old)
			if grow := len(repl) - len(old); grow > 0 && n > 0 && grow > (MaxString-len(s))/n {
				return nil, errLongString(MaxString + 1)
			}
			return strings.ReplaceAll(s, old, repl), nil
		}, new(func(string, string, string) string)),
		expr.Function("join", func(p ...any) (any, error) {
			sep := ""
			if len(p) > 1 {
				sep = p[1].(string)
			}
			var parts []string
			switch a := p[0].(type) {
			case []string:
				parts = a
			case []any:
				parts = make([]string, len(a))
				for i, v := range a {
					s, ok := v.(string)
					if !ok {
						return nil, fmt.Errorf("join: element %d is %T, not a string", i, v)
					}
					parts[i] = s
				}
			default:
				return nil, fmt.Errorf("join: %T is not a list of strings", p[0])
			}
			n := len(sep) * max(len(parts)-1, 0)
			for _, s := range parts {
				n += len(s)
			}
			if n > MaxString {
				return nil, errLongString(n)
			}
			return strings.Join(parts, sep), nil
		},
			// expr reports the last overload's complaint when none fits:
			// the common form goes last, so that its complaint is the one.
			new(func([]any) string), new(func([]string) string), new(func([]any, string) string), new(func([]string, string) string)),
		expr.DisableBuiltin("split"),
		expr.DisableBuiltin("splitAfter"),
		expr.Function("split", func(p ...any) (any, error) { return boundedSplit(p, strings.SplitN) },
			new(func(string, string, int) []string), new(func(string, string) []string)),
		expr.Function("splitAfter", func(p ...any) (any, error) { return boundedSplit(p, strings.SplitAfterN) },
			new(func(string, string, int) []string), new(func(string, string) []string)),
		expr.Function("containsAny", func(p ...any) (any, error) {
			s := p[0].(string)
			for _, k := range p[1:] {
				if strings.Contains(s, k.(string)) {
					return true, nil
				}
			}
			return false, nil
		}, new(func(string, ...string) bool)),
	}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	for _, o := range opts {
		o(c)
	}
	for name := range c.Disabled {
		delete(c.Builtins, name)
	}
	c.Check()
	return c
}

// boundedSplit splits like split(s, sep[, n]), refusing to build more
// parts than an evaluation may cost: splitting a long message into its
// characters would otherwise build millions of strings.
func boundedSplit(p []any, f func(s, sep string, n int) []string) (any, error) {
	s, sep, n := p[0].(string), p[1].(string), -1
	if len(p) > 2 {
		n = p[2].(int)
	}
	parts := strings.Count(s, sep) + 1
	if sep == "" {
		parts = utf8.RuneCountInString(s)
	}
	if n >= 0 {
		parts = min(parts, n)
	}
	if parts > DefaultMaxCost {
		return nil, fmt.Errorf("split would make %d parts, more than the limit of %d", parts, DefaultMaxCost)
	}
	return f(s, sep, n), nil
}

// dynamicAdd turns a + b into add(a, b) when either side's type is only
// known at run time; typed + is left to the checker and the concat
// overload.
type dynamicAdd struct{}

func (dynamicAdd) Visit(node *ast.Node) {
	b, ok := (*node).(*ast.BinaryNode)
	if !ok || b.Operator != "+" || (!dynamic(b.Left.Type()) && !dynamic(b.Right.Type())) {
		return
	}
	call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: "add"}, Arguments: []ast.Node{b.Left, b.Right}}
	call.SetLocation(b.Location())
	ast.Patch(node, call)
}

func dynamic(t reflect.Type) bool { return t == nil || t.Kind() == reflect.Interface }

// nowPatcher lets users write hour() for hour(now): a time helper called
// with one argument too few gets `now` as its first.
type nowPatcher struct{}

func (nowPatcher) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok {
		return
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || !timeHelpers[id.Value] {
		return
	}
	want := 1
	if id.Value == "between" {
		want = 3
	}
	if len(call.Arguments) == want-1 {
		now := &ast.IdentifierNode{Value: "now"}
		now.SetLocation(call.Location())
		call.Arguments = append([]ast.Node{now}, call.Arguments...)
	}
}

// between reports whether t's time of day lies in [from, to), both "HH:MM".
// A range whose end is before its start wraps past midnight.
func between(t time.Time, from, to string) (bool, error) {
	f, err := parseClock(from)
	if err != nil {
		return false, err
	}
	e, err := parseClock(to)
	if err != nil {
		return false, err
	}
	m := t.Hour()*60 + t.Minute()
	if f <= e {
		return m >= f && m < e, nil
	}
	return m >= f || m < e, nil
}

var errClock = errors.New("want a time of day as HH:MM, 00:00 to 24:00")

func parseClock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("between: %q: %w", s, errClock)
	}
	h, m := atoi2(s[0:2]), atoi2(s[3:5])
	if h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("between: %q: %w", s, errClock)
	}
	return h*60 + m, nil
}

func atoi2(s string) int {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return -1
	}
	return int(s[0]-'0')*10 + int(s[1]-'0')
}

// firstBadClock finds a literal argument of between() that is not a time of
// day, so the mistake shows at load rather than at run time.
func firstBadClock(node ast.Node) (ast.Node, error) {
	var bad ast.Node
	var badErr error
	ast.Walk(&node, visitFunc(func(n *ast.Node) {
		call, ok := (*n).(*ast.CallNode)
		if !ok || bad != nil {
			return
		}
		id, ok := call.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != "between" {
			return
		}
		for _, a := range call.Arguments {
			if s, ok := a.(*ast.StringNode); ok {
				if _, err := parseClock(s.Value); err != nil {
					bad, badErr = a, err
					return
				}
			}
		}
	}))
	return bad, badErr
}

type visitFunc func(*ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(n) }
