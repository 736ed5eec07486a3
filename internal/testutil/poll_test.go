package testutil

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPoll(t *testing.T) {
	calls := 0
	require.NoError(t, Poll(time.Minute, time.Millisecond, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}))
	require.Equal(t, 3, calls)

	err := Poll(10*time.Millisecond, time.Millisecond, func() error { return errors.New("never") })
	require.ErrorContains(t, err, "never")
	require.ErrorContains(t, err, "after 10ms")

	gone := errors.New("process exited")
	calls = 0
	err = Poll(time.Minute, time.Millisecond, func() error {
		calls++
		return Permanent(gone)
	})
	require.ErrorIs(t, err, gone)
	require.Equal(t, 1, calls, "a permanent error ends the polling at once")
	require.NoError(t, Permanent(nil))
}

func TestEventually(t *testing.T) {
	n := 0
	EventuallyTrue(t, time.Minute, time.Millisecond, "three calls", func() bool { n++; return n == 3 })
	require.Equal(t, 3, n)

	ft := &fakeT{TB: t}
	ft.run(func(t testing.TB) {
		Eventually(t, 5*time.Millisecond, time.Millisecond, "the impossible", func() error { return errors.New("no") })
	})
	require.Contains(t, ft.fatal, "waiting for the impossible")
	require.Contains(t, ft.fatal, "no")
}

// fakeT records how a helper ended a test, and ends its goroutine as testing.T does.
type fakeT struct {
	testing.TB
	fatal, skip string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) Fatal(args ...any) {
	f.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fakeT) Skip(args ...any) {
	f.skip = fmt.Sprint(args...)
	runtime.Goexit()
}

// run calls fn with f in a goroutine of its own, which fn may end.
func (f *fakeT) run(fn func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
}
