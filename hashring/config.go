package hashring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Algorithm names a placement algorithm, as in the hashrings file and --receive.hashrings-algorithm.
type Algorithm string

const (
	// AlgorithmHashmod places a series on endpoint hash mod N (Thanos' default algorithm).
	AlgorithmHashmod Algorithm = "hashmod"
	// AlgorithmKetama places series by consistent hashing; a membership change moves ~1/N of them.
	AlgorithmKetama Algorithm = "ketama"
)

// MatcherType says how the tenants of a hashring are matched against a request's tenant.
type MatcherType string

const (
	// MatcherExact matches tenants by equality (the default, also for an empty tenant_matcher_type).
	MatcherExact MatcherType = "exact"
	// MatcherGlob matches tenants with shell patterns (path.Match: *, ?, [a-z], \ escapes).
	MatcherGlob MatcherType = "glob"
)

// Options are the settings a hashrings file is read with; they come from flags, not from the file.
// The zero value is usable: hashmod by default, RF 1, DefaultKetamaPoints.
type Options struct {
	// DefaultAlgorithm is used by hashrings without "algorithm" (--receive.hashrings-algorithm).
	// Empty means AlgorithmHashmod, Thanos' default.
	DefaultAlgorithm Algorithm
	// ReplicationFactor is the number of endpoints each series is written to
	// (--receive.replication-factor). Every hashring needs at least that many endpoints (zones when
	// it has zones). Zero means 1.
	ReplicationFactor int
	// KetamaPoints is the number of virtual points per endpoint of ketama rings. Zero means
	// DefaultKetamaPoints, which places series exactly as Thanos Receive does.
	KetamaPoints int
}

func (o Options) withDefaults() Options {
	if o.DefaultAlgorithm == "" {
		o.DefaultAlgorithm = AlgorithmHashmod
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = 1
	}
	if o.KetamaPoints == 0 {
		o.KetamaPoints = DefaultKetamaPoints
	}
	return o
}

// Validate checks the options themselves (not a file).
func (o Options) Validate() error {
	o = o.withDefaults()
	if o.DefaultAlgorithm != AlgorithmHashmod && o.DefaultAlgorithm != AlgorithmKetama {
		return fmt.Errorf("default hashring algorithm %q: want %q or %q", o.DefaultAlgorithm, AlgorithmHashmod, AlgorithmKetama)
	}
	if o.ReplicationFactor < 1 {
		return fmt.Errorf("replication factor %d: must be at least 1", o.ReplicationFactor)
	}
	if o.KetamaPoints < 1 {
		return fmt.Errorf("ketama points per endpoint %d: must be at least 1", o.KetamaPoints)
	}
	return nil
}

// RingConfig is one hashring of a hashrings file (Thanos format):
//
//	{"hashring": "default",
//	 "tenants": ["team-*"], "tenant_matcher_type": "glob",
//	 "endpoints": ["ingester-0:10901", {"address": "ingester-1:10901", "az": "zone-b"}],
//	 "algorithm": "ketama",
//	 "external_labels": {"ring": "a"}}
//
// A hashring without tenants is the default ring, for tenants no other hashring matches.
type RingConfig struct {
	// Name is "hashring". It may be empty, as in Thanos; names that are set must be unique.
	Name string
	// Tenants are tenant IDs (exact) or patterns (glob). Empty: the default ring.
	Tenants []string
	// TenantMatcherType is MatcherExact or MatcherGlob ("" in the file means exact).
	TenantMatcherType MatcherType
	// Endpoints are the ingesters, in file order.
	Endpoints []Endpoint
	// Algorithm is the ring's algorithm; after ParseConfig never empty (the default was applied).
	Algorithm Algorithm
	// ExternalLabels are added to the blocks of the ring's tenants (nil when none).
	ExternalLabels labels.Labels
}

// displayName names ring i in error messages and metrics: its name, or hashrings[i] when unnamed.
func displayName(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("hashrings[%d]", i)
	}
	return name
}

// ringError prefixes err with the ring it is about.
func ringError(i int, name string, err error) error {
	if name == "" {
		return fmt.Errorf("hashrings[%d]: %w", i, err)
	}
	return fmt.Errorf("hashrings[%d] %q: %w", i, name, err)
}

