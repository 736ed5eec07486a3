package receive

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/weir-metrics/weir/write"
)

// rej is a write.Rejection without its error, for comparison.
type rej struct {
	Series int
	Kind   write.Kind
	Reason string
	Count  int
}

func stripErrs(rs []write.Rejection) (out []rej, errs []string) {
	for _, r := range rs {
		out = append(out, rej{Series: r.Series, Kind: r.Kind, Reason: r.Reason, Count: r.Count})
		msg := "<nil>"
		if r.Err != nil {
			msg = r.Err.Error()
		}
		errs = append(errs, msg)
	}
	return out, errs
}

// validateNow is the receiver clock of the validation tests: 2023-11-14T22:13:20Z.
var validateNow = time.UnixMilli(1_700_000_000_000)

func TestValidate(t *testing.T) {
	const now = int64(1_700_000_000_000)
	const maxT = now + 60_000 // validateNow plus a one-minute future window
	exemplar := []prompb.Exemplar{{Labels: lbls("trace_id", "t1"), Value: 1, Timestamp: 5}}

	cases := []struct {
		name    string
		limits  Limits
		in      []prompb.TimeSeries
		want    []prompb.TimeSeries
		rej     []rej
		errs    []string // exact error messages of rej, in order
		removed []int
	}{
		{
			name: "valid sorted series untouched",
			in:   []prompb.TimeSeries{{Labels: lbls("__name__", "up", "job", "a"), Samples: samples(1, 2)}},
			want: []prompb.TimeSeries{{Labels: lbls("__name__", "up", "job", "a"), Samples: samples(1, 2)}},
		},
		{
			name: "empty values dropped",
			in:   []prompb.TimeSeries{{Labels: lbls("__name__", "up", "empty", "", "job", "a", "zz", ""), Samples: samples(1)}},
			want: []prompb.TimeSeries{{Labels: lbls("__name__", "up", "job", "a"), Samples: samples(1)}},
		},
		{
			name: "unsorted labels sorted",
			in:   []prompb.TimeSeries{{Labels: lbls("job", "a", "__name__", "up", "instance", "h:1", "a", "1"), Samples: samples(1)}},
			want: []prompb.TimeSeries{{Labels: lbls("__name__", "up", "a", "1", "instance", "h:1", "job", "a"), Samples: samples(1)}},
		},
		{
			name: "a duplicate name with an empty value is no duplicate",
			in:   []prompb.TimeSeries{{Labels: lbls("a", "", "a", "1"), Samples: samples(1)}},
			want: []prompb.TimeSeries{{Labels: lbls("a", "1"), Samples: samples(1)}},
		},
		{
			name:    "no labels",
			in:      []prompb.TimeSeries{{Samples: samples(1, 2)}},
			want:    []prompb.TimeSeries{},
			rej:     []rej{{0, write.KindFloat, ReasonNoLabels, 2}},
			errs:    []string{"{}: series has no labels"},
			removed: []int{0},
		},
		{
			name: "only empty values: every kind of point counted",
			in: []prompb.TimeSeries{{
				Labels: lbls("a", "", "b", ""), Samples: samples(1), Histograms: histogramsAt(1, 2, 3), Exemplars: exemplar,
			}},
			want: []prompb.TimeSeries{},
			rej: []rej{
				{0, write.KindFloat, ReasonNoLabels, 1},
				{0, write.KindHistogram, ReasonNoLabels, 3},
				{0, write.KindExemplar, ReasonNoLabels, 1},
			},
			errs:    []string{"{}: series has no labels", "{}: series has no labels", "{}: series has no labels"},
			removed: []int{0},
		},
		{
			name:    "empty label name",
			in:      []prompb.TimeSeries{{Labels: lbls("", "x", "a", "1"), Samples: samples(1)}},
			want:    []prompb.TimeSeries{},
			rej:     []rej{{0, write.KindFloat, ReasonEmptyLabelName, 1}},
			errs:    []string{`{="x", a="1"}: label 0 has an empty name`},
			removed: []int{0},
		},
		{
			name:    "invalid UTF-8 label name",
			in:      []prompb.TimeSeries{{Labels: lbls("\xff", "x"), Samples: samples(1)}},
			want:    []prompb.TimeSeries{},
			rej:     []rej{{0, write.KindFloat, ReasonInvalidLabelName, 1}},
			errs:    []string{`{"\xff"="x"}: label name "\xff" is not valid UTF-8`},
			removed: []int{0},
		},
		{
			name:    "invalid UTF-8 label value",
			in:      []prompb.TimeSeries{{Labels: lbls("a", "ok\xc3"), Samples: samples(1)}},
			want:    []prompb.TimeSeries{},
			rej:     []rej{{0, write.KindFloat, ReasonInvalidLabelValue, 1}},
			errs:    []string{`{a="ok\xc3"}: value of label "a" is not valid UTF-8`},
			removed: []int{0},
		},
		{
			name:    "duplicate label name, sorted",
			in:      []prompb.TimeSeries{{Labels: lbls("a", "1", "a", "2"), Samples: samples(1)}},
			want:    []prompb.TimeSeries{},
			rej:     []rej{{0, write.KindFloat, ReasonDuplicateLabel, 1}},
			errs:    []string{`{a="1", a="2"}: label name "a" appears more than once`},
			removed: []int{0},
		},
		{
			name:    "duplicate label name, unsorted",
			in:      []prompb.TimeSeries{{Labels: lbls("b", "1", "a", "1", "b", "2"), Samples: samples(1)}},
			want:    []prompb.TimeSeries{},
			rej:     []rej{{0, write.KindFloat, ReasonDuplicateLabel, 1}},
			errs:    []string{`{a="1", b="1", b="2"}: label name "b" appears more than once`},
			removed: []int{0},
		},
		{
			name:    "too many labels",
			limits:  Limits{MaxLabelsPerSeries: 2},
			in:      []prompb.TimeSeries{{Labels: lbls("a", "1", "b", "2", "c", "3"), Samples: samples(1)}},
			want:    []prompb.TimeSeries{},
			rej:     []rej{{0, write.KindFloat, ReasonTooManyLabels, 1}},
			errs:    []string{`{a="1", b="2", c="3"}: series has 3 labels, over the limit of 2`},
			removed: []int{0},
		},
		{
			name:   "labels at the limit once empty values are dropped",
			limits: Limits{MaxLabelsPerSeries: 2},
			in:     []prompb.TimeSeries{{Labels: lbls("a", "1", "b", "", "c", "3"), Samples: samples(1)}},
			want:   []prompb.TimeSeries{{Labels: lbls("a", "1", "c", "3"), Samples: samples(1)}},
		},
		{
			name:   "label name too long",
			limits: Limits{MaxLabelNameLength: 5},
			in: []prompb.TimeSeries{
				{Labels: lbls("abcdef", "1"), Samples: samples(1)},
				{Labels: lbls("abcde", "1"), Samples: samples(1)},
			},
			want:    []prompb.TimeSeries{{Labels: lbls("abcde", "1"), Samples: samples(1)}},
			rej:     []rej{{0, write.KindFloat, ReasonLabelNameTooLong, 1}},
			errs:    []string{`{abcdef="1"}: label name "abcdef"… is 6 bytes long, over the limit of 5`},
			removed: []int{0},
		},
		{
			name:   "label value too long",
			limits: Limits{MaxLabelValueLength: 3},
			in: []prompb.TimeSeries{
				{Labels: lbls("a", "abc"), Samples: samples(1)},
				{Labels: lbls("a", "abcd"), Samples: samples(1)},
			},
			want:    []prompb.TimeSeries{{Labels: lbls("a", "abc"), Samples: samples(1)}},
			rej:     []rej{{1, write.KindFloat, ReasonLabelValueTooLong, 1}},
			errs:    []string{`{a="abcd"}: value of label "a" is 4 bytes long, over the limit of 3`},
			removed: []int{1},
		},
		{
			name: "zero limits are off",
			in: []prompb.TimeSeries{{
				Labels:  manyLabels(200, 300, 5000),
				Samples: samples(now + 10*365*24*3600*1000), // ten years ahead: no future window
			}},
			want: []prompb.TimeSeries{{
				Labels:  manyLabels(200, 300, 5000),
				Samples: samples(now + 10*365*24*3600*1000),
			}},
		},
		{
			name:   "future window drops only future points",
			limits: Limits{FutureWindow: time.Minute},
			in: []prompb.TimeSeries{
				{
					Labels:     lbls("__name__", "a"),
					Samples:    samples(now-1000, maxT+1, maxT, maxT+5000),
					Histograms: histogramsAt(maxT+1, now, maxT),
					Exemplars:  exemplar,
				},
				{Labels: lbls("__name__", "b"), Samples: samples(now, maxT)},
				{Labels: lbls("__name__", "c"), Histograms: histogramsAt(maxT + 1)},
			},
			want: []prompb.TimeSeries{
				{Labels: lbls("__name__", "a"), Samples: samples(now-1000, maxT), Histograms: histogramsAt(now, maxT), Exemplars: exemplar},
				{Labels: lbls("__name__", "b"), Samples: samples(now, maxT)},
				{Labels: lbls("__name__", "c"), Histograms: []prompb.Histogram{}},
			},
			rej: []rej{
				{0, write.KindFloat, ReasonTooFarInFuture, 2},
				{0, write.KindHistogram, ReasonTooFarInFuture, 1},
				{2, write.KindHistogram, ReasonTooFarInFuture, 1},
			},
			errs: []string{
				"2 samples stamped after 2023-11-14T22:14:20Z (receiver clock plus the future window)",
				"1 histograms stamped after 2023-11-14T22:14:20Z (receiver clock plus the future window)",
				"1 histograms stamped after 2023-11-14T22:14:20Z (receiver clock plus the future window)",
			},
		},
		{
			name:   "several removed: indexes are the sender's",
			limits: Limits{MaxLabelsPerSeries: 3, FutureWindow: time.Minute},
			in: []prompb.TimeSeries{
				{Labels: lbls("x", "1"), Samples: samples(1)},
				{Labels: lbls("a", "1", "b", "2", "c", "3", "d", "4"), Samples: samples(1, 2)},
				{Labels: lbls("x", "2"), Samples: samples(1)},
				{Labels: lbls("z", "1", "z", "1"), Samples: samples(1, 2, 3)},
				{Labels: lbls("x", "3"), Samples: samples(1, maxT+1)},
			},
			want: []prompb.TimeSeries{
				{Labels: lbls("x", "1"), Samples: samples(1)},
				{Labels: lbls("x", "2"), Samples: samples(1)},
				{Labels: lbls("x", "3"), Samples: samples(1)},
			},
			rej: []rej{
				{1, write.KindFloat, ReasonTooManyLabels, 2},
				{3, write.KindFloat, ReasonDuplicateLabel, 3},
				{4, write.KindFloat, ReasonTooFarInFuture, 1},
			},
			errs: []string{
				`{a="1", b="2", c="3", d="4"}: series has 4 labels, over the limit of 3`,
				`{z="1", z="1"}: label name "z" appears more than once`,
				"1 samples stamped after 2023-11-14T22:14:20Z (receiver clock plus the future window)",
			},
			removed: []int{1, 3},
		},
		{
			name: "a removed series without points is not a rejection",
			in: []prompb.TimeSeries{
				{Labels: lbls("a", "1", "a", "2")},
				{Labels: lbls("b", "1"), Samples: samples(1)},
			},
			want:    []prompb.TimeSeries{{Labels: lbls("b", "1"), Samples: samples(1)}},
			removed: []int{0},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wr := &prompb.WriteRequest{Timeseries: tc.in}
			orig := wr.Timeseries
			got, v, err := tc.limits.validate(wr, validateNow)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, got, wr.Timeseries, "the request must hold the validated series")
			gotRej, gotErrs := stripErrs(v.rejected)
			require.Equal(t, tc.rej, gotRej)
			require.Equal(t, tc.errs, gotErrs)
			require.Equal(t, tc.removed, v.removed)
			// The tail of the request's slice is cleared so that the pooled request pins nothing.
			for i := len(got); i < len(orig); i++ {
				require.Zero(t, orig[i], "series %d left in the tail", i)
			}
		})
	}
}

