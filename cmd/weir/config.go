package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/receive"
	"github.com/weir-metrics/weir/store"
	"github.com/weir-metrics/weir/tenant"
)

// config is everything `weir receive` is told on its command line. Every flag name, default and help
// text lives in registerFlags; names follow Thanos Receive wherever the meaning is the same, so that an
// operator can switch images without rewriting arguments.
type config struct {
	remoteWriteAddress string
	httpAddress        string
	grpcAddress        string
	shutdownTimeout    time.Duration
	rwReadTimeout      time.Duration
	logLevel           string
	logFormat          string
	objstoreConfig     string
	objstoreConfigFile string
	shipTimeout        time.Duration

	handler receive.HandlerConfig
	storage tenant.Config

	// The hashring: with a hashrings file the node routes (and ingests its own share when it is in
	// the ring); without one it ingests everything it gets.
	hashringsFile    string
	hashringsRefresh time.Duration
	hashringsAlg     string
	router           receive.RouterConfig
	peer             receive.PeerConfig
	ingest           receive.IngestConfig
	// Write slots shared by remote write and node-to-node writes (negative Slots: no limit).
	limiter receive.LimiterConfig

	// Ring membership: the hashrings file (file) or gossip (memberlist).
	ringMembership string
	memberlist     memberlistFlags

	// StoreAPI (Thanos Query reading this node): limits per Series request.
	store store.Config

	// ingestProtocol is --debug.ingest-protocol (hidden).
	ingestProtocol string
}

// hiddenFlag reports whether --help leaves the flag out: debug.* flags are for tests, not operators.
func hiddenFlag(name string) bool { return strings.HasPrefix(name, "debug.") }

