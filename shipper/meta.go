package shipper

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
)

// File and directory names inside a block, as the TSDB writes them and Thanos expects them.
const (
	MetaFilename       = "meta.json"
	IndexFilename      = "index"
	ChunksDirname      = "chunks"
	TombstonesFilename = "tombstones"
)

// SourceReceive is the thanos.source of every block this package ships (Thanos metadata.ReceiveSource).
const SourceReceive = "receive"

// tsdbMetaVersion is the only TSDB meta.json version the TSDB writes and Thanos accepts.
const tsdbMetaVersion = 1

// Meta is a block's meta.json as stored in the bucket: the TSDB's fields and the Thanos section.
// It matches Thanos' pkg/block/metadata.Meta field for field, as far as a receiver writes them.
type Meta struct {
	tsdb.BlockMeta

	Thanos ThanosMeta `json:"thanos"`
}

// ThanosMeta is the "thanos" section of a shipped meta.json.
type ThanosMeta struct {
	// Version of the section; Thanos omits it (0 means version 1) and so do we.
	Version int `json:"version,omitempty"`
	// Labels are the external labels of the block: tenant label, replica label(s), hashring labels.
	Labels     map[string]string `json:"labels"`
	Downsample Downsample        `json:"downsample"`
	// Source is who uploaded the block: always SourceReceive here.
	Source string `json:"source"`
	// SegmentFiles lists the names of the files in chunks/, sorted. Deprecated in Thanos in favour of
	// Files but still written by its shipper, so written here too.
	SegmentFiles []string `json:"segment_files,omitempty"`
	// Files lists every shipped file, sorted by relative path; meta.json is listed without a size.
	Files []File `json:"files,omitempty"`
	// IndexStats is never filled by a shipper; Thanos encodes the empty struct as {} and so do we.
	IndexStats IndexStats `json:"index_stats"`
}

// Downsample holds the block's resolution in milliseconds: 0 for raw blocks.
type Downsample struct {
	Resolution int64 `json:"resolution"`
}

// File is one entry of ThanosMeta.Files.
type File struct {
	RelPath string `json:"rel_path"`
	// SizeBytes is omitted for meta.json, as Thanos does.
	SizeBytes int64 `json:"size_bytes,omitempty"`
}

// IndexStats mirrors Thanos' optional index statistics (filled only by its compactor).
type IndexStats struct {
	SeriesMaxSize   int64 `json:"series_max_size,omitempty"`
	SeriesP90Size   int64 `json:"series_p90_size,omitempty"`
	SeriesP99Size   int64 `json:"series_p99_size,omitempty"`
	SeriesP999Size  int64 `json:"series_p999_size,omitempty"`
	SeriesP9999Size int64 `json:"series_p99999_size,omitempty"`
	ChunkMaxSize    int64 `json:"chunk_max_size,omitempty"`
}

// readBlockMeta reads the TSDB meta.json of the block in dir.
func readBlockMeta(dir string) (tsdb.BlockMeta, error) {
	var m tsdb.BlockMeta
	b, err := os.ReadFile(filepath.Join(dir, MetaFilename))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("parse %s: %w", filepath.Join(dir, MetaFilename), err)
	}
	if m.Version != tsdbMetaVersion {
		return m, fmt.Errorf("%s: unexpected meta.json version %d", filepath.Join(dir, MetaFilename), m.Version)
	}
	return m, nil
}

// blockFiles returns the relative paths (slash-separated) of the files of a staged block that are
// uploaded before meta.json, in upload order: chunk segments (sorted), index, then tombstones when
// withTombstones is set.
func blockFiles(dir string, withTombstones bool) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, ChunksDirname))
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if e.IsDir() {
			return nil, fmt.Errorf("unexpected directory %s in %s", e.Name(), filepath.Join(dir, ChunksDirname))
		}
		files = append(files, path.Join(ChunksDirname, e.Name()))
	}
	slices.Sort(files)
	files = append(files, IndexFilename)
	if withTombstones {
		files = append(files, TombstonesFilename)
	}
	return files, nil
}

// thanosMeta builds the shipped meta.json of a staged block: bm plus the Thanos section, with the sizes of
// the given files (as returned by blockFiles) read from dir.
func thanosMeta(bm tsdb.BlockMeta, lset labels.Labels, dir string, files []string) (Meta, error) {
	m := Meta{
		BlockMeta: bm,
		Thanos: ThanosMeta{
			Labels:     lset.Map(),
			Downsample: Downsample{Resolution: 0},
			Source:     SourceReceive,
		},
	}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return Meta{}, err
		}
		if seg, ok := strings.CutPrefix(f, ChunksDirname+"/"); ok {
			m.Thanos.SegmentFiles = append(m.Thanos.SegmentFiles, seg)
		}
		m.Thanos.Files = append(m.Thanos.Files, File{RelPath: f, SizeBytes: fi.Size()})
	}
	m.Thanos.Files = append(m.Thanos.Files, File{RelPath: MetaFilename})
	slices.SortFunc(m.Thanos.Files, func(a, b File) int { return strings.Compare(a.RelPath, b.RelPath) })
	return m, nil
}

// Encode returns m as Thanos writes it: tab-indented JSON with a trailing newline.
func (m Meta) Encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(&m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseMeta decodes a shipped meta.json and checks its versions the way Thanos' metadata.Read does.
func ParseMeta(b []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, err
	}
	if m.Version != tsdbMetaVersion {
		return Meta{}, fmt.Errorf("unexpected meta.json version %d", m.Version)
	}
	if m.Thanos.Version != 0 && m.Thanos.Version != 1 {
		return Meta{}, fmt.Errorf("unexpected meta.json thanos section version %d", m.Thanos.Version)
	}
	if m.Thanos.Labels == nil {
		m.Thanos.Labels = map[string]string{}
	}
	return m, nil
}
