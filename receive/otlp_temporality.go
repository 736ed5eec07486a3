package receive

import (
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Delta temporality is refused, with a message that says what to change, and the rest of the request
// is written (partial success). Converting deltas to cumulative values needs the running sum of every
// series in one place; in a ring, a sender's requests reach any router, so a router cannot keep it
// (Prometheus does it in its one process, behind a feature flag). Senders are cumulative by default;
// a Collector in front of Weir can convert with its deltatocumulative processor.
const deltaAdvice = "Weir stores cumulative temporality only: configure the exporter for cumulative temporality " +
	"(OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative) or convert in an OpenTelemetry Collector (deltatocumulative processor)"

// otlpRefusal is what dropUntranslatable removed from a request.
type otlpRefusal struct {
	points int      // data points removed
	delta  []string // names of the first few delta metrics
	other  []string // names of the first few metrics without a usable type or temporality
}

// dropUntranslatable removes from md the metrics that the translator would refuse as a whole — delta
// or unspecified temporality, no type — and counts their data points, so that the answer can say how
// many points were rejected and why (the translator only returns an error).
func dropUntranslatable(md pmetric.Metrics) otlpRefusal {
	var r otlpRefusal
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			sms.At(j).Metrics().RemoveIf(func(m pmetric.Metric) bool {
				points, temporality, ok := shapeOf(m)
				switch {
				case !ok:
					r.points += points
					r.other = appendName(r.other, m.Name())
					return true
				case temporality == pmetric.AggregationTemporalityDelta:
					r.points += points
					r.delta = appendName(r.delta, m.Name())
					return true
				case temporality == pmetric.AggregationTemporalityUnspecified && m.Type() != pmetric.MetricTypeGauge && m.Type() != pmetric.MetricTypeSummary:
					r.points += points
					r.other = appendName(r.other, m.Name())
					return true
				}
				return false
			})
		}
	}
	return r
}

// shapeOf is the data points and temporality of m; ok is false for a metric without a type.
func shapeOf(m pmetric.Metric) (points int, temporality pmetric.AggregationTemporality, ok bool) {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len(), pmetric.AggregationTemporalityUnspecified, true
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len(), m.Sum().AggregationTemporality(), true
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len(), m.Histogram().AggregationTemporality(), true
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len(), m.ExponentialHistogram().AggregationTemporality(), true
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len(), pmetric.AggregationTemporalityUnspecified, true
	}
	return 0, pmetric.AggregationTemporalityUnspecified, false
}

func appendName(names []string, name string) []string {
	if len(names) < maxExamples {
		names = append(names, fmt.Sprintf("%.128q", name))
	}
	return names
}

// message is the refusal for the answer, "" when nothing was removed.
func (r otlpRefusal) message() string {
	var parts []string
	if len(r.delta) > 0 {
		parts = append(parts, "delta temporality refused (metrics "+strings.Join(r.delta, ", ")+"): "+deltaAdvice)
	}
	if len(r.other) > 0 {
		parts = append(parts, "metrics without a type or aggregation temporality refused ("+strings.Join(r.other, ", ")+")")
	}
	return strings.Join(parts, "; ")
}
