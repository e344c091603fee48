package registry

import (
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/scopes"
	"github.com/smartkit/smartkit/smart"
)

// ErrInvalid is matched by every metadata validation error.
var ErrInvalid = errors.New("registry: invalid client metadata")

// A FieldError names one bad value.
type FieldError struct {
	Field  string // RFC 7591 name, e.g. "redirect_uris"
	Value  string
	Reason string
}

// ValidationError lists every bad value of a registration.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("registry: invalid client metadata: ")
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		if f.Value != "" {
			b.WriteString(" " + quote(f.Value))
		}
		b.WriteString(": " + f.Reason)
	}
	return b.String()
}

// Is makes a ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Code returns the RFC 7591 §3.2.2 error code: invalid_redirect_uri when a
// redirect URI is at fault, invalid_client_metadata otherwise.
func (e *ValidationError) Code() string {
	for _, f := range e.Fields {
		if f.Field == "redirect_uris" {
			return "invalid_redirect_uri"
		}
	}
	return "invalid_client_metadata"
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

// Validate checks metadata on every write: absolute https (or loopback
// http) redirect and launch URIs without wildcards or fragments, no script
// schemes, an https jwks_uri, keys that parse, a known auth method with the
// credentials it needs, grant types the server supports, scopes that parse.
func (m Metadata) Validate() error {
	var fs []FieldError
	add := func(field, value, reason string) { fs = append(fs, FieldError{field, value, reason}) }
	if strings.TrimSpace(m.ClientName) == "" {
		add("client_name", "", "is required")
	}
	for _, r := range m.RedirectURIs {
		if err := smart.ValidRedirectURI(r); err != nil {
			add("redirect_uris", r, "must be absolute https (or http on a loopback address), without wildcard or fragment")
		}
	}
	grants := m.GrantTypes
	if len(grants) == 0 {
		grants = []string{smart.GrantAuthorizationCode}
	}
	code := false
	for _, g := range grants {
		switch g {
		case smart.GrantAuthorizationCode:
			code = true
		case smart.GrantRefreshToken, smart.GrantClientCredentials:
		default:
			add("grant_types", g, "unsupported grant type")
		}
	}
	if code && len(m.RedirectURIs) == 0 {
		add("redirect_uris", "", "authorization_code needs at least one redirect URI")
	}
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			add("response_types", rt, "only code is supported")
		}
	}
	switch m.TokenEndpointAuthMethod {
	case "", smart.AuthNone, smart.AuthClientSecretBasic, smart.AuthClientSecretPost:
	case smart.AuthPrivateKeyJWT:
		if (len(m.JWKS) == 0) == (m.JWKSURI == "") {
			add("jwks", "", "private_key_jwt needs exactly one of jwks and jwks_uri")
		}
	default:
		add("token_endpoint_auth_method", m.TokenEndpointAuthMethod, "unknown method")
	}
	if m.JWKSURI != "" {
		if u, err := url.Parse(m.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" || u.Fragment != "" {
			add("jwks_uri", m.JWKSURI, "must be an absolute https URL")
		}
	}
	if len(m.JWKS) > 0 {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(m.JWKS, &set); err != nil || len(set.Keys) == 0 {
			add("jwks", "", "must be a JSON Web Key Set with at least one key")
		} else {
			for _, k := range set.Keys {
				if k.KeyID == "" || !k.IsPublic() {
					add("jwks", k.KeyID, "each key needs a kid and must be public")
				}
			}
		}
	}
	if m.LaunchURI != "" && !webURL(m.LaunchURI) {
		add("launch_uri", m.LaunchURI, "must be absolute https (or http on a loopback address), without fragment")
	}
	for field, u := range map[string]string{"client_uri": m.ClientURI, "logo_uri": m.LogoURI, "tos_uri": m.TOSURI, "policy_uri": m.PolicyURI} {
		if u != "" && !webURL(u) {
			add(field, u, "must be an absolute https URL")
		}
	}
	for _, c := range m.Contacts {
		if !strings.Contains(c, "@") || strings.ContainsAny(c, " <>\"") {
			add("contacts", c, "must be an email address")
		}
	}
	if m.Scope == "" {
		add("scope", "", "is required: list every scope the app may ask for")
	} else if _, err := scopes.ParseSet(m.Scope); err != nil {
		add("scope", m.Scope, err.Error())
	}
	if len(fs) > 0 {
		return &ValidationError{Fields: fs}
	}
	return nil
}

// webURL accepts absolute https URLs, and http on loopback addresses.
func webURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || u.User != nil || strings.Contains(raw, "*") {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return u.Scheme == "http" && ip != nil && ip.IsLoopback()
}
