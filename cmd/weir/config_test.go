package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/internal/flags"
	"github.com/weir-metrics/weir/receive"
)

func parseConfig(t *testing.T, args ...string) (config, error) {
	t.Helper()
	app := kingpin.New("test", "")
	app.Terminate(nil)
	var cfg config
	cfg.registerFlags(app)
	if _, err := flags.Parse(app, args); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

func TestDefaultsAreTheEmbeddedDefault(t *testing.T) {
	cfg, err := parseConfig(t)
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:19291", cfg.remoteWriteAddress)
	require.Equal(t, "0.0.0.0:10902", cfg.httpAddress)
	require.Equal(t, "0.0.0.0:10901", cfg.grpcAddress)
	require.Equal(t, "./data", cfg.storage.Dir)
	require.Equal(t, 15*24*time.Hour, cfg.storage.Retention)
	require.Equal(t, "THANOS-TENANT", cfg.handler.TenantHeader)
	require.Equal(t, "default-tenant", cfg.handler.DefaultTenant)
	require.Equal(t, "tenant_id", cfg.storage.LabelName)
	require.Equal(t, int64(16<<20), cfg.handler.Decode.MaxBodyBytes)
	require.Equal(t, int64(64<<20), cfg.handler.Decode.MaxDecodedBytes)
	require.Equal(t, 10*time.Minute, cfg.handler.Limits.FutureWindow)
	require.Zero(t, cfg.storage.OutOfOrderWindow)
	require.True(t, cfg.storage.WALCompression)
}

func TestFlagsParse(t *testing.T) {
	cfg, err := parseConfig(t,
		"--tsdb.path=/var/weir", "--tsdb.retention=2d", "--label", `replica="r1"`, "--label", `cluster="eu \"1\""`,
		"--remote-write.max-body-size=1MiB", "--tsdb.out-of-order.time-window=30m", "--receive.tenant-header=X-Scope-OrgID")
	require.NoError(t, err)
	require.Equal(t, "/var/weir", cfg.storage.Dir)
	require.Equal(t, 48*time.Hour, cfg.storage.Retention)
	require.Equal(t, `{cluster="eu \"1\"", replica="r1"}`, cfg.storage.ExternalLabels.String())
	require.Equal(t, int64(1<<20), cfg.handler.Decode.MaxBodyBytes)
	require.Equal(t, 30*time.Minute, cfg.storage.OutOfOrderWindow)
	require.Equal(t, "X-Scope-OrgID", cfg.handler.TenantHeader)

	cfg, err = parseConfig(t, "--tsdb.max-retention-bytes=512MB", "--tsdb.no-lockfile", "--tsdb.out-of-order.cap-max=64",
		"--tsdb.memory-snapshot-on-shutdown", "--grpc-server-max-connection-age=5m", "--enable-auto-gomemlimit", "--auto-gomemlimit.ratio=0.8")
	require.NoError(t, err)
	require.True(t, cfg.storage.MemorySnapshotOnShutdown)
	require.Equal(t, 5*time.Minute, cfg.ingestConfig().MaxConnectionAge)
	require.Equal(t, memLimit{auto: true, ratio: 0.8}, cfg.memLimit)

	require.Equal(t, int64(512<<20), cfg.storage.MaxBytes, "Thanos' sizes are powers of 2")
	require.True(t, cfg.storage.NoLockfile)
	require.Equal(t, int64(64), cfg.storage.OutOfOrderCapMax)

	cfg, err = parseConfig(t, "--http-grace-period=2m", "--grpc-grace-period=30s")
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, orDefault(cfg.httpGracePeriod, cfg.shutdownTimeout))
	require.Equal(t, 30*time.Second, orDefault(cfg.grpcGracePeriod, cfg.shutdownTimeout))
	cfg, err = parseConfig(t)
	require.NoError(t, err)
	require.Equal(t, time.Minute, orDefault(cfg.httpGracePeriod, cfg.shutdownTimeout), "unset: --shutdown.timeout")

	cfg, err = parseConfig(t, "--receive.limits-config-file=/etc/weir/limits.yaml", "--receive.limits-config-reload-timer=30s",
		"--receive.limits.routers=4", "--receive.relabel-config=- action: labeldrop\n  regex: x\n")
	require.NoError(t, err)
	require.Equal(t, "/etc/weir/limits.yaml", cfg.limits.File)
	require.Equal(t, 30*time.Second, cfg.limits.ReloadInterval)
	require.Equal(t, 4, cfg.limits.Routers)
	require.NotEmpty(t, cfg.limits.Relabel)
	require.Empty(t, cfg.thanos.given(), "the limits and relabel flags work: none is named as without effect")
}

