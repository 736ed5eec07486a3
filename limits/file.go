package limits

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"

	"github.com/weir-metrics/weir/tenant"
)

// file is the limits file as written. Fields are pointers where "not set" (inherit the default) and
// "0" (no limit) must be told apart, as in Thanos: a tenant's entry overrides only what it sets.
type file struct {
	Write struct {
		Global  globalConfig             `yaml:"global"`
		Default tenantConfig             `yaml:"default"`
		Tenants map[string]*tenantConfig `yaml:"tenants"`
	} `yaml:"write"`
}

// globalConfig is write.global. The meta-monitoring fields are Thanos' way of counting a tenant's
// head series (a PromQL query against a Prometheus that scrapes the receivers); Weir counts them in
// its ingesters (see doc.go), so they are accepted, so that Thanos' files load, and have no effect.
type globalConfig struct {
	MaxConcurrency           int64          `yaml:"max_concurrency"`
	MetaMonitoringURL        string         `yaml:"meta_monitoring_url"`
	MetaMonitoringLimitQuery string         `yaml:"meta_monitoring_limit_query"`
	MetaMonitoringHTTPClient map[string]any `yaml:"meta_monitoring_http_client"`
}

// tenantConfig is write.default and each write.tenants.<id>: Thanos' fields first, then Weir's.
type tenantConfig struct {
	Request         *requestConfig `yaml:"request"`
	HeadSeriesLimit *int64         `yaml:"head_series_limit"`

	IngestionRateLimit          *float64          `yaml:"ingestion_rate_limit"`
	IngestionBurstSize          *int64            `yaml:"ingestion_burst_size"`
	SeriesPerMetricLimit        *int64            `yaml:"series_per_metric_limit"`
	LabelsPerSeriesLimit        *int64            `yaml:"labels_per_series_limit"`
	LabelNameLengthLimit        *int64            `yaml:"label_name_length_limit"`
	LabelValueLengthLimit       *int64            `yaml:"label_value_length_limit"`
	NativeHistogramBucketsLimit *int64            `yaml:"native_histogram_buckets_limit"`
	RelabelConfigs              []*relabel.Config `yaml:"relabel_configs"`
}

type requestConfig struct {
	SizeBytesLimit *int64 `yaml:"size_bytes_limit"`
	SeriesLimit    *int64 `yaml:"series_limit"`
	SamplesLimit   *int64 `yaml:"samples_limit"`
}

// Parse reads a limits file (YAML; unknown fields are errors, as in Thanos) into the limits of
// every tenant. An empty file means no limit for anyone.
func Parse(data []byte) (*Snapshot, error) {
	var f file
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("parse limits YAML: %w", err)
	}
	w := &f.Write
	if w.Global.MaxConcurrency < 0 {
		return nil, errors.New("write.global.max_concurrency must not be negative")
	}
	def, err := resolve(Limits{}, &w.Default)
	if err != nil {
		return nil, fmt.Errorf("write.default: %w", err)
	}
	s := &Snapshot{
		def:            def,
		tenants:        make(map[string]*Limits, len(w.Tenants)),
		MaxConcurrency: w.Global.MaxConcurrency,
		MetaMonitoring: w.Global.MetaMonitoringURL != "" || w.Global.MetaMonitoringLimitQuery != "" || len(w.Global.MetaMonitoringHTTPClient) > 0,
	}
	for _, id := range slices.Sorted(maps.Keys(w.Tenants)) {
		// A typo'd ID would be a limit that never applies.
		if err := tenant.ValidateID(id); err != nil {
			return nil, fmt.Errorf("write.tenants: %q: %w", id, err)
		}
		tc := w.Tenants[id]
		if tc == nil { // "tenant:" with nothing under it: the defaults
			tc = &tenantConfig{}
		}
		l, err := resolve(*def, tc)
		if err != nil {
			return nil, fmt.Errorf("write.tenants.%s: %w", id, err)
		}
		s.tenants[id] = l
	}
	return s, nil
}

// resolve overlays what c sets on base and checks the result.
func resolve(base Limits, c *tenantConfig) (*Limits, error) {
	l := base
	var errs []error
	set := func(dst *int64, v *int64, name string) {
		if v == nil {
			return
		}
		if *v < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must not be negative (0: no limit)", name, *v))
		}
		*dst = *v
	}
	if r := c.Request; r != nil {
		set(&l.RequestSizeBytes, r.SizeBytesLimit, "request.size_bytes_limit")
		set(&l.RequestSeries, r.SeriesLimit, "request.series_limit")
		set(&l.RequestSamples, r.SamplesLimit, "request.samples_limit")
	}
	set(&l.HeadSeries, c.HeadSeriesLimit, "head_series_limit")
	if c.IngestionBurstSize != nil {
		set(&l.IngestionBurst, c.IngestionBurstSize, "ingestion_burst_size")
		l.burstSet = true
	}
	set(&l.SeriesPerMetric, c.SeriesPerMetricLimit, "series_per_metric_limit")
	set(&l.LabelsPerSeries, c.LabelsPerSeriesLimit, "labels_per_series_limit")
	set(&l.LabelNameLength, c.LabelNameLengthLimit, "label_name_length_limit")
	set(&l.LabelValueLength, c.LabelValueLengthLimit, "label_value_length_limit")
	set(&l.NativeHistogramBuckets, c.NativeHistogramBucketsLimit, "native_histogram_buckets_limit")
	if v := c.IngestionRateLimit; v != nil {
		if *v < 0 || *v != *v {
			errs = append(errs, fmt.Errorf("ingestion_rate_limit %v: must not be negative (0: no limit)", *v))
		}
		l.IngestionRate = *v
	}
	if c.RelabelConfigs != nil { // an empty list clears the default's rules
		for i, rc := range c.RelabelConfigs {
			if rc == nil {
				errs = append(errs, fmt.Errorf("relabel_configs[%d] is empty", i))
				continue
			}
			if err := rc.Validate(model.UTF8Validation); err != nil {
				errs = append(errs, fmt.Errorf("relabel_configs[%d]: %w", i, err))
			}
		}
		l.Relabel = c.RelabelConfigs
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	l.setBurst()
	return &l, nil
}
