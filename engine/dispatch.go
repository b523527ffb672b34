package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/session"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/sdk"
)

// Sender is what the dispatcher needs of the upstream.
type Sender interface {
	PrivateSend(ctx context.Context, token string, req upstream.PrivateSendRequest) (*upstream.Sent, error)
	GetSessionID(ctx context.Context, token string, req upstream.SessionIDRequest) (string, error)
	SendText(ctx context.Context, token string, req upstream.SendTextRequest) (*upstream.Sent, error)
}

var _ Sender = (*upstream.Client)(nil)

// PluginCaller performs a plugin action and returns the actions its answer
// asks for (replies and sends), addressed and ready for the outbox.
type PluginCaller func(ctx context.Context, it store.Item) ([]store.Item, error)

// errPermanent marks a failure that retrying cannot fix.
type errPermanent struct{ err error }

func (e errPermanent) Error() string { return e.err.Error() }
func (e errPermanent) Unwrap() error { return e.err }

// dispatcher performs outbox items: in order within a conversation, at a
// safe pace per account, only while the account is online, retrying
// transient failures with backoff and giving up into the dead letters after
// MaxAttempts. An item leaves the outbox only once the upstream accepted it.
//
// Accounts without work have no goroutine: a worker is started when items
// arrive and ends when its account's queue is empty.
type dispatcher struct {
	d *Daemon

	mu       sync.Mutex
	accounts map[string]*queue
	wg       sync.WaitGroup
	ctx      context.Context
	stopped  bool

	// acks carries delivered replies to the acker, which removes them from
	// the store in batches. Until then they stay in their queue's sending
	// set, so that an echo arriving meanwhile acknowledges them with its
	// page: either way the removal is durable before anyone could resend.
	acks     chan ack
	ackerEnd chan struct{}

	interrupted []uint64 // replies whose attempt shutdown cut short
}

type ack struct {
	q  *queue
	id uint64
}

// queue is one account's pending items, by conversation.
type queue struct {
	account string
	convs   map[string][]store.Item
	order   []string // conversations in arrival order, round-robin
	running bool
	depth   int
	limiter *rate.Limiter
	wake    chan struct{}
	current uint64 // the item the worker is performing

	// sending holds the replies whose delivery is not settled: attempts in
	// flight, delivered replies not yet removed from the store, and replies
	// a previous run left behind, which it may have delivered. Their echo in
	// the account's own messages proves delivery.
	sending map[uint64]store.Item
	// echoed holds the ids the sync loop found delivered by their echo.
	echoed map[uint64]bool
	// delivered holds the replies the upstream accepted whose removal from
	// the store is still on its way to the acker.
	delivered map[uint64]bool
	// caughtUp is set once the sync loop has read everything the upstream
	// had: replies a crash interrupted wait for it, since their echo may be
	// on the way.
	caughtUp bool
	// holdUntil is when replies in doubt after a restart may go again.
	holdUntil time.Time
}

func newDispatcher(d *Daemon) *dispatcher {
	return &dispatcher{d: d, accounts: make(map[string]*queue), acks: make(chan ack, 1024), ackerEnd: make(chan struct{})}
}

// start lets workers run until ctx is done.
func (p *dispatcher) start(ctx context.Context) {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	go p.acker()
}

