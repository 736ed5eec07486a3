// Package tlsreload builds the TLS configurations of Weir's listeners — remote write (HTTP) and
// node-to-node gRPC — and of its gRPC client, from files that are reloaded when they change:
// cert-manager and Kubernetes Secrets rotate certificates under a running process, and a restart
// for each rotation would drop every connection.
//
// The server side answers each handshake with the configuration built from the files as they were
// last seen (tls.Config.GetConfigForClient over a reload.Value): connections already open keep their
// session; new handshakes get the new certificate and client CA within reload.DefaultInterval of the
// change. A change that does not load (a certificate without its new key yet, a truncated file)
// keeps the previous configuration, with a log line and weir_config_reloads_total{result="failure"}.
//
// The flags are Thanos Receive's: --remote-write.server-tls-* and --grpc-server-tls-* (cert, key,
// client-ca, min-version, ciphers, curves), with its value syntax (ServerConfig.RegisterFlags).
package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-metrics/weir/internal/flags"
	"github.com/weir-metrics/weir/internal/reload"
)

// Versions are the values of the min-version flags, as in Thanos.
var versions = map[string]uint16{
	"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13,
}

// DefaultMinVersion is Thanos' default for its TLS servers.
const DefaultMinVersion = "1.3"

// curves are the names the curves flags take: Thanos' names, which are crypto/tls's.
var curves = map[string]tls.CurveID{
	"CurveP256": tls.CurveP256, "CurveP384": tls.CurveP384, "CurveP521": tls.CurveP521, "X25519": tls.X25519,
	"X25519MLKEM768": tls.X25519MLKEM768, "SecP256r1MLKEM768": tls.SecP256r1MLKEM768,
	"SecP384r1MLKEM1024": tls.SecP384r1MLKEM1024,
}

// ServerConfig names a TLS server's files and settings. The zero value is plain text; Enabled says
// whether TLS is on.
type ServerConfig struct {
	// CertFile and KeyFile are the server's certificate (chain) and key in PEM: both or neither.
	CertFile string
	KeyFile  string
	// CAFile, when set, requires every client to present a certificate that chains to one of
	// its CAs (mutual TLS); reloaded like the certificate.
	CAFile string
	// MinVersion is "1.0", "1.1", "1.2" or "1.3" (empty: DefaultMinVersion).
	MinVersion string
	// Ciphers are crypto/tls cipher suite names, for TLS 1.2 and below (empty: Go's defaults; TLS 1.3
	// suites are not configurable in Go).
	Ciphers []string
	// Curves are key exchange names (CurveP256, CurveP384, CurveP521, X25519, X25519MLKEM768, …;
	// empty: Go's defaults).
	Curves []string

	prefix string // of the flags, to name them in errors ("" when not registered)
}

// RegisterFlags registers the flags prefix+"cert", "key", "client-ca", "min-version", "ciphers" and
// "curves" (prefix is "remote-write.server-tls-" or "grpc-server-tls-"); what names the server in the
// help texts.
func (c *ServerConfig) RegisterFlags(r flags.Registry, prefix, what string) {
	c.prefix = prefix
	r.Flag(prefix+"cert", "TLS certificate (PEM) for "+what+"; leave blank to disable TLS. Reloaded when the file changes.").
		PlaceHolder("<path>").StringVar(&c.CertFile)
	r.Flag(prefix+"key", "TLS key (PEM) for "+what+"; leave blank to disable TLS. Reloaded when the file changes.").
		PlaceHolder("<path>").StringVar(&c.KeyFile)
	r.Flag(prefix+"client-ca", "TLS CA to verify clients of "+what+" against (mutual TLS). If no client CA is specified, there is no client verification (tls.NoClientCert). Reloaded when the file changes.").
		PlaceHolder("<path>").StringVar(&c.CAFile)
	if c.MinVersion == "" {
		c.MinVersion = DefaultMinVersion
	}
	r.Flag(prefix+"min-version", `TLS minimum version for `+what+`. Allowed values: ["1.0", "1.1", "1.2", "1.3"].`).
		Default(c.MinVersion).EnumVar(&c.MinVersion, sortedKeys(versions)...)
	r.Flag(prefix+"ciphers", "TLS cipher suites for "+what+" (repeatable; TLS 1.2 and below). If not specified, the default Go cipher suites are used. See https://pkg.go.dev/crypto/tls#pkg-constants for valid values.").
		PlaceHolder("<name>").StringsVar(&c.Ciphers)
	r.Flag(prefix+"curves", "TLS curves for "+what+" (repeatable). If not specified, the default Go curves are used. Valid values: "+strings.Join(sortedKeys(curves), ", ")+".").
		PlaceHolder("<name>").StringsVar(&c.Curves)
}

