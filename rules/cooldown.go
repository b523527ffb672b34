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

// CooldownView is what rule evaluation needs of cooldowns: *Cooldowns
// records at once; *CooldownTx records tentatively, until its Commit.
type CooldownView interface {
	// Allow reports whether rule may fire in conv at now, given its
	// cooldown d, and if so records that it did.
	Allow(rule, conv string, d time.Duration, now time.Time) bool
}

var (
	_ CooldownView = (*Cooldowns)(nil)
	_ CooldownView = (*CooldownTx)(nil)
)

// Allow implements CooldownView; a nil *Cooldowns allows everything.
func (c *Cooldowns) Allow(rule, conv string, d time.Duration, now time.Time) bool {
	if c == nil {
		return true
	}
	k := cooldownKey{rule, conv}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coolingLocked(k, d, now) {
		return false
	}
	c.setLocked(k, cooldownEntry{fired: now, until: now.Add(d)}, now)
	return true
}

func (c *Cooldowns) coolingLocked(k cooldownKey, d time.Duration, now time.Time) bool {
	e, ok := c.entries[k]
	return ok && now.Sub(e.fired) < d && !now.Before(e.fired)
}

func (c *Cooldowns) setLocked(k cooldownKey, e cooldownEntry, now time.Time) {
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[k] = e
}

// CooldownMark is a rule firing in a conversation, as recorded by a
// CooldownTx: what a store keeps so that cooldowns survive a restart.
type CooldownMark struct {
	Rule, Conv   string
	Fired, Until time.Time
}

// Restore records marks (read back from a store) as if their rules had
// fired then.
func (c *Cooldowns) Restore(marks []CooldownMark) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range marks {
		c.setLocked(cooldownKey{m.Rule, m.Conv}, cooldownEntry{fired: m.Fired, until: m.Until}, m.Fired)
	}
}

// Begin starts a tentative set of firings over c. Rules evaluated through
// the CooldownTx see c's cooldowns and the ones it recorded itself, but c is
// unchanged until Commit: when the page whose messages fired the rules
// fails to commit, the firings are forgotten with it and the page's
// messages are answered when it is synced again.
func (c *Cooldowns) Begin() *CooldownTx { return &CooldownTx{base: c} }

// CooldownTx is a tentative set of firings; see Cooldowns.Begin. It is not
// safe for concurrent use.
type CooldownTx struct {
	base  *Cooldowns
	marks []CooldownMark
}

// Allow implements CooldownView.
func (t *CooldownTx) Allow(rule, conv string, d time.Duration, now time.Time) bool {
	k := cooldownKey{rule, conv}
	for i := len(t.marks) - 1; i >= 0; i-- {
		if m := t.marks[i]; m.Rule == rule && m.Conv == conv {
			if now.Sub(m.Fired) < d && !now.Before(m.Fired) {
				return false
			}
			break
		}
	}
	if t.base != nil {
		t.base.mu.Lock()
		cooling := t.base.coolingLocked(k, d, now)
		t.base.mu.Unlock()
		if cooling {
			return false
		}
	}
	t.marks = append(t.marks, CooldownMark{Rule: rule, Conv: conv, Fired: now, Until: now.Add(d)})
	return true
}

// Marks returns the firings recorded so far.
func (t *CooldownTx) Marks() []CooldownMark { return t.marks }

// Commit records the firings in the Cooldowns the transaction began from.
func (t *CooldownTx) Commit() {
	if t.base != nil {
		t.base.Restore(t.marks)
	}
	t.marks = nil
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
