package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// IDToken holds the verified claims of an OpenID Connect id_token.
type IDToken struct {
	Issuer   string
	Subject  string
	Audience []string
	Expiry   time.Time
	IssuedAt time.Time
	Nonce    string
	FHIRUser string // as the server sent it: absolute or relative
	Name     string
}

// idTokenAlgs are the signature algorithms accepted on id_tokens. SMART
// servers must support RS256; never "none" or HMAC.
var idTokenAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.ES256, jose.ES384, jose.PS256, jose.EdDSA}

const idTokenSkew = time.Minute

// verifyIDToken checks an id_token: strict shape, an allowed algorithm, a key
// from the server's JWKS by kid, iss equal to the discovery issuer, aud
// naming this client (azp when there are several), exp, iat and nonce.
func (c *Config) verifyIDToken(ctx context.Context, cfg *Configuration, raw, nonce string) (*IDToken, error) {
	fail := func(msg string) (*IDToken, error) { return nil, fmt.Errorf("%w: %s", ErrIDToken, msg) }
	if len(raw) > 16<<10 || strings.Count(raw, ".") != 2 {
		return fail("malformed")
	}
	jws, err := jose.ParseSignedCompact(raw, idTokenAlgs)
	if err != nil {
		return fail("malformed or disallowed algorithm")
	}
	h := jws.Signatures[0].Header
	if h.JSONWebKey != nil {
		return fail("embedded key")
	}
	if cfg.JWKSURI == "" {
		return fail("the server publishes no jwks_uri")
	}
	key, err := c.jwks.key(ctx, c.httpClient(), cfg.JWKSURI, h.KeyID, h.Algorithm, c.now())
	if err != nil {
		return fail(err.Error())
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return fail("bad signature")
	}
	if jsonstrict.Check(payload) != nil {
		return fail("claims are not strict JSON")
	}
	var cl struct {
		Iss      string          `json:"iss"`
		Sub      string          `json:"sub"`
		Aud      json.RawMessage `json:"aud"`
		Azp      string          `json:"azp"`
		Exp      int64           `json:"exp"`
		Iat      int64           `json:"iat"`
		Nonce    string          `json:"nonce"`
		FHIRUser string          `json:"fhirUser"`
		Name     string          `json:"name"`
	}
	if err := json.Unmarshal(payload, &cl); err != nil {
		return fail("claims unreadable")
	}
	var aud []string
	if err := json.Unmarshal(cl.Aud, &aud); err != nil {
		var one string
		if json.Unmarshal(cl.Aud, &one) != nil {
			return fail("aud unreadable")
		}
		aud = []string{one}
	}
	now := c.now()
	switch {
	case cl.Iss != cfg.Issuer:
		return fail("iss is not the server's issuer")
	case !containsStr(aud, c.ClientID):
		return fail("aud does not name this client")
	case len(aud) > 1 && cl.Azp != c.ClientID:
		return fail("several audiences and azp is not this client")
	case cl.Exp == 0 || !now.Before(time.Unix(cl.Exp, 0).Add(idTokenSkew)):
		return fail("expired")
	case time.Unix(cl.Iat, 0).After(now.Add(idTokenSkew)):
		return fail("issued in the future")
	case cl.Sub == "":
		return fail("no sub")
	case nonce != "" && cl.Nonce != nonce:
		return fail("nonce mismatch")
	}
	return &IDToken{Issuer: cl.Iss, Subject: cl.Sub, Audience: aud, Expiry: time.Unix(cl.Exp, 0),
		IssuedAt: time.Unix(cl.Iat, 0), Nonce: cl.Nonce, FHIRUser: cl.FHIRUser, Name: cl.Name}, nil
}

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// jwksCache caches a server's JWKS and refetches for an unknown kid at most
// once a minute.
type jwksCache struct {
	mu      sync.Mutex
	sets    map[string]jose.JSONWebKeySet
	fetched map[string]time.Time
}

func (j *jwksCache) key(ctx context.Context, hc *http.Client, uri, kid, alg string, now time.Time) (any, error) {
	find := func(set jose.JSONWebKeySet) (any, bool) {
		for _, k := range set.Keys {
			if k.KeyID == kid && (k.Algorithm == "" || k.Algorithm == alg) && (k.Use == "" || k.Use == "sig") && k.IsPublic() {
				return k.Key, true
			}
		}
		return nil, false
	}
	j.mu.Lock()
	set, have := j.sets[uri]
	last := j.fetched[uri]
	j.mu.Unlock()
	if have {
		if k, ok := find(set); ok {
			return k, nil
		}
		if now.Sub(last) < time.Minute {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
	}
	fresh, err := fetchJWKS(ctx, hc, uri)
	j.mu.Lock()
	if j.sets == nil {
		j.sets, j.fetched = map[string]jose.JSONWebKeySet{}, map[string]time.Time{}
	}
	j.fetched[uri] = now
	if err == nil {
		j.sets[uri] = fresh
	}
	j.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if k, ok := find(fresh); ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

func fetchJWKS(ctx context.Context, hc *http.Client, uri string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return set, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := sameOrigin(hc).Do(req)
	if err != nil {
		return set, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("jwks_uri answered %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	if err != nil {
		return set, err
	}
	err = json.Unmarshal(b, &set)
	return set, err
}
