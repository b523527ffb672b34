package dst

import (
	"fmt"
	"time"
)

// Start is the instant every Clock starts at: 2026-01-01 00:00 in China
// Standard Time, the upstream's zone. A fixed zone rather than
// time.LoadLocation keeps the clock independent of the machine's tzdata.
var Start = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*60*60))

// Clock is virtual time: it moves only when Advance is called, by the
// harness or by Upstream when a fault makes a call outlast its timeout. The
// zero Clock reads Start. It is not safe for concurrent use, like the rest
// of the model.
type Clock struct {
	elapsed time.Duration
}

// NewClock returns a Clock reading Start.
func NewClock() *Clock { return &Clock{} }

// Now returns the virtual time.
func (c *Clock) Now() time.Time { return Start.Add(c.elapsed) }

// Advance moves the clock forward by d. Time never runs backwards in the
// simulation, so a negative d is a bug in the harness and panics.
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		panic(fmt.Sprintf("dst: clock: advance by %v: time does not run backwards", d))
	}
	c.elapsed += d
}
