package limits

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	wtest "github.com/weir-metrics/weir/internal/testutil"
)

// syncBuffer is a log sink the watcher goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Replace rather than write in place, as editors and Kubernetes do: a reader never sees half a file.
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

func TestSourceReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "limits.yaml")
	writeFile(t, path, "write:\n  default:\n    head_series_limit: 10\n")
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	// A long interval: the change below must be seen through the file watch.
	s, err := NewSource(Config{File: path, ReloadInterval: time.Hour}, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	require.NoError(t, err)
	require.Equal(t, int64(10), s.Current().For("a").HeadSeries)
	require.Equal(t, uint64(1), s.Current().Version)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	writeFile(t, path, "write:\n  default:\n    head_series_limit: 20\n")
	wtest.EventuallyTrue(t, 5*time.Second, 10*time.Millisecond, "new limits serve", func() bool {
		return s.Current().For("a").HeadSeries == 20
	})
	require.Equal(t, uint64(2), s.Current().Version)

	// A bad file: refused, logged once, counted, and the last good limits keep serving.
	writeFile(t, path, "write:\n  default:\n    head_series_limit: -1\n")
	wtest.EventuallyTrue(t, 5*time.Second, 10*time.Millisecond, "bad file refused", func() bool { return s.Err() != nil })
	require.Equal(t, int64(20), s.Current().For("a").HeadSeries)
	require.Equal(t, 1.0, testutil.ToFloat64(s.m.reloadsFailure))
	require.Equal(t, 0.0, testutil.ToFloat64(s.m.lastSuccess))
	require.Error(t, s.Reload())
	require.Equal(t, 1.0, testutil.ToFloat64(s.m.reloadsFailure), "the same bad file is counted once")
	require.Equal(t, 1, strings.Count(logs.String(), "limits file refused; the last good limits keep serving"), logs.String())
	require.Contains(t, logs.String(), "head_series_limit -1")

	// Fixed: served again.
	writeFile(t, path, "write:\n  default:\n    head_series_limit: 30\n")
	wtest.EventuallyTrue(t, 5*time.Second, 10*time.Millisecond, "fixed file serves", func() bool {
		return s.Current().For("a").HeadSeries == 30
	})
	require.NoError(t, s.Err())
	require.Equal(t, 1.0, testutil.ToFloat64(s.m.lastSuccess))
	require.Equal(t, 3.0, testutil.ToFloat64(s.m.version))
	require.Equal(t, 30.0, testutil.ToFloat64(s.m.limits.WithLabelValues("", "head_series_limit")))
	require.Equal(t, 1, testutil.CollectAndCount(s.m.limits), "limits not set are not exported")
}

func TestSourcePeriodicReload(t *testing.T) {
	// The directory is not watchable once removed and made again; the timer still reloads. Here the
	// watch is simply outrun: the interval is short and the test waits for it only.
	path := filepath.Join(t.TempDir(), "limits.yaml")
	writeFile(t, path, "write:\n  default:\n    head_series_limit: 1\n")
	s, err := NewSource(Config{File: path, ReloadInterval: 20 * time.Millisecond}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.NoError(t, os.WriteFile(path, []byte("write:\n  default:\n    head_series_limit: 2\n"), 0o600))
	wtest.EventuallyTrue(t, 5*time.Second, 10*time.Millisecond, "reloaded", func() bool {
		return s.Current().For("a").HeadSeries == 2
	})
}

func TestSourceStart(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	s, err := NewSource(Config{}, log, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Nil(t, s.Current(), "no limits configured")
	require.Equal(t, Limits{}, *s.Current().For("x"))

	s, err = NewSource(Config{Inline: "write:\n  default:\n    head_series_limit: 5\n"}, log, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Equal(t, int64(5), s.Current().For("x").HeadSeries)

	_, err = NewSource(Config{Inline: "write: ["}, log, prometheus.NewRegistry())
	require.ErrorContains(t, err, "--receive.limits-config: parse limits YAML")
	_, err = NewSource(Config{File: filepath.Join(t.TempDir(), "missing.yaml")}, log, prometheus.NewRegistry())
	require.ErrorContains(t, err, "read limits file")
}

func TestConfigFlags(t *testing.T) {
	var c Config
	app := kingpin.New("weir", "")
	c.RegisterFlags(app)
	_, err := app.Parse([]string{"--receive.limits-config-file=/etc/limits.yaml", "--receive.limits-config-reload-timer=5s", "--receive.limits.routers", "3"})
	require.NoError(t, err)
	require.Equal(t, Config{File: "/etc/limits.yaml", ReloadInterval: 5 * time.Second, Routers: 3}, c)
	require.NoError(t, c.Validate())

	c = Config{}
	app = kingpin.New("weir", "")
	c.RegisterFlags(app)
	_, err = app.Parse(nil)
	require.NoError(t, err)
	require.Equal(t, DefaultReloadInterval, c.ReloadInterval)

	require.ErrorContains(t, Config{File: "a", Inline: "b", ReloadInterval: time.Second}.Validate(), "give one of them")
	require.ErrorContains(t, Config{ReloadInterval: -time.Second}.Validate(), "--receive.limits-config-reload-timer")
	require.ErrorContains(t, Config{ReloadInterval: time.Second, Routers: -1}.Validate(), "--receive.limits.routers")
}

func TestSourceGlobalRelabel(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	s, err := NewSource(Config{Relabel: "- action: labeldrop\n  regex: a\n"}, log, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Len(t, s.Current().For("any").Relabel, 1, "relabelling without a limits file")

	path := filepath.Join(t.TempDir(), "relabel.yaml")
	writeFile(t, path, "- action: labeldrop\n  regex: a\n")
	s, err = NewSource(Config{RelabelFile: path, Inline: "write:\n  tenants:\n    t:\n      relabel_configs:\n        - action: labeldrop\n          regex: b\n"}, log, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Len(t, s.Current().For("t").Relabel, 2, "the global rules, then the tenant's")
	require.Equal(t, "a", s.Current().For("t").Relabel[0].Regex.String())
	require.Len(t, s.Current().For("other").Relabel, 1)

	for cfg, want := range map[Config]string{
		{Relabel: "- action: replace\n"}:               "--receive.relabel-config: rule 0",
		{Relabel: "- nope: 1\n"}:                       "--receive.relabel-config: parse relabel YAML",
		{RelabelFile: path + ".missing"}:               "--receive.relabel-config-file",
		{RelabelFile: path, Relabel: "- action: drop"}: "give one of them",
	} {
		_, err := NewSource(cfg, log, prometheus.NewRegistry())
		require.ErrorContains(t, err, want)
	}
}
