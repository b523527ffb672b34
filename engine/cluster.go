package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/finderbot/finderbot/engine/admin"
	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/lease"
	"github.com/finderbot/finderbot/engine/poller"
	"github.com/finderbot/finderbot/engine/store"
	"github.com/finderbot/finderbot/engine/store/natsstore"
)

// cluster shares the configured accounts with the other daemons on the same
// JetStream stream: each account is served by the one daemon holding its
// lease. A daemon takes free accounts up to its fair share (the accounts
// divided by the live daemons), and hands over those past it at a bounded
// rate, so that a new daemon takes accounts over gradually.
type cluster struct {
	d       *Daemon
	cfg     config.Store
	node    string
	nc      *nats.Conn
	st      *natsstore.Store
	holders jetstream.KeyValue // account leases; TTL = lease TTL
	nodes   jetstream.KeyValue // one heartbeat per live daemon; TTL = lease TTL
	leases  *lease.Manager
	moves   *rate.Limiter
	m       clusterMetrics

	mu       sync.Mutex
	held     map[string]*heldAccount       // served here, by account
	byKey    map[string]string             // lease key -> account
	free     map[string]int                // scans in a row an account was found free
	gave     map[string]time.Time          // accounts handed over, when
	sessions map[string]context.CancelFunc // sessions run here, by lease key
	lastBeat time.Time
}

// heldAccount is an account this daemon serves.
type heldAccount struct {
	since  time.Time
	cancel context.CancelFunc // ends the account's login loop
	ctx    context.Context
}

type clusterMetrics struct {
	held     prometheus.Gauge
	nodes    prometheus.Gauge
	moves    *prometheus.CounterVec
	renewals *prometheus.CounterVec
	fenced   prometheus.Counter
}

// orphanScans is how many scans in a row (a tenth of the TTL apart) an
// account must be found free before a daemon past its share takes it.
const orphanScans = 5

// takers bounds the accounts a daemon takes over at once.
const takers = 32

// Cluster buckets, after the stream's name.
const (
	holdersSuffix = "_HOLDERS"
	nodesSuffix   = "_NODES"
)

// nodeRecord is a daemon's heartbeat.
type nodeRecord struct {
	Node  string    `json:"node"`
	Admin string    `json:"admin,omitempty"`
	Held  int       `json:"held"`
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

// ConnectNATS connects to the servers of cfg, with its credentials.
func ConnectNATS(cfg config.Store, name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if cfg.Credentials != "" {
		opts = append(opts, nats.UserCredentials(cfg.Credentials))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("engine: connect to NATS at %s: %w", cfg.URL, err)
	}
	return nc, nil
}

// nodeName is the configured node name, or the host name and process id.
func nodeName(cfg config.Store) string {
	if cfg.Node != "" {
		return cfg.Node
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", cmp.Or(host, "finderbot"), os.Getpid())
}

// openCluster connects to NATS and opens the shared store and buckets.
func (d *Daemon) openCluster(sopts store.Options) error {
	cfg := d.cfg.Store
	node := nodeName(cfg)
	nc, err := ConnectNATS(cfg, "finderbot "+node)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, func() error { nc.Close(); return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := natsstore.Open(ctx, nc, natsstore.Options{Stream: cfg.Stream, Replicas: cfg.Replicas, Holder: node, SnapshotEvery: cfg.SnapshotEvents, Store: sopts})
	if err != nil {
		return err
	}
	d.closers = append(d.closers, st.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	bucket := func(suffix string) (jetstream.KeyValue, error) {
		kv, err := natsstore.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
			Bucket: cfg.Stream + suffix, TTL: cfg.LeaseTTL, History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("engine: bucket %s%s: %w", cfg.Stream, suffix, err)
		}
		return kv, nil
	}
	c := &cluster{d: d, cfg: cfg, node: node, nc: nc, st: st,
		held: map[string]*heldAccount{}, byKey: map[string]string{}, free: map[string]int{}, gave: map[string]time.Time{}, sessions: map[string]context.CancelFunc{},
		// A scan comes every tenth of the TTL: its burst is what the rate
		// allows in that time.
		moves: rate.NewLimiter(rate.Limit(cfg.MovesPerSecond), max(1, int(math.Ceil(cfg.MovesPerSecond*cfg.LeaseTTL.Seconds()/10))))}
	if c.holders, err = bucket(holdersSuffix); err != nil {
		return err
	}
	if c.nodes, err = bucket(nodesSuffix); err != nil {
		return err
	}
	c.leases, err = lease.New(c.holders, lease.Options{Holder: node, TTL: cfg.LeaseTTL, OnLost: c.lost})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	c.m = clusterMetrics{
		held:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "finderbot_cluster_accounts_held", Help: "Accounts this daemon holds the lease of."}),
		nodes:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "finderbot_cluster_nodes", Help: "Daemons alive on the stream, this one included."}),
		moves:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finderbot_cluster_moves_total", Help: "Accounts taken, handed over and lost by this daemon."}, []string{"move"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finderbot_cluster_lease_renewals_total", Help: "Lease renewal rounds, by result."}, []string{"result"}),
		fenced:   prometheus.NewCounter(prometheus.CounterOpts{Name: "finderbot_cluster_fenced_total", Help: "Upstream calls not made because the account's lease could not be proven."}),
	}
	d.metrics.reg.MustRegister(c.m.held, c.m.nodes, c.m.moves, c.m.renewals, c.m.fenced)
	d.store, d.cluster = st, c
	d.closers = append(d.closers, c.releaseAll)
	return nil
}

