package tenant

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

// TestTSDBOptionsFromFlags: the Thanos flags Weir honours reach every tenant's TSDB; left at zero,
// the TSDB's own defaults stay.
func TestTSDBOptionsFromFlags(t *testing.T) {
	cfg := testConfig(t.TempDir())
	opts := tsdbOptions(cfg)
	require.Equal(t, int64(tsdb.DefaultOutOfOrderCapMax), opts.OutOfOrderCapMax)
	require.Zero(t, opts.MaxBytes)
	require.False(t, opts.NoLockfile)
	require.Equal(t, int64(blockChunkSegmentSize), opts.MaxBlockChunkSegmentSize, "each block write reserves one segment of disk")

	cfg.OutOfOrderCapMax, cfg.MaxBytes, cfg.NoLockfile = 64, 512<<20, true
	opts = tsdbOptions(cfg)
	require.Equal(t, int64(64), opts.OutOfOrderCapMax)
	require.Equal(t, int64(512<<20), opts.MaxBytes)
	require.True(t, opts.NoLockfile)
}

// TestMemorySnapshotOnShutdown: with the flag, closing a tenant writes a head snapshot, and the next
// open serves the data from it.
func TestMemorySnapshotOnShutdown(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		dir := t.TempDir()
		cfg := testConfig(dir)
		cfg.MemorySnapshotOnShutdown = snapshot
		m, _ := newManagerAt(t, cfg)
		_, err := m.Write(context.Background(), "t1", []prompb.TimeSeries{{Labels: lbls("__name__", "up"), Samples: []prompb.Sample{{Timestamp: t0, Value: 1}}}}, nil, nil)
		require.NoError(t, err)
		require.NoError(t, m.Close())
		snaps, err := filepath.Glob(filepath.Join(dir, "t1", "chunk_snapshot.*"))
		require.NoError(t, err)
		require.Equal(t, snapshot, len(snaps) == 1, "snapshots %v", snaps)

		m, _ = newManagerAt(t, cfg)
		require.NoError(t, m.OpenExisting(context.Background()))
		d, err := m.get(context.Background(), "t1")
		require.NoError(t, err)
		require.Equal(t, uint64(1), d.tsdb.Head().NumSeries())
	}
}

// TestFlushedRestartSkipsTheWAL: why the snapshot is on by default. After the shutdown flush the head
// is empty, but the WAL still names every series; without a snapshot the next open recreates each of
// them and discards it again (what makes a restart slow), with one it recreates none.
func TestFlushedRestartSkipsTheWAL(t *testing.T) {
	const series = 500
	for _, snapshot := range []bool{false, true} {
		cfg := testConfig(t.TempDir())
		cfg.MemorySnapshotOnShutdown = snapshot
		m, _ := newManagerAt(t, cfg)
		req := make([]prompb.TimeSeries, series)
		for i := range req {
			req[i] = prompb.TimeSeries{Labels: lbls("__name__", "up", "instance", strconv.Itoa(i)), Samples: []prompb.Sample{{Timestamp: t0, Value: 1}}}
		}
		mustWrite(t, m, "t1", req...)
		require.NoError(t, m.Flush(context.Background()))
		require.NoError(t, m.Close())

		m, reg := newManagerAt(t, cfg)
		require.NoError(t, m.OpenExisting(context.Background()))
		created, ok := metricValue(t, reg, "prometheus_tsdb_head_series_created_total")
		require.True(t, ok)
		if snapshot {
			require.Zero(t, created, "series recreated from the WAL despite the snapshot")
		} else {
			require.Equal(t, float64(series), created, "without a snapshot the WAL's series are recreated")
		}
		d, err := m.get(context.Background(), "t1")
		require.NoError(t, err)
		require.Zero(t, d.tsdb.Head().NumSeries(), "the head after a flush is empty")
		require.Len(t, query(t, m, "t1"), series, "the data is in the flushed block")
	}
}
