package rates

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

func TestWindowCountsTheLastMinute(t *testing.T) {
	t.Parallel()
	type step struct {
		at   time.Duration // after t0
		add  uint64        // 0: read instead
		want uint64
	}
	tests := map[string][]step{
		"forgets each bucket of five seconds as it leaves": {
			{at: 0, add: 1}, {at: 30 * time.Second, add: 2},
			{at: 59 * time.Second, want: 3}, {at: 60 * time.Second, want: 2},
			{at: 89*time.Second + 999*time.Millisecond, want: 2}, {at: 90 * time.Second, want: 0},
		},
		"an idle gap longer than the window empties it": {
			{at: 0, add: 5}, {at: 10 * time.Minute, want: 0}, {at: 10 * time.Minute, add: 1}, {at: 10 * time.Minute, want: 1},
		},
		"a clock that steps back within the window counts": {
			{at: 50 * time.Second, add: 1}, {at: 20 * time.Second, add: 1}, {at: 50 * time.Second, want: 2},
			{at: 80 * time.Second, want: 1}, // the event at 20s is 60s old
		},
		"an event older than the window is not counted": {
			{at: 100 * time.Second, add: 1}, {at: 40 * time.Second, add: 7}, {at: 100 * time.Second, want: 1},
		},
		"reads in the same second agree": {
			{at: 0, add: 3}, {at: 500 * time.Millisecond, want: 3}, {at: 999 * time.Millisecond, want: 3},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var w Window
			for i, s := range steps {
				now := t0.Add(s.at)
				if s.add > 0 {
					w.Add(now, s.add)
					continue
				}
				if got := w.Count(now); got != s.want {
					t.Fatalf("step %d: Count at +%v = %d, want %d", i, s.at, got, s.want)
				}
			}
		})
	}
}

func TestWindowTakesAnyTimeWithoutPanicking(t *testing.T) {
	t.Parallel()
	var w Window
	w.Add(time.Time{}, 1) // before 1970
	w.Add(time.Time{}.Add(time.Second), 1)
	if got := w.Count(time.Time{}.Add(time.Second)); got != 2 {
		t.Fatalf("Count = %d, want 2", got)
	}
	w.Add(t0, 1)
	if got := w.Count(t0); got != 1 {
		t.Fatalf("Count = %d, want 1", got)
	}
}

func TestAccountsInAndOut(t *testing.T) {
	t.Parallel()
	now := t0
	a := NewAccounts(func() time.Time { return now }, "shop", "home")
	a.In("shop", 3)
	a.Out("shop", 1)
	a.In("home", 2)
	a.In("nobody", 9) // not configured: ignored
	a.Out("shop", 0)
	a.In("shop", -4) // nonsense: ignored
	check := func(name string, wantIn, wantOut float64) {
		t.Helper()
		if in, out := a.PerMinute(name); in != wantIn || out != wantOut {
			t.Errorf("PerMinute(%s) = %v, %v; want %v, %v", name, in, out, wantIn, wantOut)
		}
	}
	check("shop", 3, 1)
	check("home", 2, 0)
	check("nobody", 0, 0)
	now = now.Add(time.Minute)
	check("shop", 0, 0)
}

// TestAccountsOnTheRealClock runs on time.Now inside a synctest bubble,
// where a minute passes at once.
func TestAccountsOnTheRealClock(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a := NewAccounts(nil, "shop")
		for range 10 {
			a.In("shop", 1)
			time.Sleep(3 * time.Second)
		}
		a.Out("shop", 2)
		if in, out := a.PerMinute("shop"); in != 10 || out != 2 {
			t.Fatalf("after 30s: %v in, %v out; want 10, 2", in, out)
		}
		// 75s after the first: those of 21, 24 and 27s are left (the
		// bucket of 15 and 18s, 15s to 20s, is 60s old).
		time.Sleep(45 * time.Second)
		if in, out := a.PerMinute("shop"); in != 3 || out != 2 {
			t.Fatalf("after 75s: %v in, %v out; want 3, 2", in, out)
		}
		time.Sleep(time.Hour)
		if in, out := a.PerMinute("shop"); in != 0 || out != 0 {
			t.Fatalf("after an idle hour: %v in, %v out", in, out)
		}
	})
}

func TestWindowConcurrentAdds(t *testing.T) {
	t.Parallel()
	var w Window
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				w.Add(t0.Add(time.Duration(g*1000+i)*time.Millisecond), 1)
			}
		})
	}
	wg.Wait()
	// Every add fell within the window's last 60 seconds of t0+8s.
	if got := w.Count(t0.Add(8 * time.Second)); got != 8000 {
		t.Fatalf("Count = %d, want 8000", got)
	}
}

func TestAddDoesNotAllocate(t *testing.T) {
	var w Window
	now := t0
	if allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Second)
		w.Add(now, 1)
	}); allocs != 0 {
		t.Fatalf("Add allocates %.1f times", allocs)
	}
}

// TestPerMinuteAllAgreesWithPerMinute: the figures of every account at
// once are each account's own, in the order given, a name given twice
// sharing its windows.
func TestPerMinuteAllAgreesWithPerMinute(t *testing.T) {
	t.Parallel()
	now := t0
	a := NewAccounts(func() time.Time { return now }, "shop", "home", "shop", "idle")
	a.In("shop", 3)
	a.Out("shop", 1)
	a.In("home", 2)
	in, out := a.PerMinuteAll()
	for i, name := range []string{"shop", "home", "shop", "idle"} {
		wantIn, wantOut := a.PerMinute(name)
		if in[i] != wantIn || out[i] != wantOut {
			t.Errorf("%d (%s): %v in, %v out; want %v, %v", i, name, in[i], out[i], wantIn, wantOut)
		}
	}
	if in[0] != 3 || out[0] != 1 || in[1] != 2 || in[3] != 0 {
		t.Errorf("PerMinuteAll = %v, %v", in, out)
	}
}
