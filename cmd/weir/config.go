package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/weir-metrics/weir/auth"
	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/internal/flags"
	"github.com/weir-metrics/weir/internal/webconfig"
	"github.com/weir-metrics/weir/limits"
	"github.com/weir-metrics/weir/receive"
	"github.com/weir-metrics/weir/store"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/tlsreload"
)

// config is everything `weir receive` is told on its command line. Every flag name, default and help
// text lives in registerFlags; names follow Thanos Receive wherever the meaning is the same, so that an
// operator can switch images without rewriting arguments.
type config struct {
	remoteWriteAddress string
	httpAddress        string
	grpcAddress        string
	shutdownTimeout    time.Duration
	// Thanos' drain bounds of the remote-write and gRPC servers (0: --shutdown.timeout).
	httpGracePeriod, grpcGracePeriod time.Duration
	rwReadTimeout                    time.Duration
	logLevel                         string
	logFormat                        string
	objstoreConfig                   string
	objstoreConfigFile               string
	shipTimeout                      time.Duration

	handler receive.HandlerConfig
	otlp    receive.OTLPConfig
	storage tenant.Config

	// The secure edge (docs/security.md): TLS of the remote-write listener, who may write which
	// tenant, and TLS and basic auth of the ops endpoints.
	rwTLS tlsreload.ServerConfig
	auth  auth.Config
	web   webconfig.Config

	// The hashring: with a hashrings file the node routes (and ingests its own share when it is in
	// the ring); without one it ingests everything it gets.
	hashringsFile    string
	hashrings        string // --receive.hashrings: the same JSON inline
	hashringsRefresh time.Duration
	hashringsAlg     string
	router           receive.RouterConfig
	peer             receive.PeerConfig
	ingest           receive.IngestConfig
	// Write slots shared by remote write and node-to-node writes (negative Slots: no limit).
	limiter receive.LimiterConfig

	// Ring membership: the hashrings file (file) or gossip (memberlist).
	ringMembership string
	memberlist     hashring.MemberlistFlags

	// StoreAPI (Thanos Query reading this node): limits per Series request.
	store store.Config

	// ingestProtocol is --debug.ingest-protocol (hidden).
	ingestProtocol string

	// Thanos' tracing configuration (--tracing.config, --tracing.config-file); tracing is set
	// when serve started a tracer provider from it.
	tracingConfig, tracingConfigFile string
	tracing                          bool

	// GOMEMLIMIT from the container's memory limit (memlimit.go).
	memLimit memLimit

	// Per-tenant limits and relabelling: the limits file and the global relabel rules (limits.go).
	limits limits.Config

	// Flags of Thanos Receive that change nothing in Weir (thanos.go).
	thanos thanosFlags
}

