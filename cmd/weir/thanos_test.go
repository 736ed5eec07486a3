package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/internal/testutil"
)

// thanosReceiveFlags reads testdata/thanos-receive-flags.txt.
func thanosReceiveFlags(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("testdata/thanos-receive-flags.txt")
	require.NoError(t, err)
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			names = append(names, l)
		}
	}
	require.NoError(t, sc.Err())
	require.Greater(t, len(names), 90)
	return names
}

// TestThanosReceiveFlags: every flag of `thanos receive` is a flag of `weir receive`, and
// docs/thanos-migration.md says what it does in Weir.
func TestThanosReceiveFlags(t *testing.T) {
	app := kingpin.New("weir", "")
	var cfg config
	rc := app.Command("receive", "")
	cfg.registerFlags(rc)
	root, err := testutil.RepoRoot()
	require.NoError(t, err)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "thanos-migration.md"))
	require.NoError(t, err)
	for _, name := range thanosReceiveFlags(t) {
		if name != "help" && name != "help-long" && name != "version" {
			require.NotNil(t, rc.GetFlag(name), "--%s of thanos receive is not a flag of weir receive", name)
		}
		require.Contains(t, string(doc), "`--"+name+"`", "docs/thanos-migration.md does not mention --%s", name)
	}
}

// TestThanosArguments: the arguments of kube-thanos' receive StatefulSet, with every syntax kingpin
// has (--flag value, --[no-]switch, repeated flags), start Weir's configuration; the flags without
// effect in Weir are named.
func TestThanosArguments(t *testing.T) {
	cfg, err := parseConfig(t,
		"--log.level=info", "--log.format=logfmt", "--grpc-address=0.0.0.0:10901", "--http-address=0.0.0.0:10902",
		"--remote-write.address=0.0.0.0:19291", "--receive.replication-factor=3",
		"--tsdb.path", "/var/thanos/receive", "--tsdb.retention=15d",
		"--label=replica=\"$(NAME)\"", "--label=receive=\"true\"",
		"--receive.local-endpoint=$(NAME).thanos-receive-default.thanos.svc.cluster.local:10901",
		"--receive.hashrings-file=/var/lib/thanos-receive/hashrings.json",
		"--receive.tenant-label-name=tenant_id", "--receive.default-tenant-id=default-tenant",
		"--tracing.config-file=/etc/thanos/tracing.yaml", "--no-tsdb.wal-compression",
		"--receive-forward-timeout=10s", "--tsdb.min-block-duration=2h", "--tsdb.max-block-duration", "2h",
		"--enable-feature=metric-names-filter", "--enable-feature", "x", "--tsdb.allow-overlapping-blocks",
		"--remote-write.client-tls-secure=false", "--hash-func=SHA256")
	require.NoError(t, err)
	require.Equal(t, 3, cfg.router.ReplicationFactor)
	require.Equal(t, "/var/thanos/receive", cfg.storage.Dir)
	require.False(t, cfg.storage.WALCompression)
	require.Equal(t, `{receive="true", replica="$(NAME)"}`, cfg.storage.ExternalLabels.String())
	require.Equal(t, "10s", cfg.router.ForwardTimeout.String(), "--receive-forward-timeout is Thanos' hidden name of --receive.forward-timeout")
	require.Equal(t, "/etc/thanos/tracing.yaml", cfg.tracingConfigFile)
	require.ElementsMatch(t, []string{"tsdb.min-block-duration", "tsdb.max-block-duration", "enable-feature",
		"tsdb.allow-overlapping-blocks", "remote-write.client-tls-secure", "hash-func"}, cfg.thanos.given())
}
