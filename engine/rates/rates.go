// Package rates counts what happened over the last minute — messages in,
// replies out — per account, for a person watching the daemon. A Window
// is 60 one-second buckets and a running total: recording an event or
// reading the count costs a few operations whatever the traffic, and an
// idle window costs nothing at all, since no timer ever runs; the buckets
// that time has left behind are emptied by the next call that looks.
//
// A Window is twelve five-second buckets: a person reading "per minute"
// does not miss the seconds, and an account that was active in the last
// minute holds 48 bytes of buckets per window, not 240.
package rates

import (
	"math"
	"sync"
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
	mu sync.Mutex
	// counts is allocated by the first Add and dropped after a minute
	// without events: most accounts of a large daemon are idle. A bucket
	// holds one Step's count, which saturates at 2^32-1.
	counts *[buckets]uint32
	total  uint64
	head   int64 // the number of the newest bucket: Unix seconds / step
	used   bool  // head is set
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
	case w.counts == nil:
		// Nothing was ever counted: there is nothing to expire.
	case sec-w.head >= buckets:
		// A minute without events: the buckets go, as for a window that
		// never counted.
		w.counts, w.total = nil, 0
	default:
		for s := w.head + 1; s <= sec; s++ {
			i := slot(s)
			w.total -= uint64(w.counts[i])
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
	if w.counts == nil {
		w.counts = new([buckets]uint32)
	}
	c := &w.counts[slot(sec)]
	n = min(n, math.MaxUint32-uint64(*c))
	*c += uint32(n)
	w.total += n
}

// Count returns the events recorded in the Span up to now: the bucket of
// now and the 11 before it.
func (w *Window) Count(now time.Time) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.advance(bucketOf(now))
	return w.total
}

// Accounts holds the in and out windows of a fixed set of accounts.
type Accounts struct {
	now   func() time.Time
	m     map[string]*pair // never changed after NewAccounts: read without a lock
	order []*pair          // the accounts in the order given to NewAccounts
}

type pair struct{ in, out Window }

// NewAccounts returns the windows of the named accounts, read on clock now
// (time.Now when nil).
func NewAccounts(now func() time.Time, names ...string) *Accounts {
	if now == nil {
		now = time.Now
	}
	a := &Accounts{now: now, m: make(map[string]*pair, len(names)), order: make([]*pair, len(names))}
	for i, n := range names {
		p := a.m[n]
		if p == nil {
			p = &pair{}
			a.m[n] = p
		}
		a.order[i] = p
	}
	return a
}

// In records n messages received by account; an account not given to
// NewAccounts is ignored.
func (a *Accounts) In(account string, n int) {
	if p := a.m[account]; p != nil && n > 0 {
		p.in.Add(a.now(), uint64(n))
	}
}

// Out records n messages sent by account.
func (a *Accounts) Out(account string, n int) {
	if p := a.m[account]; p != nil && n > 0 {
		p.out.Add(a.now(), uint64(n))
	}
}

// PerMinute returns the messages account received and sent over the last
// minute; 0, 0 for an unknown account.
func (a *Accounts) PerMinute(account string) (in, out float64) {
	p := a.m[account]
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
	in, out = make([]float64, len(a.order)), make([]float64, len(a.order))
	for i, p := range a.order {
		in[i], out[i] = float64(p.in.Count(now)), float64(p.out.Count(now))
	}
	return in, out
}
