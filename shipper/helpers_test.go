package shipper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

const (
	blockRange = int64(2 * time.Hour / time.Millisecond)
	// baseTime is 2024-01-01T00:00:00Z, aligned to the 2h block range: old enough that the head compacts.
	baseTime   = int64(1704067200000)
	sampleStep = int64(30 * time.Second / time.Millisecond)
	// dataSpan of 8h gives three completed 2h blocks; the head keeps the last 2h.
	dataSpan   = 8 * blockRange / 2
	seriesN    = 4
	wantBlocks = 3
)

var testExtLabels = labels.FromStrings("receive", "true", "replica", "r1", "tenant_id", "team-a")

func extLabels() labels.Labels { return testExtLabels }

type sample struct {
	T int64
	V float64
}

// written maps a series (labels.String()) to its samples, in time order.
type written map[string][]sample

// inRange returns the samples of w in [mint, maxt) — a block's range.
func (w written) inRange(mint, maxt int64) written {
	out := written{}
	for k, ss := range w {
		for _, s := range ss {
			if s.T >= mint && s.T < maxt {
				out[k] = append(out[k], s)
			}
		}
	}
	return out
}

// testTSDB opens a real TSDB in dir with 2h blocks, appends seriesN series spanning 8h of old timestamps
// and compacts the head, so that completed level-1 blocks appear in dir. The DB is closed at the end of the
// test. It returns the written samples and the blocks' metas, oldest first.
func testTSDB(t *testing.T, dir string) (*tsdb.DB, written, []tsdb.BlockMeta) {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = blockRange
	opts.MaxBlockDuration = blockRange
	db, err := tsdb.Open(dir, slog.New(slog.DiscardHandler), nil, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	// Only the explicit Compact calls of the tests compact: the background loop would otherwise rewrite
	// blocks with tombstones (new ULIDs) at a time of its choosing.
	db.DisableCompactions()

	w := written{}
	ctx := context.Background()
	app := db.Appender(ctx)
	for i := range seriesN {
		lset := labels.FromStrings("__name__", "weir_shipper_test", "job", "shipper", "instance", fmt.Sprintf("i%d", i))
		for ts := baseTime; ts < baseTime+dataSpan; ts += sampleStep {
			v := float64(i*1_000_000) + float64(ts-baseTime)/1000
			_, err := app.Append(0, lset, ts, v)
			require.NoError(t, err)
			w[lset.String()] = append(w[lset.String()], sample{ts, v})
		}
	}
	require.NoError(t, app.Commit())
	require.NoError(t, db.Compact(ctx))

	var metas []tsdb.BlockMeta
	for _, b := range db.Blocks() {
		metas = append(metas, b.Meta())
	}
	require.Len(t, metas, wantBlocks, "the test must produce completed blocks")
	for i, m := range metas {
		require.Equal(t, 1, m.Compaction.Level)
		require.Equal(t, baseTime+int64(i)*blockRange, m.MinTime)
		require.Equal(t, baseTime+int64(i+1)*blockRange, m.MaxTime)
	}
	return db, w, metas
}

// readBlockSamples opens the block in dir with the TSDB library and returns all its samples.
func readBlockSamples(t *testing.T, dir string) (written, tsdb.BlockMeta) {
	t.Helper()
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), dir, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	q, err := tsdb.NewBlockQuerier(b, b.Meta().MinTime, b.Meta().MaxTime)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()

	out := written{}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			require.Equal(t, chunkenc.ValFloat, vt)
			ts, v := it.At()
			out[s.Labels().String()] = append(out[s.Labels().String()], sample{ts, v})
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return out, b.Meta()
}

// downloadBlock copies every object under <id>/ into dst/<id> and returns that directory.
func downloadBlock(t *testing.T, bkt objstore.BucketReader, id ulid.ULID, dst string) string {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(dst, id.String())
	err := bkt.Iter(ctx, id.String()+"/", func(name string) error {
		rc, err := bkt.Get(ctx, name)
		if err != nil {
			return err
		}
		defer func() { _ = rc.Close() }()
		local := filepath.Join(dst, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(local), 0o750); err != nil {
			return err
		}
		f, err := os.Create(local)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, rc); err != nil {
			_ = f.Close()
			return err
		}
		return f.Close()
	}, objstore.WithRecursiveIter())
	require.NoError(t, err)
	return dir
}