func (c *config) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.remoteWriteAddress, "remote-write.address", "0.0.0.0:19291", "Address to listen on for remote write (POST /api/v1/receive, alias /api/v1/write).")
	fs.StringVar(&c.httpAddress, "http-address", "0.0.0.0:10902", "Address to listen on for /metrics, /-/healthy, /-/ready and /debug/pprof.")
	fs.StringVar(&c.grpcAddress, "grpc-address", "0.0.0.0:10901", "Address for node-to-node gRPC: writes forwarded by routers (nodes that store data).")
	fs.DurationVar(&c.rwReadTimeout, "remote-write.server-read-timeout", time.Minute, "Longest time to read one remote-write request, headers and body: a slower upload (a stalled link, a slow-loris client) is cut off and its connection closed; the sender retries. Idle keep-alive connections are closed after 5m.")
	fs.DurationVar(&c.shutdownTimeout, "shutdown.timeout", time.Minute, "On SIGTERM/SIGINT, how long to let in-flight remote-write requests finish before closing storage.")
	fs.StringVar(&c.logLevel, "log.level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&c.logFormat, "log.format", "logfmt", "Log format: logfmt or json.")

	// Storage.
	fs.StringVar(&c.storage.Dir, "tsdb.path", "./data", "Directory holding one TSDB per tenant, in a subdirectory named by the tenant ID.")
	c.storage.Retention = 15 * 24 * time.Hour
	durationFlag(fs, &c.storage.Retention, "tsdb.retention", "How long to keep blocks on local disk (units ms, s, m, h, d, w, y).")
	durationFlag(fs, &c.storage.OutOfOrderWindow, "tsdb.out-of-order.time-window", "Accept samples up to this much older than a series' newest sample (0: refuse out-of-order samples). "+
		"Out-of-order blocks overlap in-order ones: the Thanos compactor then needs vertical compaction, or it halts on the overlap.")
	fs.Int64Var(&c.storage.MaxExemplars, "tsdb.max-exemplars", 0, "Exemplars kept in memory per tenant; 0 disables exemplar storage (exemplars sent are then counted as rejected, without failing the request).")
	fs.BoolVar(&c.storage.WALCompression, "tsdb.wal-compression", true, "Compress the write-ahead log with snappy.")
	fs.IntVar(&c.storage.OpenConcurrency, "tsdb.open-concurrency", runtime.GOMAXPROCS(0), "How many tenant TSDBs replay their WAL at once at start-up.")
	// 3h = 1.5 × the 2h block: the idle time after which Thanos Receive cuts a quiet tenant's head, so an
	// idle tenant's last data reaches the bucket no later than with Thanos. Thanos measures it from the
	// newest sample's timestamp (so a backfill of old samples looks idle); Weir from the last write.
	c.storage.IdleTimeout = 3 * time.Hour
	durationFlag(fs, &c.storage.IdleTimeout, "tsdb.tenant-idle-timeout", "Prune a tenant that received no write for this long: its head is cut into blocks, the blocks are shipped, "+
		"and its TSDB is closed, returning its memory; its next write reopens it. Nothing is deleted, and a tenant whose blocks fail to ship stays open until they have (0: never prune).")
	c.storage.MinFreeSpace = tenant.MinFreeSpaceAuto
	fs.Func("tsdb.min-free-space", "Free space kept on the --tsdb.path volume, e.g. 2GiB: below it, writes are refused with 503 and Retry-After (senders keep their data and retry; in a ring the other replicas take it) "+
		"until there is room again, so that a full volume never tears the WAL behind acknowledged writes. auto: 128MiB (a WAL repair's copy of one segment) + 1% of the volume (what is still written once writes are refused), "+
		"at most half of it; 0: never refuse (default auto).", func(s string) error {
		if s == "auto" {
			c.storage.MinFreeSpace = tenant.MinFreeSpaceAuto
			return nil
		}
		v, err := units.ParseBase2Bytes(s)
		if err != nil || v < 0 {
			return fmt.Errorf("%q is neither auto nor a size such as 2GiB", s)
		}
		c.storage.MinFreeSpace = int64(v)
		return nil
	})
	c.handler.Limits.FutureWindow = 10 * time.Minute
	durationFlag(fs, &c.handler.Limits.FutureWindow, "tsdb.too-far-in-future.time-window", "Refuse samples stamped further ahead of this node's clock (0: no limit). One far-future sample makes every normal sample of its tenant too old.")

	// Shipping.
	fs.StringVar(&c.objstoreConfig, "objstore.config", "", "Object storage configuration in Thanos' objstore YAML (type: S3|GCS|AZURE|FILESYSTEM|…). Without it and --objstore.config-file, blocks ship to a FILESYSTEM bucket in <tsdb.path>/bucket.")
	fs.StringVar(&c.objstoreConfigFile, "objstore.config-file", "", "File holding the object storage configuration (alternative to --objstore.config).")
	fs.DurationVar(&c.storage.ShipInterval, "shipper.interval", 30*time.Second, "How often completed blocks are looked for and uploaded.")
	fs.DurationVar(&c.shipTimeout, "shipper.shutdown-timeout", 5*time.Minute, "On shutdown, how long to spend uploading the flushed heads; what is not uploaded by then ships at the next start.")

	// Tenants.
	fs.StringVar(&c.handler.TenantHeader, "receive.tenant-header", tenant.DefaultHeader, "HTTP header that names the tenant of a write request.")
	fs.StringVar(&c.handler.DefaultTenant, "receive.default-tenant-id", tenant.DefaultID, "Tenant of requests without the tenant header.")
	fs.StringVar(&c.storage.LabelName, "receive.tenant-label-name", "tenant_id", "External label that names the tenant on its blocks (not added to each series).")
	fs.Func("label", `External label added to every tenant's blocks, as name="value" (repeatable), e.g. --label 'replica="r1"'.`, func(s string) error {
		l, err := parseLabel(s)
		if err != nil {
			return err
		}
		b := labels.NewBuilder(c.storage.ExternalLabels)
		if c.storage.ExternalLabels.Has(l.Name) {
			return fmt.Errorf("label %q given twice", l.Name)
		}
		b.Set(l.Name, l.Value)
		c.storage.ExternalLabels = b.Labels()
		return nil
	})

	// Hashring, replication and node-to-node gRPC.
	fs.StringVar(&c.hashringsFile, "receive.hashrings-file", "", "Thanos hashrings JSON file; reloaded when it changes. Without it the node ingests everything it receives itself.")
	fs.DurationVar(&c.hashringsRefresh, "receive.hashrings-file-refresh-interval", 5*time.Minute, "How often the hashrings file is re-read even without a change notification.")
	fs.StringVar(&c.hashringsAlg, "receive.hashrings-algorithm", "hashmod", "Placement of hashrings that name no algorithm: hashmod or ketama (as in Thanos).")
	fs.StringVar(&c.router.LocalEndpoint, "receive.local-endpoint", "", "This node's endpoint in the hashrings (its --grpc-address as other nodes reach it). Empty with a hashrings file: the node only routes and stores nothing.")
	fs.IntVar(&c.router.ReplicationFactor, "receive.replication-factor", 1, "Nodes each series is written to; a write succeeds once floor(RF/2)+1 of them acknowledged it (RF=2 needs both; Thanos needs one).")
	fs.StringVar(&c.peer.Compression, "receive.grpc-compression", receive.CompressionSnappy, "Compression of writes forwarded to other nodes: snappy or none (none sends about 5x the bytes and saved no CPU on loopback); ingesters accept both.")
	fs.IntVar(&c.limiter.Slots, "receive.write-slots", 0, "Writes (remote write and from other nodes) decoded and applied at once; others wait for a slot. 0: GOMAXPROCS; negative: no limit.")
	fs.DurationVar(&c.limiter.MaxWait, "receive.write-slot-wait", receive.DefaultLimiterWait, "How long a write waits for a slot, within its own deadline, before it is answered 503 with Retry-After (Unavailable between nodes).")
	fs.Func("receive.replica-wait", "Which replicas a write's answer waits for: all (every replica, or the forward timeout: a sender's requests reach every replica in order; a slow replica delays every answer) "+
		"or quorum (answer as soon as a quorum decided every series; the rest are written in the background, and a lagging replica may refuse some of a sender's samples as out of order, leaving them on fewer than RF replicas) (default all).", func(s string) error {
		w, err := receive.ParseReplicaWait(s)
		c.router.Wait = w
		return err
	})
	fs.DurationVar(&c.router.ForwardTimeout, "receive.forward-timeout", receive.DefaultForwardTimeout, "Longest a write to one node may take, below the client's own deadline.")
	fs.StringVar(&c.ingest.TLS.CertFile, "grpc-server-tls-cert", "", "TLS certificate for --grpc-address (empty: plain text).")
	fs.StringVar(&c.ingest.TLS.KeyFile, "grpc-server-tls-key", "", "TLS key for --grpc-address.")
	fs.StringVar(&c.ingest.TLS.CAFile, "grpc-server-tls-client-ca", "", "CA that client certificates must chain to (mutual TLS) on --grpc-address.")
	fs.StringVar(&c.peer.TLS.CertFile, "remote-write.client-tls-cert", "", "Client certificate for writes to other nodes (mutual TLS).")
	fs.StringVar(&c.peer.TLS.KeyFile, "remote-write.client-tls-key", "", "Client key for writes to other nodes.")
	fs.StringVar(&c.peer.TLS.CAFile, "remote-write.client-tls-ca", "", "CA that other nodes' certificates must chain to; setting any client TLS flag turns TLS on.")
	fs.StringVar(&c.peer.TLS.ServerName, "remote-write.client-server-name", "", "Server name expected in other nodes' certificates.")

	// Ring membership by gossip.
	fs.StringVar(&c.ringMembership, "ring.membership", "file", "Where the ring's members come from: file (--receive.hashrings-file) or memberlist (gossip: ingesters announce themselves; one ketama ring over the active ones).")
	c.memberlist = defaultMemberlistFlags()
	fs.StringVar(&c.memberlist.bind, "memberlist.bind-address", "0.0.0.0:7946", "host:port memberlist listens on (TCP and UDP), with --ring.membership=memberlist.")
	fs.StringVar(&c.memberlist.advertise, "memberlist.advertise-address", "", "host:port other members reach this one at (empty: derived from --memberlist.bind-address).")
	fs.Func("memberlist.join", "Member to join, host:port (repeatable or comma-separated); DNS names are resolved again on every retry, e.g. a headless Service.", func(s string) error {
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.memberlist.join = append(c.memberlist.join, a)
			}
		}
		return nil
	})
	fs.StringVar(&c.memberlist.secretKeyFile, "memberlist.secret-key-file", "", "File holding the gossip encryption key (16, 24 or 32 bytes, raw or base64); the same on every member.")
	fs.StringVar(&c.memberlist.nodeName, "memberlist.node-name", "", "Unique member name, e.g. the pod name (empty: the hostname).")
	fs.StringVar(&c.memberlist.zone, "memberlist.zone", "", "This node's availability zone in the ring (empty: none; set on all ingesters or none).")
	durationFlag(fs, &c.memberlist.deadTimeout, "memberlist.dead-timeout", "How long a member memberlist declares dead stays in the ring (its writes fail, quorum covers them; a restart within it moves no series) before it is dropped. A graceful stop leaves at once.")
	c.registerGossipFlags(fs)

	// Request limits.
	c.handler.Decode.MaxBodyBytes = 16 << 20
	bytesFlag(fs, &c.handler.Decode.MaxBodyBytes, "remote-write.max-body-size", "Largest compressed request body accepted (413 above), e.g. 16MiB.")
	c.handler.Decode.MaxDecodedBytes = 64 << 20
	bytesFlag(fs, &c.handler.Decode.MaxDecodedBytes, "remote-write.max-decoded-size", "Largest decompressed request accepted (413 above), checked before decompressing, e.g. 64MiB.")
	fs.IntVar(&c.handler.Limits.MaxSeriesPerRequest, "receive.limits.max-series-per-request", 50000, "Most series in one request (0: no limit); larger requests are refused whole with 400.")
	fs.IntVar(&c.handler.Limits.MaxLabelsPerSeries, "receive.limits.max-labels-per-series", 128, "Most labels in one series (0: no limit).")
	fs.IntVar(&c.handler.Limits.MaxLabelNameLength, "receive.limits.max-label-name-length", 1024, "Longest label name in bytes (0: no limit).")
	fs.IntVar(&c.handler.Limits.MaxLabelValueLength, "receive.limits.max-label-value-length", 4096, "Longest label value in bytes (0: no limit).")
	fs.Int64Var(&c.store.MaxSeries, "store.limits.request-series", 0, "Most series one StoreAPI Series request may select, over all tenants (0: no limit); a larger request fails with ResourceExhausted.")
	fs.Int64Var(&c.store.MaxSamples, "store.limits.request-samples", 0, "Most samples one StoreAPI Series request may read, counted per chunk sent (0: no limit); a larger request fails with ResourceExhausted.")

	// Hidden (hiddenFlag): makes the node speak the node-to-node protocol as the previous release did
	// (v1: its ingest server serves only v1, its router writes only v1), so that the e2e tests can run
	// two builds of the protocol in one ring (receive/codec.go, "Rolling upgrades").
	fs.StringVar(&c.ingestProtocol, "debug.ingest-protocol", "", "For rollout tests only: v1 makes this node's node-to-node writes, served and sent, those of the previous release.")
}

