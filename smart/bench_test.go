package smart

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/pkce"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/launch"
)

// benchServer is a Server with memory stores and a discarding audit sink,
// called in-process (no network), as the benchmarks ask.
func benchServer(b *testing.B) (*Server, *MemoryStore, Grant) {
	b.Helper()
	keys, err := GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	ks, err := NewKeySet(keys)
	if err != nil {
		b.Fatal(err)
	}
	clients := &MemoryClients{}
	if err := clients.Add("", Client{ID: "app", TokenEndpointAuthMethod: AuthNone, RedirectURIs: []string{"https://app.example/cb"},
		Scope: "launch/patient offline_access patient/*.rs"}); err != nil {
		b.Fatal(err)
	}
	store := &MemoryStore{}
	s := &Server{
		BaseURL: "https://ehr.example/auth", Tenants: []Tenant{{FHIRBases: []string{"https://ehr.example/fhir"}}},
		Clients: clients, Store: store, Keys: ks,
		Authenticator: AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (User, bool) { return User{}, false }),
		Audit:         audit.SinkFunc(func(context.Context, audit.Event) error { return nil }),
	}
	g := Grant{ID: randid.New(), ClientID: "app", UserID: "patient", FHIRUser: "Patient/123",
		Scope: "launch/patient offline_access patient/*.rs", Audience: "https://ehr.example/fhir",
		Context: launch.Context{Patient: "123"}, Created: time.Now(), Expires: time.Now().Add(time.Hour)}
	if err := store.SaveGrant(context.Background(), g); err != nil {
		b.Fatal(err)
	}
	return s, store, g
}

func postForm(target string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// BenchmarkTokenExchange redeems an authorization code with PKCE for an
// ES256 access token and a refresh token, calling the handler in-process.
// Codes and requests are made before the timer starts.
func BenchmarkTokenExchange(b *testing.B) {
	s, store, g := benchServer(b)
	verifier := randid.New()
	challenge := pkce.S256(verifier)
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		code := randid.New()
		_ = store.SaveCode(context.Background(), AuthCode{Hash: hashToken(code), ClientID: "app", RedirectURI: "https://app.example/cb",
			Challenge: challenge, GrantID: g.ID, Expires: time.Now().Add(time.Hour)})
		reqs[i] = postForm("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
			"redirect_uri": {"https://app.example/cb"}, "client_id": {"app"}})
	}
	serveAll(b, s, reqs)
}

// BenchmarkRefresh rotates a refresh token for a new access token and a new
// refresh token.
func BenchmarkRefresh(b *testing.B) {
	s, store, g := benchServer(b)
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		rt := randid.New()
		_ = store.SaveRefresh(context.Background(), Refresh{Hash: hashToken(rt), GrantID: g.ID, ClientID: "app",
			Scope: g.Scope, Expires: g.Expires})
		reqs[i] = postForm("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	serveAll(b, s, reqs)
}

func serveAll(b *testing.B, s *Server, reqs []*http.Request) {
	ws := make([]*httptest.ResponseRecorder, len(reqs))
	for i := range ws {
		ws[i] = httptest.NewRecorder()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.ServeHTTP(ws[i], reqs[i])
	}
	b.StopTimer()
	for _, w := range ws {
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkBaselineES256Sign is go-jose's bare ES256 signature of the same
// claims the exchange signs (json.Marshal, Sign, CompactSerialize): the
// floor of any exchange.
func BenchmarkBaselineES256Sign(b *testing.B) {
	s, _, g := benchServer(b)
	_ = s.init()
	k := s.Keys.signer(ES256)
	c := AccessClaims{Issuer: "https://ehr.example/auth", Subject: g.UserID, Audience: g.Audience, ClientID: g.ClientID,
		Scope: g.Scope, ID: randid.New(), IssuedAt: time.Now().Unix(), Expiry: time.Now().Add(time.Hour).Unix(),
		GrantID: g.ID, FHIRUser: g.FHIRUser, Context: g.Context}
	b.ReportAllocs()
	for b.Loop() {
		payload, err := json.Marshal(c)
		if err != nil {
			b.Fatal(err)
		}
		jws, err := k.access.Sign(payload)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jws.CompactSerialize(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchToken(b *testing.B) (*Server, string) {
	s, _, g := benchServer(b)
	_ = s.init()
	tok, _, err := s.mintAccess(&s.Tenants[0], g, g.Scope, g.Context, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return s, tok
}

func BenchmarkVerifyUncached(b *testing.B) {
	s, tok := benchToken(b)
	v, _ := s.Verifier("", "https://ehr.example/fhir")
	v.CacheSize = -1
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	s, tok := benchToken(b)
	v, _ := s.Verifier("", "https://ehr.example/fhir")
	if _, err := v.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineJoseVerify is go-jose's bare parse and ES256 verify of the
// same token into the same claims, with no policy checks.
func BenchmarkBaselineJoseVerify(b *testing.B) {
	s, tok := benchToken(b)
	pub, _, _ := s.Keys.Key(s.Keys.signer(ES256).kid)
	b.ReportAllocs()
	for b.Loop() {
		t, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			b.Fatal(err)
		}
		var c AccessClaims
		if err := t.Claims(pub, &c); err != nil {
			b.Fatal(err)
		}
	}
}
