package store

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/store/storepb"
	"github.com/weir-metrics/weir/write"
)

// TestMetricMetadata: the metadata two tenants' writes carried comes back over Thanos' Metadata API,
// merged, filtered by metric and bounded by limit.
func TestMetricMetadata(t *testing.T) {
	f := newFixture(t, Config{})
	counter := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests.", Unit: ""}
	gauge := metadata.Metadata{Type: model.MetricTypeGauge, Help: "Depth.", Unit: "items"}
	for tenantID, series := range map[string][]string{"team-a": {"http_requests_total", "queue_depth"}, "team-b": {"http_requests_total"}} {
		var ts []prompb.TimeSeries
		var extras []write.SeriesExtra
		for _, name := range series {
			ts = append(ts, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}, Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}}})
			md := counter
			if name == "queue_depth" {
				md = gauge
			}
			extras = append(extras, write.SeriesExtra{Metadata: md})
		}
		_, err := f.mgr.Write(context.Background(), tenantID, ts, extras, nil)
		require.NoError(t, err)
	}

	get := func(req *storepb.MetricMetadataRequest) map[string][]*storepb.Meta {
		t.Helper()
		stream, err := f.meta.MetricMetadata(context.Background(), req)
		require.NoError(t, err)
		out := map[string][]*storepb.Meta{}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return out
			}
			require.NoError(t, err)
			for name, e := range resp.GetMetadata().Metadata {
				out[name] = append(out[name], e.Metas...)
			}
		}
	}
	all := get(&storepb.MetricMetadataRequest{Limit: -1})
	require.Len(t, all, 2)
	require.Len(t, all["http_requests_total"], 1, "the same metadata in two tenants is listed once")
	require.Equal(t, "counter", all["http_requests_total"][0].Type)
	require.Equal(t, "Requests.", all["http_requests_total"][0].Help)
	require.Equal(t, "items", all["queue_depth"][0].Unit)
	require.Len(t, get(&storepb.MetricMetadataRequest{}), 2, "limit 0 is proto3's unset: all")
	require.Len(t, get(&storepb.MetricMetadataRequest{Limit: 1}), 1)
	one := get(&storepb.MetricMetadataRequest{Metric: "queue_depth"})
	require.Len(t, one, 1)
	require.Equal(t, "gauge", one["queue_depth"][0].Type)
	require.Empty(t, get(&storepb.MetricMetadataRequest{Metric: "nope"}))
}
