package tenant

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

func TestAutoMinFreeSpace(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		total uint64
		want  int64
	}{
		{total: 1 << 40, want: 128*mib + (1<<40)/100}, // 1 TiB: one segment + 1%
		{total: 10 << 30, want: 128*mib + (10<<30)/100},
		{total: 96 * mib, want: 48 * mib}, // a tiny volume: half of it
		{total: 0, want: 0},
	} {
		require.Equal(t, tc.want, AutoMinFreeSpace(tc.total), "total %d", tc.total)
	}
}

// fakeVolume is a volume whose free space the test sets.
type fakeVolume struct{ free atomic.Uint64 }

func (v *fakeVolume) statfs(string) (uint64, uint64, error) { return v.free.Load(), 1 << 40, nil }

// useVolume makes m read its volume from v, on a clock the test moves.
func useVolume(m *Manager, v *fakeVolume) *atomic.Int64 {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	m.space.statfs = v.statfs
	m.space.now = func() time.Time { return time.Unix(0, clock.Load()) }
	return &clock
}

func oneSeries(name string, ts int64, v float64) []prompb.TimeSeries {
	return []prompb.TimeSeries{{Labels: lbls("__name__", name), Samples: floats(float64(ts), v)}}
}

// TestSpaceGuard: below the reserve a write is refused as unavailable (503) and nothing is written;
// once there is room again, writes go through by themselves; the metrics say what happened.
func TestSpaceGuard(t *testing.T) {
	m, reg := newTestManager(t, func(c *Config) { c.MinFreeSpace = 1000 })
	vol := &fakeVolume{}
	vol.free.Store(5000)
	clock := useVolume(m, vol)
	ctx := context.Background()

	_, err := m.Write(ctx, "a", oneSeries("m", t0, 1), nil, nil)
	require.NoError(t, err)

	vol.free.Store(999)
	clock.Add(int64(spaceCheckInterval))
	_, err = m.Write(ctx, "a", oneSeries("m", t0+1000, 2), nil, nil)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "below its reserve")
	v, _ := metricValue(t, reg, "weir_storage_writes_refused_total", "reason", refusedDiskLow)
	require.Equal(t, 1.0, v)
	v, _ = metricValue(t, reg, "weir_storage_free_bytes")
	require.Equal(t, 999.0, v)
	v, _ = metricValue(t, reg, "weir_storage_min_free_bytes")
	require.Equal(t, 1000.0, v)

	// Reads go on while writes are refused.
	requireSeries(t, m, "a", map[string][]point{key("__name__", "m"): {fp(t0, 1)}})

	vol.free.Store(1000)
	_, err = m.Write(ctx, "a", oneSeries("m", t0+2000, 3), nil, nil)
	require.ErrorIs(t, err, ErrUnavailable, "the answer stands until the next look at the volume")
	clock.Add(int64(spaceCheckInterval))
	_, err = m.Write(ctx, "a", oneSeries("m", t0+2000, 3), nil, nil)
	require.NoError(t, err)
	requireSeries(t, m, "a", map[string][]point{key("__name__", "m"): {fp(t0, 1), fp(t0+2000, 3)}})
}

// TestSpaceGuardOff: a reserve of 0 never refuses.
func TestSpaceGuardOff(t *testing.T) {
	m, _ := newTestManager(t, nil)
	vol := &fakeVolume{}
	useVolume(m, vol) // 0 bytes free
	_, err := m.Write(context.Background(), "a", oneSeries("m", t0, 1), nil, nil)
	require.NoError(t, err)
}

// TestInterruptedRepairRestored: a WAL repair cut short (a crash, or no space left) leaves the
// segment moved aside as <segment>.repair and a truncated copy in its place. The next open puts the
// original back, so the repair runs again on it and nothing before the damage is lost.
func TestInterruptedRepairRestored(t *testing.T) {
	cfg := testConfig(t.TempDir())
	m, _ := newManagerAt(t, cfg)
	want := writeRequests(t, m, "a", 50)
	require.NoError(t, m.Close())

	seg := filepath.Join(cfg.Dir, "a", "wal", "00000000")
	data, err := os.ReadFile(seg)
	require.NoError(t, err)
	require.Greater(t, len(data), 4096, "the test needs a segment of several pages")
	require.NoError(t, os.Rename(seg, seg+".repair"))
	require.NoError(t, os.WriteFile(seg, data[:len(data)/3], 0o600))

	m2, _ := newManagerAt(t, cfg)
	requireSeries(t, m2, "a", want)
	_, err = os.Stat(seg + ".repair")
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestNoRoomToRepair: a tenant whose WAL a repair might have to rewrite is not opened while the
// volume has less room than the newest segment: it stays closed (503), its WAL untouched, and opens
// once there is room.
func TestNoRoomToRepair(t *testing.T) {
	cfg := testConfig(t.TempDir())
	m, _ := newManagerAt(t, cfg)
	want := writeRequests(t, m, "a", 20)
	require.NoError(t, m.Close())
	seg := filepath.Join(cfg.Dir, "a", "wal", "00000000")
	before, err := os.ReadFile(seg)
	require.NoError(t, err)

	m2, _ := newManagerAt(t, cfg)
	vol := &fakeVolume{}
	vol.free.Store(uint64(len(before)) - 1)
	useVolume(m2, vol)
	_, err = m2.Write(context.Background(), "a", oneSeries("late", t0, 1), nil, nil)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, err, errNoRoomToRepair)
	after, err := os.ReadFile(seg)
	require.NoError(t, err)
	require.Equal(t, before, after, "the WAL is not touched")

	vol.free.Store(uint64(len(before)))
	_, err = m2.Write(context.Background(), "a", oneSeries("late", t0, 1), nil, nil)
	require.NoError(t, err)
	want[key("__name__", "late")] = []point{fp(t0, 1)}
	requireSeries(t, m2, "a", want)
}

