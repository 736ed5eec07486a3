package tenant

import (
	"context"
	"sync"
)

// forEach runs fn on every item, at most n at once, and returns the errors of the calls that failed
// (nil if none), in no particular order. Start-up replay, shutdown flush, shipping and close go
// through it: with thousands of tenants each of these is thousands of small jobs waiting mostly on
// fsync, which one goroutine at a time turns into minutes. Once ctx ends no further call starts and
// the calls running are waited for; the caller checks ctx.Err() itself.
func forEach[T any](ctx context.Context, items []T, n int, fn func(T) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, max(n, 1))
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errs
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}
