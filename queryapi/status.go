package queryapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/weir-metrics/weir/tenant"
)

// defaultStatsLimit is how many entries each top list of /api/v1/status/tsdb holds without a limit
// parameter (Prometheus' and Thanos Receive's default).
const defaultStatsLimit = 10

// tsdbStatus is one tenant's entry of /api/v1/status/tsdb, in Thanos Receive's format: Prometheus'
// TSDB status plus the tenant.
type tsdbStatus struct {
	Tenant                      string    `json:"tenant"`
	HeadStats                   headStats `json:"headStats"`
	SeriesCountByMetricName     []stat    `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []stat    `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []stat    `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []stat    `json:"seriesCountByLabelValuePair"`
}

type headStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int    `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

type stat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// tsdbStatusHandler serves /api/v1/status/tsdb as Thanos Receive does: the head statistics of the
// request's tenant (its header, else the default tenant), or with all_tenants=true of every tenant
// open on this node, as a list naming each tenant; limit bounds each top list. A tenant with no open
// TSDB here is not listed: its data is in object storage, or on other nodes of the ring (each node
// answers for its own share of a tenant's series).
func (a *API) tsdbStatusHandler(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, badData(fmt.Errorf("parsing the form: %w", err)))
		return
	}
	limit := defaultStatsLimit
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			writeError(w, badData(fmt.Errorf("limit must be a positive number: %q", s)))
			return
		}
		limit = n
	}
	var readers []tenant.Reader
	if r.FormValue("all_tenants") == "true" {
		if r.Header.Get(a.opts.TenantHeader) != "" {
			writeError(w, badData(fmt.Errorf("all_tenants=true and the %s header cannot be combined", a.opts.TenantHeader)))
			return
		}
		readers = a.manager.Readers()
	} else {
		id, err := tenant.FromRequest(r, a.opts.TenantHeader, a.opts.DefaultTenant)
		if err != nil {
			writeError(w, badData(err))
			return
		}
		if rd, ok := a.manager.Reader(id); ok {
			readers = append(readers, rd)
		}
	}
	out := make([]tsdbStatus, 0, len(readers))
	for _, rd := range readers {
		out = append(out, statusOf(rd, limit))
		rd.Release()
	}
	writeData(w, out, nil, "")
}

// statusOf is the status of one open tenant.
func statusOf(rd tenant.Reader, limit int) tsdbStatus {
	head := rd.DB.Head()
	s := head.Stats(model.MetricNameLabel, limit)
	return tsdbStatus{
		Tenant: rd.ID,
		HeadStats: headStats{
			NumSeries:     s.NumSeries,
			NumLabelPairs: s.IndexPostingStats.NumLabelPairs,
			ChunkCount:    rd.HeadChunks(),
			MinTime:       s.MinTime,
			MaxTime:       s.MaxTime,
		},
		SeriesCountByMetricName:     stats(s.IndexPostingStats.CardinalityMetricsStats),
		LabelValueCountByLabelName:  stats(s.IndexPostingStats.CardinalityLabelStats),
		MemoryInBytesByLabelName:    stats(s.IndexPostingStats.LabelValueStats),
		SeriesCountByLabelValuePair: stats(s.IndexPostingStats.LabelValuePairsStats),
	}
}

func stats(in []index.Stat) []stat {
	out := make([]stat, len(in))
	for i, s := range in {
		out[i] = stat{Name: s.Name, Value: s.Count}
	}
	return out
}
