package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/client"
)

// bucketDirName is where the embedded default keeps its FILESYSTEM bucket, inside --tsdb.path. The name
// is reserved: no tenant can be called that.
const bucketDirName = "bucket"

// objstoreYAML returns the objstore configuration: --objstore.config, or the file named by
// --objstore.config-file, or, when neither is given, the embedded default's FILESYSTEM bucket under the
// data directory.
func (c *config) objstoreYAML() ([]byte, error) {
	switch {
	case c.objstoreConfig != "":
		return []byte(c.objstoreConfig), nil
	case c.objstoreConfigFile != "":
		b, err := os.ReadFile(c.objstoreConfigFile)
		if err != nil {
			return nil, fmt.Errorf("--objstore.config-file: %w", err)
		}
		return b, nil
	}
	dir, err := filepath.Abs(filepath.Join(c.storage.Dir, bucketDirName))
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "type: FILESYSTEM\nconfig:\n  directory: %q\n", dir), nil
}

// newBucket builds the bucket with the objstore client factory, so every provider that Thanos supports
// (S3, GCS, Azure, Swift, COS, OSS, OCI, BOS, OBS, FILESYSTEM) is configured exactly as in Thanos.
func newBucket(yaml []byte, logger *slog.Logger) (objstore.Bucket, error) {
	bkt, err := client.NewBucket(kitLogger{logger.With("component", "objstore")}, yaml, "weir", nil)
	if err != nil {
		return nil, fmt.Errorf("object storage: %w", err)
	}
	return bkt, nil
}

// kitLogger adapts slog to the go-kit logger interface that the objstore client factory takes; it is
// the one place where that logging style is tolerated.
type kitLogger struct{ l *slog.Logger }

func (k kitLogger) Log(keyvals ...any) error {
	msg, level := "", slog.LevelInfo
	attrs := make([]any, 0, len(keyvals))
	for i := 0; i+1 < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		switch key {
		case "msg":
			msg = fmt.Sprint(keyvals[i+1])
		case "level":
			switch fmt.Sprint(keyvals[i+1]) {
			case "debug":
				level = slog.LevelDebug
			case "warn":
				level = slog.LevelWarn
			case "error":
				level = slog.LevelError
			}
		default:
			attrs = append(attrs, key, keyvals[i+1])
		}
	}
	k.l.Log(context.Background(), level, msg, attrs...)
	return nil
}
