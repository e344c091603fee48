package smart_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/pkce"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
)

// clock is a settable time source shared by the server, store and launches.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one running authorization server with its fixtures.
type env struct {
	t        *testing.T
	ts       *httptest.Server
	srv      *smart.Server
	store    *smart.MemoryStore
	clients  *smart.MemoryClients
	audit    *audit.Memory
	launches *launch.Service
	clock    *clock
	issuer   string
	fhir     string
	backend  *ecdsa.PrivateKey // the backend client's ES384 key
	secret   string            // the confidential client's secret
}

var (
	keysOnce sync.Once
	testKeys []smart.SigningKey
)

func sharedKeys(t testing.TB) []smart.SigningKey {
	keysOnce.Do(func() {
		var err error
		if testKeys, err = smart.GenerateKeys(); err != nil {
			t.Fatal(err)
		}
	})
	return testKeys
}

// users known to the test login, by the X-Test-User header.
var users = map[string]smart.User{
	"dr-lee":  {ID: "dr-lee", FHIRUser: "Practitioner/9", Name: "Dr Lee"},
	"dr-kim":  {ID: "dr-kim", FHIRUser: "Practitioner/10", Name: "Dr Kim"},
	"patient": {ID: "patient", FHIRUser: "Patient/123", Name: "Pat Ient", PatientID: "123"},
	"nobody":  {ID: "nobody", Name: "No FHIR identity", PatientID: "123"},
}

type picker struct{}

