package receive

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/prompb"
	prw "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-metrics/weir/limits"
	"github.com/weir-metrics/weir/write"
)

// OTLP paths: Prometheus' and Mimir's, and Thanos Receive's.
const (
	OTLPPath       = "/api/v1/otlp/v1/metrics"
	OTLPThanosPath = "/api/v1/otlp"
)

// OTLPConfig is how OTLP metrics become Prometheus series; Prometheus' translator does the work
// (storage/remote/otlptranslator/prometheusremotewrite), so names and labels are those Prometheus 3
// and Thanos Receive give the same metrics.
type OTLPConfig struct {
	// PromoteResourceAttributes are the resource attributes copied into labels of every series of
	// the resource (Thanos' --receive.otlp-promote-resource-attributes). service.name and
	// service.namespace always become job, service.instance.id instance.
	PromoteResourceAttributes []string
	// EnableTargetInfo writes a target_info series per resource with its other attributes.
	EnableTargetInfo bool
	// TranslationStrategy is an otlptranslator.TranslationStrategyOption: whether names keep UTF-8
	// or are escaped to [a-zA-Z0-9_:], and whether unit and type suffixes are added.
	TranslationStrategy string
	// ConvertHistogramsToNHCB stores explicit-bucket histograms as native histograms with custom
	// buckets (one series) instead of classic _bucket/_sum/_count series.
	ConvertHistogramsToNHCB bool
}

// Validate reports the first configuration error, naming its flag.
func (c OTLPConfig) Validate() error {
	switch otlptranslator.TranslationStrategyOption(c.TranslationStrategy) {
	case otlptranslator.UnderscoreEscapingWithSuffixes, otlptranslator.UnderscoreEscapingWithoutSuffixes,
		otlptranslator.NoUTF8EscapingWithSuffixes, otlptranslator.NoTranslation:
	default:
		return fmt.Errorf("--receive.otlp-translation-strategy: unknown strategy %q", c.TranslationStrategy)
	}
	for _, a := range c.PromoteResourceAttributes {
		if strings.TrimSpace(a) == "" {
			return errors.New("--receive.otlp-promote-resource-attributes: empty attribute name")
		}
	}
	return nil
}

// otlpLookbackDelta spaces the target_info samples of a resource whose points span a long time, as
// the query engine's default lookback (Prometheus passes its own).
const otlpLookbackDelta = 5 * time.Minute

func (c OTLPConfig) settings() prw.Settings {
	strategy := otlptranslator.TranslationStrategyOption(c.TranslationStrategy)
	return prw.Settings{
		AddMetricSuffixes:         strategy.ShouldAddSuffixes(),
		AllowUTF8:                 !strategy.ShouldEscape(),
		PromoteResourceAttributes: prw.NewPromoteResourceAttributes(config.OTLPConfig{PromoteResourceAttributes: c.PromoteResourceAttributes}),
		DisableTargetInfo:         !c.EnableTargetInfo,
		ConvertHistogramsToNHCB:   c.ConvertHistogramsToNHCB,
		LookbackDelta:             otlpLookbackDelta,
	}
}

// OTLPHandler serves OTLP/HTTP metrics (POST /api/v1/otlp/v1/metrics, /api/v1/otlp). It translates a
// request once into the series of a Batch — with the fast path (otlp_fast.go) when it takes the
// request, else with Prometheus' translator, to the same series — and from there does what the
// remote-write Handler it shares does: the same tenant, limits, validation and storage (the ring,
// through a Router). Answers follow the OTLP/HTTP specification (see doc.go).
type OTLPHandler struct {
	h        *Handler
	settings prw.Settings
	convs    sync.Pool // *prw.PrometheusConverter
	// fast is the fast path's configuration, nil when the configuration needs the translator.
	fast    *otlpFastConfig
	metrics *otlpMetrics
}

type otlpMetrics struct {
	warnings *prometheus.CounterVec
	refused  *prometheus.CounterVec
	fast     *prometheus.CounterVec
}

// NewOTLPHandler returns the OTLP handler writing through h (its storage, limiter, tenant limits,
// readiness and metrics).
func NewOTLPHandler(h *Handler, cfg OTLPConfig, reg prometheus.Registerer) (*OTLPHandler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	return &OTLPHandler{
		h:        h,
		settings: cfg.settings(),
		fast:     newOTLPFastConfig(cfg),
		convs:    sync.Pool{New: func() any { return prw.NewPrometheusConverter(nil) }},
		metrics: &otlpMetrics{
			warnings: f.NewCounterVec(prometheus.CounterOpts{
				Name: "weir_receive_otlp_translation_warnings_total",
				Help: "Warnings of the OTLP translator (points kept, e.g. a histogram bound of +Inf), by category.",
			}, []string{"category"}),
			refused: f.NewCounterVec(prometheus.CounterOpts{
				Name: "weir_receive_otlp_refused_points_total",
				Help: "OTLP data points refused before translation (delta temporality, no type), by tenant and reason.",
			}, []string{"tenant", "reason"}),
			fast: f.NewCounterVec(prometheus.CounterOpts{
				Name: "weir_receive_otlp_fast_path_requests_total",
				Help: "Protobuf OTLP requests the fast decoder translated (taken) or left to Prometheus' translator (declined).",
			}, []string{"result"}),
		},
	}, nil
}

