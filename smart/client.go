package smart

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/scopes"
)

// Token endpoint authentication methods (RFC 7591 §2).
const (
	AuthNone              = "none"                // public clients
	AuthClientSecretBasic = "client_secret_basic" // confidential symmetric, HTTP Basic
	AuthClientSecretPost  = "client_secret_post"  // confidential symmetric, form body
	AuthPrivateKeyJWT     = "private_key_jwt"     // confidential asymmetric (SMART backend services)
)

// Grant types (RFC 7591 §2).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// A Client is a registered app as the authorization server sees it: RFC 7591
// client metadata under its JSON names, plus SMART's launch URL. The
// governed registry (smart/registry) keeps more; this is what the server needs.
type Client struct {
	ID                      string          `json:"client_id"`
	Name                    string          `json:"client_name,omitempty"`
	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	// Scope is every scope the client may be granted (client-allowed).
	Scope     string `json:"scope,omitempty"`
	LaunchURL string `json:"launch_url,omitempty"`
	LogoURI   string `json:"logo_uri,omitempty"`
	// SecretHash is HashSecret of the client secret of a symmetric client.
	// The secret itself is never stored.
	SecretHash string `json:"-"`
	// OldSecretHashes are secrets being rotated out, still accepted until
	// the registry drops them at the end of the overlap window.
	OldSecretHashes []string `json:"-"`
	// Introspect lets the client call the introspection endpoint.
	Introspect bool `json:"-"`
	// StrictScopes makes an authorization request with an invalid scope fail
	// with invalid_scope instead of dropping the scope (SPEC-NOTES A2).
	StrictScopes bool `json:"-"`
}

// Public reports whether the client has no credentials of its own.
func (c *Client) Public() bool { return c.TokenEndpointAuthMethod == AuthNone }

// AllowsGrant reports whether the client registered the grant type. A client
// that lists none may use authorization_code and refresh_token (RFC 7591 §2).
func (c *Client) AllowsGrant(g string) bool {
	if len(c.GrantTypes) == 0 {
		return g == GrantAuthorizationCode || g == GrantRefreshToken
	}
	return slices.Contains(c.GrantTypes, g)
}

// allowedScopes parses the client's registered scopes.
func (c *Client) allowedScopes() scopes.Set {
	set, _ := scopes.ParseLenient(c.Scope)
	return set
}

// Validate checks the registration: a known auth method, credentials that
// fit it, and redirect URIs that are absolute https (or loopback http),
// without fragments, wildcards or script schemes.
func (c *Client) Validate() error {
	if c.ID == "" {
		return fmt.Errorf("smart: client_id is required")
	}
	switch c.TokenEndpointAuthMethod {
	case AuthNone:
	case AuthClientSecretBasic, AuthClientSecretPost:
		if c.SecretHash == "" {
			return fmt.Errorf("smart: client %q: a symmetric client needs a secret", c.ID)
		}
	case AuthPrivateKeyJWT:
		if (len(c.JWKS) == 0) == (c.JWKSURI == "") {
			return fmt.Errorf("smart: client %q: private_key_jwt needs exactly one of jwks and jwks_uri", c.ID)
		}
		if c.JWKSURI != "" {
			if u, err := url.Parse(c.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" {
				return fmt.Errorf("smart: client %q: jwks_uri must be an absolute https URL", c.ID)
			}
		}
	default:
		return fmt.Errorf("smart: client %q: unknown token_endpoint_auth_method %q", c.ID, c.TokenEndpointAuthMethod)
	}
	if c.AllowsGrant(GrantClientCredentials) && c.TokenEndpointAuthMethod != AuthPrivateKeyJWT {
		return fmt.Errorf("smart: client %q: client_credentials needs private_key_jwt", c.ID)
	}
	for _, r := range c.RedirectURIs {
		if err := ValidRedirectURI(r); err != nil {
			return fmt.Errorf("smart: client %q: %w", c.ID, err)
		}
	}
	if c.AllowsGrant(GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return fmt.Errorf("smart: client %q: authorization_code needs a redirect URI", c.ID)
	}
	if _, err := scopes.ParseSet(c.Scope); c.Scope != "" && err != nil {
		return fmt.Errorf("smart: client %q: %w", c.ID, err)
	}
	return nil
}

