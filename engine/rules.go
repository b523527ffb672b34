package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/robfig/cron/v3"

	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/outbox"
	"github.com/finderbot/finderbot/engine/session"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/rules"
	"github.com/finderbot/finderbot/sdk"
)

// ruleHost owns the live rule set: it compiles it, swaps it atomically on
// reload (keeping the old one when the new files are broken), schedules the
// cron rules, and turns matches into outbox items.
type ruleHost struct {
	d         *Daemon
	set       atomic.Pointer[rules.Set]
	cooldowns *rules.Cooldowns
	stats     *rules.Stats // every rule's matches and failures, across reloads
	// compile reads and compiles the rule files (load); a test replaces it
	// to hold a reload midway.
	compile func() (*rules.Set, error)

	// mu guards the fields below. It is never held while files are read
	// or rules compiled: stop takes it, and a reload stuck on a file must
	// not hold up the shutdown.
	mu       sync.Mutex
	attempts chan struct{} // closed and replaced after every reload attempt
	started  uint64        // reloads begun, numbering them
	swapped  uint64        // the number of the reload whose rules are in force
	stopped  bool
	cron     *cron.Cron
	watcher  *fsnotify.Watcher
	done     chan struct{}
	ctx      context.Context

	// reloading is set while a requested reload runs; again asks it for
	// one more, for requests made meanwhile.
	reloading, again bool
}

func newRuleHost(d *Daemon) (*ruleHost, error) {
	h := &ruleHost{d: d, cooldowns: rules.NewCooldowns(0), stats: rules.NewStats(), attempts: make(chan struct{})}
	h.compile = h.load
	set, err := h.compile()
	if err != nil {
		return nil, err
	}
	h.set.Store(set)
	return h, nil
}

func (h *ruleHost) load() (*rules.Set, error) {
	return rules.Load(rules.Options{
		Location: h.d.cfg.Location(),
		Stats:    h.stats,
		OnFailure: func(f rules.Failure) {
			h.d.metrics.rulesFailed.WithLabelValues(f.Rule).Inc()
			h.d.log.Warn("rule evaluation failed", "rule", f.Rule, "err", f.Err)
		},
	}, h.d.cfg.Rules...)
}

// reloadAttempted returns a channel closed at the end of the next reload
// attempt, good or bad.
func (h *ruleHost) reloadAttempted() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts
}

func (h *ruleHost) count() int {
	if s := h.set.Load(); s != nil {
		return len(s.Rules())
	}
	return 0
}

// start schedules cron rules and watches the rule files.
func (h *ruleHost) start(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ctx = ctx
	h.schedule(h.set.Load())
	h.watch(ctx)
}

func (h *ruleHost) stop() {
	h.mu.Lock()
	c, w, done := h.cron, h.watcher, h.done
	h.cron, h.watcher = nil, nil
	h.stopped = true // a reload still reading files schedules nothing
	h.mu.Unlock()
	if c != nil {
		<-c.Stop().Done()
	}
	if w != nil {
		w.Close()
		<-done
	}
}

// Reload compiles the rule files again and swaps them in. A broken file
// keeps the old rules and returns the problems.
func (d *Daemon) Reload() error { return d.rules.reload() }

// requestReload starts a reload without waiting for it, for SIGHUP and
// file changes: neither the signal loop nor the watcher, which a stop waits
// for, ever waits on the rule files. One requested reload runs at a time;
// requests made while it runs make one more, which reads the files afresh.
func (h *ruleHost) requestReload() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	if h.reloading {
		h.again = true
		return
	}
	h.reloading = true
	go func() {
		for {
			h.reload() // a failed reload is logged and keeps the old rules
			h.mu.Lock()
			if !h.again || h.stopped {
				h.reloading, h.again = false, false
				h.mu.Unlock()
				return
			}
			h.again = false
			h.mu.Unlock()
		}
	}()
}

// reloadRunning reports whether a requested reload is under way.
func (h *ruleHost) reloadRunning() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reloading
}

// reload reads and compiles the rule files with no lock held, then swaps
// the new set in under h.mu. Reloads may overlap (SIGHUP, a file change,
// the admin API): the rules of the one begun last stay in force, whichever
// finishes last.
func (h *ruleHost) reload() error {
	h.mu.Lock()
	h.started++
	n := h.started
	h.mu.Unlock()

	set, err := h.compile()

	h.mu.Lock()
	defer h.mu.Unlock()
	defer func() {
		close(h.attempts)
		h.attempts = make(chan struct{})
	}()
	if err != nil {
		h.d.metrics.reloads.WithLabelValues("failed").Inc()
		h.d.log.Error("rules not reloaded; the previous rules stay in force", "err", err)
		h.d.publish(events.KindReload, "", "failed; the previous rules stay in force: "+err.Error())
		return err
	}
	if n < h.swapped {
		h.d.log.Info("rules of an overtaken reload dropped; a later reload is in force")
		return nil
	}
	h.swapped = n
	h.set.Store(set)
	if h.ctx != nil && !h.stopped {
		h.schedule(set)
	}
	h.d.metrics.reloads.WithLabelValues("ok").Inc()
	h.d.log.Info("rules reloaded", "rules", len(set.Rules()))
	h.d.publish(events.KindReload, "", fmt.Sprintf("ok: %d rules", len(set.Rules())))
	return nil
}

