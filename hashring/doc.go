// Package hashring decides which ingesters own a series: placement only, with no I/O apart from the
// hashrings file watcher.
//
// Start with FileSource: it loads a Thanos-format hashrings file (DESIGN.md §2; see RingConfig),
// reloads it when it changes, refuses a bad new file while the last good one keeps serving, and
// exposes the current Snapshot through one atomic load. A router takes Current() once per request,
// resolves the tenant's Ring once with Rings.For, and for each series computes SeriesHash once and
// Ring.Owners once:
//
//	snap := src.Current()                        // nil: no ring yet (503)
//	ring, extLabels, err := snap.Rings.For(tenant)
//	owners = ring.Owners(hashring.SeriesHash(tenant, ts.Labels), rf, owners[:0])
//	for _, i := range owners { addr := ring.Endpoints()[i].Address; … }
//
// Owners returns rf distinct endpoints in replica order, in rf distinct zones when the ring's
// endpoints have an "az"; neither SeriesHash nor Owners allocates.
//
// Two algorithms, as in Thanos Receive:
//   - ketama (ketama.go): consistent hashing with DefaultKetamaPoints virtual points per endpoint;
//     adding or removing one of N endpoints moves about 1/N of the series. Owner lists are
//     precomputed per point for the configured replication factor.
//   - hashmod (hashmod.go): endpoint hash mod N, replicas on the next endpoints (sorted by address);
//     even, but a membership change moves nearly every series. No zones.
//
// Compatibility: SeriesHash hashes the same bytes as Thanos, ketama derives its points as Thanos
// does, and hashmod sorts endpoints as Thanos does, so for the same file Weir places every series on
// the same endpoints as Thanos Receive (TestThanosCompatibility pins Thanos' own expectations).
// Differences, each refused with a clear error rather than silently placing series elsewhere:
// unknown fields, duplicate endpoints or names, a tenant in two hashrings, two default hashrings,
// an unknown algorithm (Thanos falls back to hashmod), shuffle_sharding_config (not implemented),
// endpoints with and without az in one ring, zones fewer than the replication factor. Tenant
// precedence is exact, then glob, then default, whatever the file order (see Rings).
// capnproto_address in an endpoint object is accepted and ignored (Weir forwards over gRPC).
//
// MemberlistSource (gossip.go) is the other source of a Snapshot, with the same surface (Current,
// Changed, Err, Run): members of a hashicorp/memberlist cluster publish a NodeMeta (role, write
// endpoint, zone, state) and every node builds one ketama ring ("default", all tenants) over the
// active ingesters, sorted by endpoint, zones as AZs; ConfigHash hashes that member set, so nodes that
// see the same members show the same hash. Dead-member rule: a member memberlist declares dead stays
// in the ring for MemberlistConfig.DeadTimeout (writes to it fail and the quorum covers them; a
// restart within the timeout moves no series), then is dropped and its share moves; a graceful leave
// (state=leaving, then Leave) drops it at once.
//
// Files: config.go (parse and validate), hash.go (SeriesHash), ring.go (Ring, Endpoint, New),
// ketama.go, hashmod.go, multi.go (Rings: tenant → hashring), watch.go (FileSource, Snapshot),
// gossip.go (MemberlistSource), metrics.go (weir_hashring_* metrics).
package hashring
