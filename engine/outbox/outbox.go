package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
)

// Store is what the outbox needs of the store.
type Store interface {
	// Pending returns every item in the outbox, in ID order.
	Pending(ctx context.Context) ([]store.Item, error)
	// Record applies delivery-state changes in one transaction.
	Record(ctx context.Context, c store.Changes) (store.Recorded, error)
}

// Sender is what the outbox needs of the upstream.
type Sender interface {
	PrivateSend(ctx context.Context, token string, req upstream.PrivateSendRequest) (*upstream.Sent, error)
	GetSessionID(ctx context.Context, token string, req upstream.SessionIDRequest) (string, error)
	SendText(ctx context.Context, token string, req upstream.SendTextRequest) (*upstream.Sent, error)
}

var _ Sender = (*upstream.Client)(nil)

// ImageSender is what the outbox needs of the upstream for image replies;
// a Sender without it refuses them.
type ImageSender interface {
	PrivateSendImg(ctx context.Context, token string, req upstream.PrivateSendImgRequest) (*upstream.Sent, error)
}

var _ ImageSender = (*upstream.Client)(nil)

// PluginCaller performs a plugin action and returns the actions its answer
// asks for (replies and sends), addressed and ready for the outbox. An error
// wrapped with Permanent sends the action to the dead letters at once.
type PluginCaller func(ctx context.Context, it store.Item) ([]store.Item, error)

// Instance is an account's current login: what a send is made with.
type Instance struct {
	Token, WID string
	// Gen tells logins apart, so that a stale report does not end a newer
	// one.
	Gen uint64
}

// Sessions gives the outbox each account's login.
type Sessions interface {
	// Wait returns the account's current instance, waiting while it logs
	// in. An error other than ctx's sends the action to the dead letters.
	Wait(ctx context.Context, account string) (Instance, error)
	// ReportOffline says the upstream refused inst as offline.
	ReportOffline(account string, inst Instance)
	// ReportUnauthorized says the upstream refused inst's token.
	ReportUnauthorized(account string, inst Instance)
}

// Observer receives the outbox's figures, for metrics. Its methods must be
// cheap and safe for concurrent use.
type Observer interface {
	// Depth adds delta to the number of queued actions.
	Depth(delta int)
	// Result counts an outcome: "sent", "retried", "in_doubt", "resent",
	// "dead", "fenced".
	Result(kind, result string)
	// HandOff is the time from a page's arrival to the hand-off of an
	// action it caused.
	HandOff(d time.Duration)
	// Delivered reports an action of the account performed, once: a
	// reply or a send the upstream accepted (a reply in doubt when its
	// echo proves it), a plugin action its plugin answered.
	Delivered(account, kind string)
	// Dead reports an action given up on, with its reason, once the
	// dead letter is written (with the account's next write).
	Dead(d store.DeadLetter)
}

// Config is the outbox's policy.
type Config struct {
	// MaxAttempts is how many failed attempts an action gets before it
	// goes to the dead letters.
	MaxAttempts int
	// RetryBackoff is the pause after the first failure, doubling up to
	// MaxRetryBackoff.
	RetryBackoff, MaxRetryBackoff time.Duration
	// Doubt is how long after an attempt began the upstream may still
	// accept it: its call timeout. A reply in doubt is sent again only
	// once a sync that began later than that found no echo.
	Doubt time.Duration
	// PluginCalls is how many plugin actions of one account may be in
	// flight at once, each in a conversation of its own, while the
	// account's other conversations go on; 0 calls them one at a time
	// on the account's worker (the deterministic simulation's way). A
	// slow plugin (a language model) then holds up only its own
	// conversations.
	PluginCalls int
}

// Deps are the outbox's collaborators. Store, Sender and Sessions are
// required.
type Deps struct {
	Store    Store
	Sender   Sender
	Sessions Sessions
	// Plugins performs plugin actions; nil sends them to the dead letters.
	Plugins PluginCaller
	// Pace returns how long the account must wait before its next send
	// (its rate limit and jitter), reserving that turn, and a function
	// that gives the turn back; nil means no wait.
	Pace func(account string) (time.Duration, func())
	// Now is the clock (default time.Now); Sleep waits on it (default a
	// timer), returning false when ctx ends first.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) bool
	// Rand returns a random duration in [0, d], for retry jitter (default
	// none: the full backoff).
	Rand func(d time.Duration) time.Duration
	// Paused tells whether a person took the conversation over, and until
	// when (engine/handoff); nil for never. The actions queued in a
	// paused conversation wait for the pause to end, or are dropped with
	// DropPaused; those already attempted are settled as ever.
	Paused     func(account, conv string, now time.Time) (until time.Time, ok bool)
	DropPaused bool
	// Log receives the outbox's log (default: discard).
	Log *slog.Logger
	// Observer receives figures; nil for none.
	Observer Observer
	// Fence, when set, is asked right before each reply or send is handed
	// to the upstream whether this daemon still holds the account; when it
	// answers an error the action is not handed over and stays as the
	// store has it, for the account's holder to perform. Several daemons
	// sharing accounts set it; one alone needs none.
	Fence func(account string) error
}

// Permanent marks an error that retrying cannot fix.
func Permanent(err error) error { return permanent{err} }

type permanent struct{ err error }

func (e permanent) Error() string { return e.err.Error() }
func (e permanent) Unwrap() error { return e.err }

