package smart_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/smart"
)

func TestConfidentialSymmetricClient(t *testing.T) {
	e := newEnv(t)
	run := func(auth func(r *http.Request, f url.Values)) (*http.Response, map[string]any) {
		params, verifier := e.authzParams("launch/patient patient/*.rs")
		params.Set("client_id", "conf")
		params.Set("redirect_uri", "https://conf.example/cb")
		p := parsePage(e.start(params, "patient"))
		q := e.redirectParams(e.approve(p, "patient"), "https://conf.example/cb")
		f := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "code_verifier": {verifier},
			"redirect_uri": {"https://conf.example/cb"}}
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", nil)
		auth(req, f)
		req.Body = io.NopCloser(strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp := e.do(req, "")
		return resp, decode(t, resp)
	}
	if resp, m := run(func(r *http.Request, _ url.Values) { r.SetBasicAuth("conf", e.secret) }); resp.StatusCode != 200 {
		t.Fatalf("client_secret_basic: %d %v", resp.StatusCode, m)
	}
	resp, m := run(func(r *http.Request, _ url.Values) { r.SetBasicAuth("conf", "wrong") })
	if resp.StatusCode != 401 || m["error"] != "invalid_client" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("bad secret: %d %v %q", resp.StatusCode, m, resp.Header.Get("WWW-Authenticate"))
	}
	// The client registered client_secret_basic: client_secret_post is refused.
	if resp, m := run(func(_ *http.Request, f url.Values) { f.Set("client_id", "conf"); f.Set("client_secret", e.secret) }); resp.StatusCode != 401 {
		t.Fatalf("unregistered method: %d %v", resp.StatusCode, m)
	}
	// Two methods at once are refused (RFC 6749 §2.3).
	if resp, _ := run(func(r *http.Request, f url.Values) {
		r.SetBasicAuth("conf", e.secret)
		f.Set("client_secret", e.secret)
	}); resp.StatusCode != 400 {
		t.Fatalf("two methods: %d", resp.StatusCode)
	}
}

func TestSecretsAreHashed(t *testing.T) {
	secret, hash := smart.NewSecret()
	if strings.Contains(hash, secret) || hash == smart.HashSecret(secret+"x") || hash != smart.HashSecret(secret) {
		t.Fatal("HashSecret is not a stable one-way hash")
	}
}

func TestTokenCORS(t *testing.T) {
	e := newEnv(t)
	code, verifier := e.code("launch/patient patient/*.rs", "patient")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"redirect_uri": {"https://app.example/cb"}, "client_id": {"app"}}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://app.example")
	if resp := e.do(req, ""); resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("registered origin: %v", resp.Header)
	}
	code, verifier = e.code("launch/patient patient/*.rs", "patient")
	form.Set("code", code)
	form.Set("code_verifier", verifier)
	req, _ = http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp := e.do(req, ""); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign origin allowed: %v", resp.Header)
	}
	params, _ := e.authzParams("openid")
	req, _ = http.NewRequest(http.MethodGet, e.issuer+"/authorize?"+params.Encode(), nil)
	req.Header.Set("Origin", "https://app.example")
	if resp := e.do(req, ""); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS on the authorization endpoint")
	}
}

// hsm stands for a crypto.Signer whose private key never leaves a device.
type hsm struct{ s crypto.Signer }

func (h hsm) Public() crypto.PublicKey { return h.s.Public() }
func (h hsm) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return h.s.Sign(r, d, o)
}

func TestAlgorithmsAndOpaqueSigners(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	base := sharedKeys(t)
	for _, tc := range []struct {
		name string
		alg  string
		keys []smart.SigningKey
	}{
		{"ES256 through an opaque signer", smart.ES256, []smart.SigningKey{{Signer: hsm{base[0].Signer}}, base[1]}},
		{"RS256 access tokens", smart.RS256, []smart.SigningKey{{Signer: hsm{rk}, Algorithm: smart.RS256}}},
		{"EdDSA access tokens", smart.EdDSA, []smart.SigningKey{{Signer: ek}, base[1]}},
		{"PS256 through an opaque signer", smart.PS256, []smart.SigningKey{{Signer: hsm{rk}, Algorithm: smart.PS256}, base[1]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ks, err := smart.NewKeySet(tc.keys)
			if err != nil {
				t.Fatal(err)
			}
			e.srv.Keys = ks
			e.srv.AccessTokenAlg = tc.alg
			m := e.tokens("launch/patient openid fhirUser patient/*.rs")
			if _, err := e.verifier().Verify(context.Background(), m["access_token"].(string)); err != nil {
				t.Fatalf("verify: %v", err)
			}
		})
	}
	if _, err := smart.NewKeySet([]smart.SigningKey{{Signer: rk, Algorithm: smart.ES256}}); err == nil {
		t.Fatal("an ES256 label on an RSA key was accepted")
	}
}

func TestClientValidation(t *testing.T) {
	for _, c := range []smart.Client{
		{ID: "a", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"https://a.example/*"}},
		{ID: "a", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"https://a.example/cb#frag"}},
		{ID: "a", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://a.example/cb"}},
		{ID: "a", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"javascript:alert(1)"}},
		{ID: "a", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"data:text/html,x"}},
		{ID: "a", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"/relative"}},
		{ID: "a", TokenEndpointAuthMethod: "none"},
		{ID: "a", TokenEndpointAuthMethod: "client_secret_basic", RedirectURIs: []string{"https://a.example/cb"}},
		{ID: "a", TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: "http://a.example/jwks", GrantTypes: []string{"client_credentials"}},
		{ID: "a", TokenEndpointAuthMethod: "none", GrantTypes: []string{"client_credentials"}},
		{ID: "a", TokenEndpointAuthMethod: "magic", RedirectURIs: []string{"https://a.example/cb"}},
		{ID: "a", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"https://a.example/cb"}, Scope: "patient/Observation.sr"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", c)
		}
	}
	ok := smart.Client{ID: "a", TokenEndpointAuthMethod: "none", RedirectURIs: []string{"https://a.example/cb", "http://127.0.0.1/cb", "http://[::1]:9/cb"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}
