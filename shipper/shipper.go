package shipper

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
)

// Config configures the Shipper of one TSDB directory.
type Config struct {
	// Dir is the TSDB directory whose blocks are shipped (the tenant's directory).
	Dir string
	// Labels returns the external labels written to every shipped meta.json (thanos.labels): the tenant
	// label, replica label(s) and hashring external labels. Required; it must return a non-empty set (Thanos
	// refuses to upload blocks without external labels). Called once per Sync.
	Labels func() labels.Labels
	// UploadConcurrency is how many files of a block are uploaded at once (--shipper.upload-concurrency;
	// 0 or 1: one at a time). meta.json always goes last, alone.
	UploadConcurrency int
}

// Validate reports a configuration the shipper cannot work with.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("shipper: empty directory")
	}
	if c.Labels == nil {
		return errors.New("shipper: no external labels function")
	}
	if c.UploadConcurrency < 0 {
		return fmt.Errorf("--shipper.upload-concurrency: %d is negative", c.UploadConcurrency)
	}
	return nil
}

// ErrNoExternalLabels is returned by Sync when Config.Labels returns no labels.
var ErrNoExternalLabels = errors.New("shipper: empty external labels are not allowed for a Thanos block")

// Shipper uploads the completed blocks of one TSDB directory. Sync may be called from several goroutines
// (calls are serialised); Uploaded may be called at any time, also concurrently with Sync.
type Shipper struct {
	cfg     Config
	bkt     objstore.Bucket
	logger  *slog.Logger
	metrics *metrics
	now     func() time.Time // the clock of the age metric and the logs; replaced in tests

	syncMu     sync.Mutex // serialises Sync
	stateDirty bool       // guarded by syncMu: the state file on disk differs from uploaded

	mu       sync.RWMutex
	uploaded map[ulid.ULID]struct{} // guarded by mu: blocks known to be in the bucket
}

// New returns a Shipper for cfg.Dir uploading into bkt. It reads the state file (a bad or missing file
// only means the state is rebuilt by the first Sync) but does no bucket I/O. A nil logger discards logs;
// a nil registerer leaves the metrics unregistered. An invalid cfg makes every Sync fail.
func New(cfg Config, bkt objstore.Bucket, logger *slog.Logger, reg prometheus.Registerer) *Shipper {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Shipper{
		cfg:      cfg,
		bkt:      bkt,
		logger:   logger,
		metrics:  newMetrics(reg),
		now:      time.Now,
		uploaded: map[ulid.ULID]struct{}{},
	}
	if cfg.Dir == "" {
		return s
	}
	st, err := ReadState(cfg.Dir)
	switch {
	case err == nil:
		for _, id := range st.Uploaded {
			s.uploaded[id] = struct{}{}
		}
	case errors.Is(err, fs.ErrNotExist):
		s.stateDirty = true
	default:
		s.stateDirty = true
		logger.Warn("shipper state file unreadable; it will be rebuilt from the bucket",
			"file", filepath.Join(cfg.Dir, StateFilename), "err", err)
	}
	return s
}

// Uploaded returns the blocks of the directory known to be in the bucket (a fresh copy). Meant for
// tsdb.Options.BlocksToDelete: a block missing from this set must not be deleted locally.
func (s *Shipper) Uploaded() map[ulid.ULID]struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[ulid.ULID]struct{}, len(s.uploaded))
	for id := range s.uploaded {
		out[id] = struct{}{}
	}
	return out
}

func (s *Shipper) isUploaded(id ulid.ULID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.uploaded[id]
	return ok
}

