package receive

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/hashring"
	"github.com/weir-metrics/weir/write"
)

// randomRequest builds the protobuf of a random WriteRequest with what validation and the decoder
// treat specially: unsorted labels, empty values, duplicate names, invalid UTF-8, points in the
// future, exemplars, histograms, and (in the bytes) unknown fields and labels in a non-canonical
// encoding.
func randomRequest(rng *rand.Rand, now int64) []byte {
	var b []byte
	n := 1 + rng.IntN(60)
	for i := range n {
		ts := prompb.TimeSeries{Labels: lbls("__name__", fmt.Sprintf("m%d", rng.IntN(5)), "instance", fmt.Sprintf("h%d", i), "job", "node")}
		switch rng.IntN(12) {
		case 0:
			ts.Labels[0], ts.Labels[2] = ts.Labels[2], ts.Labels[0] // unsorted
		case 1:
			ts.Labels = append(ts.Labels, prompb.Label{Name: "zone", Value: ""}) // dropped
		case 2:
			ts.Labels = append(ts.Labels, prompb.Label{Name: "job", Value: "dup"}) // duplicate
		case 3:
			ts.Labels[1].Value = "\xff" // invalid
		}
		for range rng.IntN(3) + 1 {
			t := now - int64(rng.IntN(60_000))
			if rng.IntN(15) == 0 {
				t = now + int64(time.Hour/time.Millisecond) // too far in the future
			}
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t, Value: rng.Float64()})
		}
		if rng.IntN(6) == 0 {
			ts.Exemplars = []prompb.Exemplar{{Labels: lbls("trace_id", fmt.Sprint(rng.Int())), Value: 1, Timestamp: now}}
		}
		if rng.IntN(8) == 0 {
			ts.Histograms = histogramsAt(now - 1)
		}
		msg, err := ts.Marshal()
		if err != nil {
			panic(err)
		}
		switch rng.IntN(10) {
		case 0: // an unknown field of the series (field 9, varint)
			msg = append(msg, 9<<3|wireVarint, 7)
		case 1: // a label whose value comes before its name: decodes the same, not canonical
			msg = append(msg, 1<<3|wireBytes, 8, 2<<3|wireBytes, 1, 'v', 1<<3|wireBytes, 3, 'a', 'a', 'a')
		case 2: // a long label (its length is a two-byte varint)
			long := prompb.Label{Name: "long", Value: string(make([]byte, 200))}
			lb, _ := long.Marshal()
			msg = append(msg, 1<<3|wireBytes)
			msg = binary.AppendUvarint(msg, uint64(len(lb)))
			msg = append(msg, lb...)
		}
		b = append(b, 1<<3|wireBytes)
		b = binary.AppendUvarint(b, uint64(len(msg)))
		b = append(b, msg...)
	}
	return b
}

// shares splits series onto a 4-endpoint RF=3 ring (no local endpoint) and returns every
// endpoint's payload as decoded by an ingester.
func shares(t *testing.T, ring hashring.Ring, series []prompb.TimeSeries, frames SeriesFrames) [][]prompb.TimeSeries {
	t.Helper()
	f := getFanout(len(series), 4, 3)
	defer f.release()
	require.NoError(t, f.split(ring, "t", series, frames, 3, -1))
	var out [][]prompb.TimeSeries
	for d := range 4 {
		payload := f.encode(d)
		req, err := DecodeRaw(*payload, 64<<20)
		require.NoError(t, err)
		out = append(out, cloneSeries(req.Write.Timeseries))
		req.Release()
		putBuffer(payload)
	}
	return out
}

// TestFastPathMatchesSlowPath: for random requests, the payloads built from the series' original
// bytes decode, on every endpoint, to exactly the series that marshalling them again gives — the
// series validation passed on, changes included.
func TestFastPathMatchesSlowPath(t *testing.T) {
	now := benchNow.UnixMilli()
	eps := []hashring.Endpoint{{Address: "a:1"}, {Address: "b:1"}, {Address: "c:1"}, {Address: "d:1"}}
	ring, err := hashring.NewKetama(eps, hashring.DefaultKetamaPoints, 3)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	copied, total := 0, 0
	for iter := range 300 {
		raw := randomRequest(rng, now)
		req, err := DecodeBytes(snappy.Encode(nil, raw), 1<<20)
		require.NoError(t, err, "iteration %d", iter)
		kept, _, err := benchLimits.validateRequest(req, benchNow)
		require.NoError(t, err)
		frames := req.Frames()
		require.Equal(t, len(kept), frames.Len())
		for i := range kept {
			total++
			if frames.frame(i) != nil {
				copied++
			}
		}
		fast := shares(t, ring, kept, frames)
		slow := shares(t, ring, kept, SeriesFrames{})
		require.Equal(t, slow, fast, "iteration %d", iter)
		req.Release()
	}
	// Both paths were exercised.
	require.Greater(t, copied, total/4)
	require.Less(t, copied, total)
}

