package rules

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/robfig/cron/v3"

	"github.com/finderbot/finderbot/sdk"
)

// Rule is one compiled rule. Its exported fields describe it; they must not
// be changed.
type Rule struct {
	// Name is unique across the set.
	Name string
	// Description is the rule's free-text description.
	Description string
	// File and Line locate the rule's definition.
	File string
	Line int
	// Priority orders evaluation: higher first, ties in file order.
	Priority int
	// Stop ends evaluation of the rules after this one when it matches.
	Stop bool
	// Trigger is what makes the rule run.
	Trigger Trigger
	// When is the condition's source, "" when the rule always matches.
	When string
	// Cooldown is the minimum time between two firings in one
	// conversation (message rules) or one session (event rules).
	Cooldown time.Duration
	// Spec, Schedule and Location are set for cron rules.
	Spec     string
	Schedule cron.Schedule
	Location *time.Location

	cond    *cond
	actions []action
	counts  *ruleCounts // nil without Options.Stats
}

// action is a compiled action.
type action struct {
	kind         string // "reply", "send" or "plugin"
	text, to     template
	plugin, name string
	params       []param
}

type param struct {
	key   string
	value template
}

// Action kinds, as found in Action.Kind.
const (
	KindReply  = "reply"
	KindSend   = "send"
	KindPlugin = "plugin"
)

// Action is a rendered action of a rule that fired: plain data, ready to be
// stored in a durable outbox and carried out later.
type Action struct {
	// Rule is the name of the rule that produced the action.
	Rule string `json:"rule"`
	// Kind is KindReply, KindSend or KindPlugin.
	Kind string `json:"kind"`
	// Text is the text of a reply or a send.
	Text string `json:"text,omitempty"`
	// To is the recipient of a send. A reply has none: it answers the
	// message that triggered it.
	To string `json:"to,omitempty"`
	// Plugin and Name name a plugin action ("crm" and "record" for
	// crm.record).
	Plugin string `json:"plugin,omitempty"`
	Name   string `json:"name,omitempty"`
	// Params are a plugin action's rendered parameters.
	Params map[string]string `json:"params,omitempty"`
}

// String renders the action on one line, as rule tests and replays show it.
func (a Action) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{rule: %s, ", a.Rule)
	switch a.Kind {
	case KindReply:
		fmt.Fprintf(&b, "reply: %s}", quote(a.Text))
	case KindSend:
		fmt.Fprintf(&b, "send: {to: %s, text: %s}}", quote(a.To), quote(a.Text))
	case KindPlugin:
		fmt.Fprintf(&b, "plugin: %s.%s", a.Plugin, a.Name)
		if len(a.Params) > 0 {
			b.WriteString(", with: {")
			for i, k := range sortedKeys(a.Params) {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s: %s", k, quote(a.Params[k]))
			}
			b.WriteString("}")
		}
		b.WriteString("}")
	default:
		fmt.Fprintf(&b, "kind: %s}", a.Kind)
	}
	return b.String()
}

func quote(s string) string { return strconv.Quote(s) }

// CronRule is an `on: cron` rule, for a scheduler to run.
type CronRule struct {
	// Name is the rule's name, to pass to Set.Fire.
	Name string
	// Spec is the schedule as written.
	Spec string
	// Schedule computes the rule's next run; it already accounts for
	// Location.
	Schedule cron.Schedule
	// Location is the time zone the schedule is read in.
	Location *time.Location
}

// Set is a compiled, immutable rule set. It is safe for concurrent use.
type Set struct {
	opts    Options
	all     []*Rule // every rule, in evaluation order
	message []*Rule // on: message, in evaluation order
	event   []*Rule
	cron    map[string]*Rule
	crons   []CronRule
	index   *index    // of message
	events  *index    // of event
	pool    sync.Pool // *evaluator
	// warnings are doubtful but legal constructs, for `finderbot check`.
	warnings []Problem
}

// Warnings returns what looks like a mistake but is not refused, such as a
// rule that would answer the account's own messages.
func (s *Set) Warnings() []Problem { return s.warnings }

