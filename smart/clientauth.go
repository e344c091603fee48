package smart

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/smartkit/smartkit/audit"
)

// AssertionType is the client_assertion_type of SMART asymmetric client
// authentication (RFC 7523 §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionAlgs are the algorithms accepted on client assertions: SMART's
// RS384 and ES384, plus RS256 and ES256. Never "none", never HMAC.
var assertionAlgs = []string{RS384, ES384, RS256, ES256}

var joseAssertionAlgs = []jose.SignatureAlgorithm{jose.RS384, jose.ES384, jose.RS256, jose.ES256}

// maxAssertionLife is how far in the future an assertion's exp may be.
const maxAssertionLife = 5 * time.Minute

// authResult says who the caller of the token, introspection or revocation
// endpoint is.
type authResult struct {
	client      *Client // nil when a public client sent no client_id
	basic       bool    // HTTP Basic was used (for WWW-Authenticate)
	credentials bool    // the client proved itself (secret or assertion)
}

// authenticateClient identifies the client of a token-endpoint style request
// (RFC 6749 §2.3, SMART client authentication). It refuses more than one
// method, a method other than the registered one, and any bad credential,
// with invalid_client; a public client is identified by client_id alone.
func (s *Server) authenticateClient(r *http.Request, f map[string]string) (authResult, *Error) {
	in := info(r)
	ctx := r.Context()
	var res authResult
	user, pass, basic := r.BasicAuth()
	res.basic = basic
	post := f["client_secret"] != ""
	assertion := f["client_assertion"] != "" || f["client_assertion_type"] != ""
	n := 0
	for _, used := range []bool{basic, post, assertion} {
		if used {
			n++
		}
	}
	if n > 1 {
		return res, oauthErr(InvalidRequest, "use exactly one client authentication method")
	}
	claimed := f["client_id"]
	if basic {
		claimed, _ = url.QueryUnescape(user)
	} else if assertion && claimed == "" {
		claimed = clientOfAssertion(f["client_assertion"])
	}
	if e := s.admitThrottled(r, claimed); e != nil {
		return res, e
	}
	fail := func(clientID, reason string, sev audit.Severity) (authResult, *Error) {
		if sev == "" {
			sev = audit.Warning
		}
		// A registered client with a secret, which can be guessed from many
		// places at once, is charged too; for the others (keys, public
		// clients) the source's budget is enough.
		c, err := s.Clients.Client(ctx, in.tenant.ID, clientID)
		s.failedGuess(r, err == nil && c.SecretHash != "" && clientID == claimed)
		if s.record(r, audit.Event{Type: audit.ClientAuthFailed, Outcome: audit.Failure, Severity: sev,
			ClientID: clientID, Reason: reason}) != nil {
			return res, oauthErr(ServerError, "try again later")
		}
		return res, oauthErr(InvalidClient, "client authentication failed")
	}
	lookup := func(id, method string) (*Client, bool) {
		c, err := s.Clients.Client(ctx, in.tenant.ID, id)
		if err != nil || c.TokenEndpointAuthMethod != method {
			return nil, false
		}
		return c, true
	}
	switch {
	case basic:
		// RFC 6749 §2.3.1: id and secret are form-encoded before base64.
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return fail(user, "malformed Basic credentials", "")
		}
		c, ok := lookup(id, AuthClientSecretBasic)
		if !ok || !c.secretMatches(secret) || f["client_id"] != "" && f["client_id"] != id {
			return fail(id, "client_secret_basic: unknown client or bad secret", "")
		}
		res.client, res.credentials = c, true
	case post:
		c, ok := lookup(f["client_id"], AuthClientSecretPost)
		if !ok || !c.secretMatches(f["client_secret"]) {
			return fail(f["client_id"], "client_secret_post: unknown client or bad secret", "")
		}
		res.client, res.credentials = c, true
	case assertion:
		c, reason, sev := s.verifyAssertion(ctx, in, f)
		if c == nil {
			return fail(clientOfAssertion(f["client_assertion"]), reason, sev)
		}
		if f["client_id"] != "" && f["client_id"] != c.ID {
			return fail(c.ID, "client_id does not match the assertion", "")
		}
		res.client, res.credentials = c, true
	default:
		id := f["client_id"]
		if id == "" {
			return res, nil
		}
		c, err := s.Clients.Client(ctx, in.tenant.ID, id)
		if err != nil || !c.Public() {
			return fail(id, "unknown client, or a confidential client without credentials", "")
		}
		res.client = c
	}
	return res, nil
}

// clientOfAssertion reads iss from an unverified assertion, for the audit
// trail only.
func clientOfAssertion(raw string) string {
	_, pb, ok := splitJWS(raw)
	if !ok {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	_ = json.Unmarshal(pb, &c)
	return safeName(c.Iss)
}

type assertionClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp *int64          `json:"exp"`
	Iat *int64          `json:"iat"`
	Nbf *int64          `json:"nbf"`
	Jti string          `json:"jti"`
}

