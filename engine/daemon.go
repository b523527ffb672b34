// Package engine is the finderbot daemon: it keeps every account logged in,
// syncs Finder messages durably, runs them through the rules, and performs
// the resulting actions through a rate-limited outbox.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/finderbot/finderbot/engine/admin"
	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/events"
	"github.com/finderbot/finderbot/engine/handoff"
	"github.com/finderbot/finderbot/engine/outbox"
	"github.com/finderbot/finderbot/engine/poller"
	"github.com/finderbot/finderbot/engine/rates"
	"github.com/finderbot/finderbot/engine/redact"
	"github.com/finderbot/finderbot/engine/session"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/upstream"
	"github.com/finderbot/finderbot/engine/upstream/sim"
	"github.com/finderbot/finderbot/plugins"
)

// Options are the parts of a Daemon that do not come from the
// configuration file.
type Options struct {
	// Logger receives the daemon's log (default: discard).
	Logger *slog.Logger
	// QR receives login QR codes drawn as text (usually the terminal),
	// each in one Write.
	QR io.Writer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// HTTPClient overrides the upstream HTTP client; its redirects are
	// refused all the same (see upstream.NewHTTPClient).
	HTTPClient *http.Client
	// StoreOptions bound the embedded store.
	StoreOptions store.Options
	// Admin bounds the clients of the admin listener (default: the
	// admin.Limits defaults).
	Admin admin.Limits
	// HandOff, when set, is called with the time from a page's arrival to
	// the hand-off of each reply it caused to the upstream.
	HandOff func(time.Duration)
}

// Daemon is a running finderbot. New prepares it, Start runs it, Close stops
// it and waits for everything it started.
type Daemon struct {
	cfg     *config.Config
	opts    Options
	log     *slog.Logger
	secrets *redact.Set // hidden from the log, the admin API and events
	now     func() time.Time
	store   store.Store
	client  *upstream.Client
	sync    Syncer
	sender  Sender
	tokens  *session.Tokens
	metrics *metrics
	events  *events.Bus     // what people watching the daemon are told
	rates   *rates.Accounts // messages in and out over the last minute
	// deadCounts are the dead letters per account for the console.
	deadCounts deadLetterCounts

	accounts      map[string]*account
	order         []string
	sessions      map[string]session.Session // every session by name, accounts included
	runners       []func(context.Context) error
	stateMu       sync.Mutex
	states        map[string]string // the session state last exported, by name
	watchState    func(name, state string)
	watchRates    func() // called after each count of the rates; tests set it before Start
	outbox        *outbox.Outbox
	handoff       *handoff.Registry // conversations people took over
	sched         *scheduler
	rules         *ruleHost
	plugins       outbox.PluginCaller
	pluginManager *plugins.Manager
	sim           *sim.Upstream
	simURL        string
	cluster       *cluster // nil on a machine alone

	closers []func() error // run by Close, last first

	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	closing   atomic.Pointer[string] // what Close is waiting for
	wg        sync.WaitGroup
	admin     *admin.Server
	adminLn   net.Listener
	started   time.Time
	fatal     chan error // the error that stops the daemon: a damaged store
}

// account is one configured account at run time.
type account struct {
	name   string
	keeper *session.Keeper
	poller *poller.Poller

	// Owned by the account's step, which never runs twice at once.
	failures  int
	nextCheck time.Time
	loggingIn atomic.Bool
	limiter   *rate.Limiter // paces the account's sends

	// Owned by the scheduler.
	index   int       // in the due heap, -1 when not in it
	due     time.Time // when the next step is due
	running bool      // a step is running
	again   time.Time // a step asked for while one was running

	mu       sync.Mutex
	finder   string // the account's own Finder user name, learned from messages
	lastSync time.Time
	lastErr  string
	messages uint64
	skipped  uint64
}

func (a *account) synced(n int) {
	a.mu.Lock()
	a.lastSync = time.Now()
	a.lastErr = ""
	a.messages += uint64(n)
	a.mu.Unlock()
}

func (a *account) learnFinderName(name string) {
	a.mu.Lock()
	a.finder = name
	a.mu.Unlock()
}

func (a *account) finderName() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.finder
}

func (a *account) setSyncError(err error) {
	a.mu.Lock()
	a.lastErr = err.Error()
	a.mu.Unlock()
}

