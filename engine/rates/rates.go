// Package rates counts what happened over the last minute — messages in,
// replies out — per account, for a person watching the daemon. A Window
// is twelve five-second buckets and a running total: recording an event
// or reading the count costs a few operations whatever the traffic, and an
// idle window costs no work at all, since no timer ever runs; the buckets
// that time has left behind are emptied by the next call that looks.
//
// A person reading "per minute" does not miss the seconds, and a window
// fits in 48 bytes, its buckets inline: a daemon of ten thousand accounts
// keeps a second's worth of figures for each in under a megabyte, and
// nothing for an account that has had no event.
package rates

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Span is how far back a Window counts.
const Span = 60 * time.Second

// Step is the time one bucket of a Window covers.
const Step = 5 * time.Second

const (
	buckets = int64(Span / Step)
	step    = int64(Step / time.Second)
)

// Window counts events over the last Span in buckets of Step. Its methods
// are safe for concurrent use; the zero value is an empty window.
type Window struct {
	mu    sync.Mutex
	head  int64  // the number of the newest bucket: Unix seconds / step
	total uint32 // the sum of counts
	// A bucket holds one Step's count, which saturates at 65,535: more
	// than an account can receive in five seconds.
	counts [buckets]uint16
	used   bool // head is set
}

// bucketOf is the number of the bucket that holds time t; times before
// 1970 (a zero time) have one too.
func bucketOf(t time.Time) int64 {
	sec := t.Unix()
	if sec < 0 {
		return -((-sec + step - 1) / step)
	}
	return sec / step
}

// advance moves the window's newest bucket to bucket sec, emptying the
// buckets in between (at most all of them). w.mu is held.
func (w *Window) advance(sec int64) {
	if !w.used {
		w.head, w.used = sec, true
		return
	}
	if sec <= w.head {
		return
	}
	switch {
	case w.total == 0:
		// Nothing is counted: there is nothing to expire.
	case sec-w.head >= buckets:
		// A minute without events: every bucket expired.
		w.counts, w.total = [buckets]uint16{}, 0
	default:
		for s := w.head + 1; s <= sec; s++ {
			i := slot(s)
			w.total -= uint32(w.counts[i])
			w.counts[i] = 0
		}
	}
	w.head = sec
}

// slot is the index in counts of bucket number sec.
func slot(sec int64) int64 { return (sec%buckets + buckets) % buckets }

// Add records n events at now. Events older than the window (a clock that
// went back more than Span) are not counted.
func (w *Window) Add(now time.Time, n uint64) {
	sec := bucketOf(now)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(sec)
	if sec <= w.head-buckets {
		return
	}
	c := &w.counts[slot(sec)]
	n = min(n, math.MaxUint16-uint64(*c))
	*c += uint16(n)
	w.total += uint32(n)
}

// Count returns the events recorded in the Span up to now: the bucket of
// now and the 11 before it.
func (w *Window) Count(now time.Time) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(bucketOf(now))
	return uint64(w.total)
}

// Accounts holds the in and out windows of a fixed set of accounts. An
// account's windows are made at its first event: of ten thousand idle
// accounts, each costs a pointer and its name's place in a map.
type Accounts struct {
	now   func() time.Time
	index map[string]int         // the slot of each name; never changed after NewAccounts: read without a lock
	slots []atomic.Pointer[pair] // nil until the account's first event
	order []int                  // the slot of each name given to NewAccounts, nil when the names are distinct
}

type pair struct{ in, out Window }

// NewAccounts returns the windows of the named accounts, read on clock now
// (time.Now when nil).
func NewAccounts(now func() time.Time, names ...string) *Accounts {
	if now == nil {
		now = time.Now
	}
	a := &Accounts{now: now, index: make(map[string]int, len(names))}
	order := make([]int, len(names))
	for i, n := range names {
		slot, ok := a.index[n]
		if !ok {
			slot = len(a.index)
			a.index[n] = slot
		}
		order[i] = slot
	}
	a.slots = make([]atomic.Pointer[pair], len(a.index))
	if len(a.index) < len(names) {
		a.order = order
	}
	return a
}

// windows returns the account's windows, made if made is set and they are
// not yet; nil for an unknown account, or one without events when made is
// not set.
func (a *Accounts) windows(account string, made bool) *pair {
	slot, ok := a.index[account]
	if !ok {
		return nil
	}
	p := a.slots[slot].Load()
	if p == nil && made {
		a.slots[slot].CompareAndSwap(nil, &pair{})
		p = a.slots[slot].Load()
	}
	return p
}

// In records n messages received by account; an account not given to
// NewAccounts is ignored.
func (a *Accounts) In(account string, n int) {
	if n > 0 {
		if p := a.windows(account, true); p != nil {
			p.in.Add(a.now(), uint64(n))
		}
	}
}

// Out records n messages sent by account.
func (a *Accounts) Out(account string, n int) {
	if n > 0 {
		if p := a.windows(account, true); p != nil {
			p.out.Add(a.now(), uint64(n))
		}
	}
}

// PerMinute returns the messages account received and sent over the last
// minute; 0, 0 for an unknown account.
func (a *Accounts) PerMinute(account string) (in, out float64) {
	p := a.windows(account, false)
	if p == nil {
		return 0, 0
	}
	now := a.now()
	// The window spans exactly one minute, so its count is the rate.
	return float64(p.in.Count(now)), float64(p.out.Count(now))
}

// PerMinuteAll returns PerMinute of every account, in the order of the
// names given to NewAccounts, read on one clock reading and without a
// lookup by name: a page listing ten thousand accounts asks for all.
func (a *Accounts) PerMinuteAll() (in, out []float64) {
	now := a.now()
	n := len(a.slots)
	if a.order != nil {
		n = len(a.order)
	}
	in, out = make([]float64, n), make([]float64, n)
	for i := range n {
		slot := i
		if a.order != nil {
			slot = a.order[i]
		}
		if p := a.slots[slot].Load(); p != nil {
			in[i], out[i] = float64(p.in.Count(now)), float64(p.out.Count(now))
		}
	}
	return in, out
}
