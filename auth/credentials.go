package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"

	"github.com/weir-metrics/weir/tenant"
)

// File is the credentials file (--receive.credentials-file): for each tenant, the bearer tokens and
// basic-auth users that may write it and nothing else. It holds hashes only:
//
//	tenants:
//	  team-a:
//	    bearer_token_sha256:            # hex SHA-256 of each token: printf %s "$TOKEN" | sha256sum
//	      - 3f1c…e9
//	    basic_auth_users:               # bcrypt of each password: htpasswd -nbBC 10 "" "$PASSWORD" | cut -d: -f2
//	      prometheus-a: $2y$10$…
//
// Why two schemes: a bearer token is a random secret made by a machine (openssl rand -hex 32), and
// with 128 bits or more of entropy a fast hash is as safe against guessing as a slow one (GitHub and
// GitLab keep their access tokens' SHA-256 the same way); a fast hash also finds the token's tenant
// with one map lookup, where salted bcrypt hashes would have to be tried one by one per request. A
// password may be chosen by a person, so it gets bcrypt (as Prometheus' web config does), whose cost
// is paid once per user and password: verified passwords are cached (see basicCache).
type File struct {
	Tenants map[string]TenantCredentials `json:"tenants"`
}

// TenantCredentials are the credentials of one tenant.
type TenantCredentials struct {
	BearerTokenSHA256 []string          `json:"bearer_token_sha256,omitempty"`
	BasicAuthUsers    map[string]string `json:"basic_auth_users,omitempty"`
}

// credentials is a loaded credentials file: immutable but for the cache of verified passwords, which
// lives and dies with it (a reload starts with an empty cache, so a removed or changed password stops
// working at once).
type credentials struct {
	tokens map[[sha256.Size]byte]string // token digest → tenant
	users  map[string]user
	cache  basicCache
	// slots bounds the bcrypt verifications at once: a flood of wrong passwords costs at most these
	// cores; other requests wait for a slot within their deadline.
	slots chan struct{}
}

type user struct {
	tenant string
	hash   []byte // bcrypt
}

// loadCredentials reads and checks a credentials file.
func loadCredentials(path string, slots int) (*credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	var f File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	c, err := f.compile(slots)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return c, nil
}

// compile checks f and indexes it: every tenant ID valid, every hash well formed, no token or user
// given to two tenants.
func (f File) compile(slots int) (*credentials, error) {
	c := &credentials{
		tokens: map[[sha256.Size]byte]string{},
		users:  map[string]user{},
		slots:  make(chan struct{}, max(slots, 1)),
	}
	if _, err := rand.Read(c.cache.key[:]); err != nil {
		return nil, fmt.Errorf("cache key: %w", err)
	}
	c.cache.macs = map[string][sha256.Size]byte{}
	for id, tc := range f.Tenants {
		if err := tenant.ValidateID(id); err != nil {
			return nil, err
		}
		for i, h := range tc.BearerTokenSHA256 {
			var d [sha256.Size]byte
			if n, err := hex.Decode(d[:], []byte(strings.TrimSpace(h))); err != nil || n != sha256.Size {
				return nil, fmt.Errorf("tenant %s: bearer_token_sha256[%d]: not a hex SHA-256 (64 hex digits)", id, i)
			}
			if other, dup := c.tokens[d]; dup {
				return nil, fmt.Errorf("tenant %s: bearer_token_sha256[%d]: the same token is given to tenant %s", id, i, other)
			}
			c.tokens[d] = id
		}
		for name, h := range tc.BasicAuthUsers {
			if name == "" || strings.Contains(name, ":") {
				return nil, fmt.Errorf("tenant %s: user %q: a user name is not empty and has no colon", id, name)
			}
			if _, err := bcrypt.Cost([]byte(h)); err != nil {
				return nil, fmt.Errorf("tenant %s: user %s: not a bcrypt hash: %w", id, name, err)
			}
			if other, dup := c.users[name]; dup {
				return nil, fmt.Errorf("tenant %s: user %s is also a user of tenant %s", id, name, other.tenant)
			}
			c.users[name] = user{tenant: id, hash: []byte(h)}
		}
	}
	return c, nil
}

// errWrongCredentials is the cause of every refused token or password; the message never says
// which part was wrong.
var errWrongCredentials = errors.New("unknown token, or wrong user name or password")

// tokenTenant returns the tenant of a bearer token.
func (c *credentials) tokenTenant(token string) (string, error) {
	d := sha256.Sum256([]byte(token))
	id, ok := c.tokens[d]
	if !ok {
		return "", errWrongCredentials
	}
	return id, nil
}

// userTenant returns the tenant of a user whose password is right. A password verified before
// (against this file) costs an HMAC; another one a bcrypt verification, in a slot.
func (c *credentials) userTenant(ctx context.Context, name, password string) (string, error) {
	u, ok := c.users[name]
	if !ok {
		return "", errWrongCredentials
	}
	mac := c.cache.mac(name, password)
	if known, ok := c.cache.get(name); ok {
		// One password matches a bcrypt hash (bcrypt refuses passwords over 72 bytes, the length it
		// reads), so another one than the verified one is wrong: no bcrypt needed to say so.
		if subtle.ConstantTimeCompare(known[:], mac[:]) == 1 {
			return u.tenant, nil
		}
		return "", errWrongCredentials
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("waiting to verify a password: %w", ctx.Err())
	}
	err := bcrypt.CompareHashAndPassword(u.hash, []byte(password))
	<-c.slots
	if err != nil {
		return "", errWrongCredentials
	}
	c.cache.put(name, mac)
	return u.tenant, nil
}

// basicCache remembers, per user, a keyed hash (HMAC-SHA-256 under a random key made when the file
// was loaded) of the password last verified with bcrypt, so that a sender's every request after its
// first costs an HMAC (about a microsecond) instead of a bcrypt verification (tens of milliseconds;
// BenchmarkAuthenticate). It holds no password, and without the key its entries cannot be tested
// against guesses at all. It is bounded by the number of users in the file and dropped with it.
type basicCache struct {
	key  [32]byte
	macs map[string][sha256.Size]byte
	mu   sync.RWMutex
	// hmacs are keyed HMAC states to reuse (Reset keeps the key): a new one costs more than the
	// hash itself.
	hmacs sync.Pool
}

func (b *basicCache) mac(name, password string) [sha256.Size]byte {
	h, _ := b.hmacs.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, b.key[:])
	}
	h.Reset()
	_, _ = io.WriteString(h, name)
	_, _ = h.Write([]byte{0})
	_, _ = io.WriteString(h, password)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	b.hmacs.Put(h)
	return out
}

func (b *basicCache) get(name string) ([sha256.Size]byte, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	m, ok := b.macs[name]
	return m, ok
}

func (b *basicCache) put(name string, mac [sha256.Size]byte) {
	b.mu.Lock()
	b.macs[name] = mac
	b.mu.Unlock()
}

// HashToken is the bearer_token_sha256 entry of token.
func HashToken(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}
