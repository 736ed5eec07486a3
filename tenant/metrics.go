package tenant

import (
	"math"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// tenantMetrics exposes the metrics of every open tenant's registry (its TSDB's, shipper's and limits')
// as one collector of the node. Each TSDB registers about a hundred metrics, ~200 series: exposed per
// tenant, as Thanos Receive does, a node of 2,000 tenants answered a scrape with 400,000 series (32 MB).
// So only the figures an operator watches per tenant keep a tenant label (perTenantMetric); every other
// metric is aggregated over the tenants, as Mimir's ingester does: counters, histograms and summaries
// summed (summaries without quantiles), gauges summed or, where a sum means nothing, their min or max
// (gaugeAggregations).
//
// Counters stay monotonic when a tenant closes (idle pruning): what its counters, histograms and
// summaries had counted is kept in retired and still added to the sums, so that a rate over the node's
// sum does not see a reset each time a tenant is pruned. Its gauges and per-tenant series go with it.
type tenantMetrics struct {
	mu      sync.Mutex
	regs    map[*tenantRegistry]string // open registries and their tenant
	retired map[string]*family         // by metric name
}

func newTenantMetrics() *tenantMetrics {
	return &tenantMetrics{regs: map[*tenantRegistry]string{}, retired: map[string]*family{}}
}

// add returns a new registry for an opening tenant, exposed until remove.
func (t *tenantMetrics) add(tenantID string) *tenantRegistry {
	r := newTenantRegistry()
	t.mu.Lock()
	t.regs[r] = tenantID
	t.mu.Unlock()
	return r
}

// remove stops exposing r, keeping what its counters counted in the node's sums.
func (t *tenantMetrics) remove(r *tenantRegistry) {
	mfs, _ := r.Gather() // what a failing collector could not give is lost either way
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.regs[r]; !ok {
		return
	}
	delete(t.regs, r)
	for _, mf := range mfs {
		name := mf.GetName()
		if perTenantMetric(name) || mf.GetType() == dto.MetricType_GAUGE || mf.GetType() == dto.MetricType_UNTYPED {
			continue
		}
		f := t.retired[name]
		if f == nil {
			f = newFamily(mf)
			t.retired[name] = f
		}
		f.add(mf)
	}
}

// perTenantMetric tells whether a metric keeps its tenant label: Weir's own per-tenant metrics (limits,
// shipping) and the TSDB figures that capacity planning and alerts need per tenant.
func perTenantMetric(name string) bool {
	switch name {
	case "prometheus_tsdb_head_series", "prometheus_tsdb_head_samples_appended_total",
		"prometheus_tsdb_wal_storage_size_bytes", "prometheus_tsdb_storage_blocks_bytes",
		"prometheus_tsdb_wal_writes_failed_total", "prometheus_tsdb_out_of_order_wbl_writes_failed_total":
		return true
	}
	return strings.HasPrefix(name, "weir_")
}

// gaugeAggregations are the TSDB gauges that a sum over tenants would misstate: times, configured
// limits and flags take the extreme that an operator looks for; the rest are dropped (a WAL segment
// number or an isolation watermark of one tenant says nothing about another's). Other gauges are summed.
var gaugeAggregations = map[string]aggregation{
	"prometheus_tsdb_head_max_time":                             aggMax,
	"prometheus_tsdb_head_max_time_seconds":                     aggMax,
	"prometheus_tsdb_head_min_time":                             aggMin,
	"prometheus_tsdb_head_min_time_seconds":                     aggMin,
	"prometheus_tsdb_lowest_timestamp":                          aggMin,
	"prometheus_tsdb_lowest_timestamp_seconds":                  aggMin,
	"prometheus_tsdb_exemplar_last_exemplars_timestamp_seconds": aggMax,
	"prometheus_tsdb_data_replay_duration_seconds":              aggMax,
	"prometheus_tsdb_clean_start":                               aggMin,
	"prometheus_tsdb_retention_limit_bytes":                     aggMax,
	"prometheus_tsdb_retention_limit_seconds":                   aggMax,
	"prometheus_tsdb_retention_limit_percentage":                aggMax,
	"prometheus_tsdb_exemplar_max_exemplars":                    aggMax,
	"prometheus_tsdb_wal_segment_current":                       aggDrop,
	"prometheus_tsdb_out_of_order_wbl_segment_current":          aggDrop,
	"prometheus_tsdb_isolation_high_watermark":                  aggDrop,
	"prometheus_tsdb_isolation_low_watermark":                   aggDrop,
}

type aggregation int

const (
	aggSum aggregation = iota
	aggMax
	aggMin
	aggDrop
)

// Describe sends nothing: the metrics depend on what the tenants registered, so the collector is
// unchecked.
func (t *tenantMetrics) Describe(chan<- *prometheus.Desc) {}

func (t *tenantMetrics) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	regs := make(map[*tenantRegistry]string, len(t.regs))
	for r, id := range t.regs {
		regs[r] = id
	}
	sums := make(map[string]*family, len(t.retired))
	for name, f := range t.retired {
		sums[name] = f.clone()
	}
	t.mu.Unlock()

	for r, id := range regs {
		mfs, _ := r.Gather() // Gather returns what it could along with an error; a scrape takes that
		for _, mf := range mfs {
			name := mf.GetName()
			if perTenantMetric(name) {
				for _, m := range mf.Metric {
					sendMetric(ch, mf, m, id)
				}
				continue
			}
			f := sums[name]
			if f == nil {
				f = newFamily(mf)
				sums[name] = f
			}
			f.add(mf)
		}
	}
	for _, f := range sums {
		f.send(ch)
	}
}

