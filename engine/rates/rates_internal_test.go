package rates

import (
	"math"
	"testing"
	"time"
)

// TestIdleWindowHoldsNoBuckets keeps an idle account cheap: a window that
// was only read, however often and however far apart, allocates none of
// its buckets; the first event does, and a minute without events
// drops them again.
func TestIdleWindowHoldsNoBuckets(t *testing.T) {
	t.Parallel()
	var w Window
	now := time.Unix(1_800_000_000, 0)
	for i := range 200 {
		if n := w.Count(now.Add(time.Duration(i) * 7 * time.Second)); n != 0 {
			t.Fatalf("an idle window counts %d", n)
		}
	}
	if w.counts != nil {
		t.Fatal("an idle window allocated its buckets")
	}
	w.Add(now.Add(2000*time.Second), 3)
	if w.counts == nil || w.Count(now.Add(2000*time.Second)) != 3 {
		t.Fatal("the first event was not counted")
	}
	if w.Count(now.Add(2060*time.Second)) != 0 || w.counts != nil {
		t.Fatal("a window a minute idle keeps its buckets")
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
	if got := w.Count(now); got != math.MaxUint32 {
		t.Fatalf("count = %d, want %d", got, uint64(math.MaxUint32))
	}
	w.Add(now.Add(Step), 2)
	if got := w.Count(now.Add(60 * time.Second)); got != 2 {
		t.Fatalf("after the saturated bucket expired: %d, want 2", got)
	}
}
