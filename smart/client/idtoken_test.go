package client

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/internal/josekit"
)

func TestVerifyIDToken(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwks) }))
	defer srv.Close()
	now := time.Unix(1_800_000_000, 0)
	c := &Config{ClientID: "app", Now: func() time.Time { return now }}
	cfg := &Configuration{Issuer: "https://ehr.example/auth", JWKSURI: srv.URL}
	sign := func(k *rsa.PrivateKey, kid string, mutate func(map[string]any)) string {
		claims := map[string]any{"iss": cfg.Issuer, "sub": "u1", "aud": "app", "exp": now.Add(5 * time.Minute).Unix(),
			"iat": now.Unix(), "nonce": "n1", "fhirUser": "Practitioner/9"}
		if mutate != nil {
			mutate(claims)
		}
		s, err := josekit.NewSigner(k, kid, "RS256", "JWT")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := josekit.SignJSON(s, claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	got, err := c.verifyIDToken(context.Background(), cfg, sign(key, "k1", nil), "n1")
	if err != nil || got.FHIRUser != "Practitioner/9" || got.Subject != "u1" {
		t.Fatalf("genuine id_token: %v %+v", err, got)
	}
	good := sign(key, "k1", nil)
	parts := strings.Split(good, ".")
	cases := map[string]string{
		"bad signature":    sign(other, "k1", nil),
		"unknown kid":      sign(key, "k9", nil),
		"wrong aud":        sign(key, "k1", func(c map[string]any) { c["aud"] = "other-app" }),
		"several aud":      sign(key, "k1", func(c map[string]any) { c["aud"] = []string{"app", "other"} }),
		"wrong iss":        sign(key, "k1", func(c map[string]any) { c["iss"] = "https://evil.example" }),
		"expired":          sign(key, "k1", func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }),
		"future iat":       sign(key, "k1", func(c map[string]any) { c["iat"] = now.Add(10 * time.Minute).Unix() }),
		"nonce mismatch":   sign(key, "k1", func(c map[string]any) { c["nonce"] = "n2" }),
		"no sub":           sign(key, "k1", func(c map[string]any) { delete(c, "sub") }),
		"alg none":         "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ." + parts[1] + ".",
		"tampered payload": parts[0] + "." + strings.TrimRight(parts[1], "A") + "B." + parts[2],
		"garbage":          "x.y",
	}
	for name, tok := range cases {
		if _, err := c.verifyIDToken(context.Background(), cfg, tok, "n1"); !errors.Is(err, ErrIDToken) {
			t.Errorf("%s: %v, want ErrIDToken", name, err)
		}
	}
	azp := sign(key, "k1", func(c map[string]any) { c["aud"] = []string{"app", "other"}; c["azp"] = "app" })
	if _, err := c.verifyIDToken(context.Background(), cfg, azp, "n1"); err != nil {
		t.Errorf("several audiences with azp = client: %v", err)
	}
}

// TestJWKSStaysOnItsOrigin: the keys an id_token is checked against are
// taken from the jwks_uri's own origin; a redirect to another host, which
// would let it choose the keys, is not followed.
func TestJWKSStaysOnItsOrigin(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwks) }))
	defer keys.Close()
	var to string
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			_, _ = w.Write(jwks)
			return
		}
		http.Redirect(w, r, to, http.StatusFound)
	}))
	defer home.Close()
	now := time.Unix(1_800_000_000, 0)
	s, _ := josekit.NewSigner(key, "k1", "RS256", "JWT")
	for _, c := range []struct {
		to string
		ok bool
	}{{home.URL + "/keys", true}, {keys.URL + "/keys", false}} {
		to = c.to
		cfg := &Configuration{Issuer: "https://ehr.example/auth", JWKSURI: home.URL + "/jwks"}
		tok, _ := josekit.SignJSON(s, map[string]any{"iss": cfg.Issuer, "sub": "u1", "aud": "app", "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "nonce": "n1"})
		conf := &Config{ClientID: "app", Now: func() time.Time { return now }}
		if _, err := conf.verifyIDToken(context.Background(), cfg, tok, "n1"); (err == nil) != c.ok {
			t.Errorf("keys redirected to %s: %v", c.to, err)
		}
	}
}

func TestCookieStoreTamper(t *testing.T) {
	cs := &CookieStore{Key: make([]byte, 32), Insecure: true}
	w := httptest.NewRecorder()
	if err := cs.Save(w, nil, "s1", Authorization{Verifier: "v"}); err != nil {
		t.Fatal(err)
	}
	ck := w.Result().Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie attributes %+v", ck)
	}
	load := func(state string, value string) error {
		r := httptest.NewRequest(http.MethodGet, "/callback", nil)
		r.AddCookie(&http.Cookie{Name: ck.Name, Value: value})
		_, err := cs.Load(httptest.NewRecorder(), r, state)
		return err
	}
	tampered := []byte(ck.Value)
	tampered[len(tampered)-3] ^= 1
	if load("s1", string(tampered)) == nil {
		t.Error("a tampered cookie opened")
	}
	if err := load("s1", ck.Value); err != nil {
		t.Errorf("genuine cookie: %v", err)
	}
	secure := &CookieStore{Key: make([]byte, 32)}
	w = httptest.NewRecorder()
	_ = secure.Save(w, nil, "s2", Authorization{})
	if c := w.Result().Cookies()[0]; !c.Secure || !strings.HasPrefix(c.Name, "__Host-") {
		t.Errorf("default cookie %+v is not Secure and __Host-", c)
	}
}
