package main

import (
	"fmt"
	"log/slog"

	"github.com/weir-metrics/weir/internal/flags"
)

// thanosFlag is a flag of `thanos receive` (v0.42.5, listed or hidden) that Weir accepts, so that the
// arguments of a Thanos Receive start Weir unchanged, but that changes nothing in Weir: when it is
// given, the node says so once at start, and why. docs/thanos-migration.md lists every Thanos flag.
type thanosFlag struct {
	name string
	// bool: a --[no-]name switch; else the flag takes a value (repeatable when repeat is set).
	bool, repeat bool
	why          string
}

// Reasons shared by several flags.
const (
	whyOwnProtocol = "Weir's node-to-node protocol is its own (gRPC with protobuf headers and pass-through payloads), and it needs no tuning"
	whyBlocks      = "Weir's blocks always span 2h and are never compacted locally: the Thanos compactor expects exactly that from a receiver"
)

var thanosOnly = []thanosFlag{
	// Planned: other issues implement these; until then they are accepted and named at start.
	{name: "remote-write.client-tls-secure", bool: true, why: "Weir turns client TLS on when any --remote-write.client-tls-* flag is set"},
	{name: "remote-write.client-tls-skip-verify", bool: true, why: "Weir always verifies the certificates of other nodes"},
	{name: "receive.replica-header", why: "Weir's forwarded writes travel over its own gRPC protocol, which carries no replica header"},

	// Without effect in Weir, by design.
	{name: "receive.forward.async-workers", why: "Weir forwards each share of a request at once, bounded by the bytes in flight per endpoint, not by a worker pool"},
	{name: "receive.replication-protocol", why: whyOwnProtocol},
	{name: "receive.capnproto-address", why: whyOwnProtocol},
	{name: "receive.grpc-service-config", why: "Weir retries forwards itself, within --receive.forward-timeout"},
	{name: "receive-forward-max-backoff", why: "Weir retries forwards itself, within --receive.forward-timeout"},
	{name: "receive.artificial-max-delay", why: "a Thanos test setting"},
	{name: "tsdb.allow-overlapping-blocks", bool: true, why: "overlapping blocks are always allowed (deprecated in Thanos too)"},
	{name: "tsdb.min-block-duration", why: whyBlocks},
	{name: "tsdb.max-block-duration", why: whyBlocks},
	{name: "tsdb.head.expanded-postings-cache-size", why: "Weir's TSDBs keep no expanded-postings cache"},
	{name: "tsdb.block.expanded-postings-cache-size", why: "Weir's TSDBs keep no expanded-postings cache"},
	{name: "tsdb.enable-native-histograms", bool: true, why: "Weir always stores native histograms"},
	{name: "tsdb.write-queue-size", why: "Weir appends in the request, with no write queue"},
	{name: "writer.intern", bool: true, why: "Weir's writer needs no string interning: labels are copied once per new series"},
	{name: "hash-func", why: "Weir's shipper records no file hashes in meta.json (the Thanos compactor computes them when it needs them)"},
	{name: "shipper.allow-out-of-order-uploads", bool: true, why: "Weir's shipper uploads every completed block, in any order"},
	{name: "shipper.skip-corrupted-blocks", bool: true, why: "Weir's shipper retries a block it cannot upload and never skips one"},
	{name: "matcher-cache-size", why: "Weir's StoreAPI keeps no matcher cache"},
	{name: "request.logging-config", why: "Weir logs failed writes itself (--log.level)"},
	{name: "request.logging-config-file", why: "Weir logs failed writes itself (--log.level)"},
	{name: "enable-feature", repeat: true, why: "Weir has no feature flags"},
	{name: "receive.lazy-retrieval-max-buffered-responses", why: "Weir's StoreAPI streams each tenant's series without buffering responses"},
}

// thanosFlags holds which Thanos-only flags were given.
type thanosFlags struct {
	set map[string]*bool
}

func (t *thanosFlags) registerFlags(r flags.Registry) {
	t.set = make(map[string]*bool, len(thanosOnly))
	for _, f := range thanosOnly {
		given := new(bool)
		t.set[f.name] = given
		c := r.Flag(f.name, "Thanos Receive flag accepted for compatibility, without effect: "+f.why+".").Hidden().IsSetByUser(given)
		switch {
		case f.bool:
			c.Bool()
		case f.repeat:
			c.Strings()
		default:
			c.String()
		}
	}
}

// given lists the Thanos-only flags that were given, in thanosOnly's order.
func (t *thanosFlags) given() []string {
	var names []string
	for _, f := range thanosOnly {
		if *t.set[f.name] {
			names = append(names, f.name)
		}
	}
	return names
}

// warn logs, once each, the Thanos-only flags that were given.
func (t *thanosFlags) warn(logger *slog.Logger) {
	for _, f := range thanosOnly {
		if *t.set[f.name] {
			logger.Warn(fmt.Sprintf("--%s is accepted for compatibility with Thanos Receive and has no effect: %s", f.name, f.why))
		}
	}
}
