package events

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

func fixedClock() func() time.Time { return func() time.Time { return t0 } }

func seqs(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func TestRecentKeepsTheNewestOldestFirst(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		published, ask int
		want           []uint64
	}{
		"empty":                 {0, 0, []uint64{}},
		"fewer than asked":      {2, 5, []uint64{1, 2}},
		"all before wrapping":   {3, 0, []uint64{1, 2, 3}},
		"last two":              {3, 2, []uint64{2, 3}},
		"wrapped, all held":     {12, 0, []uint64{3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		"wrapped, last three":   {12, 3, []uint64{10, 11, 12}},
		"exactly full":          {10, 0, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		"wrapped, ask too many": {25, 99, []uint64{16, 17, 18, 19, 20, 21, 22, 23, 24, 25}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := New(Options{Recent: 10, Now: fixedClock()})
			for i := range tc.published {
				b.Publish(Event{Kind: KindReload, Message: fmt.Sprint(i + 1)})
			}
			got := b.Recent(tc.ask)
			if fmt.Sprint(seqs(got)) != fmt.Sprint(tc.want) {
				t.Fatalf("Recent(%d) = %v, want %v", tc.ask, seqs(got), tc.want)
			}
			for _, e := range got {
				if e.Message != fmt.Sprint(e.Seq) {
					t.Errorf("event %d carries %q", e.Seq, e.Message)
				}
			}
		})
	}
}

func TestPublishStampsUnlessTimeIsSet(t *testing.T) {
	t.Parallel()
	b := New(Options{Now: fixedClock()})
	set := t0.Add(-time.Hour)
	b.Publish(Event{Kind: KindSession})
	b.Publish(Event{Kind: KindSession, Time: set})
	got := b.Recent(0)
	if !got[0].Time.Equal(t0) || !got[1].Time.Equal(set) {
		t.Fatalf("times = %v, %v; want %v, %v", got[0].Time, got[1].Time, t0, set)
	}
}

// next receives one event or fails after a deadline.
func next(t *testing.T, ch <-chan Event) (Event, bool) {
	t.Helper()
	select {
	case e, ok := <-ch:
		return e, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no event and no close within 10s")
		return Event{}, false
	}
}

func TestSubscriberGetsEveryEventInOrder(t *testing.T) {
	t.Parallel()
	b := New(Options{Now: fixedClock()})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := b.Subscribe(ctx)
	b.Publish(Event{Kind: KindSession, Account: "shop", Message: "online"})
	b.Publish(Event{Kind: KindDeadLetter, Account: "shop", Message: "gave up"})
	for want := uint64(1); want <= 2; want++ {
		e, ok := next(t, ch)
		if !ok || e.Seq != want || e.Account != "shop" {
			t.Fatalf("event %d = %+v, open %v", want, e, ok)
		}
	}
}

// TestSlowSubscriberLosesEventsWithoutBlocking: a subscriber that never
// reads holds up neither the publisher nor a subscriber that keeps up; it
// loses what its buffer cannot hold, counted, and sees the gap in Seq.
func TestSlowSubscriberLosesEventsWithoutBlocking(t *testing.T) {
	t.Parallel()
	b := New(Options{Buffer: 4, Now: fixedClock()})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	slow := b.Subscribe(ctx)
	fast := b.Subscribe(ctx)
	for i := range 100 {
		b.Publish(Event{Kind: KindPlugin})
		if e, _ := next(t, fast); e.Seq != uint64(i+1) {
			t.Fatalf("the subscriber that keeps up got %d, want %d", e.Seq, i+1)
		}
	}
	if got := b.Dropped(); got != 96 {
		t.Errorf("Dropped = %d, want 96", got)
	}
	for want := uint64(1); want <= 4; want++ {
		if e, _ := next(t, slow); e.Seq != want {
			t.Fatalf("slow subscriber got %d, want %d", e.Seq, want)
		}
	}
	b.Publish(Event{Kind: KindPlugin})
	if e, _ := next(t, slow); e.Seq != 101 {
		t.Fatalf("after the gap the slow subscriber got %d, want 101", e.Seq)
	}
}

func TestSubscriptionClosesWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	b := New(Options{Now: fixedClock()})
	ctx, cancel := context.WithCancel(t.Context())
	ch := b.Subscribe(ctx)
	b.Publish(Event{Kind: KindReload})
	cancel()
	if e, ok := next(t, ch); !ok || e.Seq != 1 {
		t.Fatalf("the buffered event was lost: %+v, open %v", e, ok)
	}
	if _, ok := next(t, ch); ok {
		t.Fatal("the channel stayed open after its context ended")
	}
	if n := b.Subscribers(); n != 0 {
		t.Errorf("Subscribers = %d after the only one ended", n)
	}
	b.Publish(Event{Kind: KindReload}) // no send on the closed channel

	done, stop := context.WithCancel(t.Context())
	stop()
	if _, ok := next(t, b.Subscribe(done)); ok {
		t.Fatal("a subscription with an ended context delivered an event")
	}
}

// TestPublishersRaceSubscribersEnding tries to make a publisher send on a
// channel that a subscription's end closes; run it with -race.
func TestPublishersRaceSubscribersEnding(t *testing.T) {
	t.Parallel()
	b := New(Options{Buffer: 1, Now: fixedClock()})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				b.Publish(Event{Kind: KindSession})
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 100 {
				ctx, cancel := context.WithCancel(t.Context())
				ch := b.Subscribe(ctx)
				cancel()
				for range ch {
				}
			}
		})
	}
	wg.Wait()
	if got := len(b.Recent(0)); got != 1000 {
		t.Errorf("ring holds %d events, want 1000", got)
	}
	if last := b.Recent(1)[0].Seq; last != 2000 {
		t.Errorf("last seq = %d, want 2000", last)
	}
}

func TestPublishWithoutSubscribersDoesNotAllocate(t *testing.T) {
	b := New(Options{})
	e := Event{Kind: KindSession, Account: "shop", Message: "online"}
	if allocs := testing.AllocsPerRun(1000, func() { b.Publish(e) }); allocs != 0 {
		t.Fatalf("Publish allocates %.1f times, want 0", allocs)
	}
}

func BenchmarkPublish(b *testing.B) {
	e := Event{Kind: KindSession, Account: "shop", Message: "online"}
	b.Run("no subscribers", func(b *testing.B) {
		bus := New(Options{})
		b.ReportAllocs()
		for b.Loop() {
			bus.Publish(e)
		}
	})
	b.Run("one subscriber reading", func(b *testing.B) {
		bus := New(Options{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch := bus.Subscribe(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range ch {
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			bus.Publish(e)
		}
		cancel()
		<-done
	})
}
