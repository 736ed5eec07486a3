package tenant

import (
	"errors"
	"fmt"
	"net/http"
)

// MaxIDLength bounds a tenant ID. The ID is a directory name on disk and a label value in object storage,
// so it is kept well below file-system name limits.
const MaxIDLength = 150

// DefaultID is the tenant of requests that name none, as in Thanos Receive.
const DefaultID = "default-tenant"

// DefaultHeader is the HTTP header that carries the tenant ID, as in Thanos Receive.
const DefaultHeader = "THANOS-TENANT"

// DefaultLabelName is the external label that names the tenant on its blocks, as in Thanos Receive.
const DefaultLabelName = "tenant_id"

// ErrInvalidID is wrapped by every error that ValidateID returns.
var ErrInvalidID = errors.New("invalid tenant ID")

// ValidateID checks that id is safe to use as a directory name under the data directory and as a label
// value: letters, digits, '-', '_' and '.', not "." or "..", at most MaxIDLength bytes. Every entry point
// (HTTP, node-to-node) calls it: a tenant ID that escapes the data directory is a known CVE class in
// this field (Cortex, Thanos).
func ValidateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case len(id) > MaxIDLength:
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidID, len(id), MaxIDLength)
	case id == "." || id == "..":
		return fmt.Errorf("%w: %q is not allowed", ErrInvalidID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if isIDByte(c) {
			continue
		}
		return fmt.Errorf("%w: character %q at position %d (allowed: letters, digits, '-', '_', '.')", ErrInvalidID, c, i)
	}
	return nil
}

func isIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// ErrOtherTenant is wrapped by the error of a request whose tenant header names another tenant than
// the one its sender's identity (client certificate, credentials) may write.
var ErrOtherTenant = errors.New("tenant header names another tenant than the identity of the sender")

// FromRequest returns the validated tenant ID that r names in header, or defaultID when the header is
// absent. A header that is present but empty is an error rather than the default: it is almost always a
// misconfigured sender, and writing its data to another tenant would be worse than refusing it.
func FromRequest(r *http.Request, header, defaultID string) (string, error) {
	id, ok, err := fromHeader(r, header)
	if !ok {
		return defaultID, err
	}
	return id, err
}

// FromRequestAs returns identity, the tenant that r's sender may write, after checking that header,
// if r has one, names the same tenant: a header never overrides an identity (ErrOtherTenant).
func FromRequestAs(r *http.Request, header, identity string) (string, error) {
	if err := ValidateID(identity); err != nil {
		return "", fmt.Errorf("tenant of the sender's identity: %w", err)
	}
	id, ok, err := fromHeader(r, header)
	switch {
	case err != nil:
		return "", err
	case ok && id != identity:
		return "", fmt.Errorf("%w: header %s names %q, the sender may write %q only", ErrOtherTenant, header, id, identity)
	}
	return identity, nil
}

// fromHeader returns the validated tenant ID in header and whether r has the header.
func fromHeader(r *http.Request, header string) (string, bool, error) {
	values, ok := r.Header[http.CanonicalHeaderKey(header)]
	if !ok {
		return "", false, nil
	}
	if len(values) != 1 {
		return "", true, fmt.Errorf("%w: header %s given %d times", ErrInvalidID, header, len(values))
	}
	id := values[0]
	if err := ValidateID(id); err != nil {
		return "", true, fmt.Errorf("header %s: %w", header, err)
	}
	return id, true, nil
}