// manyLabels returns n sorted labels with names and values of the given lengths.
func manyLabels(n, nameLen, valueLen int) []prompb.Label {
	ls := make([]prompb.Label, n)
	for i := range ls {
		prefix := "l" + strconv.Itoa(1000+i) // fixed width keeps them sorted
		ls[i] = prompb.Label{Name: prefix + strings.Repeat("n", nameLen-len(prefix)), Value: strings.Repeat("v", valueLen)}
	}
	return ls
}

// TestValidateEveryReason makes sure the cases above produce each validation reason: a new reason
// without a case fails here.
func TestValidateEveryReason(t *testing.T) {
	reasons := map[string][]prompb.Label{
		ReasonNoLabels:          lbls("a", ""),
		ReasonEmptyLabelName:    lbls("", "x"),
		ReasonInvalidLabelName:  lbls("a\x80", "x"),
		ReasonInvalidLabelValue: lbls("a", "\x80"),
		ReasonDuplicateLabel:    lbls("b", "1", "a", "1", "a", "1"),
		ReasonTooManyLabels:     lbls("a", "1", "b", "1", "c", "1", "d", "1", "e", "1"),
		ReasonLabelNameTooLong:  lbls(strings.Repeat("n", 11), "x"),
		ReasonLabelValueTooLong: lbls("a", strings.Repeat("v", 11)),
		ReasonTooFarInFuture:    lbls("a", "future"),
	}
	limits := Limits{MaxLabelsPerSeries: 4, MaxLabelNameLength: 10, MaxLabelValueLength: 10, FutureWindow: time.Second}
	for reason, ls := range reasons {
		t.Run(reason, func(t *testing.T) {
			ts := validateNow.UnixMilli()
			if reason == ReasonTooFarInFuture {
				ts += 1001
			}
			wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: ls, Samples: samples(ts)}}}
			_, v, err := limits.validate(wr, validateNow)
			require.NoError(t, err)
			got, _ := stripErrs(v.rejected)
			require.Equal(t, []rej{{0, write.KindFloat, reason, 1}}, got)
		})
	}
}

