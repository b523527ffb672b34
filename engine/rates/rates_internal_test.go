package rates

import (
	"math"
	"testing"
	"time"
	"unsafe"
)

// TestWindowIsSmallAndAllocatesNothing keeps a daemon of many accounts
// cheap: a window fits in 48 bytes, buckets included, and neither counting
// nor reading it allocates, however far apart the calls. (Not parallel:
// AllocsPerRun counts the whole process's allocations.)
func TestWindowIsSmallAndAllocatesNothing(t *testing.T) {
	if size := unsafe.Sizeof(Window{}); size > 48 {
		t.Errorf("a Window takes %d bytes, want at most 48", size)
	}
	var w Window
	now := time.Unix(1_800_000_000, 0)
	allocs := testing.AllocsPerRun(200, func() {
		now = now.Add(7 * time.Second)
		w.Add(now, 3)
		w.Count(now.Add(time.Minute))
	})
	if allocs != 0 {
		t.Errorf("%v allocations a call", allocs)
	}
}

// TestBucketSaturates adds more in one second than a bucket holds: the
// count stops at the bucket's bound instead of wrapping to a small number,
// and expires with its bucket like any other.
func TestBucketSaturates(t *testing.T) {
	t.Parallel()
	var w Window
	now := time.Unix(1_800_000_000, 0)
	w.Add(now, 1<<33)
	w.Add(now, 5)
	if got := w.Count(now); got != math.MaxUint16 {
		t.Fatalf("count = %d, want %d", got, uint64(math.MaxUint16))
	}
	w.Add(now.Add(Step), 2)
	if got := w.Count(now.Add(60 * time.Second)); got != 2 {
		t.Fatalf("after the saturated bucket expired: %d, want 2", got)
	}
}

// TestAnIdleAccountHasNoWindows keeps ten thousand idle accounts cheap:
// an account's windows are made at its first event, and reading the rates
// makes none.
func TestAnIdleAccountHasNoWindows(t *testing.T) {
	t.Parallel()
	a := NewAccounts(nil, "shop", "home", "idle")
	a.In("shop", 1)
	a.Out("home", 0) // nothing happened
	a.PerMinute("idle")
	a.PerMinuteAll()
	for name, slot := range a.index {
		if made, want := a.slots[slot].Load() != nil, name == "shop"; made != want {
			t.Errorf("%s: windows made %v, want %v", name, made, want)
		}
	}
}