// objectNames lists every object of the bucket, recursively, sorted.
func objectNames(t *testing.T, bkt objstore.BucketReader) []string {
	t.Helper()
	var names []string
	require.NoError(t, bkt.Iter(context.Background(), "", func(name string) error {
		names = append(names, name)
		return nil
	}, objstore.WithRecursiveIter()))
	slices.Sort(names)
	return names
}

func getObject(t *testing.T, bkt objstore.BucketReader, name string) []byte {
	t.Helper()
	rc, err := bkt.Get(context.Background(), name)
	require.NoError(t, err)
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

// bucketKinds are the providers every end-to-end shipper test runs against. new returns the bucket and,
// for the filesystem provider, its root directory.
var bucketKinds = []struct {
	name string
	new  func(t *testing.T) (objstore.Bucket, string)
}{
	{"inmem", func(*testing.T) (objstore.Bucket, string) { return objstore.NewInMemBucket(), "" }},
	{"filesystem", func(t *testing.T) (objstore.Bucket, string) {
		root := t.TempDir()
		b, err := filesystem.NewBucket(root)
		require.NoError(t, err)
		return b, root
	}},
}

func inmem() objstore.Bucket { return objstore.NewInMemBucket() }

var errInjected = errors.New("injected upload failure")

// recordingBucket records the names passed to successful Upload calls, in order, and fails the failAt-th
// Upload call (1-based, counted from the last arm) when armed.
type recordingBucket struct {
	objstore.Bucket

	mu      sync.Mutex
	uploads []string
	calls   int
	failAt  int
}

func newRecordingBucket(b objstore.Bucket) *recordingBucket { return &recordingBucket{Bucket: b} }

// failNth arms the bucket to fail the n-th Upload call from now on; 0 disarms it.
func (b *recordingBucket) failNth(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls, b.failAt = 0, n
}

func (b *recordingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.mu.Lock()
	b.calls++
	fail := b.failAt > 0 && b.calls == b.failAt
	b.mu.Unlock()
	if fail {
		return errInjected
	}
	if err := b.Bucket.Upload(ctx, name, r, opts...); err != nil {
		return err
	}
	b.mu.Lock()
	b.uploads = append(b.uploads, name)
	b.mu.Unlock()
	return nil
}

func (b *recordingBucket) uploaded() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.uploads)
}

// metaUploads counts the successful uploads of <ULID>/meta.json per block.
func (b *recordingBucket) metaUploads() map[string]int {
	out := map[string]int{}
	for _, n := range b.uploaded() {
		if id, ok := strings.CutSuffix(n, "/"+MetaFilename); ok {
			out[id]++
		}
	}
	return out
}

func newTestShipper(t *testing.T, dir string, bkt objstore.Bucket) *Shipper {
	t.Helper()
	return New(Config{Dir: dir, Labels: extLabels}, bkt, slog.New(slog.DiscardHandler), nil)
}

func ids(metas []tsdb.BlockMeta) []ulid.ULID {
	out := make([]ulid.ULID, 0, len(metas))
	for _, m := range metas {
		out = append(out, m.ULID)
	}
	return out
}

func idSet(list ...ulid.ULID) map[ulid.ULID]struct{} {
	out := map[ulid.ULID]struct{}{}
	for _, id := range list {
		out[id] = struct{}{}
	}
	return out
}

func requireState(t *testing.T, dir string, want ...ulid.ULID) {
	t.Helper()
	st, err := ReadState(dir)
	require.NoError(t, err)
	require.Equal(t, 1, st.Version)
	require.ElementsMatch(t, want, st.Uploaded)
}

func metaExists(t *testing.T, bkt objstore.BucketReader, id ulid.ULID) bool {
	t.Helper()
	ok, err := bkt.Exists(context.Background(), path.Join(id.String(), MetaFilename))
	require.NoError(t, err)
	return ok
}

// sortedKeys is for readable failure messages.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
