package dashboards

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/prometheus/prometheus/promql/parser"
)

// Files are the generated copies of the dashboard, relative to the repository root: one to import
// by hand, one that the Helm chart reads with .Files.Get (a chart only reads files inside it).
var Files = []string{"deploy/dashboards/weir.json", "deploy/helm/weir/dashboards/weir.json"}

// UID is the dashboard's stable identity in Grafana: links and provisioning keep working across
// regenerations.
const UID = "weir-overview"

// query is one PromQL expression of a panel. $job and $__rate_interval are Grafana's to replace.
type query struct {
	expr, legend string
}

type panel struct {
	title, description, unit string
	queries                  []query
}

type row struct {
	title  string
	panels []panel
}

// sel is the selector every expression starts from: the nodes of the chosen job.
const sel = `job=~"$job"`

// rows is the dashboard: one row per part of the write path, in the order a write goes through them.
var rows = []row{
	{"Write path (routers)", []panel{
		{"Remote-write requests by status code", "Answers on the remote-write port. 2xx: in the WAL of a write quorum; 400: invalid or refused for good (senders drop); 429/503: retried by senders.", "reqps", []query{
			{`sum by (code) (rate(weir_http_requests_total{` + sel + `}[$__rate_interval]))`, "{{code}}"},
		}},
		{"Remote-write latency", "Time to answer a remote write, quorum included.", "s", []query{
			{`histogram_quantile(0.99, sum by (le) (rate(weir_http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p99"},
			{`histogram_quantile(0.5, sum by (le) (rate(weir_http_request_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "p50"},
		}},
		{"Quorum failures by reason", "Requests that missed a write quorum for some series (answered 503, or 400 when a quorum refused the data for good).", "reqps", []query{
			{`sum by (reason) (rate(weir_quorum_failures_total{` + sel + `}[$__rate_interval]))`, "{{reason}}"},
		}},
	}},
	{"Ring", []panel{
		{"Forward latency per peer (p99)", "Time to write a request's share to one ingester, the local one included.", "s", []query{
			{`histogram_quantile(0.99, sum by (endpoint, le) (rate(weir_forward_duration_seconds_bucket{` + sel + `}[$__rate_interval])))`, "{{endpoint}}"},
		}},
		{"Forwards per peer by result", "Writes of request shares to each ingester: anything but success counts against the quorum.", "reqps", []query{
			{`sum by (endpoint, result) (rate(weir_forward_requests_total{` + sel + `}[$__rate_interval]))`, "{{endpoint}} {{result}}"},
		}},
		{"Ring members and their state", "Endpoints in each router's ring, peers a router currently sees down, and (membership by gossip) members by role and state.", "short", []query{
			{`max by (instance) (weir_hashring_endpoints{` + sel + `})`, "endpoints in the ring of {{instance}}"},
			{`sum by (endpoint) (weir_forward_endpoint_down{` + sel + `})`, "routers seeing {{endpoint}} down"},
			{`max by (role, state) (weir_hashring_members{` + sel + `})`, "gossip: {{role}} {{state}}"},
		}},
	}},
	{"Storage (ingesters)", []panel{
		{"Samples written per second by tenant", "Samples appended to the tenants' TSDBs on every ingester: each replica counts, so a write with RF=3 counts three times.", "short", []query{
			{`sum by (tenant) (rate(weir_receive_appended_total{` + sel + `, kind="sample"}[$__rate_interval]))`, "{{tenant}}"},
		}},
		{"Head series per tenant", "Active series in each tenant's head, summed over the ingesters (each replica counts).", "short", []query{
			{`sum by (tenant) (prometheus_tsdb_head_series{` + sel + `})`, "{{tenant}}"},
		}},
		{"WAL", "Write-ahead log size per ingester, and failed WAL writes (any is a disk problem: writes are refused).", "bytes", []query{
			{`sum by (instance) (prometheus_tsdb_wal_storage_size_bytes{` + sel + `})`, "size {{instance}}"},
			{`sum by (instance) (rate(prometheus_tsdb_wal_writes_failed_total{` + sel + `}[$__rate_interval]))`, "failed writes/s {{instance}}"},
		}},
		{"Free space on the data volume", "Below the reserve (--tsdb.min-free-space) writes are refused with 503.", "bytes", []query{
			{`min by (instance) (weir_storage_free_bytes{` + sel + `})`, "free {{instance}}"},
			{`max by (instance) (weir_storage_min_free_bytes{` + sel + `})`, "reserve {{instance}}"},
		}},
	}},
	{"Shipping and start-up (ingesters)", []panel{
		{"Shipper lag", "Age of the oldest block waiting for upload (0 when none waits), and time since the last upload.", "s", []query{
			{`max by (instance, tenant) (weir_shipper_oldest_unshipped_block_age_seconds{` + sel + `})`, "oldest unshipped {{instance}} {{tenant}}"},
			{`time() - max by (instance) (weir_shipper_last_success_timestamp_seconds{` + sel + `})`, "since last upload {{instance}}"},
		}},
		{"Blocks waiting for upload", "Local blocks not yet in the bucket; they are never deleted before they are.", "short", []query{
			{`sum by (instance) (weir_shipper_blocks_pending{` + sel + `})`, "{{instance}}"},
			{`sum by (instance) (rate(weir_shipper_upload_failures_total{` + sel + `}[$__rate_interval]))`, "failed uploads/s {{instance}}"},
		}},
		{"WAL replay progress at start-up", "Tenant TSDBs opened out of those found on disk (pruned tenants stay closed): a node is ready once all are, or all it has room for; the rest wait, drained one at a time as room appears.", "short", []query{
			{`max by (instance) (weir_startup_tenants_opened{` + sel + `})`, "opened {{instance}}"},
			{`max by (instance) (weir_startup_tenants{` + sel + `})`, "on disk {{instance}}"},
			{`max by (instance) (weir_startup_tenants_waiting{` + sel + `})`, "waiting for room {{instance}}"},
		}},
		{"Tenants open, pruned, expired and refused", "Open tenant TSDBs; idle tenants pruned (head cut, shipped, closed); pruned tenants whose data passed --tsdb.retention removed from local disk; new tenants refused near the process' open-file or memory-map limit (503).", "short", []query{
			{`sum by (instance) (weir_tenants_open{` + sel + `})`, "open {{instance}}"},
			{`sum by (instance) (rate(weir_tenants_pruned_total{` + sel + `}[$__rate_interval]))`, "pruned/s {{instance}}"},
			{`sum by (instance) (rate(weir_tenants_expired_total{` + sel + `}[$__rate_interval]))`, "expired/s {{instance}}"},
			{`sum by (instance, resource) (rate(weir_tenant_opens_refused_total{` + sel + `}[$__rate_interval]))`, "opens refused/s {{instance}} {{resource}}"},
		}},
	}},
}

// Build builds the dashboard in Grafana's classic JSON model, the one Grafana's dashboard sidecar
// and every Grafana version import. The SDK marks it deprecated in favour of dashboardv2, whose
// schema only Grafana 12 with its kubernetesDashboards feature reads.
func Build() (dashboard.Dashboard, error) { //nolint:staticcheck // classic model on purpose, see above
	ds := common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
	//nolint:staticcheck // classic model on purpose, see Build
	b := dashboard.NewDashboardBuilder("Weir").
		Uid(UID).
		Description("Weir's write path, ring, storage and shipping. Generated by deploy/dashboards (go generate); do not edit the JSON.").
		Tags([]string{"weir"}).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("job").
			Label("Job").
			Datasource(ds).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(weir_write_slots, job)")}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Multi(true).
			IncludeAll(true).
			AllValue(".*"))
	for _, r := range rows {
		b = b.WithRow(dashboard.NewRowBuilder(r.title))
		for _, p := range r.panels {
			pb := timeseries.NewPanelBuilder().
				Title(p.title).
				Description(p.description).
				Unit(p.unit).
				Datasource(ds).
				Height(8).
				Span(8).
				Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom))
			for _, q := range p.queries {
				pb = pb.WithTarget(prometheus.NewDataqueryBuilder().Expr(q.expr).LegendFormat(q.legend).Datasource(ds))
			}
			b = b.WithPanel(pb)
		}
	}
	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("building the Weir dashboard: %w", err) //nolint:staticcheck // classic model, see Build
	}
	return d, nil
}

