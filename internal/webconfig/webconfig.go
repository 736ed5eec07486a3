// Package webconfig serves the operations HTTP endpoints (metrics, health, readiness, profiles, the
// status and query APIs) with Thanos' --http.config: a Prometheus exporter-toolkit web configuration
// file (TLS, client certificates, basic-auth users with bcrypt hashes, HTTP/2, response headers), as
// github.com/prometheus/exporter-toolkit/web reads and serves it — no code of our own for it. The
// toolkit reads the TLS part again on every new connection, so rotated certificates are picked up.
package webconfig

import (
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/weir-metrics/weir/internal/flags"
)

// Config names the web configuration file; empty serves plain HTTP without authentication.
type Config struct {
	File string
}

// RegisterFlags registers --http.config (Thanos' name).
func (c *Config) RegisterFlags(r flags.Registry) {
	r.Flag("http.config", "[EXPERIMENTAL] Path to the configuration file that can enable TLS or authentication for all HTTP endpoints "+
		"(--http-address): the Prometheus exporter-toolkit web configuration. The remote-write listener has its own flags.").
		PlaceHolder("<path>").StringVar(&c.File)
}

// Check reads the file and its certificates: a start-up error names the flag.
func (c Config) Check() error {
	return flags.Named("http.config", web.Validate(c.File))
}

// Serve serves srv on ln as the file says, until srv is closed (then it returns nil).
func (c Config) Serve(srv *http.Server, ln net.Listener, logger *slog.Logger) error {
	file := c.File
	err := web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &file}, logger.With("component", "ops-http"))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
