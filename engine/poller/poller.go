// Package poller is an account's Finder sync loop turn: it fetches the next
// /syncFinder page with the cursor it owns, runs the page's new messages
// through the rules, and commits the page — its keyBuff, its message ids,
// the actions, the rule cooldowns they started, the items it could not read
// and the echoes that settle replies in doubt — in one store transaction.
// Only after that commit does the outbox hear of the page.
package poller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/finderbot/finderbot/engine/handoff"
	"github.com/finderbot/finderbot/engine/outbox"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/rules"
	"github.com/finderbot/finderbot/sdk"
)

// Syncer is what the poller needs of the upstream.
type Syncer interface {
	SyncFinder(ctx context.Context, token, wID, keyBuff string) (*upstream.Page, error)
}

// Store is what the poller needs of the store.
type Store interface {
	Cursor(ctx context.Context, account string) (string, error)
	Unseen(ctx context.Context, account string, ids []uint64) ([]uint64, error)
	CommitPage(ctx context.Context, c store.Commit) (store.PageResult, error)
	// Foreign tells the account's own messages no send of finderbot's
	// accounts for: a person's, written on the phone.
	Foreign(ctx context.Context, account string, echoes []store.Echo) ([]int, error)
}

// Sink hears what each committed page means for the outbox.
type Sink interface {
	// Add queues the page's new actions.
	Add(items []store.Item)
	// Settled reports the replies the page's echoes proved delivered.
	Settled(account string, ids []uint64)
	// CaughtUp reports that a sync which began at start read everything.
	CaughtUp(account string, start time.Time)
}

var _ Sink = (*outbox.Outbox)(nil)

// Observer receives the poller's figures and findings; its methods must be
// safe for concurrent use.
type Observer interface {
	// Synced counts a committed page's new messages by type.
	Synced(account string, msgType string)
	// Matched counts a rule's match.
	Matched(rule string)
	// Skipped counts a page item that could not be processed.
	Skipped(account, reason string)
	// FinderName reports the account's own Finder user name, learned from
	// the messages it receives.
	FinderName(account, name string)
	// Committed reports a committed page's new messages that the account
	// received (its own are not counted).
	Committed(account string, received int)
	// Paused reports a conversation a person's message paused (extended
	// false) or kept paused longer, once its page is committed.
	Paused(p store.Pause, extended bool)
	// Withheld reports the actions a rule would have queued in a paused
	// conversation, which were not.
	Withheld(account, conv string, acts []rules.Action)
}

// Deps are the poller's collaborators; Observer and Log may be nil.
type Deps struct {
	Syncer Syncer
	Store  Store
	Sink   Sink
	// Rules returns the rule set in force (it changes on reload).
	Rules func() *rules.Set
	// Cooldowns are the rules' cooldowns, shared by the account's pollers;
	// a page's firings reach them only once the page is committed.
	Cooldowns *rules.Cooldowns
	// Handoff holds the conversations a person took over; nil turns
	// takeover detection off. A page's pauses reach it only once the page
	// is committed.
	Handoff *handoff.Registry
	// Now is the clock (default time.Now).
	Now      func() time.Time
	Log      *slog.Logger
	Observer Observer
}

// Poller owns one account's cursor. Its methods must not run concurrently.
type Poller struct {
	account string
	deps    Deps
	cursor  string
	loaded  bool
}

// New returns the poller of account.
func New(account string, deps Deps) *Poller {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Observer == nil {
		deps.Observer = nopObserver{}
	}
	return &Poller{account: account, deps: deps}
}

type nopObserver struct{}

func (nopObserver) Synced(string, string)                   {}
func (nopObserver) Matched(string)                          {}
func (nopObserver) Skipped(string, string)                  {}
func (nopObserver) FinderName(string, string)               {}
func (nopObserver) Committed(string, int)                   {}
func (nopObserver) Paused(store.Pause, bool)                {}
func (nopObserver) Withheld(string, string, []rules.Action) {}

// Result is what one Poll found.
type Result struct {
	// Messages is the number of items on the page, Fresh of messages not
	// seen before, Actions of the actions they produced, Skipped of items
	// that could not be processed.
	Messages, Fresh, Actions, Skipped int
}

// Poll fetches the next page with the given login and commits it. On any
// error the cursor stays where it was, nothing is recorded, and the page
// is fetched again by the next Poll.
func (p *Poller) Poll(ctx context.Context, token, wID string) (Result, error) {
	page, start, err := p.Fetch(ctx, token, wID)
	if err != nil {
		return Result{}, err
	}
	return p.Commit(ctx, page, start)
}

// Fetch fetches the page after the cursor and returns it with the time the
// call began; Commit commits it. Poll is the two in a row; nothing else may
// run on the poller between them.
func (p *Poller) Fetch(ctx context.Context, token, wID string) (*upstream.Page, time.Time, error) {
	if !p.loaded {
		cursor, err := p.deps.Store.Cursor(ctx, p.account)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("poller: %s: read the cursor: %w", p.account, err)
		}
		p.cursor, p.loaded = cursor, true
	}
	start := p.deps.Now()
	page, err := p.deps.Syncer.SyncFinder(ctx, token, wID, p.cursor)
	return page, start, err
}

