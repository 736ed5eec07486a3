package loadgen

import (
	"math"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// TestEncoderV2MatchesV1: a Remote Write 2.0 request holds, read by Prometheus' generated code and
// codec, exactly the series and samples of the 1.0 request for the same batch, with metadata, and a
// symbols table of the strings it uses only, the empty string first.
func TestEncoderV2MatchesV1(t *testing.T) {
	spec := Spec{Tenants: 2, Series: 600, LabelsPerSeries: 6, LabelValueCardinality: 50, SamplesPerRequest: 100}
	require.NoError(t, spec.Validate())
	sc := newSchema(spec)
	v1, v2 := newEncoder(spec, sc), newEncoderV2(spec, sc)
	const ts = int64(1_700_000_000_000)
	var buf []byte
	for _, b := range spec.batches() {
		for _, churn := range []uint64{0, 7} {
			want := decode(t, v1.appendRequest(nil, b, churn, ts))
			buf = v2.appendRequest(buf[:0], b, churn, ts)
			var got writev2.Request
			require.NoError(t, got.Unmarshal(buf))
			require.Equal(t, "", got.Symbols[0])
			used := make([]bool, len(got.Symbols))
			require.Len(t, got.Timeseries, len(want.Timeseries))
			lb := labels.NewScratchBuilder(8)
			for i, s := range got.Timeseries {
				ls, err := s.ToLabels(&lb, got.Symbols)
				require.NoError(t, err)
				require.Equal(t, toLabels(want.Timeseries[i].Labels), ls)
				for _, r := range s.LabelsRefs {
					used[r] = true
				}
				md, err := s.ToMetadata(got.Symbols)
				require.NoError(t, err)
				require.Equal(t, model.MetricTypeGauge, md.Type)
				require.Equal(t, helpText, md.Help)
				used[s.Metadata.HelpRef] = true
				require.Len(t, s.Samples, 1)
				require.Equal(t, want.Timeseries[i].Samples[0].Timestamp, s.Samples[0].Timestamp)
				require.Equal(t, math.Float64bits(want.Timeseries[i].Samples[0].Value), math.Float64bits(s.Samples[0].Value))
			}
			for i, u := range used[1:] {
				require.True(t, u, "symbol %d (%q) is used by no series", i+1, got.Symbols[i+1])
			}
		}
	}
}

func TestEncodingV2DoesNotAllocate(t *testing.T) {
	spec := Spec{Tenants: 1, Series: 2000, LabelsPerSeries: 10, LabelValueCardinality: 100, SamplesPerRequest: 2000}
	enc := newEncoderV2(spec, newSchema(spec))
	b := spec.batches()[0]
	buf := enc.appendRequest(nil, b, 0, 1)
	allocs := testing.AllocsPerRun(10, func() { buf = enc.appendRequest(buf[:0], b, 3, 2) })
	require.Zero(t, allocs)
}
