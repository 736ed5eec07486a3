package receive

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weir-metrics/weir/tenant"
)

func TestStatsFrameRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 2*maxErrorText)
	for _, st := range []tenant.WriteStats{
		{},
		{Appended: [tenant.NumKinds]int{1 << 33, 2, 3}},
		{Appended: [tenant.NumKinds]int{5, 0, 0}, Rejected: []tenant.Rejection{
			{Series: 0, Kind: tenant.KindFloat, Reason: tenant.ReasonOutOfOrder, Count: 2, Err: errors.New("out of order")},
			{Series: 1999, Kind: tenant.KindExemplar, Reason: tenant.ReasonExemplarsDisabled, Count: 1},
			{Series: 7, Kind: tenant.KindHistogram, Reason: tenant.ReasonInvalidHistogram, Count: 1, Err: errors.New(long)},
		}},
	} {
		c := newIngestCodec()
		out, err := c.Marshal(&writeReply{stats: st})
		require.NoError(t, err)
		var got writeReply
		require.NoError(t, c.Unmarshal(out, &got))
		for i := range st.Rejected {
			rj := &st.Rejected[i]
			if rj.Err != nil && len(rj.Err.Error()) > maxErrorText {
				rj.Err = errors.New(rj.Err.Error()[:maxErrorText])
			}
		}
		require.Equal(t, st, got.stats)
	}
}

func TestStatsFrameMalformed(t *testing.T) {
	good := encodeStats(&tenant.WriteStats{Appended: [tenant.NumKinds]int{1, 2, 3}, Rejected: []tenant.Rejection{
		{Series: 3, Kind: tenant.KindFloat, Reason: "r", Count: 1, Err: errors.New("e")},
	}})
	var st tenant.WriteStats
	require.NoError(t, parseStats(good, &st))
	for i := range len(good) { // every truncation fails cleanly
		require.ErrorIs(t, parseStats(good[:i], &tenant.WriteStats{}), errFrame, "truncated at %d", i)
	}
	require.ErrorIs(t, parseStats(append(good, 0), &tenant.WriteStats{}), errFrame)
	bad := append([]byte{}, good...)
	bad[0] = 9
	require.ErrorIs(t, parseStats(bad, &tenant.WriteStats{}), errFrame)
	// A huge rejection count in a short frame does not allocate for it.
	require.ErrorIs(t, parseStats([]byte{wireVersion, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}, &tenant.WriteStats{}), errFrame)
	// Unknown kind.
	require.ErrorIs(t, parseStats([]byte{wireVersion, 0, 0, 0, 1, 0, 9, 0, 0, 0}, &tenant.WriteStats{}), errFrame)
}

func TestRequestFrame(t *testing.T) {
	c := newIngestCodec()
	payload := []byte(strings.Repeat("p", 5000)) // over gRPC's pooling threshold
	for _, compressed := range []bool{true, false} {
		out, err := c.Marshal(&forwardRequest{tenant: "team-a", payload: payload, compressed: compressed})
		require.NoError(t, err)
		payload[0] = 'X' // the frame is a copy: the caller may reuse its payload at once
		var req ingestRequest
		require.NoError(t, c.Unmarshal(out, &req))
		out.Free()
		require.NoError(t, req.parse())
		require.Equal(t, "team-a", req.tenant)
		require.Equal(t, compressed, req.compressed)
		require.Equal(t, strings.Repeat("p", 5000), string(req.payload))
		req.release()
		req.release() // idempotent
		payload[0] = 'p'
	}

	// With hashes: they come back in order, the payload after them.
	out, err := c.Marshal(&forwardRequest{tenant: "t", payload: payload, hashes: []uint64{1, 1 << 63, 42}})
	require.NoError(t, err)
	var req ingestRequest
	require.NoError(t, c.Unmarshal(out, &req))
	out.Free()
	require.NoError(t, req.parse())
	require.Equal(t, []uint64{1, 1 << 63, 42}, *req.hashes)
	require.Equal(t, string(payload), string(req.payload))
	require.False(t, req.compressed)
	req.release()

	for _, frame := range [][]byte{{}, {5, 0}, {0, 0}, {wireVersion}, {wireVersionRaw, 5, 'a'},
		{wireVersionHashed, 0}, {wireVersionRawHashed, 0, 1, 0, 0, 0, 0, 0, 0, 0}, {wireVersionRawHashed, 0, 0x80, 0x80, 0x80, 0x80, 0x10}} {
		req := ingestRequest{}
		require.NoError(t, c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(frame)}, &req))
		require.ErrorIs(t, req.parse(), errFrame, "%q", frame)
		req.release()
	}
}

// TestCodecDelegatesToProto: other services may share the server that forces this codec.
func TestCodecDelegatesToProto(t *testing.T) {
	c := newIngestCodec()
	out, err := c.Marshal(wrapperspb.String("hello"))
	require.NoError(t, err)
	var got wrapperspb.StringValue
	require.NoError(t, c.Unmarshal(out, &got))
	require.Equal(t, "hello", got.GetValue())
	require.Equal(t, "weir", c.Name())
}
