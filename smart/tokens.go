package smart

import (
	"context"
	"errors"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/internal/josekit"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
)

// AccessClaims are the claims of smartkit's JWT access tokens (RFC 9068
// shape, typ "at+jwt"), with the SMART launch context the grant reveals.
type AccessClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	ID       string `json:"jti"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
	GrantID  string `json:"grant"`
	FHIRUser string `json:"fhirUser,omitempty"`
	// Clearance is the grant's sensitivity clearance for the proxy.
	Clearance *consent.Clearance `json:"clearance,omitempty"`
	launch.Context
}

// IDClaims are the claims of an OpenID Connect id_token as SMART profiles it.
type IDClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
	Nonce    string `json:"nonce,omitempty"`
	FHIRUser string `json:"fhirUser,omitempty"`
	Name     string `json:"name,omitempty"`
}

// mintAccess signs an access token for the grant with the given scope and
// revealed context.
func (s *Server) mintAccess(t *Tenant, g Grant, scope string, ctx launch.Context, life time.Duration) (string, AccessClaims, error) {
	now := s.now()
	c := AccessClaims{
		Issuer: s.Issuer(t.ID), Subject: g.UserID, Audience: g.Audience, ClientID: g.ClientID, Scope: scope,
		ID: randid.New(), IssuedAt: now.Unix(), Expiry: now.Add(life).Unix(), GrantID: g.ID,
		FHIRUser: g.FHIRUser, Clearance: g.Clearance, Context: ctx,
	}
	if c.Subject == "" {
		c.Subject = g.ClientID
	}
	k := s.keys(t).signer(s.accessAlg())
	if k == nil {
		return "", c, oauthErr(ServerError, "no signing key")
	}
	tok, err := signJSON(k.access, c)
	return tok, c, err
}

func signJSON(signer jose.Signer, claims any) (string, error) {
	return josekit.SignJSON(signer, claims)
}

// mintID signs an id_token with RS256 (SAL: servers SHALL be able to).
func (s *Server) mintID(t *Tenant, c IDClaims) (string, error) {
	k := s.keys(t).signer(RS256)
	if k == nil {
		return "", oauthErr(ServerError, "no RS256 key for id_tokens")
	}
	return signJSON(k.plain, c)
}

// Mint records g as a grant (a fresh id when g.ID is empty) and signs an
// access token for it, valid for life: for resource-server tests and for
// hosts that issue tokens outside the OAuth flows (a service account). The
// token is exactly what the token endpoint would issue for that grant.
func (s *Server) Mint(ctx context.Context, tenant string, g Grant, life time.Duration) (string, error) {
	if err := s.init(); err != nil {
		return "", err
	}
	t, ok := s.tenants[tenant]
	if !ok {
		return "", errors.New("smart: unknown tenant")
	}
	if g.ID == "" {
		g.ID = randid.New()
	}
	g.Tenant = tenant
	if g.Audience == "" {
		g.Audience = t.FHIRBases[0]
	}
	now := s.now()
	g.Created, g.Expires = now, now.Add(life)
	if err := s.Store.SaveGrant(ctx, g); err != nil {
		return "", err
	}
	set, err := scopes.ParseSet(g.Scope)
	if err != nil {
		return "", err
	}
	tok, _, err := s.mintAccess(t, g, g.Scope, g.Context.Reveal(set, true), life)
	return tok, err
}