// wait blocks until every worker has returned and every ack is stored,
// and returns the replies whose attempts were cut short.
func (p *dispatcher) wait() []uint64 {
	p.mu.Lock()
	p.stopped = true
	started := p.ctx != nil
	p.mu.Unlock()
	p.wg.Wait()
	if started {
		close(p.acks)
		<-p.ackerEnd
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.interrupted
}

// acker removes delivered replies from the store, many per transaction.
func (p *dispatcher) acker() {
	defer close(p.ackerEnd)
	var batch []ack
	ids := make([]uint64, 0, 256)
	for a := range p.acks {
		batch = append(batch[:0], a)
	drain:
		for len(batch) < 1024 {
			select {
			case more, ok := <-p.acks:
				if !ok {
					break drain
				}
				batch = append(batch, more)
			default:
				break drain
			}
		}
		ids = ids[:0]
		for _, a := range batch {
			ids = append(ids, a.id)
		}
		// Shutdown must not lose acks: they are stored whatever ctx says.
		if err := p.d.store.Ack(context.Background(), ids...); err != nil {
			p.d.log.Error("cannot remove delivered replies from the outbox; their echo will prevent a resend", "err", err)
		}
		p.mu.Lock()
		for _, a := range batch {
			delete(a.q.sending, a.id)
			delete(a.q.echoed, a.id)
			delete(a.q.delivered, a.id)
			p.dropIfIdle(a.q.account, a.q)
		}
		p.mu.Unlock()
	}
}

// queue returns the account's queue, creating it when the account has
// none. Queues are dropped once drained, so idle accounts cost nothing
// here; the rate limiter lives with the account and survives.
func (p *dispatcher) queue(account string) *queue {
	q := p.accounts[account]
	if q == nil {
		var lim *rate.Limiter
		if a := p.d.accounts[account]; a != nil {
			lim = a.limiter
		} else {
			lim = newLimiter(p.d.cfg.Send)
		}
		q = &queue{account: account, convs: map[string][]store.Item{}, limiter: lim, wake: make(chan struct{}, 1),
			sending: map[uint64]store.Item{}, echoed: map[uint64]bool{}, delivered: map[uint64]bool{}, caughtUp: true}
		p.accounts[account] = q
	}
	return q
}

func newLimiter(cfg config.Send) *rate.Limiter {
	lim := rate.Inf
	if cfg.Interval > 0 {
		lim = rate.Every(cfg.Interval)
	}
	return rate.NewLimiter(lim, cfg.Burst)
}

// dropIfIdle forgets an account's queue once it holds nothing and no worker
// or pending ack needs it. The caller holds p.mu.
func (p *dispatcher) dropIfIdle(account string, q *queue) {
	if !q.running && len(q.order) == 0 && len(q.sending) == 0 && p.accounts[account] == q {
		delete(p.accounts, account)
	}
}

// recover queues the items a previous run left in the outbox. Replies among
// them may have been delivered just before that run ended: they wait until
// the sync loop has caught up, and those whose echo arrives by then are not
// sent again.
//
// After a clean shutdown only the replies whose attempt it interrupted are
// in doubt; after a crash every pending reply is. Replies in doubt also wait
// out grace (the upstream's call timeout): a request of the dead process may
// still be on its way through the upstream, and its echo with it.
func (p *dispatcher) recover(items []store.Item, clean bool, interrupted []uint64, grace time.Duration) {
	doubt := make(map[uint64]bool, len(interrupted))
	for _, id := range interrupted {
		doubt[id] = true
	}
	until := time.Now().Add(grace)
	p.mu.Lock()
	for _, it := range items {
		if it.Kind == store.KindReply && (!clean || doubt[it.ID]) {
			q := p.queue(it.Account)
			q.sending[it.ID] = it
			q.caughtUp = false
			q.holdUntil = until
		}
	}
	p.mu.Unlock()
	p.add(items)
}

// add queues items already committed to the outbox.
func (p *dispatcher) add(items []store.Item) {
	if len(items) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, it := range items {
		q := p.queue(it.Account)
		conv := it.Conversation
		if _, ok := q.convs[conv]; !ok {
			q.order = append(q.order, conv)
		}
		q.convs[conv] = append(q.convs[conv], it)
		q.depth++
		select {
		case q.wake <- struct{}{}:
		default:
		}
		if !q.running && p.ctx != nil && !p.stopped {
			q.running = true
			p.wg.Add(1)
			go p.work(it.Account, q)
		}
	}
	p.d.metrics.outboxDepth.Add(float64(len(items)))
}

// depth returns the number of items queued for account.
func (p *dispatcher) depth(account string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.accounts[account]; q != nil {
		return q.depth
	}
	return 0
}

// next picks the head of the next conversation that is due, round-robin.
// It returns the time to wait when none is due yet, and ok=false when the
// queue is empty (the worker then ends).
func (p *dispatcher) next(q *queue, now time.Time) (it store.Item, wait time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(q.order) == 0 {
		q.running = false
		p.dropIfIdle(q.account, q)
		return store.Item{}, 0, false
	}
	wait = -1
	for i, conv := range q.order {
		head := q.convs[conv][0]
		if _, doubt := q.sending[head.ID]; doubt {
			if !q.caughtUp {
				continue // its echo may still come; the sync loop will wake us
			}
			if w := q.holdUntil.Sub(now); w > 0 {
				if wait < 0 || w < wait {
					wait = w
				}
				continue
			}
		}
		if !head.NextAt.After(now) {
			// Rotate so the other conversations get their turn.
			q.order = append(append(q.order[:i:i], q.order[i+1:]...), conv)
			return head, 0, true
		}
		if w := head.NextAt.Sub(now); wait < 0 || w < wait {
			wait = w
		}
	}
	return store.Item{}, wait, true
}

// done removes the head of it's conversation.
func (p *dispatcher) done(q *queue, it store.Item) {
	p.mu.Lock()
	defer p.mu.Unlock()
	items := q.convs[it.Conversation]
	if len(items) == 0 || items[0].ID != it.ID {
		return
	}
	if len(items) == 1 {
		delete(q.convs, it.Conversation)
		for i, c := range q.order {
			if c == it.Conversation {
				q.order = append(q.order[:i], q.order[i+1:]...)
				break
			}
		}
	} else {
		q.convs[it.Conversation] = items[1:]
	}
	q.depth--
	p.d.metrics.outboxDepth.Dec()
}

// forget drops an item from the sending set.
func (p *dispatcher) forget(q *queue, id uint64) {
	p.mu.Lock()
	delete(q.sending, id)
	delete(q.echoed, id)
	delete(q.delivered, id)
	p.mu.Unlock()
}

// matchEcho finds the reply whose echo m is: the account's own message in
// the reply's session with the reply's text. Only replies handed to the
// upstream with no known outcome qualify, the oldest first.
func (p *dispatcher) matchEcho(account string, m *sdk.Message) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.accounts[account]
	if q == nil || len(q.sending) == 0 {
		return 0, false
	}
	var best uint64
	for id, it := range q.sending {
		// The echo cannot be older than the reply (a minute allows for the
		// upstream's clock and its whole-second times).
		if !q.echoed[id] && it.Session == m.Session && it.Text == m.Content && (it.My == "" || it.My == m.From) &&
			!m.Time.Before(it.Created.Add(-time.Minute)) && (best == 0 || id < best) {
			best = id
		}
	}
	return best, best != 0
}

