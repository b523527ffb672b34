// Package lease gives one daemon at a time a claim on a shared resource (an
// account, a session, an app key) through a JetStream key-value bucket.
//
// A lease is a key in a bucket whose TTL is the lease's TTL: it is taken with
// Create (which fails while another holder's key exists), renewed with Update
// on the revision the holder last wrote (a compare-and-set: it fails once
// anyone else wrote the key), and it ends when its holder stops renewing it,
// because the server drops a key TTL after its last write. No two clocks are
// compared: the server's clock expires the key, and the holder counts on its
// own monotonic clock from the moment it sent the renewal that succeeded.
//
// A holder may act for the resource only while Lease.Check passes: it fails
// once the lease's local deadline (the start of the last successful renewal
// plus the TTL, less a safety margin) has passed, or a renewal was refused.
// Since the server cannot have expired the key before that deadline, no other
// daemon can hold the lease while Check passes, however long this process was
// paused (SIGSTOP, a long GC, a VM migration): the monotonic clock runs on
// while it is stopped, so Check fails as soon as it resumes.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KV is what a lease needs of a JetStream key-value bucket; a
// jetstream.KeyValue is one.
type KV interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error
}

var _ KV = (jetstream.KeyValue)(nil)

// Record is what a lease's key holds.
type Record struct {
	// Holder names the daemon that holds the lease.
	Holder string `json:"holder"`
	// Since is when the holder took it, on the holder's clock.
	Since time.Time `json:"since"`
	// Renewed is when the holder last renewed it, on the holder's clock.
	Renewed time.Time `json:"renewed"`
}

// ErrHeld is returned by Acquire when another holder's lease is running.
var ErrHeld = errors.New("lease: held by another daemon")

// ErrLost is returned by Check once the lease may have passed to another
// holder: its renewal was refused, or it was not renewed in time.
var ErrLost = errors.New("lease: lost")

// Options configure a Manager.
type Options struct {
	// Holder names this daemon; it must be unique among the daemons
	// sharing the bucket.
	Holder string
	// TTL is the bucket's TTL: how long a key outlives its last write.
	TTL time.Duration
	// Margin is taken off the TTL for the holder's own deadline, for the
	// server's clock running slightly fast (default TTL/10).
	Margin time.Duration
	// Now is the clock (default time.Now). Its readings must carry a
	// monotonic component for a paused process to see the time it lost.
	Now func() time.Time
	// OnLost is called, once, with the key of each lease lost while held.
	OnLost func(key string)
}

// Manager takes, renews and releases the leases of one holder.
type Manager struct {
	kv   KV
	opts Options

	mu     sync.Mutex
	leases map[string]*Lease
}

// New returns a Manager of holder's leases in kv.
func New(kv KV, opts Options) (*Manager, error) {
	if opts.Holder == "" {
		return nil, errors.New("lease: a holder name is required")
	}
	if opts.TTL <= 0 {
		return nil, errors.New("lease: the TTL must be positive")
	}
	if opts.Margin <= 0 {
		opts.Margin = opts.TTL / 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Manager{kv: kv, opts: opts, leases: map[string]*Lease{}}, nil
}

// Holder returns the name of the daemon whose leases m manages.
func (m *Manager) Holder() string { return m.opts.Holder }

// TTL returns the leases' TTL.
func (m *Manager) TTL() time.Duration { return m.opts.TTL }

// Lease is one lease held by a Manager's holder.
type Lease struct {
	m   *Manager
	key string

	mu       sync.Mutex
	rec      Record
	rev      uint64
	deadline time.Time // on the monotonic clock
	renewed  time.Time // start of the last successful write
	lost     bool
}

// Key returns the lease's key.
func (l *Lease) Key() string { return l.key }

// Key escapes a resource name into a valid key: letters, digits, '-', '_',
// '/', '=' and '.' are kept, any other byte is written as "_xx" in hex.
func Key(kind, name string) string {
	var b strings.Builder
	b.WriteString(kind)
	b.WriteByte('.')
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '/', c == '=':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

// Acquire takes the lease of key, failing with ErrHeld while another
// holder's runs. A lease this holder already holds is returned as it is.
func (m *Manager) Acquire(ctx context.Context, key string) (*Lease, error) {
	m.mu.Lock()
	if l := m.leases[key]; l != nil {
		m.mu.Unlock()
		if l.Check() == nil {
			return l, nil
		}
		m.forget(l)
		m.mu.Lock()
	}
	m.mu.Unlock()
	start := m.opts.Now()
	rec := Record{Holder: m.opts.Holder, Since: start.Round(0), Renewed: start.Round(0)}
	data, _ := json.Marshal(rec)
	rev, err := m.kv.Create(ctx, key, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("%w: %s", ErrHeld, key)
	}
	if err != nil {
		return nil, fmt.Errorf("lease: take %s: %w", key, err)
	}
	l := &Lease{m: m, key: key, rec: rec, rev: rev, renewed: start, deadline: m.deadline(start)}
	m.mu.Lock()
	m.leases[key] = l
	m.mu.Unlock()
	return l, nil
}

func (m *Manager) deadline(start time.Time) time.Time {
	return start.Add(m.opts.TTL - m.opts.Margin)
}

// Get returns the held lease of key, or nil.
func (m *Manager) Get(key string) *Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leases[key]
}

// Held returns the keys of the leases held, whether or not still valid.
func (m *Manager) Held() []*Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Lease, 0, len(m.leases))
	for _, l := range m.leases {
		out = append(out, l)
	}
	return out
}

