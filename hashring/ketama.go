package hashring

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// DefaultKetamaPoints is the number of virtual points per endpoint of a ketama ring. It is Thanos
// Receive's value (SectionsPerNode), which makes Weir place series exactly where Thanos does for the
// same hashrings file: moving a cluster from Thanos to Weir moves no series. With 1000 points, 6
// endpoints carry 1M series within about 5% of each other (max/min 1.052, see TestKetamaDistribution)
// and adding a 7th endpoint moves 0.140 of the series (ideal 1/7 = 0.143).
const DefaultKetamaPoints = 1000

// ketama is a consistent-hash ring: every endpoint owns `points` pseudo-random positions on a 64-bit
// circle, and a series belongs to the endpoints of the first positions at or after its hash, walking
// clockwise and skipping endpoints (and, when the ring has zones, zones) already chosen. Adding or
// removing an endpoint moves only the series of the arcs it gains or loses, about 1/N of them.
//
// The owner lists of the configured replication factor are precomputed per point, so Owners is one
// binary search and a copy of at most rf small integers.
type ketama struct {
	endpoints []Endpoint
	points    []uint64 // sorted positions on the circle
	owner     []int32  // owner[i]: the endpoint of points[i]
	zone      []int32  // zone[e]: the zone index of endpoint e; nil when the ring has no zones
	maxRF     int      // endpoints, or zones when the ring has zones
	pre       int      // owners precomputed per point
	replicas  []int32  // replicas[i*pre : (i+1)*pre]: the first pre owners from points[i]
}

// NewKetama builds a ketama ring with pointsPerEndpoint virtual points per endpoint (Thanos uses
// DefaultKetamaPoints) and owner lists precomputed for replication factor rf.
//
// Endpoints must be distinct and non-empty. Zones are all-or-nothing: when one endpoint has an AZ,
// every endpoint needs one, and there must be at least rf distinct zones.
func NewKetama(endpoints []Endpoint, pointsPerEndpoint, rf int) (Ring, error) {
	if err := checkEndpoints(endpoints, rf); err != nil {
		return nil, err
	}
	if pointsPerEndpoint < 1 {
		return nil, fmt.Errorf("ketama: %d points per endpoint: must be at least 1", pointsPerEndpoint)
	}
	k := &ketama{
		endpoints: slices.Clone(endpoints),
		maxRF:     len(endpoints),
	}
	zone, zones, err := zoneIndexes(endpoints)
	if err != nil {
		return nil, err
	}
	if zone != nil {
		if zones < rf {
			return nil, fmt.Errorf("replication factor %d is larger than the %d distinct zones (az)", rf, zones)
		}
		k.zone, k.maxRF = zone, zones
	}

	type point struct {
		hash     uint64
		endpoint int32
	}
	pts := make([]point, 0, len(endpoints)*pointsPerEndpoint)
	var d xxhash.Digest
	var num [20]byte
	for e, ep := range endpoints {
		// Position i of an endpoint is xxhash("<address>:<i>"), i from 1, as in Thanos.
		for i := 1; i <= pointsPerEndpoint; i++ {
			d.Reset()
			_, _ = d.WriteString(ep.Address)
			_, _ = d.WriteString(":")
			_, _ = d.Write(strconv.AppendInt(num[:0], int64(i), 10))
			pts = append(pts, point{hash: d.Sum64(), endpoint: int32(e)})
		}
	}
	// Ties (two positions with the same 64-bit hash) are broken by endpoint order, deterministically.
	slices.SortFunc(pts, func(a, b point) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.endpoint, b.endpoint)
	})
	k.points = make([]uint64, len(pts))
	k.owner = make([]int32, len(pts))
	for i, p := range pts {
		k.points[i], k.owner[i] = p.hash, p.endpoint
	}

	k.pre = rf
	k.replicas = make([]int32, 0, len(pts)*rf)
	scratch := make([]int, 0, rf)
	for i := range k.points {
		scratch = k.walk(i, rf, scratch[:0])
		for _, e := range scratch {
			k.replicas = append(k.replicas, int32(e))
		}
	}
	return k, nil
}

// zoneIndexes numbers the zones of endpoints in order of first appearance. It returns a nil slice
// when no endpoint has a zone, and an error when only some have one.
func zoneIndexes(endpoints []Endpoint) (zone []int32, zones int, err error) {
	withAZ := 0
	for _, e := range endpoints {
		if e.AZ != "" {
			withAZ++
		}
	}
	if withAZ == 0 {
		return nil, 0, nil
	}
	if withAZ != len(endpoints) {
		for i, e := range endpoints {
			if e.AZ == "" {
				return nil, 0, fmt.Errorf("endpoints[%d] (%s) has no az while other endpoints have one: give every endpoint an az, or none", i, e.Address)
			}
		}
	}
	ids := make(map[string]int32)
	zone = make([]int32, len(endpoints))
	for i, e := range endpoints {
		id, ok := ids[e.AZ]
		if !ok {
			id = int32(len(ids))
			ids[e.AZ] = id
		}
		zone[i] = id
	}
	return zone, len(ids), nil
}

func (k *ketama) Endpoints() []Endpoint { return k.endpoints }

func (k *ketama) Owners(h uint64, rf int, dst []int) ([]int, error) {
	if rf < 1 {
		return dst, ErrInvalidReplicationFactor
	}
	if rf > k.maxRF {
		return dst, ErrNotEnoughEndpoints
	}
	i, _ := slices.BinarySearch(k.points, h) // the first point at or after h …
	if i == len(k.points) {
		i = 0 // … wrapping around the circle
	}
	if rf <= k.pre {
		for _, e := range k.replicas[i*k.pre : i*k.pre+rf] {
			dst = append(dst, int(e))
		}
		return dst, nil
	}
	return k.walk(i, rf, dst), nil
}

// walk appends the first rf distinct endpoints (in distinct zones, when the ring has zones) met walking
// clockwise from points[start]. Greedy choice makes the first r owners of a walk for rf the same as a
// walk for r: a precomputed list serves every smaller factor. rf must not exceed k.maxRF.
func (k *ketama) walk(start, rf int, dst []int) []int {
	base := len(dst)
	for step := 0; step < len(k.points) && len(dst)-base < rf; step++ {
		j := start + step
		if j >= len(k.points) {
			j -= len(k.points)
		}
		e := int(k.owner[j])
		if k.taken(dst[base:], e) {
			continue
		}
		dst = append(dst, e)
	}
	if len(dst)-base < rf {
		// Unreachable: every endpoint owns points and rf <= maxRF.
		panic(errors.New("hashring: ketama walk found too few owners"))
	}
	return dst
}

// taken reports whether endpoint e, or another endpoint of its zone, is already among chosen.
func (k *ketama) taken(chosen []int, e int) bool {
	for _, c := range chosen {
		if c == e || (k.zone != nil && k.zone[c] == k.zone[e]) {
			return true
		}
	}
	return false
}