// schedule replaces the cron scheduler with one for set's cron rules. The
// caller holds h.mu.
func (h *ruleHost) schedule(set *rules.Set) {
	if h.cron != nil {
		h.cron.Stop()
		h.cron = nil
	}
	crons := set.Crons()
	if len(crons) == 0 {
		return
	}
	c := cron.New(cron.WithLocation(set.Location()))
	for _, cr := range crons {
		name := cr.Name
		c.Schedule(cr.Schedule, cron.FuncJob(func() { h.fire(name) }))
	}
	c.Start()
	h.cron = c
}

// fire runs a cron rule once for every account: a rule that should send from
// one account only says so in its condition (`when: account == "shop"`).
func (h *ruleHost) fire(name string) {
	set := h.set.Load()
	now := h.d.now()
	var items []store.Item
	for _, acct := range h.d.order {
		acts, err := set.Fire(nil, name, acct, now)
		if err != nil {
			return // the rule went away in a reload
		}
		items = append(items, h.items(acts, acct, nil)...)
	}
	h.enqueue(items, "cron rule "+name)
}

// event runs the event rules for a session event.
func (h *ruleHost) event(ev session.Event) {
	set := h.set.Load()
	fields := ev.Fields
	if ev.Message != "" {
		fields = make(map[string]string, len(ev.Fields)+1)
		for k, v := range ev.Fields {
			fields[k] = v
		}
		fields["message"] = ev.Message
	}
	// Events of an account's own session are about that account; the
	// actions of events of other sessions go out from the first account.
	acct := ev.Session
	if h.d.accounts[acct] == nil {
		acct = ""
		if len(h.d.order) > 0 {
			acct = h.d.order[0]
		}
	}
	rev := rules.Event{Type: ev.Type, Session: ev.Session, Account: acct, Fields: fields}
	acts := set.MatchEvent(nil, &rev, h.d.now(), h.cooldowns)
	h.enqueue(h.items(acts, acct, nil), "event "+ev.Type)
}

func (h *ruleHost) enqueue(items []store.Item, what string) {
	if len(items) == 0 {
		return
	}
	ctx := h.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	saved, err := h.d.store.Enqueue(ctx, items)
	if err != nil {
		h.d.log.Error("cannot queue actions", "for", what, "err", err)
		return
	}
	h.d.outbox.Add(saved)
}

// items addresses rule actions for the outbox (see outbox.Items).
func (h *ruleHost) items(acts []rules.Action, acct string, m *sdk.Message) []store.Item {
	for _, a := range acts {
		h.d.metrics.rulesMatched.WithLabelValues(a.Rule).Inc()
	}
	return outbox.Items(acts, acct, m)
}

// watch reloads the rules when a rule file changes. Editors replace files
// rather than write them, so the directories are watched, not the files.
func (h *ruleHost) watch(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		h.d.log.Warn("cannot watch rule files; reload with SIGHUP", "err", err)
		return
	}
	dirs := map[string]bool{}
	for _, p := range h.d.cfg.Rules {
		dir := p
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			dir = filepath.Dir(p)
		}
		if !dirs[dir] {
			dirs[dir] = true
			if err := w.Add(dir); err != nil {
				h.d.log.Warn("cannot watch a rule directory; reload with SIGHUP", "dir", dir, "err", err)
			}
		}
	}
	h.watcher, h.done = w, make(chan struct{})
	go h.watchLoop(ctx, w, h.done)
}

func (h *ruleHost) watchLoop(ctx context.Context, w *fsnotify.Watcher, done chan struct{}) {
	defer close(done)
	// Edits come in bursts (write, chmod, rename); reload once they settle.
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if !isRuleFile(ev.Name) {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(200 * time.Millisecond)
			} else {
				timer.Reset(200 * time.Millisecond)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			h.d.log.Warn("rule file watch error", "err", err)
		case <-fire:
			fire = nil
			h.requestReload()
		}
	}
}

func isRuleFile(name string) bool {
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// onSessionEvent logs a session event, tells the event bus and runs the
// event rules on it.
func (d *Daemon) onSessionEvent(ev session.Event) {
	ev = d.redactEvent(ev)
	d.log.Info("session event", "type", ev.Type, "session", ev.Session, "message", ev.Message)
	d.publishSession(ev)
	if d.rules != nil {
		d.rules.event(ev)
	}
}
