package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-metrics/weir/store/storepb"
	"github.com/weir-metrics/weir/tenant"
)

// ComponentType is what Info announces: Thanos Query shows and treats Weir as a Thanos Receive.
const ComponentType = "receive"

// Tenants gives the open tenant TSDBs to read; *tenant.Manager implements it.
type Tenants interface {
	Readers() []tenant.Reader
	// Metadata is the metric metadata the tenants' writes carried (tenant.Manager.Metadata).
	Metadata(id, metric string, limit int) map[string][]metadata.Metadata
}

// Config bounds what one request may read. Zero values mean no limit.
type Config struct {
	// MaxSeries is the most series one Series request may select (over all tenants).
	MaxSeries int64
	// MaxSamples is the most samples one Series request may read (counted per chunk sent).
	MaxSamples int64
}

// Server serves the Thanos StoreAPI (thanos.Store) and Info (thanos.info.Info) over the tenant TSDBs of
// this node: head and local blocks. Every tenant is a label set of its own, its external labels
// (Manager.ExternalLabels), appended to each of its series as Thanos Receive does.
type Server struct {
	cfg     Config
	tenants Tenants
	ready   func() bool
	metrics *metrics
}

// New returns a Server over tenants. ready (nil: always) gates Info: until the node is ready (WALs
// replayed), Info fails, so Thanos Query does not take a store that would answer with partial data.
func New(cfg Config, tenants Tenants, ready func() bool, reg prometheus.Registerer) (*Server, error) {
	if cfg.MaxSeries < 0 || cfg.MaxSamples < 0 {
		return nil, fmt.Errorf("store limits must not be negative (series %d, samples %d)", cfg.MaxSeries, cfg.MaxSamples)
	}
	if ready == nil {
		ready = func() bool { return true }
	}
	return &Server{cfg: cfg, tenants: tenants, ready: ready, metrics: newMetrics(reg)}, nil
}

// Register adds the Store and Info services to s.
func (s *Server) Register(g *grpc.Server) {
	storepb.RegisterStoreServer(g, storeService{s: s})
	storepb.RegisterInfoServer(g, infoService{s: s})
	storepb.RegisterMetadataServer(g, metadataService{s: s})
}

type storeService struct {
	storepb.UnimplementedStoreServer
	s *Server
}

func (x storeService) Series(r *storepb.SeriesRequest, srv grpc.ServerStreamingServer[storepb.SeriesResponse]) error {
	return x.s.Series(r, srv)
}

func (x storeService) LabelNames(ctx context.Context, r *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	return x.s.LabelNames(ctx, r)
}

func (x storeService) LabelValues(ctx context.Context, r *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	return x.s.LabelValues(ctx, r)
}

type infoService struct {
	storepb.UnimplementedInfoServer
	s *Server
}

func (x infoService) Info(ctx context.Context, r *storepb.InfoRequest) (*storepb.InfoResponse, error) {
	return x.s.Info(ctx, r)
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	series   prometheus.Counter
	chunks   prometheus.Counter
	samples  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_store_requests_total",
			Help: "StoreAPI requests (Thanos Query reading this node) by method and result: success, canceled, invalid, limit, unavailable or error.",
		}, []string{"method", "result"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weir_store_request_duration_seconds",
			Help:    "Time to answer a StoreAPI request, the whole stream for Series.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"method"}),
		series: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_store_series_sent_total",
			Help: "Series sent in StoreAPI Series responses.",
		}),
		chunks: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_store_chunks_sent_total",
			Help: "Chunks sent in StoreAPI Series responses.",
		}),
		samples: f.NewCounter(prometheus.CounterOpts{
			Name: "weir_store_samples_sent_total",
			Help: "Samples in the chunks sent in StoreAPI Series responses.",
		}),
	}
	for _, method := range []string{"Info", "Series", "LabelNames", "LabelValues", "MetricMetadata"} {
		for _, result := range []string{"success", "canceled", "invalid", "limit", "unavailable", "error"} {
			m.requests.WithLabelValues(method, result)
		}
	}
	return m
}