// Sync uploads every local block that should be shipped and is not in the bucket yet, oldest first, and
// returns how many it uploaded. It stops at the first failure and returns it (with the count so far);
// the next Sync starts again with the failed block. Cancelling ctx aborts the upload in progress.
func (s *Shipper) Sync(ctx context.Context) (uploaded int, err error) {
	if err := s.cfg.Validate(); err != nil {
		return 0, err
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()

	lset := s.cfg.Labels()
	if lset.IsEmpty() {
		return 0, ErrNoExternalLabels
	}

	blocks, err := s.localBlocks()
	if err != nil {
		return 0, err
	}
	s.forgetMissing(blocks)
	// Sync is serialised, so anything in the staging area is a leftover of an interrupted upload.
	if err := os.RemoveAll(filepath.Join(s.cfg.Dir, stagingDir)); err != nil {
		s.logger.Warn("could not clean upload staging area", "dir", filepath.Join(s.cfg.Dir, stagingDir), "err", err)
	}
	stateWriteFailed := false
	defer func() {
		// Persist what is known even when the Sync fails (blocks found in the bucket, a rebuilt file).
		if s.stateDirty && !stateWriteFailed {
			err = errors.Join(err, s.writeState(blocks))
		}
		s.updateGauges(blocks)
	}()

	for _, bm := range blocks {
		if !shippable(bm) || s.isUploaded(bm.ULID) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return uploaded, err
		}
		ok, err := s.bkt.Exists(ctx, path.Join(bm.ULID.String(), MetaFilename))
		if err != nil {
			s.metrics.uploadFailures.Inc()
			return uploaded, fmt.Errorf("shipper: check block %s in bucket: %w", bm.ULID, err)
		}
		if ok {
			// Uploaded before, but not recorded (crash before the state write, or a lost state file).
			s.logger.Info("block already in bucket; recording it as uploaded", "block", bm.ULID)
		} else {
			if err := s.upload(ctx, bm, lset); err != nil {
				if _, statErr := os.Stat(filepath.Join(s.cfg.Dir, bm.ULID.String())); errors.Is(statErr, fs.ErrNotExist) {
					s.logger.Warn("block deleted locally during its upload; skipping it", "block", bm.ULID, "err", err)
					continue
				}
				s.metrics.uploadFailures.Inc()
				s.logger.Error("block upload failed; will retry", "block", bm.ULID, "err", err)
				return uploaded, fmt.Errorf("shipper: upload block %s: %w", bm.ULID, err)
			}
			uploaded++
		}
		s.markUploaded(bm.ULID)
		if err := s.writeState(blocks); err != nil {
			stateWriteFailed = true
			return uploaded, err
		}
	}
	return uploaded, nil
}

// shippable reports whether a local block is one the shipper uploads (see the package documentation).
func shippable(bm tsdb.BlockMeta) bool {
	return bm.Compaction.Level <= 1 && bm.Stats.NumSamples > 0
}

// localBlocks returns the metas of the complete blocks in the directory, oldest (by minTime, then ULID)
// first. Directories without meta.json are not complete blocks and are left out; an unreadable meta.json
// is an error (the TSDB itself would refuse to open such a block).
func (s *Shipper) localBlocks() ([]tsdb.BlockMeta, error) {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("shipper: read dir: %w", err)
	}
	var metas []tsdb.BlockMeta
	for _, e := range entries {
		id, err := ulid.Parse(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		dir := filepath.Join(s.cfg.Dir, e.Name())
		bm, err := readBlockMeta(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("shipper: read meta of block %s: %w", e.Name(), err)
		}
		if bm.ULID != id {
			return nil, fmt.Errorf("shipper: block directory %s holds the meta.json of block %s", e.Name(), bm.ULID)
		}
		metas = append(metas, bm)
	}
	slices.SortFunc(metas, func(a, b tsdb.BlockMeta) int {
		if a.MinTime != b.MinTime {
			if a.MinTime < b.MinTime {
				return -1
			}
			return 1
		}
		return a.ULID.Compare(b.ULID)
	})
	return metas, nil
}

// forgetMissing drops from the uploaded set the blocks that no longer exist locally (deleted by
// retention after their upload), as Thanos does, so the state file does not grow forever.
func (s *Shipper) forgetMissing(blocks []tsdb.BlockMeta) {
	local := make(map[ulid.ULID]struct{}, len(blocks))
	for _, bm := range blocks {
		local[bm.ULID] = struct{}{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.uploaded {
		if _, ok := local[id]; !ok {
			delete(s.uploaded, id)
			s.stateDirty = true
		}
	}
}

func (s *Shipper) markUploaded(id ulid.ULID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploaded[id] = struct{}{}
	s.stateDirty = true
}

// writeState writes the uploaded set to the state file, in the order of blocks.
func (s *Shipper) writeState(blocks []tsdb.BlockMeta) error {
	st := State{Version: stateVersion1, Uploaded: []ulid.ULID{}}
	for _, bm := range blocks {
		if s.isUploaded(bm.ULID) {
			st.Uploaded = append(st.Uploaded, bm.ULID)
		}
	}
	if err := WriteState(s.cfg.Dir, st); err != nil {
		return fmt.Errorf("shipper: write state file: %w", err)
	}
	s.stateDirty = false
	return nil
}

// updateGauges sets the pending and oldest-unshipped gauges from the blocks still waiting.
func (s *Shipper) updateGauges(blocks []tsdb.BlockMeta) {
	pending := 0
	var oldest time.Time
	for _, bm := range blocks {
		if !shippable(bm) || s.isUploaded(bm.ULID) {
			continue
		}
		pending++
		if t := ulid.Time(bm.ULID.Time()); oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	s.metrics.pending.Set(float64(pending))
	age := 0.0
	if pending > 0 {
		age = max(s.now().Sub(oldest).Seconds(), 0)
	}
	s.metrics.oldestUnshipped.Set(age)
}
