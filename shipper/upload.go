package shipper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"golang.org/x/sync/errgroup"
)

// upload ships one block: stage it, upload its files, then its meta.json with the Thanos section.
func (s *Shipper) upload(ctx context.Context, bm tsdb.BlockMeta, lset labels.Labels) (err error) {
	start := s.now()
	id := bm.ULID.String()
	src := filepath.Join(s.cfg.Dir, id)
	stage := filepath.Join(s.cfg.Dir, stagingDir, id)
	defer func() {
		if rmErr := os.RemoveAll(stage); rmErr != nil {
			s.logger.Warn("could not remove upload staging directory", "dir", stage, "err", rmErr)
		}
	}()

	if err := stageBlock(src, stage); err != nil {
		return err
	}
	// Use the staged meta.json: it is the one consistent with the staged files.
	bm, err = readBlockMeta(stage)
	if err != nil {
		return err
	}
	withTombstones := false
	if bm.Stats.NumTombstones > 0 {
		if _, err := os.Stat(filepath.Join(stage, TombstonesFilename)); err == nil {
			withTombstones = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	files, err := blockFiles(stage, withTombstones)
	if err != nil {
		return fmt.Errorf("list block files: %w", err)
	}
	meta, err := thanosMeta(bm, lset, stage, files)
	if err != nil {
		return fmt.Errorf("build meta.json: %w", err)
	}
	metaJSON, err := meta.Encode()
	if err != nil {
		return fmt.Errorf("encode meta.json: %w", err)
	}

	sizes := make([]int64, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, s.cfg.UploadConcurrency))
	for i, f := range files {
		g.Go(func() (err error) {
			if err := gctx.Err(); err != nil { // another file failed: upload no more
				return err
			}
			sizes[i], err = s.uploadFile(gctx, filepath.Join(stage, filepath.FromSlash(f)), path.Join(id, f))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var size int64
	for _, n := range sizes {
		size += n
	}
	// meta.json last: its presence is what makes the block visible to Thanos.
	if err := s.bkt.Upload(ctx, path.Join(id, MetaFilename), bytes.NewReader(metaJSON)); err != nil {
		return fmt.Errorf("upload %s: %w", MetaFilename, err)
	}
	size += int64(len(metaJSON))

	now := s.now()
	s.metrics.uploads.Inc()
	s.metrics.uploadedBytes.Add(float64(size))
	s.metrics.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	s.logger.Info("uploaded block",
		"block", id,
		"min_time", time.UnixMilli(bm.MinTime).UTC(),
		"max_time", time.UnixMilli(bm.MaxTime).UTC(),
		"bytes", size,
		"duration", now.Sub(start))
	return nil
}

// uploadFile uploads the local file src as the object dst and returns its size.
func (s *Shipper) uploadFile(ctx context.Context, src, dst string) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	// *os.File lets providers learn the size (objstore.TryToGetSize) for single-part uploads.
	if err := s.bkt.Upload(ctx, dst, f); err != nil {
		return 0, fmt.Errorf("upload %s: %w", dst, err)
	}
	return fi.Size(), nil
}
