// Package loadgen is the remote-write load generator behind `weir bench`: it generates series the
// way a Prometheus server sends them, sends them to any remote-write receiver with a pool of workers,
// measures what the receiver acknowledged and how fast, and records every acknowledged request in an
// ack log that a verifier can later check against what the receiver stores.
//
// # Series model
//
// The active series are Spec.Series slots, numbered 0..Series-1 and split into contiguous ranges, one per
// tenant (tenant t owns slots [t·Series/Tenants, (t+1)·Series/Tenants)). --series is therefore the
// total number of active series across all tenants. Churn replaces series one slot at a time, in slot
// order, round and round: after r replacements slot s holds its generation g = r/Series (+1 when
// s < r mod Series), and the series in it has the ID g·Series + s. Series IDs are thus unique across
// slots, tenants and generations, and a series' ID follows from (slot, replacements so far) alone.
//
// A series' labels follow from its ID alone (SeriesLabels), as does the value of its sample at a
// timestamp (Value): a verifier needs only the Spec and the ack log to know exactly which
// (tenant, labels, timestamp, value) were acknowledged.
package loadgen

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strconv"

	"github.com/prometheus/common/model"

	"github.com/prometheus/prometheus/model/labels"
)

// MetricName is the __name__ of every generated series.
const MetricName = "weir_bench_metric"

// SeriesIDLabel is the label that holds the series ID and makes every series unique.
const SeriesIDLabel = "series_id"

// Spec is what determines the generated series; it is stored in the ack log's header so that a
// verifier needs nothing else.
type Spec struct {
	// Tenants are named tenant-0 … tenant-(Tenants-1) (see TenantName).
	Tenants int `json:"tenants"`
	// Series is the total number of active series, over all tenants.
	Series int `json:"series"`
	// LabelsPerSeries counts every label, __name__ and series_id included (at least 2).
	LabelsPerSeries int `json:"labels_per_series"`
	// LabelValueCardinality is how many distinct values each label other than __name__ and series_id
	// takes (exactly this many once there are at least this many series).
	LabelValueCardinality int `json:"label_value_cardinality"`
	// ChurnPerMinute is how many series are replaced by new ones per minute, over all tenants.
	ChurnPerMinute int `json:"churn_per_minute"`
	// SamplesPerRequest is the number of series (one sample each) per request.
	SamplesPerRequest int `json:"samples_per_request"`
}

// Validate reports the first unusable field, named as its `weir bench` flag.
func (s Spec) Validate() error {
	switch {
	case s.Tenants < 1:
		return fmt.Errorf("--tenants: %d must be at least 1", s.Tenants)
	case s.Series < 1:
		return fmt.Errorf("--series: %d must be at least 1", s.Series)
	case s.Series < s.Tenants:
		return fmt.Errorf("--series: %d is fewer than --tenants (%d); every tenant needs a series", s.Series, s.Tenants)
	case s.LabelsPerSeries < 2 || s.LabelsPerSeries > 128:
		return fmt.Errorf("--labels-per-series: %d is not between 2 (__name__ and series_id) and 128", s.LabelsPerSeries)
	case s.LabelValueCardinality < 1 || s.LabelValueCardinality > 10_000_000:
		return fmt.Errorf("--label-value-cardinality: %d is not between 1 and 10000000", s.LabelValueCardinality)
	case s.ChurnPerMinute < 0:
		return fmt.Errorf("--churn: %d must not be negative", s.ChurnPerMinute)
	case s.SamplesPerRequest < 1:
		return fmt.Errorf("--samples-per-request: %d must be at least 1", s.SamplesPerRequest)
	}
	return nil
}

// TenantName is the name of tenant i, sent in the tenant header.
func TenantName(i int) string { return "tenant-" + strconv.Itoa(i) }

// TenantSlots is the range of slots [lo, hi) tenant i owns.
func (s Spec) TenantSlots(i int) (lo, hi int) {
	return int(int64(i) * int64(s.Series) / int64(s.Tenants)), int(int64(i+1) * int64(s.Series) / int64(s.Tenants))
}

// SeriesID is the ID of the series in slot after churn replacements.
func SeriesID(spec Spec, slot int, churn uint64) uint64 {
	n := uint64(spec.Series)
	gen := churn / n
	if uint64(slot) < churn%n {
		gen++
	}
	return gen*n + uint64(slot)
}

// ChurnAt is the number of replacements made after elapsed milliseconds of a run.
func ChurnAt(spec Spec, elapsedMillis int64) uint64 {
	if spec.ChurnPerMinute == 0 || elapsedMillis <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(spec.ChurnPerMinute), uint64(elapsedMillis))
	q, _ := bits.Div64(hi%60_000, lo, 60_000)
	return q
}

// labelKind says where a label's value comes from.
type labelKind int8

const (
	kindName labelKind = -2
	kindID   labelKind = -1
	// 0…: dimension j, with LabelValueCardinality values.
)

// schema holds the label names in sorted order, and the label value table.
type schema struct {
	names   []string
	kinds   []labelKind
	values  []string // values[k] is the k-th value of every dimension label
	valuesB [][]byte // the same as bytes, for the encoder
	card    uint64
}

func newSchema(spec Spec) *schema {
	dims := spec.LabelsPerSeries - 2
	sc := &schema{card: uint64(spec.LabelValueCardinality)}
	sc.names = append(sc.names, model.MetricNameLabel)
	sc.kinds = append(sc.kinds, kindName)
	width := len(strconv.Itoa(max(dims-1, 0)))
	for j := range dims {
		// Zero-padded so that the names sort as they are numbered; "label_…" sorts between
		// "__name__" and "series_id".
		sc.names = append(sc.names, fmt.Sprintf("label_%0*d", width, j))
		sc.kinds = append(sc.kinds, labelKind(j))
	}
	sc.names = append(sc.names, SeriesIDLabel)
	sc.kinds = append(sc.kinds, kindID)
	sc.values = make([]string, spec.LabelValueCardinality)
	for k := range sc.values {
		sc.values[k] = "value-" + strconv.Itoa(k)
	}
	sc.valuesB = make([][]byte, len(sc.values))
	for k, v := range sc.values {
		sc.valuesB[k] = []byte(v)
	}
	return sc
}

