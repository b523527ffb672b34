//go:build unix

package rules

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used, every thread counted: on a
// machine shared with other work, it measures what a benchmark costs where
// the wall clock also measures waiting for a core.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
