// Package tracing turns Thanos' tracing configuration (--tracing.config, --tracing.config-file) into
// an OpenTelemetry tracer provider that exports spans over OTLP, so that a Thanos Receive's tracing
// setup works unchanged. Weir's packages trace through the global provider (otel.Tracer); without a
// configuration it is OpenTelemetry's no-op one, and a span costs a context value per request.
//
// Of Thanos' types only OTLP is exported: Jaeger, Tempo, Grafana Alloy and the OpenTelemetry
// Collector all receive it. Another type is not a start-up failure (tracing is not worth refusing
// writes for): New says why it is off.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.yaml.in/yaml/v2"
	"google.golang.org/grpc/credentials"
)

// ErrUnsupportedType is wrapped by New's error for a tracing type Weir does not export.
var ErrUnsupportedType = errors.New("tracing type not supported by Weir")

// fileConfig is Thanos' tracing file: a type and its settings.
type fileConfig struct {
	Type   string        `yaml:"type"`
	Config yaml.MapSlice `yaml:"config"`
}

// OTLPConfig is the config of type OTLP, with Thanos' field names.
type OTLPConfig struct {
	ClientType         string            `yaml:"client_type"` // grpc (default) or http
	ServiceName        string            `yaml:"service_name"`
	ResourceAttributes map[string]string `yaml:"resource_attributes"`
	ReconnectionPeriod model.Duration    `yaml:"reconnection_period"`
	Compression        string            `yaml:"compression"` // gzip or none
	Insecure           bool              `yaml:"insecure"`
	Endpoint           string            `yaml:"endpoint"`
	URLPath            string            `yaml:"url_path"`
	Timeout            model.Duration    `yaml:"timeout"`
	RetryConfig        struct {
		RetryEnabled         bool           `yaml:"retry_enabled"`
		RetryInitialInterval model.Duration `yaml:"retry_initial_interval"`
		RetryMaxInterval     model.Duration `yaml:"retry_max_interval"`
		RetryMaxElapsedTime  model.Duration `yaml:"retry_max_elapsed_time"`
	} `yaml:"retry_config"`
	Headers      map[string]string `yaml:"headers"`
	TLSConfig    config.TLSConfig  `yaml:"tls_config"`
	SamplerType  string            `yaml:"sampler_type"`
	SamplerParam string            `yaml:"sampler_param"`
}

// Provider is a configured tracer provider; Shutdown flushes the spans not yet exported.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Shutdown exports what is buffered and stops the exporter, within ctx.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// New parses Thanos' tracing YAML and installs the tracer provider it describes as OpenTelemetry's
// global one, with W3C trace-context propagation (what otelgrpc carries between nodes). Empty data:
// tracing off, a nil Provider. An unsupported type returns an error wrapping ErrUnsupportedType.
func New(ctx context.Context, data []byte, defaultService string) (*Provider, error) {
	if strings.TrimSpace(string(data)) == "" {
		return nil, nil
	}
	var fc fileConfig
	if err := yaml.UnmarshalStrict(data, &fc); err != nil {
		return nil, fmt.Errorf("tracing configuration: %w", err)
	}
	if !strings.EqualFold(fc.Type, "OTLP") {
		return nil, fmt.Errorf("%w: %q (Weir exports OTLP, which Jaeger, Tempo and the OpenTelemetry Collector receive)", ErrUnsupportedType, fc.Type)
	}
	raw, err := yaml.Marshal(fc.Config)
	if err != nil {
		return nil, err
	}
	var c OTLPConfig
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		return nil, fmt.Errorf("tracing configuration of type OTLP: %w", err)
	}
	sampler, err := c.sampler()
	if err != nil {
		return nil, err
	}
	client, err := c.client()
	if err != nil {
		return nil, err
	}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	service := c.ServiceName
	if service == "" {
		service = defaultService
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", service)}
	for k, v := range c.ResourceAttributes {
		attrs = append(attrs, attribute.String(k, v))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(sampler))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Provider{tp: tp}, nil
}

// sampler maps Thanos' sampler_type and sampler_param (default: parent-based, sampling every trace).
func (c OTLPConfig) sampler() (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		r, err := strconv.ParseFloat(c.SamplerParam, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("tracing sampler_param %q: want a ratio in [0, 1]", c.SamplerParam)
		}
		return r, nil
	}
	switch strings.ToLower(c.SamplerType) {
	case "", "parentbasedalwayssample":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "alwayssample":
		return sdktrace.AlwaysSample(), nil
	case "neversample":
		return sdktrace.NeverSample(), nil
	case "parentbasedneversample":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratiobased":
		r, err := ratio()
		return sdktrace.TraceIDRatioBased(r), err
	case "parentbasedtraceidratiobased":
		r, err := ratio()
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), err
	}
	return nil, fmt.Errorf("tracing sampler_type %q: want alwayssample, neversample, traceidratiobased or their parentbased… forms", c.SamplerType)
}

// client builds the OTLP client of client_type.
func (c OTLPConfig) client() (otlptrace.Client, error) {
	tlsCfg, err := config.NewTLSConfig(&c.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("tracing tls_config: %w", err)
	}
	retry := struct {
		enabled                bool
		initial, max, maxTotal time.Duration
	}{c.RetryConfig.RetryEnabled, time.Duration(c.RetryConfig.RetryInitialInterval), time.Duration(c.RetryConfig.RetryMaxInterval), time.Duration(c.RetryConfig.RetryMaxElapsedTime)}
	switch strings.ToLower(c.ClientType) {
	case "", "grpc":
		opts := []otlptracegrpc.Option{}
		if c.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(c.Endpoint))
		}
		if c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		} else {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		if c.ReconnectionPeriod > 0 {
			opts = append(opts, otlptracegrpc.WithReconnectionPeriod(time.Duration(c.ReconnectionPeriod)))
		}
		if c.Timeout > 0 {
			opts = append(opts, otlptracegrpc.WithTimeout(time.Duration(c.Timeout)))
		}
		if c.Compression == "gzip" {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(c.Headers))
		}
		opts = append(opts, otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: retry.enabled, InitialInterval: retry.initial, MaxInterval: retry.max, MaxElapsedTime: retry.maxTotal}))
		return otlptracegrpc.NewClient(opts...), nil
	case "http":
		opts := []otlptracehttp.Option{}
		if c.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpoint(c.Endpoint))
		}
		if c.URLPath != "" {
			opts = append(opts, otlptracehttp.WithURLPath(c.URLPath))
		}
		if c.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		} else {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		}
		if c.Timeout > 0 {
			opts = append(opts, otlptracehttp.WithTimeout(time.Duration(c.Timeout)))
		}
		if c.Compression == "gzip" {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(c.Headers))
		}
		opts = append(opts, otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: retry.enabled, InitialInterval: retry.initial, MaxInterval: retry.max, MaxElapsedTime: retry.maxTotal}))
		return otlptracehttp.NewClient(opts...), nil
	}
	return nil, fmt.Errorf("tracing client_type %q: want grpc or http", c.ClientType)
}