// registerFlags registers every flag of `weir receive`: the node's own here, each component's by its
// package (RegisterFlags next to its config).
func (c *config) registerFlags(r flags.Registry) {
	r.Flag("remote-write.address", "Address to listen on for remote write (POST /api/v1/receive, alias /api/v1/write) and OTLP metrics over HTTP (POST /api/v1/otlp/v1/metrics, alias /api/v1/otlp).").Default("0.0.0.0:19291").StringVar(&c.remoteWriteAddress)
	r.Flag("http-address", "Address to listen on for /metrics, /-/healthy, /-/ready and /debug/pprof.").Default("0.0.0.0:10902").StringVar(&c.httpAddress)
	r.Flag("grpc-address", "Address for node-to-node gRPC: writes forwarded by routers (nodes that store data), and the StoreAPI.").Default("0.0.0.0:10901").StringVar(&c.grpcAddress)
	c.rwReadTimeout = time.Minute
	flags.Duration(r.Flag("remote-write.server-read-timeout", "Longest time to read one remote-write request, headers and body: a slower upload (a stalled link, a slow-loris client) is cut off and its connection closed; the sender retries. Idle keep-alive connections are closed after 5m."), &c.rwReadTimeout)
	c.shutdownTimeout = time.Minute
	flags.Duration(r.Flag("shutdown.timeout", "On SIGTERM/SIGINT, how long to let in-flight remote-write requests, then node-to-node writes, finish before closing storage."), &c.shutdownTimeout)
	flags.Duration(r.Flag("http-grace-period", "Thanos' name: how long in-flight remote-write requests may take to finish on SIGTERM (0: --shutdown.timeout)."), &c.httpGracePeriod)
	flags.Duration(r.Flag("grpc-grace-period", "Thanos' name: how long in-flight node-to-node writes may take to finish on SIGTERM (0: --shutdown.timeout)."), &c.grpcGracePeriod)
	r.Flag("log.level", "Log level: debug, info, warn or error.").Default("info").EnumVar(&c.logLevel, "debug", "info", "warn", "error")
	r.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").EnumVar(&c.logFormat, "logfmt", "json")

	c.storage.RegisterFlags(r)
	c.handler.RegisterFlags(r)
	c.otlp.RegisterFlags(r)
	c.rwTLS.RegisterFlags(r, "remote-write.server-tls-", "the remote-write server (--remote-write.address)")
	c.auth.RegisterFlags(r)
	c.web.RegisterFlags(r)

	// Shipping.
	r.Flag("objstore.config", "Object storage configuration in Thanos' objstore YAML (type: S3|GCS|AZURE|FILESYSTEM|…). Without it and --objstore.config-file, blocks ship to a FILESYSTEM bucket in <tsdb.path>/bucket.").PlaceHolder("<content>").StringVar(&c.objstoreConfig)
	r.Flag("objstore.config-file", "File holding the object storage configuration (alternative to --objstore.config).").PlaceHolder("<file-path>").StringVar(&c.objstoreConfigFile)
	c.shipTimeout = 5 * time.Minute
	flags.Duration(r.Flag("shipper.shutdown-timeout", "On shutdown, how long to spend uploading the flushed heads; what is not uploaded by then ships at the next start."), &c.shipTimeout)

	// Hashring, replication and node-to-node gRPC.
	r.Flag("receive.hashrings-file", "Thanos hashrings JSON file; reloaded when it changes. Without it (and --receive.hashrings) the node ingests everything it receives itself.").PlaceHolder("<path>").StringVar(&c.hashringsFile)
	r.Flag("receive.hashrings", "The hashrings JSON itself, as in the file (alternative to --receive.hashrings-file); fixed for the life of the process.").PlaceHolder("<content>").StringVar(&c.hashrings)
	c.hashringsRefresh = 5 * time.Minute
	flags.Duration(r.Flag("receive.hashrings-file-refresh-interval", "How often the hashrings file is re-read even without a change notification."), &c.hashringsRefresh)
	r.Flag("receive.hashrings-algorithm", "Placement of hashrings that name no algorithm: hashmod or ketama (as in Thanos).").Default("hashmod").EnumVar(&c.hashringsAlg, "hashmod", "ketama")
	c.router.RegisterFlags(r)
	c.peer.RegisterFlags(r)
	c.ingest.RegisterFlags(r)
	c.limiter.RegisterFlags(r)
	c.limits.RegisterFlags(r)

	// Ring membership by gossip.
	r.Flag("ring.membership", "Where the ring's members come from: file (--receive.hashrings-file) or memberlist (gossip: ingesters announce themselves; one ketama ring over the active ones).").Default("file").EnumVar(&c.ringMembership, "file", "memberlist")
	c.memberlist.RegisterFlags(r)

	c.store.RegisterFlags(r)

	// Makes the node speak the node-to-node protocol as the previous release did (v1: its ingest
	// server serves only v1, its router writes only v1), so that the e2e tests can run two builds of
	// the protocol in one ring (receive/codec.go, "Rolling upgrades").
	r.Flag("debug.ingest-protocol", "For rollout tests only: v1 makes this node's node-to-node writes, served and sent, those of the previous release.").Hidden().
		EnumVar(&c.ingestProtocol, receive.ProtocolV1, receive.ProtocolV2)

	r.Flag("tracing.config", "Tracing configuration in Thanos' YAML (type: OTLP, with its config); spans of every write, carried between nodes. Other types are logged and tracing stays off.").PlaceHolder("<content>").StringVar(&c.tracingConfig)
	r.Flag("tracing.config-file", "File holding the tracing configuration (alternative to --tracing.config).").PlaceHolder("<file-path>").StringVar(&c.tracingConfigFile)
	c.memLimit.registerFlags(r)
	c.thanos.registerFlags(r)
}

