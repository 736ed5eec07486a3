package testutil

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// DefaultInterval is a polling interval short enough not to slow a test down and long enough not to
// busy a core while a process starts.
const DefaultInterval = 20 * time.Millisecond

// permanent marks an error after which polling is pointless (a process exited, say).
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Poll and Eventually stop at once and report it instead of waiting for
// the timeout.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Poll calls cond every interval until it returns nil (then Poll returns nil), it returns an error
// made with Permanent, or timeout has passed since the first call (then Poll returns cond's last
// error, saying how long it waited). cond is called at least once, and once more at the deadline. Poll
// never fails a test, so goroutines and code that decides what to do next may use it.
func Poll(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if p := (permanent{}); errors.As(err, &p) {
			return p.err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("still not done after %s: %w", timeout, err)
		}
		<-tick.C
	}
}

// Eventually polls cond as Poll does and fails the test if it does not return nil in time; the
// message names what was awaited and cond's last error.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, interval, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// EventuallyTrue is Eventually for a condition that has nothing to say when it is false.
func EventuallyTrue(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, timeout, interval, what, func() error {
		if cond() {
			return nil
		}
		return errors.New("condition false")
	})
}