// fileRing is the JSON shape of one hashring.
type fileRing struct {
	Hashring          string            `json:"hashring"`
	Tenants           []string          `json:"tenants"`
	TenantMatcherType string            `json:"tenant_matcher_type"`
	Endpoints         []json.RawMessage `json:"endpoints"`
	Algorithm         string            `json:"algorithm"`
	ExternalLabels    map[string]string `json:"external_labels"`
	// ShuffleSharding is a Thanos feature Weir does not have: refused with a clear error rather than
	// silently placing series elsewhere than Thanos would.
	ShuffleSharding json.RawMessage `json:"shuffle_sharding_config"`
}

// fileEndpoint is the JSON shape of an endpoint written as an object.
type fileEndpoint struct {
	Address string `json:"address"`
	AZ      string `json:"az"`
	// CapNProtoAddress is Thanos' Cap'n Proto write address. Weir forwards over gRPC to Address and
	// ignores it; it is accepted so that a Thanos file loads unchanged.
	CapNProtoAddress string `json:"capnproto_address"`
}

// ParseConfig reads a hashrings file strictly and validates it with opts: unknown fields anywhere, an
// empty file, malformed endpoints, and every ambiguity (duplicate endpoints in a ring, duplicate ring
// names, a tenant in two rings, two default rings) are errors that name the ring and the field.
// The default algorithm is applied: every returned RingConfig has its Algorithm set.
func ParseConfig(data []byte, opts Options) ([]RingConfig, error) {
	cfgs, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := Validate(cfgs, opts); err != nil {
		return nil, err
	}
	def := opts.withDefaults().DefaultAlgorithm
	for i := range cfgs {
		if cfgs[i].Algorithm == "" {
			cfgs[i].Algorithm = def
		}
	}
	return cfgs, nil
}

// decode turns the JSON into RingConfigs, refusing unknown fields and malformed values.
func decode(data []byte) ([]RingConfig, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raws []json.RawMessage
	if err := dec.Decode(&raws); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("hashrings file is empty")
		}
		return nil, fmt.Errorf("hashrings file is not a JSON array of hashrings: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("hashrings file has data after its JSON array")
	}
	if len(raws) == 0 {
		return nil, errors.New("hashrings file holds no hashring")
	}
	cfgs := make([]RingConfig, 0, len(raws))
	for i, raw := range raws {
		c, err := decodeRing(raw)
		if err != nil {
			return nil, ringError(i, c.Name, err)
		}
		cfgs = append(cfgs, c)
	}
	return cfgs, nil
}

func decodeRing(raw json.RawMessage) (RingConfig, error) {
	// The name first, leniently, so that errors below can name the ring.
	var named struct {
		Hashring string `json:"hashring"`
	}
	_ = json.Unmarshal(raw, &named)
	c := RingConfig{Name: named.Hashring}

	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return c, errors.New("is null, want an object")
	}
	var fr fileRing
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr); err != nil {
		return c, err
	}
	if fr.ShuffleSharding != nil {
		return c, errors.New("shuffle_sharding_config: shuffle sharding is not supported by Weir")
	}
	c.Name = fr.Hashring
	c.Tenants = fr.Tenants
	c.TenantMatcherType = MatcherType(fr.TenantMatcherType)
	c.Algorithm = Algorithm(fr.Algorithm)
	for j, raw := range fr.Endpoints {
		e, err := decodeEndpoint(raw)
		if err != nil {
			return c, fmt.Errorf("endpoints[%d]: %w", j, err)
		}
		c.Endpoints = append(c.Endpoints, e)
	}
	if len(fr.ExternalLabels) > 0 {
		// Validated later; invalid names must still be kept to be reported.
		c.ExternalLabels = labels.FromMap(fr.ExternalLabels)
	}
	return c, nil
}

// decodeEndpoint accepts "host:port" or {"address": "host:port", "az": "zone"}.
func decodeEndpoint(raw json.RawMessage) (Endpoint, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return Endpoint{Address: s}, nil
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Endpoint{}, fmt.Errorf(`want "host:port" or {"address": "host:port", "az": "zone"}, got %s`, abbreviate(trimmed))
	}
	var fe fileEndpoint
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fe); err != nil {
		return Endpoint{}, err
	}
	return Endpoint{Address: fe.Address, AZ: fe.AZ}, nil
}

func abbreviate(b []byte) string {
	const limit = 40
	if len(b) > limit {
		return strings.ToValidUTF8(string(b[:limit]), "") + "…"
	}
	return string(b)
}

