package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-metrics/weir/limits"
	"github.com/weir-metrics/weir/tenant"
	"github.com/weir-metrics/weir/write"
)

// Batch is one tenant's validated series on their way to storage.
type Batch struct {
	Tenant string
	Series []prompb.TimeSeries
	// Extras is nil (Remote Write 1.0), or per series of Series what Remote Write 2.0 and OTLP carry
	// beyond 1.0: metadata and start timestamps (write.SeriesExtra).
	Extras []write.SeriesExtra
	// Hashes is nil, or the hashring.SeriesHash of each series (a router computed them to place the
	// series; the tenant storage's series-reference cache keys on them).
	Hashes []uint64
	// Frames is the original encoding of the series when they came in a request; a Router forwards
	// those bytes instead of marshalling the series again (frames.go). Storage ignores it.
	Frames SeriesFrames
}

// Storage is where the handler writes a batch: a Router in front of a ring, or this node's tenant
// storage (Local). A nil error means every point not listed in the stats is in the WAL (of a write
// quorum, through a Router); with an error, Appended counts the points that were written anyway (a
// quorum of replicas for some series), for the answer's *-Written headers. Write reads b only until
// it returns.
type Storage interface {
	Write(ctx context.Context, b Batch) (write.Stats, error)
}

// TenantStorage is this node's tenant TSDBs (tenant.Manager), as the ingest service, a Router's local
// share and Local write to them; hashes as in Batch.
type TenantStorage interface {
	Write(ctx context.Context, tenantID string, series []prompb.TimeSeries, extras []write.SeriesExtra, hashes []uint64) (write.Stats, error)
}

// Local is the Storage of a node that stores every write it gets itself.
func Local(ts TenantStorage) Storage { return localStorage{ts} }

type localStorage struct{ ts TenantStorage }

func (l localStorage) Write(ctx context.Context, b Batch) (write.Stats, error) {
	return l.ts.Write(ctx, b.Tenant, b.Series, b.Extras, b.Hashes)
}

// HandlerConfig configures the remote-write endpoint.
type HandlerConfig struct {
	TenantHeader  string
	DefaultTenant string
	// SplitTenantLabel, when set, splits each request by tenant: a series with this label belongs to
	// the tenant it names, stored without it (split.go).
	SplitTenantLabel string
	Decode           DecodeLimits
	Limits           Limits
}

// Validate reports the first configuration error, naming its flag.
func (c HandlerConfig) Validate() error {
	if c.TenantHeader == "" {
		return errors.New("--receive.tenant-header is empty")
	}
	if err := tenant.ValidateID(c.DefaultTenant); err != nil {
		return fmt.Errorf("--receive.default-tenant-id: %w", err)
	}
	if c.SplitTenantLabel != "" && !model.LegacyValidation.IsValidLabelName(c.SplitTenantLabel) {
		return fmt.Errorf("--receive.split-tenant-label-name: %q is not a valid label name", c.SplitTenantLabel)
	}
	if c.Decode.MaxBodyBytes <= 0 {
		return fmt.Errorf("--remote-write.max-body-size: %d must be positive", c.Decode.MaxBodyBytes)
	}
	if c.Decode.MaxDecodedBytes <= 0 {
		return fmt.Errorf("--remote-write.max-decoded-size: %d must be positive", c.Decode.MaxDecodedBytes)
	}
	if c.Limits.FutureWindow < 0 {
		return fmt.Errorf("--tsdb.too-far-in-future.time-window: %s is negative (0 disables the limit)", c.Limits.FutureWindow)
	}
	for _, l := range []struct {
		flag string
		v    int
	}{
		{"receive.limits.max-series-per-request", c.Limits.MaxSeriesPerRequest},
		{"receive.limits.max-labels-per-series", c.Limits.MaxLabelsPerSeries},
		{"receive.limits.max-label-name-length", c.Limits.MaxLabelNameLength},
		{"receive.limits.max-label-value-length", c.Limits.MaxLabelValueLength},
	} {
		if l.v < 0 {
			return fmt.Errorf("--%s: %d is negative (0 disables the limit)", l.flag, l.v)
		}
	}
	return nil
}

