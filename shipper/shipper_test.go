package shipper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
)

func TestSyncShipsReadableBlocks(t *testing.T) {
	for _, bk := range bucketKinds {
		t.Run(bk.name, func(t *testing.T) {
			dir := t.TempDir()
			_, w, metas := testTSDB(t, dir)
			bkt, root := bk.new(t)
			s := newTestShipper(t, dir, bkt)

			n, err := s.Sync(context.Background())
			require.NoError(t, err)
			require.Equal(t, len(metas), n)

			for _, local := range metas {
				id := local.ULID.String()
				localDir := filepath.Join(dir, id)

				// meta.json: the TSDB fields unchanged, plus the Thanos section.
				raw := getObject(t, bkt, path.Join(id, MetaFilename))
				m, err := ParseMeta(raw)
				require.NoError(t, err)
				require.Equal(t, local, m.BlockMeta)
				require.Equal(t, testExtLabels.Map(), m.Thanos.Labels)
				require.Equal(t, int64(0), m.Thanos.Downsample.Resolution)
				require.Equal(t, "receive", m.Thanos.Source)
				require.Equal(t, []string{"000001"}, m.Thanos.SegmentFiles)

				var want []File
				for _, rel := range []string{"chunks/000001", "index"} {
					fi, err := os.Stat(filepath.Join(localDir, filepath.FromSlash(rel)))
					require.NoError(t, err)
					want = append(want, File{RelPath: rel, SizeBytes: fi.Size()})
					// The object has exactly the local size.
					require.Len(t, getObject(t, bkt, path.Join(id, rel)), int(fi.Size()), rel)
				}
				want = append(want, File{RelPath: "meta.json"})
				require.Equal(t, want, m.Thanos.Files)

				// The exact key set of the JSON, as Thanos writes it.
				var top map[string]json.RawMessage
				require.NoError(t, json.Unmarshal(raw, &top))
				require.ElementsMatch(t, []string{"ulid", "minTime", "maxTime", "stats", "compaction", "version", "thanos"}, sortedKeys(top))
				var th map[string]any
				require.NoError(t, json.Unmarshal(top["thanos"], &th))
				require.ElementsMatch(t, []string{"labels", "downsample", "source", "segment_files", "files", "index_stats"}, sortedKeys(th))
				require.Equal(t, map[string]any{"resolution": float64(0)}, th["downsample"])
				require.Equal(t, map[string]any{}, th["index_stats"])
				require.Contains(t, string(raw), `"rel_path": "meta.json"`+"\n")

				// Read the shipped block back with the TSDB library: exactly what was written.
				// For the filesystem provider, straight from the bucket's directory.
				shipped := filepath.Join(root, id)
				if root == "" {
					shipped = downloadBlock(t, bkt, local.ULID, t.TempDir())
				}
				got, gotMeta := readBlockSamples(t, shipped)
				require.Equal(t, local, gotMeta)
				require.Equal(t, w.inRange(local.MinTime, local.MaxTime), got)
				require.Len(t, got, seriesN)
			}
			if testing.Verbose() && bk.name == "inmem" {
				t.Logf("meta.json of %s:\n%s", metas[0].ULID, getObject(t, bkt, path.Join(metas[0].ULID.String(), MetaFilename)))
			}

			// Nothing but the blocks' files is in the bucket; no staging leftovers locally.
			var wantObjects []string
			for _, id := range ids(metas) {
				for _, f := range []string{"chunks/000001", "index", "meta.json"} {
					wantObjects = append(wantObjects, path.Join(id.String(), f))
				}
			}
			require.Equal(t, wantObjects, objectNames(t, bkt))
			entries, err := os.ReadDir(filepath.Join(dir, "thanos", "upload"))
			require.NoError(t, err)
			require.Empty(t, entries)
		})
	}
}

