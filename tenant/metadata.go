package tenant

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"

	"github.com/weir-metrics/weir/write"
)

// metadataStore is a tenant's metric metadata by metric family name, as Remote Write 2.0 and OTLP
// writes carry it, for the metadata APIs (Prometheus' /api/v1/metadata, Thanos' Metadata gRPC).
//
// The head stores metadata too (per series, in WAL records) but has no API to read it, so this is
// what is read. It is memory only: after a restart it fills again as senders write, which Remote
// Write 2.0 senders do with every series of every request. A family holds every distinct metadata
// seen for it, as Prometheus' API answers, bounded by maxMetadataPerFamily.
type metadataStore struct {
	mu       sync.RWMutex
	byFamily map[string][]metadata.Metadata
}

// maxMetadataPerFamily bounds the distinct metadata one family keeps (help texts that change with
// every release would grow it without end).
const maxMetadataPerFamily = 8

// record notes the metadata of the written series that is not known yet. Strings are copied: the
// series alias a request's buffer.
func (s *metadataStore) record(series []prompb.TimeSeries, extras []write.SeriesExtra) {
	type entry struct {
		family string
		md     metadata.Metadata
	}
	var missing []entry
	s.mu.RLock()
	for i := range extras {
		md := extras[i].Metadata
		if md.IsEmpty() {
			continue
		}
		if name := familyName(series[i].Labels, md.Type); !slices.Contains(s.byFamily[name], md) {
			missing = append(missing, entry{name, md})
		}
	}
	s.mu.RUnlock()
	if len(missing) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byFamily == nil {
		s.byFamily = map[string][]metadata.Metadata{}
	}
	for _, e := range missing {
		known := s.byFamily[e.family]
		if slices.Contains(known, e.md) { // an earlier entry of this write added it
			continue
		}
		md := metadata.Metadata{Type: e.md.Type, Unit: strings.Clone(e.md.Unit), Help: strings.Clone(e.md.Help)}
		if len(known) == maxMetadataPerFamily {
			known = known[1:] // the oldest goes
		}
		s.byFamily[strings.Clone(e.family)] = append(slices.Clip(known), md)
	}
}

// get returns the metadata of family name (every family when name is empty), at most limit families
// (limit <= 0: all). The slices are copies.
func (s *metadataStore) get(name string, limit int) map[string][]metadata.Metadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string][]metadata.Metadata{}
	if name != "" {
		if mds, ok := s.byFamily[name]; ok {
			out[name] = slices.Clone(mds)
		}
		return out
	}
	for _, n := range slices.Sorted(maps.Keys(s.byFamily)) {
		if limit > 0 && len(out) == limit {
			break
		}
		out[n] = slices.Clone(s.byFamily[n])
	}
	return out
}

// The suffixes a classic histogram's and a summary's series add to their family's name.
var (
	histogramSuffixes = []string{"_bucket", "_sum", "_count"}
	summarySuffixes   = []string{"_sum", "_count"}
)

// familyName is the metric family a series belongs to: its name, without the suffix its type adds to
// a family's series (a classic histogram's _bucket, _sum and _count, a summary's _sum and _count).
func familyName(ls []prompb.Label, t model.MetricType) string {
	var name string
	for _, l := range ls {
		if l.Name == model.MetricNameLabel {
			name = l.Value
			break
		}
	}
	var suffixes []string
	switch t {
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram:
		suffixes = histogramSuffixes
	case model.MetricTypeSummary:
		suffixes = summarySuffixes
	}
	for _, s := range suffixes {
		if base, ok := strings.CutSuffix(name, s); ok {
			return base
		}
	}
	return name
}

// Metadata returns the metric metadata the writes of tenant id (every open tenant when id is empty)
// carried, by metric family: of family metric only when it is not empty, of at most limit families
// when limit > 0. Metadata seen in several tenants is listed once.
func (m *Manager) Metadata(id, metric string, limit int) map[string][]metadata.Metadata {
	out := map[string][]metadata.Metadata{}
	for _, d := range m.openDBs() {
		if id != "" && d.id != id {
			continue
		}
		for name, mds := range d.meta.get(metric, 0) {
			if _, ok := out[name]; !ok && limit > 0 && len(out) == limit {
				continue
			}
			for _, md := range mds {
				if !slices.Contains(out[name], md) {
					out[name] = append(out[name], md)
				}
			}
		}
	}
	return out
}