// notSent marks a failure before the action was handed to the upstream.
type notSent struct{ err error }

func (e notSent) Error() string { return e.err.Error() }
func (e notSent) Unwrap() error { return e.err }

// Outbox performs outbox items. Step is one attempt of one account and is
// all the deterministic simulation drives; Start runs a worker per account
// with work on top of it.
type Outbox struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	mu       sync.Mutex
	accounts map[string]*queue
	ctx      context.Context // set by Start: workers run while it lasts
	stopped  bool
	wg       sync.WaitGroup
}

// queue is one account's items, by conversation.
type queue struct {
	account string
	convs   map[string][]*entry
	order   []string // conversations, round-robin
	depth   int
	doubts  int
	running bool // a worker serves the queue
	dropped bool // the account passed to another daemon
	wake    chan struct{}
	// stopped, when set, is closed as the worker stops (Drop).
	stopped chan struct{}

	// caughtUp is when the latest sync that read everything began.
	caughtUp time.Time
	// pending are outcomes not yet written: they go with the next begin.
	pending store.Changes
	// announce tell of pending's dead letters (a log line, the observer),
	// run once the write that holds them succeeded: whoever hears of a
	// dead letter finds it in the store.
	announce []func()
	// delivered are replies accepted with a newMsgId whose echo has not
	// come, kept in the store so the echo is credited to them alone; they
	// are dropped once the sync has caught up well past their delivery.
	delivered []delivered

	// inflight are the items being attempted, true once their echo
	// arrived during the attempt.
	inflight map[uint64]bool
	// calling are the conversations whose head is a plugin action in
	// flight off the worker (Config.PluginCalls); calls counts them.
	calling map[string]bool
	calls   int
}

// attempting marks item id as being attempted, its echo not yet arrived.
// The caller holds o.mu.
func (q *queue) attempting(id uint64) {
	if q.inflight == nil {
		q.inflight = map[uint64]bool{}
	}
	q.inflight[id] = false
}

type delivered struct {
	id uint64
	at time.Time
}

// entry is a queued item; doubt marks the head of a conversation waiting to
// learn whether its attempt was accepted, which began at sentBy at the
// latest.
type entry struct {
	it     store.Item
	doubt  bool
	sentBy time.Time
}

// New returns an outbox; nothing runs until Recover and Start.
func New(cfg Config, deps Deps) *Outbox {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 2 * time.Second
	}
	if cfg.MaxRetryBackoff < cfg.RetryBackoff {
		cfg.MaxRetryBackoff = max(cfg.RetryBackoff, 5*time.Minute)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Sleep == nil {
		deps.Sleep = sleep
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Observer == nil {
		deps.Observer = nopObserver{}
	}
	return &Outbox{cfg: cfg, deps: deps, log: deps.Log, accounts: map[string]*queue{}}
}

type nopObserver struct{}

func (nopObserver) Depth(int)                {}
func (nopObserver) Result(string, string)    {}
func (nopObserver) HandOff(time.Duration)    {}
func (nopObserver) Delivered(string, string) {}
func (nopObserver) Dead(store.DeadLetter)    {}

// sent counts an action performed.
func (o *Outbox) sent(it *store.Item) {
	o.deps.Observer.Result(it.Kind, "sent")
	o.deps.Observer.Delivered(it.Account, it.Kind)
}

// Recover loads the outbox a previous run left in the store. Items that may
// have reached the upstream (attempting, in doubt) are in doubt: replies
// wait for their echo, or for the sync to catch up past this restart plus
// Config.Doubt (the previous run may have handed them over until it
// ended); sends go to the dead letters marked in doubt; plugin actions are
// called again with the same idempotency key. Delivered replies stay in
// the store until their echo arrives.
func (o *Outbox) Recover(ctx context.Context) error {
	return o.recover(ctx, func(string) bool { return true })
}

// RecoverAccount loads the account's items left in st (the account's part
// of the store), as Recover does for all, once this daemon took the account
// over from another: what that daemon may have handed to the upstream is
// in doubt.
func (o *Outbox) RecoverAccount(ctx context.Context, account string, st Store) error {
	o.Drop(account)
	return o.recoverFrom(ctx, st, func(a string) bool { return a == account })
}

// Drop forgets the account's queue, once another daemon holds the account:
// its items stay in the store as they are, for the holder to perform. An
// attempt in flight ends at the fence. The channel returned is closed once
// the account's worker stopped, and with it any call it had under way at
// the upstream: a daemon handing the account over waits for it, so that
// none of its sends reaches the upstream after the next holder took over.
func (o *Outbox) Drop(account string) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	stopped := make(chan struct{})
	q := o.accounts[account]
	if q == nil {
		close(stopped)
		return stopped
	}
	if q.running {
		q.stopped = stopped
	} else {
		close(stopped)
	}
	delete(o.accounts, account)
	q.dropped = true
	o.deps.Observer.Depth(-q.depth)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return stopped
}

func (o *Outbox) recover(ctx context.Context, mine func(account string) bool) error {
	return o.recoverFrom(ctx, o.deps.Store, mine)
}

