package session

import (
	"context"
	"log/slog"
	"time"
)

// RemindEvery is how often a long wait — a QR code awaiting its scan, the
// pause after a failed login, another holder's lease — says again what it
// waits for and how long is left: often enough for an operator to see
// that nothing is stuck, rarely enough not to bury the rest of the log.
const RemindEvery = 30 * time.Second

// waitSaying waits d on clock like sleepOrWake, and every RemindEvery of
// it logs msg with the time left. It returns false when ctx ends first.
func waitSaying(ctx context.Context, clock Clock, d time.Duration, wake <-chan struct{}, log *slog.Logger, msg string, args ...any) bool {
	for d > 0 {
		step := min(d, RemindEvery)
		select {
		case <-clock.After(step):
		case <-wake:
			return true
		case <-ctx.Done():
			return false
		}
		if d -= step; d > 0 {
			log.Info(msg, append(args, "left", d.Round(time.Second))...)
		}
	}
	return ctx.Err() == nil
}

// remindUntil logs msg every RemindEvery, with the time left until
// deadline, until the returned stop is called: for a wait spent inside a
// call, such as the long poll for a QR code's scan. stop waits for the
// reminder to end, so that nothing is logged after it.
func remindUntil(clock Clock, deadline time.Time, log *slog.Logger, msg string, args ...any) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		for {
			select {
			case <-clock.After(RemindEvery):
			case <-done:
				return
			}
			left := max(deadline.Sub(clock.Now()), 0)
			log.Info(msg, append(args, "left", left.Round(time.Second))...)
		}
	}()
	return func() { close(done); <-ended }
}