// echoed takes the replies a committed page proved delivered out of the
// queue. An attempt still in flight for one of them ends as a success
// whatever the upstream answers.
func (p *dispatcher) echoedAcks(account string, ids []uint64) {
	if len(ids) == 0 {
		return
	}
	p.mu.Lock()
	q := p.accounts[account]
	var heads []store.Item
	for _, id := range ids {
		if q == nil {
			break
		}
		it, ok := q.sending[id]
		if !ok || q.echoed[id] {
			continue
		}
		q.echoed[id] = true
		if !q.delivered[id] {
			heads = append(heads, it)
		}
	}
	p.mu.Unlock()
	for _, it := range heads {
		p.d.log.Info("reply confirmed delivered by its echo", "account", account, "item", it.ID)
		if p.inFlight(q, it.ID) {
			continue // the worker finishes it
		}
		p.done(q, it)
		p.d.metrics.actions.WithLabelValues(it.Kind, "sent").Inc()
	}
}

// caughtUp tells the dispatcher that the account's sync loop has read all
// there was, so replies interrupted by a crash and not echoed by now were
// not delivered: they are sent again.
func (p *dispatcher) caughtUp(account string) {
	p.mu.Lock()
	q := p.queue(account)
	was := q.caughtUp
	q.caughtUp = true
	p.mu.Unlock()
	if !was {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (p *dispatcher) setSending(q *queue, it store.Item) {
	p.mu.Lock()
	q.sending[it.ID] = it
	q.current = it.ID
	p.mu.Unlock()
}

// clearSending ends an attempt and reports whether the reply's echo arrived
// meanwhile.
func (p *dispatcher) clearSending(q *queue, id uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	q.current = 0
	return q.echoed[id]
}

func (p *dispatcher) inFlight(q *queue, id uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return q.current == id
}

// reschedule replaces the head of it's conversation after a failed attempt.
func (p *dispatcher) reschedule(q *queue, it store.Item) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if items := q.convs[it.Conversation]; len(items) > 0 && items[0].ID == it.ID {
		items[0] = it
	}
}

func (p *dispatcher) work(account string, q *queue) {
	defer p.wg.Done()
	ctx := p.ctx
	a := p.d.accounts[account]
	log := p.d.log.With("account", account)
	for {
		it, wait, ok := p.next(q, p.d.now())
		if !ok {
			return
		}
		if wait != 0 {
			// Nothing is due: wait for the earliest retry, or (wait < 0)
			// for new items or the sync loop to catch up.
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
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if a == nil {
			log.Error("outbox item for an account that is not configured; moving it to the dead letters", "item", it.ID)
			p.kill(ctx, q, it, "account not configured")
			continue
		}
		if err := p.perform(ctx, a, q, it); err != nil && ctx.Err() != nil {
			return
		}
	}
}

// perform makes one attempt at it.
func (p *dispatcher) perform(ctx context.Context, a *account, q *queue, it store.Item) error {
	log := p.d.log.With("account", a.name, "item", it.ID, "kind", it.Kind, "rule", it.Rule)
	var follow []store.Item
	var err error
	if it.Kind == store.KindPlugin {
		if p.d.plugins == nil {
			err = errPermanent{fmt.Errorf("plugin %s.%s: no plugins are configured", it.Plugin, it.Action)}
		} else {
			follow, err = p.d.plugins(ctx, it)
		}
	} else {
		var inst session.Instance
		inst, err = a.keeper.Wait(ctx)
		if err != nil {
			return err
		}
		if err = q.limiter.Wait(ctx); err != nil {
			return err
		}
		if j := p.d.cfg.Send.Jitter; j > 0 && !sleep(ctx, jitter(j)) {
			return ctx.Err()
		}
		if it.Kind == store.KindReply {
			p.setSending(q, it)
		}
		if !it.Received.IsZero() {
			lat := time.Since(it.Received)
			p.d.metrics.handOff.Observe(lat.Seconds())
			if p.d.opts.HandOff != nil {
				p.d.opts.HandOff(lat)
			}
		}
		err = p.send(ctx, inst, it)
		if err != nil && ctx.Err() != nil {
			p.mu.Lock()
			p.interrupted = append(p.interrupted, it.ID)
			p.mu.Unlock()
		}
		if it.Kind == store.KindReply {
			if p.clearSending(q, it.ID) {
				err = nil // its echo arrived: delivered, whatever the answer said
			}
			if err != nil {
				p.forget(q, it.ID)
			}
		}
		if errors.Is(err, upstream.ErrOffline) {
			// Not the item's fault: wait for the new login and try again
			// without counting an attempt.
			a.keeper.ReportOffline(inst.Gen)
			log.Warn("send refused: the instance is offline; waiting for the login", "err", err)
			sleep(ctx, p.d.cfg.Send.RetryBackoff)
			return err
		}
		if errors.Is(err, upstream.ErrUnauthorized) {
			a.keeper.ReportUnauthorized(inst.Token)
			sleep(ctx, p.d.cfg.Send.RetryBackoff)
			return err
		}
	}
	if err == nil {
		// Accepted: record it even if shutdown began meanwhile, or the
		// next start would do it again.
		ctx := context.WithoutCancel(ctx)
		if it.Kind == store.KindPlugin {
			// The plugin's answers replace its action in one transaction:
			// a crash can neither lose them nor call the plugin again.
			items, err := p.d.store.Complete(ctx, it.ID, follow)
			if err != nil {
				log.Error("cannot queue the actions a plugin answered with; the plugin action will be retried", "err", err)
				return p.retry(ctx, q, it, err, log)
			}
			p.add(items)
		} else if it.Kind == store.KindReply {
			p.mu.Lock()
			q.delivered[it.ID] = true
			p.mu.Unlock()
			p.acks <- ack{q: q, id: it.ID}
		} else if err := p.d.store.Ack(ctx, it.ID); err != nil {
			log.Error("cannot remove a performed action from the outbox", "err", err)
			return err
		}
		p.done(q, it)
		p.d.metrics.actions.WithLabelValues(it.Kind, "sent").Inc()
		log.Info("action performed", "to", it.To, "conversation", it.Conversation)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Refusals are retried too: the upstream's "失败" rarely says whether
	// trying again would help. MaxAttempts bounds the cost.
	var perm errPermanent
	if errors.As(err, &perm) {
		log.Error("action failed for good; moved to the dead letters", "err", err)
		p.kill(ctx, q, it, err.Error())
		return nil
	}
	return p.retry(ctx, q, it, err, log)
}

func (p *dispatcher) retry(ctx context.Context, q *queue, it store.Item, err error, log *slog.Logger) error {
	it.Attempts++
	it.LastError = err.Error()
	if it.Attempts >= p.d.cfg.Send.MaxAttempts {
		log.Error("action failed too often; moved to the dead letters", "attempts", it.Attempts, "err", err)
		p.kill(ctx, q, it, fmt.Sprintf("gave up after %d attempts: %v", it.Attempts, err))
		return nil
	}
	wait := backoff(p.d.cfg.Send.RetryBackoff, p.d.cfg.Send.MaxRetryBackoff, it.Attempts)
	it.NextAt = p.d.now().Add(wait)
	log.Warn("action failed; will retry", "attempt", it.Attempts, "retry_in", wait.Round(time.Millisecond), "err", err)
	p.d.metrics.actions.WithLabelValues(it.Kind, "retried").Inc()
	if uerr := p.d.store.Update(ctx, it); uerr != nil {
		log.Error("cannot record the failed attempt", "err", uerr)
	}
	p.reschedule(q, it)
	return nil
}

func (p *dispatcher) kill(ctx context.Context, q *queue, it store.Item, reason string) {
	if err := p.d.store.Kill(ctx, it, reason); err != nil {
		p.d.log.Error("cannot move an action to the dead letters; it stays in the outbox", "item", it.ID, "err", err)
		return
	}
	p.done(q, it)
	p.forget(q, it.ID)
	p.d.metrics.actions.WithLabelValues(it.Kind, "dead").Inc()
}

// send performs a reply or a send with the given instance.
func (p *dispatcher) send(ctx context.Context, inst session.Instance, it store.Item) error {
	switch it.Kind {
	case store.KindReply:
		sessionID := it.Session
		if sessionID == "" {
			var err error
			sessionID, err = p.d.sender.GetSessionID(ctx, inst.Token, upstream.SessionIDRequest{WID: inst.WID, ToUserName: it.To, MyUserName: it.My})
			if err != nil {
				return err
			}
		}
		_, err := p.d.sender.PrivateSend(ctx, inst.Token, upstream.PrivateSendRequest{
			WID: inst.WID, ToUserName: it.To, MyUserName: it.My, SessionID: sessionID, Content: it.Text,
		})
		return err
	case store.KindSend:
		_, err := p.d.sender.SendText(ctx, inst.Token, upstream.SendTextRequest{WID: inst.WID, WcID: it.To, Content: it.Text})
		return err
	}
	return errPermanent{fmt.Errorf("unknown action kind %q", it.Kind)}
}

// jitter returns a random duration in [0, d].
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}