// Authenticator identifies the sender of a request (auth.Authenticator): Authenticate returns the one
// tenant it may write, or an error that ClassOf classifies (auth.ErrUnauthenticated, auth.ErrForbidden,
// or the request's context error).
type Authenticator interface {
	Authenticate(r *http.Request) (string, error)
}

// HandlerOption is an optional dependency of a Handler.
type HandlerOption func(*Handler)

// WithAuthenticator makes every request prove its tenant (see Handler.tenantOf). Without it, the
// tenant header decides.
func WithAuthenticator(a Authenticator) HandlerOption {
	return func(h *Handler) { h.auth = a }
}

// Handler serves Remote Write 1.0 (POST /api/v1/receive). See doc.go for the status codes it answers.
type Handler struct {
	cfg     HandlerConfig
	storage Storage
	limiter *Limiter      // bounds the requests decoded and written at once (nil: no bound)
	auth    Authenticator // nil: the tenant header decides
	ready   func() bool
	logger  *slog.Logger
	now     func() time.Time
	metrics *handlerMetrics
	// limits returns the tenant limits serving now (nil: none); rate enforces their ingestion rate
	// (tenantlimits.go, WithTenantLimits).
	limits func() *limits.Snapshot
	rate   *limits.RateLimiter
	lm     *limitMetrics
}

type handlerMetrics struct {
	appended      *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	storageErrors *prometheus.CounterVec
	failed        *prometheus.CounterVec
}

func newHandlerMetrics(reg prometheus.Registerer) *handlerMetrics {
	f := promauto.With(reg)
	return &handlerMetrics{
		appended: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_receive_appended_total",
			Help: "Points written to storage, by tenant and kind (sample, histogram, exemplar).",
		}, []string{"tenant", "kind"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_receive_rejected_total",
			Help: "Points refused for good (answered 400 as a partial write; exemplars never fail a request), by tenant, kind and reason.",
		}, []string{"tenant", "kind", "reason"}),
		storageErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_receive_storage_errors_total",
			Help: "Writes that failed in storage (WAL, append or commit errors; tenant TSDB unavailable), by tenant and class.",
		}, []string{"tenant", "class"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_receive_requests_refused_total",
			Help: "Requests refused before storage, by reason (decode, too_large, unsupported, invalid_tenant, unauthenticated, forbidden, limits, tenant_limit, rate_limited, not_ready, overloaded).",
		}, []string{"reason"}),
	}
}

// NewHandler returns the remote-write handler. lim bounds the requests decoded and written at once
// (nil: no bound); share it with the node's ingest server, as both compete for the same cores. ready
// gates writes (503 until it returns true). opts add optional dependencies (WithAuthenticator,
// WithTenantLimits).
func NewHandler(cfg HandlerConfig, storage Storage, lim *Limiter, ready func() bool, logger *slog.Logger, reg prometheus.Registerer, opts ...HandlerOption) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if storage == nil || ready == nil || logger == nil || reg == nil {
		return nil, errors.New("remote-write handler needs storage, a readiness check, a logger and a registerer")
	}
	h := &Handler{cfg: cfg, storage: storage, limiter: lim, ready: ready, logger: logger, now: time.Now, metrics: newHandlerMetrics(reg), lm: newLimitMetrics(reg)}
	for _, o := range opts {
		o(h)
	}
	if h.limits == nil {
		h.limits = func() *limits.Snapshot { return nil }
	}
	return h, nil
}

