package queryapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/weir-metrics/weir/tenant"
)

// Paths are the endpoints that API serves; mount it on each.
var Paths = []string{"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels", "/api/v1/metadata", "/api/v1/status/tsdb"}

// Defaults of Options.
const (
	DefaultTimeout    = 2 * time.Minute
	DefaultMaxSamples = 50_000_000
	// maxPoints is Prometheus' bound on the points per series of a range query.
	maxPoints = 11000
	// maxAnnotations bounds the warnings and infos returned with a result, as Prometheus does.
	maxAnnotations = 10
)

// Options configure an API. The zero value of each field is its default.
type Options struct {
	// TenantHeader names the tenant of a request (tenant.DefaultHeader when empty); a request without
	// it reads DefaultTenant (tenant.DefaultID when empty).
	TenantHeader  string
	DefaultTenant string
	// Timeout bounds a query's evaluation (DefaultTimeout when 0); a request's timeout parameter can
	// only shorten it.
	Timeout time.Duration
	// MaxSamples bounds the samples a query may hold in memory at once (DefaultMaxSamples when 0).
	MaxSamples int
	// Logger logs engine errors (discarded when nil).
	Logger *slog.Logger
	// Reg receives the engine's prometheus_engine_* metrics; nil registers none.
	Reg prometheus.Registerer
}

// API serves the query endpoints (Paths) over one Manager's local tenant TSDBs. It is an http.Handler;
// create it with New, once per registerer (the engine registers its metrics).
type API struct {
	manager *tenant.Manager
	opts    Options
	engine  *promql.Engine
	parser  parser.Parser
	mux     *http.ServeMux
}

// New returns an API reading m's tenants.
func New(m *tenant.Manager, opts Options) *API {
	if opts.TenantHeader == "" {
		opts.TenantHeader = tenant.DefaultHeader
	}
	if opts.DefaultTenant == "" {
		opts.DefaultTenant = tenant.DefaultID
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = DefaultMaxSamples
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := parser.NewParser(parser.Options{})
	a := &API{
		manager: m,
		opts:    opts,
		parser:  p,
		engine: promql.NewEngine(promql.EngineOpts{
			Logger:     opts.Logger,
			Reg:        opts.Reg,
			MaxSamples: opts.MaxSamples,
			Timeout:    opts.Timeout,
			// LookbackDelta 0: the engine's default (5m), as in Prometheus.
			// Subqueries without a step use Prometheus' default evaluation interval.
			NoStepSubqueryIntervalFn: func(int64) int64 { return int64(time.Minute / time.Millisecond) },
			EnableAtModifier:         true,
			EnableNegativeOffset:     true,
			Parser:                   p,
		}),
		mux: http.NewServeMux(),
	}
	a.mux.HandleFunc("/api/v1/query", a.query)
	a.mux.HandleFunc("/api/v1/query_range", a.queryRange)
	a.mux.HandleFunc("/api/v1/series", a.series)
	a.mux.HandleFunc("/api/v1/labels", a.labelNames)
	a.mux.HandleFunc("/api/v1/metadata", a.metadata)
	a.mux.HandleFunc("/api/v1/status/tsdb", a.tsdbStatusHandler)
	return a
}

// ServeHTTP serves Paths for GET and POST; other paths are 404, other methods 405.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeError(w, &apiError{typ: "bad_data", status: http.StatusMethodNotAllowed, err: fmt.Errorf("method %s not allowed", r.Method)})
		return
	}
	a.mux.ServeHTTP(w, r)
}

// apiError is a failed request: typ is Prometheus' errorType, status the HTTP status.
type apiError struct {
	typ    string
	status int
	err    error
}

func badData(err error) *apiError {
	return &apiError{typ: "bad_data", status: http.StatusBadRequest, err: err}
}

// statusClientClosedConnection is what Prometheus answers a cancelled query with (nginx's 499).
const statusClientClosedConnection = 499

