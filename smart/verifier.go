package smart

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/internal/jsonstrict"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
)

// ErrInvalidToken is matched by every error Verify returns for a token that
// must not be honoured. The message stays vague on purpose; the reason goes
// to the Verifier's debug log.
var ErrInvalidToken = errors.New("smart: invalid access token")

// KeySource finds a verification key by kid. *KeySet implements it.
type KeySource interface {
	Key(kid string) (crypto.PublicKey, string, bool)
}

// A Token is a verified access token.
type Token struct {
	ID       string // jti
	Issuer   string
	Subject  string
	Audience string
	ClientID string
	Scope    string
	Scopes   scopes.Set
	GrantID  string
	FHIRUser string
	Context  launch.Context
	// Clearance is what the token may see of labelled data; nil means
	// normal data only (confidentiality N, no sensitivity tags).
	Clearance *consent.Clearance
	IssuedAt  time.Time
	Expiry    time.Time
}

// LogValue keeps logs to identifiers: never the token, never PHI beyond ids.
func (t *Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("client_id", t.ClientID), slog.String("jti", t.ID),
		slog.String("grant", t.GrantID), slog.String("scope", t.Scope))
}

// DefaultCacheSize bounds the verified-token cache of a Verifier whose
// CacheSize is zero.
const DefaultCacheSize = 10_000

// A Verifier checks bearer tokens presented to a FHIR endpoint: size and
// shape before parsing, an allow-listed alg bound to the key's, typ at+jwt,
// no embedded keys, exact iss and aud, exp/nbf/iat with bounded skew, the
// SMART context rules, and revocation on every call. A verified token is
// cached until it expires, so a repeated token costs a map lookup and the
// revocation check. Issuer, Audience, Keys, Algorithms and Revocation are
// required; Verify refuses everything until they are set. A Verifier is safe
// for concurrent use; do not change its fields after the first call.
type Verifier struct {
	Issuer     string            // exact "iss"
	Audience   string            // this FHIR base; exact "aud"
	Tenant     string            // tenant of the issuer, for revocation lookups
	Keys       KeySource         // verification keys by kid
	Algorithms []string          // accepted algs, e.g. ES256; empty accepts nothing
	Revocation RevocationChecker // consulted on every Verify, cached or not
	Skew       time.Duration     // 0 means DefaultSkew
	CacheSize  int               // 0 means DefaultCacheSize; negative disables the cache
	Now        func() time.Time  // nil means time.Now
	Logger     *slog.Logger      // nil means slog.Default(); refusals are logged at Debug

	mu    sync.RWMutex
	cache map[string]*Token
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) logger() *slog.Logger {
	if v.Logger != nil {
		return v.Logger
	}
	return slog.Default()
}

func (v *Verifier) refuse(ctx context.Context, reason string) (*Token, error) {
	v.logger().DebugContext(ctx, "smart: token refused", "reason", reason)
	return nil, ErrInvalidToken
}

// Verify checks a bearer token and returns its claims.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	if v.Issuer == "" || v.Audience == "" || v.Keys == nil || v.Revocation == nil || len(v.Algorithms) == 0 {
		return v.refuse(ctx, "verifier misconfigured")
	}
	now := v.now()
	if t := v.cached(raw); t != nil {
		if !now.Before(t.Expiry.Add(v.skew())) {
			v.evict(raw)
			return v.refuse(ctx, "expired")
		}
		return v.checkRevoked(ctx, t)
	}
	t, reason := v.parse(raw, now)
	if t == nil {
		return v.refuse(ctx, reason)
	}
	if _, err := v.checkRevoked(ctx, t); err != nil {
		return nil, err
	}
	v.store(raw, t)
	return t, nil
}

func (v *Verifier) skew() time.Duration { return ttl(v.Skew, DefaultSkew) }

func (v *Verifier) checkRevoked(ctx context.Context, t *Token) (*Token, error) {
	revoked, err := v.Revocation.Revoked(ctx, v.Tenant, t.GrantID, t.ID)
	if err != nil {
		// Fail closed: if revocation cannot be checked, the token is not honoured.
		return v.refuse(ctx, "revocation check failed: "+err.Error())
	}
	if revoked {
		return v.refuse(ctx, "revoked")
	}
	return t, nil
}

func (v *Verifier) cached(raw string) *Token {
	if v.CacheSize < 0 {
		return nil
	}
	v.mu.RLock()
	t := v.cache[raw]
	v.mu.RUnlock()
	return t
}

