package tenant

import (
	"math/bits"
	"path/filepath"
	"runtime"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/fileutil"
)

// StripeSizeAuto is Config.StripeSize's "auto": each tenant's head is sized from its WAL when it opens
// (headSizeFor).
const StripeSizeAuto = 0

// MaxStripeSize is the largest stripe size a head gets: the TSDB's default, which Prometheus, Thanos
// Receive and Mimir (-blocks-storage.tsdb.stripe-size) give every head.
const MaxStripeSize = tsdb.DefaultStripeSize

const (
	// walBytesPerStripe is how much WAL (checkpoint included) earns a head one more stripe under
	// auto: a series' record is 100-300 bytes, and every sample adds a few more, so a 16 KiB share
	// stands for at most ~100 series. A 1M-series tenant's WAL (hundreds of MiB) gets MaxStripeSize.
	walBytesPerStripe = 16 << 10
	// stripesPerProc is the fewest stripes per core under auto. Writers to one tenant at once are
	// at most the write slots (--receive.write-slots, GOMAXPROCS by default), so with 64 stripes a
	// core a writer finds another one's stripe locked less than 2% of the time; and the locks are
	// held for a map lookup.
	stripesPerProc = 64
	// chunkBufferPerStripe scales the head chunks' write buffer with the stripes: MaxStripeSize
	// stripes get the TSDB's default 4 MiB, a small head the minimum of 64 KiB, which holds the
	// chunks that a few thousand series cut at once.
	chunkBufferPerStripe = chunks.DefaultWriteBufferSize / MaxStripeSize
)

// headSize is what a tenant's head allocates up front whatever it holds: its series stripes (each an
// empty map pair, a lock and a counter, ~250 bytes) and the write buffer of its head chunks (allocated
// with the first chunk written to disk).
type headSize struct {
	StripeSize        int
	ChunkWriteBuffer  int
	WALBytesAtOpening int64
}

// headSizeFor sizes the head of the tenant TSDB in dir, the rank-th tenant open on this node (1: no
// other). With a fixed stripe size (cfg > 0) every head gets it and the TSDB's default chunk write
// buffer, as in Thanos Receive. Under auto a head gets the largest of:
//
//   - a share of the node's stripe budget: MaxStripeSize / rank (a power of two), so that the first
//     tenant of a node — the single big tenant of many deployments — gets exactly today's head, and
//     the stripes of N tenants add up to MaxStripeSize × (ln N + 0.6) rather than × N (~40 MB for
//     10,000 tenants instead of ~43 GB);
//   - what its WAL holds when it opens: a tenant that grew gets more stripes at its next open;
//   - stripesPerProc × procs (128 on two cores, ~32 KiB): enough that writers rarely meet on a lock.
//
// The head chunks' write buffer follows the stripes, from 64 KiB to the default 4 MiB. A stripe size
// is fixed for the life of a head: a tenant that grows after it opened keeps its stripes until its
// next open (restart, idle pruning), paying only more series per stripe map (longer lock holds in
// head GC), never lost data.
func headSizeFor(cfg int, dir string, procs, rank int) headSize {
	if cfg > 0 {
		return headSize{StripeSize: cfg, ChunkWriteBuffer: chunks.DefaultWriteBufferSize}
	}
	// No WAL yet (a new tenant) counts as empty; Prometheus' own walk of the directory.
	walBytes, _ := fileutil.DirSize(filepath.Join(dir, "wal"))
	share := ceilPow2(int64(MaxStripeSize/max(rank, 1)+1)) / 2 // the power of two ≤ MaxStripeSize/rank
	stripes := max(share, ceilPow2(int64(stripesPerProc*max(procs, 1))), ceilPow2(walBytes/walBytesPerStripe))
	stripes = min(stripes, MaxStripeSize)
	buf := min(max(stripes*chunkBufferPerStripe, chunks.MinWriteBufferSize), chunks.DefaultWriteBufferSize)
	return headSize{StripeSize: stripes, ChunkWriteBuffer: buf, WALBytesAtOpening: walBytes}
}

// autoHeadSize is headSizeFor for this process.
func autoHeadSize(cfg int, dir string, rank int) headSize {
	return headSizeFor(cfg, dir, runtime.GOMAXPROCS(0), rank)
}

// ceilPow2 is the smallest power of two ≥ n (1 for n ≤ 1), saturating at 1<<62.
func ceilPow2(n int64) int {
	if n <= 1 {
		return 1
	}
	if n > 1<<62 {
		return 1 << 62
	}
	return 1 << bits.Len64(uint64(n-1))
}

// isPow2 reports whether n is a positive power of two.
func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }
