package hashring

import (
	"errors"
	"fmt"
)

// Endpoint is one ingester of a ring.
type Endpoint struct {
	// Address is the ingester's internal write address, host:port, exactly as written in the
	// hashrings file. It is also the identity of the endpoint: ketama derives its points from it.
	Address string
	// AZ is the endpoint's availability zone; empty when the ring is not zone-aware.
	AZ string
}

// Ring places series on endpoints. Implementations are immutable and safe for concurrent use; a new
// membership produces a new Ring.
type Ring interface {
	// Owners appends to dst the indexes (into Endpoints()) of the rf distinct endpoints that own the
	// series with hash h, in replica order (the first is the primary), and returns the extended slice.
	// When the ring has availability zones the rf endpoints are in rf distinct zones.
	//
	// Owners does not allocate when dst has room for rf more indexes: callers reuse one slice,
	// owners = ring.Owners(h, rf, owners[:0]). It fails with ErrNotEnoughEndpoints when rf is larger
	// than the endpoints (or zones) can satisfy, and with ErrInvalidReplicationFactor when rf < 1.
	Owners(h uint64, rf int, dst []int) ([]int, error)

	// Endpoints returns the ring's endpoints. The slice is shared: callers must not modify it.
	Endpoints() []Endpoint
}

var (
	// ErrNotEnoughEndpoints is returned by Owners when the ring has fewer endpoints (or, for a
	// zone-aware ring, fewer zones) than the replication factor asked for.
	ErrNotEnoughEndpoints = errors.New("hashring: not enough endpoints (or zones) for the replication factor")
	// ErrInvalidReplicationFactor is returned by Owners for rf < 1.
	ErrInvalidReplicationFactor = errors.New("hashring: replication factor must be at least 1")
)

// New builds the ring of one hashring with the given algorithm. rf is the replication factor the
// caller will use most: ketama precomputes that many owners per point so that Owners is a binary
// search and a copy (other factors still work, by walking the ring). Options.KetamaPoints sets the
// points per endpoint (zero: DefaultKetamaPoints).
//
// New validates what placement needs (endpoints present, distinct, rf not above what they can
// satisfy); ParseConfig validates the rest of a hashrings file.
func New(alg Algorithm, endpoints []Endpoint, opts Options) (Ring, error) {
	opts = opts.withDefaults()
	if alg == "" {
		alg = opts.DefaultAlgorithm
	}
	switch alg {
	case AlgorithmKetama:
		return NewKetama(endpoints, opts.KetamaPoints, opts.ReplicationFactor)
	case AlgorithmHashmod:
		return NewHashmod(endpoints, opts.ReplicationFactor)
	default:
		return nil, fmt.Errorf("unknown algorithm %q (want %q or %q)", alg, AlgorithmKetama, AlgorithmHashmod)
	}
}

// checkEndpoints is what every ring requires of its endpoints.
func checkEndpoints(endpoints []Endpoint, rf int) error {
	if len(endpoints) == 0 {
		return errors.New("no endpoints")
	}
	if rf < 1 {
		return fmt.Errorf("replication factor %d: must be at least 1", rf)
	}
	seen := make(map[string]int, len(endpoints))
	for i, e := range endpoints {
		if e.Address == "" {
			return fmt.Errorf("endpoints[%d]: empty address", i)
		}
		if j, ok := seen[e.Address]; ok {
			return fmt.Errorf("endpoints[%d]: duplicate endpoint %q (also endpoints[%d])", i, e.Address, j)
		}
		seen[e.Address] = i
	}
	if rf > len(endpoints) {
		return fmt.Errorf("replication factor %d is larger than the %d endpoints", rf, len(endpoints))
	}
	return nil
}
