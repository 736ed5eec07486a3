package hashring

import (
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/prometheus/prometheus/prompb"
)

// endpoints returns n endpoints ingester-0:10901 … in order.
func endpoints(n int) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{Address: fmt.Sprintf("ingester-%d:10901", i)}
	}
	return eps
}

// zoned returns n endpoints spread round-robin over z zones.
func zoned(n, z int) []Endpoint {
	eps := endpoints(n)
	for i := range eps {
		eps[i].AZ = "zone-" + strconv.Itoa(i%z)
	}
	return eps
}

// seriesHashes returns the hashes of n random realistic series (10 sorted labels) of one tenant,
// the same for the same seed on every machine.
func seriesHashes(seed uint64, n int) []uint64 {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	hs := make([]uint64, n)
	lset := make([]prompb.Label, 10)
	for i := range hs {
		randomSeries(rng, lset)
		hs[i] = SeriesHash("tenant-a", lset)
	}
	return hs
}

// labelValues is a pool of label values, so that generating a million series does not allocate.
var labelValues = func() []string {
	v := make([]string, 1000)
	for i := range v {
		v[i] = "value-" + strconv.Itoa(i)
	}
	return v
}()

// randomSeries fills lset (10 labels) with a random series, labels sorted by name.
func randomSeries(rng *rand.Rand, lset []prompb.Label) {
	names := [...]string{"__name__", "container", "endpoint", "instance", "job", "le", "namespace", "pod", "service", "zone"}
	for j := range lset {
		lset[j] = prompb.Label{Name: names[j], Value: labelValues[rng.IntN(len(labelValues))]}
	}
}
