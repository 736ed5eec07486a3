//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/loadgen"
	"github.com/weir-metrics/weir/shipper"
)

// The bucket side of the verifier: every block in the bucket is complete and carries Thanos' metadata,
// no replica has two blocks of a tenant over the same time, and the acknowledged samples are in the
// blocks of at least a write quorum of replicas, with their values.

// bucketData is what the blocks hold: replica label → tenant → series → timestamp → value bits.
type bucketData map[string]map[string]map[string]map[int64]uint64

// bucketSummary counts what verifyBucketBlocks checked.
type bucketSummary struct {
	blocks    int
	byReplica map[string]int
}

// verifyBucketBlocks checks every block directory of the bucket and returns their samples. A block is
// complete when its meta.json is there and lists exactly the objects under the block, with their sizes;
// a directory without meta.json is a partial upload, which a clean stop must not leave behind.
func verifyBucketBlocks(t *testing.T, bucketDir string) (bucketData, bucketSummary) {
	t.Helper()
	data := bucketData{}
	sum := bucketSummary{byReplica: map[string]int{}}
	spans := map[string][][2]int64{} // replica/tenant → [minTime, maxTime) of its blocks
	entries, err := os.ReadDir(bucketDir)
	require.NoError(t, err)
	for _, e := range entries {
		if _, err := ulid.Parse(e.Name()); err != nil || !e.IsDir() {
			continue // the server's own files
		}
		dir := filepath.Join(bucketDir, e.Name())
		meta := requireCompleteBlock(t, dir)
		replica, tenantID := meta.Thanos.Labels["replica"], meta.Thanos.Labels["tenant_id"]
		k := replica + "/" + tenantID
		for _, s := range spans[k] {
			require.False(t, meta.MinTime < s[1] && s[0] < meta.MaxTime,
				"block %s of %s overlaps another block of the same replica and tenant [%d, %d): a duplicate upload", e.Name(), k, s[0], s[1])
		}
		spans[k] = append(spans[k], [2]int64{meta.MinTime, meta.MaxTime})
		sum.blocks++
		sum.byReplica[replica]++

		if data[replica] == nil {
			data[replica] = map[string]map[string]map[int64]uint64{}
		}
		if data[replica][tenantID] == nil {
			data[replica][tenantID] = map[string]map[int64]uint64{}
		}
		series := data[replica][tenantID]
		for k, samples := range readBlock(t, dir) {
			if series[k] == nil {
				series[k] = make(map[int64]uint64, len(samples))
			}
			for _, s := range samples {
				series[k][s.T] = math.Float64bits(s.V)
			}
		}
	}
	return data, sum
}

// requireCompleteBlock checks a block directory of the bucket and returns its meta.json.
func requireCompleteBlock(t *testing.T, dir string) shipper.Meta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, shipper.MetaFilename))
	require.NoError(t, err, "block without meta.json (a partial upload): %s", dir)
	meta, err := shipper.ParseMeta(b)
	require.NoError(t, err, dir)
	require.Equal(t, filepath.Base(dir), meta.ULID.String(), "meta.json of another block")
	require.Equal(t, shipper.SourceReceive, meta.Thanos.Source, dir)
	require.Zero(t, meta.Thanos.Downsample.Resolution, dir)
	require.Equal(t, 1, meta.Compaction.Level, dir)
	require.NotEmpty(t, meta.Thanos.Labels["tenant_id"], "tenant label of %s", dir)
	require.NotEmpty(t, meta.Thanos.Labels["replica"], "replica label of %s", dir)
	require.LessOrEqual(t, meta.MaxTime-meta.MinTime, int64(2*60*60*1000), "a block spans at most 2h: %s", dir)

	var listed []string
	for _, f := range meta.Thanos.Files {
		listed = append(listed, f.RelPath)
		if f.RelPath == shipper.MetaFilename {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.RelPath)))
		require.NoError(t, err, "object listed in meta.json missing from the bucket: %s/%s", dir, f.RelPath)
		require.Equal(t, f.SizeBytes, fi.Size(), "size of %s/%s", dir, f.RelPath)
	}
	slices.Sort(listed)
	require.Equal(t, listed, relFiles(t, dir), "objects of %s vs. the files its meta.json lists", dir)
	require.Contains(t, listed, shipper.IndexFilename, dir)
	return meta
}

// bucketQuorum is what checkBucketQuorum found.
type bucketQuorum struct {
	acked, lost, diverging, copies int
}

// checkBucketQuorum checks that every sample of the ack log is in the blocks of at least quorum
// replicas, with the acknowledged value.
func checkBucketQuorum(t *testing.T, data bucketData, ackLog string, quorum int) bucketQuorum {
	t.Helper()
	spec, records, err := loadgen.ReadAckLog(ackLog)
	require.NoError(t, err)
	var res bucketQuorum
	var examples []string
	for rec, err := range records {
		require.NoError(t, err)
		for s := range rec.Samples(spec) {
			res.acked++
			found, diverged := bucketCopies(data, s.Tenant, s.Labels.String(), s.Timestamp, math.Float64bits(s.Value))
			res.copies += found
			res.diverging += diverged
			if found < quorum {
				res.lost++
				if len(examples) < 5 {
					examples = append(examples, fmt.Sprintf("%s %s@%d in %d replica(s)", s.Tenant, s.Labels, s.Timestamp, found))
				}
			}
		}
	}
	require.Positive(t, res.acked)
	require.Zero(t, res.lost+res.diverging, "acknowledged samples missing from the bucket (%d) or diverging (%d); first: %s",
		res.lost, res.diverging, strings.Join(examples, "; "))
	return res
}

// checkBucketSamples checks that every sample of want (series → samples) of the tenant is in the blocks
// of at least quorum replicas, with its value, and returns the copies found.
func checkBucketSamples(t *testing.T, data bucketData, tenantID string, want map[string][]sample, quorum int) int {
	t.Helper()
	copies := 0
	for k, samples := range want {
		for _, s := range samples {
			found, diverged := bucketCopies(data, tenantID, k, s.T, math.Float64bits(s.V))
			require.Zero(t, diverged, "%s %s@%d diverges", tenantID, k, s.T)
			require.GreaterOrEqual(t, found, quorum, "%s %s@%d in %d replica(s) of the bucket", tenantID, k, s.T, found)
			copies += found
		}
	}
	return copies
}

// bucketCopies counts the replicas holding the sample with the value bits want, and those holding it
// with another value.
func bucketCopies(data bucketData, tenantID, series string, ts int64, want uint64) (found, diverged int) {
	for _, tenants := range data {
		v, ok := tenants[tenantID][series][ts]
		switch {
		case !ok:
		case v == want:
			found++
		default:
			diverged++
		}
	}
	return found, diverged
}