func (o *Outbox) recoverFrom(ctx context.Context, st Store, mine func(account string) bool) error {
	all, err := st.Pending(ctx)
	if err != nil {
		return fmt.Errorf("outbox: recover: %w", err)
	}
	items := all[:0]
	for _, it := range all {
		if mine(it.Account) {
			items = append(items, it)
		}
	}
	var dead []store.DeadLetter
	var queued []*entry
	now := o.deps.Now()
	o.mu.Lock()
	for _, it := range items {
		switch {
		case it.State == store.StateDelivered:
			q := o.queue(it.Account)
			q.delivered = append(q.delivered, delivered{id: it.ID, at: it.DeliveredAt})
		case it.State.Attempted() && it.Kind == store.KindSend:
			dead = append(dead, store.DeadLetter{Item: it, At: now, InDoubt: true,
				Reason: "in doubt: the daemon stopped during the attempt, and a /sendText leaves no echo to tell whether the upstream accepted it; retry it only if the receiver did not get it"})
		case it.State.Attempted() && it.Kind == store.KindReply:
			// An attempt recorded as begun may have been handed over any
			// time before the previous run ended, which was before now:
			// the upstream may accept it until now plus Config.Doubt.
			// (AttemptAt stays the earliest it can have begun, which
			// bounds its echo's time.)
			it.State = store.StateInDoubt
			queued = append(queued, &entry{it: it, doubt: true, sentBy: later(it.AttemptAt, now)})
		default:
			if it.Kind == store.KindPlugin {
				it.State = store.StateQueued // called again, same idempotency key
			}
			queued = append(queued, &entry{it: it})
		}
	}
	o.mu.Unlock()
	if len(dead) > 0 {
		if _, err := st.Record(ctx, store.Changes{Dead: dead}); err != nil {
			return fmt.Errorf("outbox: recover: %w", err)
		}
		for _, d := range dead {
			o.log.Warn("send in doubt after a restart; moved to the dead letters", "account", d.Item.Account, "item", d.Item.ID)
			o.deps.Observer.Result(d.Item.Kind, "dead")
			o.deps.Observer.Dead(d)
		}
	}
	o.addEntries(queued)
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Add queues items already committed to the store's outbox.
func (o *Outbox) Add(items []store.Item) {
	es := make([]*entry, len(items))
	for i := range items {
		es[i] = &entry{it: items[i]}
	}
	o.addEntries(es)
}

func (o *Outbox) addEntries(es []*entry) {
	if len(es) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range es {
		q := o.queue(e.it.Account)
		conv := e.it.Conversation
		if _, ok := q.convs[conv]; !ok {
			q.order = append(q.order, conv)
		}
		if q.convs == nil {
			q.convs = map[string][]*entry{}
		}
		q.convs[conv] = append(q.convs[conv], e)
		q.depth++
		if e.doubt {
			q.doubts++
		}
		o.wakeLocked(q)
	}
	o.deps.Observer.Depth(len(es))
}

// queue returns the account's queue, creating it. The caller holds o.mu.
func (o *Outbox) queue(account string) *queue {
	q := o.accounts[account]
	if q == nil {
		// Its maps are made when first written, and dropped once empty:
		// the queue of an idle account holds nothing.
		q = &queue{account: account, wake: make(chan struct{}, 1)}
		o.accounts[account] = q
	}
	return q
}

// wakeLocked nudges the account's worker, starting one when the outbox runs
// and none serves the account. The caller holds o.mu.
func (o *Outbox) wakeLocked(q *queue) {
	select {
	case q.wake <- struct{}{}:
	default:
	}
	if !q.running && o.ctx != nil && !o.stopped {
		q.running = true
		o.wg.Add(1)
		go o.work(q)
	}
}

// forgetIfIdleLocked drops the queue of an account with nothing queued,
// pending or awaiting its echo, and no worker: idle accounts cost nothing
// here. One with delivered replies awaiting their echo keeps its queue (but
// no worker) until their echo or CaughtUp drops them. The caller holds
// o.mu.
func (o *Outbox) forgetIfIdleLocked(q *queue) {
	if !q.running && q.calls == 0 && len(q.order) == 0 && q.pending.Empty() && len(q.delivered) == 0 && o.accounts[q.account] == q {
		delete(o.accounts, q.account)
	}
}

// Settled takes the replies a committed page's echoes proved delivered out
// of the queue: the store already removed them with the page. An attempt in
// flight for one of them counts as delivered, whatever its answer says.
func (o *Outbox) Settled(account string, ids []uint64) {
	if len(ids) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.accounts[account]
	if q == nil {
		return
	}
	defer o.forgetIfIdleLocked(q)
	for _, id := range ids {
		q.delivered = slices.DeleteFunc(q.delivered, func(d delivered) bool { return d.id == id })
		q.pending.Put = slices.DeleteFunc(q.pending.Put, func(it store.Item) bool { return it.ID == id })
		if _, ok := q.inflight[id]; ok {
			q.inflight[id] = true
			continue
		}
	find:
		for conv, es := range q.convs {
			for i, e := range es {
				if e.it.ID != id {
					continue
				}
				// Settled replies are a prefix of their conversation's
				// attempts, so this is the head; a later one is taken out
				// all the same.
				o.removeLocked(q, conv, i)
				o.sent(&e.it)
				o.log.Info("reply confirmed delivered by its echo", "account", account, "item", id)
				// The replies its doubt held back are due now; nothing
				// else would wake the worker for them.
				o.wakeLocked(q)
				break find
			}
		}
	}
}

// CaughtUp tells the outbox that a sync of the account which began at start
// read everything the upstream had. Replies in doubt whose attempt began
// more than Config.Doubt before start, and whose echo has not come, were
// not accepted: they may go again.
func (o *Outbox) CaughtUp(account string, start time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.accounts[account]
	if q == nil || !start.After(q.caughtUp) {
		return
	}
	q.caughtUp = start
	// Delivered replies whose echo should long have come: keeping them
	// would only grow the store.
	keep := q.delivered[:0]
	for _, d := range q.delivered {
		if start.After(d.at.Add(o.cfg.Doubt)) {
			q.pending.Remove = append(q.pending.Remove, d.id)
			continue
		}
		keep = append(keep, d)
	}
	q.delivered = keep
	if q.doubts > 0 || len(q.pending.Remove) > 0 {
		o.wakeLocked(q)
	}
}

// Depth returns the number of actions queued for the account, and how
// many of them are in doubt.
func (o *Outbox) Depth(account string) (queued, inDoubt int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if q := o.accounts[account]; q != nil {
		return q.depth, q.doubts
	}
	return 0, 0
}

// Backlog is what an account has queued, and how much of it is in doubt.
type Backlog struct{ Queued, InDoubt int }

// Backlogs returns Depth of each of accounts, read at one moment under one
// lock: a page listing ten thousand accounts must not take the lock the
// workers need ten thousand times.
func (o *Outbox) Backlogs(accounts []string) []Backlog {
	out := make([]Backlog, len(accounts))
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, a := range accounts {
		if q := o.accounts[a]; q != nil {
			out[i] = Backlog{q.depth, q.doubts}
		}
	}
	return out
}

// popLocked removes e, the head of conv. The caller holds o.mu.
func (o *Outbox) popLocked(q *queue, conv string, e *entry) {
	if es := q.convs[conv]; len(es) > 0 && es[0] == e {
		o.removeLocked(q, conv, 0)
	}
}

// removeLocked removes the i-th entry of conv. The caller holds o.mu.
func (o *Outbox) removeLocked(q *queue, conv string, i int) {
	es := q.convs[conv]
	e := es[i]
	if len(es) == 1 {
		delete(q.convs, conv)
		if j := slices.Index(q.order, conv); j >= 0 {
			q.order = slices.Delete(q.order, j, j+1)
		}
		if len(q.convs) == 0 {
			// The account has nothing queued: what the map and the order
			// grew to for a burst goes.
			q.convs, q.order = nil, nil
		}
	} else if i == 0 {
		es[0] = nil
		q.convs[conv] = es[1:]
	} else {
		q.convs[conv] = slices.Delete(es, i, i+1)
	}
	q.depth--
	if e.doubt {
		q.doubts--
		e.doubt = false
	}
	o.deps.Observer.Depth(-1)
}

// next picks the head of the next conversation that is due, round-robin,
// and marks it in flight. Otherwise it returns the time to wait (-1: until
// woken).
func (o *Outbox) next(q *queue, now time.Time) (*entry, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	wait := time.Duration(-1)
	if o.deps.Paused != nil && o.deps.DropPaused {
		o.dropPausedLocked(q, now)
	}
	for i, conv := range q.order {
		e := q.convs[conv][0]
		if q.calling[conv] || (e.it.Kind == store.KindPlugin && o.cfg.PluginCalls > 0 && q.calls >= o.cfg.PluginCalls) {
			continue // its plugin call, or the account's share of calls, is under way
		}
		due := e.it.NextAt
		if e.doubt {
			// Waiting for its echo, or for a sync that began after its
			// attempt could still be accepted and found nothing.
			if !q.caughtUp.After(e.sentBy.Add(o.cfg.Doubt)) {
				continue
			}
			due = time.Time{}
		}
		if o.deps.Paused != nil {
			if until, ok := o.deps.Paused(q.account, conv, now); ok {
				// Held until the pause ends (or is resumed, which wakes
				// the worker).
				if w := until.Sub(now); wait < 0 || w < wait {
					wait = w
				}
				continue
			}
		}
		if !due.After(now) {
			q.order = append(append(q.order[:i:i], q.order[i+1:]...), conv)
			q.attempting(e.it.ID)
			return e, 0
		}
		if w := due.Sub(now); wait < 0 || w < wait {
			wait = w
		}
	}
	return nil, wait
}

// dropPausedLocked removes the queued actions of the account's paused
// conversations; those in doubt stay, to be settled. The caller holds
// o.mu.
func (o *Outbox) dropPausedLocked(q *queue, now time.Time) {
	for _, conv := range slices.Clone(q.order) {
		if _, ok := o.deps.Paused(q.account, conv, now); !ok {
			continue
		}
		for i := 0; i < len(q.convs[conv]); {
			e := q.convs[conv][i]
			if e.doubt && !q.caughtUp.After(e.sentBy.Add(o.cfg.Doubt)) {
				i++ // it may have gone out: its echo, or its absence, decides
				continue
			}
			q.pending.Remove = append(q.pending.Remove, e.it.ID)
			o.log.Info("action dropped: a person took over its conversation", "account", q.account, "item", e.it.ID,
				"kind", e.it.Kind, "rule", e.it.Rule, "conversation", conv)
			o.deps.Observer.Result(e.it.Kind, "dropped")
			o.removeLocked(q, conv, i)
			if _, left := q.convs[conv]; !left {
				break
			}
		}
	}
}

// Wake has the account's worker look at its queue again: a pause ended or
// began.
func (o *Outbox) Wake(account string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if q := o.accounts[account]; q != nil {
		o.wakeLocked(q)
	}
}

// maxBatch bounds how many replies one write begins: with the pace lifted,
// an account then pays one fsync for many sends instead of one each.
const maxBatch = 100

// more picks further due replies to begin with first in the same write —
// the ones queued behind it in its conversation, then those of other
// conversations — as far as the account's pace allows at once. It marks
// them in flight. Replies of one conversation are still handed over one at
// a time, each only once the one before it was accepted.
func (o *Outbox) more(q *queue, first *entry, now time.Time) []*entry {
	batch := []*entry{first}
	if first.it.Kind != store.KindReply {
		return batch
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	take := func(e *entry) bool {
		if len(batch) == maxBatch || e.doubt || e.it.Kind != store.KindReply || e.it.NextAt.After(now) {
			return false
		}
		if _, busy := q.inflight[e.it.ID]; busy {
			return false
		}
		if o.deps.Paused != nil {
			if _, paused := o.deps.Paused(q.account, e.it.Conversation, now); paused {
				return false
			}
		}
		if o.deps.Pace != nil {
			if wait, cancel := o.deps.Pace(q.account); wait > 0 {
				cancel()
				return false
			}
		}
		q.attempting(e.it.ID)
		batch = append(batch, e)
		return true
	}
	for _, conv := range q.order {
		es := q.convs[conv]
		i := 0
		if es[0] == first {
			i = 1
		}
		for ; i < len(es) && take(es[i]); i++ {
		}
	}
	return batch
}

// Step makes one attempt at the account's next due action. It returns how
// long to wait before the next Step (-1: until new work or a caught-up sync
// arrives) and false when the account has nothing left, its outcomes all
// written.
func (o *Outbox) Step(ctx context.Context, account string) (time.Duration, bool) {
	o.mu.Lock()
	q := o.accounts[account]
	o.mu.Unlock()
	if q == nil {
		return -1, false
	}
	e, wait := o.next(q, o.deps.Now())
	if e == nil {
		if err := o.flush(ctx, q); err != nil {
			return o.cfg.RetryBackoff, true
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if len(q.order) == 0 && q.pending.Empty() {
			return -1, false
		}
		return wait, true
	}
	defer func() {
		o.mu.Lock()
		q.inflight = nil
		o.mu.Unlock()
	}()
	if e.it.Kind == store.KindPlugin {
		if o.cfg.PluginCalls > 0 {
			o.callPluginAside(ctx, q, e)
			return 0, true
		}
		return o.callPlugin(ctx, q, e), true
	}
	return o.send(ctx, q, e), true
}

// flush writes the outcomes waiting to be written.
func (o *Outbox) flush(ctx context.Context, q *queue) error {
	c, notes := o.take(q)
	if c.Empty() {
		return nil
	}
	if _, err := o.deps.Store.Record(ctx, c); err != nil {
		o.restore(q, c, notes)
		o.log.Error("cannot record delivery outcomes; will try again", "account", q.account, "err", err)
		return err
	}
	runAll(notes)
	return nil
}

// take hands over the outcomes waiting to be written, with what is to be
// announced once they are.
func (o *Outbox) take(q *queue) (store.Changes, []func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, notes := q.pending, q.announce
	q.pending, q.announce = store.Changes{}, nil
	return c, notes
}

func runAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}

// restore puts back changes that could not be written, ahead of newer
// ones.
func (o *Outbox) restore(q *queue, c store.Changes, notes []func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	q.announce = append(notes, q.announce...)
	q.pending = store.Changes{
		Put:    append(c.Put, q.pending.Put...),
		Remove: append(c.Remove, q.pending.Remove...),
		Dead:   append(c.Dead, q.pending.Dead...),
	}
}

// begin records the attempts of batch, with the outcomes waiting to be
// written, before anything is handed to the upstream, and returns the
// entries to attempt: none when the write failed; without those gone
// meanwhile (their echo settled them).
func (o *Outbox) begin(ctx context.Context, q *queue, batch []*entry) []*entry {
	if ctx.Err() != nil {
		return nil
	}
	now := o.deps.Now()
	c, notes := o.take(q)
	n := len(c.Put)
	for _, e := range batch {
		it := e.it
		it.State, it.AttemptAt = store.StateAttempting, now
		c.Put = append(c.Put, it)
	}
	res, err := o.deps.Store.Record(ctx, c)
	if err != nil {
		c.Put = c.Put[:n]
		o.restore(q, c, notes)
		o.log.Error("cannot record the start of an attempt; the action waits", "account", q.account, "item", batch[0].it.ID, "err", err)
		o.mu.Lock()
		for _, e := range batch {
			e.it.NextAt = now.Add(o.cfg.RetryBackoff)
		}
		o.mu.Unlock()
		return nil
	}
	runAll(notes)
	out := batch[:0]
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, e := range batch {
		if slices.Contains(res.Missing, e.it.ID) {
			o.popLocked(q, e.it.Conversation, e)
			continue
		}
		e.it = c.Put[n+i]
		if e.doubt {
			e.doubt = false
			q.doubts--
		}
		out = append(out, e)
	}
	return out
}

// send makes one attempt at a reply or a send, and at further replies due
// in other conversations that the same write can begin.
func (o *Outbox) send(ctx context.Context, q *queue, e *entry) time.Duration {
	log := o.itemLog(q, &e.it)
	if e.doubt {
		if e.it.Attempts >= o.cfg.MaxAttempts {
			reason := fmt.Sprintf("gave up after %d attempts: the last one was in doubt and its echo never came", e.it.Attempts)
			o.bury(q, e, store.DeadLetter{Item: e.it, At: o.deps.Now(), Reason: reason}, func() {
				log.Error("reply in doubt was never echoed; moved to the dead letters", "attempts", e.it.Attempts)
			})
			return 0
		}
		log.Warn("reply in doubt was not echoed; sending it again", "attempt_at", e.it.AttemptAt)
		o.deps.Observer.Result(e.it.Kind, "resent")
	}
	inst, err := o.deps.Sessions.Wait(ctx, q.account)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		o.bury(q, e, store.DeadLetter{Item: e.it, At: o.deps.Now(), Reason: err.Error()}, func() {
			log.Error("action cannot be performed; moved to the dead letters", "err", err)
		})
		return 0
	}
	if o.deps.Pace != nil {
		if d, _ := o.deps.Pace(q.account); d > 0 {
			// Outcomes are written before a pause, not after it: a crash
			// during the pause must not find them unwritten.
			if o.flush(ctx, q) != nil && ctx.Err() != nil {
				return 0
			}
			if !o.deps.Sleep(ctx, d) {
				return 0
			}
		}
	}
	batch := o.begin(ctx, q, o.more(q, e, o.deps.Now()))
	var wait time.Duration
	stopped := false
	blocked := map[string]bool{} // conversations whose last attempt was not accepted
	for _, e := range batch {
		if stopped || blocked[e.it.Conversation] {
			// Recorded as attempting but never handed over: back to the
			// queue as it was.
			it := e.it
			it.State = store.StateQueued
			o.requeue(q, e, it)
			continue
		}
		var accepted bool
		wait, stopped, accepted = o.attempt(ctx, q, e, inst)
		if !accepted {
			blocked[e.it.Conversation] = true
		}
	}
	return wait
}

// attempt hands e to the upstream and records the outcome. It reports
// whether the rest of a batch must wait (the login or the token was
// refused, or the daemon is stopping) and whether the upstream accepted e.
func (o *Outbox) attempt(ctx context.Context, q *queue, e *entry, inst Instance) (wait time.Duration, stop, accepted bool) {
	if ctx.Err() != nil {
		return 0, true, false
	}
	log := o.itemLog(q, &e.it)
	now := o.deps.Now()
	if !e.it.Received.IsZero() {
		o.deps.Observer.HandOff(now.Sub(e.it.Received))
	}
	// The attempt was recorded when its batch began; it starts now, and
	// the upstream may accept it until now plus Config.Doubt. An outcome
	// in doubt is recorded with this time.
	if o.deps.Fence != nil {
		if err := o.deps.Fence(q.account); err != nil {
			// Recorded as attempting, never handed over: the holder finds
			// it in doubt and settles it by its echo, or sends it.
			log.Warn("not sent: this daemon cannot prove it still holds the account", "err", err)
			o.deps.Observer.Result(e.it.Kind, "fenced")
			return o.cfg.RetryBackoff, true, false
		}
	}
	o.mu.Lock()
	e.it.AttemptAt, e.sentBy = now, now
	o.mu.Unlock()
	sent, err := o.deliver(ctx, inst, e.it)
	o.mu.Lock()
	settled := q.inflight[e.it.ID]
	o.mu.Unlock()
	switch {
	case settled:
		// Its echo arrived while the answer was on its way: the page that
		// carried it already removed the item.
		o.mu.Lock()
		o.popLocked(q, e.it.Conversation, e)
		o.mu.Unlock()
		o.sent(&e.it)
		o.performed(log, &e.it)
	case err == nil:
		o.finish(q, e, func(c *store.Changes) {
			if e.it.Kind != store.KindReply {
				c.Remove = append(c.Remove, e.it.ID)
				return
			}
			it := e.it
			it.State, it.NewMsgID, it.DeliveredAt = store.StateDelivered, sent.NewMsgID, o.deps.Now()
			c.Put = append(c.Put, it)
			q.delivered = append(q.delivered, delivered{id: it.ID, at: it.DeliveredAt})
		})
		o.performed(log, &e.it)
	case upstream.Rejected(err) || errors.As(err, new(notSent)):
		wait := o.refused(ctx, q, e, inst, err, log)
		return wait, wait != 0 || ctx.Err() != nil, false
	case e.it.Kind == store.KindReply:
		it := e.it
		it.State = store.StateInDoubt
		it.Attempts++
		it.LastError = err.Error()
		o.mu.Lock()
		e.it, e.doubt = it, true
		q.doubts++
		q.pending.Put = append(q.pending.Put, it)
		o.mu.Unlock()
		o.deps.Observer.Result(it.Kind, "in_doubt")
		log.Warn("reply in doubt: the upstream may have accepted it; its echo decides", "err", err)
		return 0, ctx.Err() != nil, false
	default:
		o.bury(q, e, store.DeadLetter{Item: e.it, At: o.deps.Now(), InDoubt: true,
			Reason: "in doubt: " + err.Error() + "; a /sendText leaves no echo to tell whether the upstream accepted it; retry it only if the receiver did not get it"}, func() {
			log.Error("send in doubt; moved to the dead letters for the operator", "err", err)
		})
	}
	return 0, ctx.Err() != nil, true
}

// performed logs a reply or send the upstream accepted, naming the image
// of an image reply.
func (o *Outbox) performed(log *slog.Logger, it *store.Item) {
	if it.Image != "" {
		log.Info("action performed", "to", it.To, "conversation", it.Conversation, "image", it.Image)
		return
	}
	log.Info("action performed", "to", it.To, "conversation", it.Conversation)
}

// itemLog is the log of one item's delivery. Building its attributes costs
// an allocation per send, so a logger that writes nothing is used as is.
func (o *Outbox) itemLog(q *queue, it *store.Item) *slog.Logger {
	if !o.log.Enabled(context.Background(), slog.LevelError) {
		return o.log
	}
	return o.log.With("account", q.account, "item", it.ID, "kind", it.Kind, "rule", it.Rule)
}

// finish ends e's time in the queue as sent, with the changes record adds,
// written with the account's next write.
func (o *Outbox) finish(q *queue, e *entry, record func(*store.Changes)) {
	o.mu.Lock()
	record(&q.pending)
	o.popLocked(q, e.it.Conversation, e)
	o.mu.Unlock()
	o.sent(&e.it)
}

// bury ends e's time in the queue as dead letter d, written with the
// account's next write; tell (a log line) and the observer hear of it once
// that write succeeded, so that whoever acts on them finds it stored.
func (o *Outbox) bury(q *queue, e *entry, d store.DeadLetter, tell func()) {
	o.mu.Lock()
	q.pending.Dead = append(q.pending.Dead, d)
	q.announce = append(q.announce, func() {
		tell()
		o.deps.Observer.Dead(d)
	})
	o.popLocked(q, e.it.Conversation, e)
	o.mu.Unlock()
	o.deps.Observer.Result(e.it.Kind, "dead")
}

// refused handles an attempt the upstream proved it did not act on.
func (o *Outbox) refused(ctx context.Context, q *queue, e *entry, inst Instance, err error, log *slog.Logger) time.Duration {
	it := e.it
	it.State = store.StateQueued
	switch {
	case ctx.Err() != nil:
		o.requeue(q, e, it) // shutdown cut it short before it went out
		return 0
	case errors.Is(err, upstream.ErrOffline):
		// Not the action's fault: wait for the new login, without counting
		// an attempt.
		o.deps.Sessions.ReportOffline(q.account, inst)
		log.Warn("send refused: the instance is offline; waiting for the login", "err", err)
		o.requeue(q, e, it)
		return o.cfg.RetryBackoff
	case errors.Is(err, upstream.ErrUnauthorized):
		o.deps.Sessions.ReportUnauthorized(q.account, inst)
		log.Warn("send refused: the token was refused; waiting for a new one", "err", err)
		o.requeue(q, e, it)
		return o.cfg.RetryBackoff
	}
	o.retry(q, e, it, err, log)
	return 0
}

// requeue puts e back, in state it, without counting an attempt.
func (o *Outbox) requeue(q *queue, e *entry, it store.Item) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e.doubt {
		e.doubt = false
		q.doubts--
	}
	e.it = it
	q.pending.Put = append(q.pending.Put, it)
}

