package store

import (
	"fmt"

	"github.com/weir-metrics/weir/internal/flags"
)

// RegisterFlags registers the StoreAPI's limits per Series request.
func (c *Config) RegisterFlags(r flags.Registry) {
	r.Flag("store.limits.request-series", "Most series one StoreAPI Series request may select, over all tenants (0: no limit); a larger request fails with ResourceExhausted.").Default("0").Int64Var(&c.MaxSeries)
	r.Flag("store.limits.request-samples", "Most samples one StoreAPI Series request may read, counted per chunk sent (0: no limit); a larger request fails with ResourceExhausted.").Default("0").Int64Var(&c.MaxSamples)
}

// Validate reports the first configuration error, naming its flag.
func (c Config) Validate() error {
	if c.MaxSeries < 0 {
		return fmt.Errorf("--store.limits.request-series: %d is negative (0 disables the limit)", c.MaxSeries)
	}
	if c.MaxSamples < 0 {
		return fmt.Errorf("--store.limits.request-samples: %d is negative (0 disables the limit)", c.MaxSamples)
	}
	return nil
}
