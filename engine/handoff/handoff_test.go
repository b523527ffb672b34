package handoff

import (
	"testing"
	"time"

	"github.com/finderbot/finderbot/engine/store"
)

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// TestNext: a pause runs from the person's message; old history pauses
// nothing, a clock ahead of ours is taken as now, and a later message
// never shortens a running pause.
func TestNext(t *testing.T) {
	t.Parallel()
	r := New(30*time.Minute, false)
	tests := map[string]struct {
		prev      store.Pause
		written   time.Time
		wantOK    bool
		wantUntil time.Time
	}{
		"just written":          {written: now, wantOK: true, wantUntil: now.Add(30 * time.Minute)},
		"written 10m ago":       {written: now.Add(-10 * time.Minute), wantOK: true, wantUntil: now.Add(20 * time.Minute)},
		"history read later":    {written: now.Add(-2 * time.Hour)},
		"no time":               {wantOK: true, wantUntil: now.Add(30 * time.Minute)},
		"from the future":       {written: now.Add(time.Hour), wantOK: true, wantUntil: now.Add(30 * time.Minute)},
		"extends":               {prev: store.Pause{Until: now.Add(5 * time.Minute)}, written: now, wantOK: true, wantUntil: now.Add(30 * time.Minute)},
		"never shortens":        {prev: store.Pause{Until: now.Add(2 * time.Hour)}, written: now, wantOK: true, wantUntil: now.Add(2 * time.Hour)},
		"old message, old prev": {prev: store.Pause{Until: now.Add(-time.Minute)}, written: now.Add(-time.Hour)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, ok := r.Next(tc.prev, "shop", "c", 7, tc.written, now)
			if ok != tc.wantOK || !p.Until.Equal(tc.wantUntil) {
				t.Fatalf("Next = %v until %v, want %v until %v", ok, p.Until, tc.wantOK, tc.wantUntil)
			}
		})
	}
}

// TestRegistry: applied pauses are seen until they end, listed, resumed
// once, and every change is told; a nil registry pauses nothing.
func TestRegistry(t *testing.T) {
	t.Parallel()
	r := New(30*time.Minute, true)
	var told []string
	r.OnChange(func(a string) { told = append(told, a) })
	r.Apply([]store.Pause{{Account: "shop", Conv: "c1", Until: now.Add(time.Hour)}, {Account: "mall", Conv: "c2", Until: now.Add(time.Minute)}})
	if _, ok := r.Paused("shop", "c1", now); !ok {
		t.Fatal("c1 is not paused")
	}
	if _, ok := r.Paused("mall", "c2", now.Add(2*time.Minute)); ok {
		t.Fatal("an ended pause still holds")
	}
	if got := r.List("", now.Add(2*time.Minute)); len(got) != 1 || got[0].Conv != "c1" {
		t.Fatalf("list %+v", got)
	}
	if !r.Resume("shop", "c1", now) || r.Resume("shop", "c1", now) {
		t.Fatal("resume is not once")
	}
	if len(told) != 3 || !r.Drop() {
		t.Fatalf("told %v, drop %v", told, r.Drop())
	}
	var none *Registry
	if _, ok := none.Paused("shop", "c1", now); ok || none.Drop() || New(0, true) != nil {
		t.Fatal("a nil registry pauses")
	}
}
