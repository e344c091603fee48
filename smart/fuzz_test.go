package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/launch"
)

// FuzzParseQueryStrict: the form parser never panics, never accepts a
// repeated parameter, and agrees with net/url on what it accepts.
func FuzzParseQueryStrict(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "a=1&a=2", "scope=patient%2F*.rs&x", "%zz=1", "a=%ff", "&&=&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseQueryStrict(raw)
		if err != nil {
			return
		}
		want, uerr := url.ParseQuery(raw)
		if uerr != nil {
			t.Fatalf("accepted %q that net/url refuses: %v", raw, uerr)
		}
		for k, vs := range want {
			if len(vs) > 1 {
				t.Fatalf("accepted repeated parameter %q in %q", k, raw)
			}
			if got[k] != vs[0] {
				t.Fatalf("%q: %s = %q, net/url says %q", raw, k, got[k], vs[0])
			}
		}
	})
}

// FuzzVerify: no token other than the genuine one verifies, and nothing panics.
func FuzzVerify(f *testing.F) {
	// Only an ES256 key: every fuzz worker runs this setup, and RSA key
	// generation can take seconds on a loaded machine, long enough for the
	// fuzzing engine to give up on a worker ("context deadline exceeded").
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	ks, err := NewKeySet([]SigningKey{{Signer: ec, Algorithm: ES256}})
	if err != nil {
		f.Fatal(err)
	}
	store := &MemoryStore{}
	s := &Server{BaseURL: "https://ehr.example/auth", Tenants: []Tenant{{FHIRBases: []string{"https://ehr.example/fhir"}}},
		Clients: &MemoryClients{}, Store: store, Keys: ks,
		Authenticator: AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (User, bool) { return User{}, false })}
	_ = s.init()
	g := Grant{ID: randid.New(), ClientID: "app", UserID: "u", Scope: "launch/patient patient/*.rs",
		Audience: "https://ehr.example/fhir", Expires: time.Now().Add(time.Hour)}
	_ = store.SaveGrant(context.Background(), g)
	good, _, err := s.mintAccess(&s.Tenants[0], g, g.Scope, launch.Context{Patient: "1"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	v, err := s.Verifier("", "https://ehr.example/fhir")
	if err != nil {
		f.Fatal(err)
	}
	v.CacheSize = -1
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := v.Verify(context.Background(), tok); err == nil && tok != good {
			t.Fatalf("a token other than the genuine one verified: %q", tok)
		}
	})
}
