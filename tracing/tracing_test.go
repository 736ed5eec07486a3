package tracing

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	ctx := context.Background()
	p, err := New(ctx, nil, "weir")
	require.NoError(t, err)
	require.Nil(t, p, "no configuration: tracing off")

	for _, tc := range []struct {
		yaml, err string
	}{
		{"type: JAEGER\nconfig:\n  service_name: x\n", `tracing type not supported by Weir: "JAEGER"`},
		{"type: OTLP\nconfig:\n  client_type: carrier-pigeon\n", `client_type "carrier-pigeon": want grpc or http`},
		{"type: OTLP\nconfig:\n  sampler_type: sometimes\n", `sampler_type "sometimes"`},
		{"type: OTLP\nconfig:\n  sampler_type: traceidratiobased\n  sampler_param: two\n", `sampler_param "two"`},
		{"type: OTLP\nconfig:\n  endpont: typo:4317\n", "field endpont not found"},
		{"type: OTLP\nconfig:\n  timeout: soon\n", "soon"},
		{"tyep: OTLP\n", "field tyep not found"},
	} {
		_, err := New(ctx, []byte(tc.yaml), "weir")
		require.ErrorContains(t, err, tc.err, tc.yaml)
	}
	_, err = New(ctx, []byte("type: jaeger\n"), "weir")
	require.ErrorIs(t, err, ErrUnsupportedType)

	for _, y := range []string{
		"type: OTLP\nconfig:\n  endpoint: 127.0.0.1:4317\n  insecure: true\n  sampler_type: parentbasedtraceidratiobased\n  sampler_param: \"0.1\"\n",
		"type: otlp\nconfig:\n  client_type: http\n  endpoint: 127.0.0.1:4318\n  url_path: /v1/traces\n  compression: gzip\n  timeout: 5s\n  headers:\n    X-Scope-OrgID: ops\n",
	} {
		p, err := New(ctx, []byte(y), "weir")
		require.NoError(t, err, y)
		require.NotNil(t, p)
		require.NoError(t, p.Shutdown(ctx))
	}
}