// retry counts a failed attempt and schedules the next, or gives up into
// the dead letters.
func (o *Outbox) retry(q *queue, e *entry, it store.Item, err error, log *slog.Logger) {
	it.Attempts++
	it.LastError = err.Error()
	var perm permanent
	if errors.As(err, &perm) || it.Attempts >= o.cfg.MaxAttempts {
		reason := err.Error()
		if !errors.As(err, &perm) {
			reason = fmt.Sprintf("gave up after %d attempts: %v", it.Attempts, err)
		}
		e.it = it
		o.bury(q, e, store.DeadLetter{Item: it, At: o.deps.Now(), Reason: reason}, func() {
			log.Error("action failed for good; moved to the dead letters", "attempts", it.Attempts, "err", err)
		})
		return
	}
	wait := o.backoff(it.Attempts)
	it.NextAt = o.deps.Now().Add(wait)
	log.Warn("action failed; will retry", "attempt", it.Attempts, "retry_in", wait.Round(time.Millisecond), "err", err)
	o.deps.Observer.Result(it.Kind, "retried")
	o.requeue(q, e, it)
}

// backoff is the pause after the n-th consecutive failure: exponential,
// with jitter in its upper half.
func (o *Outbox) backoff(n int) time.Duration {
	d := o.cfg.RetryBackoff
	for i := 1; i < n && d < o.cfg.MaxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, o.cfg.MaxRetryBackoff)
	if o.deps.Rand == nil {
		return d
	}
	return d/2 + o.deps.Rand(d/2)
}

