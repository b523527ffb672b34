package rates

import (
	"testing"
	"time"
)

// TestIdleWindowHoldsNoBuckets keeps an idle account cheap: a window that
// was only read, however often and however far apart, allocates none of
// its sixty buckets; the first event does, and a minute without events
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
