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

// fakeFiles is a process whose open-file limit and open descriptors a test sets.
type fakeFiles struct {
	limit, open int
	err         error // of both
	countErr    error // of the count only (no /proc)
	counts      int
	now         time.Time
}

func (f *fakeFiles) guard() *fileGuard {
	g := newFileGuard(prometheus.NewRegistry())
	g.limit = func() (int, error) { return f.limit, f.err }
	g.count = func() (int, error) {
		f.counts++
		if f.countErr != nil {
			return 0, f.countErr
		}
		return f.open, f.err
	}
	g.now = func() time.Time { return f.now }
	return g
}

// TestFileGuard: a new tenant is admitted while the open descriptors, plus what the opens admitted
// since the last count hold, leave the reserve free; a refusal counts again only after
// fileRecountInterval, a room after fileCountInterval; without a limit or a count the guard is off.
func TestFileGuard(t *testing.T) {
	f := &fakeFiles{limit: 1000, open: 800, now: time.Unix(0, 0)}
	g := f.guard()
	// Reserve for 10 open tenants: max(64, 1000/10) + 2×11 = 122. 800 + 6k + 6 + 122 ≤ 1000 for k ≤ 12.
	for k := range 13 {
		require.NoError(t, g.admit(10), "open %d", k)
	}
	err := g.admit(10)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "878 of the process' 1000 open files are in use")
	require.Equal(t, 1, f.counts, "admitted opens are counted without listing the descriptors again")

	// Tenants closed meanwhile: the next count finds room, but not before fileRecountInterval.
	f.open = 700
	f.now = f.now.Add(fileRecountInterval - 1)
	require.ErrorIs(t, g.admit(10), ErrUnavailable)
	f.now = f.now.Add(1)
	require.NoError(t, g.admit(10))
	require.Equal(t, 2, f.counts)
	require.Equal(t, 2.0, testutil.ToFloat64(g.refused))

	// Each open tenant keeps room for its next block: more tenants, less room.
	f.open, f.now = 850, f.now.Add(fileCountInterval)
	require.NoError(t, g.admit(0))  // 850 + 6 + 100 + 2×1
	require.Error(t, g.admit(20))   // 856 + 6 + 100 + 2×21 = 1004
	require.NoError(t, g.admit(15)) // 856 + 6 + 100 + 2×16 = 994
	require.Equal(t, 3, f.counts, "a refusal within fileRecountInterval of a count trusts it")

	// A small limit still keeps minFileReserve free.
	f.limit, f.open, f.now = 100, 28, f.now.Add(fileCountInterval)
	require.NoError(t, g.admit(0)) // 28 + 6 + 64 + 2 = 100
	require.Error(t, g.admit(0))   // 34 + 6 + 64 + 2

	// Without a limit, or without a count, every open goes through.
	f.limit, f.now = 0, f.now.Add(fileCountInterval)
	require.NoError(t, g.admit(1000))
	f.limit, f.err, f.now = 100, errors.New("no limit"), f.now.Add(fileCountInterval)
	require.NoError(t, g.admit(1000))
	f.err, f.countErr = nil, errors.New("no /proc")
	for range 50 {
		require.NoError(t, g.admit(0), "the opens admitted are not counted up without a count to start from")
	}
}

// TestFileGuardKeepsOpenTenantsWriting: real TSDBs and the process' real descriptors, with a limit
// just above what they use. New tenants are refused as unavailable (503) once the reserve is reached,
// while the open tenant keeps taking writes; with a higher limit the refused tenant opens.
func TestFileGuardKeepsOpenTenantsWriting(t *testing.T) {
	m, reg := newTestManager(t, nil)
	ctx := context.Background()
	_, err := m.Write(ctx, "a", oneSeries("m", t0, 1), nil, nil)
	require.NoError(t, err)

	open, err := openFiles()
	require.NoError(t, err)
	limit := open + 4*filesPerOpen + minFileReserve
	now := time.Now()
	m.files.mu.Lock()
	m.files.limit = func() (int, error) { return limit, nil }
	m.files.now = func() time.Time { return now }
	m.files.counted = time.Time{} // count again at the next open
	m.files.mu.Unlock()

	var refused error
	opened := 0
	for i := 0; i < 10 && refused == nil; i++ {
		_, refused = m.Write(ctx, fmt.Sprintf("new-%d", i), oneSeries("m", t0, 1), nil, nil)
		if refused == nil {
			opened++
		}
	}
	require.ErrorIs(t, refused, ErrUnavailable)
	require.ErrorContains(t, refused, "open files are in use")
	require.Less(t, opened, 4, "no more than the room above the reserve")
	for i := range 20 {
		_, err := m.Write(ctx, "a", oneSeries("m", t0+int64(i+1)*1000, 1), nil, nil)
		require.NoError(t, err, "the open tenant writes on")
	}
	v, _ := metricValue(t, reg, "weir_tenant_opens_refused_total")
	require.Equal(t, 1.0, v)

	limit += 100
	now = now.Add(fileRecountInterval)
	_, err = m.Write(ctx, fmt.Sprintf("new-%d", opened), oneSeries("m", t0, 1), nil, nil)
	require.NoError(t, err, "with room again the refused tenant opens")
}
