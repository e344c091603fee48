package smart_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/smart"
)

func TestCodeReuseRevokesTokens(t *testing.T) {
	e := newEnv(t)
	code, verifier := e.code("launch/patient offline_access patient/*.rs", "patient")
	_, first := e.exchange(code, verifier)
	at := first["access_token"].(string)
	if _, err := e.verifier().Verify(context.Background(), at); err != nil {
		t.Fatal(err)
	}
	resp, second := e.exchange(code, verifier)
	if resp.StatusCode != http.StatusBadRequest || second["error"] != "invalid_grant" {
		t.Fatalf("second redemption: %d %v", resp.StatusCode, second)
	}
	if _, err := e.verifier().Verify(context.Background(), at); err == nil {
		t.Fatal("the access token from the first redemption still works")
	}
	r := e.post(e.issuer+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}}, "")
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("the refresh token from the first redemption still works: %d", r.StatusCode)
	}
	ev := e.audit.Of(audit.CodeReuse)
	if len(ev) != 1 || ev[0].Severity != audit.Security {
		t.Fatalf("code reuse audit: %+v", ev)
	}
}

// TestConcurrentRedemption: of concurrent redemptions of one code at most
// one succeeds, the replay is detected, and whatever the winner got is
// revoked with the grant (RFC 6749 §4.1.2). Depending on timing the losers'
// revocation can even beat the winner, which then fails too.
func TestConcurrentRedemption(t *testing.T) {
	for range 5 {
		e := newEnv(t)
		code, verifier := e.code("launch/patient patient/*.rs", "patient")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
			"redirect_uri": {"https://app.example/cb"}, "client_id": {"app"}}.Encode()
		var (
			mu     sync.Mutex
			tokens []string
			wg     sync.WaitGroup
		)
		for range 8 {
			wg.Go(func() {
				resp, err := http.Post(e.issuer+"/token", "application/x-www-form-urlencoded", strings.NewReader(form))
				if err != nil {
					return
				}
				var m map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				if at, ok := m["access_token"].(string); ok && resp.StatusCode == http.StatusOK {
					mu.Lock()
					tokens = append(tokens, at)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(tokens) > 1 {
			t.Fatalf("%d redemptions succeeded, want at most 1", len(tokens))
		}
		if len(e.audit.Of(audit.CodeReuse)) == 0 {
			t.Fatal("the concurrent replay was not detected")
		}
		for _, at := range tokens {
			if _, err := e.verifier().Verify(context.Background(), at); err == nil {
				t.Fatal("the winner's token survived the detected replay")
			}
		}
	}
}

func TestCodeRefusals(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		mutate func(url.Values)
		status int
		code   string
	}{
		{"wrong verifier", func(v url.Values) { v.Set("code_verifier", randid.New()) }, 400, "invalid_grant"},
		{"no verifier", func(v url.Values) { v.Del("code_verifier") }, 400, "invalid_request"},
		{"empty verifier", func(v url.Values) { v.Set("code_verifier", "") }, 400, "invalid_request"},
		{"short verifier", func(v url.Values) { v.Set("code_verifier", "abc") }, 400, "invalid_grant"},
		{"other redirect", func(v url.Values) { v.Set("redirect_uri", "https://app.example/cb/") }, 400, "invalid_grant"},
		{"other client", func(v url.Values) { v.Set("client_id", "other") }, 400, "invalid_grant"},
		{"unknown client", func(v url.Values) { v.Set("client_id", "nobody") }, 401, "invalid_client"},
		{"confidential client without secret", func(v url.Values) { v.Set("client_id", "conf") }, 401, "invalid_client"},
		{"unknown code", func(v url.Values) { v.Set("code", randid.New()) }, 400, "invalid_grant"},
		{"wrong grant type", func(v url.Values) { v.Set("grant_type", "password") }, 400, "unsupported_grant_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, verifier := e.code("launch/patient patient/*.rs", "patient")
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
				"redirect_uri": {"https://app.example/cb"}, "client_id": {"app"}}
			tc.mutate(form)
			issued := e.events(audit.TokenIssued)
			resp := e.post(e.issuer+"/token", form, "")
			m := decode(t, resp)
			if resp.StatusCode != tc.status || m["error"] != tc.code {
				t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
			}
			if m["access_token"] != nil || e.events(audit.TokenIssued) != issued {
				t.Fatal("a token was issued")
			}
			if e.events(audit.TokenRefused)+e.events(audit.ClientAuthFailed) == 0 {
				t.Fatal("the refusal was not audited")
			}
			// A failed attempt burns the code (decision D-5).
			if tc.code != "invalid_client" && tc.code != "unsupported_grant_type" && tc.name != "unknown code" {
				if resp, _ := e.exchange(code, verifier); resp.StatusCode == http.StatusOK {
					t.Fatal("the code survived a failed redemption")
				}
			}
		})
	}
}

func TestExpiredCode(t *testing.T) {
	e := newEnv(t)
	code, verifier := e.code("launch/patient patient/*.rs", "patient")
	e.clock.Add(61 * time.Second)
	if resp, m := e.exchange(code, verifier); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("expired code: %d %v", resp.StatusCode, m)
	}
}

func TestCodeTTL(t *testing.T) {
	e := newEnv(t)
	e.srv.CodeTTL = 5 * time.Second
	code, verifier := e.code("launch/patient patient/*.rs", "patient")
	e.clock.Add(4 * time.Second)
	if resp, m := e.exchange(code, verifier); resp.StatusCode != 200 {
		t.Fatalf("code within its 5 s lifetime: %d %v", resp.StatusCode, m)
	}
	code, verifier = e.code("launch/patient patient/*.rs", "patient")
	e.clock.Add(6 * time.Second)
	if resp, m := e.exchange(code, verifier); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("code past its 5 s lifetime: %d %v", resp.StatusCode, m)
	}
}

func TestWrongContentType(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(`{"grant_type":"authorization_code"}`))
	req.Header.Set("Content-Type", "application/json")
	resp := e.do(req, "")
	if m := decode(t, resp); resp.StatusCode != 400 || m["error"] != "invalid_request" {
		t.Fatalf("JSON body: %d %v", resp.StatusCode, m)
	}
}

func refresh(e *env, rt string, extra url.Values) (*http.Response, map[string]any) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for k, v := range extra {
		form[k] = v
	}
	resp := e.post(e.issuer+"/token", form, "")
	return resp, decode(e.t, resp)
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient offline_access patient/Observation.rs patient/Condition.rs")
	rt1 := m["refresh_token"].(string)

	// Widening is refused and the old token stays valid.
	if resp, w := refresh(e, rt1, url.Values{"scope": {"patient/*.cruds"}}); resp.StatusCode != 400 || w["error"] != "invalid_scope" {
		t.Fatalf("widening: %d %v", resp.StatusCode, w)
	}
	// Narrowing works; public clients need no client_id; the token rotates.
	resp, r2 := refresh(e, rt1, url.Values{"scope": {"offline_access patient/Observation.r"}})
	if resp.StatusCode != 200 || r2["scope"] != "offline_access patient/Observation.r" || r2["patient"] != "123" {
		t.Fatalf("narrowing: %d %v", resp.StatusCode, r2)
	}
	rt2 := r2["refresh_token"].(string)
	if rt2 == "" || rt2 == rt1 {
		t.Fatal("the refresh token was not rotated")
	}
	at2 := r2["access_token"].(string)
	// Context from the grant, never the request.
	if _, r3 := refresh(e, rt2, url.Values{"patient": {"456"}}); r3["patient"] != "123" {
		t.Fatalf("patient after refresh = %v", r3["patient"])
	} else {
		// Reusing a rotated token revokes the family.
		if resp, w := refresh(e, rt1, nil); resp.StatusCode != 400 || w["error"] != "invalid_grant" {
			t.Fatalf("reuse: %d %v", resp.StatusCode, w)
		}
		if resp, _ := refresh(e, r3["refresh_token"].(string), nil); resp.StatusCode != 400 {
			t.Fatal("the newest refresh token survived reuse of an old one")
		}
		if _, err := e.verifier().Verify(context.Background(), at2); err == nil {
			t.Fatal("an access token of the family survived reuse")
		}
	}
	if n := len(e.audit.Of(audit.RefreshReuse)); n != 1 {
		t.Fatalf("%d reuse events", n)
	}
}

func TestRefreshByAnotherClient(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient offline_access patient/*.rs")
	if resp, w := refresh(e, m["refresh_token"].(string), url.Values{"client_id": {"other"}}); resp.StatusCode != 400 || w["error"] != "invalid_grant" {
		t.Fatalf("other client: %d %v", resp.StatusCode, w)
	}
}

func TestNoRefreshWithoutRefreshScope(t *testing.T) {
	e := newEnv(t)
	if m := e.tokens("launch/patient patient/*.rs"); m["refresh_token"] != nil {
		t.Fatal("refresh token without offline_access")
	}
}

// assertion signs a client assertion with the backend client's key.
func (e *env) assertion(mutate func(h *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any)) string {
	e.t.Helper()
	now := e.clock.Now()
	claims := map[string]any{"iss": "bulk", "sub": "bulk", "aud": e.issuer + "/token", "exp": now.Add(4 * time.Minute).Unix(),
		"jti": randid.New(), "iat": now.Unix()}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	alg, key := jose.SignatureAlgorithm(jose.ES384), any(jose.JSONWebKey{Key: e.backend, KeyID: "k1"})
	if mutate != nil {
		if a, k := mutate(opts, claims); a != "" {
			alg, key = a, k
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) backendToken(assertion, scope string) (*http.Response, map[string]any) {
	resp := e.post(e.issuer+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}, "")
	return resp, decode(e.t, resp)
}

func TestBackendServices(t *testing.T) {
	e := newEnv(t)
	resp, m := e.backendToken(e.assertion(nil), "system/Observation.rs system/Patient.cruds patient/*.rs")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if m["scope"] != "system/Observation.rs system/Patient.rs" || m["refresh_token"] != nil || m["expires_in"].(float64) > 300 {
		t.Fatalf("backend token %v", m)
	}
	tok, err := e.verifier().Verify(context.Background(), m["access_token"].(string))
	if err != nil || tok.Subject != "bulk" || tok.FHIRUser != "" {
		t.Fatalf("verify: %v %+v", err, tok)
	}
}

// TestBackendClearance: a backend service's tokens carry the clearance the
// host gives it (normal data only without one), and a host that cannot
// decide gets no token issued.
func TestBackendClearance(t *testing.T) {
	e := newEnv(t)
	issue := func() (*http.Response, *smart.Token) {
		t.Helper()
		resp, m := e.backendToken(e.assertion(nil), "system/Observation.rs")
		if resp.StatusCode != 200 {
			return resp, nil
		}
		tok, err := e.verifier().Verify(context.Background(), m["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return resp, tok
	}
	if _, tok := issue(); tok == nil || tok.Clearance != nil {
		t.Fatalf("without BackendClearance: %+v", tok)
	}
	all := append(append(slices.Clone(consent.SensitiveTags), consent.HighlySensitiveTags...), consent.SegmentedTags...)
	var asked []string
	e.srv.BackendClearance = func(_ context.Context, tenant string, c *smart.Client) (*consent.Clearance, error) {
		asked = append(asked, tenant+"/"+c.ID)
		if c.ID != "bulk" {
			return nil, nil
		}
		return &consent.Clearance{MaxConfidentiality: consent.VeryRestricted, Tags: all}, nil
	}
	if _, tok := issue(); tok == nil || tok.Clearance == nil || !tok.Clearance.Unrestricted() || !slices.Equal(asked, []string{"/bulk"}) {
		t.Fatalf("cleared: %+v, asked %v", tok, asked)
	}
	e.srv.BackendClearance = func(context.Context, string, *smart.Client) (*consent.Clearance, error) {
		return nil, errors.New("policy store down")
	}
	if resp, tok := issue(); resp.StatusCode != http.StatusInternalServerError || tok != nil {
		t.Fatalf("undecided: %d, %+v", resp.StatusCode, tok)
	}
}

func TestAssertionRefusals(t *testing.T) {
	e := newEnv(t)
	hmac := []byte(strings.Repeat("k", 64))
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tests := map[string]func(o *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any){
		"expired": func(_ *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any) {
			c["exp"] = e.clock.Now().Add(-2 * time.Minute).Unix()
			return "", nil
		},
		"exp too far": func(_ *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any) {
			c["exp"] = e.clock.Now().Add(10 * time.Minute).Unix()
			return "", nil
		},
		"no exp": func(_ *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any) {
			delete(c, "exp")
			return "", nil
		},
		"wrong aud": func(_ *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any) {
			c["aud"] = e.issuer
			return "", nil
		},
		"aud array": func(_ *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any) {
			c["aud"] = []string{e.issuer + "/token", "https://evil.example"}
			return "", nil
		},
		"iss not sub": func(_ *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any) {
			c["sub"] = "someone"
			return "", nil
		},
		"no jti": func(_ *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any) {
			delete(c, "jti")
			return "", nil
		},
		"HMAC": func(_ *jose.SignerOptions, _ map[string]any) (jose.SignatureAlgorithm, any) {
			return jose.HS256, jose.JSONWebKey{Key: hmac, KeyID: "k1"}
		},
		"unknown kid": func(_ *jose.SignerOptions, _ map[string]any) (jose.SignatureAlgorithm, any) {
			return jose.ES384, jose.JSONWebKey{Key: e.backend, KeyID: "k2"}
		},
		"other key": func(_ *jose.SignerOptions, _ map[string]any) (jose.SignatureAlgorithm, any) {
			return jose.ES384, jose.JSONWebKey{Key: other, KeyID: "k1"}
		},
		"jku not registered": func(o *jose.SignerOptions, _ map[string]any) (jose.SignatureAlgorithm, any) {
			o.WithHeader("jku", "https://evil.example/jwks")
			return "", nil
		},
		"embedded jwk": func(o *jose.SignerOptions, _ map[string]any) (jose.SignatureAlgorithm, any) {
			o.EmbedJWK = true
			return jose.ES384, other
		},
		"no typ": func(o *jose.SignerOptions, _ map[string]any) (jose.SignatureAlgorithm, any) {
			delete(o.ExtraHeaders, "typ")
			return "", nil
		},
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			resp, m := e.backendToken(e.assertion(mutate), "system/*.rs")
			if resp.StatusCode != 401 || m["error"] != "invalid_client" || m["access_token"] != nil {
				t.Fatalf("%d %v, want 401 invalid_client", resp.StatusCode, m)
			}
		})
	}
	t.Run("alg none", func(t *testing.T) {
		good := e.assertion(nil)
		parts := strings.Split(good, ".")
		none := b64(`{"alg":"none","typ":"JWT","kid":"k1"}`) + "." + parts[1] + "."
		if resp, m := e.backendToken(none, "system/*.rs"); resp.StatusCode != 401 || m["error"] != "invalid_client" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("replay", func(t *testing.T) {
		a := e.assertion(nil)
		if resp, _ := e.backendToken(a, "system/*.rs"); resp.StatusCode != 200 {
			t.Fatalf("first use: %d", resp.StatusCode)
		}
		if resp, m := e.backendToken(a, "system/*.rs"); resp.StatusCode != 401 || m["error"] != "invalid_client" {
			t.Fatalf("replay: %d %v", resp.StatusCode, m)
		}
		if len(e.audit.Of(audit.AssertionReplay)) == 0 {
			t.Fatal("replay not audited")
		}
	})
	t.Run("scope not pre-authorised", func(t *testing.T) {
		if resp, m := e.backendToken(e.assertion(nil), "system/Condition.cud"); resp.StatusCode != 400 || m["error"] != "invalid_scope" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("symmetric client cannot use client_credentials", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader("grant_type=client_credentials&scope=system%2F*.rs"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("conf", e.secret)
		if resp := e.do(req, ""); resp.StatusCode != 400 || decode(t, resp)["error"] != "unauthorized_client" {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	if n := len(e.audit.Of(audit.ClientAuthFailed)); n < len(tests) {
		t.Fatalf("%d client-auth failures audited, want at least %d", n, len(tests))
	}
}

func TestJWKSURI(t *testing.T) {
	e := newEnv(t)
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	var fetches atomic.Int32
	jwksSrv := newTLSJWKS(t, &fetches, jose.JSONWebKey{Key: key.Public(), KeyID: "r1"})
	e.srv.HTTPClient = jwksSrv.Client()
	if err := e.clients.Add("", clientWithJWKSURI("remote", jwksSrv.URL+"/jwks")); err != nil {
		t.Fatal(err)
	}
	sign := func(kid string) string {
		return e.assertion(func(_ *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any) {
			c["iss"], c["sub"] = "remote", "remote"
			return jose.ES384, jose.JSONWebKey{Key: key, KeyID: kid}
		})
	}
	for range 3 {
		if resp, m := e.backendToken(sign("r1"), "system/*.rs"); resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	}
	if fetches.Load() != 1 {
		t.Fatalf("JWKS fetched %d times for three assertions, want 1 (cached)", fetches.Load())
	}
	if resp, _ := e.backendToken(sign("unknown"), "system/*.rs"); resp.StatusCode != 401 || fetches.Load() != 1 {
		t.Fatalf("an unknown kid right after a fetch refetched (%d fetches)", fetches.Load())
	}
	e.clock.Add(31 * time.Second)
	for range 5 {
		if resp, _ := e.backendToken(sign("unknown"), "system/*.rs"); resp.StatusCode != 401 {
			t.Fatal("unknown kid accepted")
		}
	}
	if fetches.Load() != 2 {
		t.Fatalf("JWKS fetched %d times, want one refetch for a burst of unknown kids", fetches.Load())
	}
}

func TestJWKSURISSRFGuard(t *testing.T) {
	e := newEnv(t)
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	var fetches atomic.Int32
	jwksSrv := newTLSJWKS(t, &fetches, jose.JSONWebKey{Key: key.Public(), KeyID: "r1"})
	// No HTTPClient: the default refuses loopback addresses.
	if err := e.clients.Add("", clientWithJWKSURI("remote", jwksSrv.URL+"/jwks")); err != nil {
		t.Fatal(err)
	}
	a := e.assertion(func(_ *jose.SignerOptions, c map[string]any) (jose.SignatureAlgorithm, any) {
		c["iss"], c["sub"] = "remote", "remote"
		return jose.ES384, jose.JSONWebKey{Key: key, KeyID: "r1"}
	})
	if resp, _ := e.backendToken(a, "system/*.rs"); resp.StatusCode != 401 || fetches.Load() != 0 {
		t.Fatalf("status %d after %d fetches from a loopback jwks_uri", resp.StatusCode, fetches.Load())
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient patient/*.rs")
	v2, err := e.srv.Verifier("t2", e.ts.URL+"/t2/fhir")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(context.Background(), m["access_token"].(string)); err == nil {
		t.Fatal("a default-tenant token verified at tenant t2")
	}
	// A code from the default tenant is unknown at t2.
	code, verifier := e.code("launch/patient patient/*.rs", "patient")
	resp := e.post(e.issuer+"/t/t2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"code_verifier": {verifier}, "redirect_uri": {"https://app.example/cb"}, "client_id": {"app"}}, "")
	if w := decode(t, resp); resp.StatusCode != 400 || w["error"] != "invalid_grant" {
		t.Fatalf("cross-tenant code: %d %v", resp.StatusCode, w)
	}
	if resp, _ := e.exchange(code, verifier); resp.StatusCode != 200 {
		t.Fatal("a cross-tenant attempt burned the code at its own tenant")
	}
}

var _ crypto.Signer = (*ecdsa.PrivateKey)(nil)
