package smart

import (
	"context"
	"time"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/launch"
)

// A Grant is the decision behind a family of tokens: who authorised which
// client for what, in which context. Its id travels in every access token
// ("grant" claim) and in introspection, so revoking a consent, suspending an
// app or detecting a replay revokes exactly this family everywhere.
type Grant struct {
	ID        string
	Tenant    string
	ClientID  string
	UserID    string         // "" for backend services
	FHIRUser  string         // e.g. "Practitioner/123"
	Scope     string         // granted scopes, in the client's dialect
	Audience  string         // the FHIR base URL the tokens are for
	Context   launch.Context // the launch context the grant may reveal
	EHRLaunch bool
	// Clearance is the consent layer's sensitivity clearance; nil means
	// normal data only.
	Clearance *consent.Clearance
	Created   time.Time
	Expires   time.Time // end of the grant's refresh lifetime
	Revoked   bool
	// Session is the sign-in session an online_access grant is bound to
	// (User.Session); "" for other grants.
	Session string `json:",omitempty"`
}

// An AuthCode is an issued authorization code, stored under the SHA-256 of the
// code so a database reader cannot redeem it.
type AuthCode struct {
	Hash        string
	Tenant      string
	ClientID    string
	RedirectURI string
	Challenge   string // PKCE S256 challenge
	Nonce       string // OpenID Connect nonce, echoed in the id_token
	GrantID     string
	Expires     time.Time
}

// A Refresh is an issued refresh token, stored under its SHA-256.
type Refresh struct {
	Hash     string
	Tenant   string
	GrantID  string
	ClientID string
	Scope    string // the scopes this token may refresh to (the grant's, or narrower)
	Expires  time.Time
}

// A PendingRequest is an authorization request that passed validation and
// waits for the user: login, the patient picker, the consent page. It lives
// in the store, so any node can continue it.
type PendingRequest struct {
	ID          string
	Tenant      string
	ClientID    string
	RedirectURI string
	State       string
	Challenge   string
	Nonce       string
	Audience    string
	Scope       string // requested scopes that survived parsing and client policy
	Dropped     string // requested scopes dropped, for the audit trail
	LaunchRef   string // audit reference of the redeemed launch
	LaunchUser  string // the user the EHR launch is bound to
	Context     launch.Context
	EHRLaunch   bool
	NeedPatient bool   // standalone launch that still needs a patient chosen
	UserID      string // bound when the user first sees a page
	Offered     string // scopes shown on the consent page
	Clearance   *consent.Clearance
	Asked       bool   // the consent page was shown
	Prompt      string // the OIDC prompt values asked for, space-separated (prompt.go)
	CSRF        string
	Expires     time.Time
}

// CodeStore keeps authorization codes. ConsumeCode must be atomic: of two
// concurrent calls for one code, one gets the code and the other ErrUsed.
// A consumed code is remembered until it expires, so reuse is detected.
type CodeStore interface {
	SaveCode(ctx context.Context, c AuthCode) error
	// ConsumeCode marks the code used and returns it; a code used before is
	// returned with ErrUsed; an unknown one gives ErrNotFound.
	ConsumeCode(ctx context.Context, tenant, hash string) (AuthCode, error)
}

// GrantStore keeps grants, refresh tokens and access-token revocations.
type GrantStore interface {
	SaveGrant(ctx context.Context, g Grant) error
	Grant(ctx context.Context, tenant, id string) (Grant, error)
	// RevokeGrant revokes the grant and every refresh token of it.
	RevokeGrant(ctx context.Context, tenant, id string) error
	// RevokeGrantsOf revokes every grant of a client (app suspension) and
	// returns how many were revoked.
	RevokeGrantsOf(ctx context.Context, tenant, clientID string) (int, error)

	SaveRefresh(ctx context.Context, r Refresh) error
	Refresh(ctx context.Context, tenant, hash string) (Refresh, error)
	// RotateRefresh atomically retires the refresh token oldHash and saves
	// next (unless next.Hash is empty: the family then ends). If oldHash was
	// retired before it returns the old record and ErrUsed and saves nothing.
	RotateRefresh(ctx context.Context, tenant, oldHash string, next Refresh) (Refresh, error)

	// RevokeToken revokes one access token by jti until exp.
	RevokeToken(ctx context.Context, tenant, jti string, exp time.Time) error
	RevocationChecker
}

// RevocationChecker answers whether an access token's grant or jti has been
// revoked. The Verifier calls it on every request, so it must be fast.
type RevocationChecker interface {
	Revoked(ctx context.Context, tenant, grantID, jti string) (bool, error)
}

// ReplayCache remembers client-assertion jti values. Claim must be atomic.
type ReplayCache interface {
	// Claim records (tenant, issuer, jti) until exp, or returns ErrReplay if
	// it was recorded before.
	Claim(ctx context.Context, tenant, issuer, jti string, exp time.Time) error
}

// RequestStore keeps pending authorization requests.
type RequestStore interface {
	// SaveRequest creates or replaces a pending request.
	SaveRequest(ctx context.Context, p PendingRequest) error
	// Request returns a pending request without consuming it.
	Request(ctx context.Context, tenant, id string) (PendingRequest, error)
	// ConsumeRequest atomically removes and returns a pending request.
	ConsumeRequest(ctx context.Context, tenant, id string) (PendingRequest, error)
}

// Store is everything the authorization server keeps. MemoryStore implements
// it for tests and single-process hosts; smart/sqlstore for SQLite and
// PostgreSQL.
type Store interface {
	CodeStore
	GrantStore
	ReplayCache
	RequestStore
}