// engineError classifies an evaluation error as Prometheus' API does.
func engineError(err error) *apiError {
	var (
		canceled promql.ErrQueryCanceled
		timeout  promql.ErrQueryTimeout
		stor     promql.ErrStorage
	)
	switch {
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		return &apiError{typ: "canceled", status: statusClientClosedConnection, err: err}
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return &apiError{typ: "timeout", status: http.StatusServiceUnavailable, err: err}
	case errors.As(err, &stor):
		return &apiError{typ: "internal", status: http.StatusInternalServerError, err: err}
	}
	return &apiError{typ: "execution", status: http.StatusUnprocessableEntity, err: err}
}

type response struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, resp response) {
	b, err := json.Marshal(resp)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(response{Status: "error", ErrorType: "internal", Error: "encoding the response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, response{Status: "error", ErrorType: e.typ, Error: e.err.Error()})
}

func writeData(w http.ResponseWriter, data any, annos annotations.Annotations, query string) {
	warnings, infos := annos.AsStrings(query, maxAnnotations, maxAnnotations)
	writeJSON(w, http.StatusOK, response{Status: "success", Data: data, Warnings: warnings, Infos: infos})
}

// reader parses the form and holds the request's tenant for reading: a tenant with no open TSDB here
// reads as empty. The caller calls release once done reading.
func (a *API) reader(r *http.Request) (q storage.Queryable, release func(), e *apiError) {
	if err := r.ParseForm(); err != nil {
		return nil, nil, badData(fmt.Errorf("parsing the form: %w", err))
	}
	id, err := tenant.FromRequest(r, a.opts.TenantHeader, a.opts.DefaultTenant)
	if err != nil {
		return nil, nil, badData(err)
	}
	rd, ok := a.manager.Reader(id)
	if !ok {
		return emptyQueryable{}, func() {}, nil
	}
	return rd.DB, rd.Release, nil
}

type emptyQueryable struct{}

func (emptyQueryable) Querier(int64, int64) (storage.Querier, error) {
	return storage.NoopQuerier(), nil
}

// requestContext applies the request's optional timeout parameter.
func requestContext(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	s := r.FormValue("timeout")
	if s == "" {
		ctx, cancel := context.WithCancel(r.Context())
		return ctx, cancel, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return nil, nil, badData(fmt.Errorf("invalid parameter \"timeout\": %w", err))
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, nil
}

// queryData is the data of a query result, as in Prometheus.
type queryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     parser.Value     `json:"result"`
}

// resultData returns v as Prometheus renders it: an empty vector or matrix is [], not null.
func resultData(v parser.Value) queryData {
	switch x := v.(type) {
	case promql.Vector:
		if x == nil {
			v = promql.Vector{}
		}
	case promql.Matrix:
		if x == nil {
			v = promql.Matrix{}
		}
	}
	return queryData{ResultType: v.Type(), Result: v}
}

func (a *API) query(w http.ResponseWriter, r *http.Request) {
	q, release, e := a.reader(r)
	if e != nil {
		writeError(w, e)
		return
	}
	defer release()
	ts, err := parseTimeParam(r, "time", time.Now())
	if err != nil {
		writeError(w, badData(err))
		return
	}
	a.run(w, r, func(ctx context.Context, qs string) (promql.Query, error) {
		return a.engine.NewInstantQuery(ctx, q, nil, qs, ts)
	})
}

func (a *API) queryRange(w http.ResponseWriter, r *http.Request) {
	q, release, e := a.reader(r)
	if e != nil {
		writeError(w, e)
		return
	}
	defer release()
	start, err := parseRequiredTime(r, "start")
	if err != nil {
		writeError(w, badData(err))
		return
	}
	end, err := parseRequiredTime(r, "end")
	if err != nil {
		writeError(w, badData(err))
		return
	}
	if end.Before(start) {
		writeError(w, badData(errors.New("end timestamp must not be before start time")))
		return
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		writeError(w, badData(fmt.Errorf("invalid parameter \"step\": %w", err)))
		return
	}
	if step <= 0 {
		writeError(w, badData(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")))
		return
	}
	if end.Sub(start)/step > maxPoints {
		writeError(w, badData(errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")))
		return
	}
	a.run(w, r, func(ctx context.Context, qs string) (promql.Query, error) {
		return a.engine.NewRangeQuery(ctx, q, nil, qs, start, end, step)
	})
}

// run is the part instant and range queries share: the request's deadline, the "query" parameter
// parsed by newQuery, execution and the answer.
func (a *API) run(w http.ResponseWriter, r *http.Request, newQuery func(ctx context.Context, qs string) (promql.Query, error)) {
	ctx, cancel, e := requestContext(r)
	if e != nil {
		writeError(w, e)
		return
	}
	defer cancel()
	qs := r.FormValue("query")
	qry, err := newQuery(ctx, qs)
	if err != nil {
		writeError(w, badData(fmt.Errorf("invalid parameter \"query\": %w", err)))
		return
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		writeError(w, engineError(res.Err))
		return
	}
	writeData(w, resultData(res.Value), res.Warnings, qs)
}

// timeRange parses the optional start and end of series and labels (all time by default).
func timeRange(r *http.Request) (mint, maxt int64, e *apiError) {
	start, err := parseTimeParam(r, "start", MinTime)
	if err != nil {
		return 0, 0, badData(err)
	}
	end, err := parseTimeParam(r, "end", MaxTime)
	if err != nil {
		return 0, 0, badData(err)
	}
	if end.Before(start) {
		return 0, 0, badData(errors.New("end timestamp must not be before start time"))
	}
	return timestamp.FromTime(start), timestamp.FromTime(end), nil
}

// matchers parses the match[] parameters; each set must select something, as in Prometheus.
func (a *API) matchers(r *http.Request) ([][]*labels.Matcher, *apiError) {
	sets, err := a.parser.ParseMetricSelectors(r.Form["match[]"])
	if err != nil {
		return nil, badData(fmt.Errorf("invalid parameter \"match[]\": %w", err))
	}
	for _, set := range sets {
		if !slices.ContainsFunc(set, func(m *labels.Matcher) bool { return m != nil && !m.Matches("") }) {
			return nil, badData(errors.New("match[] must contain at least one non-empty matcher"))
		}
	}
	return sets, nil
}

// metaQuery is the common start of /api/v1/series and /api/v1/labels: the tenant's data, the match[]
// selectors and the time range, opened as one querier; close releases the querier and the tenant.
type metaQuery struct {
	storage.Querier
	sets       [][]*labels.Matcher
	mint, maxt int64
	close      func()
}

// openMeta opens a metaQuery for r; needMatch makes match[] required.
func (a *API) openMeta(r *http.Request, needMatch bool) (metaQuery, *apiError) {
	q, release, e := a.reader(r)
	if e != nil {
		return metaQuery{}, e
	}
	mq := metaQuery{}
	if needMatch && len(r.Form["match[]"]) == 0 {
		e = badData(errors.New("no match[] parameter provided"))
	}
	if e == nil {
		mq.sets, e = a.matchers(r)
	}
	if e == nil {
		mq.mint, mq.maxt, e = timeRange(r)
	}
	if e == nil {
		var err error
		if mq.Querier, err = q.Querier(mq.mint, mq.maxt); err != nil {
			e = engineError(err)
		}
	}
	if e != nil {
		release()
		return metaQuery{}, e
	}
	mq.close = func() {
		_ = mq.Close()
		release()
	}
	return mq, nil
}

func (a *API) series(w http.ResponseWriter, r *http.Request) {
	mq, e := a.openMeta(r, true)
	if e != nil {
		writeError(w, e)
		return
	}
	defer mq.close()
	querier, sets, mint, maxt := mq.Querier, mq.sets, mq.mint, mq.maxt
	ctx := r.Context()
	hints := &storage.SelectHints{Start: mint, End: maxt, Func: "series"}
	var set storage.SeriesSet
	if len(sets) == 1 {
		set = querier.Select(ctx, false, hints, sets[0]...)
	} else {
		all := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			all = append(all, querier.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	}
	metrics := []labels.Labels{}
	for set.Next() {
		if err := ctx.Err(); err != nil {
			writeError(w, engineError(err))
			return
		}
		metrics = append(metrics, set.At().Labels())
	}
	if err := set.Err(); err != nil {
		writeError(w, engineError(err))
		return
	}
	writeData(w, metrics, set.Warnings(), "")
}

func (a *API) labelNames(w http.ResponseWriter, r *http.Request) {
	mq, e := a.openMeta(r, false)
	if e != nil {
		writeError(w, e)
		return
	}
	defer mq.close()
	querier, sets := mq.Querier, mq.sets
	ctx := r.Context()
	var (
		names []string
		annos annotations.Annotations
		err   error
	)
	if len(sets) == 0 {
		names, annos, err = querier.LabelNames(ctx, nil)
	} else {
		for _, ms := range sets {
			var ns []string
			var wrn annotations.Annotations
			ns, wrn, err = querier.LabelNames(ctx, nil, ms...)
			if err != nil {
				break
			}
			annos.Merge(wrn)
			names = append(names, ns...)
		}
		slices.Sort(names)
		names = slices.Compact(names)
	}
	if err != nil {
		writeError(w, engineError(err))
		return
	}
	if names == nil {
		names = []string{}
	}
	writeData(w, names, annos, "")
}

// MinTime and MaxTime are the bounds of a time range left open, as in Prometheus' API.
var (
	MinTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	MaxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = MinTime.Format(time.RFC3339Nano)
	maxTimeFormatted = MaxTime.Format(time.RFC3339Nano)
)

func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	s := r.FormValue(name)
	if s == "" {
		return def, nil
	}
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid parameter %q: %w", name, err)
	}
	return t, nil
}

func parseRequiredTime(r *http.Request, name string) (time.Time, error) {
	if r.FormValue(name) == "" {
		return time.Time{}, fmt.Errorf("invalid parameter %q: missing", name)
	}
	return parseTimeParam(r, name, time.Time{})
}

// parseTime accepts unix seconds (float, millisecond precision) or RFC 3339, as Prometheus does.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
		}
		sec, ns := math.Modf(t)
		ns = math.Round(ns*1000) / 1000
		return time.Unix(int64(sec), int64(ns*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return MinTime, nil
	case maxTimeFormatted:
		return MaxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseDuration accepts float seconds or a Prometheus duration (1m, 1h30m), as Prometheus does.
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// metadata serves Prometheus' /api/v1/metadata for the request's tenant: the metric metadata its
// Remote Write 2.0 and OTLP writes carried (tenant.Manager.Metadata), by metric family, filtered by
// metric and bounded by limit and limit_per_metric as in Prometheus.
func (a *API) metadata(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, badData(fmt.Errorf("parsing the form: %w", err)))
		return
	}
	id, err := tenant.FromRequest(r, a.opts.TenantHeader, a.opts.DefaultTenant)
	if err != nil {
		writeError(w, badData(err))
		return
	}
	limit, perMetric := -1, -1
	for name, v := range map[string]*int{"limit": &limit, "limit_per_metric": &perMetric} {
		if s := r.FormValue(name); s != "" {
			if *v, err = strconv.Atoi(s); err != nil {
				writeError(w, badData(fmt.Errorf("invalid %s: %q", name, s)))
				return
			}
		}
	}
	type entry struct {
		Type string `json:"type"`
		Help string `json:"help"`
		Unit string `json:"unit"`
	}
	out := map[string][]entry{}
	if limit != 0 {
		for name, mds := range a.manager.Metadata(id, r.FormValue("metric"), max(limit, 0)) {
			for i, md := range mds {
				if perMetric > 0 && i == perMetric {
					break
				}
				out[name] = append(out[name], entry{Type: string(md.Type), Help: md.Help, Unit: md.Unit})
			}
		}
	}
	writeData(w, out, nil, "")
}
