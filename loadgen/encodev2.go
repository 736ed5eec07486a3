package loadgen

import (
	"encoding/binary"
	"math"
	"strconv"
)

// encoderV2 writes Remote Write 2.0 requests (io.prometheus.write.v2.Request) for the same series and
// samples as encoder, as Prometheus does: each request has its own symbols table holding the strings
// its series use (the empty string first), every series refers to its labels by index, and carries
// its metadata (type gauge, a help text). No allocation per series or sample once warm.
type encoderV2 struct {
	spec Spec
	sc   *schema
	// symbols are the symbols of the request being written, after the fixed ones (fixed).
	symbols []byte
	nsym    uint32
	// valueRef[k] is the symbol of dimension value k in the request of generation valueGen[k].
	valueRef []uint32
	valueGen []uint32
	gen      uint32
	idBuf    []byte
	refs     []uint32
	series   []byte
	fixed    []string // fixedSymbols
}

// The symbols every request starts with: "", the label names in schema order, the metric name and the
// help text.
const helpText = "Synthetic series of weir bench."

func newEncoderV2(spec Spec, sc *schema) *encoderV2 {
	return &encoderV2{spec: spec, sc: sc, valueRef: make([]uint32, len(sc.values)), valueGen: make([]uint32, len(sc.values)),
		fixed: append(append([]string{""}, sc.names...), MetricName, helpText)}
}

// appendRequest appends the Request for batch b after churn replacements, every sample stamped ts.
func (e *encoderV2) appendRequest(dst []byte, b batch, churn uint64, ts int64) []byte {
	e.gen++
	fixed := e.fixed
	e.symbols, e.nsym, e.series = e.symbols[:0], uint32(len(fixed)), e.series[:0]
	nameRef := uint32(1 + len(e.sc.names))
	helpRef := nameRef + 1
	sampleSize := 1 + 8 + 1 + uvarintLen(uint64(ts))
	for slot := b.first; slot < b.first+b.count; slot++ {
		id := SeriesID(e.spec, slot, churn)
		e.refs = e.refs[:0]
		for i := range e.sc.names {
			e.refs = append(e.refs, uint32(1+i))
			switch k := e.sc.kinds[i]; k {
			case kindName:
				e.refs = append(e.refs, nameRef)
			case kindID:
				e.idBuf = strconv.AppendUint(e.idBuf[:0], id, 10)
				e.refs = append(e.refs, e.symbol(e.idBuf))
			default:
				v := e.sc.dimValue(id, int(k))
				if e.valueGen[v] != e.gen {
					e.valueGen[v], e.valueRef[v] = e.gen, e.symbol(e.sc.valuesB[v])
				}
				e.refs = append(e.refs, e.valueRef[v])
			}
		}
		refsLen := 0
		for _, r := range e.refs {
			refsLen += uvarintLen(uint64(r))
		}
		metaSize := 1 + 1 + 1 + uvarintLen(uint64(helpRef)) // type gauge, help_ref
		tsSize := 1 + uvarintLen(uint64(refsLen)) + refsLen + 1 + uvarintLen(uint64(sampleSize)) + sampleSize + 1 + uvarintLen(uint64(metaSize)) + metaSize
		e.series = append(e.series, 0x2a) // Request.timeseries (5)
		e.series = binary.AppendUvarint(e.series, uint64(tsSize))
		e.series = append(e.series, 0x0a) // TimeSeries.labels_refs (1), packed
		e.series = binary.AppendUvarint(e.series, uint64(refsLen))
		for _, r := range e.refs {
			e.series = binary.AppendUvarint(e.series, uint64(r))
		}
		e.series = append(e.series, 0x12) // TimeSeries.samples (2)
		e.series = binary.AppendUvarint(e.series, uint64(sampleSize))
		e.series = append(e.series, 0x09) // Sample.value, fixed64
		e.series = binary.LittleEndian.AppendUint64(e.series, math.Float64bits(Value(id, ts)))
		e.series = append(e.series, 0x10) // Sample.timestamp, varint
		e.series = binary.AppendUvarint(e.series, uint64(ts))
		e.series = append(e.series, 0x2a) // TimeSeries.metadata (5)
		e.series = binary.AppendUvarint(e.series, uint64(metaSize))
		e.series = append(e.series, 0x08, 2) // Metadata.type: GAUGE
		e.series = append(e.series, 0x18)    // Metadata.help_ref (3)
		e.series = binary.AppendUvarint(e.series, uint64(helpRef))
	}
	for _, s := range fixed {
		dst = append(dst, 0x22) // Request.symbols (4)
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = append(dst, e.symbols...)
	return append(dst, e.series...)
}

// symbol adds s to the request's symbols and returns its index.
func (e *encoderV2) symbol(s []byte) uint32 {
	e.symbols = append(e.symbols, 0x22)
	e.symbols = binary.AppendUvarint(e.symbols, uint64(len(s)))
	e.symbols = append(e.symbols, s...)
	e.nsym++
	return e.nsym - 1
}
