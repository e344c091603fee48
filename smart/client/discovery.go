package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// A Configuration is a SMART discovery document
// ({iss}/.well-known/smart-configuration, SAL 2.2 Conformance).
type Configuration struct {
	Issuer                                     string   `json:"issuer"`
	JWKSURI                                    string   `json:"jwks_uri"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	ManagementEndpoint                         string   `json:"management_endpoint"`
	RegistrationEndpoint                       string   `json:"registration_endpoint"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	ScopesSupported                            []string `json:"scopes_supported"`
	Capabilities                               []string `json:"capabilities"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

// Has reports whether the server advertises a capability. The
// non-standard "context-passthrough-*" names some EHRs publish count as the
// defined "context-*" ones (SPEC-NOTES A36).
func (c *Configuration) Has(capability string) bool {
	for _, have := range c.Capabilities {
		if have == capability || strings.Replace(have, "context-passthrough-", "context-", 1) == capability {
			return true
		}
	}
	return false
}

// ErrDiscovery is matched by every discovery failure.
var ErrDiscovery = errors.New("client: discovery failed")

const (
	discoveryMaxBytes = 256 << 10
	discoveryTTL      = 10 * time.Minute
)

// validate refuses documents a SMART app must not act on: relative
// endpoints, no S256, or plain offered.
func (c *Configuration) validate(needAuthorize bool) error {
	fail := func(msg string) error { return fmt.Errorf("%w: %s", ErrDiscovery, msg) }
	if !slices.Contains(c.CodeChallengeMethodsSupported, "S256") {
		return fail("the server does not support PKCE S256")
	}
	if slices.Contains(c.CodeChallengeMethodsSupported, "plain") {
		return fail("the server offers PKCE plain")
	}
	eps := map[string]string{"token_endpoint": c.TokenEndpoint}
	if needAuthorize {
		eps["authorization_endpoint"] = c.AuthorizationEndpoint
	}
	for name, raw := range eps {
		u, err := url.Parse(raw)
		if err != nil || !u.IsAbs() || u.Host == "" {
			return fail(name + " must be an absolute URL")
		}
		if u.Scheme != "https" && !isLoopback(u.Hostname()) {
			return fail(name + " must use https")
		}
	}
	return nil
}

// discoveryCache caches validated documents per FHIR base.
type discoveryCache struct {
	mu      sync.Mutex
	entries map[string]discoveryEntry
}

type discoveryEntry struct {
	cfg     *Configuration
	expires time.Time
}

// discover fetches and validates {iss}/.well-known/smart-configuration,
// caching it for ten minutes.
func (d *discoveryCache) discover(ctx context.Context, hc *http.Client, iss string, now time.Time) (*Configuration, error) {
	d.mu.Lock()
	if e, ok := d.entries[iss]; ok && now.Before(e.expires) {
		d.mu.Unlock()
		return e.cfg, nil
	}
	d.mu.Unlock()
	cfg, err := fetchConfiguration(ctx, hc, strings.TrimSuffix(iss, "/")+"/.well-known/smart-configuration")
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.entries == nil {
		d.entries = map[string]discoveryEntry{}
	}
	d.entries[iss] = discoveryEntry{cfg: cfg, expires: now.Add(discoveryTTL)}
	d.mu.Unlock()
	return cfg, nil
}

func fetchConfiguration(ctx context.Context, hc *http.Client, u string) (*Configuration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDiscovery, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := sameOrigin(hc).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDiscovery, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %d", ErrDiscovery, u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, discoveryMaxBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDiscovery, err)
	}
	var cfg Configuration
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %s is not a discovery document: %v", ErrDiscovery, u, err)
	}
	return &cfg, nil
}

// Discover fetches and validates the SMART configuration of a FHIR server,
// uncached. hc nil means a client with a 10 s timeout.
func Discover(ctx context.Context, hc *http.Client, fhirBase string) (*Configuration, error) {
	if hc == nil {
		hc = defaultHTTPClient()
	}
	cfg, err := fetchConfiguration(ctx, hc, strings.TrimSuffix(fhirBase, "/")+"/.well-known/smart-configuration")
	if err != nil {
		return nil, err
	}
	if err := cfg.validate(false); err != nil {
		return nil, err
	}
	return cfg, nil
}

func defaultHTTPClient() *http.Client { return &http.Client{Timeout: 10 * time.Second} }