// ServeHTTP reads, translates and writes one OTLP request; the body is read before a write slot is
// taken (a slow upload holds no slot), as in remote write.
func (o *OTLPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format, ferr := otlpContentType(r.Header)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		o.answerError(w, format, http.StatusMethodNotAllowed, errorf(ClassInvalid, "OTLP/HTTP needs POST"))
		return
	}
	ctx, span := tracer.Start(otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header)), "receive otlp", trace.WithSpanKind(trace.SpanKindServer))
	var err error
	defer func() { endSpan(span, err) }()
	if err = ferr; err != nil {
		o.refuse(w, format, refusedUnsupported, err)
		return
	}
	h := o.h
	if !h.ready() {
		err = errorf(ClassUnavailable, "not ready: replaying write-ahead logs")
		o.refuse(w, format, refusedNotReady, err)
		return
	}
	tenantID, err := h.tenantOf(r)
	if err != nil {
		o.refuse(w, format, tenantRefusal(err), err)
		return
	}
	tl := h.limits().For(tenantID)
	dl, tenantSize := tenantDecode(h.cfg.Decode, tl)
	body, err := readOTLPBody(r, dl)
	if err != nil {
		if tenantSize {
			err = h.sizeRefusal(tenantID, tl, err)
		}
		o.refuse(w, format, decodeRefusal(err), err)
		return
	}
	defer body.Release()
	slot, err := h.limiter.Acquire(ctx)
	if err != nil {
		o.refuse(w, format, refusedOverloaded, err)
		return
	}
	defer slot.Release()
	ctx = withSlot(ctx, slot)

	app := getOTLPAppender()
	defer func() { app.release() }()
	var pre otlpRefusal // what was refused before translation
	var translateErr string
	if o.tryFast(ctx, body.data, format, app) {
		o.metrics.fast.WithLabelValues("taken").Inc()
	} else {
		if o.fast != nil && format == otlpFormatProtobuf {
			o.metrics.fast.WithLabelValues("declined").Inc()
		}
		app.release() // the fast path may have appended part of the request
		app = getOTLPAppender()
		var reason string
		if pre, translateErr, reason, err = o.slowPath(ctx, body.data, format, tenantID, app); err != nil {
			o.refuse(w, format, reason, err)
			return
		}
	}
	series, extras := app.series()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("tenant", tenantID), attribute.Int("series", len(series)))
	}
	var res otlpResult
	res, err = o.write(ctx, tenantID, tl, series, extras)
	if err != nil {
		o.refuse(w, format, res.refusal, err)
		return
	}
	res.points += pre.points
	res.messages = append([]string{pre.message(), translateErr}, res.messages...)
	o.answerOK(w, format, res)
}

// tryFast translates a protobuf body with the fast path (otlp_fast.go) when the configuration allows,
// reporting false when it declined (or did not run): app may then hold part of the request.
func (o *OTLPHandler) tryFast(ctx context.Context, body []byte, format otlpFormat, app *otlpAppender) bool {
	if o.fast == nil || format != otlpFormatProtobuf {
		return false
	}
	_, span := tracer.Start(ctx, "decode fast")
	ok := otlpFastTranslate(ctx, o.fast, body, app)
	span.SetAttributes(attribute.Bool("taken", ok))
	span.End()
	return ok
}

// slowPath decodes the body with pdata, drops what cannot be translated (counted in pre) and
// translates the rest into app with Prometheus' translator. A non-nil err refuses the request with
// reason.
func (o *OTLPHandler) slowPath(ctx context.Context, body []byte, format otlpFormat, tenantID string, app *otlpAppender) (pre otlpRefusal, translateErr, reason string, err error) {
	_, dspan := tracer.Start(ctx, "decode")
	md, err := otlpUnmarshal(body, format)
	endSpan(dspan, err)
	if err != nil {
		return pre, "", refusedDecode, err
	}
	pre = dropUntranslatable(md)
	if pre.points > 0 {
		reason := "delta_temporality"
		if len(pre.delta) == 0 {
			reason = "untyped"
		}
		o.metrics.refused.WithLabelValues(tenantID, reason).Add(float64(pre.points))
	}
	if translateErr, err = o.translate(ctx, md, app); err != nil {
		return pre, "", refusedOverloaded, err
	}
	return pre, translateErr, "", nil
}

