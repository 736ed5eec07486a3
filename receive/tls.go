package receive

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig names the files of one side of the node-to-node gRPC connection. The zero value means
// plain text.
//
// Server (ingester): CertFile and KeyFile enable TLS; CAFile additionally requires every client to
// present a certificate signed by that CA (mTLS).
//
// Client (router): any field set enables TLS. CAFile verifies the server (else the system roots);
// CertFile and KeyFile are presented to the server (mTLS); ServerName overrides the name verified
// (else the host of the endpoint address).
type TLSConfig struct {
	CertFile   string
	KeyFile    string
	CAFile     string
	ServerName string
}

// Enabled reports whether any TLS setting is given.
func (c TLSConfig) Enabled() bool {
	return c.CertFile != "" || c.KeyFile != "" || c.CAFile != "" || c.ServerName != ""
}

// Validate checks that the settings go together (it does not read the files).
func (c TLSConfig) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("TLS: a certificate needs its key and a key its certificate")
	}
	return nil
}

// ServerTLS builds the server's TLS configuration, or returns nil when TLS is off.
func (c TLSConfig) ServerTLS() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.CertFile == "" {
		if c.CAFile != "" {
			return nil, errors.New("TLS: a client CA needs a server certificate and key")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS: server certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := loadCA(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLS builds the client's TLS configuration, or returns nil when TLS is off.
func (c TLSConfig) ClientTLS() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if c.CAFile != "" {
		pool, err := loadCA(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TLS: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("TLS: CA %s: no PEM certificate found", path)
	}
	return pool, nil
}