func TestValidateMaxSeriesPerRequest(t *testing.T) {
	mk := func(n int) *prompb.WriteRequest {
		wr := &prompb.WriteRequest{}
		for i := range n {
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: lbls("i", strconv.Itoa(i)), Samples: samples(1)})
		}
		return wr
	}
	limits := Limits{MaxSeriesPerRequest: 3}

	got, v, err := limits.validate(mk(3), validateNow)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Empty(t, v.rejected)

	wr := mk(4)
	got, v, err = limits.validate(wr, validateNow)
	require.Nil(t, got)
	require.Nil(t, v)
	require.EqualError(t, err, "request has 4 series, over the limit of 3 per request (lower the sender's max_samples_per_send)")
	require.Equal(t, ClassInvalid, ClassOf(err))
	require.Equal(t, http.StatusBadRequest, StatusCode(err))
	require.Equal(t, mk(4), wr, "a refused request is left alone")

	got, _, err = Limits{}.validate(mk(1000), validateNow)
	require.NoError(t, err)
	require.Len(t, got, 1000)
}

// TestValidateNamesOnlyTheFirstSeries: only the first maxExamples rejections carry the labels, so a
// request full of hostile label sets cannot make a huge answer or cost a string per series.
func TestValidateNamesOnlyTheFirstSeries(t *testing.T) {
	wr := &prompb.WriteRequest{}
	for range maxExamples + 2 {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: lbls("a", "x", "a", "y"), Samples: samples(1)})
	}
	_, v, err := Limits{}.validate(wr, validateNow)
	require.NoError(t, err)
	_, errs := stripErrs(v.rejected)
	want := make([]string, 0, maxExamples+2)
	for i := range maxExamples + 2 {
		msg := `label name "a" appears more than once`
		if i < maxExamples {
			msg = `{a="x", a="y"}: ` + msg
		}
		want = append(want, msg)
	}
	require.Equal(t, want, errs)
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6}, v.removed)
}