// observe records a request's result and duration; err is the gRPC error returned.
func (m *metrics) observe(method string, start time.Time, err error) {
	result := "success"
	switch status.Code(err) {
	case codes.OK:
	case codes.Canceled, codes.DeadlineExceeded:
		result = "canceled"
	case codes.InvalidArgument:
		result = "invalid"
	case codes.ResourceExhausted:
		result = "limit"
	case codes.Unavailable:
		result = "unavailable"
	default:
		result = "error"
	}
	m.requests.WithLabelValues(method, result).Inc()
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

// Info announces the store: its time range and one label set per open tenant.
func (s *Server) Info(_ context.Context, _ *storepb.InfoRequest) (resp *storepb.InfoResponse, err error) {
	defer func(start time.Time) { s.metrics.observe("Info", start, err) }(time.Now())
	if !s.ready() {
		return nil, status.Error(codes.Unavailable, "weir is not ready: tenant WALs are being replayed")
	}
	readers := s.tenants.Readers()
	defer releaseAll(readers)

	resp = &storepb.InfoResponse{ComponentType: ComponentType, LabelSets: []*storepb.ZLabelSet{}}
	info := &storepb.StoreInfo{
		MinTime:                      math.MinInt64,
		MaxTime:                      math.MaxInt64,
		SupportsWithoutReplicaLabels: true,
		TsdbInfos:                    []*storepb.TSDBInfo{},
	}
	if len(readers) > 0 {
		info.MinTime = math.MaxInt64
	}
	for _, r := range readers {
		// As Thanos Receive: from the oldest sample (an empty TSDB: MaxInt64) to forever.
		mint, err := r.DB.StartTime()
		if err != nil {
			mint = math.MinInt64
		}
		info.MinTime = min(info.MinTime, mint)
		resp.LabelSets = append(resp.LabelSets, &storepb.ZLabelSet{Labels: toPB(r.ExternalLabels)})
		info.TsdbInfos = append(info.TsdbInfos, &storepb.TSDBInfo{
			Labels:  &storepb.ZLabelSet{Labels: toPB(r.ExternalLabels)},
			MinTime: mint,
			MaxTime: math.MaxInt64,
		})
	}
	resp.Store = info
	resp.MetricMetadata = &storepb.MetricMetadataInfo{}
	return resp, nil
}

// LabelNames returns the label names of the series matching the request in every matching tenant,
// external labels included (but for without_replica_labels), sorted.
func (s *Server) LabelNames(ctx context.Context, r *storepb.LabelNamesRequest) (resp *storepb.LabelNamesResponse, err error) {
	defer func(start time.Time) { s.metrics.observe("LabelNames", start, err) }(time.Now())
	ms, err := toMatchers(r.Matchers)
	if err != nil {
		return nil, err
	}
	readers := s.tenants.Readers()
	defer releaseAll(readers)

	var names []string
	for _, rd := range readers {
		ok, tms := splitMatchers(ms, rd.ExternalLabels)
		if !ok {
			continue
		}
		got, err := tenantLabelNames(ctx, rd, r.Start, r.End, int(r.Limit), tms)
		if err != nil {
			return nil, queryError(ctx, rd.ID, err)
		}
		if len(got) == 0 {
			continue
		}
		names = append(names, got...)
		rd.ExternalLabels.Range(func(l labels.Label) {
			if !slices.Contains(r.WithoutReplicaLabels, l.Name) {
				names = append(names, l.Name)
			}
		})
	}
	return &storepb.LabelNamesResponse{Names: sortedUnique(names, r.Limit)}, nil
}

func tenantLabelNames(ctx context.Context, rd tenant.Reader, mint, maxt int64, limit int, ms []*labels.Matcher) ([]string, error) {
	q, err := rd.DB.ChunkQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	defer func() { _ = q.Close() }()
	names, _, err := q.LabelNames(ctx, &storage.LabelHints{Limit: limit}, ms...)
	// Copied: the strings may point into a block that compaction deletes once the querier is closed.
	return cloneStrings(names), err
}

// LabelValues returns the values of a label over the series matching the request in every matching
// tenant; for an external label, the tenants' values of it.
func (s *Server) LabelValues(ctx context.Context, r *storepb.LabelValuesRequest) (resp *storepb.LabelValuesResponse, err error) {
	defer func(start time.Time) { s.metrics.observe("LabelValues", start, err) }(time.Now())
	if r.Label == "" {
		return nil, status.Error(codes.InvalidArgument, "label name parameter cannot be empty")
	}
	ms, err := toMatchers(r.Matchers)
	if err != nil {
		return nil, err
	}
	if slices.Contains(r.WithoutReplicaLabels, r.Label) {
		return &storepb.LabelValuesResponse{}, nil
	}
	readers := s.tenants.Readers()
	defer releaseAll(readers)

	var values []string
	for _, rd := range readers {
		ok, tms := splitMatchers(ms, rd.ExternalLabels)
		if !ok {
			continue
		}
		got, err := tenantLabelValues(ctx, rd, r, tms)
		if err != nil {
			return nil, queryError(ctx, rd.ID, err)
		}
		values = append(values, got...)
	}
	return &storepb.LabelValuesResponse{Values: sortedUnique(values, r.Limit)}, nil
}

func tenantLabelValues(ctx context.Context, rd tenant.Reader, r *storepb.LabelValuesRequest, ms []*labels.Matcher) ([]string, error) {
	q, err := rd.DB.ChunkQuerier(r.Start, r.End)
	if err != nil {
		return nil, err
	}
	defer func() { _ = q.Close() }()
	if v := rd.ExternalLabels.Get(r.Label); v != "" {
		// An external label has one value per tenant: the tenant's, if it has any matching series.
		if len(ms) == 0 {
			return []string{v}, nil
		}
		set := q.Select(ctx, false, &storage.SelectHints{Start: r.Start, End: r.End, Func: "series", Limit: 1}, ms...)
		if set.Next() {
			return []string{v}, nil
		}
		return nil, set.Err()
	}
	vals, _, err := q.LabelValues(ctx, r.Label, &storage.LabelHints{Limit: int(r.Limit)}, ms...)
	return cloneStrings(vals), err
}

// toMatchers converts the request's matchers; a bad one (an invalid regexp) is the client's mistake.
func toMatchers(in []*storepb.LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(in))
	for _, m := range in {
		var t labels.MatchType
		switch m.GetType() {
		case storepb.LabelMatcher_EQ:
			t = labels.MatchEqual
		case storepb.LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case storepb.LabelMatcher_RE:
			t = labels.MatchRegexp
		case storepb.LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, status.Errorf(codes.InvalidArgument, "unknown matcher type %d", m.GetType())
		}
		pm, err := labels.NewMatcher(t, m.GetName(), m.GetValue())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "matcher %s: %v", m.GetName(), err)
		}
		out = append(out, pm)
	}
	return out, nil
}