func (picker) Search(_ context.Context, _ string, _ smart.User, q string) ([]smart.PatientChoice, error) {
	all := []smart.PatientChoice{{ID: "123", Name: "Alice Adams"}, {ID: "456", Name: "Bob Brown"}}
	var out []smart.PatientChoice
	for _, p := range all {
		if strings.Contains(strings.ToLower(p.Name), strings.ToLower(q)) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (picker) Allowed(_ context.Context, _ string, _ smart.User, id string) (bool, error) {
	return id == "123" || id == "456", nil
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{t: time.Now().Truncate(time.Second)}, audit: &audit.Memory{}, clients: &smart.MemoryClients{}}
	e.store = &smart.MemoryStore{Now: e.clock.Now}
	ks, err := smart.NewKeySet(sharedKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.ts = httptest.NewServer(mux)
	t.Cleanup(e.ts.Close)
	e.issuer = e.ts.URL + "/auth"
	e.fhir = e.ts.URL + "/fhir"
	e.launches = &launch.Service{Store: &launch.Memory{Now: e.clock.Now}, Now: e.clock.Now}
	e.srv = &smart.Server{
		BaseURL: e.issuer,
		Tenants: []smart.Tenant{{FHIRBases: []string{e.fhir}}, {ID: "t2", FHIRBases: []string{e.ts.URL + "/t2/fhir"}}},
		Clients: e.clients, Store: e.store, Keys: ks, Launches: e.launches, Patients: picker{},
		Audit: e.audit, Now: e.clock.Now,
		Authenticator: smart.AuthenticatorFunc(func(w http.ResponseWriter, r *http.Request) (smart.User, bool) {
			u, ok := users[r.Header.Get("X-Test-User")]
			if !ok {
				http.Error(w, "please log in", http.StatusUnauthorized)
			}
			return u, ok
		}),
	}
	mux.Handle("/auth/", http.StripPrefix("/auth", e.srv))
	e.addClients()
	return e
}

func (e *env) addClients() {
	t := e.t
	must := func(tenant string, c smart.Client) {
		t.Helper()
		if err := e.clients.Add(tenant, c); err != nil {
			t.Fatal(err)
		}
	}
	all := "launch launch/patient launch/encounter openid fhirUser offline_access online_access patient/*.cruds user/*.cruds"
	must("", smart.Client{ID: "app", Name: "Growth <Chart>", TokenEndpointAuthMethod: smart.AuthNone,
		RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:8080/native/cb"}, Scope: all})
	must("", smart.Client{ID: "other", TokenEndpointAuthMethod: smart.AuthNone,
		RedirectURIs: []string{"https://other.example/cb"}, Scope: all})
	var hash string
	e.secret, hash = smart.NewSecret()
	must("", smart.Client{ID: "conf", TokenEndpointAuthMethod: smart.AuthClientSecretBasic, SecretHash: hash,
		RedirectURIs: []string{"https://conf.example/cb"}, Scope: all, Introspect: true})
	must("t2", smart.Client{ID: "app", TokenEndpointAuthMethod: smart.AuthNone,
		RedirectURIs: []string{"https://app.example/cb"}, Scope: all})
	var err error
	if e.backend, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: e.backend.Public(), KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	must("", smart.Client{ID: "bulk", TokenEndpointAuthMethod: smart.AuthPrivateKeyJWT, JWKS: jwks,
		GrantTypes: []string{smart.GrantClientCredentials}, Scope: "system/*.rs system/Observation.cruds"})
}

// http is a client that does not follow redirects.
func (e *env) http() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) do(req *http.Request, user string) *http.Response {
	e.t.Helper()
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	resp, err := e.http().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *env) get(u, user string) *http.Response {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return e.do(req, user)
}

func (e *env) post(u string, form url.Values, user string) *http.Response {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(req, user)
}

func body(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	return string(b)
}

// authzParams returns a valid standalone authorization request.
func (e *env) authzParams(scope string) (url.Values, string) {
	verifier := randid.New()
	return url.Values{
		"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {"https://app.example/cb"},
		"scope": {scope}, "state": {"st-" + randid.New()[:8]}, "aud": {e.fhir},
		"code_challenge": {pkce.S256(verifier)}, "code_challenge_method": {"S256"},
	}, verifier
}

var (
	reqRe  = regexp.MustCompile(`name="req" value="([^"]+)"`)
	csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	boxRe  = regexp.MustCompile(`name="(scope_\d+)"`)
)

// page is a rendered login-flow page.
type page struct {
	status int
	body   string
	header http.Header
	req    string
	csrf   string
	boxes  []string
}

func parsePage(r *http.Response) page {
	p := page{status: r.StatusCode, header: r.Header, body: body(r)}
	if m := reqRe.FindStringSubmatch(p.body); m != nil {
		p.req = m[1]
	}
	if m := csrfRe.FindStringSubmatch(p.body); m != nil {
		p.csrf = m[1]
	}
	for _, m := range boxRe.FindAllStringSubmatch(p.body, -1) {
		p.boxes = append(p.boxes, m[1])
	}
	return p
}

// start sends an authorization request and follows it to the first page or
// redirect, as user.
func (e *env) start(params url.Values, user string) *http.Response {
	e.t.Helper()
	resp := e.get(e.issuer+"/authorize?"+params.Encode(), "")
	if resp.StatusCode != http.StatusSeeOther {
		return resp
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, e.issuer+"/authorize/continue") {
		return resp
	}
	return e.get(loc, user)
}

// approve posts the consent form with every checkbox checked except skip.
func (e *env) approve(p page, user string, skip ...string) *http.Response {
	e.t.Helper()
	form := url.Values{"req": {p.req}, "csrf": {p.csrf}, "decision": {"approve"}}
	for _, b := range p.boxes {
		if !contains(skip, b) {
			form.Set(b, "on")
		}
	}
	return e.post(e.issuer+"/authorize/consent", form, user)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// redirectParams reads the query of a redirect to the app.
func (e *env) redirectParams(resp *http.Response, prefix string) url.Values {
	e.t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("status %d, want a redirect to %s: %s", resp.StatusCode, prefix, body(resp))
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, prefix) {
		e.t.Fatalf("redirect to %q, want %s", loc, prefix)
	}
	u, _ := url.Parse(loc)
	return u.Query()
}

// code runs a whole standalone authorization as user and returns the code.
func (e *env) code(scope, user string) (code, verifier string) {
	e.t.Helper()
	params, verifier := e.authzParams(scope)
	p := parsePage(e.start(params, user))
	if p.status != http.StatusOK || p.req == "" {
		e.t.Fatalf("consent page: status %d\n%s", p.status, p.body)
	}
	q := e.redirectParams(e.approve(p, user), "https://app.example/cb")
	if q.Get("state") != params.Get("state") || q.Get("iss") != e.issuer || q.Get("code") == "" {
		e.t.Fatalf("redirect %v", q)
	}
	return q.Get("code"), verifier
}

// exchange redeems a code for the public client "app".
func (e *env) exchange(code, verifier string) (*http.Response, map[string]any) {
	e.t.Helper()
	resp := e.post(e.issuer+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"redirect_uri": {"https://app.example/cb"}, "client_id": {"app"},
	}, "")
	return resp, decode(e.t, resp)
}

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var m map[string]any
	b := body(resp)
	if err := json.Unmarshal([]byte(b), &m); err != nil {
		t.Fatalf("response is not JSON (%d): %s", resp.StatusCode, b)
	}
	return m
}

// tokens runs a standalone flow as the patient and returns the token response.
func (e *env) tokens(scope string) map[string]any {
	e.t.Helper()
	code, verifier := e.code(scope, "patient")
	resp, m := e.exchange(code, verifier)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("token: %d %v", resp.StatusCode, m)
	}
	return m
}

// verifier returns the Verifier for the default tenant's FHIR base.
func (e *env) verifier() *smart.Verifier {
	e.t.Helper()
	v, err := e.srv.Verifier("", e.fhir)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// events counts audit events of a type.
func (e *env) events(t audit.Type) int { return len(e.audit.Of(t)) }
