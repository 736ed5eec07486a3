package tenant

import (
	"testing"

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

	cfg.OutOfOrderCapMax, cfg.MaxBytes, cfg.NoLockfile = 64, 512<<20, true
	opts = tsdbOptions(cfg)
	require.Equal(t, int64(64), opts.OutOfOrderCapMax)
	require.Equal(t, int64(512<<20), opts.MaxBytes)
	require.True(t, opts.NoLockfile)
}
