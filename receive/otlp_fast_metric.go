package receive

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
	pmetadata "github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/protobuf/encoding/protowire"
)

// Metric fields of the OTLP Metric message the fast path reads.
const (
	otlpMetricGauge     = 5
	otlpMetricSum       = 7
	otlpMetricHistogram = 9
	otlpMetricSummary   = 11
)

// otlpTemporalityCumulative is AggregationTemporality CUMULATIVE, the only one the fast path takes.
const otlpTemporalityCumulative = 2

// otlpFastMetric is a Metric's header and data, as read by parseMetric.
type otlpFastMetric struct {
	name, description, unit []byte
	kind                    protowire.Number // otlpMetric*
	data                    []byte
}

// parseMetric reads a Metric: name (1), description (2), unit (3) and one data field. Exponential
// histograms and metadata (12) decline.
func parseMetric(b []byte) (m otlpFastMetric, ok bool) {
	var seen fieldSet
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.typ != protowire.BytesType || !seen.once(f.num) {
			return m, false
		}
		b = rest
		switch f.num {
		case 1:
			m.name = f.b
		case 2:
			m.description = f.b
		case 3:
			m.unit = f.b
		case otlpMetricGauge, otlpMetricSum, otlpMetricHistogram, otlpMetricSummary:
			if m.kind != 0 {
				return m, false
			}
			m.kind, m.data = f.num, f.b
		default:
			return m, false
		}
	}
	return m, m.kind != 0
}

// parseAggregate reads a Gauge, Sum, Histogram or Summary: its data points (1, returned as the
// message itself, to be walked by eachPoint), temporality (2) and monotonicity (3) where it has them.
// It declines a metric without points (the translator warns about it) and a temporality other than
// cumulative where there is one.
func parseAggregate(kind protowire.Number, b []byte) (monotonic, ok bool) {
	var seen fieldSet
	points := 0
	var temporality uint64
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok {
			return false, false
		}
		b = rest
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			points++
		case f.num == 2 && f.typ == protowire.VarintType && (kind == otlpMetricSum || kind == otlpMetricHistogram) && seen.once(f.num):
			temporality = f.v
		case f.num == 3 && f.typ == protowire.VarintType && kind == otlpMetricSum && seen.once(f.num):
			monotonic = f.v != 0
		default:
			return false, false
		}
	}
	if (kind == otlpMetricSum || kind == otlpMetricHistogram) && temporality != otlpTemporalityCumulative {
		return false, false
	}
	return monotonic, points > 0
}

// metric translates one Metric: name and metadata as the translator makes them, then its points.
func (d *otlpFastDecoder) metric(b []byte) bool {
	m, ok := parseMetric(b)
	if !ok {
		return false
	}
	monotonic, ok := parseAggregate(m.kind, m.data)
	if !ok {
		return false
	}
	tm := otlptranslator.Metric{Name: string(m.name), Unit: string(m.unit)}
	meta := pmetadata.Metadata{Help: string(m.description)}
	switch m.kind {
	case otlpMetricGauge:
		tm.Type, meta.Type = otlptranslator.MetricTypeGauge, model.MetricTypeGauge
	case otlpMetricSum:
		tm.Type, meta.Type = otlptranslator.MetricTypeNonMonotonicCounter, model.MetricTypeGauge
		if monotonic {
			tm.Type, meta.Type = otlptranslator.MetricTypeMonotonicCounter, model.MetricTypeCounter
		}
	case otlpMetricHistogram:
		tm.Type, meta.Type = otlptranslator.MetricTypeHistogram, model.MetricTypeHistogram
	case otlpMetricSummary:
		tm.Type, meta.Type = otlptranslator.MetricTypeSummary, model.MetricTypeSummary
	}
	name, err := d.cfg.metricName.Build(tm)
	if err != nil || name == "" {
		return false
	}
	var un otlptranslator.UnitNamer
	meta.Unit = un.Build(tm.Unit)
	opts := storage.AOptions{Metadata: meta, MetricFamilyName: name}
	for data := m.data; len(data) > 0; {
		f, rest, _ := nextField(data)
		data = rest
		if f.num != 1 {
			continue
		}
		var ok bool
		switch m.kind {
		case otlpMetricGauge, otlpMetricSum:
			ok = d.numberPoint(f.b, &opts)
		case otlpMetricHistogram:
			ok = d.histogramPoint(f.b, &opts)
		case otlpMetricSummary:
			ok = d.summaryPoint(f.b, &opts)
		}
		if !ok {
			return false
		}
	}
	return true
}