// deliver hands a reply or a send to the upstream.
func (o *Outbox) deliver(ctx context.Context, inst Instance, it store.Item) (*upstream.Sent, error) {
	switch it.Kind {
	case store.KindReply:
		sessionID := it.Session
		if sessionID == "" {
			var err error
			sessionID, err = o.deps.Sender.GetSessionID(ctx, inst.Token, upstream.SessionIDRequest{WID: inst.WID, ToUserName: it.To, MyUserName: it.My})
			if err != nil {
				return nil, notSent{err}
			}
		}
		if it.Image != "" {
			is, ok := o.deps.Sender.(ImageSender)
			if !ok {
				return nil, notSent{Permanent(errors.New("the upstream client cannot send images"))}
			}
			return is.PrivateSendImg(ctx, inst.Token, upstream.PrivateSendImgRequest{
				WID: inst.WID, ToUserName: it.To, MyUserName: it.My, SessionID: sessionID, ImgURL: it.Image,
			})
		}
		return o.deps.Sender.PrivateSend(ctx, inst.Token, upstream.PrivateSendRequest{
			WID: inst.WID, ToUserName: it.To, MyUserName: it.My, SessionID: sessionID, Content: it.Text,
		})
	case store.KindSend:
		return o.deps.Sender.SendText(ctx, inst.Token, upstream.SendTextRequest{WID: inst.WID, WcID: it.To, Content: it.Text})
	}
	return nil, notSent{Permanent(fmt.Errorf("unknown action kind %q", it.Kind))}
}