// family is the aggregate of one metric over tenants: one aggregated series per label set.
type family struct {
	name, help string
	typ        dto.MetricType
	agg        aggregation
	series     map[string]*aggSeries // by labelKey
}

type aggSeries struct {
	names, values []string
	value         float64 // counter, gauge, untyped
	count         uint64  // histogram, summary
	sum           float64
	buckets       map[float64]uint64  // histogram: upper bound → cumulative count
	quantiles     map[float64]float64 // a per-tenant summary's; aggregated summaries have none
}

func newFamily(mf *dto.MetricFamily) *family {
	f := &family{name: mf.GetName(), help: mf.GetHelp(), typ: mf.GetType(), series: map[string]*aggSeries{}}
	if f.typ == dto.MetricType_GAUGE || f.typ == dto.MetricType_UNTYPED {
		f.agg = gaugeAggregations[f.name]
	}
	return f
}

func (f *family) add(mf *dto.MetricFamily) {
	if f.agg == aggDrop || mf.GetType() != f.typ {
		return
	}
	for _, m := range mf.Metric {
		key := labelKey(m.Label)
		s := f.series[key]
		first := s == nil
		if first {
			s = newAggSeries(m.Label)
			f.series[key] = s
		}
		s.add(f.typ, f.agg, m, first)
	}
}

func newAggSeries(ls []*dto.LabelPair) *aggSeries {
	s := &aggSeries{names: make([]string, 0, len(ls)+1), values: make([]string, 0, len(ls)+1)}
	for _, l := range ls {
		s.names = append(s.names, l.GetName())
		s.values = append(s.values, l.GetValue())
	}
	return s
}

// add adds m, of type typ, to s as agg says; first tells that s holds nothing yet.
func (s *aggSeries) add(typ dto.MetricType, agg aggregation, m *dto.Metric, first bool) {
	switch typ {
	case dto.MetricType_COUNTER:
		s.value += m.GetCounter().GetValue()
	case dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
		v := m.GetGauge().GetValue()
		if typ == dto.MetricType_UNTYPED {
			v = m.GetUntyped().GetValue()
		}
		switch {
		case first:
			s.value = v
		case agg == aggMax:
			s.value = math.Max(s.value, v)
		case agg == aggMin:
			s.value = math.Min(s.value, v)
		default:
			s.value += v
		}
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		s.count += h.GetSampleCount()
		s.sum += h.GetSampleSum()
		if s.buckets == nil {
			s.buckets = map[float64]uint64{}
		}
		for _, b := range h.Bucket {
			s.buckets[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	case dto.MetricType_SUMMARY:
		s.count += m.GetSummary().GetSampleCount()
		s.sum += m.GetSummary().GetSampleSum()
	}
}

func (f *family) clone() *family {
	c := *f
	c.series = make(map[string]*aggSeries, len(f.series))
	for k, s := range f.series {
		cs := *s
		if s.buckets != nil {
			cs.buckets = make(map[float64]uint64, len(s.buckets))
			for b, n := range s.buckets {
				cs.buckets[b] = n
			}
		}
		c.series[k] = &cs
	}
	return &c
}

func (f *family) send(ch chan<- prometheus.Metric) {
	for _, s := range f.series {
		desc := prometheus.NewDesc(f.name, f.help, s.names, nil)
		var m prometheus.Metric
		var err error
		switch f.typ {
		case dto.MetricType_COUNTER:
			m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, s.value, s.values...)
		case dto.MetricType_GAUGE:
			m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.value, s.values...)
		case dto.MetricType_UNTYPED:
			m, err = prometheus.NewConstMetric(desc, prometheus.UntypedValue, s.value, s.values...)
		case dto.MetricType_HISTOGRAM:
			m, err = prometheus.NewConstHistogram(desc, s.count, s.sum, s.buckets, s.values...)
		case dto.MetricType_SUMMARY:
			m, err = prometheus.NewConstSummary(desc, s.count, s.sum, s.quantiles, s.values...)
		default:
			continue
		}
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
}

// sendMetric sends m of family mf as it is, with the tenant label added.
func sendMetric(ch chan<- prometheus.Metric, mf *dto.MetricFamily, m *dto.Metric, tenantID string) {
	s := newAggSeries(m.Label)
	s.names = append(s.names, "tenant")
	s.values = append(s.values, tenantID)
	s.add(mf.GetType(), aggSum, m, true)
	if q := m.GetSummary().GetQuantile(); len(q) > 0 { // a single tenant's quantiles are still true
		s.quantiles = make(map[float64]float64, len(q))
		for _, x := range q {
			s.quantiles[x.GetQuantile()] = x.GetValue()
		}
	}
	f := &family{name: mf.GetName(), help: mf.GetHelp(), typ: mf.GetType(), series: map[string]*aggSeries{"": s}}
	f.send(ch)
}

// labelKey identifies a label set; dto labels come sorted by name from Gather.
func labelKey(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, 2*len(ls))
	for _, l := range ls {
		parts = append(parts, l.GetName(), l.GetValue())
	}
	return strings.Join(parts, "\xff")
}