func (c *compiler) set() *Set {
	sortRules(c.rules)
	s := &Set{opts: c.opts, all: c.rules, cron: map[string]*Rule{}, warnings: c.warnings}
	for _, r := range c.rules {
		if c.opts.Stats != nil {
			r.counts = c.opts.Stats.counts(r.Name)
		}
		switch r.Trigger {
		case OnMessage:
			s.message = append(s.message, r)
		case OnEvent:
			s.event = append(s.event, r)
		case OnCron:
			s.cron[r.Name] = r
			s.crons = append(s.crons, CronRule{Name: r.Name, Spec: r.Spec, Schedule: r.Schedule, Location: r.Location})
		}
	}
	dims := allDims
	if c.opts.legacyIndex {
		dims = legacyDims
	}
	s.index = buildIndex(s.message, dims)
	s.events = buildIndex(s.event, dims)
	s.pool.New = func() any { return newEvaluator() }
	return s
}

// Rules returns every rule in evaluation order. The slice must not be
// changed.
func (s *Set) Rules() []*Rule { return s.all }

// Rule returns the named rule, or nil.
func (s *Set) Rule(name string) *Rule {
	for _, r := range s.all {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Crons returns the cron rules, in evaluation order.
func (s *Set) Crons() []CronRule { return s.crons }

// Location returns the rule set's time zone.
func (s *Set) Location() *time.Location { return s.opts.Location }

// evaluator holds what one evaluation reuses: the expr VM and the candidate
// buffer. Sets keep them in a pool, one per goroutine at a time.
type evaluator struct {
	vm    vm.VM
	cands []int32
	kws   []int32
	probe probe
	sb    strings.Builder
	// env is what the rules see of the message at hand; boxed is env
	// as the VM takes it, made when a rule first runs the VM: a rule its
	// guard decides costs no copy to the heap.
	env   Env
	boxed any
}

func (e *evaluator) setEnv(env Env) {
	e.env, e.boxed = env, nil
}

func (e *evaluator) boxedEnv() any {
	if e.boxed == nil {
		e.boxed = e.env
	}
	return e.boxed
}

func newEvaluator() *evaluator {
	e := &evaluator{}
	e.vm.MemoryBudget = DefaultMaxCost
	return e
}

// Match evaluates the message rules against msg at time now and appends the
// actions of those that fire to dst, in evaluation order. account is the
// receiving account's name (msg.Account when empty). cd holds cooldowns;
// nil means none apply. A rule whose evaluation fails is reported to
// Options.OnFailure and does not match; the others go on.
func (s *Set) Match(dst []Action, msg *sdk.Message, account string, now time.Time, cd CooldownView) []Action {
	e := s.pool.Get().(*evaluator)
	dst = s.match(e, dst, msg, account, now, cd, true)
	s.pool.Put(e)
	return dst
}

func (s *Set) match(e *evaluator, dst []Action, msg *sdk.Message, account string, now time.Time, cd CooldownView, indexed bool) []Action {
	if account == "" {
		account = msg.Account
	}
	// One copy of the environment per message, shared by every rule.
	e.setEnv(s.env(msg, account, now))
	conv := msg.Session
	if conv == "" {
		conv = msg.From
	}
	if !indexed {
		return s.naive(e, dst, s.message, conv, now, cd)
	}
	e.probe.fill(msg, account, "", e.env.Now)
	return s.indexed(e, dst, s.message, s.index, conv, now, cd)
}

// naive evaluates every rule, the index's reference.
func (s *Set) naive(e *evaluator, dst []Action, rules []*Rule, conv string, now time.Time, cd CooldownView) []Action {
	for _, r := range rules {
		var stop bool
		dst, stop = s.try(e, dst, r, nil, conv, now, cd)
		if stop {
			break
		}
	}
	return dst
}

// indexed evaluates the rules the index finds for e.probe, in order, each
// guard before its VM run.
func (s *Set) indexed(e *evaluator, dst []Action, rules []*Rule, ix *index, conv string, now time.Time, cd CooldownView) []Action {
	var always []int32
	e.cands, e.kws, always = ix.candidates(e.cands[:0], e.kws[:0], &e.probe)
	cands := e.cands
	// Merge the two sorted lists of rule numbers.
	for len(cands) > 0 || len(always) > 0 {
		var id int32
		switch {
		case len(always) == 0 || (len(cands) > 0 && cands[0] < always[0]):
			id, cands = cands[0], cands[1:]
		case len(cands) == 0 || always[0] < cands[0]:
			id, always = always[0], always[1:]
		default:
			id, cands, always = cands[0], cands[1:], always[1:]
		}
		var stop bool
		var h *hot
		if !s.opts.legacyIndex {
			h = &ix.hot[id]
		}
		dst, stop = s.try(e, dst, rules[id], h, conv, now, cd)
		if stop {
			break
		}
	}
	return dst
}

// env is what rules see of a message: times are in the set's zone, so that
// templates show them as the operator reads a clock.
func (s *Set) env(msg *sdk.Message, account string, now time.Time) Env {
	e := Env{Msg: *msg, Now: now.In(s.opts.Location), Account: account}
	fillMsg(&e.Msg, s.opts.Location)
	e.Event.Message = &noMessage
	return e
}

// Absent parts of a message read as empty in rules, so `msg.Sys.Type ==
// "x"` is simply false for a text message instead of an error.
var (
	noSys     sdk.SysMsg
	noImage   sdk.Image
	noMessage sdk.Message
)

func fillMsg(m *sdk.Message, loc *time.Location) {
	m.Time = m.Time.In(loc)
	if m.Sys == nil {
		m.Sys = &noSys
	}
	if m.Image == nil {
		m.Image = &noImage
	}
}

// try evaluates one rule and appends its actions when it fires. It reports
// whether evaluation must stop. With h, the guard of a candidate goes first,
// read against e.probe: it rules the rule out, decides it alone, or leaves
// it to the VM.
func (s *Set) try(e *evaluator, dst []Action, r *Rule, h *hot, conv string, now time.Time, cd CooldownView) ([]Action, bool) {
	ok, err := s.guarded(e, r, h)
	if err != nil {
		s.fail(r, err)
		return dst, false
	}
	if !ok {
		return dst, false
	}
	if r.counts != nil {
		r.counts.matches.Add(1)
	}
	if r.Cooldown > 0 && cd != nil && !cd.Allow(r.Name, conv, r.Cooldown, now) {
		// A rule cooling down still counts as matched for stop: it keeps
		// lower rules from answering what it would have answered.
		return dst, r.Stop
	}
	n := len(dst)
	dst, err = s.render(e, dst, r)
	if err != nil {
		s.fail(r, err)
		return dst[:n], false
	}
	return dst, r.Stop
}

// guarded evaluates a rule's condition, deciding by its guard when it can.
func (s *Set) guarded(e *evaluator, r *Rule, h *hot) (bool, error) {
	if h != nil && h.guard != nil {
		switch h.guard.eval(&e.probe) {
		case tFalse:
			return false, nil
		case tTrue:
			if h.exact {
				return true, nil
			}
		}
	}
	return s.test(e, r, e.boxedEnv())
}

// test evaluates a rule's condition.
func (s *Set) test(e *evaluator, r *Rule, env any) (bool, error) {
	if r.cond == nil || r.cond.always {
		return true, nil
	}
	out, err := e.vm.Run(r.cond.program, env)
	if err != nil {
		return false, evalErr(err)
	}
	b, _ := out.(bool)
	return b, nil
}

// fail counts and reports a rule's failed evaluation; Match, MatchEvent
// and Fire come through here, Explain does not.
func (s *Set) fail(r *Rule, err error) {
	if r.counts != nil {
		r.counts.failures.Add(1)
	}
	if s.opts.OnFailure != nil {
		s.opts.OnFailure(Failure{Rule: r.Name, Err: fmt.Errorf("rules: rule %q: %w", r.Name, err)})
	}
}

// render appends r's actions, rendered against e's environment.
func (s *Set) render(e *evaluator, dst []Action, r *Rule) ([]Action, error) {
	for i := range r.actions {
		a := &r.actions[i]
		out := Action{Rule: r.Name, Kind: a.kind}
		var err error
		switch a.kind {
		case KindReply:
			out.Text, err = s.exec(e, &a.text)
		case KindSend:
			if out.To, err = s.exec(e, &a.to); err == nil {
				out.Text, err = s.exec(e, &a.text)
			}
		case KindPlugin:
			out.Plugin, out.Name = a.plugin, a.name
			if len(a.params) > 0 {
				out.Params = make(map[string]string, len(a.params))
				for _, p := range a.params {
					var v string
					if v, err = s.exec(e, &p.value); err != nil {
						break
					}
					out.Params[p.key] = v
				}
			}
		}
		if err != nil {
			return dst, err
		}
		dst = append(dst, out)
	}
	return dst, nil
}

// exec renders a template.
func (s *Set) exec(e *evaluator, t *template) (string, error) {
	if t.static {
		return t.literal, nil
	}
	e.sb.Reset()
	for _, p := range t.parts {
		if p.program == nil {
			e.sb.WriteString(p.lit)
		} else {
			v, err := e.vm.Run(p.program, e.boxedEnv())
			if err != nil {
				return "", evalErr(err)
			}
			writeValue(&e.sb, v)
		}
		if e.sb.Len() > s.opts.MaxOutput {
			return "", fmt.Errorf("template renders more than %d bytes", s.opts.MaxOutput)
		}
	}
	return e.sb.String(), nil
}

// evalError is a run-time failure of an expression, without expr's
// multi-line snippet: it goes into logs and metrics.
type evalError struct{ fe *file.Error }

func (e *evalError) Error() string {
	return fmt.Sprintf("%s (at character %d of %q)", e.fe.Message, e.fe.Column+1, e.fe.Snippet)
}

func (e *evalError) Unwrap() error { return e.fe }

func evalErr(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		if fe.Message == errCost {
			fe.Message = fmt.Sprintf("the evaluation costs more than the limit of %d (loop passes and list elements)", DefaultMaxCost)
		}
		src := strings.TrimPrefix(fe.Snippet, "\n | ")
		if i := strings.Index(src, "\n"); i >= 0 {
			src = src[:i]
		}
		return &evalError{fe: &file.Error{Location: fe.Location, Line: fe.Line, Column: fe.Column, Message: fe.Message, Snippet: src, Prev: fe.Prev}}
	}
	return err
}

// writeValue writes a template value the way a person expects to read it.
func writeValue(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
	case string:
		b.WriteString(x)
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case float64:
		b.WriteString(strconv.FormatFloat(x, 'f', -1, 64))
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case time.Time:
		b.WriteString(x.Format("2006-01-02 15:04:05"))
	case fmt.Stringer:
		b.WriteString(x.String())
	default:
		fmt.Fprint(b, x)
	}
}