func TestSyncUploadsMetaLastAndOldestFirst(t *testing.T) {
	dir := t.TempDir()
	_, _, metas := testTSDB(t, dir)
	bkt := newRecordingBucket(inmem())
	s := newTestShipper(t, dir, bkt)

	_, err := s.Sync(context.Background())
	require.NoError(t, err)

	var want []string
	for _, id := range ids(metas) {
		want = append(want, id.String()+"/chunks/000001", id.String()+"/index", id.String()+"/meta.json")
	}
	// Blocks one after another, oldest first, each ending with its meta.json.
	require.Equal(t, want, bkt.uploaded())
}

func TestSyncIsIdempotentAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	_, _, metas := testTSDB(t, dir)
	bkt := newRecordingBucket(inmem())
	ctx := context.Background()

	s := newTestShipper(t, dir, bkt)
	n, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, wantBlocks, n)
	requireState(t, dir, ids(metas)...)
	require.Equal(t, idSet(ids(metas)...), s.Uploaded())
	before := len(bkt.uploaded())

	n, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	restarted := newTestShipper(t, dir, bkt)
	require.Equal(t, idSet(ids(metas)...), restarted.Uploaded(), "known from the state file before any Sync")
	n, err = restarted.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	require.Len(t, bkt.uploaded(), before, "nothing uploaded twice")
	requireState(t, dir, ids(metas)...)
	for _, id := range ids(metas) {
		require.Equal(t, 1, bkt.metaUploads()[id.String()])
	}
}

func TestSyncRetriesFailedUploadNextTime(t *testing.T) {
	// Each block is 3 uploads: chunks/000001, index, meta.json.
	for _, tc := range []struct {
		name     string
		failAt   int
		okBefore int // blocks fully uploaded before the failure
	}{
		{"first chunk of first block", 1, 0},
		{"meta.json of first block", 3, 0},
		{"index of second block", 5, 1},
		{"meta.json of second block", 6, 1},
		{"meta.json of last block", 9, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, bk := range bucketKinds {
				t.Run(bk.name, func(t *testing.T) {
					dir := t.TempDir()
					_, _, metas := testTSDB(t, dir)
					all := ids(metas)
					b, _ := bk.new(t)
					bkt := newRecordingBucket(b)
					s := newTestShipper(t, dir, bkt)
					ctx := context.Background()

					bkt.failNth(tc.failAt)
					n, err := s.Sync(ctx)
					require.ErrorIs(t, err, errInjected)
					require.Contains(t, err.Error(), all[tc.okBefore].String())
					require.Equal(t, tc.okBefore, n)
					requireState(t, dir, all[:tc.okBefore]...)
					require.Equal(t, idSet(all[:tc.okBefore]...), s.Uploaded())
					for i, id := range all {
						require.Equal(t, i < tc.okBefore, metaExists(t, bkt, id), "meta.json of block %d", i)
					}

					bkt.failNth(0)
					n, err = s.Sync(ctx)
					require.NoError(t, err)
					require.Equal(t, len(all)-tc.okBefore, n)
					requireState(t, dir, all...)
					require.Equal(t, idSet(all...), s.Uploaded())
					for _, id := range all {
						require.Equal(t, 1, bkt.metaUploads()[id.String()], "meta.json of %s uploaded exactly once", id)
					}

					n, err = newTestShipper(t, dir, bkt).Sync(ctx)
					require.NoError(t, err)
					require.Zero(t, n)
				})
			}
		})
	}
}

func TestSyncAfterCrashBeforeStateWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state func(t *testing.T, dir string, all []ulid.ULID)
	}{
		{"state file lost", func(t *testing.T, dir string, _ []ulid.ULID) {
			require.NoError(t, os.Remove(filepath.Join(dir, StateFilename)))
		}},
		{"last block not recorded", func(t *testing.T, dir string, all []ulid.ULID) {
			require.NoError(t, WriteState(dir, State{Version: 1, Uploaded: all[:len(all)-1]}))
		}},
		{"garbage state file", func(t *testing.T, dir string, _ []ulid.ULID) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, StateFilename), []byte("\x00\x17{not json"), 0o644))
		}},
		{"truncated state file", func(t *testing.T, dir string, _ []ulid.ULID) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, StateFilename), []byte(`{"version":1,"uploaded":["01`), 0o644))
		}},
		{"unknown state version", func(t *testing.T, dir string, all []ulid.ULID) {
			b, err := json.Marshal(map[string]any{"version": 2, "uploaded": all})
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, StateFilename), b, 0o644))
		}},
		{"empty state file", func(t *testing.T, dir string, _ []ulid.ULID) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, StateFilename), nil, 0o644))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, _, metas := testTSDB(t, dir)
			all := ids(metas)
			bkt := newRecordingBucket(inmem())
			ctx := context.Background()

			_, err := newTestShipper(t, dir, bkt).Sync(ctx)
			require.NoError(t, err)
			before := bkt.uploaded()

			tc.state(t, dir, all)
			s := newTestShipper(t, dir, bkt) // must not fail or panic
			n, err := s.Sync(ctx)
			require.NoError(t, err)
			require.Zero(t, n)
			require.Equal(t, before, bkt.uploaded(), "no re-upload")
			requireState(t, dir, all...)
			require.Equal(t, idSet(all...), s.Uploaded())
		})
	}
}

func TestSyncCorruptedStateWithEmptyBucketUploadsOnce(t *testing.T) {
	dir := t.TempDir()
	_, _, metas := testTSDB(t, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, StateFilename), []byte("garbage"), 0o644))
	bkt := newRecordingBucket(inmem())

	s := newTestShipper(t, dir, bkt)
	require.Empty(t, s.Uploaded())
	n, err := s.Sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, wantBlocks, n)
	requireState(t, dir, ids(metas)...)
	for _, id := range ids(metas) {
		require.Equal(t, 1, bkt.metaUploads()[id.String()])
	}
}

func TestSyncMetrics(t *testing.T) {
	dir := t.TempDir()
	_, _, metas := testTSDB(t, dir)
	all := ids(metas)
	bkt := newRecordingBucket(inmem())
	reg := prometheus.NewRegistry()
	s := New(Config{Dir: dir, Labels: extLabels}, bkt, nil, reg)
	// The oldest pending block is the first one; pretend its creation was 90s ago.
	now := time.UnixMilli(int64(all[0].Time())).Add(90 * time.Second)
	for _, id := range all[1:] {
		if t0 := time.UnixMilli(int64(id.Time())); t0.After(now) {
			now = t0 // keep all ages non-negative; the age is still measured from the oldest block
		}
	}
	s.now = func() time.Time { return now }
	ctx := context.Background()

	// Before the first Sync nothing is known.
	require.InDelta(t, 0, promtest.ToFloat64(s.metrics.pending), 0)

	bkt.failNth(1)
	_, err := s.Sync(ctx)
	require.Error(t, err)
	require.InDelta(t, 1, promtest.ToFloat64(s.metrics.uploadFailures), 0)
	require.InDelta(t, 0, promtest.ToFloat64(s.metrics.uploads), 0)
	require.InDelta(t, float64(len(all)), promtest.ToFloat64(s.metrics.pending), 0)
	wantAge := now.Sub(time.UnixMilli(int64(all[0].Time()))).Seconds()
	require.InDelta(t, wantAge, promtest.ToFloat64(s.metrics.oldestUnshipped), 1e-9)
	require.InDelta(t, 0, promtest.ToFloat64(s.metrics.lastSuccess), 0)

	// Fail the second block: the oldest unshipped block is now the second one.
	bkt.failNth(4)
	n, err := s.Sync(ctx)
	require.Error(t, err)
	require.Equal(t, 1, n)
	require.InDelta(t, float64(len(all)-1), promtest.ToFloat64(s.metrics.pending), 0)
	require.InDelta(t, now.Sub(time.UnixMilli(int64(all[1].Time()))).Seconds(), promtest.ToFloat64(s.metrics.oldestUnshipped), 1e-9)
	require.InDelta(t, float64(now.UnixNano())/1e9, promtest.ToFloat64(s.metrics.lastSuccess), 1e-3)

	bkt.failNth(0)
	_, err = s.Sync(ctx)
	require.NoError(t, err)

	var size int
	for _, name := range bkt.uploaded() {
		size += len(getObject(t, bkt, name))
	}
	require.NoError(t, promtest.GatherAndCompare(reg, strings.NewReader(`
# HELP weir_shipper_blocks_pending Local blocks waiting to be uploaded, as of the last sync.
# TYPE weir_shipper_blocks_pending gauge
weir_shipper_blocks_pending 0
# HELP weir_shipper_oldest_unshipped_block_age_seconds Seconds since the oldest block waiting for upload was created (its ULID time), as of the last sync; 0 when none waits.
# TYPE weir_shipper_oldest_unshipped_block_age_seconds gauge
weir_shipper_oldest_unshipped_block_age_seconds 0
# HELP weir_shipper_upload_failures_total Block uploads that failed; the block is retried by the next sync.
# TYPE weir_shipper_upload_failures_total counter
weir_shipper_upload_failures_total 2
# HELP weir_shipper_uploads_total Blocks uploaded to object storage (meta.json included).
# TYPE weir_shipper_uploads_total counter
weir_shipper_uploads_total 3
`), "weir_shipper_blocks_pending", "weir_shipper_oldest_unshipped_block_age_seconds",
		"weir_shipper_upload_failures_total", "weir_shipper_uploads_total"))
	require.InDelta(t, float64(size), promtest.ToFloat64(s.metrics.uploadedBytes), 0)
}