// New prepares a daemon: it compiles the rules, opens the store and
// connects the upstream client (starting the simulator in-process when
// base_url is "sim"). Nothing runs until Start.
func New(cfg *config.Config, opts Options) (_ *Daemon, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var secrets *redact.Set
	opts.Logger, secrets = redactingLogger(opts.Logger)
	secrets.Add(cfg.Secrets()...)
	d := &Daemon{cfg: cfg, opts: opts, log: opts.Logger, secrets: secrets, now: opts.Now, metrics: newMetrics(), accounts: map[string]*account{},
		sessions: map[string]session.Session{}, states: map[string]string{}, fatal: make(chan error, 1),
		events: events.New(events.Options{Now: opts.Now})}
	names := make([]string, len(cfg.Accounts))
	for i, ac := range cfg.Accounts {
		names[i] = ac.Name
	}
	// The accounts in the configuration's order, which the rates keep
	// too: the console reads both for every account, by position.
	d.order = names
	d.rates = rates.NewAccounts(opts.Now, names...)
	defer func() {
		if err != nil {
			d.closeAll()
		}
	}()

	// The checks an operator's mistake fails come first, before anything
	// logs or starts goroutines: a refused start-up then prints its one
	// error and nothing else. The rules go before the store so that a
	// broken rule file creates no state directory.
	d.rules, err = newRuleHost(d)
	if err != nil {
		return nil, err
	}
	sopts := opts.StoreOptions
	if sopts.Now == nil {
		sopts.Now = opts.Now
	}
	if sopts.Log == nil {
		sopts.Log = d.log
	}
	sopts.OnDamage = d.storeDamaged
	if sopts.LogMax == 0 {
		sopts.LogMax = cfg.Console.MessagesPerAccount
		if sopts.LogMax == 0 {
			sopts.LogMax = -1 // none kept
		}
	}
	if sopts.LogMaxAge == 0 {
		sopts.LogMaxAge = cfg.Console.MessageMaxAge
	}
	if cfg.Store.Kind == config.StoreNATS {
		if err := d.openCluster(sopts); err != nil {
			return nil, err
		}
	} else {
		st, err := store.Open(cfg.StateDir, sopts)
		if err != nil {
			return nil, err
		}
		d.store = st
		d.closers = append(d.closers, st.Close)
		d.addSnapshots(st)
	}
	if err := d.listenAdmin(); err != nil {
		return nil, err
	}

	baseURL, member, password := cfg.Upstream.BaseURL, cfg.Upstream.Account, cfg.Upstream.Password.Reveal()
	if baseURL == config.SimURL {
		if baseURL, err = d.startSim(); err != nil {
			return nil, err
		}
		member, password = sim.DefaultAccount, sim.DefaultPassword
	}
	hc := opts.HTTPClient
	if hc == nil {
		tr := upstream.NewTransport()
		tr.MaxConnsPerHost = cfg.Upstream.MaxConnsPerHost
		hc = upstream.NewHTTPClient(tr)
		d.closers = append(d.closers, func() error { tr.CloseIdleConnections(); return nil })
	}
	ir := cfg.Upstream.ImageReply
	d.client, err = upstream.New(baseURL, upstream.WithHTTPClient(hc), upstream.WithCallTimeout(cfg.Upstream.Timeout),
		upstream.WithImageSend(upstream.ImageSend{Endpoint: ir.Endpoint, WID: ir.WID, ToUserName: ir.ToUserName,
			MyUserName: ir.MyUserName, SessionID: ir.SessionID, ImgURL: ir.ImgURL}))
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	d.sync, d.sender = d.client, d.client

	d.tokens = session.NewTokens(d.client, member, password)
	if err := d.newPlugins(); err != nil {
		return nil, err
	}
	d.newHandoff()
	d.outbox = d.newOutbox()
	d.sched = newScheduler(min(cfg.Sync.Concurrency, len(cfg.Accounts)), d.step)
	for _, ac := range cfg.Accounts {
		a := &account{name: ac.Name, index: -1, limiter: newLimiter(cfg.Send)}
		a.keeper = session.NewKeeper(d.client, d.tokens, d.store, session.Options{
			Name: ac.Name, WcID: ac.WcID, DeviceType: ac.DeviceType, Proxy: ac.Proxy,
			OnlineCheck: cfg.Sync.OnlineCheck, MinBackoff: time.Second, MaxBackoff: cfg.Sync.MaxBackoff,
			QR: opts.QR, Logger: d.log, Secrets: d.secrets,
			OnState:   func(state string) { d.setSessionState(ac.Name, state) },
			OnSuspect: func() { d.sched.at(a, time.Now()) },
			OnEvent:   d.onSessionEvent,
			Fence:     d.fenceFor(ac.Name),
		})
		a.poller = d.newPoller(ac.Name)
		d.accounts[ac.Name] = a
		d.sessions[ac.Name] = a.keeper
	}
	if err := d.buildSessions(hc); err != nil {
		return nil, err
	}
	return d, nil
}

