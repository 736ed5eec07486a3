package tenant

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Every open tenant holds files and memory maps (its lock and WAL segment; its head-chunk file and two
// per local block, each both a descriptor and a map), and the process needs more of both for
// connections, compactions and uploads. When tenant opens use up the process' open-file limit or the
// kernel's maps per process (vm.max_map_count, 65530 by default, whatever the container's limits), it
// is not only the new tenant that fails: the next file or map any open tenant needs fails too, and
// Prometheus panics the whole process on a head-chunk file it cannot open or map
// (tsdb.handleChunkWriteError). A flood of new tenants (a sender with a bad tenant header, thousands of
// small tenants on one node) must not take the node down with it, so a new tenant is opened only while
// each limit keeps a reserve free: a tenth of it (at least minReserve) for what is not a tenant, plus
// room for the next block of every open tenant. Refused opens answer 503, and the tenant opens once
// there is room again (idle tenants pruned, or a higher limit).

const (
	// minReserve is the least number of descriptors, or maps, kept free for what is not a tenant.
	minReserve = 64
	// perBlock is what an open tenant's next block holds while it is a local block (index and one
	// chunk segment): descriptors and maps alike.
	perBlock = 2
	// countInterval is how long a count stands while it shows room; recountInterval how soon a
	// refusal may count again (a count lists /proc/self/fd or reads /proc/self/maps).
	countInterval   = time.Second
	recountInterval = 100 * time.Millisecond
)

// resource is one per-process limit that tenants use up.
type resource struct {
	what    string              // in the refusal, e.g. "open files"
	raise   string              // how an operator raises the limit, for the refusal
	limit   func() (int, error) // 0: no limit
	count   func() (int, error) // in use
	perOpen int                 // what a new tenant is counted as until the next count
	refused prometheus.Counter

	counted  time.Time // when used was last counted
	used     int       // counted then, plus perOpen for each open admitted since
	countErr error     // why the last count failed (the resource is not guarded until the next one)
	max      int       // the limit, as of the last admit (0: not guarded)
}

// openGuard decides whether one more tenant may be opened within the process' limits.
type openGuard struct {
	now       func() time.Time
	mu        sync.Mutex
	resources []*resource
}

func newOpenGuard(reg prometheus.Registerer) *openGuard {
	refused := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "weir_tenant_opens_refused_total",
		Help: "New tenants not opened because the process is near one of its limits (resource: open_files, the soft RLIMIT_NOFILE; memory_maps, vm.max_map_count); their writes answer 503 until there is room.",
	}, []string{"resource"})
	return &openGuard{now: time.Now, resources: []*resource{{
		what:  "open files",
		raise: "the open-file limit (RLIMIT_NOFILE) is raised",
		limit: openFileLimit, count: openFiles,
		// Its lock, WAL segment, head-chunk directory and file, and a block it reads at its open.
		perOpen: 6,
		refused: refused.WithLabelValues("open_files"),
	}, {
		what:  "memory maps",
		raise: "vm.max_map_count is raised",
		limit: mapLimit, count: memoryMaps,
		// Its head-chunk file and a block's index.
		perOpen: 2,
		refused: refused.WithLabelValues("memory_maps"),
	}}}
}

// admit returns nil when one more tenant may be opened besides the tenants already open, else an
// ErrNoRoom error saying why. An admitted open is counted at once, so that a burst of opens
// between two counts cannot overshoot.
func (g *openGuard) admit(tenants int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for _, r := range g.resources {
		if err := r.admit(now, tenants); err != nil {
			return err
		}
	}
	for _, r := range g.resources {
		if r.guarded() {
			r.used += r.perOpen
		}
	}
	return nil
}

// admit checks the room for one more tenant. The limit is cheap: read each time. The count lists
// every descriptor or map: it stands for a while, and the opens admitted meanwhile are added to it.
// Not knowing either is no reason to refuse a tenant (the limit still stops the open itself): the
// resource is then not guarded.
func (r *resource) admit(now time.Time, tenants int) error {
	limit, err := r.limit()
	if err != nil || limit == 0 {
		r.max = 0
		return nil
	}
	r.max = limit
	since := now.Sub(r.counted)
	if since >= countInterval || (!r.room(tenants) && since >= recountInterval) {
		r.counted = now
		r.used, r.countErr = r.count()
	}
	if !r.guarded() || r.room(tenants) {
		return nil
	}
	r.refused.Inc()
	return fmt.Errorf("%w: %d of the process' %d %s are in use, and %d are kept free for the %d open tenants and the rest of the node: no new tenant is opened until idle tenants are pruned or %s",
		ErrNoRoom, r.used, r.max, r.what, r.reserve(tenants), tenants, r.raise)
}

// guarded tells whether the last admit knew both the limit and the use.
func (r *resource) guarded() bool { return r.max > 0 && r.countErr == nil }

// room tells whether one more open fits beside the reserve, as of the last count.
func (r *resource) room(tenants int) bool {
	return r.used+r.perOpen+r.reserve(tenants) <= r.max
}

func (r *resource) reserve(tenants int) int {
	return max(minReserve, r.max/10) + perBlock*(tenants+1)
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

// openFiles counts the process' open descriptors (procfs: one stat of /proc/self/fd on Linux 6.2+, a
// listing before). Where there is no /proc (not Linux) it fails, and the descriptors are not guarded.
func openFiles() (int, error) {
	p, err := procfs.Self()
	if err != nil {
		return 0, fmt.Errorf("count open files: %w", err)
	}
	n, err := p.FileDescriptorsLen()
	if err != nil {
		return 0, fmt.Errorf("count open files: %w", err)
	}
	return n, nil
}

// mapLimit is the kernel's vm.max_map_count, read each time (a sysctl may change it).
func mapLimit() (int, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, fmt.Errorf("read vm.max_map_count: %w", err)
	}
	v, err := fs.SysctlInts("vm.max_map_count")
	if err != nil || len(v) != 1 {
		return 0, fmt.Errorf("read vm.max_map_count: %v %w", v, err)
	}
	return v[0], nil
}

// memoryMaps counts the process' memory maps: the lines of /proc/self/maps, read in pieces (at tens
// of thousands of maps the file is megabytes; procfs' ProcMaps would parse every line into a struct).
func memoryMaps() (int, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("count memory maps: %w", err)
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 64<<10)
	n := 0
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("count memory maps: %w", err)
		}
	}
}
