package smart_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/smartkit/smartkit/smart"
)

func TestVerifierRefusals(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient openid fhirUser patient/*.rs")
	good := m["access_token"].(string)
	parts := strings.Split(good, ".")
	var claims map[string]any
	raw, _ := jsonB64(parts[1])
	_ = json.Unmarshal(raw, &claims)
	var header map[string]any
	hraw, _ := jsonB64(parts[0])
	_ = json.Unmarshal(hraw, &header)

	// forge re-signs claims with a key the server does not know.
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forge := func(mut func(h map[string]any, c map[string]any)) string {
		h, c := clone(header), clone(claims)
		mut(h, c)
		hb, _ := json.Marshal(h)
		cb, _ := json.Marshal(c)
		return b64(string(hb)) + "." + b64(string(cb)) + "." + parts[2]
	}
	sameKeyOtherClaims := func(mut func(c map[string]any)) string {
		c := clone(claims)
		mut(c)
		ks, _ := smart.NewKeySet(sharedKeys(t))
		_ = ks
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: sharedKeys(t)[0].Signer, KeyID: header["kid"].(string)}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := jwt.Signed(signer).Claims(c).Serialize()
		return s
	}
	attackerSigned := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: attacker, KeyID: header["kid"].(string)}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		s, _ := jwt.Signed(signer).Claims(claims).Serialize()
		return s
	}
	hmacSigned := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: []byte(strings.Repeat("s", 32)), KeyID: header["kid"].(string)}},
			(&jose.SignerOptions{}).WithType("at+jwt"))
		s, _ := jwt.Signed(signer).Claims(claims).Serialize()
		return s
	}
	cases := map[string]string{
		"alg none":            b64(`{"alg":"none","typ":"at+jwt","kid":"`+header["kid"].(string)+`"}`) + "." + parts[1] + ".",
		"HS256 with the kid":  hmacSigned(),
		"attacker key":        attackerSigned(),
		"tampered payload":    forge(func(_, c map[string]any) { c["patient"] = "456" }),
		"other audience":      sameKeyOtherClaims(func(c map[string]any) { c["aud"] = "https://other.example/fhir" }),
		"audience array":      sameKeyOtherClaims(func(c map[string]any) { c["aud"] = []string{e.fhir} }),
		"other issuer":        sameKeyOtherClaims(func(c map[string]any) { c["iss"] = "https://evil.example" }),
		"expired":             sameKeyOtherClaims(func(c map[string]any) { c["exp"] = e.clock.Now().Add(-2 * time.Minute).Unix() }),
		"not yet valid":       sameKeyOtherClaims(func(c map[string]any) { c["nbf"] = e.clock.Now().Add(5 * time.Minute).Unix() }),
		"no exp":              sameKeyOtherClaims(func(c map[string]any) { delete(c, "exp") }),
		"patient/ no patient": sameKeyOtherClaims(func(c map[string]any) { delete(c, "patient") }),
		"system in user token": sameKeyOtherClaims(func(c map[string]any) {
			c["scope"] = "system/*.rs"
		}),
		"embedded jwk":   forge(func(h, _ map[string]any) { h["jwk"] = map[string]string{"kty": "EC"} }),
		"jku":            forge(func(h, _ map[string]any) { h["jku"] = "https://evil.example/jwks" }),
		"crit":           forge(func(h, _ map[string]any) { h["crit"] = []string{"exp"} }),
		"typ JWT":        forge(func(h, _ map[string]any) { h["typ"] = "JWT" }),
		"unknown kid":    forge(func(h, _ map[string]any) { h["kid"] = "nope" }),
		"alg mismatch":   forge(func(h, _ map[string]any) { h["alg"] = "ES384" }),
		"id_token":       m["id_token"].(string),
		"duplicate aud":  parts[0] + "." + b64(strings.Replace(string(raw), `"aud":`, `"aud":"x","aud":`, 1)) + "." + parts[2],
		"many dots":      strings.Repeat(".", 100000),
		"too long":       good + strings.Repeat("A", 9000),
		"four segments":  good + ".x",
		"empty":          "",
		"refresh-shaped": strings.Repeat("A", 43),
	}
	v := e.verifier()
	for name, tok := range cases {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, smart.ErrInvalidToken) {
			t.Errorf("%s: Verify error %v, want ErrInvalidToken", name, err)
		}
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("the genuine token: %v", err)
	}
}

func TestVerifierSkewAndExpiry(t *testing.T) {
	e := newEnv(t)
	tok := e.tokens("launch/patient patient/*.rs")["access_token"].(string)
	v := e.verifier()
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(smart.DefaultAccessTokenTTL + 30*time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within the 60 s skew: %v", err)
	}
	e.clock.Add(31 * time.Second)
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Fatal("an expired token verified from the cache")
	}
}

func TestVerifierSeesRevocationThroughCache(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient patient/*.rs")
	v := e.verifier()
	tok, err := v.Verify(context.Background(), m["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.RevokeGrant(context.Background(), "", tok.GrantID, "security-team", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), m["access_token"].(string)); err == nil {
		t.Fatal("a revoked grant's cached token still verifies")
	}
}

func TestVerifierFailsClosed(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient patient/*.rs")
	v := e.verifier()
	v.Revocation = revocationFunc(func() (bool, error) { return false, errors.New("database down") })
	if _, err := v.Verify(context.Background(), m["access_token"].(string)); err == nil {
		t.Fatal("verified although revocation could not be checked")
	}
	var zero smart.Verifier
	if _, err := zero.Verify(context.Background(), m["access_token"].(string)); err == nil {
		t.Fatal("a zero Verifier accepted a token")
	}
}

type revocationFunc func() (bool, error)

func (f revocationFunc) Revoked(context.Context, string, string, string) (bool, error) { return f() }

func TestMiddleware(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient patient/*.rs")
	var seen *smart.Token
	h := e.verifier().Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = smart.TokenFrom(r.Context())
	}))
	for name, set := range map[string]func(r *http.Request){
		"none":         func(r *http.Request) {},
		"query":        func(r *http.Request) { r.URL.RawQuery = "access_token=" + m["access_token"].(string) },
		"wrong scheme": func(r *http.Request) { r.Header.Set("Authorization", "Basic "+m["access_token"].(string)) },
		"two headers": func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+m["access_token"].(string))
			r.Header.Add("Authorization", "Bearer x")
		},
		"bad token": func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc.def.ghi") },
	} {
		seen = nil
		r := httptest.NewRequest(http.MethodGet, "/fhir/Patient/123", nil)
		set(r)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") || seen != nil {
			t.Errorf("%s: %d %q, reached next=%v", name, w.Code, w.Header().Get("WWW-Authenticate"), seen != nil)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/fhir/Patient/123", nil)
	r.Header.Set("Authorization", "bearer "+m["access_token"].(string))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || seen == nil || seen.Context.Patient != "123" {
		t.Fatalf("valid token: %d %+v", w.Code, seen)
	}
}

func TestIntrospection(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient openid fhirUser offline_access patient/*.rs")
	at, rt := m["access_token"].(string), m["refresh_token"].(string)
	introspect := func(tok string, auth func(r *http.Request)) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		auth(req)
		resp := e.do(req, "")
		return resp, decode(t, resp)
	}
	basic := func(r *http.Request) { r.SetBasicAuth("conf", e.secret) }
	if resp, _ := introspect(at, func(*http.Request) {}); resp.StatusCode != 401 {
		t.Fatalf("unauthenticated introspection: %d", resp.StatusCode)
	}
	if resp, _ := introspect(at, func(r *http.Request) { r.SetBasicAuth("conf", "wrong") }); resp.StatusCode != 401 {
		t.Fatalf("bad secret: %d", resp.StatusCode)
	}
	if resp, _ := introspect(at, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+at) }); resp.StatusCode != 401 {
		t.Fatalf("a public app's token may not introspect: %d", resp.StatusCode)
	}
	_, got := introspect(at, basic)
	want := map[string]any{"active": true, "scope": "launch/patient openid fhirUser offline_access patient/*.rs", "client_id": "app",
		"patient": "123", "fhirUser": "Patient/123", "sub": "patient", "iss": e.issuer, "token_type": "Bearer"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("introspection %s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["exp"].(float64); !ok {
		t.Error("exp missing")
	}
	if _, got := introspect(rt, basic); got["active"] != true || got["token_type"] != "refresh_token" {
		t.Errorf("refresh token introspection %v", got)
	}
	for _, tok := range []string{"garbage", at + "x", strings.Repeat("A", 43)} {
		_, got := introspect(tok, basic)
		if len(got) != 1 || got["active"] != false {
			t.Errorf("inactive token answered %v, want exactly {active:false}", got)
		}
	}
}

func TestRevocationEndpoint(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient offline_access patient/*.rs")
	at, rt := m["access_token"].(string), m["refresh_token"].(string)
	revoke := func(tok, client string) int {
		resp := e.post(e.issuer+"/revoke", url.Values{"token": {tok}, "client_id": {client}}, "")
		body(resp)
		return resp.StatusCode
	}
	if code := revoke(rt, "other"); code != 200 {
		t.Fatalf("another client's revocation: %d", code)
	}
	if resp, _ := refresh(e, rt, nil); resp.StatusCode != 200 {
		t.Fatal("another client revoked the token")
	}
	m2 := e.tokens("launch/patient offline_access patient/*.rs")
	if code := revoke(m2["access_token"].(string), "app"); code != 200 {
		t.Fatalf("revoking an access token: %d", code)
	}
	if _, err := e.verifier().Verify(context.Background(), m2["access_token"].(string)); err == nil {
		t.Fatal("a revoked access token verifies")
	}
	if code := revoke(strings.Repeat("Z", 43), "app"); code != 200 {
		t.Fatalf("unknown token: %d, want 200", code)
	}
	_ = at
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/.well-known/smart-configuration", nil)
	req.Header.Set("Accept", "text/html")
	resp := e.do(req, "")
	if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("headers %v", resp.Header)
	}
	doc := decode(t, resp)
	if doc["issuer"] != e.issuer || doc["token_endpoint"] != e.issuer+"/token" || doc["authorization_response_iss_parameter_supported"] != true {
		t.Fatalf("discovery %v", doc)
	}
	methods, _ := doc["code_challenge_methods_supported"].([]any)
	if len(methods) != 1 || methods[0] != "S256" {
		t.Fatalf("code_challenge_methods_supported %v", methods)
	}
	caps := map[string]bool{}
	for _, c := range doc["capabilities"].([]any) {
		caps[c.(string)] = true
	}
	for _, c := range []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-asymmetric", "sso-openid-connect", "context-ehr-patient", "permission-v2", "authorize-post"} {
		if !caps[c] {
			t.Errorf("capability %s missing", c)
		}
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint"} {
		if u, _ := doc[k].(string); !strings.HasPrefix(u, "http://127.0.0.1") {
			t.Errorf("%s = %q is not absolute", k, u)
		}
	}
	oidc := decode(t, e.get(e.issuer+"/.well-known/openid-configuration", ""))
	if oidc["issuer"] != doc["issuer"] {
		t.Fatalf("OIDC issuer %v differs from SMART issuer %v", oidc["issuer"], doc["issuer"])
	}
	// What the server does not do is stated where a default would claim
	// it (OIDC Discovery: request_uri_parameter_supported defaults to true,
	// response_modes_supported to query and fragment).
	for _, d := range []map[string]any{doc, oidc} {
		if modes, _ := d["response_modes_supported"].([]any); len(modes) != 1 || modes[0] != "query" {
			t.Errorf("response_modes_supported %v", d["response_modes_supported"])
		}
	}
	for _, k := range []string{"request_parameter_supported", "request_uri_parameter_supported", "claims_parameter_supported"} {
		if v, ok := oidc[k]; !ok || v != false {
			t.Errorf("OIDC %s = %v", k, v)
		}
	}
	if !reflect.DeepEqual(oidc["token_endpoint_auth_signing_alg_values_supported"], doc["token_endpoint_auth_signing_alg_values_supported"]) || oidc["token_endpoint_auth_signing_alg_values_supported"] == nil {
		t.Errorf("OIDC assertion algorithms %v, SMART %v", oidc["token_endpoint_auth_signing_alg_values_supported"], doc["token_endpoint_auth_signing_alg_values_supported"])
	}
	t2 := decode(t, e.get(e.issuer+"/t/t2/.well-known/smart-configuration", ""))
	if t2["issuer"] != e.issuer+"/t/t2" {
		t.Fatalf("tenant issuer %v", t2["issuer"])
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body(e.get(e.issuer+"/jwks", ""))), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("JWKS: %v %d keys", err, len(set.Keys))
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.KeyID == "" {
			t.Fatalf("JWKS key %+v is private or has no kid", k)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	old := e.tokens("launch/patient patient/*.rs")["access_token"].(string)
	fresh, err := smart.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	var retired []smart.PublicKey
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(e.srv.Keys.JWKS(), &set)
	for _, k := range set.Keys {
		retired = append(retired, smart.PublicKey{ID: k.KeyID, Key: k.Key, Algorithm: k.Algorithm})
	}
	if err := e.srv.Keys.Rotate(fresh, retired...); err != nil {
		t.Fatal(err)
	}
	v := e.verifier()
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatalf("a token signed before rotation no longer verifies: %v", err)
	}
	newTok := e.tokens("launch/patient patient/*.rs")["access_token"].(string)
	if _, err := v.Verify(context.Background(), newTok); err != nil {
		t.Fatal(err)
	}
	if e.srv.Keys.Rotate(fresh) != nil {
		t.Fatal("rotate without retired keys failed")
	}
	v2 := e.verifier()
	if _, err := v2.Verify(context.Background(), old); err == nil {
		t.Fatal("a token of a dropped key still verifies")
	}
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func jsonB64(s string) ([]byte, error) {
	return base64Decode(s)
}
