package limits

import (
	"maps"
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/relabel"
)

// Limits are one tenant's effective limits, the file's default overlaid with the tenant's own entry.
// Zero means no limit. Values are whole-cluster figures as written in the file; IngesterShare and
// RouterRate turn them into one node's part. A *Limits is immutable once published.
type Limits struct {
	// Per request (routers, 413).
	RequestSizeBytes int64 `json:"request_size_bytes_limit"`
	RequestSeries    int64 `json:"request_series_limit"`
	RequestSamples   int64 `json:"request_samples_limit"`

	// Rate (routers, 429): samples and histogram samples per second for the whole cluster, and the
	// bucket depth of each router.
	IngestionRate  float64 `json:"ingestion_rate_limit"`
	IngestionBurst int64   `json:"ingestion_burst_size"`
	burstSet       bool

	// Series (ingesters, 400 partial write for new series only): active series in the tenant's head,
	// and per metric name, for the whole cluster (each replica counted once).
	HeadSeries      int64 `json:"head_series_limit"`
	SeriesPerMetric int64 `json:"series_per_metric_limit"`

	// Shape (routers, 400 partial write for the series or points concerned); these tighten the
	// node's --receive.limits.* flags, never loosen them.
	LabelsPerSeries        int64 `json:"labels_per_series_limit"`
	LabelNameLength        int64 `json:"label_name_length_limit"`
	LabelValueLength       int64 `json:"label_value_length_limit"`
	NativeHistogramBuckets int64 `json:"native_histogram_buckets_limit"`

	// Relabel rules applied by routers before the series are placed (model/relabel).
	Relabel []*relabel.Config `json:"relabel_configs,omitempty"`
}

// Names of the limits as the file spells them; answers, metrics and alerts use them too.
const (
	NameRequestSizeBytes       = "request.size_bytes_limit"
	NameRequestSeries          = "request.series_limit"
	NameRequestSamples         = "request.samples_limit"
	NameHeadSeries             = "head_series_limit"
	NameIngestionRate          = "ingestion_rate_limit"
	NameIngestionBurst         = "ingestion_burst_size"
	NameSeriesPerMetric        = "series_per_metric_limit"
	NameLabelsPerSeries        = "labels_per_series_limit"
	NameLabelNameLength        = "label_name_length_limit"
	NameLabelValueLength       = "label_value_length_limit"
	NameNativeHistogramBuckets = "native_histogram_buckets_limit"
)

// values are l's numeric limits by name.
func (l *Limits) values() map[string]float64 {
	return map[string]float64{
		NameRequestSizeBytes: float64(l.RequestSizeBytes), NameRequestSeries: float64(l.RequestSeries),
		NameRequestSamples: float64(l.RequestSamples), NameHeadSeries: float64(l.HeadSeries),
		NameIngestionRate: l.IngestionRate, NameIngestionBurst: float64(l.IngestionBurst),
		NameSeriesPerMetric: float64(l.SeriesPerMetric), NameLabelsPerSeries: float64(l.LabelsPerSeries),
		NameLabelNameLength: float64(l.LabelNameLength), NameLabelValueLength: float64(l.LabelValueLength),
		NameNativeHistogramBuckets: float64(l.NativeHistogramBuckets),
	}
}

// none is the Limits of a tenant when no limits are configured.
var none = &Limits{}

// None returns the Limits of a tenant when no limits file is configured (Snapshot.For of a nil
// Snapshot): callers may compare with it to skip all limit work.
func None() *Limits { return none }

// setBurst gives a rate without an explicit burst one second of the whole cluster's rate as bucket
// depth (at least one request's worth when a request samples limit is set), so that a router with a
// share of rate/N can still take a burst of N seconds.
func (l *Limits) setBurst() {
	if l.burstSet || l.IngestionRate <= 0 {
		return
	}
	l.IngestionBurst = max(int64(math.Ceil(l.IngestionRate)), l.RequestSamples, 1)
}

// RouterRate is one router's share of the tenant's ingestion rate when routers routers share the
// traffic evenly: IngestionRate / routers (at least one router). 0: no limit.
func (l *Limits) RouterRate(routers int) float64 {
	return l.IngestionRate / float64(max(routers, 1))
}

// IngesterShare is one ingester's part of a whole-cluster series limit: every series is stored on rf
// of the ingesters that serve the tenant, so each of them holds about limit × rf / ingesters of
// them. It is rounded up and never above limit (fewer ingesters than rf: each holds every series).
// 0 stays 0 (no limit); unknown ring figures (rf or ingesters < 1) give the whole limit.
func IngesterShare(limit int64, rf, ingesters int) int64 {
	if limit <= 0 || rf < 1 || ingesters < 1 || rf >= ingesters {
		return limit
	}
	return min(limit, (limit*int64(rf)+int64(ingesters)-1)/int64(ingesters))
}

// Snapshot is one loaded limits file. It is immutable; a reload publishes a new one.
type Snapshot struct {
	def     *Limits
	tenants map[string]*Limits

	// MaxConcurrency is write.global.max_concurrency (0: not set).
	MaxConcurrency int64
	// MetaMonitoring tells that the file sets Thanos' meta-monitoring fields, which Weir ignores.
	MetaMonitoring bool
	// Version is 1 for the first file loaded, +1 for every one loaded after it.
	Version uint64
	// LoadedAt is when it was loaded.
	LoadedAt time.Time
}

// For returns tenantID's limits: its own entry, else the default. A nil Snapshot limits nothing. It
// does not allocate.
func (s *Snapshot) For(tenantID string) *Limits {
	if s == nil {
		return none
	}
	if l, ok := s.tenants[tenantID]; ok {
		return l
	}
	return s.def
}

// Default returns the limits of tenants without an entry of their own.
func (s *Snapshot) Default() *Limits {
	if s == nil {
		return none
	}
	return s.def
}

// Tenants returns the tenants with an entry of their own, sorted.
func (s *Snapshot) Tenants() []string {
	if s == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(s.tenants))
}

// prependRelabel puts the global rules before every tenant's own, once per load, so that a request
// takes its tenant's full list without building it.
func (s *Snapshot) prependRelabel(global []*relabel.Config) {
	if len(global) == 0 {
		return
	}
	with := func(l *Limits) *Limits {
		c := *l
		c.Relabel = append(slices.Clip(global), l.Relabel...)
		return &c
	}
	s.def = with(s.def)
	for id, l := range s.tenants {
		s.tenants[id] = with(l)
	}
}