func TestOriginalIndex(t *testing.T) {
	cases := []struct {
		removed []int
		in, out []int // validated index → original index
	}{
		{removed: nil, in: []int{0, 1, 5}, out: []int{0, 1, 5}},
		{removed: []int{0}, in: []int{0, 1, 2}, out: []int{1, 2, 3}},
		{removed: []int{0, 1, 2}, in: []int{0, 1}, out: []int{3, 4}},
		{removed: []int{1, 3}, in: []int{0, 1, 2, 3}, out: []int{0, 2, 4, 5}},
		{removed: []int{5}, in: []int{0, 4, 5, 6}, out: []int{0, 4, 6, 7}},
		{removed: []int{2, 3, 7}, in: []int{0, 1, 2, 3, 4, 5}, out: []int{0, 1, 4, 5, 6, 8}},
	}
	for _, tc := range cases {
		v := validation{removed: tc.removed}
		for j, i := range tc.in {
			require.Equal(t, tc.out[j], v.originalIndex(i), "removed %v, index %d", tc.removed, i)
		}
	}
}

// TestOriginalIndexProperty compares originalIndex with a brute-force mapping over random removals.
func TestOriginalIndexProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := rng.IntN(40)
		p := rng.Float64()
		var v validation
		var kept []int // kept[i]: original index of validated series i
		for i := range n {
			if rng.Float64() < p {
				v.removed = append(v.removed, i)
			} else {
				kept = append(kept, i)
			}
		}
		for i, want := range kept {
			require.Equal(t, want, v.originalIndex(i), "removed %v, index %d", v.removed, i)
		}
	}
}