// TestDebugIngestProtocol: the hidden flag makes both sides of the node speak as the previous
// release did.
// TestSecureEdgeFlags: Thanos' TLS flags and the tenant from the certificate parse into the
// configs that build the listeners (tlsreload, auth, webconfig).
func TestSecureEdgeFlags(t *testing.T) {
	cfg, err := parseConfig(t,
		"--remote-write.server-tls-cert=c", "--remote-write.server-tls-key=k", "--remote-write.server-tls-client-ca=ca",
		"--remote-write.server-tls-min-version=1.2", "--remote-write.server-tls-ciphers=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		"--remote-write.server-tls-curves=X25519", "--remote-write.server-tls-curves=CurveP256",
		"--receive.tenant-certificate-field=commonName", "--receive.credentials-file=creds.yaml", "--http.config=web.yml",
		"--grpc-server-tls-cert=gc", "--grpc-server-tls-key=gk", "--grpc-server-tls-client-ca=gca", "--grpc-server-tls-min-version=1.2",
		"--remote-write.client-tls-cert=rc", "--remote-write.client-tls-key=rk", "--remote-write.client-tls-min-version=1.2")
	require.NoError(t, err)
	require.Equal(t, "c", cfg.rwTLS.CertFile)
	require.Equal(t, "ca", cfg.rwTLS.CAFile)
	require.Equal(t, "1.2", cfg.rwTLS.MinVersion)
	require.Equal(t, []string{"X25519", "CurveP256"}, cfg.rwTLS.Curves)
	require.Equal(t, "commonName", cfg.auth.CertificateField)
	require.Equal(t, "creds.yaml", cfg.auth.CredentialsFile)
	require.Equal(t, "web.yml", cfg.web.File)
	require.Equal(t, "gca", cfg.ingest.TLS.CAFile)
	require.Equal(t, "1.2", cfg.ingest.TLS.MinVersion)
	require.Equal(t, "1.2", cfg.peer.TLS.MinVersion)

	cfg, err = parseConfig(t)
	require.NoError(t, err)
	require.False(t, cfg.rwTLS.Enabled() || cfg.ingest.TLS.Enabled() || cfg.auth.Enabled(), "secure edge on by default")
	require.Equal(t, "1.3", cfg.rwTLS.MinVersion, "Thanos' default")
}

func TestDebugIngestProtocol(t *testing.T) {
	cfg, err := parseConfig(t, "--debug.ingest-protocol=v1")
	require.NoError(t, err)
	require.Equal(t, receive.ProtocolV1, cfg.peerConfig().Protocol)
	require.Equal(t, receive.ProtocolV1, cfg.ingestConfig().Protocol)
	cfg, err = parseConfig(t)
	require.NoError(t, err)
	require.Empty(t, cfg.peerConfig().Protocol)
	require.Empty(t, cfg.ingestConfig().Protocol)
}

func TestBadFlagsAreClearErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tsdb.retention=abc"}, "not a valid duration"},
		{[]string{"--tsdb.retention=1h"}, "shorter than one block"},
		{[]string{"--label", "replica"}, `is not name="value"`},
		{[]string{"--label", "replica=r1"}, "not double-quoted"},
		{[]string{"--label", `1x="a"`}, "not a valid label name"},
		{[]string{"--label", `a="1"`, "--label", `a="2"`}, "given twice"},
		{[]string{"--label", `tenant_id="x"`}, "already contain the tenant label"},
		{[]string{"--log.level=loud"}, "--log.level"},
		{[]string{"--log.format=xml"}, "--log.format"},
		{[]string{"--receive.default-tenant-id=../x"}, "--receive.default-tenant-id"},
		{[]string{"--receive.tenant-label-name=a-b"}, "not a valid label name"},
		{[]string{"--remote-write.max-body-size=0"}, "must be positive"},
		{[]string{"--remote-write.max-body-size=lots"}, "units"},
		{[]string{"--remote-write.server-read-timeout=0s"}, "--remote-write.server-read-timeout must be positive"},
		{[]string{"--receive.grpc-compression=gzip"}, `--receive.grpc-compression: enum value must be one of snappy,none, got 'gzip'`},
		{[]string{"--debug.ingest-protocol=v3"}, `--debug.ingest-protocol: enum value must be one of v1,v2, got 'v3'`},
		{[]string{"--tsdb.wal-compression=maybe"}, `unexpected maybe`},
		{[]string{"--no-tsdb.path"}, `unknown long flag '--no-tsdb.path'`},
		{[]string{"--receive.write-slot-wait=0s"}, "--receive.write-slot-wait: 0s must be positive"},
		{[]string{"--tsdb.open-concurrency=0"}, "--tsdb.open-concurrency"},
		{[]string{"--tsdb.stripe-size=100"}, `--tsdb.stripe-size: "100" is neither auto nor a power of two`},
		{[]string{"--store.limits.request-samples=-1"}, "--store.limits.request-samples: -1 is negative"},
		{[]string{"--auto-gomemlimit.ratio=1.5"}, "--auto-gomemlimit.ratio: 1.5 is not in (0, 1]"},
		{[]string{"--tsdb.out-of-order.cap-max=300"}, "--tsdb.out-of-order.cap-max: 300 is above 255"},
		{[]string{"--tsdb.max-retention-bytes=lots"}, "--tsdb.max-retention-bytes: \"lots\" is not a size"},
		{[]string{"--http-address=:1", "--remote-write.address=:1"}, "both"},
		{[]string{"--remote-write.server-tls-cert=c"}, "--remote-write.server-tls-cert and --remote-write.server-tls-key"},
		{[]string{"--remote-write.server-tls-client-ca=ca"}, "--remote-write.server-tls-client-ca needs"},
		{[]string{"--remote-write.server-tls-ciphers=RC4"}, `--remote-write.server-tls-ciphers: invalid cipher suite "RC4"`},
		{[]string{"--grpc-server-tls-curves=P-999"}, `--grpc-server-tls-curves: invalid curve "P-999"`},
		{[]string{"--grpc-server-tls-min-version=1.4"}, "--grpc-server-tls-min-version"},
		{[]string{"--receive.tenant-certificate-field=organization"}, "--receive.tenant-certificate-field needs mutual TLS"},
		{[]string{"--receive.tenant-certificate-field=serialNumber"}, "--receive.tenant-certificate-field"},
		{[]string{"--receive.limits-config-file=a", "--receive.limits-config=b"}, "--receive.limits-config-file and --receive.limits-config: give one of them"},
		{[]string{"--receive.limits-config-reload-timer=-1s"}, "--receive.limits-config-reload-timer"},
		{[]string{"--receive.limits.routers=-2"}, "--receive.limits.routers: -2"},
		{[]string{"--receive.relabel-config-file=a", "--receive.relabel-config=b"}, "--receive.relabel-config-file and --receive.relabel-config"},
	} {
		_, err := parseConfig(t, tc.args...)
		require.Error(t, err, "%v", tc.args)
		require.Contains(t, err.Error(), tc.want, "%v", tc.args)
	}
}

// TestConfigAnyPortTwice: port 0 for both HTTP listeners is two free ports, not one address twice
// (the e2e harness starts nodes so and reads their ports from the start-up log line).
func TestConfigAnyPortTwice(t *testing.T) {
	_, err := parseConfig(t, "--http-address=127.0.0.1:0", "--remote-write.address=127.0.0.1:0")
	require.NoError(t, err)
}

