// Package events is the daemon's bus of happenings worth showing a person:
// a session that came online or was kicked, a rule reload, a plugin that
// restarts, an action given up on. Publishers never wait: the bus keeps
// the most recent events in a bounded ring for whoever asks later, and
// hands each one to every subscriber whose buffer has room. A subscriber
// that falls behind loses events, which are counted and show as gaps in
// Event.Seq; it never slows the daemon down.
package events

import (
	"context"
	"sync"
	"time"
)

// Kinds of events, as found in Event.Kind.
const (
	// KindSession is a change in the life of an account or a session:
	// waiting for a scan, online, kicked, failed…
	KindSession = "session"
	// KindReload is a rule reload, ok or failed with its error.
	KindReload = "reload"
	// KindPlugin is a plugin's change of state: ready, restarting with
	// the reason, quarantined…
	KindPlugin = "plugin"
	// KindDeadLetter is an action given up on, with the reason.
	KindDeadLetter = "dead_letter"
	// KindHandoff is a conversation a person answered from the phone:
	// the bot pauses there.
	KindHandoff = "conversation.handoff"
	// KindResumed is a paused conversation handed back to the bot.
	KindResumed = "conversation.resumed"
)

// Event is one happening.
type Event struct {
	// Seq numbers the events of a bus from 1 without gaps, so that a
	// subscriber sees from a gap that it lost events.
	Seq uint64 `json:"seq"`
	// Time is when the event was published.
	Time time.Time `json:"time"`
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Account names the account or session the event is about, or the
	// plugin of a KindPlugin event; "" for the daemon as a whole.
	Account string `json:"account,omitempty"`
	// Message says what happened, for people.
	Message string `json:"message"`
}

// Defaults of Options.
const (
	DefaultRecent = 1000
	DefaultBuffer = 256
)

// Options size a Bus. Zero fields take the defaults.
type Options struct {
	// Recent is how many events the ring keeps for Recent (default
	// DefaultRecent).
	Recent int
	// Buffer is the channel buffer of each subscriber (default
	// DefaultBuffer): how far it may fall behind before it loses events.
	Buffer int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Bus publishes events to a ring and to subscribers. It is safe for
// concurrent use; the zero value is not usable, call New.
type Bus struct {
	now    func() time.Time
	buffer int

	mu      sync.Mutex
	seq     uint64
	ring    []Event // allocated once, used as a circle
	next    int     // where the next event goes
	full    bool    // the ring has wrapped
	subs    map[*subscriber]struct{}
	dropped uint64
}

type subscriber struct {
	ch chan Event
}

// New returns an empty bus.
func New(opts Options) *Bus {
	if opts.Recent <= 0 {
		opts.Recent = DefaultRecent
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Bus{now: opts.Now, buffer: opts.Buffer, ring: make([]Event, opts.Recent), subs: map[*subscriber]struct{}{}}
}

// Publish numbers and stamps e (a Time already set is kept), keeps it in
// the ring and offers it to every subscriber without waiting: a
// subscriber whose buffer is full loses it. With no subscriber it costs a
// lock and a write into the ring, and it never allocates.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		// Stamped under the lock, so that times never go backwards
		// along Seq.
		e.Time = b.now()
	}
	b.ring[b.next] = e
	b.next++
	if b.next == len(b.ring) {
		b.next, b.full = 0, true
	}
	for s := range b.subs {
		select {
		case s.ch <- e:
		default:
			b.dropped++
		}
	}
}

// Recent returns up to n of the most recent events, oldest first; n <= 0
// means every event the ring holds.
func (b *Bus) Recent(n int) []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	held := b.next
	if b.full {
		held = len(b.ring)
	}
	if n <= 0 || n > held {
		n = held
	}
	out := make([]Event, n)
	start := b.next - n
	if start < 0 {
		start += len(b.ring)
	}
	for i := range out {
		out[i] = b.ring[(start+i)%len(b.ring)]
	}
	return out
}

// Subscribe returns a channel that receives every event published from
// now on until ctx ends, when it is closed. Its buffer holds
// Options.Buffer events; while it is full, events are lost to this
// subscriber (see Dropped and Event.Seq) rather than wait for it.
func (b *Bus) Subscribe(ctx context.Context) <-chan Event {
	s := &subscriber{ch: make(chan Event, b.buffer)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	// Publish sends under b.mu, so closing under it never races a send.
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, s)
		close(s.ch)
	})
	return s.ch
}

// Subscribers returns the number of subscriptions whose context has not
// ended.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Dropped returns how many events subscribers have lost, in all, because
// their buffer was full.
func (b *Bus) Dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}