func (c *cluster) key(account string) string { return lease.Key("acct", account) }

// fence answers whether this daemon may act for the account now.
func (c *cluster) fence(account string) error {
	c.mu.Lock()
	_, ok := c.held[account]
	c.mu.Unlock()
	if !ok {
		c.m.fenced.Inc()
		return fmt.Errorf("%w: %s is not held by %s", lease.ErrLost, account, c.node)
	}
	if err := c.leases.Check(c.key(account)); err != nil {
		c.m.fenced.Inc()
		return err
	}
	return nil
}

// holds reports whether the account is served here.
func (c *cluster) holds(account string) bool { return c.fence(account) == nil }

// accountCtx is the context of the account's hold, ending when it is lost.
func (c *cluster) accountCtx(account string) (context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.held[account]
	if h == nil {
		return nil, false
	}
	return h.ctx, true
}

// run keeps the leases and the share of accounts until ctx ends.
func (c *cluster) run(ctx context.Context) error {
	ttl := c.cfg.LeaseTTL
	tick := time.NewTicker(ttl / 10)
	defer tick.Stop()
	// A daemon announces itself and waits a heartbeat before it takes
	// accounts, so that daemons starting together see each other and
	// none takes everything first.
	c.beat(ctx)
	joined := time.Now().Add(ttl / 3)
	// Renewals run on their own: a slow take-over must never delay them.
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		c.renew(ctx)
	}()
	defer func() { <-renewed }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if time.Now().After(joined) {
			// A scan that hangs (a listing lost on a busy server) must not
			// stop the next ones.
			sctx, cancel := context.WithTimeout(ctx, ttl)
			c.balance(sctx, ctx)
			cancel()
		}
	}
}

// renew renews the leases, and writes the heartbeat, every tenth of the TTL
// until ctx ends.
func (c *cluster) renew(ctx context.Context) {
	tick := time.NewTicker(c.cfg.LeaseTTL / 10)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(c.lastBeat) >= c.cfg.LeaseTTL/3 {
			c.beat(ctx)
		}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.LeaseTTL/3)
		err := c.leases.RenewAll(rctx)
		cancel()
		if err != nil {
			c.m.renewals.WithLabelValues("failed").Inc()
			if ctx.Err() == nil {
				c.d.log.Warn("cluster: lease renewal failed", "err", err)
			}
		} else {
			c.m.renewals.WithLabelValues("ok").Inc()
		}
	}
}

// beat writes this daemon's heartbeat.
func (c *cluster) beat(ctx context.Context) {
	c.mu.Lock()
	rec := nodeRecord{Node: c.node, Admin: c.d.AdminAddr(), Held: len(c.held), Since: c.d.started, At: time.Now().UTC()}
	c.mu.Unlock()
	data, _ := json.Marshal(rec)
	if _, err := c.nodes.Put(ctx, lease.Key("node", c.node), data); err != nil {
		if ctx.Err() == nil {
			c.d.log.Warn("cluster: heartbeat failed", "err", err)
		}
		return
	}
	c.lastBeat = time.Now()
}

// keys lists a bucket's keys; none is no error.
func keys(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer lister.Stop()
	var out []string
	for {
		select {
		case k, ok := <-lister.Keys():
			if !ok {
				return out, nil
			}
			out = append(out, k)
		case <-ctx.Done():
			return nil, fmt.Errorf("listing the keys of %s: %w", kv.Bucket(), ctx.Err())
		}
	}
}

// score ranks the daemons for an account (rendezvous hashing): each daemon
// prefers the accounts it ranks highest, which spreads them evenly and
// keeps an account with the same daemon across rebalances.
func score(node, account string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(account))
	return h.Sum64()
}

// balance takes free accounts up to the fair share and hands over those
// past it, a bounded number per second.
//
// ctx bounds the scan; life is the daemon's, which the accounts taken
// keep.
func (c *cluster) balance(ctx, life context.Context) {
	nodeKeys, err := keys(ctx, c.nodes)
	if err != nil {
		c.d.log.Warn("cluster: cannot list the daemons", "err", err)
		return
	}
	heldKeys, err := keys(ctx, c.holders)
	if err != nil {
		c.d.log.Warn("cluster: cannot list the leases", "err", err)
		return
	}
	n := max(1, len(nodeKeys))
	c.m.nodes.Set(float64(n))
	accounts := c.d.order
	share := (len(accounts) + n - 1) / n
	taken := map[string]bool{}
	for _, k := range heldKeys {
		taken[k] = true
	}
	byScore := slices.Clone(accounts)
	slices.SortFunc(byScore, func(a, b string) int { return cmp.Compare(score(c.node, b), score(c.node, a)) })

	c.mu.Lock()
	mine := len(c.held)
	var free []string
	for _, name := range byScore {
		if taken[c.key(name)] {
			delete(c.free, name)
			continue
		}
		c.free[name]++
		if _, ok := c.held[name]; ok {
			continue
		}
		// An account handed over is left to the daemon it was handed to
		// for a TTL, so that two daemons never pass one to and fro.
		if at, ok := c.gave[name]; ok && time.Since(at) < c.cfg.LeaseTTL {
			continue
		}
		delete(c.gave, name)
		free = append(free, name)
	}
	c.mu.Unlock()
	var want []string
	for _, name := range free {
		c.mu.Lock()
		// An account left free for half a TTL (five scans) is nobody's
		// fair share (the count of daemons is behind): it is taken past the
		// share, and handed over again later.
		orphan := c.free[name] >= orphanScans
		c.mu.Unlock()
		if mine+len(want) < share || orphan {
			want = append(want, name)
		}
	}
	// Take-overs run side by side: after a daemon dies, its accounts wait
	// for the slowest of them.
	var wg sync.WaitGroup
	sem := make(chan struct{}, takers)
	for _, name := range want {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.take(ctx, life, name)
		}()
	}
	wg.Wait()
	c.mu.Lock()
	mine = len(c.held)
	c.mu.Unlock()
	if len(free) > 0 || mine <= share {
		return
	}
	for i := len(byScore) - 1; i >= 0 && mine > share; i-- {
		name := byScore[i]
		c.mu.Lock()
		_, ok := c.held[name]
		c.mu.Unlock()
		if !ok {
			continue
		}
		if !c.moves.Allow() {
			return
		}
		c.handOver(ctx, name)
		mine--
	}
}