func TestDispatch(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, dispatch([]string{"--help"}, &out, &errOut))
	require.Contains(t, errOut.String(), "receive*")
	require.Contains(t, errOut.String(), "bench")

	errOut.Reset()
	require.Equal(t, 0, dispatch([]string{"receive", "--help"}, &out, &errOut))
	require.Contains(t, errOut.String(), "--tsdb.path=")
	require.Contains(t, errOut.String(), "--[no-]tsdb.wal-compression")
	require.NotContains(t, errOut.String(), "--debug.", "debug flags are hidden")
	require.NotContains(t, errOut.String(), "--hash-func", "Thanos flags without effect are hidden")

	require.Equal(t, 0, dispatch([]string{"version"}, &out, &errOut))
	require.Contains(t, out.String(), "weir (devel)")

	errOut.Reset()
	require.Equal(t, 2, dispatch([]string{"bogus"}, &out, &errOut))
	require.Contains(t, errOut.String(), "bogus")

	errOut.Reset()
	require.Equal(t, 2, dispatch([]string{"--tsdb.retention=x"}, &out, &errOut))
	require.Contains(t, errOut.String(), "--tsdb.retention: not a valid duration")

	errOut.Reset()
	require.Equal(t, 2, dispatch([]string{"receive", "extra"}, &out, &errOut))
	require.Contains(t, errOut.String(), "unexpected extra")

	errOut.Reset()
	require.Equal(t, 2, dispatch([]string{"bench"}, &out, &errOut))
	require.Contains(t, errOut.String(), "weir bench:")
}

func TestMemberlistFlags(t *testing.T) {
	cfg, err := parseConfig(t, "--ring.membership=memberlist", "--memberlist.bind-address=127.0.0.1:7947",
		"--memberlist.join=a:7946,b:7946", "--memberlist.join", "c:7946", "--memberlist.zone=z1",
		"--memberlist.dead-timeout=90s", "--receive.local-endpoint=ing-0:10901")
	require.NoError(t, err)
	require.True(t, cfg.clustered())
	require.Equal(t, []string{"a:7946", "b:7946", "c:7946"}, cfg.memberlist.Join)
	require.Equal(t, 90*time.Second, cfg.memberlist.DeadTimeout)
	require.Equal(t, "z1", cfg.memberlist.Zone)

	cfg, err = parseConfig(t)
	require.NoError(t, err)
	require.Equal(t, "file", cfg.ringMembership)
	require.False(t, cfg.clustered())

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ring.membership=memberlist", "--receive.hashrings-file=h.json"}, "cannot be mixed"},
		{[]string{"--receive.hashrings-file=h.json", "--memberlist.join=a:7946"}, "need --ring.membership=memberlist"},
		{[]string{"--memberlist.zone=z"}, "need --ring.membership=memberlist"},
		{[]string{"--ring.membership=consul"}, "--ring.membership: enum value must be one of file,memberlist, got 'consul'"},
		{[]string{"--ring.membership=memberlist", "--memberlist.bind-address=nope"}, "--memberlist.bind-address"},
		{[]string{"--ring.membership=memberlist", "--memberlist.join=nohost"}, "--memberlist.join"},
		{[]string{"--ring.membership=memberlist", "--memberlist.dead-timeout=0s"}, "must be positive"},
		{[]string{"--receive.local-endpoint=a:1"}, "needs --receive.hashrings-file or --ring.membership=memberlist"},
	} {
		_, err := parseConfig(t, tc.args...)
		require.Error(t, err, "%v", tc.args)
		require.Contains(t, err.Error(), tc.want, "%v", tc.args)
	}
}

// TestDeadNodeReclaimTimeValidation: the flag cannot be parsed negative, but the check behind it
// names the flag should a negative value come from elsewhere.
func TestDeadNodeReclaimTimeValidation(t *testing.T) {
	m := hashring.DefaultMemberlistFlags()
	require.NoError(t, m.Validate())
	m.ReclaimTime = -time.Second
	err := m.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "--memberlist.dead-node-reclaim-time: -1s is negative")
}