// translate appends md to app with Prometheus' translator. The translator's errors are per metric
// (it goes on with the others): they come back as text for the answer. err is set only when ctx
// ended the translation.
func (o *OTLPHandler) translate(ctx context.Context, md pmetric.Metrics, app *otlpAppender) (translateErr string, err error) {
	conv := o.convs.Get().(*prw.PrometheusConverter)
	conv.Reset(app)
	defer func() {
		conv.Reset(nil)
		o.convs.Put(conv)
	}()
	_, tspan := tracer.Start(ctx, "translate")
	annots, terr := conv.FromMetrics(ctx, md, o.settings)
	endSpan(tspan, terr)
	if len(annots) > 0 {
		for category, n := range prw.CountWarningsByCategory(annots) {
			o.metrics.warnings.WithLabelValues(string(category)).Add(float64(n))
		}
	}
	if terr == nil {
		return "", nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return "", &Error{Class: ClassUnavailable, Err: fmt.Errorf("translating OTLP metrics: %w", cerr)}
	}
	msg := terr.Error()
	const maxLen = 1024
	if len(msg) > maxLen {
		msg = strings.ToValidUTF8(msg[:maxLen], "") + "…"
	}
	return "some metrics could not be translated: " + msg, nil
}

// otlpResult is what a write of translated series did, for the answer: points rejected for good
// (partial success), with messages; or, with an error, the refusal reason for the metrics.
type otlpResult struct {
	points   int
	messages []string
	refusal  string
}

// write checks, validates and stores the translated series as the remote-write handler does, keeping
// extras in step with series. A nil error with rejected points is a partial success.
func (o *OTLPHandler) write(ctx context.Context, tenantID string, tl *limits.Limits, series []prompb.TimeSeries, extras []write.SeriesExtra) (otlpResult, error) {
	h := o.h
	shape := h.cfg.Limits
	if tl != limits.None() {
		if tl.RequestSeries > 0 || tl.RequestSamples > 0 || tl.IngestionRate > 0 {
			if err := h.checkTenantLimits(tenantID, tl, series, pointCount(series)); err != nil {
				return otlpResult{refusal: limitRefusal(err)}, err
			}
		}
		shape = tenantShape(shape, tl)
	}
	// Validation keeps extras in step with the series: removed with theirs, start timestamps with
	// their points.
	req := prompb.WriteRequest{Timeseries: series}
	kept, v, err := shape.validateFrames(&req, nil, &extras, false, h.now()) // labels not known to be ASCII
	if err != nil {
		return otlpResult{refusal: refusedLimits}, err
	}
	var shares []tenantShare
	if h.cfg.SplitTenantLabel != "" {
		if shares, err = splitTenants(kept, h.cfg.SplitTenantLabel, tenantID, h.auth != nil); err != nil {
			return otlpResult{refusal: tenantRefusal(err)}, err
		}
	}
	var stats write.Stats
	switch {
	case shares != nil:
		var failed string
		if stats, failed, err = h.writeShares(ctx, shares, extras, kept); err != nil {
			err = fmt.Errorf("tenant %s: %w", failed, err)
		}
	case len(kept) > 0: // nothing valid: do not open (or create) the tenant's storage for it
		if stats, err = h.storage.Write(ctx, Batch{Tenant: tenantID, Series: kept, Extras: extras}); err == nil {
			for i := range stats.Rejected {
				if rj := &stats.Rejected[i]; i < maxExamples {
					rj.Err = fmt.Errorf("%s: %w", labelsString(kept[rj.Series].Labels), rj.Err)
				}
			}
		}
	}
	if err != nil {
		h.metrics.storageErrors.WithLabelValues(tenantID, className(ClassOf(err))).Inc()
		h.logger.Error("OTLP write failed", "tenant", tenantID, "series", len(kept), "err", err)
		return otlpResult{}, err
	}
	for i := range stats.Rejected {
		stats.Rejected[i].Series = v.originalIndex(stats.Rejected[i].Series)
	}
	if v.relabelDropped > 0 {
		h.lm.relabelDropped.WithLabelValues(tenantID).Add(float64(v.relabelDropped))
	}
	if shares != nil {
		h.record(tenantID, write.Stats{}, v.rejected) // the shares' own were recorded by tenant
	} else {
		h.record(tenantID, stats, v.rejected)
	}
	var res otlpResult
	if perr := partialError(stats, v.rejected); perr != nil {
		res.messages = append(res.messages, perr.Error())
		for _, list := range [][]write.Rejection{v.rejected, stats.Rejected} {
			for _, rj := range list {
				if rj.Kind != write.KindExemplar {
					res.points += rj.Count
				}
			}
		}
	}
	return res, nil
}