// Enabled reports whether TLS is on: a certificate or key is given.
func (c ServerConfig) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// flag names one of the flags in an error ("--remote-write.server-tls-key"), or the setting when
// the flags were not registered.
func (c ServerConfig) flag(name string) string {
	if c.prefix == "" {
		return "TLS " + name
	}
	return "--" + c.prefix + name
}

// Validate checks the settings (it does not read the files).
func (c ServerConfig) Validate() error {
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return fmt.Errorf("%s and %s: both or neither must be given", c.flag("cert"), c.flag("key"))
	case c.CAFile != "" && !c.Enabled():
		return fmt.Errorf("%s needs %s and %s", c.flag("client-ca"), c.flag("cert"), c.flag("key"))
	}
	if _, err := minVersion(c.MinVersion); err != nil {
		return fmt.Errorf("%s: %w", c.flag("min-version"), err)
	}
	if _, err := cipherSuites(c.Ciphers); err != nil {
		return fmt.Errorf("%s: %w", c.flag("ciphers"), err)
	}
	if _, err := curveIDs(c.Curves); err != nil {
		return fmt.Errorf("%s: %w", c.flag("curves"), err)
	}
	return nil
}

// NewServer returns the server configuration, or nil when TLS is off. nextProtos are the ALPN
// protocols of the server (HTTP: "h2", "http/1.1"; gRPC: "h2"): the configuration each handshake
// gets is built here, so the caller's additions to the returned one are not seen. opts names the
// configuration for logs and metrics (opts.Paths is set here). The files are read now: a missing or
// bad file is a start-up error.
func NewServer(c ServerConfig, nextProtos []string, opts reload.Options) (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, nil
	}
	base := &tls.Config{NextProtos: slices.Clone(nextProtos)}
	base.MinVersion, _ = minVersion(c.MinVersion)
	base.CipherSuites, _ = cipherSuites(c.Ciphers)
	base.CurvePreferences, _ = curveIDs(c.Curves)
	opts.Paths = []string{c.CertFile, c.KeyFile, c.CAFile}
	v, err := reload.New(opts, func() (*tls.Config, error) { return c.build(base) })
	if err != nil {
		return nil, err
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(expiryGauge(opts.Name, func() *tls.Certificate { return &v.Get().Certificates[0] })); err != nil {
			return nil, fmt.Errorf("TLS %s: metrics: %w", opts.Name, err)
		}
	}
	outer := base.Clone()
	outer.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return v.Get(), nil }
	return outer, nil
}

// build reads the files into a configuration for handshakes.
func (c ServerConfig) build(base *tls.Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", c.flag("cert"), c.flag("key"), err)
	}
	cfg := base.Clone()
	cfg.Certificates = []tls.Certificate{cert}
	if c.CAFile != "" {
		if cfg.ClientCAs, err = loadCA(c.CAFile); err != nil {
			return nil, fmt.Errorf("%s: %w", c.flag("client-ca"), err)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// expiryGauge exports when the certificate serving now expires, so an alert can fire before a
// rotation that did not happen (or did not load) matters.
func expiryGauge(name string, cert func() *tls.Certificate) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "weir_tls_certificate_not_after_timestamp_seconds",
		Help:        "When the TLS certificate in use expires (its NotAfter), by configuration.",
		ConstLabels: prometheus.Labels{"config": name},
	}, func() float64 {
		if leaf := cert().Leaf; leaf != nil {
			return float64(leaf.NotAfter.Unix())
		}
		return 0
	})
}

// loadCA reads a PEM bundle of CA certificates.
func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

func minVersion(s string) (uint16, error) {
	if s == "" {
		s = DefaultMinVersion
	}
	v, ok := versions[s]
	if !ok {
		return 0, fmt.Errorf("invalid TLS version %q, valid values are %s", s, strings.Join(sortedKeys(versions), ", "))
	}
	return v, nil
}

func cipherSuites(names []string) ([]uint16, error) {
	known := map[string]uint16{}
	for _, cs := range tls.CipherSuites() {
		known[cs.Name] = cs.ID
	}
	return lookup(names, known, "cipher suite")
}

func curveIDs(names []string) ([]tls.CurveID, error) { return lookup(names, curves, "curve") }

// lookup maps names to their values in known (nil for no names), or names the first unknown one and
// what is known.
func lookup[V any](names []string, known map[string]V, what string) ([]V, error) {
	if len(names) == 0 {
		return nil, nil
	}
	out := make([]V, 0, len(names))
	for _, n := range names {
		v, ok := known[n]
		if !ok {
			return nil, fmt.Errorf("invalid %s %q, valid values are %s", what, n, strings.Join(sortedKeys(known), ", "))
		}
		out = append(out, v)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