func TestGossipTimingFlags(t *testing.T) {
	cfg, err := parseConfig(t, "--ring.membership=memberlist")
	require.NoError(t, err)
	require.Equal(t, hashring.DefaultGossipTiming(), cfg.memberlist.Timing, "the defaults are memberlist's LAN configuration")
	require.Equal(t, 20*time.Second, cfg.memberlist.LeaveTimeout)
	require.True(t, cfg.memberlist.LeaveOnShutdown)
	require.Equal(t, hashring.DefaultDeadNodeReclaimTime, cfg.memberlist.ReclaimTime, "a recreated pod's new address is taken 5s after the old one was declared dead")

	cfg, err = parseConfig(t, "--ring.membership=memberlist", "--memberlist.gossip-interval=100ms", "--memberlist.gossip-nodes=4",
		"--memberlist.retransmit-factor=2", "--memberlist.probe-interval=2s", "--memberlist.probe-timeout=1s",
		"--memberlist.pullpush-interval=1m", "--memberlist.leave-timeout=0s", "--memberlist.leave-on-shutdown=false",
		"--memberlist.dead-node-reclaim-time=0s")
	require.NoError(t, err)
	require.Zero(t, cfg.memberlist.ReclaimTime, "0 is memberlist's own default (never reclaim)")
	require.Equal(t, hashring.GossipTiming{
		GossipInterval: 100 * time.Millisecond, GossipNodes: 4, RetransmitMult: 2,
		ProbeInterval: 2 * time.Second, ProbeTimeout: time.Second, PushPullInterval: time.Minute,
	}, cfg.memberlist.Timing)
	require.Zero(t, cfg.memberlist.LeaveTimeout)
	require.False(t, cfg.memberlist.LeaveOnShutdown)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--memberlist.gossip-interval=1s"}, "need --ring.membership=memberlist"},
		{[]string{"--memberlist.leave-timeout=1m"}, "need --ring.membership=memberlist"},
		{[]string{"--memberlist.leave-on-shutdown=false"}, "need --ring.membership=memberlist"},
		{[]string{"--memberlist.gossip-interval=0s"}, "--memberlist.gossip-interval: 0s must be positive"},
		{[]string{"--memberlist.pullpush-interval=0s"}, "--memberlist.pullpush-interval: 0s must be positive"},
		{[]string{"--memberlist.gossip-nodes=0"}, "--memberlist.gossip-nodes: 0 must be at least 1"},
		{[]string{"--memberlist.retransmit-factor=0"}, "--memberlist.retransmit-factor: 0 must be at least 1"},
		{[]string{"--memberlist.probe-timeout=1s"}, "--memberlist.probe-timeout: 1s must be shorter than --memberlist.probe-interval (1s)"},
		{[]string{"--memberlist.probe-interval=200ms"}, "must be shorter than --memberlist.probe-interval (200ms)"},
		{[]string{"--memberlist.leave-timeout=-1s"}, "not a valid duration"},
		{[]string{"--memberlist.dead-node-reclaim-time=10s"}, "need --ring.membership=memberlist"},
		{[]string{"--memberlist.dead-node-reclaim-time=-1s"}, "not a valid duration"},
	} {
		args := tc.args
		if !strings.Contains(tc.want, "need --ring.membership") {
			args = append([]string{"--ring.membership=memberlist"}, args...)
		}
		_, err := parseConfig(t, args...)
		require.Error(t, err, "%v", args)
		require.Contains(t, err.Error(), tc.want, "%v", args)
	}
}

// TestBadLimitsFileStopsTheStart: a limits file that does not parse is a start-up error (exit 1,
// naming the file) before any port is taken: a node must not start unlimited by mistake.
func TestBadLimitsFileStopsTheStart(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "limits.yaml")
	require.NoError(t, os.WriteFile(file, []byte("write:\n  default:\n    head_series_limit: -1\n"), 0o600))
	var out, errOut bytes.Buffer
	code := dispatch([]string{"receive", "--tsdb.path=" + filepath.Join(dir, "data"), "--receive.limits-config-file=" + file,
		"--http-address=127.0.0.1:0", "--remote-write.address=127.0.0.1:0", "--grpc-address=127.0.0.1:0"}, &out, &errOut)
	require.Equal(t, 1, code, errOut.String())
	require.Contains(t, errOut.String(), "limits file "+file+": write.default: head_series_limit -1")
}
