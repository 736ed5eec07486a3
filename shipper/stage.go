package shipper

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// stagingDir is where blocks are staged for upload, relative to the TSDB directory. Thanos uses the same
// place; the TSDB ignores it (not a ULID).
var stagingDir = filepath.Join("thanos", "upload")

// stageBlock makes dst a snapshot of the block directory src holding its chunk segments, index, meta.json
// and tombstones (when present), by hard links so that the TSDB deleting src cannot affect the upload.
// The TSDB replaces meta.json and tombstones by rename, never in place, so linked files stay consistent.
// Where a link fails (a filesystem without hard links) the file is copied instead.
func stageBlock(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("clean staging dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dst, ChunksDirname), 0o750); err != nil {
		return fmt.Errorf("create staging dir: %w", err)
	}
	files, err := blockFiles(src, false)
	if err != nil {
		return fmt.Errorf("list block files: %w", err)
	}
	files = append(files, MetaFilename)
	if _, err := os.Stat(filepath.Join(src, TombstonesFilename)); err == nil {
		files = append(files, TombstonesFilename)
	}
	for _, f := range files {
		from, to := filepath.Join(src, filepath.FromSlash(f)), filepath.Join(dst, filepath.FromSlash(f))
		if err := os.Link(from, to); err == nil {
			continue
		}
		if err := copyFile(from, to); err != nil {
			return fmt.Errorf("stage %s: %w", f, err)
		}
	}
	return nil
}

// copyFile copies the regular file from to the new file to.
func copyFile(from, to string) (err error) {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
