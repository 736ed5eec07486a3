package hashring

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	weirtest "github.com/weir-metrics/weir/internal/testutil"
)

const (
	fileV1  = `[{"hashring": "default", "endpoints": ["a:1", "b:1", "c:1"], "algorithm": "ketama"}]`
	fileV2  = `[{"hashring": "default", "endpoints": ["a:1", "b:1", "c:1", "d:1"], "algorithm": "ketama"}]`
	fileBad = `[{"hashring": "default", "endpoints": ["a:1", "a:1"]}]`
)

// writeFile replaces path atomically, as editors and Kubernetes do.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// eventually polls cond until it holds, for at most the time a file watcher needs under load.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	weirtest.EventuallyTrue(t, 10*time.Second, 5*time.Millisecond, what, cond)
}

// run starts s.Run and stops it at the end of the test, checking it returns nil.
func run(t *testing.T, s *FileSource) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func endpointCount(s *Snapshot) int {
	return len(s.Rings.Hashrings()[0].Ring.Endpoints())
}

// TestFileSourceWatch: a valid change is picked up through change notifications (the poll interval is
// an hour); a bad file is refused and counted while the old ring keeps serving; fixing it reloads.
func TestFileSourceWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hashrings.json")
	writeFile(t, path, fileV1)
	reg := prometheus.NewRegistry()
	s, err := NewFileSource(FileConfig{Path: path, Interval: time.Hour, Options: Options{ReplicationFactor: 2}}, nil, reg)
	require.NoError(t, err)
	v1 := s.Current()
	require.EqualValues(t, 1, v1.Version)
	require.Equal(t, 3, endpointCount(v1))
	run(t, s)

	changed := s.Changed()
	writeFile(t, path, fileV2)
	eventually(t, "version 2", func() bool { return s.Current().Version == 2 })
	<-changed // closed by the new snapshot
	v2 := s.Current()
	require.Equal(t, 4, endpointCount(v2))
	require.NotEqual(t, v1.ConfigHash, v2.ConfigHash)
	require.NoError(t, s.Err())

	writeFile(t, path, fileBad)
	eventually(t, "the refusal", func() bool { return testutil.ToFloat64(s.m.reloadsFailure) == 1 })
	require.Same(t, v2, s.Current(), "the last good ring keeps serving")
	require.ErrorContains(t, s.Err(), `duplicate endpoint "a:1"`)
	require.Zero(t, testutil.ToFloat64(s.m.lastSuccess))

	writeFile(t, path, fileV1)
	eventually(t, "version 3", func() bool { return s.Current().Version == 3 })
	require.Equal(t, 3, endpointCount(s.Current()))
	require.NoError(t, s.Err())

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP weir_hashring_config_version Version of the hashrings snapshot currently serving: 1 for the first file loaded, +1 on every successful reload; 0 before any.
# TYPE weir_hashring_config_version gauge
weir_hashring_config_version 3
# HELP weir_hashring_config_last_reload_successful 1 if the last attempt to load the hashrings file succeeded (or found it unchanged), 0 if it was refused.
# TYPE weir_hashring_config_last_reload_successful gauge
weir_hashring_config_last_reload_successful 1
# HELP weir_hashring_endpoints Endpoints of each hashring of the snapshot currently serving.
# TYPE weir_hashring_endpoints gauge
weir_hashring_endpoints{hashring="default"} 3
# HELP weir_hashring_reloads_total Attempts to load a new hashrings file, by result (success: a new snapshot is serving; failure: the file was refused and the previous snapshot keeps serving).
# TYPE weir_hashring_reloads_total counter
weir_hashring_reloads_total{result="failure"} 1
weir_hashring_reloads_total{result="success"} 3
`), "weir_hashring_config_version", "weir_hashring_config_last_reload_successful", "weir_hashring_endpoints", "weir_hashring_reloads_total"))
	require.Equal(t, float64(s.Current().ConfigHash>>16), testutil.ToFloat64(s.m.configHash))
}

// TestFileSourceReload drives the polling path directly: unchanged files are no-ops, the same bad file
// is counted once, and changing back to the serving file clears the error.
func TestFileSourceReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hashrings.json")
	writeFile(t, path, fileV1)
	s, err := NewFileSource(FileConfig{Path: path}, nil, nil)
	require.NoError(t, err)
	v1 := s.Current()

	require.NoError(t, s.Reload())
	require.Same(t, v1, s.Current(), "unchanged file: no new snapshot")

	writeFile(t, path, fileBad)
	require.Error(t, s.Reload())
	require.Error(t, s.Reload())
	require.EqualValues(t, 1, testutil.ToFloat64(s.m.reloadsFailure), "the same bad file is counted once")

	require.NoError(t, os.Remove(path))
	require.ErrorIs(t, s.Reload(), os.ErrNotExist)
	require.EqualValues(t, 2, testutil.ToFloat64(s.m.reloadsFailure))
	require.Same(t, v1, s.Current())

	writeFile(t, path, fileV1) // back to the file serving
	require.NoError(t, s.Reload())
	require.NoError(t, s.Err())
	require.Same(t, v1, s.Current())
	require.EqualValues(t, 1, testutil.ToFloat64(s.m.lastSuccess))
}

func TestFileSourceStart(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	_, err := NewFileSource(FileConfig{Path: missing}, nil, nil)
	require.ErrorIs(t, err, os.ErrNotExist)

	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, fileBad)
	_, err = NewFileSource(FileConfig{Path: bad}, nil, nil)
	require.EqualError(t, err, `hashrings file `+bad+`: hashrings[0] "default": endpoints[1]: duplicate endpoint "a:1" (also endpoints[0])`)

	few := filepath.Join(dir, "few.json")
	writeFile(t, few, fileV1)
	_, err = NewFileSource(FileConfig{Path: few, Options: Options{ReplicationFactor: 4}}, nil, nil)
	require.ErrorContains(t, err, "3 endpoints are fewer than the replication factor 4")

	_, err = NewFileSource(FileConfig{}, nil, nil)
	require.EqualError(t, err, "hashrings file: no path")

	// Degraded: no ring until a valid file appears.
	reg := prometheus.NewRegistry()
	s, err := NewFileSource(FileConfig{Path: missing, StartDegraded: true, Interval: time.Hour}, nil, reg)
	require.NoError(t, err)
	require.Nil(t, s.Current())
	require.ErrorIs(t, s.Err(), os.ErrNotExist)
	require.EqualValues(t, 1, testutil.ToFloat64(s.m.reloadsFailure))
	run(t, s)
	writeFile(t, missing, fileV1)
	eventually(t, "the first ring", func() bool { return s.Current() != nil })
	require.EqualValues(t, 1, s.Current().Version)
	require.NoError(t, s.Err())

	// A second source on the same registry is an error, not a panic.
	_, err = NewFileSource(FileConfig{Path: missing}, nil, reg)
	require.ErrorContains(t, err, "register hashring metrics")
}

func TestFileSourceRunTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hashrings.json")
	writeFile(t, path, fileV1)
	s, err := NewFileSource(FileConfig{Path: path}, nil, nil)
	require.NoError(t, err)
	run(t, s)
	eventually(t, "Run to start", s.running.Load)
	require.Error(t, s.Run(context.Background()))
}

// TestFileSourcePolls: with change notifications impossible (the directory does not exist at Run),
// the periodic re-read still finds the file.
func TestFileSourcePolls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later", "hashrings.json")
	s, err := NewFileSource(FileConfig{Path: path, StartDegraded: true, Interval: 10 * time.Millisecond}, nil, nil)
	require.NoError(t, err)
	run(t, s)
	require.NoError(t, os.Mkdir(filepath.Dir(path), 0o755))
	writeFile(t, path, fileV1)
	eventually(t, "the polled ring", func() bool { return s.Current() != nil })
}
