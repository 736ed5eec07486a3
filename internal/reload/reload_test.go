package reload

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestValueReloadsOnChangeAndKeepsTheLastGood(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n")
	require.NoError(t, os.WriteFile(path, []byte("1"), 0o600))
	builds := 0
	build := func() (int, error) {
		builds++
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(b)))
	}
	clock := &fakeClock{t: time.Unix(1000, 0)}
	reg := prometheus.NewRegistry()
	v, err := New(Options{Name: "test", Paths: []string{path, ""}, Interval: time.Second, Registerer: reg, Now: clock.now}, build)
	require.NoError(t, err)
	require.Equal(t, 1, v.Get())
	failures := func() float64 { return promtest.ToFloat64(v.reloads.WithLabelValues("failure")) }
	successes := func() float64 { return promtest.ToFloat64(v.reloads.WithLabelValues("success")) }

	// Unchanged files are not built again, however often they are looked at.
	clock.add(2 * time.Second)
	require.Equal(t, 1, v.Get())
	require.Equal(t, 1, builds)

	// A change is seen once the interval has passed, not before.
	replace(t, path, "2")
	require.Equal(t, 1, v.Get(), "looked at the files before the interval passed")
	clock.add(time.Second)
	require.Equal(t, 2, v.Get())
	require.InDelta(t, 1, successes(), 0)

	// A bad change keeps the previous value, is counted once and flips the gauge.
	replace(t, path, "not a number")
	clock.add(time.Second)
	require.Equal(t, 2, v.Get())
	clock.add(time.Second)
	require.Equal(t, 2, v.Get())
	require.InDelta(t, 1, failures(), 0, "the same bad file is reported once")
	require.InDelta(t, 0, promtest.ToFloat64(v.ok), 0)

	// A missing file as well; then a good file again.
	require.NoError(t, os.Remove(path))
	require.Error(t, v.Check())
	require.Error(t, v.Check())
	require.InDelta(t, 2, failures(), 0)
	require.Equal(t, 2, v.Get())
	replace(t, path, "3")
	require.NoError(t, v.Check())
	require.Equal(t, 3, v.Get())
	require.InDelta(t, 1, promtest.ToFloat64(v.ok), 0)

	// A rewrite in place with the same size is a change too (modification time).
	require.NoError(t, os.WriteFile(path, []byte("4"), 0o600))
	require.NoError(t, os.Chtimes(path, time.Now(), time.Now().Add(time.Hour)))
	require.NoError(t, v.Check())
	require.Equal(t, 4, v.Get())
}

func TestNewRefusesBadFiles(t *testing.T) {
	_, err := New(Options{Name: "x", Paths: []string{filepath.Join(t.TempDir(), "missing")}}, func() (int, error) { return 0, nil })
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = New(Options{Name: "x"}, func() (int, error) { return 0, errors.New("bad") })
	require.EqualError(t, err, "bad")
	_, err = New[int](Options{}, nil)
	require.Error(t, err)
}

// TestValueConcurrentGet: many readers during reloads always see a complete value (run with -race).
func TestValueConcurrentGet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n")
	require.NoError(t, os.WriteFile(path, []byte("0"), 0o600))
	v, err := New(Options{Name: "c", Paths: []string{path}, Interval: time.Nanosecond}, func() ([]int, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(string(b))
		return []int{n, n}, err
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got := v.Get()
				if len(got) != 2 || got[0] != got[1] {
					t.Errorf("torn value %v", got)
					return
				}
			}
		})
	}
	for i := 1; i <= 50; i++ {
		replace(t, path, strconv.Itoa(i))
	}
	close(stop)
	wg.Wait()
}

// replace writes content to a new file and renames it over path, as Kubernetes and editors do.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}
