package hashring

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// million is 1,000,000 random series hashes (fixed seed), shared by the distribution tests.
var million = sync.OnceValue(func() []uint64 { return seriesHashes(42, 1_000_000) })

// load counts the series (replicas included) each endpoint of r owns.
func load(t *testing.T, r Ring, hashes []uint64, rf int) []int {
	t.Helper()
	counts := make([]int, len(r.Endpoints()))
	owners := make([]int, 0, rf)
	for _, h := range hashes {
		var err error
		owners, err = r.Owners(h, rf, owners[:0])
		require.NoError(t, err)
		for _, o := range owners {
			counts[o]++
		}
	}
	return counts
}

func maxMinRatio(counts []int) float64 {
	lo, hi := counts[0], counts[0]
	for _, c := range counts {
		lo, hi = min(lo, c), max(hi, c)
	}
	return float64(hi) / float64(lo)
}

// TestKetamaDistribution: 1M series over 6 endpoints with DefaultKetamaPoints.
//
// Measured (endpoints ingester-0…5:10901, seed 42): max/min 1.052 at rf=1, 1.030 at rf=3 (replicas
// counted). For comparison, the same
// series with other point counts: 200 → 1.235, 500 → 1.096, 1000 → 1.052, 2000 → 1.073, 5000 →
// 1.027. 1000 is also Thanos' count, which keeps placements identical to Thanos Receive. The bounds
// below sit a little above the measured figures; a change to hashing or point layout that makes the
// spread worse fails here.
func TestKetamaDistribution(t *testing.T) {
	hashes := million()
	r, err := NewKetama(endpoints(6), DefaultKetamaPoints, 3)
	require.NoError(t, err)

	for _, tc := range []struct {
		rf    int
		bound float64
	}{
		{rf: 1, bound: 1.06},
		{rf: 3, bound: 1.04},
	} {
		counts := load(t, r, hashes, tc.rf)
		ratio := maxMinRatio(counts)
		t.Logf("rf=%d: series per endpoint %v, max/min %.4f", tc.rf, counts, ratio)
		require.LessOrEqual(t, ratio, tc.bound, "rf=%d: uneven distribution %v", tc.rf, counts)
	}
}

// TestHashmodDistribution: hashmod is even by construction; a sanity bound.
func TestHashmodDistribution(t *testing.T) {
	r, err := NewHashmod(endpoints(6), 1)
	require.NoError(t, err)
	counts := load(t, r, million(), 1)
	require.LessOrEqual(t, maxMinRatio(counts), 1.02, "%v", counts)
}

// TestKetamaMovement: adding a 7th endpoint to 6 moves close to 1/7 of the series, and only onto
// the new endpoint; removing one of 7 moves close to 1/7, and only the removed endpoint's series.
// Asserted: at most 1.25× the ideal fraction. Measured (rf=1): 0.1403 of the series move on add
// (ideal 0.1429), 0.1419 on remove (ideal 0.1429).
func TestKetamaMovement(t *testing.T) {
	hashes := million()
	six, err := NewKetama(endpoints(6), DefaultKetamaPoints, 1)
	require.NoError(t, err)
	seven, err := NewKetama(endpoints(7), DefaultKetamaPoints, 1)
	require.NoError(t, err)
	// Remove ingester-2 from the seven.
	removed := 2
	sixOfSeven, err := NewKetama(append(endpoints(7)[:removed:removed], endpoints(7)[removed+1:]...), DefaultKetamaPoints, 1)
	require.NoError(t, err)

	const ideal = 1.0 / 7
	var added, dropped int
	var a, b, c []int
	for _, h := range hashes {
		a, _ = six.Owners(h, 1, a[:0])
		b, _ = seven.Owners(h, 1, b[:0])
		c, _ = sixOfSeven.Owners(h, 1, c[:0])
		before, after := six.Endpoints()[a[0]].Address, seven.Endpoints()[b[0]].Address
		if before != after {
			added++
			if after != "ingester-6:10901" {
				t.Fatalf("adding ingester-6 moved a series from %s to %s", before, after)
			}
		}
		before, after = seven.Endpoints()[b[0]].Address, sixOfSeven.Endpoints()[c[0]].Address
		if before != after {
			dropped++
			if before != "ingester-2:10901" {
				t.Fatalf("removing ingester-2 moved a series from %s to %s", before, after)
			}
		}
	}
	addFrac := float64(added) / float64(len(hashes))
	dropFrac := float64(dropped) / float64(len(hashes))
	t.Logf("moved on add: %.4f, on remove: %.4f (ideal %.4f)", addFrac, dropFrac, ideal)
	require.LessOrEqual(t, addFrac, 1.25*ideal)
	require.LessOrEqual(t, dropFrac, 1.25*ideal)
	require.Greater(t, addFrac, 0.75*ideal, "the new endpoint takes too little")
}

// TestKetamaMovementReplicated: with rf=3, growing 6 → 7 changes the replica set of about 3/7 of the
// series (each series has 3 chances to meet the new endpoint); a series never loses more than one old
// owner, and it only gains the new one.
func TestKetamaMovementReplicated(t *testing.T) {
	hashes := million()[:200_000]
	six, err := NewKetama(endpoints(6), DefaultKetamaPoints, 3)
	require.NoError(t, err)
	seven, err := NewKetama(endpoints(7), DefaultKetamaPoints, 3)
	require.NoError(t, err)
	changed := 0
	var a, b []int
	for _, h := range hashes {
		a, _ = six.Owners(h, 3, a[:0])
		b, _ = seven.Owners(h, 3, b[:0])
		lost := 0
		for _, o := range a {
			found := false
			for _, n := range b {
				found = found || n == o // same index: the first six endpoints are shared
			}
			if !found {
				lost++
			}
		}
		if lost > 1 {
			t.Fatalf("hash %d: owners %v → %v lost %d old owners", h, a, b, lost)
		}
		if lost == 1 {
			changed++
		}
	}
	frac := float64(changed) / float64(len(hashes))
	t.Logf("replica sets changed: %.4f (ideal 3/7 = %.4f)", frac, 3.0/7)
	require.LessOrEqual(t, frac, 1.25*3.0/7)
}
