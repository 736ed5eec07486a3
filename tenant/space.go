package tenant

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"golang.org/x/sys/unix"
)

// MinFreeSpaceAuto asks for the computed reserve (Config.MinFreeSpace): AutoMinFreeSpace of the volume.
const MinFreeSpaceAuto int64 = -1

// spaceCheckInterval is how long one look at the volume's free space stands for: writes in between
// trust it, so the reserve must hold what a node writes in this time (little: the WAL of a few
// requests).
const spaceCheckInterval = 250 * time.Millisecond

// AutoMinFreeSpace is the free-space reserve of a data volume of total bytes when none is configured.
// It covers what the node still writes once writes are refused, and what a full volume would make
// fail half way:
//   - a WAL repair, which rewrites the damaged segment beside the old one: one segment (128 MiB);
//   - the writes of one check interval, the heads' chunks still being written out, checkpoints and
//     the shipper's meta.json files: 1% of the volume. Cutting a head into a block needs room for the
//     block too; without it the cut fails cleanly and is retried (the head and WAL keep the data),
//     so a large reserve would only keep writes refused longer.
//
// On a small volume it is at most half of it, so that a test or a tiny node can still write.
func AutoMinFreeSpace(total uint64) int64 {
	return int64(min(uint64(wlog.DefaultSegmentSize)+total/100, total/2))
}

// spaceGuard refuses writes while the data volume has less free space than its reserve, and lets them
// through again by itself once there is room: what fills a volume (a cardinality burst, blocks that
// cannot ship, local retention) is outside the write path, and the WAL must never be left torn by a
// write that found no room (see walguard.go). Reads, shipping, pruning and retention are not its
// business: they free space, or need none.
type spaceGuard struct {
	dir     string
	reserve int64 // 0: writes are never refused
	statfs  func(dir string) (free, total uint64, err error)
	logger  *slog.Logger
	now     func() time.Time

	// next is when the cached answer expires (UnixNano); low is that answer. Writes read both without a
	// lock; the write that finds the answer stale refreshes it under mu, the others keep the old one.
	next atomic.Int64
	low  atomic.Bool
	free atomic.Uint64 // the last reading, for the error message
	mu   sync.Mutex    // held by the write that refreshes the answer

	// refusedLow and refusedWAL count the writes refused for each reason
	// (weir_storage_writes_refused_total).
	refusedLow, refusedWAL prometheus.Counter
}

// statfs returns the bytes an unprivileged writer may still use on the volume of dir, and its size.
func statfs(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), uint64(st.Blocks) * uint64(st.Bsize), nil
}

// newSpaceGuard resolves the reserve (MinFreeSpaceAuto: from the volume's size) and registers the
// guard's metrics.
func newSpaceGuard(dir string, minFree int64, fs func(string) (uint64, uint64, error), logger *slog.Logger, reg prometheus.Registerer) (*spaceGuard, error) {
	g := &spaceGuard{dir: dir, reserve: minFree, statfs: fs, logger: logger, now: time.Now}
	if minFree == MinFreeSpaceAuto {
		_, total, err := fs(dir)
		if err != nil {
			return nil, fmt.Errorf("free-space reserve: %w", err)
		}
		g.reserve = AutoMinFreeSpace(total)
	}
	if g.reserve < 0 {
		return nil, fmt.Errorf("free-space reserve %d is negative", minFree)
	}
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weir_storage_free_bytes",
		Help: "Free bytes on the data volume (statfs, as an unprivileged writer sees it).",
	}, func() float64 {
		free, _, err := g.statfs(g.dir)
		if err != nil {
			return -1
		}
		return float64(free)
	})
	f.NewGauge(prometheus.GaugeOpts{
		Name: "weir_storage_min_free_bytes",
		Help: "Free-space reserve of the data volume (--tsdb.min-free-space): below it, writes are refused with 503 until there is room (0: never).",
	}).Set(float64(g.reserve))
	refused := f.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_storage_writes_refused_total",
		Help: "Writes refused with 503 to keep acknowledged data safe: disk_low (the data volume is below its reserve), wal_failed (a tenant's WAL write failed; it reopens, repairing the WAL, before it takes writes again).",
	}, []string{"reason"})
	g.refusedLow = refused.WithLabelValues(refusedDiskLow)
	g.refusedWAL = refused.WithLabelValues(refusedWALFailed)
	return g, nil
}

// Reasons of weir_storage_writes_refused_total.
const (
	refusedDiskLow   = "disk_low"
	refusedWALFailed = "wal_failed"
)

// admit returns nil when the volume has room for writes, else an ErrUnavailable error saying why.
func (g *spaceGuard) admit() error {
	if g.reserve == 0 {
		return nil
	}
	now := g.now().UnixNano()
	if now >= g.next.Load() && g.mu.TryLock() {
		g.check(now)
		g.mu.Unlock()
	}
	if !g.low.Load() {
		return nil
	}
	g.refusedLow.Inc()
	return fmt.Errorf("%w: the data volume has %s free, below its reserve of %s (--tsdb.min-free-space): writes are refused until there is room",
		ErrUnavailable, units.Base2Bytes(g.free.Load()), units.Base2Bytes(g.reserve))
}

// check reads the free space and logs a change of state. The caller holds g.mu.
func (g *spaceGuard) check(now int64) {
	g.next.Store(now + int64(spaceCheckInterval))
	free, _, err := g.statfs(g.dir)
	if err != nil {
		// Not knowing is no reason to stop writing: the WAL guard still catches a failed write.
		g.logger.Warn("cannot read the data volume's free space", "err", err)
		return
	}
	g.free.Store(free)
	low := free < uint64(g.reserve)
	switch was := g.low.Swap(low); {
	case low && !was:
		g.logger.Error("data volume below its free-space reserve: refusing writes with 503 until there is room; reads, shipping and retention go on",
			"dir", g.dir, "free", units.Base2Bytes(free), "reserve", units.Base2Bytes(g.reserve))
	case !low && was:
		g.logger.Info("data volume has room again: taking writes", "dir", g.dir, "free", units.Base2Bytes(free), "reserve", units.Base2Bytes(g.reserve))
	}
}