// take acquires the account's lease, fences its previous holder in the
// store, and starts serving it: its outbox as the store has it (what the
// previous holder may have sent is in doubt), its login as stored (the
// same wId: no new login when it is still online).
func (c *cluster) take(ctx, life context.Context, name string) bool {
	key := c.key(name)
	l, err := c.leases.Acquire(ctx, key)
	if errors.Is(err, lease.ErrHeld) {
		return false
	}
	if err != nil {
		c.d.log.Warn("cluster: cannot take an account", "account", name, "err", err)
		return false
	}
	start := time.Now()
	fail := func(err error) bool {
		c.d.log.Warn("cluster: cannot take an account", "account", name, "err", err)
		l.Release(ctx)
		c.st.Forget(name)
		return false
	}
	if err := c.resume(ctx, name, l); err != nil {
		return fail(err)
	}
	if err := l.Check(); err != nil { // lost while resuming
		return fail(err)
	}
	hctx, cancel := context.WithCancel(life)
	c.mu.Lock()
	c.held[name] = &heldAccount{since: start, ctx: hctx, cancel: cancel}
	c.byKey[key] = name
	c.m.held.Set(float64(len(c.held)))
	c.mu.Unlock()
	c.m.moves.WithLabelValues("taken").Inc()
	c.d.log.Info("cluster: account taken", "account", name, "node", c.node, "took", time.Since(start).Round(time.Millisecond))
	c.d.sched.at(c.d.accounts[name], time.Now())
	return true
}

// resume fences the account's previous writer in the store and resumes the
// account from its state there.
func (c *cluster) resume(ctx context.Context, name string, l *lease.Lease) error {
	if err := c.st.Claim(ctx, name, l.Check); err != nil {
		return err
	}
	a := c.d.accounts[name]
	a.keeper.Forget()
	part := c.st.Of(name)
	if err := c.d.outbox.RecoverAccount(ctx, name, part); err != nil {
		return err
	}
	return poller.RestoreCooldowns(ctx, part, c.d.rules.cooldowns, c.d.now())
}

// fenced is told that the store refused a write to an account this daemon
// holds the lease of: a daemon whose lease had run out claimed it late.
// The lease decides: the account is claimed again, and resumed from the
// store.
func (c *cluster) fenced(ctx context.Context, name string) {
	l := c.leases.Get(c.key(name))
	if l == nil || l.Check() != nil {
		return
	}
	c.d.outbox.Drop(name)
	if err := c.resume(ctx, name, l); err != nil {
		c.d.log.Warn("cluster: cannot claim an account again", "account", name, "err", err)
		return
	}
	c.m.moves.WithLabelValues("reclaimed").Inc()
	c.d.log.Warn("cluster: account claimed again after a late claim by another daemon", "account", name, "node", c.node)
}

// stop ends serving the account here; it reports whether it was served,
// and returns a channel closed once the account's outbox worker stopped.
func (c *cluster) stop(name string) (bool, <-chan struct{}) {
	c.mu.Lock()
	h := c.held[name]
	delete(c.held, name)
	delete(c.byKey, c.key(name))
	c.m.held.Set(float64(len(c.held)))
	c.mu.Unlock()
	if h == nil {
		return false, nil
	}
	h.cancel()
	stopped := c.d.outbox.Drop(name)
	if a := c.d.accounts[name]; a != nil {
		a.keeper.Forget()
	}
	c.st.Forget(name)
	return true, stopped
}