// Commit processes a page whose fetch began at start and commits it.
func (p *Poller) Commit(ctx context.Context, page *upstream.Page, start time.Time) (Result, error) {
	received := p.deps.Now()
	res := Result{Messages: len(page.Messages) + len(page.Skipped)}
	commit := store.Commit{Account: p.account, KeyBuff: page.KeyBuff}
	for _, s := range page.Skipped {
		commit.Skipped = append(commit.Skipped, p.skip(s.Index, s.Reason, s.Raw, start))
	}
	// One message per id: a page may repeat an item, which is one message.
	msgs := make([]*sdk.Message, 0, len(page.Messages))
	ids := make([]uint64, 0, len(page.Messages))
	inPage := make(map[uint64]bool, len(page.Messages))
	for i := range page.Messages {
		m := &page.Messages[i]
		if m.ID == 0 {
			commit.Skipped = append(commit.Skipped, p.skip(i, "NewMsgId is missing", "", start))
			continue
		}
		if inPage[m.ID] {
			continue
		}
		inPage[m.ID] = true
		msgs = append(msgs, m)
		ids = append(ids, m.ID)
	}
	res.Skipped = len(commit.Skipped)
	if len(msgs) == 0 && len(commit.Skipped) == 0 {
		if page.KeyBuff != p.cursor {
			if _, err := p.deps.Store.CommitPage(ctx, commit); err != nil {
				return Result{}, err
			}
			p.cursor = page.KeyBuff
		}
		if len(page.Messages) == 0 {
			p.deps.Sink.CaughtUp(p.account, start)
		}
		return res, nil
	}
	unseen, err := p.deps.Store.Unseen(ctx, p.account, ids)
	if err != nil {
		return Result{}, fmt.Errorf("poller: %s: %w", p.account, err)
	}
	fresh := make(map[uint64]bool, len(unseen))
	for _, id := range unseen {
		fresh[id] = true
	}
	commit.MsgIDs = unseen
	human, err := p.persons(ctx, msgs, fresh)
	if err != nil {
		return Result{}, err
	}
	pauses := map[string]store.Pause{} // this page's, by conversation
	set := p.deps.Rules()
	cd := p.deps.Cooldowns.Begin() // a nil Cooldowns gives a transaction of its own
	now := p.deps.Now()
	var acts []rules.Action
	incoming := 0
	for _, m := range msgs {
		if !fresh[m.ID] {
			continue
		}
		m.Account = p.account
		if !m.FromSelf {
			incoming++
		}
		if m.FromSelf {
			commit.Echoes = append(commit.Echoes, echoOf(m))
		} else if strings.HasSuffix(m.To, "@finder") {
			p.deps.Observer.FinderName(p.account, m.To)
		}
		if m.ParseError != "" {
			p.deps.Log.Debug("message content did not parse", "account", p.account, "msg_id", m.ID, "err", m.ParseError)
		}
		p.deps.Observer.Synced(p.account, m.Type)
		conv := outbox.Conversation(m)
		if m.FromSelf && m.Session == "" {
			conv = m.To // the other party
		}
		paused, ok := pauses[conv]
		if !ok {
			paused, ok = p.deps.Handoff.Paused(p.account, conv, now)
		}
		if human[m.ID] {
			if np, started := p.deps.Handoff.Next(paused, p.account, conv, m.ID, m.Time, now); started {
				pauses[conv], paused, ok = np, np, true
			}
		}
		var cs rules.Conversation
		if ok && paused.Until.After(now) {
			cs = rules.Conversation{Paused: true, PausedUntil: paused.Until}
		}
		acts = set.MatchIn(acts[:0], m, cs, p.account, now, cd)
		for _, a := range acts {
			p.deps.Observer.Matched(a.Rule)
		}
		if cs.Paused {
			acts = p.withhold(acts, conv)
		}
		items := outbox.Items(acts, p.account, m)
		commit.Items = append(commit.Items, items...)
		commit.Log = append(commit.Log, logEntry(m, acts, items))
	}
	for _, mk := range cd.Marks() {
		commit.Cooldowns = append(commit.Cooldowns, store.CooldownMark{Rule: mk.Rule, Conv: mk.Conv, Fired: mk.Fired, Until: mk.Until})
	}
	for _, ps := range pauses {
		commit.Pauses = append(commit.Pauses, ps)
	}
	out, err := p.deps.Store.CommitPage(ctx, commit)
	if err != nil {
		return Result{}, err
	}
	cd.Commit()
	p.cursor = page.KeyBuff
	for i := range out.Items {
		out.Items[i].Received = received
	}
	for _, s := range commit.Skipped {
		p.deps.Observer.Skipped(p.account, s.Reason)
		p.deps.Log.Warn("page item skipped", "account", p.account, "index", s.Index, "reason", s.Reason, "item", s.Raw)
	}
	for _, ps := range commit.Pauses {
		_, extended := p.deps.Handoff.Paused(p.account, ps.Conv, now)
		p.deps.Observer.Paused(ps, extended)
	}
	p.deps.Handoff.Apply(commit.Pauses)
	p.deps.Sink.Settled(p.account, out.Settled)
	p.deps.Sink.Add(out.Items)
	p.deps.Observer.Committed(p.account, incoming)
	res.Fresh, res.Actions = len(unseen), len(out.Items)
	return res, nil
}