// writeRequests writes n requests of 20 series each to tenant id and returns what it wrote.
func writeRequests(t testing.TB, m *Manager, id string, n int) map[string][]point {
	t.Helper()
	want := map[string][]point{}
	for k := range n {
		series := make([]prompb.TimeSeries, 20)
		for i := range series {
			ts, v := t0+int64(k)*1000, float64(k*100+i)
			series[i] = prompb.TimeSeries{Labels: lbls("__name__", "load", "i", fmt.Sprint(i)), Samples: floats(float64(ts), v)}
			want[key("__name__", "load", "i", fmt.Sprint(i))] = append(want[key("__name__", "load", "i", fmt.Sprint(i))], fp(ts, v))
		}
		_, err := m.Write(context.Background(), id, series, nil, nil)
		require.NoError(t, err)
	}
	return want
}

// TestWALWriteFailure runs on a real, tiny tmpfs volume that a ballast file fills: a write that finds
// no room in the WAL tears it. That write and every later one is answered unavailable until the
// tenant is reopened — which the first write after space came back does, repairing the WAL — so a
// write acknowledged after the failure is never behind the torn record, and survives a restart.
func TestWALWriteFailure(t *testing.T) {
	dir := testutil.MountTmpfs(t, 8<<20)
	cfg := testConfig(dir)
	cfg.WALCompression = false // bigger records, so that one spans pages and can be torn
	m, reg := newManagerAt(t, cfg)
	ctx := context.Background()
	want := writeRequests(t, m, "a", 5)

	ballast := filepath.Join(dir, "ballast")
	testutil.FillVolume(t, ballast, 16<<10)
	big := make([]prompb.TimeSeries, 2000)
	for i := range big {
		big[i] = prompb.TimeSeries{Labels: lbls("__name__", "big", "i", fmt.Sprint(i), "pad", fmt.Sprintf("%0100d", i)), Samples: floats(float64(t0+100_000), 1)}
	}
	_, err := m.Write(ctx, "a", big, nil, nil)
	require.ErrorIs(t, err, ErrUnavailable, "a failed WAL write is transient: 503")
	_, err = m.Write(ctx, "a", oneSeries("small", t0, 1), nil, nil)
	require.ErrorIs(t, err, ErrUnavailable, "nothing is acknowledged behind the torn record")
	v, _ := metricValue(t, reg, "weir_storage_writes_refused_total", "reason", refusedWALFailed)
	require.GreaterOrEqual(t, v, 1.0)

	require.NoError(t, os.Remove(ballast))
	// This write reopens the tenant (repairing its WAL) before it is appended.
	_, err = m.Write(ctx, "a", oneSeries("after", t0+200_000, 7), nil, nil)
	require.NoError(t, err)
	want[key("__name__", "after")] = []point{fp(t0+200_000, 7)}
	requireSeriesIn(t, m, "a", want)

	require.NoError(t, m.Close()) // a restart: the WAL is replayed
	m2, _ := newManagerAt(t, cfg)
	requireSeriesIn(t, m2, "a", want)
}

// requireSeriesIn checks that every series of want is stored with exactly its points; other series
// (a write answered 503 may have landed in part) are allowed.
func requireSeriesIn(t testing.TB, m *Manager, id string, want map[string][]point) {
	t.Helper()
	got := query(t, m, id)
	for k, w := range want {
		requirePoints(t, w, got[k], "series ", k)
	}
}

// BenchmarkWriteGuards is what the full-disk guards add to every write: a look at the cached answer
// of the free-space guard, and a read of the WAL's failure counter after the commit.
func BenchmarkWriteGuards(b *testing.B) {
	m, _ := newTestManager(b, func(c *Config) { c.MinFreeSpace = 1 })
	_, err := m.Write(context.Background(), "a", oneSeries("m", t0, 1), nil, nil)
	require.NoError(b, err)
	d, err := m.get(context.Background(), "a")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if m.space.admit() != nil || d.reg.walFailures() != 0 {
			b.Fatal("refused")
		}
	}
}
