package receive

import (
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/weir-metrics/weir/receive/ingestpb"
	"github.com/weir-metrics/weir/write"
)

// TestExtrasMatchProto: the hand-written extras of a request are byte for byte what the generated code
// of ingest.proto marshals, the ingester reads back what was sent, and extras_stored travels.
func TestExtrasMatchProto(t *testing.T) {
	extras := []write.SeriesExtra{
		{Metadata: metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests.", Unit: "requests"}, Starts: []int64{1, 1 << 40, -5}},
		{Metadata: metadata.Metadata{Type: model.MetricTypeUnknown}},
		{Metadata: metadata.Metadata{Type: model.MetricTypeGaugeHistogram, Help: "h"}, Starts: []int64{7}},
	}
	m := forwardRequest{tenant: "team-a", payload: []byte("payload"), extras: appendExtras(nil, extras, []int32{0, 1, 2})}
	got := appendWriteRequest(nil, &m)
	require.Len(t, got, writeRequestSize(&m))
	pb := protoRequest(&m)
	for _, e := range extras {
		pb.Extras = append(pb.Extras, &ingestpb.SeriesExtra{Type: int32(writev2.FromMetadataType(e.Metadata.Type)), Help: e.Metadata.Help, Unit: e.Metadata.Unit, Starts: e.Starts})
	}
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(pb)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))

	r := ingestRequest{buf: mem.SliceBuffer(got)}
	require.NoError(t, r.parse())
	back, err := parseExtras(r.extras)
	require.NoError(t, err)
	require.Equal(t, extras, back)

	b := appendExtrasStored(appendWriteResponse(nil, &write.Stats{Appended: [write.NumKinds]int{3}}), true)
	var resp ingestpb.WriteResponse
	require.NoError(t, proto.Unmarshal(b, &resp))
	require.True(t, resp.ExtrasStored)
	stored, err := parseExtrasStored(b)
	require.NoError(t, err)
	require.True(t, stored)
	stored, err = parseExtrasStored(appendWriteResponse(nil, &write.Stats{}))
	require.NoError(t, err)
	require.False(t, stored)

	_, err = parseExtras([][]byte{{1 << 3, 42}})
	require.ErrorContains(t, err, "unknown metric type 42")
}
