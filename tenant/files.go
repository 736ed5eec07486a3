package tenant

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sys/unix"
)

// Every open tenant holds files (its lock, WAL segment, head-chunk file, two per local block), and
// the process needs more for connections, compactions and uploads. When opens use up the process'
// open-file limit, it is not only the new tenant that fails: every open file that any tenant needs
// next fails too, and Prometheus panics the whole process on a head-chunk file it cannot open
// (tsdb.handleChunkWriteError). A flood of new tenants (a sender with a bad tenant header, thousands
// of small tenants on one node) must not take the node down with it, so a new tenant is opened only
// while the process keeps a reserve of descriptors free: a tenth of the limit (at least
// minFileReserve) for connections, compactions and uploads, plus room for the next block of every
// open tenant. Refused opens answer 503, and the tenant opens once there is room again (idle tenants
// pruned, or a higher limit).

const (
	// minFileReserve is the least number of descriptors kept free for what is not a tenant's open.
	minFileReserve = 64
	// filesPerOpen is what a new tenant is counted as until the next count: the files it holds once
	// open (lock, WAL segment, head-chunk directory and file) and a block it reads at its open.
	filesPerOpen = 6
	// filesPerBlock is what an open tenant's next block holds while it is a local block.
	filesPerBlock = 2
	// fileCountInterval is how long a count of the open descriptors stands while it shows room;
	// fileRecountInterval how soon a refusal may count again (a count lists /proc/self/fd).
	fileCountInterval   = time.Second
	fileRecountInterval = 100 * time.Millisecond
)

// fileGuard decides whether one more tenant may be opened without using up the open-file limit.
type fileGuard struct {
	// limit returns the process' open-file limit (its soft RLIMIT_NOFILE) and count the descriptors it
	// has open; fields so that tests can set them. A limit of 0 turns the guard off.
	limit func() (int, error)
	count func() (int, error)
	now   func() time.Time

	refused prometheus.Counter // weir_tenant_opens_refused_total

	mu       sync.Mutex
	counted  time.Time // when open was last counted
	open     int       // descriptors counted then, plus filesPerOpen for each open admitted since
	countErr error     // why the last count failed (the guard is off until the next one)
	max      int       // the limit, as of the last admit
}

func newFileGuard(reg prometheus.Registerer) *fileGuard {
	g := &fileGuard{limit: openFileLimit, count: openFiles, now: time.Now}
	g.refused = promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "weir_tenant_opens_refused_total",
		Help: "New tenants not opened because the process is near its open-file limit; their writes answer 503 until there is room.",
	})
	return g
}

// admit returns nil when one more tenant may be opened besides the tenants already open, else an
// ErrUnavailable error saying why. An admitted open is counted at once, so that a burst of opens
// between two counts cannot overshoot.
func (g *fileGuard) admit(tenants int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	// The limit is one system call: read each time. The count lists every descriptor: it stands for a
	// while, and the opens admitted meanwhile are added to it. Not knowing either is no reason to
	// refuse a tenant (the limit still stops the open itself): the guard is then off.
	limit, err := g.limit()
	if err != nil || limit == 0 {
		return nil
	}
	g.max = limit
	now := g.now()
	since := now.Sub(g.counted)
	if since >= fileCountInterval || (!g.room(tenants) && since >= fileRecountInterval) {
		g.counted = now
		g.open, g.countErr = g.count()
	}
	if g.countErr != nil {
		return nil
	}
	if !g.room(tenants) {
		g.refused.Inc()
		return fmt.Errorf("%w: %d of the process' %d open files are in use, and %d are kept free for the %d open tenants and connections: no new tenant is opened until idle tenants are pruned or the open-file limit is raised",
			ErrUnavailable, g.open, g.max, g.reserve(tenants), tenants)
	}
	g.open += filesPerOpen
	return nil
}

// room tells whether one more open fits beside the reserve, as of the last count.
func (g *fileGuard) room(tenants int) bool {
	return g.open+filesPerOpen+g.reserve(tenants) <= g.max
}

func (g *fileGuard) reserve(tenants int) int {
	return max(minFileReserve, g.max/10) + filesPerBlock*(tenants+1)
}

// openFileLimit is the soft RLIMIT_NOFILE, read each time: Go raises it to the hard limit at start,
// and an operator may change it while the process runs (prlimit).
func openFileLimit() (int, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if rl.Cur == unix.RLIM_INFINITY || rl.Cur > 1<<40 {
		return 0, nil
	}
	return int(rl.Cur), nil
}

// openFiles counts the process' open descriptors. Where there is no /proc (not Linux), the guard is
// off: it returns an error and admit lets every open through.
func openFiles() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("count open files: %w", err)
	}
	names, err := d.Readdirnames(-1)
	_ = d.Close() // read-only: nothing to lose
	if err != nil {
		return 0, fmt.Errorf("count open files: %w", err)
	}
	return len(names) - 1, nil // not the directory being read
}
