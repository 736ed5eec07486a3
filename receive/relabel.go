package receive

import (
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/prompb"
)

// relabeler applies relabel rules (Prometheus relabel_config: the global --receive.relabel-config
// and the tenant's relabel_configs, package limits) to validated series before they are placed on
// the ring, so that the series stored, and their hashes, are the relabelled ones. It costs nothing
// without rules; with rules, each series' labels are built once to run them, and a series they
// change gets a new label slice.
type relabeler struct {
	sb   labels.ScratchBuilder
	base labels.Labels // the series' labels, in sb's buffer: valid until the next series
	lb   *labels.Builder
}

var relabelerPool = sync.Pool{New: func() any {
	return &relabeler{sb: labels.NewScratchBuilder(16), lb: labels.NewBuilder(labels.EmptyLabels())}
}}

// apply runs rules on ts, whose labels are sorted and valid. keep is false when the rules drop the
// series (or leave it no label). When they change it, ts.Labels is replaced by the new labels,
// sorted, which alias nothing of the request, and changed is true.
func (r *relabeler) apply(ts *prompb.TimeSeries, rules []*relabel.Config) (keep, changed bool) {
	r.sb.Reset()
	for _, l := range ts.Labels {
		r.sb.Add(l.Name, l.Value)
	}
	r.sb.Overwrite(&r.base) // no allocation: the rules mostly keep a series as it is
	r.lb.Reset(r.base)
	if !relabel.ProcessBuilder(r.lb, rules...) {
		return false, false
	}
	if r.unchanged() {
		return true, false
	}
	out := r.lb.Labels() // a copy: base's buffer is the next series'
	if out.IsEmpty() {
		return false, false
	}
	// Capped at its length: the label arena of the request continues past it with other series'.
	ls := ts.Labels[:0:len(ts.Labels)]
	out.Range(func(l labels.Label) { ls = append(ls, prompb.Label{Name: l.Name, Value: l.Value}) })
	ts.Labels = ls
	return true, true
}

// unchanged reports whether the builder holds exactly the base labels. A builder's labels are the
// base's minus those deleted or set, plus those set (never to ""): the same labels iff as many and
// each set one has its base value.
func (r *relabeler) unchanged() bool {
	n, same := 0, true
	r.lb.Range(func(l labels.Label) {
		n++
		if same && r.base.Get(l.Name) != l.Value {
			same = false
		}
	})
	return same && n == r.base.Len()
}