// validate checks everything before any file or port is opened, so that a bad flag is a clear start-up
// error rather than a half-started node.
func (c *config) validate() error {
	if c.rwReadTimeout <= 0 {
		return errors.New("--remote-write.server-read-timeout must be positive")
	}
	if c.shutdownTimeout <= 0 {
		return errors.New("--shutdown.timeout must be positive")
	}
	if c.remoteWriteAddress == c.httpAddress && !anyPort(c.httpAddress) {
		return fmt.Errorf("--remote-write.address and --http-address are both %s", c.httpAddress)
	}
	if c.tracingConfig != "" && c.tracingConfigFile != "" {
		return errors.New("--tracing.config and --tracing.config-file are mutually exclusive")
	}
	if c.objstoreConfig != "" && c.objstoreConfigFile != "" {
		return errors.New("--objstore.config and --objstore.config-file are mutually exclusive")
	}
	if c.storage.ShipInterval <= 0 || c.shipTimeout <= 0 {
		return errors.New("--shipper.interval and --shipper.shutdown-timeout must be positive")
	}
	if c.hashringsRefresh <= 0 {
		return errors.New("--receive.hashrings-file-refresh-interval must be positive")
	}
	if c.hashrings != "" && c.hashringsFile != "" {
		return errors.New("--receive.hashrings and --receive.hashrings-file are mutually exclusive")
	}
	if err := c.validateMembership(); err != nil {
		return err
	}
	if !c.clustered() && c.router.LocalEndpoint != "" {
		return errors.New("--receive.local-endpoint needs --receive.hashrings-file or --ring.membership=memberlist")
	}
	if err := c.memLimit.validate(); err != nil {
		return err
	}
	if c.auth.CertificateField != "" && c.rwTLS.CAFile == "" {
		return errors.New("--receive.tenant-certificate-field needs mutual TLS on remote write: --remote-write.server-tls-client-ca (and -cert, -key)")
	}
	for _, v := range []interface{ Validate() error }{
		c.storage, c.handler, c.otlp, c.rwTLS, c.auth, c.router, c.peerConfig(), c.ingestConfig(), c.limiter, c.store, c.limits,
	} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// peerConfig is the configuration of writes to other nodes: the flags, and the settings they share
// with other components.
func (c *config) peerConfig() receive.PeerConfig {
	p := c.peer
	p.Timeout = c.router.ForwardTimeout
	p.Protocol = c.ingestProtocol
	p.Tracing = c.tracing
	return p
}

// ingestConfig is the configuration of the node-to-node ingest service: the flags, and the settings
// it shares with remote write.
func (c *config) ingestConfig() receive.IngestConfig {
	i := c.ingest
	i.MaxDecodedBytes = c.handler.Decode.MaxDecodedBytes
	i.Protocol = c.ingestProtocol
	i.Tracing = c.tracing
	return i
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log.level: %q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

// clustered says whether the node takes part in a hashring (file or memberlist).
func (c *config) clustered() bool {
	return c.hashringsFile != "" || c.hashrings != "" || c.ringMembership == "memberlist"
}

// validateMembership refuses mixing the hashrings file with memberlist, either way.
func (c *config) validateMembership() error {
	switch c.ringMembership {
	case "file":
		if !c.memberlist.IsDefault() {
			return errors.New("--memberlist.* flags need --ring.membership=memberlist (the ring comes from --receive.hashrings-file by default)")
		}
		return nil
	case "memberlist":
	default:
		return fmt.Errorf("--ring.membership: %q is neither file nor memberlist", c.ringMembership)
	}
	if c.hashringsFile != "" || c.hashrings != "" {
		return errors.New("--ring.membership=memberlist and --receive.hashrings(-file) cannot be mixed: the ring comes from one or the other")
	}
	return c.memberlist.Validate()
}

// anyPort reports whether addr asks for any free port (port 0): two listeners given it never
// collide, and each logs the port it got ("weir starting").
func anyPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}
