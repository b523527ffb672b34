package engine

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/finderbot/finderbot/engine/store"
)

// deadLetterCounts are the dead letters of each account as the console's
// Overview shows them, read from the store again only after they changed:
// the Overview is served again at every event a browser hears of, and
// must not read every dead letter each time.
type deadLetterCounts struct {
	changes atomic.Uint64 // bumped after every change to the dead letters

	mu     sync.Mutex
	readAt uint64         // changes when counts were read
	counts map[string]int // nil until read
}

// changed says the dead letters changed: the next get reads them again.
// It is called after the change is written, so that a read it causes sees
// the change.
func (c *deadLetterCounts) changed() { c.changes.Add(1) }

// get returns the dead letters per account, read from st when they changed
// since the last read. The map is shared: callers only read it. When the
// store cannot be read, the last counts are returned (nil before any).
func (c *deadLetterCounts) get(ctx context.Context, st store.Store) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Loaded before the read: a change during it leaves the counts marked
	// older than it, so the next get reads again.
	gen := c.changes.Load()
	if c.counts != nil && c.readAt == gen {
		return c.counts
	}
	letters, err := st.DeadLetters(ctx, 0)
	if err != nil {
		return c.counts
	}
	counts := make(map[string]int)
	for _, dl := range letters {
		counts[dl.Item.Account]++
	}
	c.counts, c.readAt = counts, gen
	return counts
}