// setSessionState exports one series per session, labelled with its
// current state: with thousands of accounts, a series per possible state
// would cost more than the accounts themselves.
func (d *Daemon) setSessionState(name, state string) {
	if d.watchState != nil {
		d.watchState(name, state)
	}
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	prev, ok := d.states[name]
	if ok && prev == state {
		return
	}
	if ok {
		d.metrics.sessionState.DeleteLabelValues(name, prev)
	}
	d.states[name] = state
	d.metrics.sessionState.WithLabelValues(name, state).Set(1)
}

// Start runs the daemon until ctx is cancelled or Close is called: the
// admin listener, the session keepers, a sync loop per account, the
// dispatcher (resuming the outbox left by the last run) and cron.
func (d *Daemon) Start(ctx context.Context) error {
	ctx, d.cancel = context.WithCancel(ctx)
	d.started = time.Now()
	d.startAdmin()
	if d.pluginManager != nil {
		if err := d.pluginManager.Start(ctx); err != nil {
			d.cancel()
			return fmt.Errorf("engine: plugins: %w", err)
		}
	}
	if err := poller.RestoreCooldowns(ctx, d.store, d.rules.cooldowns, d.now()); err != nil {
		d.cancel()
		return err
	}
	if err := d.restoreHandoff(ctx); err != nil {
		d.cancel()
		return err
	}
	if err := d.outbox.Recover(ctx); err != nil {
		d.cancel()
		return err
	}
	d.outbox.Start(ctx)
	now := time.Now()
	for _, name := range d.order {
		d.setSessionState(name, session.StateLoggedOut)
		d.sched.at(d.accounts[name], now)
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.sched.run(ctx) }()
	if d.cluster != nil {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.cluster.run(ctx) }()
	}
	for _, run := range d.runners {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); run(ctx) }()
	}
	d.rules.start(ctx)
	d.log.Info("finderbot started", "accounts", len(d.order), "state_dir", d.cfg.StateDir, "admin", d.AdminAddr())
	return nil
}

// Close stops everything Start started, cancelling calls in flight, and
// closes the store. Nothing is half-written: every store write is a
// transaction. Calling Close again returns the first result.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.close() })
	return d.closeErr
}

func (d *Daemon) close() error {
	if d.cancel != nil {
		d.cancel()
	}
	if d.admin != nil {
		d.closingNow("the admin API's requests")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		d.admin.Shutdown(ctx)
		cancel()
	}
	d.closingNow("the rule file watcher and cron jobs")
	d.rules.stop()
	d.closingNow("the account loops (logins, syncs and their upstream calls)")
	d.wg.Wait()
	if d.outbox != nil {
		d.closingNow("the outbox's deliveries")
		d.outbox.Close()
	}
	if d.pluginManager != nil {
		d.closingNow("the plugin processes to exit")
		if err := d.pluginManager.Close(); err != nil {
			d.log.Warn("stopping plugins", "err", err)
		}
	}
	d.closingNow("the store to close")
	return d.closeAll()
}

// closingNow records the step Close is at, for a shutdown that times out
// to say what it was waiting for.
func (d *Daemon) closingNow(step string) { d.closing.Store(&step) }

// closingStep returns the step Close is at.
func (d *Daemon) closingStep() string {
	if s := d.closing.Load(); s != nil {
		return *s
	}
	return "the shutdown to begin"
}

func (d *Daemon) closeAll() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	d.closers = nil
	return errors.Join(errs...)
}

// Fatal delivers the error that must stop the daemon: the store found its
// file damaged, and fails every call from then on.
func (d *Daemon) Fatal() <-chan error { return d.fatal }

func (d *Daemon) storeDamaged(err error) {
	select {
	case d.fatal <- err:
	default:
	}
}

// Store returns the daemon's store.
func (d *Daemon) Store() store.Store { return d.store }

// Keeper returns the session keeper of the named account, or nil.
func (d *Daemon) Keeper(name string) *session.Keeper {
	if a := d.accounts[name]; a != nil {
		return a.keeper
	}
	return nil
}
