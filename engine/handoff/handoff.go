// Package handoff keeps the conversations a person took over: when someone
// answers a conversation from the phone — an own message that no send of
// finderbot's accounts for (store.ClassifyEchoes) — the bot's automated
// replies there pause for a while, and each further message of the person
// extends the pause. The store holds the pauses (committed with the page
// that carried the person's message); a Registry holds them in memory for
// the rules, the poller and the outbox to consult.
package handoff

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/finderbot/finderbot/engine/store"
)

// Registry is the set of paused conversations. It is safe for concurrent
// use; a nil *Registry pauses nothing.
type Registry struct {
	pause time.Duration
	drop  bool

	mu       sync.RWMutex
	paused   map[key]store.Pause
	onChange func(account string)
}

type key struct{ account, conv string }

// New returns a registry whose pauses last pause after the person's latest
// message; drop says whether what was queued in a paused conversation is
// dropped (true) or held until the pause ends. A pause of 0 returns nil:
// takeover detection is off.
func New(pause time.Duration, drop bool) *Registry {
	if pause <= 0 {
		return nil
	}
	return &Registry{pause: pause, drop: drop, paused: map[key]store.Pause{}}
}

// Drop reports whether actions queued in a paused conversation are dropped
// rather than held.
func (r *Registry) Drop() bool { return r != nil && r.drop }

// OnChange sets a function called, outside the registry's lock, with the
// account of every conversation paused, extended or resumed.
func (r *Registry) OnChange(f func(account string)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.onChange = f
	r.mu.Unlock()
}

// Paused returns the pause of a conversation running at now, if any.
func (r *Registry) Paused(account, conv string, now time.Time) (store.Pause, bool) {
	if r == nil {
		return store.Pause{}, false
	}
	r.mu.RLock()
	p, ok := r.paused[key{account, conv}]
	r.mu.RUnlock()
	if !ok || !p.Until.After(now) {
		return store.Pause{}, false
	}
	return p, true
}

// Next returns the pause a person's message written at written, read at
// now, starts in a conversation, given the pause it may already be under
// (prev, zero for none). The pause runs from the message, not from when it
// was read, so that history read after a long stop pauses nothing; ok is
// false then. A message never shortens a pause.
func (r *Registry) Next(prev store.Pause, account, conv string, msgID uint64, written, now time.Time) (p store.Pause, ok bool) {
	if r == nil {
		return store.Pause{}, false
	}
	since := written
	if since.IsZero() || since.After(now) {
		since = now
	}
	until := since.Add(r.pause)
	if !until.After(now) {
		return store.Pause{}, false
	}
	if prev.Until.After(until) {
		until = prev.Until
	}
	return store.Pause{Account: account, Conv: conv, Since: since, Until: until, MsgID: msgID}, true
}

// Restore loads the pauses the store kept, at start.
func (r *Registry) Restore(ps []store.Pause) {
	if r == nil {
		return
	}
	r.mu.Lock()
	for _, p := range ps {
		r.paused[key{p.Account, p.Conv}] = p
	}
	r.mu.Unlock()
}

// Apply takes in pauses a committed page started or extended.
func (r *Registry) Apply(ps []store.Pause) {
	if r == nil || len(ps) == 0 {
		return
	}
	r.mu.Lock()
	for _, p := range ps {
		r.paused[key{p.Account, p.Conv}] = p
	}
	f := r.onChange
	r.mu.Unlock()
	if f != nil {
		for _, p := range ps {
			f(p.Account)
		}
	}
}

// Resume ends a conversation's pause and reports whether there was one
// running at now.
func (r *Registry) Resume(account, conv string, now time.Time) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	p, ok := r.paused[key{account, conv}]
	delete(r.paused, key{account, conv})
	f := r.onChange
	r.mu.Unlock()
	if ok && f != nil {
		f(account)
	}
	return ok && p.Until.After(now)
}

// List returns the pauses running at now, of one account or of all (""),
// by account and conversation, and forgets those that ended.
func (r *Registry) List(account string, now time.Time) []store.Pause {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []store.Pause
	for k, p := range r.paused {
		if !p.Until.After(now) {
			delete(r.paused, k)
			continue
		}
		if account == "" || k.account == account {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b store.Pause) int {
		if c := strings.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return strings.Compare(a.Conv, b.Conv)
	})
	return out
}
