package tenant

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/weir-metrics/weir/internal/flags"
)

// RegisterFlags registers the storage flags of an ingester: the TSDBs, their external labels, idle
// pruning and the free-space reserve. Names and defaults follow Thanos Receive wherever the meaning
// is the same.
func (c *Config) RegisterFlags(r flags.Registry) {
	r.Flag("tsdb.path", "Directory holding one TSDB per tenant, in a subdirectory named by the tenant ID.").Default("./data").StringVar(&c.Dir)
	c.Retention = 15 * 24 * time.Hour
	flags.Duration(r.Flag("tsdb.retention", "How long to keep blocks on local disk (units ms, s, m, h, d, w, y); a pruned tenant whose newest sample is older has its directory removed (every block of it shipped)."), &c.Retention)
	flags.Duration(r.Flag("tsdb.out-of-order.time-window", "Accept samples up to this much older than a series' newest sample (0: refuse out-of-order samples). "+
		"Out-of-order blocks overlap in-order ones: the Thanos compactor then needs vertical compaction, or it halts on the overlap."), &c.OutOfOrderWindow)
	r.Flag("tsdb.out-of-order.cap-max", "Most samples in one out-of-order chunk (0: the TSDB's default, 32).").Default("0").Int64Var(&c.OutOfOrderCapMax)
	flags.Func(r.Flag("tsdb.max-retention-bytes", "Most bytes of blocks each tenant keeps on local disk, e.g. 512MB (powers of 2: 1KB is 1024B); beyond it its oldest blocks are deleted, as beyond --tsdb.retention; a block not yet in the bucket never is (Thanos deletes it too) (0: no bound).").PlaceHolder("<size>"),
		"0", func(s string) error {
			if s == "0" {
				c.MaxBytes = 0
				return nil
			}
			v, err := units.ParseBase2Bytes(s)
			if err != nil || v < 0 {
				return fmt.Errorf("%q is not a size such as 512MB", s)
			}
			c.MaxBytes = int64(v)
			return nil
		})
	r.Flag("tsdb.memory-snapshot-on-shutdown", "When a tenant TSDB closes (shutdown, idle pruning), write a snapshot of its head, so that the next open reads the snapshot instead of replaying the WAL. "+
		"On by default (off in Thanos): Weir cuts every head into blocks before it closes, so the snapshot is nearly empty, and the next start skips recreating and then discarding every series the WAL still names "+
		"(300,000 series: 16 s → 2 s from start to ready). A crash leaves no new snapshot: the WAL is replayed as without the flag.").
		Default("true").BoolVar(&c.MemorySnapshotOnShutdown)
	r.Flag("tsdb.no-lockfile", "Open the tenant TSDBs without a lock file in their directories.").Default("false").BoolVar(&c.NoLockfile)
	r.Flag("tsdb.max-exemplars", "Exemplars kept in memory per tenant; 0 disables exemplar storage (exemplars sent are then counted as rejected, without failing the request).").Default("0").Int64Var(&c.MaxExemplars)
	r.Flag("tsdb.wal-compression", "Compress the write-ahead log with snappy.").Default("true").BoolVar(&c.WALCompression)
	flags.Func(r.Flag("tsdb.stripe-size", "Series stripes of each tenant's head (a power of two; Prometheus' and Thanos' 16384, Mimir's -blocks-storage.tsdb.stripe-size). "+
		"More stripes cost memory (~250 bytes each, whether the tenant holds 100 series or a million) and spread the locks of concurrent writes to one tenant. "+
		"auto: the k-th tenant open on the node gets 16384/k (the first, 16384: one big tenant costs what it did), at least 64 per core (~32 KiB on two cores), more for a large WAL at its open; "+
		"10,000 tenants then hold ~40 MB of stripes instead of ~43 GB. A tenant that grows keeps its size until its next open (restart, idle pruning).").PlaceHolder("auto|<n>"),
		"auto", func(s string) error {
			if s == "auto" {
				c.StripeSize = StripeSizeAuto
				return nil
			}
			n, err := strconv.Atoi(s)
			if err != nil || !isPow2(n) {
				return fmt.Errorf("%q is neither auto nor a power of two such as 16384", s)
			}
			c.StripeSize = n
			return nil
		})
	r.Flag("tsdb.open-concurrency", "How many tenant TSDBs replay their WAL at once at start-up, and are flushed, shipped and closed at once on shutdown.").Default(strconv.Itoa(runtime.GOMAXPROCS(0))).IntVar(&c.OpenConcurrency)
	r.Flag("tsdb.head-compaction-concurrency", "How many tenants cut their head into a 2h block at once (Mimir's -blocks-storage.tsdb.head-compaction-concurrency). "+
		"Tenants whose data started together are due together; each compaction holds a block writer's buffers, so thousands at once would be a memory spike. "+
		"Heads are checked every minute and on the write that makes one due; one waiting for its turn keeps taking writes.").Default("1").IntVar(&c.HeadCompactionConcurrency)
	// 3h = 1.5 × the 2h block: the idle time after which Thanos Receive cuts a quiet tenant's head, so an
	// idle tenant's last data reaches the bucket no later than with Thanos. Thanos measures it from the
	// newest sample's timestamp (so a backfill of old samples looks idle); Weir from the last write.
	c.IdleTimeout = 3 * time.Hour
	flags.Duration(r.Flag("tsdb.tenant-idle-timeout", "Prune a tenant that received no write for this long: its head is cut into blocks, the blocks are shipped, "+
		"and its TSDB is closed, returning its memory; its next write reopens it. Nothing is deleted, and a tenant whose blocks fail to ship stays open until they have (0: never prune)."), &c.IdleTimeout)
	flags.Func(r.Flag("tsdb.min-free-space", "Free space kept on the --tsdb.path volume, e.g. 2GiB: below it, writes are refused with 503 and Retry-After (senders keep their data and retry; in a ring the other replicas take it) "+
		"until there is room again, so that a full volume never tears the WAL behind acknowledged writes. auto: 128MiB (a WAL repair's copy of one segment) + 1% of the volume (what is still written once writes are refused), "+
		"at most half of it; 0: never refuse.").PlaceHolder("auto|<size>"), "auto", func(s string) error {
		if s == "auto" {
			c.MinFreeSpace = MinFreeSpaceAuto
			return nil
		}
		v, err := units.ParseBase2Bytes(s)
		if err != nil || v < 0 {
			return fmt.Errorf("%q is neither auto nor a size such as 2GiB", s)
		}
		c.MinFreeSpace = int64(v)
		return nil
	})
	c.ShipInterval = 30 * time.Second
	r.Flag("shipper.upload-concurrency", "How many files of a block are uploaded at once (0: one at a time); meta.json always goes last.").Default("0").IntVar(&c.UploadConcurrency)
	flags.Duration(r.Flag("shipper.interval", "How often completed blocks are looked for and uploaded."), &c.ShipInterval)
	r.Flag("receive.tenant-label-name", "External label that names the tenant on its blocks (not added to each series).").Default(DefaultLabelName).StringVar(&c.LabelName)
	flags.Repeated(r.Flag("label", `External label added to every tenant's blocks, as name="value" (repeatable), e.g. --label 'replica="r1"'.`).PlaceHolder(`<name>="<value>"`), func(s string) error {
		l, err := ParseExternalLabel(s)
		if err != nil {
			return err
		}
		if c.ExternalLabels.Has(l.Name) {
			return fmt.Errorf("label %q given twice", l.Name)
		}
		b := labels.NewBuilder(c.ExternalLabels)
		b.Set(l.Name, l.Value)
		c.ExternalLabels = b.Labels()
		return nil
	})
}

// ParseExternalLabel parses name="value" as Thanos' --label does.
func ParseExternalLabel(s string) (labels.Label, error) {
	name, quoted, ok := strings.Cut(s, "=")
	if !ok {
		return labels.Label{}, fmt.Errorf(`%q is not name="value"`, s)
	}
	if !model.LegacyValidation.IsValidLabelName(name) {
		return labels.Label{}, fmt.Errorf("%q is not a valid label name", name)
	}
	if len(quoted) < 2 || quoted[0] != '"' {
		return labels.Label{}, fmt.Errorf(`value of %s: %s is not double-quoted (write name="value")`, name, quoted)
	}
	value, err := strconv.Unquote(quoted)
	if err != nil {
		return labels.Label{}, fmt.Errorf(`value of %s: %w (write name="value")`, name, err)
	}
	if value == "" {
		return labels.Label{}, fmt.Errorf("value of %s is empty", name)
	}
	return labels.Label{Name: name, Value: value}, nil
}