// validate checks everything before any file or port is opened, so that a bad flag is a clear start-up
// error rather than a half-started node.
func (c *config) validate() error {
	if _, err := parseLevel(c.logLevel); err != nil {
		return err
	}
	if c.logFormat != "logfmt" && c.logFormat != "json" {
		return fmt.Errorf("--log.format: %q is neither logfmt nor json", c.logFormat)
	}
	if c.rwReadTimeout <= 0 {
		return errors.New("--remote-write.server-read-timeout must be positive")
	}
	if c.shutdownTimeout <= 0 {
		return errors.New("--shutdown.timeout must be positive")
	}
	if c.remoteWriteAddress == c.httpAddress && !anyPort(c.httpAddress) {
		return fmt.Errorf("--remote-write.address and --http-address are both %s", c.httpAddress)
	}
	if c.objstoreConfig != "" && c.objstoreConfigFile != "" {
		return errors.New("--objstore.config and --objstore.config-file are mutually exclusive")
	}
	if c.storage.ShipInterval <= 0 || c.shipTimeout <= 0 {
		return errors.New("--shipper.interval and --shipper.shutdown-timeout must be positive")
	}
	// Settings that come straight from one flag are checked here, so that the error names the flag;
	// the component checks below stay as a backstop for library users.
	if err := c.validateFlags(); err != nil {
		return err
	}
	if c.hashringsAlg != "hashmod" && c.hashringsAlg != "ketama" {
		return fmt.Errorf("--receive.hashrings-algorithm: %q is neither hashmod nor ketama", c.hashringsAlg)
	}
	if c.router.ReplicationFactor < 1 {
		return fmt.Errorf("--receive.replication-factor: %d must be at least 1", c.router.ReplicationFactor)
	}
	if err := c.validateMembership(); err != nil {
		return err
	}
	if !c.clustered() && c.router.LocalEndpoint != "" {
		return errors.New("--receive.local-endpoint needs --receive.hashrings-file or --ring.membership=memberlist")
	}
	if c.peer.Compression != receive.CompressionSnappy && c.peer.Compression != receive.CompressionNone {
		return fmt.Errorf("--receive.grpc-compression: %q is neither snappy nor none", c.peer.Compression)
	}
	switch c.ingestProtocol {
	case "", receive.ProtocolV1, receive.ProtocolV2:
		c.peer.Protocol, c.ingest.Protocol = c.ingestProtocol, c.ingestProtocol
	default:
		return fmt.Errorf("--debug.ingest-protocol: %q is neither %s nor %s", c.ingestProtocol, receive.ProtocolV1, receive.ProtocolV2)
	}
	if c.limiter.MaxWait <= 0 {
		return fmt.Errorf("--receive.write-slot-wait: %s must be positive", c.limiter.MaxWait)
	}
	if c.router.ForwardTimeout <= 0 || c.hashringsRefresh <= 0 {
		return errors.New("--receive.forward-timeout and --receive.hashrings-file-refresh-interval must be positive")
	}
	c.ingest.MaxDecodedBytes = c.handler.Decode.MaxDecodedBytes
	c.peer.Timeout = c.router.ForwardTimeout
	if err := c.ingest.TLS.Validate(); err != nil {
		return fmt.Errorf("--grpc-server-tls-*: %w", err)
	}
	if err := c.peer.TLS.Validate(); err != nil {
		return fmt.Errorf("--remote-write.client-tls-*: %w", err)
	}
	if err := c.handler.Validate(); err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	if err := c.storage.Validate(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// durationFlag registers a duration in Prometheus' notation (which knows days and weeks).
func durationFlag(fs *flag.FlagSet, d *time.Duration, name, usage string) {
	fs.Func(name, fmt.Sprintf("%s (default %s)", usage, model.Duration(*d)), func(s string) error {
		v, err := model.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = time.Duration(v)
		return nil
	})
}

// bytesFlag registers a size with binary units (KiB, MiB, GiB).
func bytesFlag(fs *flag.FlagSet, n *int64, name, usage string) {
	fs.Func(name, fmt.Sprintf("%s (default %s)", usage, units.Base2Bytes(*n)), func(s string) error {
		v, err := units.ParseBase2Bytes(s)
		if err != nil {
			return err
		}
		if v <= 0 {
			return errors.New("must be positive")
		}
		*n = int64(v)
		return nil
	})
}

// parseLabel parses name="value" as Thanos' --label does.
func parseLabel(s string) (labels.Label, error) {
	name, quoted, ok := strings.Cut(s, "=")
	if !ok {
		return labels.Label{}, fmt.Errorf(`%q is not name="value"`, s)
	}
	if !model.LegacyValidation.IsValidLabelName(name) {
		return labels.Label{}, fmt.Errorf("%q is not a valid label name", name)
	}
	value, err := unquote(quoted)
	if err != nil {
		return labels.Label{}, fmt.Errorf(`value of %s: %w (write name="value")`, name, err)
	}
	if value == "" {
		return labels.Label{}, fmt.Errorf("value of %s is empty", name)
	}
	return labels.Label{Name: name, Value: value}, nil
}

func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '"' {
		return "", fmt.Errorf("%s is not double-quoted", s)
	}
	return strconv.Unquote(s)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log.level: %q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

func (c *config) validateFlags() error {
	if c.handler.TenantHeader == "" {
		return errors.New("--receive.tenant-header is empty")
	}
	if err := tenant.ValidateID(c.handler.DefaultTenant); err != nil {
		return fmt.Errorf("--receive.default-tenant-id: %w", err)
	}
	for _, l := range []struct {
		flag string
		v    int
	}{
		{"--receive.limits.max-series-per-request", c.handler.Limits.MaxSeriesPerRequest},
		{"--receive.limits.max-labels-per-series", c.handler.Limits.MaxLabelsPerSeries},
		{"--receive.limits.max-label-name-length", c.handler.Limits.MaxLabelNameLength},
		{"--receive.limits.max-label-value-length", c.handler.Limits.MaxLabelValueLength},
	} {
		if l.v < 0 {
			return fmt.Errorf("%s: %d is negative (0 disables the limit)", l.flag, l.v)
		}
	}
	for _, l := range []struct {
		flag string
		v    int64
	}{
		{"--store.limits.request-series", c.store.MaxSeries},
		{"--store.limits.request-samples", c.store.MaxSamples},
	} {
		if l.v < 0 {
			return fmt.Errorf("%s: %d is negative (0 disables the limit)", l.flag, l.v)
		}
	}
	if c.storage.Retention < tenant.BlockDuration {
		return fmt.Errorf("--tsdb.retention: %s is shorter than one block (%s)", model.Duration(c.storage.Retention), model.Duration(tenant.BlockDuration))
	}
	if c.storage.MaxExemplars < 0 {
		return fmt.Errorf("--tsdb.max-exemplars: %d is negative (0 disables exemplar storage)", c.storage.MaxExemplars)
	}
	if c.storage.IdleTimeout < 0 {
		return fmt.Errorf("--tsdb.tenant-idle-timeout: %s is negative (0 disables pruning)", c.storage.IdleTimeout)
	}
	if c.storage.OpenConcurrency < 1 {
		return fmt.Errorf("--tsdb.open-concurrency: %d must be at least 1", c.storage.OpenConcurrency)
	}
	if !model.LegacyValidation.IsValidLabelName(c.storage.LabelName) {
		return fmt.Errorf("--receive.tenant-label-name: %q is not a valid label name", c.storage.LabelName)
	}
	if c.storage.ExternalLabels.Has(c.storage.LabelName) {
		return fmt.Errorf("--label: external labels already contain the tenant label %q (--receive.tenant-label-name)", c.storage.LabelName)
	}
	return nil
}

// memberlistFlags are the --memberlist.* flags.
type memberlistFlags struct {
	bind, advertise string
	join            []string
	secretKeyFile   string
	nodeName        string
	zone            string
	deadTimeout     time.Duration
	reclaimTime     time.Duration
	leaveTimeout    time.Duration
	leaveOnShutdown bool
	timing          hashring.GossipTiming
}

// defaultMemberlistFlags are the defaults of the --memberlist.* flags.
func defaultMemberlistFlags() memberlistFlags {
	return memberlistFlags{
		bind:            "0.0.0.0:7946",
		deadTimeout:     hashring.DefaultDeadTimeout,
		reclaimTime:     hashring.DefaultDeadNodeReclaimTime,
		leaveTimeout:    defaultLeaveTimeout,
		leaveOnShutdown: true,
		timing:          hashring.DefaultGossipTiming(),
	}
}

// isDefault says whether no --memberlist.* flag changed anything.
func (m memberlistFlags) isDefault() bool {
	d := defaultMemberlistFlags()
	return len(m.join) == 0 && m.bind == d.bind && m.advertise == d.advertise && m.secretKeyFile == d.secretKeyFile &&
		m.nodeName == d.nodeName && m.zone == d.zone && m.deadTimeout == d.deadTimeout && m.reclaimTime == d.reclaimTime && m.leaveTimeout == d.leaveTimeout && m.leaveOnShutdown == d.leaveOnShutdown && m.timing == d.timing
}

// clustered says whether the node takes part in a hashring (file or memberlist).
func (c *config) clustered() bool {
	return c.hashringsFile != "" || c.ringMembership == "memberlist"
}

// validateMembership refuses mixing the hashrings file with memberlist, either way.
func (c *config) validateMembership() error {
	m := c.memberlist
	switch c.ringMembership {
	case "file":
		if !m.isDefault() {
			return errors.New("--memberlist.* flags need --ring.membership=memberlist (the ring comes from --receive.hashrings-file by default)")
		}
		return nil
	case "memberlist":
	default:
		return fmt.Errorf("--ring.membership: %q is neither file nor memberlist", c.ringMembership)
	}
	if c.hashringsFile != "" {
		return errors.New("--ring.membership=memberlist and --receive.hashrings-file cannot be mixed: the ring comes from one or the other")
	}
	if _, _, err := splitHostPort(m.bind); err != nil {
		return fmt.Errorf("--memberlist.bind-address: %w", err)
	}
	if m.advertise != "" {
		if _, _, err := splitHostPort(m.advertise); err != nil {
			return fmt.Errorf("--memberlist.advertise-address: %w", err)
		}
	}
	for _, j := range m.join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fmt.Errorf("--memberlist.join %q: %w", j, err)
		}
	}
	if m.deadTimeout <= 0 {
		return fmt.Errorf("--memberlist.dead-timeout: %s must be positive", model.Duration(m.deadTimeout))
	}
	return m.validateGossip()
}

// splitHostPort splits host:port with a numeric port.
func splitHostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("port %q: want 0-65535", port)
	}
	return host, p, nil
}

// anyPort reports whether addr asks for any free port (port 0): two listeners given it never
// collide, and each logs the port it got ("weir starting").
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}
