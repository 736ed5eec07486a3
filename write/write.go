// Package write holds what both sides of a write share: what a write of series to storage did (Stats,
// Rejection, Kind and the permanent rejection reasons). It depends on nothing of Weir, so that the
// edge and the router (receive) and local storage (tenant) both import it and neither imports the
// other for it.
package write

import "github.com/prometheus/prometheus/model/metadata"

// Kind is the kind of data point a count refers to.
type Kind uint8

// The kinds of data points in a remote-write request.
const (
	KindFloat Kind = iota
	KindHistogram
	KindExemplar
	NumKinds
)

func (k Kind) String() string {
	switch k {
	case KindFloat:
		return "sample"
	case KindHistogram:
		return "histogram"
	case KindExemplar:
		return "exemplar"
	}
	return "unknown"
}

// Reasons a data point is rejected by storage. They are permanent: sending the same point again gives
// the same answer, so the sender must not retry (400, partial write).
const (
	ReasonOutOfOrder        = "out_of_order"
	ReasonDuplicate         = "duplicate_sample_for_timestamp"
	ReasonTooOld            = "too_old"
	ReasonInvalidHistogram  = "invalid_histogram"
	ReasonExemplarsDisabled = "exemplars_disabled"
	ReasonInvalidExemplar   = "invalid_exemplar"
	// A new series over its tenant's limits (package limits); the tenant's existing series are
	// written.
	ReasonHeadSeriesLimit      = "head_series_limit"
	ReasonSeriesPerMetricLimit = "series_per_metric_limit"
)

// Rejection records data points of one series that were not written, and why.
type Rejection struct {
	Series int    // index of the series in the written slice
	Kind   Kind   // what was rejected
	Reason string // one of the Reason constants (or a caller's own, for validation)
	Count  int    // how many points of this series and kind
	Err    error  // the first error, for the answer to the sender
}

// Stats tells what a write did: points appended by kind, and the rejected ones. Rejections are
// permanent per-point errors; the rest of the write was committed.
type Stats struct {
	Appended [NumKinds]int
	Rejected []Rejection
}

// SeriesExtra is what a series of a Remote Write 2.0 or OTLP write carries beyond what Remote Write
// 1.0 can: its metadata and the start (created) timestamps of its points. A write that has it holds
// one per series, in the series' order; a 1.0 write holds none (nil).
//
// Starts, when not nil, has one entry per point of the series: first its samples, then its
// histograms, in their order; 0 means unknown. Storage records a known start as Prometheus does, a
// zero point at the start (tsdb EnableSTAsZeroSample), which every block reader reads.
type SeriesExtra struct {
	Metadata metadata.Metadata
	Starts   []int64
}

// Start is the start timestamp of point j (samples first, then histograms) of the series, or 0.
func (e *SeriesExtra) Start(j int) int64 {
	if e == nil || j >= len(e.Starts) {
		return 0
	}
	return e.Starts[j]
}