// tenantOf is the tenant r writes: the one its sender's identity may write when the Handler has an
// Authenticator (a tenant header naming another is refused, 403: a header never overrides an
// identity), else the tenant header's, or the default tenant without one.
func (h *Handler) tenantOf(r *http.Request) (string, error) {
	if h.auth == nil {
		return tenant.FromRequest(r, h.cfg.TenantHeader, h.cfg.DefaultTenant)
	}
	id, err := h.auth.Authenticate(r)
	if err != nil {
		return "", err
	}
	return tenant.FromRequestAs(r, h.cfg.TenantHeader, id)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "remote write needs POST", http.StatusMethodNotAllowed)
		return
	}
	// A sender's trace context, if it sent one, is the parent.
	ctx, span := tracer.Start(otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header)), "receive", trace.WithSpanKind(trace.SpanKindServer))
	var err error
	defer func() { endSpan(span, err) }()
	if !h.ready() {
		err = errorf(ClassUnavailable, "not ready: replaying write-ahead logs")
		h.refuse(w, refusedNotReady, err)
		return
	}
	tenantID, err := h.tenantOf(r)
	if err != nil {
		h.refuse(w, tenantRefusal(err), err)
		return
	}
	tl := h.limits().For(tenantID)
	dl, tenantSize := tenantDecode(h.cfg.Decode, tl)
	var slot *Slot
	_, dspan := tracer.Start(ctx, "decode")
	req, err := decode(r, dl, func() (err error) {
		slot, err = h.limiter.Acquire(ctx)
		return err
	})
	endSpan(dspan, err)
	// Also when decoding failed after the slot was taken (a body that is not a WriteRequest).
	defer slot.Release()
	if err != nil {
		if tenantSize {
			err = h.sizeRefusal(tenantID, tl, err)
		}
		h.refuse(w, decodeRefusal(err), err)
		return
	}
	defer req.Release()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("tenant", tenantID), attribute.Int("series", len(req.Write.Timeseries)))
	}
	ctx = withSlot(ctx, slot)

	shape := h.cfg.Limits
	if tl != limits.None() {
		if tl.RequestSeries > 0 || tl.RequestSamples > 0 || tl.IngestionRate > 0 {
			if err = h.checkTenantLimits(tenantID, tl, req.Write.Timeseries, pointCount(req.Write.Timeseries)); err != nil {
				h.refuse(w, limitRefusal(err), err)
				return
			}
		}
		shape = tenantShape(shape, tl)
	}
	series, v, err := shape.validateRequest(req, h.now())
	if err != nil {
		h.refuse(w, refusedLimits, err)
		return
	}
	if h.cfg.SplitTenantLabel != "" {
		var shares []tenantShare
		if shares, err = splitTenants(series, h.cfg.SplitTenantLabel, tenantID, h.auth != nil); err != nil {
			h.refuse(w, tenantRefusal(err), err)
			return
		}
		if shares != nil {
			err = h.writeSplit(ctx, w, tenantID, shares, v, series, req.Extras)
			return
		}
	}
	var stats write.Stats
	if len(series) > 0 { // nothing valid: do not open (or create) the tenant's storage for it
		stats, err = h.storage.Write(ctx, Batch{Tenant: tenantID, Series: series, Extras: req.Extras, Frames: req.Frames()})
	}
	if err != nil {
		h.metrics.storageErrors.WithLabelValues(tenantID, className(ClassOf(err))).Inc()
		h.logger.Error("write failed", "tenant", tenantID, "series", len(series), "err", err)
		h.answerWritten(w, stats.Appended, err)
		return
	}
	for i := range stats.Rejected {
		rj := &stats.Rejected[i]
		if i < maxExamples {
			rj.Err = fmt.Errorf("%s: %w", labelsString(series[rj.Series].Labels), rj.Err)
		}
		rj.Series = v.originalIndex(rj.Series)
	}
	if v.relabelDropped > 0 {
		h.lm.relabelDropped.WithLabelValues(tenantID).Add(float64(v.relabelDropped))
	}
	h.record(tenantID, stats, v.rejected)
	h.answerWritten(w, stats.Appended, partialError(stats, v.rejected))
}

