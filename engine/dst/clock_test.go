package dst

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t.Parallel()
	var zero Clock
	if !zero.Now().Equal(Start) {
		t.Fatalf("zero Clock reads %v, want %v", zero.Now(), Start)
	}
	if got := Start.Format(time.RFC3339); got != "2026-01-01T00:00:00+08:00" {
		t.Fatalf("Start is %s", got)
	}
	c := NewClock()
	c.Advance(90 * time.Second)
	c.Advance(0)
	if got := c.Now().Sub(Start); got != 90*time.Second {
		t.Fatalf("after 90s the clock is %v past Start", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Advance(-1s) did not panic")
		}
		if got := c.Now().Sub(Start); got != 90*time.Second {
			t.Fatalf("a refused Advance moved the clock to %v past Start", got)
		}
	}()
	c.Advance(-time.Second)
}
