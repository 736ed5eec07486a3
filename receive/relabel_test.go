package receive

import (
	"testing"

	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v2"
)

func TestRelabelerApply(t *testing.T) {
	var rules []*relabel.Config
	require.NoError(t, yaml.UnmarshalStrict([]byte(`
- target_label: cluster
  replacement: eu
- action: labeldrop
  regex: pod_uid
- action: drop
  source_labels: [__name__]
  regex: debug_.*
- action: labeldrop
  regex: only
`), &rules))
	r := relabelerPool.Get().(*relabeler)
	defer relabelerPool.Put(r)
	for _, tc := range []struct {
		name          string
		in, want      []prompb.Label
		keep, changed bool
	}{
		{"already as the rules make it", lbls("__name__", "up", "cluster", "eu"), lbls("__name__", "up", "cluster", "eu"), true, false},
		{"label added", lbls("__name__", "up"), lbls("__name__", "up", "cluster", "eu"), true, true},
		{"label replaced", lbls("__name__", "up", "cluster", "us"), lbls("__name__", "up", "cluster", "eu"), true, true},
		{"label dropped", lbls("__name__", "up", "cluster", "eu", "pod_uid", "1"), lbls("__name__", "up", "cluster", "eu"), true, true},
		{"series dropped", lbls("__name__", "debug_x", "cluster", "eu"), nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := prompb.TimeSeries{Labels: tc.in}
			keep, changed := r.apply(&ts, rules)
			require.Equal(t, tc.keep, keep)
			require.Equal(t, tc.changed, changed)
			if keep {
				require.Equal(t, tc.want, ts.Labels)
			}
		})
	}
	// Nothing left: dropped. (cluster is added by the first rule, so drop it too.)
	ts := prompb.TimeSeries{Labels: lbls("only", "x")}
	keep, _ := r.apply(&ts, []*relabel.Config{rules[3]})
	require.False(t, keep)
	if raceEnabled {
		return
	}
	require.Zero(t, testing.AllocsPerRun(100, func() {
		ts := prompb.TimeSeries{Labels: lbls("__name__", "up", "cluster", "eu")}
		r.apply(&ts, rules)
	})-1, "an unchanged series allocates nothing (the one allocation is the test's labels)")
}
