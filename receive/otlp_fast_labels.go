package receive

import (
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	pmetadata "github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// Labels of the fast path, as the translator's createAttributes and addLabels make them: attribute
// keys through the same LabelNamer; an empty value means no label (labels.Builder.Set); promoted
// resource attributes where the point has no label of that name; job and instance over anything;
// then __name__ and le or quantile. Where the translator's result would depend on its iteration
// order or warn — a key twice, two keys with one label name, a name starting with "__" — the fast path
// declines.

// OTel resource attributes that become job and instance (semconv).
const (
	otlpServiceName       = "service.name"
	otlpServiceNamespace  = "service.namespace"
	otlpServiceInstanceID = "service.instance.id"
)

// labelName is the label name of an attribute key, ok false when the translator would fail on it
// or the name could collide with __name__ or other reserved labels.
func (d *otlpFastDecoder) labelName(key string) (string, bool) {
	if name, ok := d.names[key]; ok {
		return name, name != ""
	}
	// The cache outlives the body key aliases, and Build may return its argument: build from a copy.
	key = strings.Clone(key)
	name, err := d.cfg.labelName.Build(key)
	if err != nil || strings.HasPrefix(name, "__") {
		name = ""
	}
	d.names[key] = name
	return name, name != ""
}

// namedAttrs turns attrs into labels appended to out (empty values left out), ok false on a key
// given twice or two keys with the same label name.
func (d *otlpFastDecoder) namedAttrs(out []labels.Label, attrs []otlpKV, skip func(string) bool) ([]labels.Label, bool) {
	first := len(out)
	for _, kv := range attrs {
		if skip != nil && skip(kv.key) {
			continue
		}
		name, ok := d.labelName(kv.key)
		if !ok {
			return out, false
		}
		out = append(out, labels.Label{Name: name, Value: kv.value})
	}
	added := out[first:]
	slices.SortFunc(added, func(a, b labels.Label) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(added); i++ {
		if added[i].Name == added[i-1].Name {
			return out, false
		}
	}
	return slices.DeleteFunc(out, func(l labels.Label) bool { return l.Value == "" }), true
}

// resourceLabels derives job, instance and the promoted labels of the resource.
func (d *otlpFastDecoder) resourceLabels() bool {
	r := &d.res
	keys := make(map[string]struct{}, len(r.attrs))
	var name, namespace string
	var hasName, hasNamespace bool
	for _, kv := range r.attrs {
		if _, dup := keys[kv.key]; dup {
			return false // pdata's Get and Range disagree on which one counts
		}
		keys[kv.key] = struct{}{}
		switch kv.key {
		case otlpServiceName:
			name, hasName = kv.value, true
			r.identifyingCnt++
		case otlpServiceNamespace:
			namespace, hasNamespace = kv.value, true
			r.identifyingCnt++
		case otlpServiceInstanceID:
			r.instance = kv.value
			r.identifyingCnt++
		}
	}
	if hasName {
		r.job = name
		if hasNamespace {
			r.job = namespace + "/" + name
		}
	}
	var ok bool
	r.promoted, ok = d.namedAttrs(r.promoted[:0], r.attrs, func(k string) bool {
		_, p := d.cfg.promote[k]
		return !p
	})
	return ok
}

// set sets name to value in ls (replacing a label of that name).
func setLabel(ls []labels.Label, name, value string) []labels.Label {
	for i := range ls {
		if ls[i].Name == name {
			ls[i].Value = value
			return ls
		}
	}
	return append(ls, labels.Label{Name: name, Value: value})
}

// baseLabels builds the point's labels but its name from d.attrs and the resource.
func (d *otlpFastDecoder) baseLabels() bool {
	var ok bool
	d.base, ok = d.namedAttrs(d.base[:0], d.attrs, func(k string) bool { return k == model.MetricNameLabel })
	if !ok {
		return false
	}
	n := len(d.base)
	for _, p := range d.res.promoted {
		if !slices.ContainsFunc(d.base[:n], func(l labels.Label) bool { return l.Name == p.Name }) {
			d.base = append(d.base, p)
		}
	}
	if d.res.job != "" {
		d.base = setLabel(d.base, model.JobLabel, d.res.job)
	}
	if d.res.instance != "" {
		d.base = setLabel(d.base, model.InstanceLabel, d.res.instance)
	}
	return true
}

// labels is the base labels with __name__ name and, unless extra is "", extra=extraValue (over an
// attribute of that name).
func (d *otlpFastDecoder) labels(name, extra, extraValue string) labels.Labels {
	d.sb.Reset()
	for _, l := range d.base {
		if l.Name != extra {
			d.sb.Add(l.Name, l.Value)
		}
	}
	if extra != "" {
		d.sb.Add(extra, extraValue)
	}
	d.sb.Add(model.MetricNameLabel, name)
	d.sb.Sort()
	return d.sb.Labels()
}

// targetInfoInterval spaces target_info samples: half the lookback delta, as the translator does.
const targetInfoInterval = uint64(otlpLookbackDelta / 2)

// targetInfo writes the resource's target_info series: its attributes but the identifying ones,
// job and instance, a sample every targetInfoInterval from its first point to its last, and one at
// the last; none without points, without other attributes or without job and instance.
func (d *otlpFastDecoder) targetInfo() bool {
	r := &d.res
	if !d.cfg.targetInfo || r.minT > r.maxT || len(r.attrs) == r.identifyingCnt {
		return true
	}
	var ok bool
	d.base, ok = d.namedAttrs(d.base[:0], r.attrs, func(k string) bool {
		return k == otlpServiceName || k == otlpServiceNamespace || k == otlpServiceInstanceID
	})
	if !ok {
		return false
	}
	if r.job != "" {
		d.base = setLabel(d.base, model.JobLabel, r.job)
	}
	if r.instance != "" {
		d.base = setLabel(d.base, model.InstanceLabel, r.instance)
	}
	if !slices.ContainsFunc(d.base, func(l labels.Label) bool { return l.Name == model.JobLabel || l.Name == model.InstanceLabel }) {
		return true
	}
	if r.maxT-r.minT > maxTargetInfoPerSeries*targetInfoInterval {
		return false // the appender would refuse some: the translator's answer has an error
	}
	ls := d.labels(targetInfoName, "", "")
	opts := storage.AOptions{Metadata: pmetadata.Metadata{Type: model.MetricTypeGauge, Help: "Target metadata"}, MetricFamilyName: targetInfoName}
	hash := ls.Hash()
	for t := r.minT; ; t += targetInfoInterval {
		t = min(t, r.maxT)
		key := targetInfoKey{hash: hash, t: millis(t)}
		if _, dup := d.seen[key]; !dup {
			d.seen[key] = struct{}{}
			if _, err := d.app.Append(0, ls, 0, key.t, 1, nil, nil, opts); err != nil {
				return false
			}
		}
		if t == r.maxT {
			return true
		}
	}
}
