package hashring

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

// BenchmarkSeriesHash hashes one series of 10 labels (the DESIGN §4 load shape).
func BenchmarkSeriesHash(b *testing.B) {
	lset := make([]prompb.Label, 10)
	randomSeries(rand.New(rand.NewPCG(1, 1)), lset)
	n := len("tenant-a")
	for _, l := range lset {
		n += len(l.Name) + len(l.Value) + 2
	}
	b.SetBytes(int64(n + 1))
	b.ReportAllocs()
	for b.Loop() {
		_ = SeriesHash("tenant-a", lset)
	}
}

// BenchmarkOwners looks up the owners of one series hash: binary search over the points and a copy of
// the precomputed replicas.
func BenchmarkOwners(b *testing.B) {
	hashes := seriesHashes(7, 4096)
	for _, alg := range []Algorithm{AlgorithmKetama, AlgorithmHashmod} {
		for _, n := range []int{6, 60} {
			for _, rf := range []int{1, 3} {
				b.Run(fmt.Sprintf("alg=%s/endpoints=%d/rf=%d", alg, n, rf), func(b *testing.B) {
					r, err := New(alg, endpoints(n), Options{ReplicationFactor: 3})
					if err != nil {
						b.Fatal(err)
					}
					dst := make([]int, 0, rf)
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						dst, _ = r.Owners(hashes[i&4095], rf, dst[:0])
						i++
					}
				})
			}
		}
	}
}

// BenchmarkNewKetama builds a ring (what a reload costs), with its memory.
func BenchmarkNewKetama(b *testing.B) {
	for _, n := range []int{6, 60} {
		b.Run(fmt.Sprintf("endpoints=%d/rf=3", n), func(b *testing.B) {
			eps := endpoints(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewKetama(eps, DefaultKetamaPoints, 3); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRingsFor resolves a tenant's ring: exact, cached glob, default.
func BenchmarkRingsFor(b *testing.B) {
	rings, err := Load([]byte(multiFile), Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, tenant := range []string{"acme", "team-x", "anyone"} {
		b.Run("tenant="+tenant, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _, _ = rings.For(tenant)
			}
		})
	}
}
