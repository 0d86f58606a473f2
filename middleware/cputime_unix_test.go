//go:build unix

package middleware

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the process has used,
// to report a benchmark's CPU cost on a machine shared with other work,
// where wall time varies.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