// callPlugin performs a plugin action. Its answer's actions replace it in
// one transaction: a crash can neither lose them nor have the plugin called
// again for an answer already recorded.
func (o *Outbox) callPlugin(ctx context.Context, q *queue, e *entry) time.Duration {
	it := e.it
	log := o.itemLog(q, &it).With("plugin", it.Plugin)
	var follow []store.Item
	var err error
	if o.deps.Plugins == nil {
		err = Permanent(fmt.Errorf("plugin %s.%s: no plugins are configured", it.Plugin, it.Action))
	} else {
		follow, err = o.deps.Plugins(ctx, it)
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0 // called again after the restart
		}
		o.retry(q, e, it, err, log)
		return 0
	}
	c, notes := o.take(q)
	c.Remove = append(c.Remove, it.ID)
	c.Add = follow
	// The answer is recorded even when shutdown began meanwhile, or the
	// next start would call the plugin again.
	res, rerr := o.deps.Store.Record(context.WithoutCancel(ctx), c)
	if rerr != nil {
		c.Remove, c.Add = c.Remove[:len(c.Remove)-1], nil
		o.restore(q, c, notes)
		log.Error("cannot record a plugin's answer; the action will be performed again", "err", rerr)
		o.retry(q, e, it, rerr, log)
		return 0
	}
	runAll(notes)
	o.mu.Lock()
	o.popLocked(q, it.Conversation, e)
	o.mu.Unlock()
	o.sent(&it)
	log.Info("action performed", "answers", len(res.Added))
	o.Add(res.Added)
	return 0
}

