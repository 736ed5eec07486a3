package shipper

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStageBlockHardLinks(t *testing.T) {
	dir := t.TempDir()
	_, _, metas := testTSDB(t, dir)
	src := filepath.Join(dir, metas[0].ULID.String())
	dst := filepath.Join(dir, stagingDir, metas[0].ULID.String())
	require.NoError(t, os.MkdirAll(filepath.Join(dst, "stale"), 0o750)) // replaced, not merged

	require.NoError(t, stageBlock(src, dst))
	for _, f := range []string{"chunks/000001", "index", "meta.json", "tombstones"} {
		a, err := os.Stat(filepath.Join(src, filepath.FromSlash(f)))
		require.NoError(t, err)
		b, err := os.Stat(filepath.Join(dst, filepath.FromSlash(f)))
		require.NoError(t, err)
		require.True(t, os.SameFile(a, b), "%s is a hard link", f)
	}
	_, err := os.Stat(filepath.Join(dst, "stale"))
	require.ErrorIs(t, err, os.ErrNotExist)

	// Deleting the block (TSDB retention) leaves the staged files intact.
	require.NoError(t, os.RemoveAll(src))
	got, _ := readBlockSamples(t, dst)
	require.Len(t, got, seriesN)
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	from, to := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	require.NoError(t, os.WriteFile(from, []byte("block bytes"), 0o644))
	require.NoError(t, copyFile(from, to))
	b, err := os.ReadFile(to)
	require.NoError(t, err)
	require.Equal(t, "block bytes", string(b))
	require.Error(t, copyFile(from, to), "never overwrites")
}
