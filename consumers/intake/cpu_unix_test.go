//go:build unix

package intake

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) the process has used so far: it counts
// the background goroutines of a backend too, which wall time around a call does not.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
