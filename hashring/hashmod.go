package hashring

import (
	"errors"
	"slices"
	"strings"
)

// hashmod places a series on endpoint h mod N and its replicas on the next endpoints, with the
// endpoints sorted by address, exactly as Thanos Receive's "hashmod" algorithm does. It spreads series
// evenly but moves almost all of them when N changes; ketama is the better choice for rings that grow.
type hashmod struct {
	endpoints []Endpoint // sorted by address
}

// NewHashmod builds a hashmod ring. The endpoints are sorted by address (Endpoints() returns them in
// that order), so the order of the hashrings file does not matter. Hashmod cannot spread replicas
// over zones: endpoints with an AZ are refused, as Thanos does.
func NewHashmod(endpoints []Endpoint, rf int) (Ring, error) {
	if err := checkEndpoints(endpoints, rf); err != nil {
		return nil, err
	}
	for _, e := range endpoints {
		if e.AZ != "" {
			return nil, errors.New("the hashmod algorithm cannot place replicas in distinct zones: use ketama, or remove az from the endpoints")
		}
	}
	sorted := slices.Clone(endpoints)
	slices.SortFunc(sorted, func(a, b Endpoint) int { return strings.Compare(a.Address, b.Address) })
	return &hashmod{endpoints: sorted}, nil
}

func (m *hashmod) Endpoints() []Endpoint { return m.endpoints }

func (m *hashmod) Owners(h uint64, rf int, dst []int) ([]int, error) {
	if rf < 1 {
		return dst, ErrInvalidReplicationFactor
	}
	n := uint64(len(m.endpoints))
	if uint64(rf) > n {
		return dst, ErrNotEnoughEndpoints
	}
	// Replica i is endpoint (h+i) mod n, as in Thanos, computed without the wrap-around of h+i at
	// 2^64 (there Thanos could pick one endpoint twice; the two agree on every other hash).
	first := h % n
	for i := range uint64(rf) {
		dst = append(dst, int((first+i)%n))
	}
	return dst, nil
}
