package tenant

import (
	"context"
	"path/filepath"
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