// JSON is the dashboard as the generated files hold it: indented, with a final newline.
func JSON() ([]byte, error) {
	d, err := Build()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the Weir dashboard: %w", err)
	}
	return append(b, '\n'), nil
}

// Expressions returns every PromQL expression of the dashboard, panels' and variables' alike, as
// written (with Grafana's $variables).
func Expressions() []string {
	exprs := []string{"weir_write_slots"} // the job variable's label_values() source
	for _, r := range rows {
		for _, p := range r.panels {
			for _, q := range p.queries {
				exprs = append(exprs, q.expr)
			}
		}
	}
	return exprs
}

// MetricNames returns the metric names the dashboard's expressions select, sorted and each once
// (histograms by their _bucket series). An expression that does not parse as PromQL, with Grafana's
// variables replaced as Grafana would, is an error.
func MetricNames() ([]string, error) {
	seen := map[string]bool{}
	p := parser.NewParser(parser.Options{})
	for _, e := range Expressions() {
		expr, err := p.ParseExpr(strings.ReplaceAll(e, "$__rate_interval", "1m"))
		if err != nil {
			return nil, fmt.Errorf("dashboard expression %q: %w", e, err)
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				seen[vs.Name] = true
			}
			return nil
		})
	}
	return slices.Sorted(maps.Keys(seen)), nil
}