// dimValue is the index of the value of dimension j for series id. Over any run of ids 0…card-1 each
// dimension takes every value once; the dimensions differ from each other beyond that.
func (sc *schema) dimValue(id uint64, j int) uint64 {
	return (id%sc.card + uint64(j)*((id/sc.card)%sc.card)) % sc.card
}

// SeriesLabels is the label set of the series with the given ID.
func SeriesLabels(spec Spec, id uint64) labels.Labels {
	return newSchema(spec).labels(id)
}

func (sc *schema) labels(id uint64) labels.Labels {
	b := labels.NewScratchBuilder(len(sc.names))
	for i, name := range sc.names {
		switch k := sc.kinds[i]; k {
		case kindName:
			b.Add(name, MetricName)
		case kindID:
			b.Add(name, strconv.FormatUint(id, 10))
		default:
			b.Add(name, sc.values[sc.dimValue(id, int(k))])
		}
	}
	return b.Labels()
}

// Value is the value sent for series id at timestamp ts (milliseconds): a whole number in [0, 1000),
// varying between series and over time.
func Value(id uint64, ts int64) float64 {
	return float64(mix(id*0x9E3779B97F4A7C15^uint64(ts)) % 1000)
}

// mix is splitmix64's finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return x
}

// batch is the series of one request: count slots from first, all of one tenant.
type batch struct {
	tenant int
	first  int
	count  int
}

// batches splits every tenant's slots into requests of SamplesPerRequest series and orders them
// round-robin over the tenants.
func (s Spec) batches() []batch {
	var perTenant [][]batch
	for t := range s.Tenants {
		lo, hi := s.TenantSlots(t)
		var bs []batch
		for first := lo; first < hi; first += s.SamplesPerRequest {
			bs = append(bs, batch{tenant: t, first: first, count: min(s.SamplesPerRequest, hi-first)})
		}
		perTenant = append(perTenant, bs)
	}
	var out []batch
	for i := 0; ; i++ {
		added := false
		for _, bs := range perTenant {
			if i < len(bs) {
				out = append(out, bs[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// requestEncoder writes the body of one request, before compression, for batch b after churn
// replacements, every sample stamped ts: encoder (Remote Write 1.0) or encoderV2.
type requestEncoder interface {
	appendRequest(dst []byte, b batch, churn uint64, ts int64) []byte
}

// encoder writes remote-write 1.0 requests (prometheus.WriteRequest protobuf) straight into a reused
// buffer: no allocation per series or sample.
type encoder struct {
	spec  Spec
	sc    *schema
	idBuf []byte // the series ID label's value, reused
}

func newEncoder(spec Spec, sc *schema) *encoder {
	return &encoder{spec: spec, sc: sc, idBuf: make([]byte, 0, 20)}
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func labelSize(name, value int) int {
	return 1 + uvarintLen(uint64(name)) + name + 1 + uvarintLen(uint64(value)) + value
}

// appendRequest appends the WriteRequest for batch b after churn replacements, every sample stamped ts.
func (e *encoder) appendRequest(dst []byte, b batch, churn uint64, ts int64) []byte {
	sc := e.sc
	sampleSize := 1 + 8 + 1 + uvarintLen(uint64(ts))
	for slot := b.first; slot < b.first+b.count; slot++ {
		id := SeriesID(e.spec, slot, churn)
		e.idBuf = strconv.AppendUint(e.idBuf[:0], id, 10)
		// Sizes first: protobuf prefixes every message with its length.
		tsSize := 1 + uvarintLen(uint64(sampleSize)) + sampleSize
		for i, name := range sc.names {
			l := labelSize(len(name), len(e.value(i, id)))
			tsSize += 1 + uvarintLen(uint64(l)) + l
		}
		dst = append(dst, 0x0a) // WriteRequest.timeseries
		dst = binary.AppendUvarint(dst, uint64(tsSize))
		for i, name := range sc.names {
			v := e.value(i, id)
			dst = append(dst, 0x0a) // TimeSeries.labels
			dst = binary.AppendUvarint(dst, uint64(labelSize(len(name), len(v))))
			dst = append(dst, 0x0a) // Label.name
			dst = binary.AppendUvarint(dst, uint64(len(name)))
			dst = append(dst, name...)
			dst = append(dst, 0x12) // Label.value
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			dst = append(dst, v...)
		}
		dst = append(dst, 0x12) // TimeSeries.samples
		dst = binary.AppendUvarint(dst, uint64(sampleSize))
		dst = append(dst, 0x09) // Sample.value, fixed64
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(Value(id, ts)))
		dst = append(dst, 0x10) // Sample.timestamp, varint
		dst = binary.AppendUvarint(dst, uint64(ts))
	}
	return dst
}

// value is the value of label i of series id; the series ID label's value is e.idBuf.
func (e *encoder) value(i int, id uint64) []byte {
	switch k := e.sc.kinds[i]; k {
	case kindName:
		return metricNameBytes
	case kindID:
		return e.idBuf
	default:
		return e.sc.valueBytes(e.sc.dimValue(id, int(k)))
	}
}

var metricNameBytes = []byte(MetricName)

func (sc *schema) valueBytes(k uint64) []byte { return sc.valuesB[k] }