// callPluginAside performs a plugin action on a goroutine of its own, its
// conversation held meanwhile, and wakes the account's worker when it is
// done. Close waits for it as for the workers.
func (o *Outbox) callPluginAside(ctx context.Context, q *queue, e *entry) {
	conv := e.it.Conversation
	o.mu.Lock()
	if q.calling == nil {
		q.calling = map[string]bool{}
	}
	q.calling[conv] = true
	q.calls++
	o.wg.Add(1)
	o.mu.Unlock()
	go func() {
		defer o.wg.Done()
		o.callPlugin(ctx, q, e)
		o.mu.Lock()
		delete(q.calling, conv)
		q.calls--
		o.wakeLocked(q)
		o.mu.Unlock()
	}()
}

// Start runs a worker for every account with work until ctx ends; Close
// waits for them.
func (o *Outbox) Start(ctx context.Context) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ctx = ctx
	for _, q := range o.accounts {
		o.wakeLocked(q)
	}
}

// Close waits for the workers to end (their ctx must be done) and writes
// the outcomes they left. Actions in flight stay in doubt; nothing else is
// lost.
func (o *Outbox) Close() {
	o.mu.Lock()
	o.stopped = true
	o.mu.Unlock()
	o.wg.Wait()
	o.mu.Lock()
	names := slices.Sorted(maps.Keys(o.accounts)) // a stable order, for the simulation
	qs := make([]*queue, len(names))
	for i, name := range names {
		qs[i] = o.accounts[name]
	}
	o.mu.Unlock()
	for _, q := range qs {
		o.flush(context.Background(), q)
	}
}

// work serves one account until it has nothing left or ctx ends.
func (o *Outbox) work(q *queue) {
	defer o.wg.Done()
	defer func() {
		o.mu.Lock()
		if q.stopped != nil {
			close(q.stopped)
			q.stopped = nil
		}
		o.mu.Unlock()
	}()
	ctx := o.ctx
	for {
		o.mu.Lock()
		if q.dropped {
			q.running = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		wait, ok := o.Step(ctx, q.account)
		if ctx.Err() != nil {
			return
		}
		if !ok {
			o.mu.Lock()
			// Work may have arrived between Step and here.
			if len(q.order) == 0 && q.pending.Empty() {
				q.running = false
				o.forgetIfIdleLocked(q)
				o.mu.Unlock()
				return
			}
			o.mu.Unlock()
			continue
		}
		if wait == 0 {
			continue
		}
		var t *time.Timer
		var timeout <-chan time.Time
		if wait > 0 {
			t = time.NewTimer(wait)
			timeout = t.C
		}
		select {
		case <-timeout:
		case <-q.wake:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
