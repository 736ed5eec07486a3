package limits

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseThanosFile(t *testing.T) {
	data, err := os.ReadFile("testdata/thanos.yaml")
	require.NoError(t, err)
	s, err := Parse(data)
	require.NoError(t, err)
	require.Equal(t, int64(30), s.MaxConcurrency)
	require.True(t, s.MetaMonitoring)
	require.Equal(t, []string{"acme", "ajax"}, s.Tenants())

	def := Limits{RequestSizeBytes: 1024, RequestSeries: 1000, RequestSamples: 10, HeadSeries: 1000}
	require.Equal(t, def, *s.For("someone-else"))
	require.Equal(t, def, *s.Default())
	// acme: every request limit set to 0 (none), its own head series limit.
	require.Equal(t, Limits{HeadSeries: 2000}, *s.For("acme"))
	// ajax: what it does not set comes from the default.
	require.Equal(t, Limits{RequestSizeBytes: 1024, RequestSeries: 50000, RequestSamples: 500, HeadSeries: 1000}, *s.For("ajax"))
}

func TestParseExtensions(t *testing.T) {
	s, err := Parse([]byte(`
write:
  default:
    ingestion_rate_limit: 1000
    series_per_metric_limit: 50
    labels_per_series_limit: 30
    label_name_length_limit: 64
    label_value_length_limit: 512
    native_histogram_buckets_limit: 160
    relabel_configs:
      - action: labeldrop
        regex: pod_uid
  tenants:
    big:
      ingestion_rate_limit: 50000
    bursty:
      ingestion_burst_size: 7
    free:
      relabel_configs: []
    empty:
`))
	require.NoError(t, err)
	def := s.Default()
	require.Equal(t, 1000.0, def.IngestionRate)
	require.Equal(t, int64(1000), def.IngestionBurst, "burst defaults to one second of the rate")
	require.Equal(t, int64(50), def.SeriesPerMetric)
	require.Equal(t, int64(30), def.LabelsPerSeries)
	require.Equal(t, int64(64), def.LabelNameLength)
	require.Equal(t, int64(512), def.LabelValueLength)
	require.Equal(t, int64(160), def.NativeHistogramBuckets)
	require.Len(t, def.Relabel, 1)

	require.Equal(t, int64(50000), s.For("big").IngestionBurst, "an inherited default burst follows the tenant's own rate")
	require.Equal(t, int64(7), s.For("bursty").IngestionBurst)
	require.Equal(t, 1000.0, s.For("bursty").IngestionRate)
	require.Empty(t, s.For("free").Relabel, "an empty list clears the default's rules")
	require.Len(t, s.For("empty").Relabel, 1, "an empty entry is the defaults")
	require.Equal(t, *def, *s.For("empty"))
}

func TestParseRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown field":        {"write:\n  default:\n    head_series: 3\n", "field head_series not found"},
		"typo in request":      {"write:\n  default:\n    request:\n      series: 3\n", "not found"},
		"negative":             {"write:\n  default:\n    head_series_limit: -1\n", "write.default: head_series_limit -1"},
		"negative rate":        {"write:\n  tenants:\n    a:\n      ingestion_rate_limit: -5\n", "write.tenants.a: ingestion_rate_limit"},
		"negative concurrency": {"write:\n  global:\n    max_concurrency: -1\n", "max_concurrency"},
		"bad tenant":           {"write:\n  tenants:\n    \"../x\":\n      head_series_limit: 1\n", "write.tenants: \"../x\""},
		"bad relabel":          {"write:\n  default:\n    relabel_configs:\n      - action: replace\n        regex: a\n", "relabel_configs[0]"},
		"bad relabel regex":    {"write:\n  default:\n    relabel_configs:\n      - action: drop\n        regex: '('\n", "parse limits YAML"},
		"not yaml":             {"write: [", "parse limits YAML"},
		"string for a number":  {"write:\n  default:\n    head_series_limit: lots\n", "parse limits YAML"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "write:\n", "# nothing\n"} {
		s, err := Parse([]byte(in))
		require.NoError(t, err)
		require.Equal(t, Limits{}, *s.For("x"))
	}
	var nilSnap *Snapshot
	require.Equal(t, Limits{}, *nilSnap.For("x"))
}

func TestIngesterShare(t *testing.T) {
	for _, tc := range []struct {
		limit         int64
		rf, ingesters int
		want          int64
	}{
		{0, 3, 6, 0},
		{1000, 3, 6, 500},
		{1000, 1, 3, 334}, // rounded up
		{1000, 3, 3, 1000},
		{1000, 3, 2, 1000}, // fewer ingesters than RF: each holds everything
		{1000, 0, 0, 1000}, // unknown ring: the whole limit
		{1000, 1, 1, 1000},
	} {
		require.Equal(t, tc.want, IngesterShare(tc.limit, tc.rf, tc.ingesters), "%+v", tc)
	}
	l := &Limits{IngestionRate: 900}
	require.Equal(t, 300.0, l.RouterRate(3))
	require.Equal(t, 900.0, l.RouterRate(0))
}

func TestParseErrorNamesTheTenant(t *testing.T) {
	_, err := Parse([]byte("write:\n  tenants:\n    team-b:\n      request:\n        samples_limit: -3\n"))
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "write.tenants.team-b: request.samples_limit -3"), err.Error())
}
