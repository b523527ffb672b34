package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/rules"
	"github.com/finderbot/finderbot/sdk"
)

// ErrUnknown is wrapped by the errors about an account or session name
// the configuration does not have.
var ErrUnknown = errors.New("no such account or session")

// Rates returns how many messages the account received, and how many
// replies and sends it delivered, over the last 60 seconds; 0, 0 for an
// unknown account. Received messages count once their page is committed,
// deliveries once the upstream accepted them (a reply in doubt once its
// echo proves it).
func (d *Daemon) Rates(account string) (in, out float64) { return d.rates.PerMinute(account) }

// ratesCounted tells a test that the rates changed.
func (d *Daemon) ratesCounted() {
	if d.watchRates != nil {
		d.watchRates()
	}
}

// Conversations returns the account's recent conversations from the
// store's conversation log (console.messages_per_account and
// console.message_max_age bound it): the conversation with the newest
// message first, at most limit (0 for all), each with its messages oldest
// first, the account's own replies among them.
func (d *Daemon) Conversations(ctx context.Context, account string, limit int) ([]store.Conversation, error) {
	if d.accounts[account] == nil {
		return nil, fmt.Errorf("engine: account %q: %w", account, ErrUnknown)
	}
	return d.store.Conversations(ctx, account, limit)
}

// RuleStats returns every rule in force, in evaluation order, with the
// times its condition held and its evaluation failed since the daemon
// started; a rule keeps its counts across reloads.
func (d *Daemon) RuleStats() []rules.RuleStat { return d.rules.set.Load().Stats() }

// Trial is what the rules in force make of a message, without acting on
// it (see TryMessage).
type Trial struct {
	// Answer is the rule that answers: the first message rule that
	// matched, "" when none did.
	Answer string `json:"answer,omitempty"`
	// Rules is a verdict for every message rule, in evaluation order.
	Rules []Verdict `json:"rules"`
}

// Verdict is one rule's part in a Trial.
type Verdict struct {
	// Rule is the rule's name.
	Rule string `json:"rule"`
	// Matched is set when its condition held and its actions rendered.
	Matched bool `json:"matched"`
	// Actions are the actions it would take, one line each as `finderbot
	// replay` shows them. Cooldowns are not applied.
	Actions []string `json:"actions,omitempty"`
	// Why says why it did not match, as `finderbot replay --explain`
	// does.
	Why string `json:"why,omitempty"`
}

// MaxTryText bounds the text TryMessage takes.
const MaxTryText = 64 << 10

// The synthetic stranger and conversation of TryMessage.
const (
	tryFrom    = "finderbot-try@findermsgstranger"
	trySession = "finderbot-try@findermsg"
)

// TryMessage runs the rules in force, as `finderbot replay --explain` does,
// on a text message from a stranger to the account, at the current time:
// which rule answers, and for each rule whether it matched and why not.
// Nothing is performed, recorded or counted, and no cooldown applies.
func (d *Daemon) TryMessage(ctx context.Context, account, text string) (Trial, error) {
	if err := ctx.Err(); err != nil {
		return Trial{}, err
	}
	a := d.accounts[account]
	if a == nil {
		return Trial{}, fmt.Errorf("engine: account %q: %w", account, ErrUnknown)
	}
	if len(text) > MaxTryText {
		return Trial{}, fmt.Errorf("engine: the text is %d bytes; at most %d can be tried", len(text), MaxTryText)
	}
	now := d.now()
	msg := &sdk.Message{Type: sdk.TypeText, RawType: sdk.RawText, Text: text, Content: text,
		From: tryFrom, To: a.finderName(), Session: trySession, Time: now, Account: account}
	var tr Trial
	for _, t := range d.rules.set.Load().Explain(msg, account, now) {
		v := Verdict{Rule: t.Rule, Why: t.Reason()}
		if t.Matched && t.Err == nil {
			v.Matched = true
			if tr.Answer == "" {
				tr.Answer = t.Rule
			}
			for _, act := range t.Actions {
				v.Actions = append(v.Actions, act.String())
			}
		}
		tr.Rules = append(tr.Rules, v)
	}
	return tr, nil
}