// MatchEvent evaluates the event rules against ev at time now and appends
// the actions of those that fire to dst. Cooldowns of event rules are kept
// per session.
func (s *Set) MatchEvent(dst []Action, ev *Event, now time.Time, cd CooldownView) []Action {
	e := s.pool.Get().(*evaluator)
	dst = s.matchEvent(e, dst, ev, now, cd, true)
	s.pool.Put(e)
	return dst
}

func (s *Set) matchEvent(e *evaluator, dst []Action, ev *Event, now time.Time, cd CooldownView, indexed bool) []Action {
	env := Env{Now: now.In(s.opts.Location), Account: ev.Account, Event: *ev}
	if ev.Message != nil {
		env.Msg = *ev.Message
	} else {
		env.Event.Message = &noMessage
	}
	fillMsg(&env.Msg, s.opts.Location)
	e.setEnv(env)
	if !indexed {
		return s.naive(e, dst, s.event, ev.Session, now, cd)
	}
	e.probe.fill(&e.env.Msg, ev.Account, ev.Type, e.env.Now)
	return s.indexed(e, dst, s.event, s.events, ev.Session, now, cd)
}

// Fire runs the named cron rule as at time at, for account, and appends its
// actions to dst. A cron rule with a condition only fires when the condition
// holds. The error is only for a name that is not a cron rule; evaluation
// failures go to Options.OnFailure like any other.
func (s *Set) Fire(dst []Action, name, account string, at time.Time) ([]Action, error) {
	r := s.cron[name]
	if r == nil {
		return dst, fmt.Errorf("rules: no cron rule named %q", name)
	}
	e := s.pool.Get().(*evaluator)
	defer s.pool.Put(e)
	env := Env{Now: at.In(s.opts.Location), Account: account}
	fillMsg(&env.Msg, s.opts.Location)
	env.Event.Message = &noMessage
	e.setEnv(env)
	dst, _ = s.try(e, dst, r, nil, "", at, nil)
	return dst, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
