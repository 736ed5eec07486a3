// Package auth says which tenant a remote-write request may write, from who sent it: the verified
// client certificate of a mutual-TLS connection (--receive.tenant-certificate-field, as in Thanos
// Receive) and the bearer token or basic-auth user of a credentials file
// (--receive.credentials-file, reloaded when it changes). Senders need nothing but Prometheus' own
// remote_write options (tls_config, authorization, basic_auth); no proxy in front.
//
// Start with New and Authenticator.Authenticate. The tenant header never overrides the identity
// (tenant.FromRequestAs); the receive package maps the errors to answers (ErrUnauthenticated: 401,
// ErrForbidden and tenant.ErrOtherTenant: 403). With neither flag set, New returns nil and tenants
// come from the header as before.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"

	"github.com/weir-metrics/weir/internal/flags"
	"github.com/weir-metrics/weir/internal/reload"
)

// The fields of a client certificate that can name its tenant (Thanos' names).
const (
	FieldOrganization       = "organization"
	FieldOrganizationalUnit = "organizationalUnit"
	FieldCommonName         = "commonName"
)

var (
	// ErrUnauthenticated is wrapped by the error of a request without a valid identity: no client
	// certificate, no credentials or wrong ones.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden is wrapped by the error of a request whose identity may not write: a certificate
	// without the tenant field, or a certificate and credentials of different tenants.
	ErrForbidden = errors.New("forbidden")
)

// Config is how senders are identified. The zero value identifies nobody: the tenant header decides.
type Config struct {
	// CertificateField names the client-certificate field whose (first) value is the sender's tenant
	// (empty: certificates name no tenant). It needs mutual TLS on the remote-write listener.
	CertificateField string
	// CredentialsFile is the path of a credentials file (File; empty: none). Every request must then
	// carry a bearer token or basic-auth user and password of it.
	CredentialsFile string
}

// RegisterFlags registers --receive.tenant-certificate-field and --receive.credentials-file.
func (c *Config) RegisterFlags(r flags.Registry) {
	r.Flag("receive.tenant-certificate-field", "Use TLS client's certificate field to determine tenant for write requests. Must be one of "+
		FieldOrganization+", "+FieldOrganizationalUnit+" or "+FieldCommonName+"; needs --remote-write.server-tls-client-ca. "+
		"A tenant header naming another tenant than the certificate is refused (403).").
		PlaceHolder("<field>").EnumVar(&c.CertificateField, "", FieldOrganization, FieldOrganizationalUnit, FieldCommonName)
	r.Flag("receive.credentials-file", "Path of a YAML file of per-tenant bearer-token (SHA-256) and basic-auth (bcrypt) hashes; "+
		"every remote-write request must then carry credentials of it (401 otherwise) and writes the tenant they belong to "+
		"(403 for a tenant header naming another). Reloaded when the file changes. Empty: no credentials are asked for.").
		PlaceHolder("<path>").StringVar(&c.CredentialsFile)
}

// Enabled reports whether senders are identified at all.
func (c Config) Enabled() bool { return c.CertificateField != "" || c.CredentialsFile != "" }

// Validate checks the settings (it does not read the file).
func (c Config) Validate() error {
	switch c.CertificateField {
	case "", FieldOrganization, FieldOrganizationalUnit, FieldCommonName:
		return nil
	}
	return flags.Named("receive.tenant-certificate-field", fmt.Errorf("%q: must be %s, %s or %s",
		c.CertificateField, FieldOrganization, FieldOrganizationalUnit, FieldCommonName))
}

// Authenticator identifies senders (see the package documentation). Safe for concurrent use.
type Authenticator struct {
	field string
	creds *reload.Value[*credentials] // nil without a credentials file
}

// New returns an Authenticator, or nil when c identifies nobody. The credentials file is read now (a
// missing or bad file is a start-up error) and reloaded when it changes; opts names it in logs and
// metrics (opts.Paths is set here).
func New(c Config, opts reload.Options) (*Authenticator, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, nil
	}
	a := &Authenticator{field: c.CertificateField}
	if c.CredentialsFile != "" {
		opts.Paths = []string{c.CredentialsFile}
		slots := max(runtime.GOMAXPROCS(0)/2, 1)
		v, err := reload.New(opts, func() (*credentials, error) { return loadCredentials(c.CredentialsFile, slots) })
		if err != nil {
			return nil, flags.Named("receive.credentials-file", err)
		}
		a.creds = v
	}
	return a, nil
}

// Authenticate returns the tenant r's sender may write. With both a certificate field and a
// credentials file, the request needs both, and they must name the same tenant. Errors wrap
// ErrUnauthenticated or ErrForbidden, or are the request context's (a password waiting too long for
// its verification).
func (a *Authenticator) Authenticate(r *http.Request) (string, error) {
	var certTenant string
	if a.field != "" {
		var err error
		if certTenant, err = a.certificateTenant(r); err != nil {
			return "", err
		}
	}
	if a.creds == nil {
		return certTenant, nil
	}
	credTenant, err := credentialsTenant(r.Context(), a.creds.Get(), r)
	if err != nil {
		return "", err
	}
	if certTenant != "" && certTenant != credTenant {
		return "", fmt.Errorf("%w: the client certificate is of tenant %q, the credentials of tenant %q", ErrForbidden, certTenant, credTenant)
	}
	return credTenant, nil
}

// certificateTenant is the tenant in the configured field of the verified client certificate.
func (a *Authenticator) certificateTenant(r *http.Request) (string, error) {
	// VerifiedChains, not PeerCertificates: only a certificate the server verified against its
	// client CA identifies anybody.
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", fmt.Errorf("%w: no verified client certificate (mutual TLS)", ErrUnauthenticated)
	}
	subject := r.TLS.VerifiedChains[0][0].Subject
	var id string
	switch a.field {
	case FieldOrganization:
		id = first(subject.Organization)
	case FieldOrganizationalUnit:
		id = first(subject.OrganizationalUnit)
	case FieldCommonName:
		id = subject.CommonName
	}
	if id == "" {
		return "", fmt.Errorf("%w: the client certificate has no %s to name its tenant", ErrForbidden, a.field)
	}
	return id, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// credentialsTenant is the tenant of r's bearer token or basic-auth user.
func credentialsTenant(ctx context.Context, c *credentials, r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	var id string
	var err error
	if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		id, err = c.tokenTenant(strings.TrimSpace(token))
	} else if name, password, ok := r.BasicAuth(); ok {
		id, err = c.userTenant(ctx, name, password)
	} else {
		return "", fmt.Errorf("%w: no bearer token or basic-auth credentials", ErrUnauthenticated)
	}
	if errors.Is(err, errWrongCredentials) {
		return "", fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	return id, err
}

// Challenge is the WWW-Authenticate value of a 401 answer: the schemes the credentials file offers.
const Challenge = `Bearer realm="weir", Basic realm="weir", charset="UTF-8"`