func (h *Handler) refuse(w http.ResponseWriter, reason string, err error) {
	h.metrics.failed.WithLabelValues(reason).Inc()
	h.logger.Debug("request refused", "reason", reason, "err", err)
	h.answer(w, err)
}

// answer answers a request of which nothing was written.
func (h *Handler) answer(w http.ResponseWriter, err error) {
	h.answerWritten(w, [write.NumKinds]int{}, err)
}

// The headers of every answer that count what was written, as Remote Write 2.0 requires (a 2.0 sender
// takes a 2xx without them as nothing written); 1.0 senders ignore them.
const (
	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// answerWritten answers a request of which the points counted by written (by write.Kind) were written.
func (h *Handler) answerWritten(w http.ResponseWriter, written [write.NumKinds]int, err error) {
	wh := w.Header()
	wh.Set(headerSamplesWritten, strconv.Itoa(written[write.KindFloat]))
	wh.Set(headerHistogramsWritten, strconv.Itoa(written[write.KindHistogram]))
	wh.Set(headerExemplarsWritten, strconv.Itoa(written[write.KindExemplar]))
	code := StatusCode(err)
	if err == nil {
		w.WriteHeader(code)
		return
	}
	answerHeaders(w.Header(), err)
	http.Error(w, err.Error(), code)
}

func (h *Handler) record(tenantID string, stats write.Stats, validation []write.Rejection) {
	for k, n := range stats.Appended {
		if n > 0 {
			h.metrics.appended.WithLabelValues(tenantID, write.Kind(k).String()).Add(float64(n))
		}
	}
	for _, list := range [][]write.Rejection{validation, stats.Rejected} {
		for _, rj := range list {
			h.metrics.rejected.WithLabelValues(tenantID, rj.Kind.String(), rj.Reason).Add(float64(rj.Count))
		}
	}
}

// maxExamples bounds how many rejected series an answer names.
const maxExamples = 5

// partialError builds the 400 answer of a partial write, or nil when no sample or histogram was
// rejected. Rejected exemplars are counted but never fail a request: exemplars are best effort, as in
// Prometheus. The message says how much was written and rejected, by reason, and names the first few
// series (index in the request and labels) with the first error of each.
func partialError(stats write.Stats, validation []write.Rejection) error {
	var rejected int
	byReason := map[string]int{}
	var examples []write.Rejection
	for _, list := range [][]write.Rejection{validation, stats.Rejected} {
		for _, rj := range list {
			if rj.Kind == write.KindExemplar {
				continue
			}
			rejected += rj.Count
			byReason[rj.Reason] += rj.Count
			if len(examples) < maxExamples {
				examples = append(examples, rj)
			}
		}
	}
	if rejected == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "partial write: %d points rejected, %d written (", rejected, stats.Appended[write.KindFloat]+stats.Appended[write.KindHistogram])
	first := true
	for _, reason := range slices.Sorted(maps.Keys(byReason)) {
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(reason + ": " + strconv.Itoa(byReason[reason]))
	}
	b.WriteString(")")
	for _, ex := range examples {
		fmt.Fprintf(&b, "\nseries %d: %d %s(s) rejected (%s): %v", ex.Series, ex.Count, ex.Kind, ex.Reason, ex.Err)
	}
	return &Error{Class: ClassConflict, Err: fmt.Errorf("%s", b.String())}
}

// labelsString formats a label set for an error message, bounded so that hostile label sets cannot
// blow up an answer.
func labelsString(ls []prompb.Label) string {
	const maxLen = 256
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		if utf8.ValidString(l.Name) {
			b.WriteString(l.Name)
		} else {
			b.WriteString(strconv.Quote(l.Name))
		}
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
		if b.Len() > maxLen {
			return strings.ToValidUTF8(b.String()[:maxLen], "") + "…}"
		}
	}
	b.WriteByte('}')
	return b.String()
}
