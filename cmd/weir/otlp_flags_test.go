package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOTLPFlags: Thanos' two OTLP flags in its syntax (repeated attribute, --no- switch) and Weir's
// own, with the defaults Thanos and Prometheus have.
func TestOTLPFlags(t *testing.T) {
	cfg, err := parseConfig(t)
	require.NoError(t, err)
	require.True(t, cfg.otlp.EnableTargetInfo)
	require.Empty(t, cfg.otlp.PromoteResourceAttributes)
	require.Equal(t, "UnderscoreEscapingWithSuffixes", cfg.otlp.TranslationStrategy)
	require.False(t, cfg.otlp.ConvertHistogramsToNHCB)

	cfg, err = parseConfig(t, "--receive.otlp-promote-resource-attributes=k8s.cluster.name",
		"--receive.otlp-promote-resource-attributes", "cloud.region", "--no-receive.otlp-enable-target-info",
		"--receive.otlp-translation-strategy=NoUTF8EscapingWithSuffixes", "--receive.otlp-convert-histograms-to-nhcb")
	require.NoError(t, err)
	require.Equal(t, []string{"k8s.cluster.name", "cloud.region"}, cfg.otlp.PromoteResourceAttributes)
	require.False(t, cfg.otlp.EnableTargetInfo)
	require.Equal(t, "NoUTF8EscapingWithSuffixes", cfg.otlp.TranslationStrategy)
	require.True(t, cfg.otlp.ConvertHistogramsToNHCB)
	require.Empty(t, cfg.thanos.given(), "Thanos' OTLP flags take effect: no warning that they do not")

	_, err = parseConfig(t, "--receive.otlp-translation-strategy=Escape")
	require.ErrorContains(t, err, "receive.otlp-translation-strategy")
	_, err = parseConfig(t, "--receive.otlp-promote-resource-attributes=")
	require.ErrorContains(t, err, "--receive.otlp-promote-resource-attributes: empty attribute name")
}
