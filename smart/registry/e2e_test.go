package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/pkce"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/registry"
)

type approveAll struct{}

func (approveAll) Decide(_ context.Context, r smart.ConsentRequest) (smart.ConsentDecision, error) {
	return smart.ConsentDecision{Grantable: r.Allowed}, nil
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestSuspensionStopsEverything: suspending an app makes its existing access
// and refresh tokens fail and its next authorization refused.
func TestSuspensionStopsEverything(t *testing.T) {
	ctx := context.Background()
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	defer ts.Close()
	reg := &registry.Registry{Store: &registry.Memory{}, Audit: &audit.Memory{}}
	keys, _ := smart.GenerateKeys()
	ks, _ := smart.NewKeySet(keys)
	srv := &smart.Server{BaseURL: ts.URL + "/auth", Tenants: []smart.Tenant{{FHIRBases: []string{ts.URL + "/fhir"}}},
		Clients: reg.Clients(registry.Production), Store: &smart.MemoryStore{}, Keys: ks, Audit: &audit.Memory{}, Consent: approveAll{},
		Authenticator: smart.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (smart.User, bool) {
			return smart.User{ID: "p", FHIRUser: "Patient/1", PatientID: "1"}, true
		})}
	reg.Revokers = []registry.Revoker{srv}
	mux.Handle("/auth/", http.StripPrefix("/auth", srv))

	f := &fixture{r: reg}
	a := f.to(t, f.create(t), registry.ProductionApproved)
	clientID := a.ClientID(registry.Production)

	authorize := func() *http.Response {
		verifier := randid.New()
		q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"https://growth.example/cb"},
			"scope": {"launch/patient openid fhirUser offline_access patient/Observation.rs"}, "state": {"s"}, "aud": {ts.URL + "/fhir"},
			"code_challenge": {pkce.S256(verifier)}, "code_challenge_method": {"S256"}}
		resp, err := noRedirect().Get(ts.URL + "/auth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusSeeOther && strings.Contains(resp.Header.Get("Location"), "/authorize/continue") {
			resp, _ = noRedirect().Get(resp.Header.Get("Location"))
		}
		resp.Header.Set("X-Verifier", verifier)
		return resp
	}
	resp := authorize()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	tr, err := http.PostForm(ts.URL+"/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"code_verifier": {resp.Header.Get("X-Verifier")}, "redirect_uri": {"https://growth.example/cb"}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	_ = json.NewDecoder(tr.Body).Decode(&tok)
	tr.Body.Close()
	if tok["access_token"] == nil || tok["refresh_token"] == nil {
		t.Fatalf("no tokens before suspension: %v", tok)
	}
	v, _ := srv.Verifier("", ts.URL+"/fhir")
	if _, err := v.Verify(ctx, tok["access_token"].(string)); err != nil {
		t.Fatal(err)
	}

	if _, err := reg.Transition(ctx, "", a.ID, registry.Suspended, "security", "incident 42"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok["access_token"].(string)); err == nil {
		t.Fatal("the access token still verifies after suspension")
	}
	rr, _ := http.PostForm(ts.URL+"/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if rr.StatusCode == http.StatusOK {
		t.Fatal("the refresh token still works after suspension")
	}
	rr.Body.Close()
	if resp := authorize(); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("authorization after suspension: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestRegistrationEndpoints(t *testing.T) {
	reg := &registry.Registry{Store: &registry.Memory{}}
	h := &registry.Registration{Registry: reg, Environment: registry.Sandbox, BaseURL: "https://ehr.example/dev", Open: true, AutoApprove: true}
	do := func(method, path, bearer string, body any) *httptest.ResponseRecorder {
		var b bytes.Buffer
		if body != nil {
			_ = json.NewEncoder(&b).Encode(body)
		}
		r := httptest.NewRequest(method, path, &b)
		r.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := do(http.MethodPost, "/register", "", meta())
	if w.Code != http.StatusCreated || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	var got map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	id, rat := got["client_id"].(string), got["registration_access_token"].(string)
	if got["lifecycle_state"] != "sandbox_approved" || got["registration_client_uri"] != "https://ehr.example/dev/register/"+id {
		t.Fatalf("response %v", got)
	}
	if _, err := reg.Clients(registry.Sandbox).Client(context.Background(), "", id); err != nil {
		t.Fatalf("the registered client is unknown to the sandbox: %v", err)
	}
	if w := do(http.MethodGet, "/register/"+id, rat, nil); w.Code != 200 {
		t.Fatalf("read: %d", w.Code)
	}
	if w := do(http.MethodGet, "/register/"+id, randid.New(), nil); w.Code != 401 {
		t.Fatalf("wrong token: %d", w.Code)
	}
	if w := do(http.MethodGet, "/register/unknown", rat, nil); w.Code != 401 {
		t.Fatalf("unknown client: %d", w.Code)
	}
	bad := meta()
	bad.RedirectURIs = []string{"http://evil.example/cb"}
	if w := do(http.MethodPost, "/register", "", bad); w.Code != 400 || !strings.Contains(w.Body.String(), "invalid_redirect_uri") {
		t.Fatalf("bad metadata: %d %s", w.Code, w.Body)
	}
	changed := meta()
	changed.ClientName = "Renamed"
	if w := do(http.MethodPut, "/register/"+id, rat, changed); w.Code != 200 || !strings.Contains(w.Body.String(), "Renamed") {
		t.Fatalf("update: %d %s", w.Code, w.Body)
	}
	if w := do(http.MethodDelete, "/register/"+id, rat, nil); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d", w.Code)
	}
	if _, err := reg.Clients(registry.Sandbox).Client(context.Background(), "", id); err == nil {
		t.Fatal("a deleted client still works")
	}
	closed := &registry.Registration{Registry: reg, Environment: registry.Production, InitialAccessToken: func(tok string) bool { return tok == "iat-1" }}
	h = closed
	if w := do(http.MethodPost, "/register", "", meta()); w.Code != 401 {
		t.Fatalf("closed registration without a token: %d", w.Code)
	}
	if w := do(http.MethodPost, "/register", "iat-1", meta()); w.Code != 201 || strings.Contains(w.Body.String(), "sandbox_approved") {
		t.Fatalf("closed registration with a token: %d %s", w.Code, w.Body)
	}
}

func TestCatalogAndSimilar(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	a := f.to(t, f.create(t), registry.ProductionApproved)
	b := f.to(t, f.create(t), registry.SandboxApproved)
	_ = f.to(t, f.create(t), registry.Draft)
	prod, _ := f.r.Catalog(ctx, "", registry.Production, "")
	if len(prod) != 1 || prod[0].AppID != a.ID || len(prod[0].ScopeSummary) == 0 || prod[0].Summary == "" {
		t.Fatalf("production catalog %+v", prod)
	}
	sb, _ := f.r.Catalog(ctx, "", registry.Sandbox, registry.ClinicianFacing)
	if len(sb) != 2 {
		t.Fatalf("sandbox catalog has %d apps, want 2", len(sb))
	}
	sim, _ := f.r.Similar(ctx, "", a.ID, registry.Sandbox, 5)
	if len(sim) != 1 || sim[0].AppID != b.ID {
		t.Fatalf("similar %+v", sim)
	}
}