// persons returns the ids of the page's fresh own messages that a person
// wrote, not finderbot: those no send of its accounts for. Judged before
// the rules run, so that the messages after a person's on the same page
// already find the conversation paused. The store's outbox may move
// between this read and the page's commit, but never so as to change the
// verdict: an echo can only be of a reply whose attempt was recorded
// before the page was fetched, and the outcomes recorded since (accepted,
// in doubt) still account for it.
func (p *Poller) persons(ctx context.Context, msgs []*sdk.Message, fresh map[uint64]bool) (map[uint64]bool, error) {
	if p.deps.Handoff == nil {
		return nil, nil
	}
	var own []*sdk.Message
	var echoes []store.Echo
	for _, m := range msgs {
		if fresh[m.ID] && m.FromSelf {
			own = append(own, m)
			echoes = append(echoes, echoOf(m))
		}
	}
	if len(echoes) == 0 {
		return nil, nil
	}
	foreign, err := p.deps.Store.Foreign(ctx, p.account, echoes)
	if err != nil {
		return nil, fmt.Errorf("poller: %s: %w", p.account, err)
	}
	out := make(map[uint64]bool, len(foreign))
	for _, i := range foreign {
		out[own[i].ID] = true
	}
	return out, nil
}

// echoOf is an own message as an echo that may settle a reply.
func echoOf(m *sdk.Message) store.Echo {
	return store.Echo{ID: m.ID, From: m.From, To: m.To, Session: m.Session, Text: m.Content, Image: m.Type == sdk.TypeImage, Time: m.Time}
}

// withhold takes out of acts those that would act in conversation conv,
// paused because a person took it over: replies, image replies and plugin
// actions on the message. Sends to others stay.
func (p *Poller) withhold(acts []rules.Action, conv string) []rules.Action {
	keep := acts[:0]
	var held []rules.Action
	for _, a := range acts {
		if rules.PausedKeeps(a) {
			keep = append(keep, a)
			continue
		}
		held = append(held, a)
	}
	if len(held) > 0 {
		p.deps.Observer.Withheld(p.account, conv, held)
		p.deps.Log.Info("rule actions withheld: a person has this conversation", "account", p.account, "conversation", conv, "actions", len(held), "rule", held[0].Rule)
	}
	return keep
}

// logEntry is m for the account's conversation log: the rules that fired
// on it (acts) and the actions it queued (items). The store bounds its
// texts.
func logEntry(m *sdk.Message, acts []rules.Action, items []store.Item) store.LoggedMessage {
	e := store.LoggedMessage{ID: m.ID, Conversation: outbox.Conversation(m), From: m.From, To: m.To, Own: m.FromSelf,
		Type: m.Type, Text: m.Text, Time: m.Time}
	if m.FromSelf && m.Session == "" {
		e.Conversation = m.To // the other party
	}
	for _, a := range acts {
		if len(e.Rules) == 0 || e.Rules[len(e.Rules)-1] != a.Rule {
			e.Rules = append(e.Rules, a.Rule)
		}
	}
	for _, it := range items {
		la := store.LoggedAction{Rule: it.Rule, Kind: it.Kind, Text: it.Text}
		if it.Image != "" {
			la.Kind, la.Text = rules.KindReplyImage, it.Image
		}
		switch it.Kind {
		case store.KindSend:
			la.To = it.To
		case store.KindPlugin:
			la.Plugin = it.Plugin + "." + it.Action
		}
		e.Actions = append(e.Actions, la)
	}
	return e
}

// CooldownStore is where the cooldowns committed with pages are read back.
type CooldownStore interface {
	Cooldowns(ctx context.Context, now time.Time) ([]store.CooldownMark, error)
}

// RestoreCooldowns brings the cooldowns committed with earlier pages that
// still run at now back into cd, as a start must before the first page.
func RestoreCooldowns(ctx context.Context, st CooldownStore, cd *rules.Cooldowns, now time.Time) error {
	marks, err := st.Cooldowns(ctx, now)
	if err != nil {
		return err
	}
	rm := make([]rules.CooldownMark, len(marks))
	for i, m := range marks {
		rm[i] = rules.CooldownMark{Rule: m.Rule, Conv: m.Conv, Fired: m.Fired, Until: m.Until}
	}
	cd.Restore(rm)
	return nil
}

// skip describes a page item that cannot be processed.
func (p *Poller) skip(index int, reason, raw string, at time.Time) store.InboundDeadLetter {
	const maxRaw = 1 << 10
	return store.InboundDeadLetter{Account: p.account, Index: index, Reason: reason, Raw: sdk.CutText(raw, maxRaw), At: at}
}
