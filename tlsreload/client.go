package tlsreload

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/weir-metrics/weir/internal/reload"
)

// ClientConfig names a TLS client's files (a router's, writing to ingesters). Any field set turns
// TLS on.
type ClientConfig struct {
	// CertFile and KeyFile are presented to servers that ask for a client certificate (mutual TLS):
	// both or neither. Reloaded when they change.
	CertFile string
	KeyFile  string
	// CAFile verifies servers (empty: the system's roots). Read once, at start.
	CAFile string
	// ServerName is the name verified in the server's certificate (empty: the host dialled).
	ServerName string
	// MinVersion as in ServerConfig (empty: "1.2", what Weir's routers have always offered, so
	// that they keep reaching ingesters configured down to 1.2).
	MinVersion string
}

// Enabled reports whether TLS is on.
func (c ClientConfig) Enabled() bool {
	return c.CertFile != "" || c.KeyFile != "" || c.CAFile != "" || c.ServerName != ""
}

// Validate checks the settings (it does not read the files).
func (c ClientConfig) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("TLS client: a certificate needs its key and a key its certificate")
	}
	if c.MinVersion != "" {
		if _, err := minVersion(c.MinVersion); err != nil {
			return fmt.Errorf("TLS client: %w", err)
		}
	}
	return nil
}

// NewClient returns the client configuration, or nil when TLS is off. The client certificate is
// reloaded when its files change (GetClientCertificate); opts as in NewServer.
func NewClient(c ClientConfig, opts reload.Options) (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.MinVersion != "" {
		cfg.MinVersion, _ = minVersion(c.MinVersion)
	}
	if c.CAFile != "" {
		pool, err := loadCA(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client CA: %w", err)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		opts.Paths = []string{c.CertFile, c.KeyFile}
		v, err := reload.New(opts, func() (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("TLS client certificate: %w", err)
			}
			return &cert, nil
		})
		if err != nil {
			return nil, err
		}
		if opts.Registerer != nil {
			if err := opts.Registerer.Register(expiryGauge(opts.Name, v.Get)); err != nil {
				return nil, fmt.Errorf("TLS %s: metrics: %w", opts.Name, err)
			}
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return v.Get(), nil }
	}
	return cfg, nil
}