func TestSyncSkipsCompactedAndEmptyBlocks(t *testing.T) {
	dir := t.TempDir()
	db, _, metas := testTSDB(t, dir)
	require.NoError(t, db.Close()) // the DB would reject the edited metas; closing twice is harmless

	rewrite := func(m tsdb.BlockMeta) {
		b, err := json.MarshalIndent(m, "", "\t")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, m.ULID.String(), MetaFilename), b, 0o644))
	}
	compacted := metas[0]
	compacted.Compaction.Level = 2
	rewrite(compacted)
	empty := metas[1]
	empty.Stats = tsdb.BlockStats{}
	rewrite(empty)

	bkt := newRecordingBucket(inmem())
	s := newTestShipper(t, dir, bkt)
	n, err := s.Sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, map[string]int{metas[2].ULID.String(): 1}, bkt.metaUploads())
	require.Equal(t, idSet(metas[2].ULID), s.Uploaded())
	require.InDelta(t, 0, promtest.ToFloat64(s.metrics.pending), 0)
}

func TestSyncIgnoresNonBlocksAndCleansStaleStaging(t *testing.T) {
	dir := t.TempDir()
	_, _, metas := testTSDB(t, dir)
	// A block being written, a block being deleted, a ULID directory without meta.json, a stray file.
	// Two distinct ULIDs: without entropy, ULIDs made in the same millisecond are equal.
	other, stray := ulid.MustNew(ulid.Now(), nil).String(), ulid.MustNew(ulid.Now()+1, nil).String()
	for _, d := range []string{other + ".tmp-for-creation", metas[0].ULID.String() + ".tmp-for-deletion", other} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d, "chunks"), 0o750))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, stray), nil, 0o644))
	// Leftovers of uploads interrupted by a crash, one of a block deleted since.
	stale := filepath.Join(dir, "thanos", "upload", metas[0].ULID.String())
	require.NoError(t, os.MkdirAll(filepath.Join(stale, "chunks"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(stale, "chunks", "000001"), []byte("partial"), 0o644))
	gone := filepath.Join(dir, "thanos", "upload", other)
	require.NoError(t, os.MkdirAll(gone, 0o750))

	bkt := newRecordingBucket(inmem())
	n, err := newTestShipper(t, dir, bkt).Sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, wantBlocks, n)
	require.Len(t, bkt.metaUploads(), wantBlocks)
	got, _ := readBlockSamples(t, downloadBlock(t, bkt, metas[0].ULID, t.TempDir()))
	require.Len(t, got, seriesN)
	entries, err := os.ReadDir(filepath.Join(dir, "thanos", "upload"))
	require.True(t, err == nil || errors.Is(err, os.ErrNotExist), "%v", err)
	require.Empty(t, entries)
}

