package shipper

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestMetaEncodingGolden pins the exact bytes of a shipped meta.json for a fixed block: field names, order,
// tab indentation, meta.json listed without size, index_stats as {} — as Thanos' metadata.Meta.Write does.
func TestMetaEncodingGolden(t *testing.T) {
	id := ulid.MustParse("01HKR2S8G00000000000000000")
	bm := tsdb.BlockMeta{
		ULID:    id,
		MinTime: 1704067200000,
		MaxTime: 1704074400000,
		Stats:   tsdb.BlockStats{NumSamples: 960, NumFloatSamples: 960, NumSeries: 4, NumChunks: 8},
		Compaction: tsdb.BlockMetaCompaction{
			Level:   1,
			Sources: []ulid.ULID{id},
		},
		Version: 1,
	}
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ChunksDirname), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ChunksDirname, "000001"), make([]byte, 1234), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ChunksDirname, "000002"), make([]byte, 56), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, IndexFilename), make([]byte, 789), 0o644))

	files, err := blockFiles(dir, false)
	require.NoError(t, err)
	require.Equal(t, []string{"chunks/000001", "chunks/000002", "index"}, files)
	m, err := thanosMeta(bm, labels.FromStrings("tenant_id", "team-a", "replica", "r1"), dir, files)
	require.NoError(t, err)
	got, err := m.Encode()
	require.NoError(t, err)

	golden := filepath.Join("testdata", "meta.golden.json")
	if *update {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))

	back, err := ParseMeta(got)
	require.NoError(t, err)
	require.Equal(t, m, back)
}

func TestMetaWithTombstones(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ChunksDirname), 0o750))
	for name, size := range map[string]int{"chunks/000001": 10, "index": 20, "tombstones": 30} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), make([]byte, size), 0o644))
	}
	files, err := blockFiles(dir, true)
	require.NoError(t, err)
	require.Equal(t, []string{"chunks/000001", "index", "tombstones"}, files)
	m, err := thanosMeta(tsdb.BlockMeta{Version: 1}, labels.FromStrings("a", "b"), dir, files)
	require.NoError(t, err)
	require.Equal(t, []File{
		{RelPath: "chunks/000001", SizeBytes: 10},
		{RelPath: "index", SizeBytes: 20},
		{RelPath: "meta.json"},
		{RelPath: "tombstones", SizeBytes: 30},
	}, m.Thanos.Files)
}

func TestParseMetaRejectsUnknownVersions(t *testing.T) {
	_, err := ParseMeta([]byte(`{"version": 2, "thanos": {"labels": {}}}`))
	require.Error(t, err)
	_, err = ParseMeta([]byte(`{"version": 1, "thanos": {"version": 2, "labels": {}}}`))
	require.Error(t, err)
	m, err := ParseMeta([]byte(`{"version": 1, "thanos": {}}`))
	require.NoError(t, err)
	require.NotNil(t, m.Thanos.Labels)
	_, err = ParseMeta([]byte(`{`))
	require.Error(t, err)
}
