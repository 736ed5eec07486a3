package loadgen

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// TestOTLPEncoderMatchesRemoteWrite: an OTLP request, decoded by the OpenTelemetry Collector's own
// pdata, holds one gauge named MetricName with a data point per series of the batch: the remote-write
// request's labels (but __name__) as attributes, its values and timestamps.
func TestOTLPEncoderMatchesRemoteWrite(t *testing.T) {
	spec := Spec{Tenants: 2, Series: 300, LabelsPerSeries: 6, LabelValueCardinality: 7, SamplesPerRequest: 64}
	require.NoError(t, spec.Validate())
	enc := newEncoder(spec, newSchema(spec))
	oenc := newOTLPEncoder(newEncoder(spec, newSchema(spec)))
	const ts = int64(1_700_000_000_123)
	for _, b := range spec.batches() {
		wr := decode(t, enc.appendRequest(nil, b, 5, ts))
		zr, err := gzip.NewReader(bytes.NewReader(oenc.appendRequest(nil, b, 5, ts)))
		require.NoError(t, err)
		raw, err := io.ReadAll(zr)
		require.NoError(t, err)
		req := pmetricotlp.NewExportRequest()
		require.NoError(t, req.UnmarshalProto(raw))
		md := req.Metrics()
		require.Equal(t, 1, md.ResourceMetrics().Len())
		rm := md.ResourceMetrics().At(0)
		require.Zero(t, rm.Resource().Attributes().Len())
		require.Equal(t, 1, rm.ScopeMetrics().Len())
		ms := rm.ScopeMetrics().At(0).Metrics()
		require.Equal(t, 1, ms.Len())
		m := ms.At(0)
		require.Equal(t, MetricName, m.Name())
		require.Equal(t, pmetric.MetricTypeGauge, m.Type())
		dps := m.Gauge().DataPoints()
		require.Equal(t, len(wr.Timeseries), dps.Len())
		for i, s := range wr.Timeseries {
			dp := dps.At(i)
			want := toLabels(s.Labels)
			b := labels.NewScratchBuilder(0)
			b.Add("__name__", MetricName)
			dp.Attributes().Range(func(k string, v pcommon.Value) bool {
				b.Add(k, v.Str())
				return true
			})
			b.Sort()
			require.Equal(t, want, b.Labels())
			require.Equal(t, s.Samples[0].Value, dp.DoubleValue())
			require.Equal(t, s.Samples[0].Timestamp, dp.Timestamp().AsTime().UnixMilli())
		}
	}
}

func TestOTLPEncodingDoesNotAllocate(t *testing.T) {
	spec := Spec{Tenants: 1, Series: 2000, LabelsPerSeries: 10, LabelValueCardinality: 100, SamplesPerRequest: 2000}
	enc := newOTLPEncoder(newEncoder(spec, newSchema(spec)))
	b := spec.batches()[0]
	buf := enc.appendRequest(nil, b, 0, 1)
	allocs := testing.AllocsPerRun(10, func() { buf = enc.appendRequest(buf[:0], b, 3, 2) })
	require.Zero(t, allocs)
}
