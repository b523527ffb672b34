package rules

import (
	"slices"
	"sync"
	"time"
)

// DefaultMaxCooldowns is the number of (rule, conversation) entries a
// Cooldowns made with a size of 0 keeps.
const DefaultMaxCooldowns = 100_000

// Cooldowns remembers when each rule last fired in each conversation, so a
// rule with a cooldown fires at most once per conversation per cooldown. It
// is kept apart from the immutable Set so that it survives a reload, is safe
// for concurrent use, and holds at most a fixed number of entries: when
// full, it first forgets entries whose cooldown is over, then the oldest.
type Cooldowns struct {
	mu      sync.Mutex
	max     int
	entries map[cooldownKey]cooldownEntry
}

type cooldownKey struct{ rule, conv string }

type cooldownEntry struct{ fired, until time.Time }

// NewCooldowns returns an empty Cooldowns holding at most max entries (0
// means DefaultMaxCooldowns).
func NewCooldowns(max int) *Cooldowns {
	if max <= 0 {
		max = DefaultMaxCooldowns
	}
	return &Cooldowns{max: max, entries: make(map[cooldownKey]cooldownEntry)}
}

// allow reports whether rule may fire in conv at now, and if so records that
// it did.
func (c *Cooldowns) allow(rule, conv string, d time.Duration, now time.Time) bool {
	k := cooldownKey{rule, conv}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok && now.Sub(e.fired) < d && !now.Before(e.fired) {
		return false
	}
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[k] = cooldownEntry{fired: now, until: now.Add(d)}
	return true
}

// evict makes room for at least one entry, keeping memory bounded.
func (c *Cooldowns) evict(now time.Time) {
	for k, e := range c.entries {
		if !e.until.After(now) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) < c.max {
		return
	}
	// Still full: every entry is live. Forget the tenth that fired longest
	// ago; they are the nearest to expiry. Dropping a tenth at once keeps
	// this sort rare.
	type aged struct {
		k     cooldownKey
		fired time.Time
	}
	all := make([]aged, 0, len(c.entries))
	for k, e := range c.entries {
		all = append(all, aged{k, e.fired})
	}
	slices.SortFunc(all, func(a, b aged) int { return a.fired.Compare(b.fired) })
	for _, a := range all[:max(1, c.max/10)] {
		delete(c.entries, a.k)
	}
}

// Len returns the number of entries held.
func (c *Cooldowns) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