// Validate checks decoded hashrings against opts; ParseConfig and NewRings call it. Errors name the
// ring (hashrings[i] "name") and the field.
func Validate(cfgs []RingConfig, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	if len(cfgs) == 0 {
		return errors.New("no hashring")
	}
	names := make(map[string]int)
	type tenantKey struct {
		matcher MatcherType
		tenant  string
	}
	tenants := make(map[tenantKey]int)
	defaultRing := -1
	for i, c := range cfgs {
		if err := validateRing(c, opts); err != nil {
			return ringError(i, c.Name, err)
		}
		if c.Name != "" {
			if j, ok := names[c.Name]; ok {
				return ringError(i, c.Name, fmt.Errorf("hashring: name %q is also the name of hashrings[%d]", c.Name, j))
			}
			names[c.Name] = i
		}
		if len(c.Tenants) == 0 {
			if defaultRing >= 0 {
				return ringError(i, c.Name, fmt.Errorf("tenants: empty, and so is hashrings[%d] %q: only one hashring may be the default (tenant-less) ring",
					defaultRing, cfgs[defaultRing].Name))
			}
			defaultRing = i
		}
		matcher := c.TenantMatcherType
		if matcher == "" {
			matcher = MatcherExact
		}
		for _, t := range c.Tenants {
			k := tenantKey{matcher, t}
			if j, ok := tenants[k]; ok && j != i {
				return ringError(i, c.Name, fmt.Errorf("tenants: %q is also listed in hashrings[%d] %q (%s): a tenant belongs to one hashring",
					t, j, cfgs[j].Name, matcher))
			}
			tenants[k] = i
		}
	}
	return nil
}

// validateRing checks one hashring on its own.
func validateRing(c RingConfig, opts Options) error {
	switch c.TenantMatcherType {
	case "", MatcherExact, MatcherGlob:
	default:
		return fmt.Errorf("tenant_matcher_type: unknown matcher %q (want %q or %q)", c.TenantMatcherType, MatcherExact, MatcherGlob)
	}
	alg := c.Algorithm
	if alg == "" {
		alg = opts.DefaultAlgorithm
	}
	if alg != AlgorithmHashmod && alg != AlgorithmKetama {
		return fmt.Errorf("algorithm: unknown algorithm %q (want %q or %q)", c.Algorithm, AlgorithmKetama, AlgorithmHashmod)
	}
	seen := make(map[string]bool, len(c.Tenants))
	for j, t := range c.Tenants {
		if t == "" {
			return fmt.Errorf("tenants[%d]: empty tenant", j)
		}
		if seen[t] {
			return fmt.Errorf("tenants[%d]: %q is listed twice", j, t)
		}
		seen[t] = true
		if c.TenantMatcherType == MatcherGlob {
			if _, err := path.Match(t, ""); err != nil {
				return fmt.Errorf("tenants[%d]: glob pattern %q: %w", j, t, err)
			}
		}
	}

	if len(c.Endpoints) == 0 {
		return errors.New("endpoints: empty: a hashring needs at least one endpoint")
	}
	seenEndpoint := make(map[string]int, len(c.Endpoints))
	for j, e := range c.Endpoints {
		host, port, err := net.SplitHostPort(e.Address)
		if err != nil || host == "" || port == "" || strings.TrimSpace(e.Address) != e.Address {
			return fmt.Errorf("endpoints[%d]: address %q is not host:port", j, e.Address)
		}
		if k, ok := seenEndpoint[e.Address]; ok {
			return fmt.Errorf("endpoints[%d]: duplicate endpoint %q (also endpoints[%d])", j, e.Address, k)
		}
		seenEndpoint[e.Address] = j
	}
	if opts.ReplicationFactor > len(c.Endpoints) {
		return fmt.Errorf("endpoints: %d endpoints are fewer than the replication factor %d", len(c.Endpoints), opts.ReplicationFactor)
	}
	zone, zones, err := zoneIndexes(c.Endpoints)
	if err != nil {
		return fmt.Errorf("endpoints: %w", err)
	}
	if zone != nil {
		if alg == AlgorithmHashmod {
			return errors.New("endpoints: az is set but the hashmod algorithm cannot place replicas in distinct zones: use \"algorithm\": \"ketama\", or remove az")
		}
		if zones < opts.ReplicationFactor {
			return fmt.Errorf("endpoints: %d distinct zones (az) are fewer than the replication factor %d: replicas must land in distinct zones", zones, opts.ReplicationFactor)
		}
	}

	var lerr error
	c.ExternalLabels.Range(func(l labels.Label) {
		switch {
		case lerr != nil:
		case !model.LegacyValidation.IsValidLabelName(l.Name):
			lerr = fmt.Errorf("external_labels: %q is not a valid label name", l.Name)
		case l.Value == "":
			lerr = fmt.Errorf("external_labels: %q has an empty value", l.Name)
		}
	})
	return lerr
}