// TestValidateOriginalIndexEndToEnd: the series each validated index maps back to is the one that was
// kept, with random invalid series in between.
func TestValidateOriginalIndexEndToEnd(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	bad := [][]prompb.Label{
		lbls("idx", "dup", "idx", "dup2"),
		lbls("", "x"),
		lbls("a", ""),
		lbls("a", "\xfe"),
		lbls("a", strings.Repeat("v", 50)),
	}
	for range 300 {
		n := 1 + rng.IntN(30)
		wr := &prompb.WriteRequest{}
		for i := range n {
			ls := lbls("zz", "last", "idx", strconv.Itoa(i)) // unsorted on purpose
			if rng.IntN(3) == 0 {
				ls = append([]prompb.Label(nil), bad[rng.IntN(len(bad))]...)
			}
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ls, Samples: samples(int64(i))})
		}
		got, v, err := Limits{MaxLabelValueLength: 20}.validate(wr, validateNow)
		require.NoError(t, err)
		require.Len(t, v.rejected, len(v.removed))
		for i, ts := range got {
			require.Equal(t, "idx", ts.Labels[0].Name)
			require.Equal(t, ts.Labels[0].Value, strconv.Itoa(v.originalIndex(i)))
			require.Equal(t, samples(int64(v.originalIndex(i))), ts.Samples)
		}
		for j, r := range v.rejected {
			require.Equal(t, v.removed[j], r.Series)
		}
	}
}

func TestASCIILabels(t *testing.T) {
	require.True(t, asciiLabels(nil))
	require.True(t, asciiLabels(lbls("__name__", "up", "instance", "10.0.0.1:9100", "a", "")))
	require.True(t, asciiLabels(lbls("a_rather_long_label_name_over_8", "and a value over eight bytes\x7f")))
	for _, bad := range []string{"é", "abcdefgh\xff", "abcdefg\xff", "\x80", "abcdefghijklmno\xc3("} {
		require.False(t, asciiLabels(lbls("x", "ok", "y", bad)), "%q", bad)
		require.False(t, asciiLabels(lbls(bad, "ok")), "%q", bad)
	}
}
