package hashring

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
)

// sep separates the tenant and each label name and value in the hashed stream.
var sep = []byte{0xff}

// SeriesHash is the one placement hash of a series: xxhash64 over
//
//	tenant 0xff name1 0xff value1 0xff name2 0xff value2 0xff …
//
// The labels must be sorted by name (the receive path sorts or rejects them before routing); the same
// series in another label order hashes differently. The byte stream is the one Thanos Receive hashes,
// so a Weir ring places a series on the same endpoint as a Thanos ring of the same file.
//
// SeriesHash does not allocate.
func SeriesHash(tenant string, lset []prompb.Label) uint64 {
	// Fast path: the whole stream in a stack buffer, hashed in one call (many small Digest writes
	// cost more than the copy). Series too long for it are streamed.
	var buf [512]byte
	b := append(buf[:0], tenant...)
	b = append(b, sep[0])
	for i := range lset {
		if len(b)+len(lset[i].Name)+len(lset[i].Value)+2 > len(buf) {
			return streamHash(b, lset[i:])
		}
		b = append(b, lset[i].Name...)
		b = append(b, sep[0])
		b = append(b, lset[i].Value...)
		b = append(b, sep[0])
	}
	return xxhash.Sum64(b)
}

// streamHash continues SeriesHash for long series: prefix is the stream so far, rest the labels left.
func streamHash(prefix []byte, rest []prompb.Label) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.Write(prefix)
	for i := range rest {
		_, _ = d.WriteString(rest[i].Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(rest[i].Value)
		_, _ = d.Write(sep)
	}
	return d.Sum64()
}