// splitMatchers applies the matchers on a tenant's external labels, as Thanos does: a matcher on an
// external label decides whether the tenant is read at all (a matcher on tenant_id selects tenants)
// and is then dropped; the others go to the TSDB.
func splitMatchers(ms []*labels.Matcher, ext labels.Labels) (bool, []*labels.Matcher) {
	out := make([]*labels.Matcher, 0, len(ms))
	for _, m := range ms {
		if v := ext.Get(m.Name); v != "" {
			if !m.Matches(v) {
				return false, nil
			}
			continue
		}
		out = append(out, m)
	}
	return true, out
}

// queryError maps a read failure to a gRPC error: a cancelled request stays cancelled.
func queryError(ctx context.Context, tenantID string, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	return status.Errorf(codes.Internal, "reading tenant %s: %v", tenantID, err)
}

func releaseAll(rs []tenant.Reader) {
	for _, r := range rs {
		r.Release()
	}
}

func toPB(ls labels.Labels) []*storepb.Label {
	out := make([]*storepb.Label, 0, ls.Len())
	ls.Range(func(l labels.Label) { out = append(out, &storepb.Label{Name: l.Name, Value: l.Value}) })
	return out
}

func cloneStrings(s []string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = strings.Clone(s[i])
	}
	return out
}

func sortedUnique(s []string, limit int64) []string {
	slices.Sort(s)
	s = slices.Compact(s)
	if limit > 0 && int64(len(s)) > limit {
		s = s[:limit]
	}
	return s
}