// Check reports whether key is held and valid now: nil, or an error
// wrapping ErrLost naming the key.
func (m *Manager) Check(key string) error {
	l := m.Get(key)
	if l == nil {
		return fmt.Errorf("%w: %s is not held by %s", ErrLost, key, m.opts.Holder)
	}
	return l.Check()
}

// Check reports whether the lease is still certainly held: nil, or an
// error wrapping ErrLost.
func (l *Lease) Check() error {
	now := l.m.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost {
		return fmt.Errorf("%w: %s", ErrLost, l.key)
	}
	if !now.Before(l.deadline) {
		return fmt.Errorf("%w: %s not renewed for %v (TTL %v)", ErrLost, l.key, now.Sub(l.renewed).Round(time.Millisecond), l.m.opts.TTL)
	}
	return nil
}

// Status is a lease as its holder sees it, for the operator.
type Status struct {
	Key      string
	Since    time.Time
	Age      time.Duration // since the last successful renewal began
	Revision uint64
	Valid    bool
}

// Status returns the lease's figures.
func (l *Lease) Status() Status {
	now := l.m.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return Status{Key: l.key, Since: l.rec.Since, Age: now.Sub(l.renewed), Revision: l.rev, Valid: !l.lost && now.Before(l.deadline)}
}

// Renew writes the lease again on the revision last written. A refused
// write (another holder took the key after it expired, or the key is
// gone) loses the lease for good; any other error leaves it as it was,
// valid until its deadline.
func (l *Lease) Renew(ctx context.Context) error {
	if err := l.Check(); err != nil {
		l.m.lose(l)
		return err
	}
	start := l.m.opts.Now()
	l.mu.Lock()
	rec, rev := l.rec, l.rev
	l.mu.Unlock()
	rec.Renewed = start.Round(0)
	data, _ := json.Marshal(rec)
	nrev, err := l.m.kv.Update(ctx, l.key, data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) {
		l.m.lose(l)
		return fmt.Errorf("%w: %s: renewal refused: %v", ErrLost, l.key, err)
	}
	if err != nil {
		return fmt.Errorf("lease: renew %s: %w", l.key, err)
	}
	l.mu.Lock()
	if !l.lost {
		l.rec, l.rev, l.renewed, l.deadline = rec, nrev, start, l.m.deadline(start)
	}
	l.mu.Unlock()
	return nil
}

// lose marks l lost and tells OnLost, once.
func (m *Manager) lose(l *Lease) {
	l.mu.Lock()
	was := l.lost
	l.lost = true
	l.mu.Unlock()
	m.forget(l)
	if !was && m.opts.OnLost != nil {
		m.opts.OnLost(l.key)
	}
}

func (m *Manager) forget(l *Lease) {
	m.mu.Lock()
	if m.leases[l.key] == l {
		delete(m.leases, l.key)
	}
	m.mu.Unlock()
}

// Release gives the lease up at once, so that another daemon may take it
// without waiting for the TTL. It deletes the key only if this holder's
// write is still the last one.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	rev, lost := l.rev, l.lost
	l.lost = true
	l.mu.Unlock()
	l.m.forget(l)
	if lost {
		return nil
	}
	if err := l.m.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("lease: release %s: %w", l.key, err)
	}
	return nil
}

// renewers bounds the renewals in flight at once: with thousands of
// leases, renewing them one round trip after another would take longer
// than a third of the TTL.
const renewers = 64

// RenewAll renews every held lease due for it: those whose last renewal
// began a third of the TTL ago or more. It returns the errors of the
// renewals that failed.
func (m *Manager) RenewAll(ctx context.Context) error {
	now := m.opts.Now()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, renewers)
	for _, l := range m.Held() {
		l.mu.Lock()
		due := now.Sub(l.renewed) >= m.opts.TTL/3
		l.mu.Unlock()
		if !due {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := l.Renew(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Run renews the held leases until ctx ends, checking every tick (default
// TTL/10), so that each is renewed a third of the way into its TTL and has
// two more chances before it runs out.
func (m *Manager) Run(ctx context.Context, tick time.Duration) {
	if tick <= 0 {
		tick = m.opts.TTL / 10
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.RenewAll(ctx)
		}
	}
}

// Peek returns the record of key as stored, its revision and how long ago
// it was last written by the server's clock; ok is false when nobody holds
// it.
func Peek(ctx context.Context, kv KV, key string) (rec Record, rev uint64, written time.Time, ok bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Record{}, 0, time.Time{}, false, nil
	}
	if err != nil {
		return Record{}, 0, time.Time{}, false, fmt.Errorf("lease: read %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return Record{}, 0, time.Time{}, false, fmt.Errorf("lease: %s holds no lease record: %w", key, err)
	}
	return rec, e.Revision(), e.Created(), true, nil
}
