package tenant

import (
	"time"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
)

// BlockDuration is the span of every block an ingester cuts. Blocks are never compacted locally
// (minimum = maximum): they are shipped as level-1 blocks and compacted by the Thanos compactor, which
// expects exactly this from a receiver.
const BlockDuration = 2 * time.Hour

// blockChunkSegmentSize caps the chunk files of the blocks the TSDBs cut. Each block write reserves
// a whole segment on disk up front (fallocate) and gives back the unused part only when it closes,
// so every concurrent head compaction or shutdown flush holds one segment of the volume: Prometheus'
// 512 MiB each is 16 GiB for a shutdown flush on 32 cores, and a terabyte for 2,000 tenants left to
// compact together (a full volume, whose failed head-chunk writes panic the TSDB). 64 MiB holds a 2h
// block of ~100,000 series in one file; a bigger tenant's block simply has more files.
const blockChunkSegmentSize = 64 << 20

// tsdbOptions turns the storage part of Config into TSDB options. Each choice that differs from the
// TSDB's defaults says why.
func tsdbOptions(cfg Config) *tsdb.Options {
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = BlockDuration.Milliseconds()
	opts.MaxBlockDuration = BlockDuration.Milliseconds()
	opts.MaxBlockChunkSegmentSize = blockChunkSegmentSize
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	if cfg.WALCompression {
		opts.WALCompression = compression.Snappy
	}
	// Overlapping blocks only appear with out-of-order ingestion; compacting them locally would race
	// with the shipper (Thanos documents the same in its receiver), and the compactor downstream does it.
	opts.EnableOverlappingCompaction = false
	// Isolation serves read-your-writes for scrapes and rule evaluation; the ingest path has neither, and
	// it costs a lock and bookkeeping per appender.
	opts.IsolationDisabled = true
	// Off by default: out-of-order blocks overlap in-order ones, and a Thanos compactor without vertical
	// compaction halts on overlaps.
	opts.OutOfOrderTimeWindow = cfg.OutOfOrderWindow.Milliseconds()
	if cfg.OutOfOrderCapMax > 0 {
		opts.OutOfOrderCapMax = cfg.OutOfOrderCapMax
	}
	// Per tenant, as in Thanos Receive: each tenant's TSDB deletes its own oldest blocks.
	opts.MaxBytes = cfg.MaxBytes
	opts.NoLockfile = cfg.NoLockfile
	opts.EnableMemorySnapshotOnShutdown = cfg.MemorySnapshotOnShutdown
	opts.MaxExemplars = cfg.MaxExemplars
	opts.EnableExemplarStorage = cfg.MaxExemplars > 0
	// Remote Write 2.0 and OTLP carry start timestamps and metadata. A start is stored as Prometheus
	// does with created-timestamp-zero-ingestion, a zero point at the start time, in the XOR chunks every block reader takes
	// (EnableSTStorage's chunk encoding is one Thanos v0.42 cannot read); metadata goes to the WAL as
	// Prometheus' metadata records, written only when a series' metadata changes.
	opts.EnableSTAsZeroSample = true
	opts.EnableMetadataWALRecords = true
	return opts
}