// ValidRedirectURI checks one redirect URI for registration: absolute https,
// or http on a loopback IP literal (RFC 8252 §7.3); no fragment, no
// wildcard, no userinfo.
func ValidRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("redirect URI %q must be absolute", raw)
	}
	switch {
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("redirect URI %q must not have a fragment", raw)
	case strings.Contains(raw, "*"):
		return fmt.Errorf("redirect URI %q must not have a wildcard", raw)
	case u.User != nil:
		return fmt.Errorf("redirect URI %q must not have userinfo", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	}
	return fmt.Errorf("redirect URI %q must use https (or http on a loopback address)", raw)
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// matchRedirect reports whether the requested redirect URI equals a
// registered one byte for byte; only for http loopback registrations may the
// port differ (RFC 8252 §7.3). No normalisation of any kind is applied.
func (c *Client) matchRedirect(requested string) bool {
	if requested == "" {
		return false
	}
	for _, reg := range c.RedirectURIs {
		if reg == requested {
			return true
		}
	}
	ru, err := url.Parse(requested)
	if err != nil || ru.Scheme != "http" || !isLoopbackHost(ru.Hostname()) || ru.User != nil || ru.Fragment != "" {
		return false
	}
	for _, reg := range c.RedirectURIs {
		gu, err := url.Parse(reg)
		if err != nil || gu.Scheme != "http" || !isLoopbackHost(gu.Hostname()) {
			continue
		}
		if gu.Hostname() == ru.Hostname() && gu.EscapedPath() == ru.EscapedPath() && gu.RawQuery == ru.RawQuery &&
			stripPort(reg) == stripPort(requested) {
			return true
		}
	}
	return false
}

// stripPort removes the port of an http URL's authority as written.
func stripPort(raw string) string {
	rest := strings.TrimPrefix(raw, "http://")
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	host := rest[:end]
	if h, _, err := net.SplitHostPort(host); err == nil {
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		host = h
	}
	return "http://" + host + rest[end:]
}

// redirectOrigins returns the origins (scheme://host[:port]) of the client's
// redirect URIs, for CORS.
// AllowsOrigin reports whether origin ("https://app.example") is the origin
// of one of the client's registered redirect URIs: the browser origins from
// which the token endpoint and a FHIR API answer this client's cross-origin
// requests.
func (c *Client) AllowsOrigin(origin string) bool {
	for _, r := range c.RedirectURIs {
		if u, err := url.Parse(r); err == nil && u.Scheme+"://"+u.Host == origin {
			return true
		}
	}
	return false
}

// NewSecret returns a fresh client secret (256 random bits) and its hash for
// Client.SecretHash. Give the secret to the client once; keep only the hash.
func NewSecret() (secret, hash string) {
	secret = randid.New()
	return secret, HashSecret(secret)
}

// HashSecret hashes a client secret for storage. Secrets made by NewSecret
// carry 256 random bits, so a fast hash is enough; do not use it for
// secrets people choose.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte("smartkit client secret\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// secretMatches compares in constant time against the current secret and
// any being rotated out.
func (c *Client) secretMatches(secret string) bool {
	h := []byte(HashSecret(secret))
	ok := 0
	for _, have := range append([]string{c.SecretHash}, c.OldSecretHashes...) {
		if have != "" {
			ok |= subtle.ConstantTimeCompare([]byte(have), h)
		}
	}
	return ok == 1
}

// ClientStore looks up registered clients. The registry (smart/registry)
// implements it; MemoryClients is a simple one.
type ClientStore interface {
	// Client returns the client with the given id in the tenant, or ErrNotFound.
	Client(ctx context.Context, tenant, id string) (*Client, error)
}

// MemoryClients is an in-memory ClientStore. The zero value is ready to use.
// Clients are stored as copies, so callers cannot change them afterwards.
type MemoryClients struct {
	mu      sync.RWMutex
	clients map[string]Client
}

// Add validates and registers c in the tenant, replacing any client with its id.
func (m *MemoryClients) Add(tenant string, c Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.GrantTypes = slices.Clone(c.GrantTypes)
	c.JWKS = slices.Clone(c.JWKS)
	c.OldSecretHashes = slices.Clone(c.OldSecretHashes)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.clients == nil {
		m.clients = map[string]Client{}
	}
	m.clients[tenant+"\x00"+c.ID] = c
	return nil
}

// Remove unregisters a client.
func (m *MemoryClients) Remove(tenant, id string) {
	m.mu.Lock()
	delete(m.clients, tenant+"\x00"+id)
	m.mu.Unlock()
}

// Client returns a copy of the client.
func (m *MemoryClients) Client(_ context.Context, tenant, id string) (*Client, error) {
	m.mu.RLock()
	c, ok := m.clients[tenant+"\x00"+id]
	m.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.GrantTypes = slices.Clone(c.GrantTypes)
	return &c, nil
}
