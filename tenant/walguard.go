package tenant

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/tsdb/wlog"
)

// A WAL write that fails (no space left, an I/O error) can leave a torn record on disk: part of a
// record, or a record whose series record is missing. The TSDB does not stop there: the next commit
// appends behind it and succeeds. But the next open's replay stops at the torn record and its repair
// cuts the WAL there, so every write acknowledged after the failure would be lost. So, per tenant:
//
//   - After a successful commit, a write is acknowledged only if the TSDB's WAL has never failed a
//     write (walFailures, read from the WAL's own counter, which it raises under the same lock that
//     orders records, before any later record is written: a commit that finds it zero came before any
//     failure). Otherwise the write answers 503 and the tenant is marked walFailed.
//   - A walFailed tenant takes no write: the next write closes its TSDB and opens it again, which
//     replays the WAL and repairs it, so the head and the WAL agree again before anything is
//     acknowledged (Manager.acquire). Reads keep being served until then.
//   - Opening checks first that the volume has room for a repair (a rewrite of the newest segment),
//     and puts back the original of a repair that an earlier crash or a full volume cut short: such a
//     repair leaves a truncated segment beside its original (<segment>.repair), and repairing the
//     truncated one again would drop everything the original still holds (prepareWAL).

// walFailureNames are the TSDB's counters of failed WAL writes: the WAL's and the out-of-order WBL's.
var walFailureNames = []string{"prometheus_tsdb_wal_writes_failed_total", "prometheus_tsdb_out_of_order_wbl_writes_failed_total"}

// walFailureMetric returns the metric of c when c is one of walFailureNames, else nil. The TSDB
// registers them through the tenant's registerer, the only place they can be found without the WAL
// itself. The metric reads the live counter each time it is written out. It runs for each of the
// ~100 collectors of every tenant that opens, so it formats each description once and compares
// prefixes (formatting the names in the loop was 15% of the CPU of creating a tenant).
func walFailureMetric(c prometheus.Collector) prometheus.Metric {
	descs := make(chan *prometheus.Desc, 4)
	go func() { c.Describe(descs); close(descs) }()
	found := false
	for d := range descs {
		s := d.String()
		for _, name := range walFailureNames {
			found = found || (strings.HasPrefix(s, `Desc{fqName: "`) && strings.HasPrefix(s[len(`Desc{fqName: "`):], name+`"`))
		}
	}
	if !found {
		return nil
	}
	metrics := make(chan prometheus.Metric, 1)
	go func() { c.Collect(metrics); close(metrics) }()
	var m prometheus.Metric
	for x := range metrics {
		m = x
	}
	return m
}

// walFailures sums the counters of failed WAL writes of the tenant's open TSDB.
func (r *tenantRegistry) walFailures() float64 {
	r.mu.Lock()
	ms := r.walFailed
	r.mu.Unlock()
	var sum float64
	for _, m := range ms {
		var pb dto.Metric
		if err := m.Write(&pb); err == nil {
			sum += pb.GetCounter().GetValue()
		}
	}
	return sum
}

// errNoRoomToRepair is why a tenant with a WAL stays closed on a nearly full volume.
var errNoRoomToRepair = errors.New("not enough free space to repair the WAL")

// errWALFailed answers the writes of a tenant whose WAL failed a write, until it is reopened.
func errWALFailed(id string) error {
	return fmt.Errorf("%w: a WAL write of tenant %s failed: it is reopened, repairing its WAL, before it takes writes again", ErrUnavailable, id)
}

// prepareWAL readies a tenant's write logs (WAL and, if any, WBL) under dir for tsdb.Open: it puts
// back the original of an interrupted repair, then checks that the volume has room for the repair
// that Open may have to make, and otherwise refuses, touching nothing else.
func prepareWAL(dir string, statfs func(string) (uint64, uint64, error), logger *slog.Logger) error {
	for _, sub := range walDirs {
		if err := restoreRepair(filepath.Join(dir, sub), logger); err != nil {
			return err
		}
	}
	return roomToRepair(dir, statfs)
}

// walDirs are the write logs of a TSDB directory.
var walDirs = []string{"wal", wlog.WblDirName}

// roomToRepair returns errNoRoomToRepair unless the volume of the TSDB in dir has room to rewrite the
// newest segment of its write logs, as a repair does.
func roomToRepair(dir string, statfs func(string) (uint64, uint64, error)) error {
	var need int64
	for _, sub := range walDirs {
		sizes, _, err := segments(filepath.Join(dir, sub))
		if err != nil {
			return err
		}
		need = max(need, newestSize(sizes))
	}
	if need == 0 {
		return nil
	}
	free, _, err := statfs(dir)
	if err != nil {
		return nil // not knowing is no reason to stay closed; a repair without room fails cleanly
	}
	if free < uint64(need) {
		return fmt.Errorf("%w: %s free, a repair of the newest segment may need %s; the tenant stays closed until there is room",
			errNoRoomToRepair, units.Base2Bytes(free), units.Base2Bytes(need))
	}
	return nil
}

// segments lists the write log dir: the size of each segment, and the segments whose repair was cut
// short (<segment>.repair beside it).
func segments(dir string) (sizes map[int]int64, repairs []int, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read write log: %w", err)
	}
	sizes = map[int]int64{}
	for _, e := range entries {
		name := e.Name()
		seg, isRepair := strings.CutSuffix(name, ".repair")
		i, err := strconv.Atoi(seg)
		if err != nil || len(seg) != 8 || !e.Type().IsRegular() {
			continue
		}
		if isRepair {
			repairs = append(repairs, i)
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, nil, fmt.Errorf("write log segment %s: %w", name, err)
		}
		sizes[i] = info.Size()
	}
	return sizes, repairs, nil
}

// newestSize is the size of the newest segment that holds records: what a repair rewrites.
func newestSize(sizes map[int]int64) int64 {
	newest, size := -1, int64(0)
	for i, n := range sizes {
		if n > 0 && i > newest {
			newest, size = i, n
		}
	}
	return size
}

// restoreRepair puts back, in the write log dir, the original of a segment whose repair was cut short.
func restoreRepair(dir string, logger *slog.Logger) error {
	sizes, repairs, err := segments(dir)
	if err != nil {
		return err
	}
	for _, i := range repairs {
		// A repair deletes the segments after the damaged one before it moves it aside. Records in a
		// later segment were written after the repair by a node without this check; the original
		// then is history, and putting it back would cut them off.
		later := false
		for j, n := range sizes {
			later = later || (j > i && n > 0)
		}
		orig := filepath.Join(dir, fmt.Sprintf("%08d.repair", i))
		if later {
			logger.Warn("leaving an old WAL repair's original alone: later segments hold records", "file", orig)
			continue
		}
		seg := wlog.SegmentName(dir, i)
		logger.Warn("a WAL repair was cut short: putting its original segment back before the repair runs again", "file", orig, "segment", seg)
		if err := os.Rename(orig, seg); err != nil {
			return fmt.Errorf("restore the original of an interrupted WAL repair: %w", err)
		}
	}
	return nil
}