// handOver gives an account up for another daemon to take at once.
func (c *cluster) handOver(ctx context.Context, name string) {
	l := c.leases.Get(c.key(name))
	held, stopped := c.stop(name)
	if !held || l == nil {
		return
	}
	// A send under way when the account is handed over could reach the
	// upstream after the next holder took the account and judged that
	// reply in doubt, and sent it again when its echo had not come: the
	// lease goes once no call of this daemon's for the account is under
	// way. A call lasts at most the upstream timeout.
	wait := time.NewTimer(c.d.cfg.Upstream.Timeout + time.Second)
	select {
	case <-stopped:
	case <-wait.C:
		c.d.log.Warn("cluster: handing an account over while its send is still under way", "account", name)
	}
	wait.Stop()
	if err := l.Release(ctx); err != nil {
		c.d.log.Warn("cluster: handing an account over", "account", name, "err", err)
	}
	c.mu.Lock()
	c.gave[name] = time.Now()
	c.mu.Unlock()
	c.m.moves.WithLabelValues("handed_over").Inc()
	c.d.log.Info("cluster: account handed over", "account", name, "node", c.node)
}

// lost is told of a lease that ran out or was taken: the account stops
// here at once.
func (c *cluster) lost(key string) {
	c.mu.Lock()
	name, ok := c.byKey[key]
	if stop := c.sessions[key]; stop != nil {
		stop()
		c.d.log.Warn("cluster: lease lost; the session stops here", "lease", key, "node", c.node)
	}
	c.mu.Unlock()
	if ok {
		ok, _ = c.stop(name)
	}
	if ok {
		c.m.moves.WithLabelValues("lost").Inc()
		c.d.log.Warn("cluster: lease lost; the account stops here", "account", name, "node", c.node)
	}
}

// releaseAll hands every account over when the daemon stops, so that the
// others take them at once rather than after the TTL.
func (c *cluster) releaseAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.mu.Lock()
	names := make([]string, 0, len(c.held))
	for name := range c.held {
		names = append(names, name)
	}
	c.mu.Unlock()
	for _, name := range names {
		c.handOver(ctx, name)
	}
	c.nodes.Delete(ctx, lease.Key("node", c.node))
	return nil
}

// sessionKey is the lease of a token or app-key session.
func sessionKey(name string) string { return lease.Key("sess", name) }

// leased runs a session only while this daemon holds its lease: the
// daemons take it in turns, one at a time, each going on from the tokens
// in the store; a lost lease ends the run at once.
func (c *cluster) leased(name string, run func(context.Context) error) func(context.Context) error {
	key := sessionKey(name)
	return func(ctx context.Context) error {
		for ctx.Err() == nil {
			l, err := c.leases.Acquire(ctx, key)
			if err == nil {
				hctx, cancel := context.WithCancel(ctx)
				c.mu.Lock()
				c.sessions[key] = cancel
				c.mu.Unlock()
				c.d.log.Info("cluster: session taken", "session", name, "node", c.node)
				if err := run(hctx); err != nil && hctx.Err() == nil {
					c.d.log.Warn("cluster: session stopped", "session", name, "err", err)
				}
				cancel()
				c.mu.Lock()
				delete(c.sessions, key)
				c.mu.Unlock()
				rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
				l.Release(rctx)
				rcancel()
			} else if !errors.Is(err, lease.ErrHeld) {
				c.d.log.Warn("cluster: cannot take a session", "session", name, "err", err)
			}
			t := time.NewTimer(c.cfg.LeaseTTL / 3)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		return nil
	}
}

// sessionFence is the fence of a session's logins and refreshes.
func (c *cluster) sessionFence(name string) func() error {
	return func() error { return c.leases.Check(sessionKey(name)) }
}

// status is the cluster part of /api/status.
func (c *cluster) status() *admin.ClusterStatus {
	out := &admin.ClusterStatus{Node: c.node, LeaseTTL: c.cfg.LeaseTTL.String()}
	for _, l := range c.leases.Held() {
		s := l.Status()
		c.mu.Lock()
		name := c.byKey[s.Key]
		c.mu.Unlock()
		if name == "" {
			continue
		}
		out.Held = append(out.Held, admin.HeldAccount{Account: name, LeaseAge: s.Age.Round(time.Millisecond).String(), Revision: s.Revision, Valid: s.Valid, Since: s.Since})
	}
	slices.SortFunc(out.Held, func(a, b admin.HeldAccount) int { return strings.Compare(a.Account, b.Account) })
	return out
}