func (v *Verifier) store(raw string, t *Token) {
	if v.CacheSize < 0 {
		return
	}
	limit := v.CacheSize
	if limit == 0 {
		limit = DefaultCacheSize
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cache == nil {
		v.cache = make(map[string]*Token)
	}
	if len(v.cache) >= limit {
		// Drop expired entries; if still full, drop an arbitrary eighth.
		now, n := v.now(), 0
		for k, ct := range v.cache {
			if !now.Before(ct.Expiry) || n < limit/8 {
				delete(v.cache, k)
				n++
			}
		}
	}
	v.cache[raw] = t
}

func (v *Verifier) evict(raw string) {
	v.mu.Lock()
	delete(v.cache, raw)
	v.mu.Unlock()
}

// parse does the full, uncached verification.
func (v *Verifier) parse(raw string, now time.Time) (*Token, string) {
	h, ok := jwsHeader(raw)
	if !ok {
		return nil, "malformed"
	}
	if h.Typ != "at+jwt" && h.Typ != "application/at+jwt" {
		return nil, "typ is not at+jwt (id_tokens and assertions are not access tokens)"
	}
	if h.Kid == "" || h.Jku != "" || h.embeddedKeyMaterial() {
		return nil, "kid missing, or key material in the header"
	}
	pub, keyAlg, ok := v.Keys.Key(h.Kid)
	if !ok || keyAlg != h.Alg {
		return nil, "unknown kid or alg not bound to the key"
	}
	allowed := false
	for _, a := range v.Algorithms {
		allowed = allowed || a == h.Alg
	}
	if !allowed {
		return nil, "alg not allowed"
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(h.Alg)})
	if err != nil {
		return nil, "malformed"
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, "bad signature"
	}
	var c struct {
		AccessClaims
		Aud json.RawMessage `json:"aud"`
		Nbf *int64          `json:"nbf"`
	}
	if jsonstrict.Check(payload) != nil || json.Unmarshal(payload, &c) != nil {
		return nil, "claims are not strict JSON"
	}
	skew := v.skew()
	var aud string
	switch {
	case c.Issuer != v.Issuer:
		return nil, "wrong issuer"
	case json.Unmarshal(c.Aud, &aud) != nil || aud != v.Audience:
		return nil, "wrong audience"
	case c.Expiry == 0 || !now.Before(time.Unix(c.Expiry, 0).Add(skew)):
		return nil, "expired"
	case c.Nbf != nil && time.Unix(*c.Nbf, 0).After(now.Add(skew)):
		return nil, "not yet valid"
	case c.IssuedAt != 0 && time.Unix(c.IssuedAt, 0).After(now.Add(skew)):
		return nil, "issued in the future"
	case c.ID == "" || c.ClientID == "" || c.GrantID == "":
		return nil, "jti, client_id or grant missing"
	}
	set, err := scopes.ParseSet(c.Scope)
	if err != nil && c.Scope != "" {
		return nil, "scope unparseable"
	}
	// SECURITY-BASELINE §6: a scope's context needs its claim.
	switch {
	case set.HasContext(scopes.Patient) && c.Patient == "":
		return nil, "patient/ scopes without a patient"
	case set.HasContext(scopes.User) && c.FHIRUser == "":
		return nil, "user/ scopes without fhirUser"
	case set.HasContext(scopes.System) && (c.FHIRUser != "" || c.Subject != c.ClientID):
		return nil, "system/ scopes in a user-delegated token"
	}
	return &Token{
		ID: c.ID, Issuer: c.Issuer, Subject: c.Subject, Audience: aud, ClientID: c.ClientID, Scope: c.Scope,
		Scopes: set, GrantID: c.GrantID, FHIRUser: c.FHIRUser, Context: c.Context, Clearance: c.Clearance,
		IssuedAt: time.Unix(c.IssuedAt, 0), Expiry: time.Unix(c.Expiry, 0),
	}, ""
}

type tokenKey struct{}

// TokenFrom returns the token Middleware verified for this request.
func TokenFrom(ctx context.Context) (*Token, bool) {
	t, ok := ctx.Value(tokenKey{}).(*Token)
	return t, ok
}

// BearerToken extracts the token of an "Authorization: Bearer" header (the
// scheme compared case-insensitively, RFC 6750 §2.1). Tokens anywhere else
// (query, form) are not looked at.
func BearerToken(r *http.Request) (string, bool) {
	auths := r.Header.Values("Authorization")
	if len(auths) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(auths[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.IndexByte(tok, ' ') >= 0 || strings.IndexByte(tok, '\t') >= 0 {
		return "", false
	}
	return tok, true
}

// Middleware verifies the bearer token of each request and passes verified
// requests to next with the token in the context (TokenFrom). Others get 401
// with a WWW-Authenticate challenge (RFC 6750 §3) and never reach next.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := BearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+v.Audience+`"`)
			http.Error(w, "bearer token required", http.StatusUnauthorized)
			return
		}
		t, err := v.Verify(r.Context(), raw)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+v.Audience+`", error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, t)))
	})
}

// Verifier returns a Verifier for tokens the tenant issues for the FHIR base
// aud, using the Server's keys and store.
func (s *Server) Verifier(tenant, aud string) (*Verifier, error) {
	if err := s.init(); err != nil {
		return nil, err
	}
	t, ok := s.tenants[tenant]
	if !ok {
		return nil, errors.New("smart: unknown tenant")
	}
	if matchAudience(t, aud) != aud {
		return nil, errors.New("smart: aud is not one of the tenant's FHIR bases")
	}
	return &Verifier{
		Issuer: s.Issuer(t.ID), Audience: aud, Tenant: t.ID, Keys: s.keys(t), Algorithms: []string{s.accessAlg()},
		Revocation: s.Store, Skew: s.Skew, Now: s.Now, Logger: s.Logger,
	}, nil
}
