package loadgen

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math"
	"strconv"
)

// ProtocolOTLP is the Protocol of OTLP/HTTP metrics load (gzip-compressed protobuf, as an
// OpenTelemetry Collector sends by default); the URL is then the receiver's OTLP endpoint, e.g.
// http://host:19291/api/v1/otlp/v1/metrics.
const ProtocolOTLP = "otlp"

// otlpEncoder writes a batch as an OTLP ExportMetricsServiceRequest: one resource without
// attributes, one scope, one gauge named MetricName with a data point per series, its labels other
// than __name__ as attributes. Prometheus' translator turns that back into exactly the series remote
// write sends (a gauge without a unit keeps its name; no resource attributes: no job, instance or
// target_info), so the ack log verifies OTLP runs too. Like encoder it allocates nothing per series
// or point: the protobuf is written straight into reused buffers, inside out.
type otlpEncoder struct {
	*encoder
	points, wrapped []byte
	zbuf            bytes.Buffer
	zw              *gzip.Writer
}

func newOTLPEncoder(e *encoder) *otlpEncoder {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // the level is valid
	return &otlpEncoder{encoder: e, zw: zw}
}

// Protobuf field tags of the OTLP messages written here (opentelemetry/proto/metrics/v1).
const (
	tagResourceMetrics = 1<<3 | 2 // ExportMetricsServiceRequest.resource_metrics
	tagScopeMetrics    = 2<<3 | 2 // ResourceMetrics.scope_metrics
	tagMetrics         = 2<<3 | 2 // ScopeMetrics.metrics
	tagMetricName      = 1<<3 | 2 // Metric.name
	tagGauge           = 5<<3 | 2 // Metric.gauge
	tagDataPoints      = 1<<3 | 2 // Gauge.data_points
	tagTimeUnixNano    = 3<<3 | 1 // NumberDataPoint.time_unix_nano, fixed64
	tagAsDouble        = 4<<3 | 1 // NumberDataPoint.as_double
	tagAttributes      = 7<<3 | 2 // NumberDataPoint.attributes
	tagKey             = 1<<3 | 2 // KeyValue.key
	tagValue           = 2<<3 | 2 // KeyValue.value
	tagStringValue     = 1<<3 | 2 // AnyValue.string_value
)

// appendRequest appends the gzip-compressed request for batch b after churn replacements, every point
// stamped ts (milliseconds).
func (e *otlpEncoder) appendRequest(dst []byte, b batch, churn uint64, ts int64) []byte {
	sc := e.sc
	p := e.points[:0]
	for slot := b.first; slot < b.first+b.count; slot++ {
		id := SeriesID(e.spec, slot, churn)
		e.idBuf = strconv.AppendUint(e.idBuf[:0], id, 10)
		size := 1 + 8 + 1 + 8 // time and value, fixed64 each
		for i, name := range sc.names {
			if sc.kinds[i] == kindName {
				continue
			}
			kv := kvSize(len(name), len(e.value(i, id)))
			size += 1 + uvarintLen(uint64(kv)) + kv
		}
		p = append(p, tagDataPoints)
		p = binary.AppendUvarint(p, uint64(size))
		for i, name := range sc.names {
			if sc.kinds[i] == kindName {
				continue
			}
			v := e.value(i, id)
			p = append(p, tagAttributes)
			p = binary.AppendUvarint(p, uint64(kvSize(len(name), len(v))))
			p = append(p, tagKey)
			p = binary.AppendUvarint(p, uint64(len(name)))
			p = append(p, name...)
			p = append(p, tagValue)
			p = binary.AppendUvarint(p, uint64(1+uvarintLen(uint64(len(v)))+len(v)))
			p = append(p, tagStringValue)
			p = binary.AppendUvarint(p, uint64(len(v)))
			p = append(p, v...)
		}
		p = append(p, tagTimeUnixNano)
		p = binary.LittleEndian.AppendUint64(p, uint64(ts)*1e6)
		p = append(p, tagAsDouble)
		p = binary.LittleEndian.AppendUint64(p, math.Float64bits(Value(id, ts)))
	}
	e.points = p

	// Wrap inside out: Gauge in Metric in ScopeMetrics in ResourceMetrics in the request.
	metric := 1 + uvarintLen(uint64(len(MetricName))) + len(MetricName) + 1 + uvarintLen(uint64(len(p))) + len(p)
	scope := 1 + uvarintLen(uint64(metric)) + metric
	resource := 1 + uvarintLen(uint64(scope)) + scope
	w := e.wrapped[:0]
	w = append(w, tagResourceMetrics)
	w = binary.AppendUvarint(w, uint64(resource))
	w = append(w, tagScopeMetrics)
	w = binary.AppendUvarint(w, uint64(scope))
	w = append(w, tagMetrics)
	w = binary.AppendUvarint(w, uint64(metric))
	w = append(w, tagMetricName)
	w = binary.AppendUvarint(w, uint64(len(MetricName)))
	w = append(w, MetricName...)
	w = append(w, tagGauge)
	w = binary.AppendUvarint(w, uint64(len(p)))
	w = append(w, p...)
	e.wrapped = w

	e.zbuf.Reset()
	e.zw.Reset(&e.zbuf)
	_, _ = e.zw.Write(w) // writes to a bytes.Buffer do not fail
	_ = e.zw.Close()
	return append(dst, e.zbuf.Bytes()...)
}

// kvSize is the size of a KeyValue with a string value.
func kvSize(key, value int) int {
	anyValue := 1 + uvarintLen(uint64(value)) + value
	return 1 + uvarintLen(uint64(key)) + key + 1 + uvarintLen(uint64(anyValue)) + anyValue
}
