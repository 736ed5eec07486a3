package receive

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/otlptranslator"

	"github.com/weir-metrics/weir/internal/flags"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/tlsreload"
)

// This file registers the flags of the receive package's configs. Names and defaults follow Thanos
// Receive wherever the meaning is the same; the package's Validate methods name the flag at fault.

// RegisterFlags registers the remote-write endpoint's flags: tenant resolution and request limits.
func (c *HandlerConfig) RegisterFlags(r flags.Registry) {
	r.Flag("receive.tenant-header", "HTTP header that names the tenant of a write request.").Default(tenant.DefaultHeader).StringVar(&c.TenantHeader)
	r.Flag("receive.default-tenant-id", "Tenant of requests without the tenant header.").Default(tenant.DefaultID).StringVar(&c.DefaultTenant)
	r.Flag("receive.split-tenant-label-name", "Label that names the tenant of a series, as in Thanos: a request is split by it, each series with the label stored in the tenant it names, without the label; series without it go to the request's tenant (the header's). Empty: off.").StringVar(&c.SplitTenantLabel)
	c.Decode.MaxBodyBytes = 16 << 20
	flags.Bytes(r.Flag("remote-write.max-body-size", "Largest compressed request body accepted (413 above), e.g. 16MiB."), &c.Decode.MaxBodyBytes)
	c.Decode.MaxDecodedBytes = 64 << 20
	flags.Bytes(r.Flag("remote-write.max-decoded-size", "Largest decompressed request accepted (413 above), checked before decompressing, e.g. 64MiB. Also bounds a write forwarded by another node."), &c.Decode.MaxDecodedBytes)
	flags.Func(r.Flag("remote-write.accepted-protobuf-messages", "Remote-write protobuf messages accepted, comma-separated: "+MessageV1+" (Remote Write 1.0), "+MessageV2+" (2.0). A request for another is answered 415, which makes a 2.0 sender fall back to 1.0 (Prometheus' --web.remote-write-receiver.accepted-protobuf-messages)."),
		MessageV1+","+MessageV2, func(s string) error {
			c.Decode.Messages = nil
			for _, m := range strings.Split(s, ",") {
				m = strings.TrimSpace(m)
				if m != MessageV1 && m != MessageV2 {
					return fmt.Errorf("unknown protobuf message %q: want %s or %s", m, MessageV1, MessageV2)
				}
				if !slices.Contains(c.Decode.Messages, m) {
					c.Decode.Messages = append(c.Decode.Messages, m)
				}
			}
			return nil
		})
	r.Flag("receive.limits.max-series-per-request", "Most series in one request (0: no limit); larger requests are refused whole with 400.").Default("50000").IntVar(&c.Limits.MaxSeriesPerRequest)
	r.Flag("receive.limits.max-labels-per-series", "Most labels in one series (0: no limit).").Default("128").IntVar(&c.Limits.MaxLabelsPerSeries)
	r.Flag("receive.limits.max-label-name-length", "Longest label name in bytes (0: no limit).").Default("1024").IntVar(&c.Limits.MaxLabelNameLength)
	r.Flag("receive.limits.max-label-value-length", "Longest label value in bytes (0: no limit).").Default("4096").IntVar(&c.Limits.MaxLabelValueLength)
	c.Limits.FutureWindow = DefaultFutureWindow
	flags.Duration(r.Flag("tsdb.too-far-in-future.time-window", "Refuse samples stamped further ahead of this node's clock (0: no limit). One far-future sample makes every normal sample of its tenant too old."), &c.Limits.FutureWindow)
}

// RegisterFlags registers the router's flags: placement, replication and the replica wait.
func (c *RouterConfig) RegisterFlags(r flags.Registry) {
	r.Flag("receive.local-endpoint", "This node's endpoint in the hashrings (its --grpc-address as other nodes reach it). Empty with a hashrings file: the node only routes and stores nothing.").StringVar(&c.LocalEndpoint)
	r.Flag("receive.replication-factor", "Nodes each series is written to; a write succeeds once floor(RF/2)+1 of them acknowledged it (RF=2 needs both; Thanos needs one).").Default("1").IntVar(&c.ReplicationFactor)
	flags.Func(r.Flag("receive.replica-wait", "Which replicas a write's answer waits for: all (every replica, or the forward timeout: a sender's requests reach every replica in order; a slow replica delays every answer) "+
		"or quorum (answer as soon as a quorum decided every series; the rest are written in the background, and a lagging replica may refuse some of a sender's samples as out of order, leaving them on fewer than RF replicas).").PlaceHolder("all|quorum"),
		"all", func(s string) (err error) {
			c.Wait, err = ParseReplicaWait(s)
			return err
		})
	c.ForwardTimeout = DefaultForwardTimeout
	flags.Duration(r.Flag("receive.forward-timeout", "Longest a write to one node may take, below the client's own deadline."), &c.ForwardTimeout)
	// Thanos' hidden name of the same setting, which its deployments pass.
	flags.Duration(r.Flag("receive-forward-timeout", "Alias of --receive.forward-timeout (Thanos' name).").Hidden(), &c.ForwardTimeout)
}