// verifyAssertion checks a SMART client assertion (SAL Client
// Authentication: Asymmetric; RFC 7523 §3) and returns the client, or nil
// with a reason for the audit trail. The caller only ever says invalid_client.
func (s *Server) verifyAssertion(ctx context.Context, in *reqInfo, f map[string]string) (*Client, string, audit.Severity) {
	if f["client_assertion_type"] != AssertionType {
		return nil, "client_assertion_type must be " + AssertionType, ""
	}
	raw := f["client_assertion"]
	h, pb, ok := splitJWS(raw)
	if !ok {
		return nil, "malformed assertion", ""
	}
	var claims assertionClaims
	if err := json.Unmarshal(pb, &claims); err != nil {
		return nil, "malformed assertion claims", ""
	}
	switch {
	case h.Typ != "JWT":
		return nil, "assertion typ must be JWT", ""
	case h.Kid == "":
		return nil, "assertion kid is missing", ""
	case h.embeddedKeyMaterial():
		return nil, "assertion carries its own key material (jwk/x5c/x5u/crit)", audit.Security
	case claims.Iss == "" || claims.Iss != claims.Sub:
		return nil, "assertion iss and sub must both be the client_id", ""
	}
	c, err := s.Clients.Client(ctx, in.tenant.ID, claims.Iss)
	if err != nil || c.TokenEndpointAuthMethod != AuthPrivateKeyJWT {
		return nil, "unknown client or not registered for private_key_jwt", ""
	}
	if h.Jku != "" && h.Jku != c.JWKSURI {
		return nil, "jku is not the registered JWKS URL", audit.Security
	}
	tok, err := jwt.ParseSigned(raw, joseAssertionAlgs)
	if err != nil {
		return nil, "assertion algorithm not allowed or token malformed", audit.Security
	}
	key, reason := s.assertionKey(ctx, c, h)
	if key == nil {
		return nil, reason, ""
	}
	if err := tok.Claims(key.Key, &claims); err != nil {
		return nil, "assertion signature invalid", audit.Security
	}
	now := s.now()
	skew := s.skew()
	var aud string
	switch {
	case json.Unmarshal(claims.Aud, &aud) != nil:
		return nil, "assertion aud must be a single string", audit.Security
	case aud != in.issuer+"/token":
		return nil, "assertion aud must be the token endpoint URL", audit.Security
	case claims.Exp == nil:
		return nil, "assertion exp is missing", ""
	case !now.Before(time.Unix(*claims.Exp, 0).Add(skew)):
		return nil, "assertion expired", ""
	case time.Unix(*claims.Exp, 0).After(now.Add(maxAssertionLife + skew)):
		return nil, "assertion exp more than 5 minutes ahead", ""
	case claims.Iat != nil && time.Unix(*claims.Iat, 0).After(now.Add(skew)):
		return nil, "assertion iat in the future", ""
	case claims.Nbf != nil && time.Unix(*claims.Nbf, 0).After(now.Add(skew)):
		return nil, "assertion not yet valid", ""
	case claims.Jti == "" || len(claims.Jti) > 256:
		return nil, "assertion jti missing or too long", ""
	}
	err = s.Store.Claim(ctx, in.tenant.ID, claims.Iss, claims.Jti, time.Unix(*claims.Exp, 0).Add(skew))
	if errors.Is(err, ErrReplay) {
		_ = s.audit().Record(ctx, audit.Event{Time: now, Tenant: in.tenant.ID, Type: audit.AssertionReplay,
			Outcome: audit.Failure, Severity: audit.Security, ClientID: c.ID, Reason: "assertion jti replayed"})
		return nil, "assertion jti replayed", audit.Security
	} else if err != nil {
		return nil, "replay cache unavailable", ""
	}
	return c, "", ""
}

// assertionKey selects the one key that may verify an assertion: same kid,
// kty consistent with alg, alg and use (if the JWK states them) consistent.
// An unknown kid refetches the client's JWKS URL (rate-limited).
func (s *Server) assertionKey(ctx context.Context, c *Client, h joseHeader) (*jose.JSONWebKey, string) {
	var set jose.JSONWebKeySet
	pick := func() []jose.JSONWebKey {
		var out []jose.JSONWebKey
		for _, k := range set.Keys {
			if k.KeyID != h.Kid || k.Algorithm != "" && k.Algorithm != h.Alg || k.Use != "" && k.Use != "sig" || !k.IsPublic() {
				continue
			}
			if algFits(h.Alg, k.Key) {
				out = append(out, k)
			}
		}
		return out
	}
	if len(c.JWKS) > 0 {
		if err := json.Unmarshal(c.JWKS, &set); err != nil {
			return nil, "registered JWKS unreadable"
		}
	} else {
		var err error
		if set, err = s.jwks.get(ctx, c.JWKSURI, s.now(), false); err != nil {
			return nil, "jwks_uri fetch failed: " + err.Error()
		}
	}
	keys := pick()
	if len(keys) == 0 && c.JWKSURI != "" {
		if fresh, err := s.jwks.get(ctx, c.JWKSURI, s.now(), true); err == nil {
			set = fresh
			keys = pick()
		}
	}
	switch len(keys) {
	case 0:
		return nil, "no registered key matches kid and alg"
	case 1:
		return &keys[0], ""
	}
	return nil, "more than one registered key matches kid and alg"
}