// checkFrames checks, for a validated request, that every series with a frame decodes from that
// frame alone to exactly the series.
func checkFrames(t *testing.T, req *Request, kept []prompb.TimeSeries) {
	frames := req.Frames()
	if frames.Len() == 0 {
		return
	}
	require.Equal(t, len(kept), frames.Len())
	for i := range kept {
		fr := frames.frame(i)
		if fr == nil {
			continue
		}
		one, err := DecodeRaw(fr, 1<<20)
		require.NoError(t, err, "frame of series %d", i)
		require.Len(t, one.Write.Timeseries, 1)
		require.Equal(t, kept[i], one.Write.Timeseries[0], "series %d", i)
		one.Release()
	}
}

// FuzzIngestFrame feeds arbitrary request frames through what an ingester does with a router's
// message before storage: parse the frame, decode the payload (snappy or not). It must never panic,
// and a refusal is always the sender's fault (a malformed frame, or a payload that is invalid or too
// large). The response frame decoder gets the same input.
func FuzzIngestFrame(f *testing.F) {
	wr := &prompb.WriteRequest{Timeseries: testSeries(3, 2)}
	raw := marshalWR(f, wr)
	frame := func(version byte, tenantID string, payload []byte) []byte {
		b := []byte{version}
		b = binary.AppendUvarint(b, uint64(len(tenantID)))
		return append(append(b, tenantID...), payload...)
	}
	f.Add(frame(wireVersion, "team-a", snappy.Encode(nil, raw)))
	f.Add(frame(wireVersionRaw, "team-a", raw))
	f.Add(frame(wireVersionRaw, "", nil))
	hashed := func(version byte, n int, payload []byte) []byte {
		b := binary.AppendUvarint(frame(version, "team-a", nil), uint64(n))
		for i := range n {
			b = binary.LittleEndian.AppendUint64(b, uint64(i))
		}
		return append(b, payload...)
	}
	f.Add(hashed(wireVersionHashed, 3, snappy.Encode(nil, raw)))
	f.Add(hashed(wireVersionRawHashed, 3, raw))
	f.Add(hashed(wireVersionRawHashed, 0, nil))
	f.Add(frame(wireVersionRawHashed, "t", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}))
	f.Add(frame(wireVersion, "t", []byte("not snappy")))
	f.Add([]byte{wireVersionRaw, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(encodeStats(&write.Stats{Appended: [write.NumKinds]int{5, 0, 0}, Rejected: []write.Rejection{
		{Series: 1, Kind: write.KindFloat, Reason: write.ReasonOutOfOrder, Count: 2, Err: errors.New("out of order")},
	}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStatsFrame(t, b)
		fr, err := parseRequestFrame(b)
		if err != nil {
			require.ErrorIs(t, err, errFrame)
			return
		}
		require.LessOrEqual(t, len(fr.tenant)+len(fr.hashes)+len(fr.payload), len(b))
		require.Zero(t, len(fr.hashes)%8)
		var req *Request
		if fr.compressed {
			req, err = DecodeBytes(fr.payload, 1<<20)
		} else {
			req, err = DecodeRaw(fr.payload, 1<<20)
		}
		if err != nil {
			require.Nil(t, req)
			c := ClassOf(err)
			require.True(t, c == ClassInvalid || c == ClassTooLarge, "class %d for %v", c, err)
			return
		}
		kept, _, err := Limits{}.validateRequest(req, benchNow)
		if err == nil {
			checkFrames(t, req, kept)
		}
		req.Release()
	})
}

// checkStatsFrame parses b as a response frame: no panic, and what parses encodes back the same way.
func checkStatsFrame(t *testing.T, b []byte) {
	var st write.Stats
	if err := parseStats(b, &st); err != nil {
		require.ErrorIs(t, err, errFrame)
		return
	}
	var again write.Stats
	require.NoError(t, parseStats(encodeStats(&st), &again))
}

// TestWholeBody: a request's compressed body stands for its frames only when they are the whole
// request — then it decompresses to exactly their concatenation; a series validation changed or
// dropped, or anything in the body that is not a series (metadata), rules it out.
func TestWholeBody(t *testing.T) {
	now := benchNow.UnixMilli()
	rng := rand.New(rand.NewPCG(3, 4))
	whole := 0
	for iter := range 300 {
		req, err := DecodeBytes(snappy.Encode(nil, randomRequest(rng, now)), 1<<20)
		require.NoError(t, err)
		kept, _, err := benchLimits.validateRequest(req, benchNow)
		require.NoError(t, err)
		frames := req.Frames()
		if body := frames.wholeBody(); body != nil {
			whole++
			var concat []byte
			for i := range kept {
				concat = append(concat, frames.frame(i)...)
			}
			decoded, err := snappy.Decode(nil, body)
			require.NoError(t, err)
			require.Equal(t, concat, decoded, "iteration %d", iter)
		}
		req.Release()
	}
	require.Positive(t, whole)

	clean := marshalWR(t, benchWriteRequest(20))
	for _, tc := range []struct {
		name  string
		raw   []byte
		whole bool
	}{
		{"series only", clean, true},
		{"metadata after the series", append(clean, 3<<3|wireBytes, 0), false},
		{"metadata before the series", append([]byte{3<<3 | wireBytes, 0}, clean...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := snappy.Encode(nil, tc.raw)
			req, err := DecodeBytes(body, 1<<20)
			require.NoError(t, err)
			defer req.Release()
			_, _, err = benchLimits.validateRequest(req, benchNow)
			require.NoError(t, err)
			if tc.whole {
				require.Equal(t, body, req.Frames().wholeBody())
			} else {
				require.Nil(t, req.Frames().wholeBody())
			}
		})
	}
	raw, err := DecodeRaw(clean, 1<<20) // nothing compressed to send
	require.NoError(t, err)
	defer raw.Release()
	require.Nil(t, raw.Frames().wholeBody())
}

// bodyForwarder records, per endpoint, whether its share came as a compressed body, and what the
// share decodes to; it checks the share's hashes.
type bodyForwarder struct {
	t          testing.TB
	mu         sync.Mutex
	compressed map[string]bool
	got        map[string][]prompb.TimeSeries
}

func (f *bodyForwarder) Forward(_ context.Context, endpoint string, s Share) (write.Stats, error) {
	decode := DecodeRaw
	if s.Compressed {
		decode = DecodeBytes
	}
	req, err := decode(s.Payload, 1<<20)
	if err != nil {
		return write.Stats{}, err
	}
	defer req.Release()
	series := req.Write.Timeseries
	require.Len(f.t, s.Hashes, len(series))
	for i := range series {
		require.Equal(f.t, hashring.SeriesHash(s.Tenant, series[i].Labels), s.Hashes[i], "series %d", i)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.compressed[endpoint] = s.Compressed
	f.got[endpoint] = cloneSeries(series)
	return write.Stats{}, nil
}

// TestRouterForwardsWholeBody: on a ring whose replication factor is its size, every replica gets
// the client's compressed body, which decodes to the validated series; a request that validation
// changed is sent encoded, and so is every share on a larger ring. Every share carries its series'
// hashes.
func TestRouterForwardsWholeBody(t *testing.T) {
	unsorted := benchWriteRequest(50)
	ls := unsorted.Timeseries[7].Labels
	ls[0], ls[1] = ls[1], ls[0]
	for _, tc := range []struct {
		name       string
		endpoints  int
		wr         *prompb.WriteRequest
		compressed bool
	}{
		{"rf=3, 3 endpoints", 3, benchWriteRequest(50), true},
		{"rf=3, 3 endpoints, a series sorted by validation", 3, unsorted, false},
		{"rf=3, 6 endpoints", 6, benchWriteRequest(50), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fwd := &bodyForwarder{t: t, compressed: map[string]bool{}, got: map[string][]prompb.TimeSeries{}}
			r := benchRouter(t, 3, tc.endpoints, fwd)
			req, err := DecodeBytes(encodeWR(t, tc.wr), 1<<20)
			require.NoError(t, err)
			defer req.Release()
			series, _, err := benchLimits.validateRequest(req, benchNow)
			require.NoError(t, err)
			_, err = r.Write(context.Background(), Batch{Tenant: "team-a", Series: series, Frames: req.Frames()})
			require.NoError(t, err)
			require.Len(t, fwd.got, tc.endpoints)
			for ep, got := range fwd.got {
				require.Equal(t, tc.compressed, fwd.compressed[ep], ep)
				if tc.endpoints == 3 {
					require.Equal(t, cloneSeries(series), got, ep)
				}
			}
		})
	}
}
