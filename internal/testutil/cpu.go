package testutil

import (
	"syscall"
	"testing"
	"time"
)

// CPUTime is the CPU time (user and system) the process used so far. Benchmarks report it per unit
// of work: unlike wall time, it does not grow when other processes take the machine's cores.
func CPUTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
