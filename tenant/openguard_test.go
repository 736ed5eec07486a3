package tenant

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// fakeLimit is a resource whose limit and use a test sets.
type fakeLimit struct {
	limit, used int
	limitErr    error
	countErr    error
	counts      int
}

// fakeGuard returns a guard over the fakes, in order, each counted as perOpen per admitted open, and
// the clock it reads.
func fakeGuard(perOpen int, fakes ...*fakeLimit) (*openGuard, *time.Time) {
	now := time.Unix(0, 0)
	g := newOpenGuard(prometheus.NewRegistry())
	g.now = func() time.Time { return now }
	g.resources = g.resources[:len(fakes)]
	for i, f := range fakes {
		r := g.resources[i]
		r.perOpen = perOpen
		r.limit = func() (int, error) { return f.limit, f.limitErr }
		r.count = func() (int, error) { f.counts++; return f.used, f.countErr }
	}
	return g, &now
}

// TestOpenGuard: a new tenant is admitted while what is in use, plus what the opens admitted since
// the last count hold, leaves the reserve free; a refusal counts again only after recountInterval, a
// room after countInterval; without a limit or a count the resource is not guarded.
func TestOpenGuard(t *testing.T) {
	f := &fakeLimit{limit: 1000, used: 800}
	g, now := fakeGuard(6, f)
	// Reserve for 10 open tenants: max(64, 1000/10) + 2×11 = 122. 800 + 6k + 6 + 122 ≤ 1000 for k ≤ 12.
	for k := range 13 {
		require.NoError(t, g.admit(10), "open %d", k)
	}
	err := g.admit(10)
	require.ErrorIs(t, err, ErrNoRoom)
	require.ErrorIs(t, err, ErrUnavailable, "a refused open is an unavailable tenant (503)")
	require.ErrorContains(t, err, "878 of the process' 1000 open files are in use")
	require.Equal(t, 1, f.counts, "admitted opens are counted without counting again")

	// Tenants closed meanwhile: the next count finds room, but not before recountInterval.
	f.used = 700
	*now = now.Add(recountInterval - 1)
	require.ErrorIs(t, g.admit(10), ErrNoRoom)
	*now = now.Add(1)
	require.NoError(t, g.admit(10))
	require.Equal(t, 2, f.counts)
	require.Equal(t, 2.0, testutil.ToFloat64(g.resources[0].refused))

	// Each open tenant keeps room for its next block: more tenants, less room.
	f.used, *now = 850, now.Add(countInterval)
	require.NoError(t, g.admit(0))  // 850 + 6 + 100 + 2×1
	require.Error(t, g.admit(20))   // 856 + 6 + 100 + 2×21 = 1004
	require.NoError(t, g.admit(15)) // 856 + 6 + 100 + 2×16 = 994
	require.Equal(t, 3, f.counts, "a refusal within recountInterval of a count trusts it")

	// A small limit still keeps minReserve free.
	f.limit, f.used, *now = 100, 28, now.Add(countInterval)
	require.NoError(t, g.admit(0)) // 28 + 6 + 64 + 2 = 100
	require.Error(t, g.admit(0))   // 34 + 6 + 64 + 2

	// Without a limit, or without a count, every open goes through.
	f.limit, *now = 0, now.Add(countInterval)
	require.NoError(t, g.admit(1000))
	f.limit, f.limitErr, *now = 100, errors.New("no limit"), now.Add(countInterval)
	require.NoError(t, g.admit(1000))
	f.limitErr, f.countErr = nil, errors.New("no /proc")
	for range 50 {
		require.NoError(t, g.admit(0), "opens are not counted up without a count to start from")
	}
}

// TestOpenGuardEveryLimit: an open is admitted only when every limit has room, and is then counted
// in every one; the refusal names the limit that has none.
func TestOpenGuardEveryLimit(t *testing.T) {
	files := &fakeLimit{limit: 100_000, used: 100}
	maps := &fakeLimit{limit: 1000, used: 800}
	g, _ := fakeGuard(6, files, maps)
	for k := range 13 { // as in TestOpenGuard: the maps have room for 13 opens with 10 tenants
		require.NoError(t, g.admit(10), "open %d", k)
	}
	err := g.admit(10)
	require.ErrorContains(t, err, "878 of the process' 1000 memory maps are in use")
	require.ErrorContains(t, err, "vm.max_map_count is raised")
	require.Equal(t, 100+13*6, g.resources[0].used, "the files count every admitted open")
	require.Equal(t, 0.0, testutil.ToFloat64(g.resources[0].refused))
	require.Equal(t, 1.0, testutil.ToFloat64(g.resources[1].refused))
}

// TestProcessLimits reads this process' real limits and use.
func TestProcessLimits(t *testing.T) {
	for _, r := range newOpenGuard(nil).resources {
		limit, err := r.limit()
		require.NoError(t, err, r.what)
		used, err := r.count()
		require.NoError(t, err, r.what)
		t.Logf("%s: %d of %d", r.what, used, limit)
		require.Positive(t, used, r.what)
		if limit > 0 {
			require.Less(t, used, limit, r.what)
		}
	}
}

// TestOpenGuardKeepsOpenTenantsWriting: real TSDBs and the process' real descriptors, with a limit
// just above what they use. New tenants are refused as unavailable (503) once the reserve is reached,
// while the open tenant keeps taking writes; with a higher limit the refused tenant opens.
func TestOpenGuardKeepsOpenTenantsWriting(t *testing.T) {
	m, reg := newTestManager(t, nil)
	ctx := context.Background()
	_, err := m.Write(ctx, "a", oneSeries("m", t0, 1), nil, nil)
	require.NoError(t, err)

	files := m.opens.resources[0]
	open, err := files.count()
	require.NoError(t, err)
	limit := open + 4*files.perOpen + minReserve
	now := time.Now()
	m.opens.mu.Lock()
	files.limit = func() (int, error) { return limit, nil }
	m.opens.now = func() time.Time { return now }
	files.counted = time.Time{} // count again at the next open
	m.opens.mu.Unlock()

	var refused error
	opened := 0
	for i := 0; i < 10 && refused == nil; i++ {
		_, refused = m.Write(ctx, fmt.Sprintf("new-%d", i), oneSeries("m", t0, 1), nil, nil)
		if refused == nil {
			opened++
		}
	}
	require.ErrorIs(t, refused, ErrNoRoom)
	require.ErrorContains(t, refused, "open files are in use")
	require.Less(t, opened, 4, "no more than the room above the reserve")
	for i := range 20 {
		_, err := m.Write(ctx, "a", oneSeries("m", t0+int64(i+1)*1000, 1), nil, nil)
		require.NoError(t, err, "the open tenant writes on")
	}
	v, _ := metricValue(t, reg, "weir_tenant_opens_refused_total", "resource", "open_files")
	require.Equal(t, 1.0, v)

	limit += 100
	now = now.Add(recountInterval)
	_, err = m.Write(ctx, fmt.Sprintf("new-%d", opened), oneSeries("m", t0, 1), nil, nil)
	require.NoError(t, err, "with room again the refused tenant opens")
}