func TestSyncShipsTombstones(t *testing.T) {
	dir := t.TempDir()
	db, w, metas := testTSDB(t, dir)
	// Delete one series everywhere: every block gets tombstones (and stats.numTombstones in its meta.json).
	gone := labels.FromStrings("__name__", "weir_shipper_test", "job", "shipper", "instance", "i0")
	require.NoError(t, db.Delete(context.Background(), baseTime, baseTime+dataSpan, labels.MustNewMatcher(labels.MatchEqual, "instance", "i0")))
	delete(w, gone.String())

	bkt := newRecordingBucket(inmem())
	n, err := newTestShipper(t, dir, bkt).Sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, wantBlocks, n)
	for _, local := range metas {
		id := local.ULID.String()
		m, err := ParseMeta(getObject(t, bkt, path.Join(id, MetaFilename)))
		require.NoError(t, err)
		require.Positive(t, m.Stats.NumTombstones)
		fi, err := os.Stat(filepath.Join(dir, id, TombstonesFilename))
		require.NoError(t, err)
		require.Contains(t, m.Thanos.Files, File{RelPath: "tombstones", SizeBytes: fi.Size()})
		require.Equal(t, []string{id + "/chunks/000001", id + "/index", id + "/tombstones", id + "/meta.json"},
			slices.DeleteFunc(bkt.uploaded(), func(n string) bool { return !strings.HasPrefix(n, id+"/") }))

		got, _ := readBlockSamples(t, downloadBlock(t, bkt, local.ULID, t.TempDir()))
		require.Equal(t, w.inRange(local.MinTime, local.MaxTime), got)
		require.Len(t, got, seriesN-1)
	}
}

func TestSyncForgetsBlocksDeletedLocally(t *testing.T) {
	dir := t.TempDir()
	db, _, metas := testTSDB(t, dir)
	require.NoError(t, db.Close())
	bkt := newRecordingBucket(inmem())
	s := newTestShipper(t, dir, bkt)
	_, err := s.Sync(context.Background())
	require.NoError(t, err)

	// Retention deletes the oldest (shipped) block.
	require.NoError(t, os.RemoveAll(filepath.Join(dir, metas[0].ULID.String())))
	n, err := s.Sync(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
	requireState(t, dir, ids(metas[1:])...)
	require.Equal(t, idSet(ids(metas[1:])...), s.Uploaded())
}

func TestSyncNewBlockWhileDBRuns(t *testing.T) {
	dir := t.TempDir()
	db, w, metas := testTSDB(t, dir)
	bkt := newRecordingBucket(inmem())
	s := newTestShipper(t, dir, bkt)
	ctx := context.Background()
	_, err := s.Sync(ctx)
	require.NoError(t, err)

	// A new series over the head's last hour (the oldest it still accepts) and 2h more: the head completes one more block, which the next Sync
	// ships alone.
	app := db.Appender(ctx)
	lset := labels.FromStrings("__name__", "weir_shipper_test", "job", "shipper", "instance", "late")
	for ts := baseTime + dataSpan - blockRange/2; ts < baseTime+dataSpan+blockRange; ts += sampleStep {
		_, err := app.Append(0, lset, ts, 1)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	require.NoError(t, db.Compact(ctx))
	blocks := db.Blocks()
	require.Len(t, blocks, len(metas)+1)
	newest := blocks[len(blocks)-1].Meta()

	n, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, _ := readBlockSamples(t, downloadBlock(t, bkt, newest.ULID, t.TempDir()))
	want := w.inRange(newest.MinTime, newest.MaxTime)
	for ts := baseTime + dataSpan - blockRange/2; ts < newest.MaxTime; ts += sampleStep {
		want[lset.String()] = append(want[lset.String()], sample{ts, 1})
	}
	require.Equal(t, want, got)
}

func TestSyncConcurrentWithUploaded(t *testing.T) {
	dir := t.TempDir()
	_, _, metas := testTSDB(t, dir)
	bkt := newRecordingBucket(inmem())
	s := newTestShipper(t, dir, bkt)
	ctx := context.Background()
	known := idSet(ids(metas)...)

	done := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			for id := range s.Uploaded() {
				if _, ok := known[id]; !ok {
					readerErr <- fmt.Errorf("unknown block %s in Uploaded()", id)
					return
				}
			}
		}
	}()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
		errs  []error
	)
	for range 4 {
		wg.Go(func() {
			n, err := s.Sync(ctx)
			mu.Lock()
			defer mu.Unlock()
			total += n
			errs = append(errs, err)
		})
	}
	wg.Wait()
	close(done)
	require.NoError(t, <-readerErr)
	require.NoError(t, errors.Join(errs...))
	require.Equal(t, wantBlocks, total, "concurrent Syncs upload each block once")
	require.Equal(t, known, s.Uploaded())
	for _, id := range ids(metas) {
		require.Equal(t, 1, bkt.metaUploads()[id.String()])
	}
}

func TestSyncConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bkt := inmem()
	ctx := context.Background()

	_, err := New(Config{Dir: dir}, bkt, nil, nil).Sync(ctx)
	require.Error(t, err)
	_, err = New(Config{Labels: extLabels}, bkt, nil, nil).Sync(ctx)
	require.Error(t, err)
	_, err = New(Config{Dir: dir, Labels: labels.EmptyLabels}, bkt, nil, nil).Sync(ctx)
	require.ErrorIs(t, err, ErrNoExternalLabels)
	_, err = New(Config{Dir: filepath.Join(dir, "missing"), Labels: extLabels}, bkt, nil, nil).Sync(ctx)
	require.Error(t, err)
}

func TestSyncCancelled(t *testing.T) {
	dir := t.TempDir()
	_, _, _ = testTSDB(t, dir)
	bkt := newRecordingBucket(inmem())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := newTestShipper(t, dir, bkt).Sync(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, n)
	require.Empty(t, bkt.uploaded())
}

// pairBucket lets the upload of a block's data files go on only once two of them are in flight at
// once (a two-party barrier, reset for each pair), and checks that meta.json is uploaded alone.
type pairBucket struct {
	objstore.Bucket
	mu       sync.Mutex
	inFlight int
	waiting  int
	pair     chan struct{} // closed when the second of a pair arrives
	metaErr  error
}

func (b *pairBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.mu.Lock()
	b.inFlight++
	if path.Base(name) == MetaFilename && b.inFlight != 1 && b.metaErr == nil {
		b.metaErr = fmt.Errorf("meta.json of %s uploaded with %d other uploads in flight", name, b.inFlight-1)
	}
	var wait chan struct{}
	if path.Base(name) != MetaFilename {
		if b.waiting++; b.waiting == 2 {
			close(b.pair)
			b.pair, b.waiting = make(chan struct{}), 0
		} else {
			wait = b.pair
		}
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}()
	if wait != nil {
		select {
		case <-wait:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("upload of %s: no second upload in flight within 10s", name)
		}
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// TestSyncUploadConcurrency: with --shipper.upload-concurrency=2 a block's two data files are uploaded
// at once (the bucket lets neither finish before the other started), and meta.json alone, last.
func TestSyncUploadConcurrency(t *testing.T) {
	dir := t.TempDir()
	_, _, metas := testTSDB(t, dir)
	bkt := &pairBucket{Bucket: inmem(), pair: make(chan struct{})}
	s := New(Config{Dir: dir, Labels: extLabels, UploadConcurrency: 2}, bkt, slog.New(slog.DiscardHandler), nil)
	n, err := s.Sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, len(metas), n)
	require.NoError(t, bkt.metaErr)
	require.Error(t, Config{Dir: dir, Labels: extLabels, UploadConcurrency: -1}.Validate())
}