// RegisterFlags registers the flags of writes to other nodes: compression and client TLS.
func (c *PeerConfig) RegisterFlags(r flags.Registry) {
	r.Flag("receive.grpc-compression", "Compression of writes forwarded to other nodes: snappy or none (none sends about 5x the bytes and saved no CPU on loopback); ingesters accept both.").
		Default(CompressionSnappy).EnumVar(&c.Compression, CompressionSnappy, CompressionNone)
	r.Flag("remote-write.client-tls-cert", "Client certificate for writes to other nodes (mutual TLS).").StringVar(&c.TLS.CertFile)
	r.Flag("remote-write.client-tls-key", "Client key for writes to other nodes.").StringVar(&c.TLS.KeyFile)
	r.Flag("remote-write.client-tls-ca", "CA that other nodes' certificates must chain to; setting any client TLS flag turns TLS on.").StringVar(&c.TLS.CAFile)
	r.Flag("remote-write.client-server-name", "Server name expected in other nodes' certificates.").StringVar(&c.TLS.ServerName)
	r.Flag("remote-write.client-tls-min-version", `TLS minimum version for writes to other nodes. Allowed values: ["1.0", "1.1", "1.2", "1.3"].`).
		Default(tlsreload.DefaultMinVersion).EnumVar(&c.TLS.MinVersion, "1.0", "1.1", "1.2", "1.3")
}

// RegisterFlags registers the flags of the node-to-node ingest service: its TLS (Thanos'
// --grpc-server-tls-cert, -key, -client-ca, -min-version, -ciphers, -curves).
func (c *IngestConfig) RegisterFlags(r flags.Registry) {
	c.TLS.RegisterFlags(r, "grpc-server-tls-", "the gRPC server (--grpc-address)")
	c.MaxConnectionAge = time.Hour
	flags.Duration(r.Flag("grpc-server-max-connection-age", "Close a connection to --grpc-address after this long, gracefully (its requests finish; the router reconnects): connections spread again over ingesters and TLS handshakes are redone (0: never)."), &c.MaxConnectionAge)
}

// RegisterFlags registers the write slots shared by remote write and node-to-node writes.
func (c *LimiterConfig) RegisterFlags(r flags.Registry) {
	r.Flag("receive.write-slots", "Writes (remote write and from other nodes) decoded and applied at once; others wait for a slot. 0: GOMAXPROCS; negative: no limit.").Default("0").IntVar(&c.Slots)
	c.MaxWait = DefaultLimiterWait
	flags.Duration(r.Flag("receive.write-slot-wait", "How long a write waits for a slot, within its own deadline, before it is answered 503 with Retry-After (Unavailable between nodes)."), &c.MaxWait)
}

// RegisterFlags registers the OTLP endpoint's translation flags: Thanos Receive's two, and the naming
// and histogram choices Prometheus' otlp configuration section has.
func (c *OTLPConfig) RegisterFlags(r flags.Registry) {
	r.Flag("receive.otlp-promote-resource-attributes", "OTLP resource attribute copied into a label of every series of the resource (repeatable), as in Thanos. service.name, service.namespace and service.instance.id always become job and instance.").StringsVar(&c.PromoteResourceAttributes)
	r.Flag("receive.otlp-enable-target-info", "Write a target_info series per OTLP resource, labelled with its other attributes (as Thanos and Prometheus).").Default("true").BoolVar(&c.EnableTargetInfo)
	r.Flag("receive.otlp-translation-strategy", "How OTLP metric and attribute names become Prometheus names, as Prometheus' otlp.translation_strategy: UnderscoreEscapingWithSuffixes (Thanos' and Prometheus' default: [a-zA-Z0-9_:] names with unit and _total suffixes), UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes (UTF-8 names kept) or NoTranslation.").
		Default(string(otlptranslator.UnderscoreEscapingWithSuffixes)).EnumVar(&c.TranslationStrategy,
		string(otlptranslator.UnderscoreEscapingWithSuffixes), string(otlptranslator.UnderscoreEscapingWithoutSuffixes),
		string(otlptranslator.NoUTF8EscapingWithSuffixes), string(otlptranslator.NoTranslation))
	r.Flag("receive.otlp-convert-histograms-to-nhcb", "Store OTLP explicit-bucket histograms as native histograms with custom buckets (one series each; Thanos Query and Prometheus 3 read them) instead of classic _bucket, _sum and _count series (Thanos' behaviour, the default).").Default("false").BoolVar(&c.ConvertHistogramsToNHCB)
}
