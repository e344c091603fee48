package fhirproxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
)

// fixture is the proxy in front of a recording upstream, with an
// authorization server to mint tokens.
type fixture struct {
	t     *testing.T
	up    *upstream
	proxy *fhirproxy.Proxy
	ts    *httptest.Server
	srv   *smart.Server
	audit *audit.Memory
	base  string
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, up: newUpstream(t), audit: &audit.Memory{}}
	var handler http.Handler
	f.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(f.ts.Close)
	f.base = f.ts.URL + "/fhir"
	keys, _ := smart.GenerateKeys()
	ks, _ := smart.NewKeySet(keys)
	f.srv = &smart.Server{BaseURL: f.ts.URL + "/auth", Tenants: []smart.Tenant{{FHIRBases: []string{f.base}}},
		Clients: &smart.MemoryClients{}, Store: &smart.MemoryStore{}, Keys: ks, Audit: &audit.Memory{},
		Authenticator: smart.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (smart.User, bool) { return smart.User{}, false })}
	v, err := f.srv.Verifier("", f.base)
	if err != nil {
		t.Fatal(err)
	}
	upURL, _ := url.Parse(f.up.ts.URL)
	f.proxy = &fhirproxy.Proxy{Upstream: upURL, Verifier: v, Audit: f.audit,
		SMARTConfigURL: f.base + "/.well-known/smart-configuration", TokenURL: f.srv.BaseURL + "/token",
		UpstreamAuth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer upstream-credential") }}
	// Mounted without a ServeMux, which would clean dot segments before the
	// proxy saw them: the proxy itself must refuse them.
	handler = http.StripPrefix("/fhir", f.proxy)
	return f
}

// token mints an access token for p1 (patient/ scopes) or a user/system one.
func (f *fixture) token(scope string, clearance *consent.Clearance) string {
	f.t.Helper()
	g := smart.Grant{ClientID: "app", Scope: scope, Clearance: clearance, UserID: "u1", FHIRUser: "Practitioner/dr"}
	if strings.Contains(scope, "patient/") {
		g.Context = launch.Context{Patient: "p1"}
	}
	if strings.HasPrefix(scope, "system/") {
		g.UserID, g.FHIRUser = "", ""
	}
	tok, err := f.srv.Mint(context.Background(), "", g, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

type result struct {
	status int
	body   map[string]any
	raw    string
	header http.Header
}

// next is the url of the answer's next link (a Bundle's), or "".
func (r result) next() string {
	links, _ := r.body["link"].([]any)
	for _, l := range links {
		if l, _ := l.(map[string]any); l["relation"] == "next" {
			u, _ := l["url"].(string)
			return u
		}
	}
	return ""
}

// requestLog keeps what a test's own upstream received, one string a
// request, for the test to take.
type requestLog struct {
	mu  sync.Mutex
	got []string
}

func (l *requestLog) add(s string) {
	l.mu.Lock()
	l.got = append(l.got, s)
	l.mu.Unlock()
}

// take returns what was received since the last take, and forgets it.
func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.got
	l.got = nil
	return out
}

func (f *fixture) do(method, target, tok string, body string, hdr ...string) result {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+target, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	// Send the target exactly as written (origin-form), escapes and all.
	path, query, _ := strings.Cut(target, "?")
	req.URL.Opaque, req.URL.RawQuery = "/fhir"+path, query
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, raw: string(b), header: resp.Header}
	_ = json.Unmarshal(b, &r.body)
	return r
}

// refused asserts a status and that the upstream received nothing.
func (f *fixture) refused(name string, r result, status int) {
	f.t.Helper()
	if r.status != status {
		f.t.Errorf("%s: status %d, want %d: %s", name, r.status, status, r.raw)
	}
	if r.body["resourceType"] != "OperationOutcome" {
		f.t.Errorf("%s: body is not an OperationOutcome: %s", name, r.raw)
	} else if msg := diagnostics(r); msg == "" || strings.TrimSpace(msg) != msg {
		f.t.Errorf("%s: the refusal does not say why: %q", name, msg) // found: " is outside the patient compartment"
	}
	if got := f.up.requests(); len(got) != 0 {
		f.t.Errorf("%s: the upstream received %d request(s), first %s %s", name, len(got), got[0].Method, got[0].URL)
	}
	f.up.reset()
}

// onlyReads asserts that the upstream received reads only (the proxy's
// own checks), and forgets them.
func (f *fixture) onlyReads(name string) {
	f.t.Helper()
	for _, g := range f.up.requests() {
		if g.Method != http.MethodGet {
			f.t.Errorf("%s: a %s reached the upstream", name, g.Method)
		}
	}
	f.up.reset()
}

// entryIDs are the ids of the resources of a Bundle's entries, sorted.
func entryIDs(r result) []string {
	var out []string
	entries, _ := r.body["entry"].([]any)
	for _, e := range entries {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		id, _ := res["id"].(string)
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// diagnostics is the first issue's diagnostics of an OperationOutcome.
func diagnostics(r result) string {
	iss, _ := r.body["issue"].([]any)
	if len(iss) == 0 {
		return ""
	}
	first, _ := iss[0].(map[string]any)
	msg, _ := first["diagnostics"].(string)
	return msg
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/Observation", "", "")
	f.refused("no token", r, 401)
	if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, "smart_configuration=") {
		t.Errorf("WWW-Authenticate %q", ch)
	}
	good := f.token("patient/*.rs", nil)
	f.refused("token in the query", f.do("GET", "/Observation?access_token="+good, "", ""), 401)
	f.refused("garbage token", f.do("GET", "/Observation", "abc.def.ghi", ""), 401)
	idTokenish := strings.Replace(good, "eyJ", "eyK", 1)
	f.refused("tampered token", f.do("GET", "/Observation", idTokenish, ""), 401)
	// A token for another FHIR server.
	keys, _ := smart.GenerateKeys()
	ks, _ := smart.NewKeySet(keys)
	otherSrv := &smart.Server{BaseURL: "https://other.example/auth", Tenants: []smart.Tenant{{FHIRBases: []string{"https://other.example/fhir"}}},
		Clients: &smart.MemoryClients{}, Store: &smart.MemoryStore{}, Keys: ks,
		Authenticator: smart.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (smart.User, bool) { return smart.User{}, false })}
	foreign, _ := otherSrv.Mint(context.Background(), "", smart.Grant{ClientID: "app", Scope: "user/*.rs", UserID: "u", FHIRUser: "Practitioner/x"}, time.Hour)
	f.refused("token for another server", f.do("GET", "/Observation", foreign, ""), 401)
	if n := len(f.audit.Of(audit.ResourceRefused)); n != 5 {
		t.Errorf("%d refusals audited, want 5", n)
	}
	for _, e := range f.audit.Events() {
		if strings.Contains(e.Reason+e.Scopes+e.TokenID, good) {
			t.Fatal("token material in the audit trail")
		}
	}
}

// TestTokenParameters: a token goes in the Authorization header only (RFC
// 6750 §2: one method per request). An access_token parameter, in the
// query, a _search form body, a batch entry's URL or If-None-Exist, is
// refused and goes nowhere: not upstream, where it would land in URLs and
// logs, nor into the audit trail.
func TestTokenParameters(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.crs", nil)
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	f.refused("with the header, in the query", f.do("GET", "/Observation?code=1&access_token="+tok, tok, ""), 400)
	f.refused("with the header, in a form", f.do("POST", "/Observation/_search", tok, "code=1&access_token="+tok, form...), 400)
	r := f.do("POST", "/Observation/_search", "", "access_token="+tok, form...)
	f.refused("in a form alone", r, 401)
	if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_request"`) {
		t.Errorf("in a form alone: WWW-Authenticate %q", ch)
	}
	f.refused("in a batch entry", f.do("POST", "/", tok, `{"resourceType":"Bundle","type":"batch","entry":[
		{"request":{"method":"GET","url":"Observation/lab-1?access_token=`+tok+`"}}]}`), 400)
	f.refused("in If-None-Exist", f.do("POST", "/Observation", tok, mustJSON(obs("x", "p1", "laboratory")), "If-None-Exist", "access_token="+tok), 400)
	for _, e := range f.audit.Events() {
		if strings.Contains(fmt.Sprintf("%+v", e), tok) {
			t.Fatalf("the token is in the audit trail: %+v", e)
		}
	}
}

// TestMalformedRequestsAudited: a request refused before its token is
// read is audited naming the app, user and patient of a good token (found
// by FuzzSearchForms, which asks every request's event for its client:
// an app probing the proxy with malformed requests was nobody in the
// audit trail). The refusal is the same with any token, or none.
func TestMalformedRequestsAudited(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs", nil)
	for _, c := range []struct {
		name, method, target string
		hdr                  []string
		status               int
	}{
		{"a nameless chain", "GET", "/Observation?:Patient.name=One", nil, 400},
		{"an encoded slash", "GET", "/Patient/p1%2F..%2Fp2", nil, 400},
		{"a method override", "POST", "/Observation", []string{"X-HTTP-Method-Override", "DELETE"}, 400},
		{"HEAD", "HEAD", "/Observation/lab-1", nil, 405},
		{"XML", "GET", "/Observation?_format=xml", nil, 406},
		{"a header too large", "GET", "/Observation", []string{"X-Padding", strings.Repeat("x", 17<<10)}, 431},
	} {
		for _, bearer := range []string{tok, "not-a-token", ""} {
			f.audit.Reset()
			r := f.do(c.method, c.target, bearer, "", c.hdr...)
			events := f.audit.Events()
			if r.status != c.status || len(events) != 1 || events[0].Outcome != audit.Failure {
				t.Errorf("%s (bearer %.10q): %d with %d events, want %d and one failure", c.name, bearer, r.status, len(events), c.status)
				continue
			}
			want := audit.Event{}
			if bearer == tok {
				want = audit.Event{ClientID: "app", UserID: "u1", Patient: "p1"}
			}
			if e := events[0]; e.ClientID != want.ClientID || e.UserID != want.UserID || e.Patient != want.Patient || bearer != "" && strings.Contains(fmt.Sprint(e), bearer) {
				t.Errorf("%s (bearer %.10q): audited as client %q, user %q, patient %q", c.name, bearer, e.ClientID, e.UserID, e.Patient)
			}
		}
	}
}

func TestPathAndQueryDifferentials(t *testing.T) {
	f := newFixture(t)
	tok := f.token("patient/*.rs", nil)
	for name, target := range map[string]string{
		"encoded slash":       "/Patient/p1%2F..%2Fp2",
		"encoded dot segment": "/Patient/%2E%2E/p2",
		"matrix parameter":    "/Patient/p1;p2",
		"dot segment":         "/Patient/./p1",
		"lower-case type":     "/patient/p1",
		"unknown type":        "/Patients/p1",
		"bad id":              "/Patient/p1$x",
		"empty segment":       "/Patient//p1",
		"semicolon in query":  "/Observation?patient=p1;patient=p2",
		"bad escape":          "/Observation?code=%zz",
		"NUL in a value":      "/Observation?subject=Patient/p1%00Patient/p2",
		"line break in value": "/Observation?code=x%0D%0AForged:%20line",
		"DEL in a name":       "/Observation?co%7Fde=x",
		"unknown shape":       "/Patient/p1/x/y/z",
		"xml":                 "/Observation?_format=xml",
		// Names with an empty part (found by fuzzing: ":Patient.=x" was a
		// chain through a nameless parameter, resolved into a nameless one).
		"a chain through no name": "/Observation?:Patient.name=One",
		"an empty chain link":     "/Observation?subject..name=One",
		"a chain to nothing":      "/Observation?subject:Patient.=x",
		"an empty modifier":       "/Observation?code:=x",
		"a modifier of no name":   "/Observation?:missing=true",
		"a chain from the start":  "/Observation?.name=x",
	} {
		r := f.do("GET", target, tok, "")
		if r.status != 400 && r.status != 406 && r.status != 404 {
			t.Errorf("%s: %d", name, r.status)
		}
		f.refused(name, r, r.status)
	}
	// In a POSTed search's form alike (found by fuzzing, FuzzSearchForms:
	// _format=xml went upstream there).
	for _, form := range []string{"_format=xml", "code=1&_format=application/fhir%2Bxml", "_format=json%3Bcharset%3Dlatin1"} {
		f.refused("a form's "+form, f.do("POST", "/Observation/_search", tok, form, "Content-Type", "application/x-www-form-urlencoded"), 406)
	}
	many := "/Observation?" + strings.Repeat("code=1&", 70)
	f.refused("too many parameters", f.do("GET", many, tok, ""), 400)
	f.refused("a long URL", f.do("GET", "/Observation?code="+strings.Repeat("x", 9<<10), tok, ""), 400)
	// Under the limit as sent, over it as forwarded: each { goes as %7B.
	f.refused("a URL too long re-encoded", f.do("GET", "/Observation?code="+strings.Repeat("{", 3<<10), tok, ""), 400)
	if r := f.do("GET", "/Observation?code="+strings.Repeat("{", 2<<10), tok, ""); r.status != 200 {
		t.Errorf("a URL within the limit re-encoded: %d %s", r.status, r.raw)
	}
	f.up.reset()
	f.refused("large headers", f.do("GET", "/Observation", tok, "", "X-Padding", strings.Repeat("x", 17<<10)), 431)
	headers := []string{}
	for i := range 400 {
		headers = append(headers, fmt.Sprintf("X-H%d", i), strings.Repeat("y", 40))
	}
	f.refused("many headers", f.do("GET", "/Observation", tok, "", headers...), 431)
	f.refused("method override", f.do("GET", "/Observation", tok, "", "X-HTTP-Method-Override", "DELETE"), 400)
}

func TestCompartment(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/*.rs", nil)
	forbidden := map[string]string{
		"repeated patient":        "/Observation?patient=p1&patient=p2",
		"OR list":                 "/Observation?patient=p1,p2",
		"subject reference":       "/Observation?subject=Patient/p2",
		"subject modifier":        "/Observation?subject:Patient=p2",
		"absolute reference":      "/Observation?patient=https://evil.example/fhir/Patient/p2",
		"identifier modifier":     "/Observation?patient:identifier=urn:mrn|2",
		"missing modifier":        "/Observation?patient:missing=true",
		"reverse chain":           "/Patient?_has:Observation:patient:code=1234",
		"chain":                   "/Observation?patient.name=Two",
		"revinclude":              "/Practitioner?_revinclude=Observation:performer",
		"include iterate":         "/Observation?_include:iterate=Observation:subject",
		"include recurse":         "/Observation?_include:recurse=Observation:subject",
		"filter":                  "/Observation?_filter=subject%20eq%20Patient/p2",
		"list":                    "/Observation?_list=l1",
		"other compartment":       "/Patient/p2/Observation",
		"patient _id":             "/Patient?_id=p2",
		"system search":           "/?_type=Observation",
		"system history":          "/_history",
		"type history":            "/Observation/_history",
		"everything of another":   "/Patient/p2/$everything",
		"unknown operation":       "/Patient/p1/$graphql",
		"type-level operation":    "/Observation/$stats",
		"outside the compartment": "/AuditEvent?patient=p1",
	}
	for name, target := range forbidden {
		f.refused(name, f.do("GET", target, tok, ""), 403)
	}
	// Another patient's record looks exactly like a missing one, and is not asked for.
	other := f.do("GET", "/Patient/p2", tok, "")
	f.refused("another patient", other, 404)
	missing := f.do("GET", "/Observation/nope", tok, "")
	f.up.reset()
	hidden := f.do("GET", "/Observation/lab-2", tok, "")
	if hidden.status != missing.status || hidden.raw != missing.raw {
		t.Errorf("another patient's observation differs from a missing one: %d %s vs %d %s", hidden.status, hidden.raw, missing.status, missing.raw)
	}
	f.up.reset()
	// A search without a patient gets one.
	r := f.do("GET", "/Observation?category=laboratory", tok, "")
	got := f.up.requests()
	if r.status != 200 || len(got) != 1 || got[0].URL.Query().Get("patient") != "Patient/p1" {
		t.Fatalf("injected patient: %d %v", r.status, got)
	}
	if got[0].Header.Get("Authorization") != "Bearer upstream-credential" {
		t.Error("the client's token reached the upstream")
	}
	f.up.reset()
	// The own compartment search is allowed.
	if r := f.do("GET", "/Patient/p1/Observation", tok, ""); r.status != 200 {
		t.Errorf("own compartment search: %d %s", r.status, r.raw)
	}
}

func TestUpstreamMisbehaviourIsContained(t *testing.T) {
	f := newFixture(t)
	f.up.misbehave = true // ignores the injected patient parameter
	f.up.resources["Observation/lab-1"]["performer"] = []any{map[string]any{"reference": "Practitioner/dr"}}
	tok := f.token("launch/patient patient/Observation.rs patient/Practitioner.r", nil)
	r := f.do("GET", "/Observation?_include=Observation:performer", tok, "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	for _, e := range r.body["entry"].([]any) {
		res := e.(map[string]any)["resource"].(map[string]any)
		if res["resourceType"] == "Patient" || strings.Contains(mustJSON(res), "Patient/p2") {
			t.Fatalf("another patient's data left the proxy: %v", res)
		}
	}
	if _, ok := r.body["total"]; ok {
		t.Error("a total counting withheld entries was passed on")
	}
	if !strings.Contains(r.raw, `"Practitioner"`) {
		t.Error("the included Practitioner (a shared type the scopes allow) was dropped")
	}
}

func TestScopesAndConstraints(t *testing.T) {
	f := newFixture(t)
	searchOnly := f.token("launch/patient patient/Observation.s", nil)
	f.refused("read with search only", f.do("GET", "/Observation/lab-1", searchOnly, ""), 403)
	readOnly := f.token("launch/patient patient/Observation.rs", nil)
	f.refused("create with read scope", f.do("POST", "/Observation", readOnly, mustJSON(obs("x", "p1", "laboratory"))), 403)
	f.refused("delete with read scope", f.do("DELETE", "/Observation/lab-1", readOnly, ""), 403)
	f.refused("another type", f.do("GET", "/Condition?patient=p1", readOnly, ""), 403)

	lab := f.token("launch/patient patient/Observation.rs?category=laboratory", nil)
	r := f.do("GET", "/Observation", lab, "")
	if got := f.up.requests(); r.status != 200 || len(got) != 1 || got[0].URL.Query().Get("category") != "laboratory" {
		t.Fatalf("constraint not injected: %d %v", r.status, got)
	}
	f.up.reset()
	if r := f.do("GET", "/Observation/vs-1", lab, ""); r.status != 404 {
		t.Errorf("a vital sign under a laboratory-only scope: %d", r.status)
	}
	// The read went out as a search the server must satisfy: no id in the path.
	if got := f.up.requests(); len(got) != 1 || got[0].URL.Path != "/Observation" || got[0].URL.Query().Get("_id") != "vs-1" {
		t.Errorf("a constrained read was sent as %v", got[0].URL)
	}
	f.up.reset()
	if r := f.do("GET", "/Observation/lab-1", lab, ""); r.status != 200 || r.body["id"] != "lab-1" {
		t.Errorf("a laboratory result under a laboratory-only scope: %d %s", r.status, r.raw)
	}
	f.up.reset()
	// The read's own parameters go with the search (found by probing: they
	// were dropped, and the whole record answered), judged as a search's:
	// _elements widened by what the proxy judges by (the constraint's
	// category too, which it checks the answer against), _summary=text
	// refused where it would leave out the patient.
	r = f.do("GET", "/Observation/lab-1?_elements=code&_pretty=true", lab, "")
	got := f.up.requests()
	if r.status != 200 || r.body["id"] != "lab-1" || r.body["code"] == nil || r.body["status"] != nil || len(got) != 1 ||
		got[0].URL.Query().Get("_elements") != "code,category,meta,subject" || got[0].URL.Query().Get("_pretty") != "true" {
		t.Errorf("a constrained read of some elements: %d %s, sent as %v", r.status, r.raw, got)
	}
	f.up.reset()
	f.refused("a constrained read with _summary=text", f.do("GET", "/Observation/lab-1?_summary=text", lab, ""), 400)
	// The record comes with a read's validators, from its meta (a
	// search's answer carries none of its records'): a client can update
	// it with If-Match and read it again conditionally. A record outside
	// the constraint is 404 whatever the conditions.
	f.up.mu.Lock()
	f.up.resources["Observation/lab-1"]["meta"] = map[string]any{"versionId": "3", "lastUpdated": "2026-11-02T10:00:00.123+01:00"}
	f.up.resources["Observation/vs-1"]["meta"] = map[string]any{"versionId": "3"}
	f.up.mu.Unlock()
	r = f.do("GET", "/Observation/lab-1", lab, "")
	if etag, lm := r.header.Get("ETag"), r.header.Get("Last-Modified"); r.status != 200 || etag != `W/"3"` || lm != "Mon, 02 Nov 2026 09:00:00 GMT" {
		t.Errorf("a constrained read's validators: %d ETag %q, Last-Modified %q", r.status, etag, lm)
	}
	for _, c := range []struct {
		target, header, value string
		status                int
	}{
		{"/Observation/lab-1", "If-None-Match", `W/"3"`, 304}, {"/Observation/lab-1", "If-None-Match", `"3"`, 304},
		{"/Observation/lab-1", "If-None-Match", `W/"2"`, 200}, {"/Observation/lab-1", "If-Modified-Since", "Mon, 02 Nov 2026 09:00:00 GMT", 304},
		{"/Observation/lab-1", "If-Modified-Since", "Mon, 02 Nov 2026 08:59:59 GMT", 200},
		{"/Observation/vs-1", "If-None-Match", `W/"3"`, 404}, {"/Observation/vs-1", "If-None-Match", "*", 404},
	} {
		if r := f.do("GET", c.target, lab, "", c.header, c.value); r.status != c.status || c.status == 304 && r.raw != "" {
			t.Errorf("%s with %s: %s: %d %q, want %d", c.target, c.header, c.value, r.status, r.raw, c.status)
		}
	}
	f.up.reset()
	// Nor can parameters whose answer the constraint does not bound, for a
	// token that sees every record either (found by probing: they went
	// upstream with the constraint added).
	for _, scope := range []string{"user/Observation.rs?category=laboratory", "system/Observation.rs?category=laboratory"} {
		tok := f.token(scope, everyLabel())
		for _, q := range []string{"_contained=true&_containedType=container", "_containedType=container", "_contained=both", "_query=everything"} {
			f.refused(scope+" "+q, f.do("GET", "/Observation?"+q, tok, ""), 403)
			f.refused(scope+" "+q+" by POST", f.do("POST", "/Observation/_search", tok, q, "Content-Type", "application/x-www-form-urlencoded"), 403)
		}
	}
	// A search that carries the constraint itself is answered as one the
	// proxy adds it to (found by probing: the type was unreadable in the
	// answer, and a patient app asking for its labs got none), and held
	// alike.
	injected, carried := f.do("GET", "/Observation", lab, ""), f.do("GET", "/Observation?category=laboratory", lab, "")
	if carried.status != 200 || !slices.Equal(entryIDs(carried), []string{"lab-1"}) || !slices.Equal(entryIDs(carried), entryIDs(injected)) {
		t.Errorf("a search carrying the constraint: %d %v (with the constraint added: %v)", carried.status, entryIDs(carried), entryIDs(injected))
	}
	f.up.reset()
	for _, scope := range []string{"user/Observation.rs?category=laboratory", "system/Observation.rs?category=laboratory"} {
		tok := f.token(scope, everyLabel())
		for _, q := range []string{"_query=everything", "_containedType=container"} {
			f.refused(scope+" category=laboratory&"+q, f.do("GET", "/Observation?category=laboratory&"+q, tok, ""), 403)
		}
		// In a batch its answer is read under the constraint as on its own
		// (before, it went, and its matches were withheld from the answer;
		// then it was refused): TestBatchedSearchesRewritten.
		r := f.do("POST", "", tok, bundle("batch", entry("", "GET", "Observation?category=laboratory", "")))
		var ids []string
		if nested, _ := r.body["entry"].([]any); len(nested) == 1 {
			b, _ := nested[0].(map[string]any)["resource"].(map[string]any)
			ids = entryIDs(result{body: b})
		}
		if slices.Sort(ids); r.status != 200 || !slices.Equal(ids, []string{"lab-1", "lab-2", "psy-1"}) {
			t.Errorf("%s batched: %d %v", scope, r.status, ids)
		}
		f.up.reset()
	}
	// Prefer: handling=lenient cannot loosen the injected constraint, on
	// its own or after the return preference that does go upstream (found
	// by probing: "return=minimal, handling=lenient" went as it came); a
	// constrained search goes strict (TestConstrainedSearchesStrict).
	for prefer, want := range map[string]string{
		"handling=lenient":                          "handling=strict",
		"return=minimal, handling=lenient":          "return=minimal, handling=strict",
		"return=representation;handling=lenient":    "return=representation, handling=strict",
		"return=representation ; handling=strict":   "return=representation, handling=strict",
		"handling=lenient, return=OperationOutcome": "return=OperationOutcome, handling=strict",
		`return="minimal"`:                          "return=minimal, handling=strict",
		"return=everything, return=minimal":         "handling=strict", // the first one counts (RFC 7240 §2)
		"respond-async, wait=10":                    "handling=strict",
	} {
		f.do("GET", "/Observation", lab, "", "Prefer", prefer)
		if got := f.up.requests(); len(got) != 1 || got[0].Header.Get("Prefer") != want || got[0].URL.Query().Get("category") != "laboratory" {
			t.Errorf("Prefer %q reached the upstream as %q, or loosened the constraint: %v", prefer, got[0].Header.Get("Prefer"), got[0].URL)
		}
		f.up.reset()
	}
}

func TestSecurityLabels(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs", nil) // clearance: normal data only
	r := f.do("GET", "/Observation", tok, "")
	if strings.Contains(r.raw, "psy-1") || !strings.Contains(r.raw, "REDACTED") {
		t.Fatalf("a PSY-labelled record in the search: %s", r.raw)
	}
	f.up.reset()
	if r := f.do("GET", "/Observation/psy-1", tok, ""); r.status != 404 {
		t.Errorf("a PSY-labelled read: %d", r.status)
	}
	f.up.reset()
	cleared := f.token("launch/patient patient/Observation.rs", &consent.Clearance{MaxConfidentiality: consent.Restricted, Tags: []string{"PSY"}})
	if r := f.do("GET", "/Observation/psy-1", cleared, ""); r.status != 200 {
		t.Errorf("a cleared token cannot read the record: %d", r.status)
	}
	// The code systems' other names (DSTU2 and STU3 URIs, HL7 OIDs), as
	// older data and CDA-based systems write them, label as much.
	for sys, code := range map[string]string{
		"http://hl7.org/fhir/v3/Confidentiality": "R", "urn:oid:2.16.840.1.113883.5.25": "V",
		"http://hl7.org/fhir/v3/ActCode": "PSY", "urn:oid:2.16.840.1.113883.5.4": "HIV",
	} {
		old := obs("old", "p1", "laboratory")
		old["meta"] = map[string]any{"security": []any{map[string]any{"system": sys, "code": code}}}
		f.up.resources["Observation/old"] = old
		if r := f.do("GET", "/Observation/old", tok, ""); r.status != 404 {
			t.Errorf("a record labelled %s#%s: %d", sys, code, r.status)
		}
	}
	delete(f.up.resources, "Observation/old")

	// A contained resource goes wherever its container goes: its labels
	// are judged as the container's (in every position of the array, and
	// in a resource contained in turn).
	for i, contained := range [][]any{
		{obs("inner", "p1", "laboratory", "R", "PSY")},
		{map[string]any{"resourceType": "Medication", "id": "m"}, obs("inner", "p1", "laboratory", "PSY")},
		{map[string]any{"resourceType": "Medication", "id": "m", "contained": []any{obs("inner", "p1", "laboratory", "R", "PSY")}}},
	} {
		box := obs("box", "p1", "laboratory")
		box["contained"] = contained
		f.up.resources["Observation/box"] = box
		if r := f.do("GET", "/Observation/box", tok, ""); r.status != 404 {
			t.Errorf("case %d: a read of a record containing a PSY-labelled one: %d", i, r.status)
		}
		if r := f.do("GET", "/Observation", tok, ""); strings.Contains(r.raw, `"box"`) || !strings.Contains(r.raw, "REDACTED") {
			t.Errorf("case %d: in a search: %.300s", i, r.raw)
		}
		if r := f.do("GET", "/Observation/box", cleared, ""); r.status != 200 {
			t.Errorf("case %d: the cleared token: %d", i, r.status)
		}
	}
	writer := f.token("launch/patient patient/Observation.cruds", nil)
	box := obs("new", "p1", "laboratory")
	box["contained"] = []any{obs("inner", "p1", "laboratory", "R", "PSY")}
	delete(box, "id")
	f.up.reset()
	f.refused("a write containing a PSY-labelled resource", f.do("POST", "/Observation", writer, mustJSON(box)), 403)

	// So does a resource in a Bundle held as a resource (a document).
	f.up.resources["Bundle/doc-1"] = map[string]any{"resourceType": "Bundle", "id": "doc-1", "type": "document",
		"entry": []any{map[string]any{"resource": obs("inner", "p1", "laboratory", "R", "PSY")}}}
	user := f.token("user/Bundle.rs user/Observation.rs", nil)
	if r := f.do("GET", "/Bundle/doc-1", user, ""); r.status != 404 {
		t.Errorf("a document holding a PSY-labelled record: %d %.200s", r.status, r.raw)
	}
	if r := f.do("GET", "/Bundle", user, ""); r.status != 200 || strings.Contains(r.raw, "doc-1") || !strings.Contains(r.raw, "REDACTED") {
		t.Errorf("documents searched: %d %.300s", r.status, r.raw)
	}
	if r := f.do("GET", "/Bundle/doc-1", f.token("user/Bundle.rs user/Observation.rs", everyLabel()), ""); r.status != 200 || !strings.Contains(r.raw, "inner") {
		t.Errorf("the document, every label cleared: %d %.200s", r.status, r.raw)
	}
}

func TestWrites(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.cruds", nil)
	f.refused("create for another patient", f.do("POST", "/Observation", tok, mustJSON(obs("x", "p2", "laboratory"))), 403)
	f.refused("create without a subject", f.do("POST", "/Observation", tok, `{"resourceType":"Observation","status":"final"}`), 403)
	f.refused("type mismatch", f.do("POST", "/Observation", tok, `{"resourceType":"Condition"}`), 400)
	f.refused("duplicate members", f.do("POST", "/Observation", tok, `{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"subject":{"reference":"Patient/p2"}}`), 400)
	// Member names are matched exactly, as the FHIR server matches them:
	// a case-folded twin cannot vouch for the real subject.
	f.refused("case-folded twin", f.do("POST", "/Observation", tok, `{"resourceType":"Observation","subject":{"reference":"Patient/p2"},"Subject":{"reference":"Patient/p1"}}`), 403)
	f.refused("a FHIRPath patch", f.do("PATCH", "/Observation/lab-1", tok, fhirPathPatch("delete", "Observation.status")), 403) // JSON Patches: TestPatientPatches
	f.refused("labelled beyond clearance", f.do("POST", "/Observation", tok, mustJSON(obs("x", "p1", "laboratory", "R", "PSY"))), 403)
	// Taking over another patient's record: the stored version is checked, and no PUT is sent.
	r := f.do("PUT", "/Observation/lab-2", tok, mustJSON(obs("lab-2", "p1", "laboratory")))
	if r.status != 404 {
		t.Errorf("update of another patient's record: %d", r.status)
	}
	for _, g := range f.up.requests() {
		if g.Method != "GET" {
			t.Errorf("a %s reached the upstream", g.Method)
		}
	}
	f.up.reset()
	if r := f.do("POST", "/Observation", tok, mustJSON(obs("x", "p1", "laboratory"))); r.status != 201 {
		t.Errorf("create in the compartment: %d %s", r.status, r.raw)
	}
	f.up.reset()
	// A write-only token creates, and gets the status and Location but not
	// the stored resource it may not read.
	wo := f.token("launch/patient patient/Observation.c", nil)
	if r := f.do("POST", "/Observation", wo, mustJSON(obs("y", "p1", "laboratory"))); r.status != 201 || r.raw != "" {
		t.Errorf("write-only create: %d %q", r.status, r.raw)
	}
	if n := len(f.up.requests()); n != 1 {
		t.Errorf("write-only create: the upstream got %d requests", n)
	}
	f.up.reset()
	// So does one that updates or patches: the write happened, and a 404
	// would say it did not (found by probing: a patch was answered so).
	for _, scope := range []string{"launch/patient patient/Observation.u", "user/Observation.u"} {
		wo := f.token(scope, nil)
		for _, c := range []struct{ method, body, contentType string }{
			{"PUT", mustJSON(obs("lab-1", "p1", "laboratory")), "application/fhir+json"},
			{"PATCH", `[{"op":"replace","path":"/status","value":"amended"}]`, "application/json-patch+json"},
		} {
			r := f.do(c.method, "/Observation/lab-1", wo, c.body, "Content-Type", c.contentType)
			if got := f.writes(); r.status != 200 || r.raw != "" || len(got) != 1 {
				t.Errorf("%s: write-only %s: %d %q, written %q", scope, c.method, r.status, r.raw, got)
			}
		}
	}
	// And one whose result is bound to what the proxy judges no Binary or
	// Provenance by (another Binary): found by FuzzWritesAgree, it was
	// written and answered 404, where in a transaction it was 201.
	f.up.mu.Lock()
	f.up.resources["Binary/b2"] = map[string]any{"resourceType": "Binary", "id": "b2", "contentType": "text/plain", "securityContext": map[string]any{"reference": "Patient/p2"}}
	f.up.mu.Unlock()
	clinician := f.token("user/Binary.crs user/Provenance.crs user/Patient.rs user/Practitioner.rs", nil)
	for target, body := range map[string]string{
		"/Binary":     `{"resourceType":"Binary","contentType":"text/plain","data":"aGk=","securityContext":{"reference":"Binary/b2"}}`,
		"/Provenance": `{"resourceType":"Provenance","recorded":"2026-11-02T10:00:00Z","target":[{"reference":"Binary/b2"}],"agent":[{"who":{"reference":"Practitioner/dr"}}]}`,
	} {
		f.up.reset()
		if r := f.do("POST", target, clinician, body); r.status != 201 || r.raw != "" || r.header.Get("Location") == "" || len(f.writes()) != 1 {
			t.Errorf("%s bound to another Binary: %d %q %q, written %q", target, r.status, r.raw, r.header.Get("Location"), f.writes())
		}
	}
	if r := f.do("DELETE", "/Observation/lab-2", tok, ""); r.status != 404 {
		t.Errorf("delete of another patient's record: %d", r.status)
	}
	for _, g := range f.up.requests() {
		if g.Method == "DELETE" {
			t.Error("the DELETE reached the upstream")
		}
	}
}

func TestBatch(t *testing.T) {
	f := newFixture(t)
	user := f.token("user/Observation.rs", nil)
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
		{"request":{"method":"GET","url":"Observation/lab-1"}},
		{"request":{"method":"DELETE","url":"Observation/lab-2"}}]}`
	f.refused("transaction with a forbidden entry", f.do("POST", "/", user, tx), 403)
	nested := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":""}}]}`
	f.refused("nested batch", f.do("POST", "/", user, nested), 400)
	absolute := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"https://evil.example/Observation/1"}}]}`
	f.refused("absolute entry URL", f.do("POST", "/", user, absolute), 400)
	patient := f.token("launch/patient patient/Observation.rs", nil)
	search := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?patient=p2"}}]}`
	f.refused("patient batch search", f.do("POST", "/", patient, search), 403)
	twin := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?patient=p2"},"Request":{"method":"GET","url":"Observation/lab-1"}}]}`
	f.refused("case-folded twin of an entry's request", f.do("POST", "/", patient, twin), 400) // malformed: refused before any entry is judged
	many := `{"resourceType":"Bundle","type":"batch","entry":[` + strings.Repeat(`{"request":{"method":"GET","url":"Observation/lab-1"}},`, 100) +
		`{"request":{"method":"GET","url":"Observation/lab-1"}}]}`
	f.refused("101 entries", f.do("POST", "/", user, many), 413)
	ok := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/lab-1"}}]}`
	if r := f.do("POST", "/", user, ok); r.status != 200 {
		t.Errorf("allowed batch: %d %s", r.status, r.raw)
	}
}

func TestEverythingAndMetadata(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/metadata", "", "") // (narrow scopes' $everything: TestEverythingNarrowScopes)
	if r.status != 200 || !strings.Contains(r.raw, "oauth-uris") || !strings.Contains(r.raw, "SMART-on-FHIR") {
		t.Fatalf("metadata: %d %s", r.status, r.raw)
	}
	// It lists only what the proxy supports: JSON, JSON patches, and of the
	// operations Patient $everything, Observation $lastn, those of its
	// table (terminology) and, at system level, $export (bulk.go);
	// no unknown type.
	// Conditional deletes of several records neither: the proxy resolves
	// them, and answers 412 to criteria matching more than one. Nor
	// messaging, whose endpoints are the FHIR server's own addresses.
	for _, gone := range []string{`"xml"`, "xml-patch", "graphql", `"match"`, "invalidate", "ImaginaryType", `"multiple"`, "messaging", "/messages"} {
		if strings.Contains(r.raw, gone) {
			t.Errorf("metadata lists %s: %s", gone, r.raw)
		}
	}
	for _, kept := range []string{`"operation":[{"definition":"http://hl7.org/fhir/OperationDefinition/export","name":"export"}]`, `"everything"`, `"expand"`, `"validate-code"`, `"lastn"`, "json-patch", `"Observation"`, `"read"`, `"conditionalDelete":"single"`, `"conditionalUpdate":true`} {
		if !strings.Contains(r.raw, kept) {
			t.Errorf("metadata lost %s: %s", kept, r.raw)
		}
	}
	// With Base set, the implementation's address is the proxy's.
	f = newFixture(t)
	f.proxy.Base = f.base
	if r := f.do("GET", "/metadata", "", ""); strings.Contains(r.raw, f.up.ts.URL) || !strings.Contains(r.raw, `"url":"`+f.base+`"`) {
		t.Errorf("metadata with Base: %s", r.raw)
	}
}

func TestEveryRequestAudited(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/*.rs", nil)
	f.do("GET", "/Observation/lab-1", tok, "")
	f.do("GET", "/Patient/p2", tok, "")
	f.do("GET", "/Observation?patient=p2", tok, "")
	f.do("GET", "/metadata", "", "")
	evs := f.audit.Events()
	if len(evs) != 4 {
		t.Fatalf("%d events for 4 requests", len(evs))
	}
	if evs[0].Type != audit.ResourceAllowed || evs[0].Patient != "p1" || evs[0].Resource != "Observation/lab-1" || evs[0].TokenID == "" {
		t.Errorf("allowed read event %+v", evs[0])
	}
	if evs[1].Type != audit.ResourceRefused || evs[2].Type != audit.ResourceRefused {
		t.Errorf("refusals %+v %+v", evs[1], evs[2])
	}
}

// TestAuditedLabels: an audit event lists the labels of what went out
// (CONSENT-AUDIT-REGISTRY §2.5.5), never those of what was withheld.
func TestAuditedLabels(t *testing.T) {
	f := newFixture(t)
	psy := []string{"http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R", "http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY"}
	cleared := f.token("launch/patient patient/Observation.rs", everyLabel())
	normal := f.token("launch/patient patient/Observation.rs", nil)
	for _, c := range []struct {
		target, tok string
		want        []string
	}{
		{"/Observation/psy-1", cleared, psy},
		{"/Observation?category=laboratory", cleared, psy},
		{"/Observation/psy-1", normal, nil},               // withheld: a 404
		{"/Observation?category=laboratory", normal, nil}, // withheld from the search
		{"/Observation/lab-1", cleared, nil},
	} {
		f.do("GET", c.target, c.tok, "")
		evs := f.audit.Events()
		if got := evs[len(evs)-1].Labels; !slices.Equal(got, c.want) {
			t.Errorf("%s: audited labels %v, want %v", c.target, got, c.want)
		}
	}
}

func TestPostSearch(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs", nil)
	post := func(form string) result {
		return f.do("POST", "/Observation/_search", tok, form, "Content-Type", "application/x-www-form-urlencoded")
	}
	f.refused("another patient in the form body", post("patient=p2"), 403)
	f.refused("reverse chain in the form body", post("_has:Observation:patient:code=1"), 403)
	f.refused("semicolon in the form body", post("patient=p1;patient=p2"), 400)
	if r := f.do("POST", "/Observation/_search", tok, `{"patient":"p2"}`); r.status != 415 {
		t.Errorf("JSON body: %d", r.status)
	}
	f.up.reset()
	if r := post("category=laboratory"); r.status != 200 {
		t.Fatalf("allowed POST search: %d %s", r.status, r.raw)
	}
	got := f.up.requests()
	if len(got) != 1 || got[0].URL.Path != "/Observation/_search" || got[0].URL.RawQuery != "" ||
		!strings.Contains(f.up.bodies[0], "patient=Patient%2Fp1") || !strings.Contains(f.up.bodies[0], "category=laboratory") {
		t.Fatalf("forwarded %v body %q", got, f.up.bodies)
	}
}

// TestPostSearchOfCompartmentsAndSystem: FHIR R4 has a search POSTed to
// _search at every level it has the GET (http.html#search): of a
// patient's compartment (Patient/p1/Observation/_search) and of the system
// ([base]/_search). The proxy answered both 400, as paths it did not know
// (found by probing); now each is the GET of the same level, authorised
// alike and forwarded as a form (FuzzSearchForms holds the two forms to
// one answer at each level).
func TestPostSearchOfCompartmentsAndSystem(t *testing.T) {
	f := newFixture(t)
	patient := f.token("launch/patient patient/Observation.rs", nil)
	user := f.token("user/*.rs", nil)
	form := func(target, tok, body string) result {
		return f.do("POST", target, tok, body, "Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range []struct {
		name, target, tok, body string
		path, sent              string // the forwarded POST's path, and its form re-encoded
		ids                     []string
	}{
		{"a patient's own compartment", "/Patient/p1/Observation/_search", patient, "category=laboratory",
			"/Observation/_search", "category=laboratory&patient=Patient%2Fp1", []string{"lab-1"}},
		{"a compartment, by a clinician", "/Patient/p2/Observation/_search", user, "category=laboratory",
			"/Patient/p2/Observation/_search", "category=laboratory", []string{"lab-2"}},
		{"a compartment, its query and form joined", "/Patient/p1/Observation/_search?category=vital-signs", user, "_count=5",
			"/Patient/p1/Observation/_search", "category=vital-signs&_count=5", []string{"vs-1"}},
		{"the system", "/_search", user, "_type=Observation&category=laboratory",
			"/_search", "_type=Observation&category=laboratory", []string{"lab-1", "lab-2"}}, // psy-1 withheld for its labels
	} {
		r := form(c.target, c.tok, c.body)
		got := f.up.requests()
		if r.status != 200 || len(got) != 1 || got[0].Method != "POST" || got[0].URL.Path != c.path || got[0].URL.RawQuery != "" ||
			f.up.bodies[0] != c.sent || got[0].Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("%s: %d, forwarded %v with %q: %.300s", c.name, r.status, got, f.up.bodies, r.raw)
		} else if ids := entryIDs(r); !slices.Equal(ids, c.ids) {
			t.Errorf("%s: answered %v, want %v", c.name, ids, c.ids)
		}
		f.up.reset()
	}
	f.refused("another patient's compartment", form("/Patient/p2/Observation/_search", patient, ""), 403)
	f.refused("another patient in the form", form("/Patient/p1/Observation/_search", patient, "subject=Patient/p2"), 403)
	f.refused("the system, with patient context", form("/_search", patient, "_type=Observation"), 403)
	f.refused("another compartment than Patient's", form("/Encounter/e1/Observation/_search", user, ""), 400)
	f.refused("a compartment of every type", form("/Patient/p1/_search", user, ""), 400)
	f.refused("the system, its form unread", f.do("POST", "/_search", user, `{"_type":"Observation"}`), 415)
	f.refused("the system, _format in the form", form("/_search", user, "_type=Observation&_format=xml"), 406)
	f.refused("the system, a GET", f.do("GET", "/_search?_type=Observation", user, ""), 400)
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	f := newFixture(t)
	tok := f.token("patient/*.rs", nil)
	sys := f.token("system/Observation.rs", everyLabel())
	for name, r := range map[string]result{
		"read":          f.do("GET", "/Observation/lab-1", tok, ""),
		"proven read":   f.do("GET", "/Observation/lab-1", sys, ""), // passed on uninspected
		"search":        f.do("GET", "/Observation?category=laboratory", tok, ""),
		"not found":     f.do("GET", "/Observation/lab-2", tok, ""),
		"no token":      f.do("GET", "/Observation", "", ""),
		"bad path":      f.do("GET", "/observation/x", tok, ""),
		"metadata":      f.do("GET", "/metadata", "", ""),
		"refused write": f.do("POST", "/Observation", tok, `{"resourceType":"Observation"}`),
	} {
		for _, h := range []struct{ key, want string }{
			{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"}, {"Referrer-Policy", "no-referrer"},
			{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
		} {
			if got := r.header.Values(h.key); len(got) != 1 || got[0] != h.want {
				t.Errorf("%s (%d): %s = %q, want exactly %q", name, r.status, h.key, got, h.want)
			}
		}
	}
}

// everyLabel is a clearance that releases every label: answers are not
// judged for labels.
func everyLabel() *consent.Clearance {
	all := append(append(slices.Clone(consent.SensitiveTags), consent.HighlySensitiveTags...), consent.SegmentedTags...)
	return &consent.Clearance{MaxConfidentiality: consent.VeryRestricted, Tags: all}
}

// TestWithheldIsAudited: what the proxy answers as missing because it is
// outside the grant (another patient's record, a labelled one, a version
// outside the constraint, a write's stored record) gets exactly the answer
// a missing record gets, and an audit event that says what it was, as a
// security event; a record that is missing is audited as a miss.
func TestWithheldIsAudited(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	f.up.versions = map[string][]map[string]any{"Observation/vs-1": {obs("vs-1", "p1", "laboratory")}}
	f.up.mu.Unlock()
	patient := f.token("launch/patient patient/Observation.cruds patient/Patient.rs", nil)
	vitals := f.token("launch/patient patient/Observation.rs?category=vital-signs", nil)
	missing := f.do("GET", "/Observation/nope", patient, "")
	last := func() audit.Event { evs := f.audit.Events(); return evs[len(evs)-1] }
	if ev := last(); missing.status != http.StatusNotFound || ev.Reason != "not-found: resource not found" || ev.Severity == audit.Security {
		t.Fatalf("a missing record: %d, audited %q %q", missing.status, ev.Reason, ev.Severity)
	}
	for _, c := range []struct{ name, method, target, tok, body string }{
		{"another patient's record", "GET", "/Observation/lab-2", patient, ""},
		{"a labelled record", "GET", "/Observation/psy-1", patient, ""},
		{"another patient", "GET", "/Patient/p2", patient, ""},
		{"an update of another patient's record", "PUT", "/Observation/lab-2", patient, mustJSON(obs("lab-2", "p1", "laboratory"))},
		{"a delete of a labelled record", "DELETE", "/Observation/psy-1", patient, ""},
		{"a version outside the constraint", "GET", "/Observation/vs-1/_history/1", vitals, ""},
	} {
		r := f.do(c.method, c.target, c.tok, c.body)
		ev := last()
		if r.status != missing.status || r.raw != missing.raw {
			t.Errorf("%s: %d %s, want what a missing record gets", c.name, r.status, r.raw)
		}
		if ev.Outcome != audit.Failure || ev.Reason != "outside the grant: answered as not found" || ev.Severity != audit.Security {
			t.Errorf("%s: audited %s %q %q", c.name, ev.Outcome, ev.Reason, ev.Severity)
		}
		f.onlyReads(c.name)
	}
}

// TestMixedTokens: a token with both patient/ and user/ scopes is judged
// scope by scope. What its patient/ scopes do not allow, a user/ scope may,
// on its own terms (no compartment imposed), a conditional write too; what
// the patient/ scopes allow stays confined to the patient.
func TestMixedTokens(t *testing.T) {
	f := newFixture(t)
	mixed := f.token("launch/patient patient/Observation.rs user/Condition.rs user/Observation.cs", everyLabel())
	for _, c := range []struct{ name, method, target, body, sent string }{
		{"a search its user/ scope allows", "GET", "/Condition?code=x", "", "GET /Condition?code=x"},
		{"a search its patient/ scope allows", "GET", "/Observation?code=x", "", "GET /Observation?code=x&patient=Patient%2Fp1"},
		// (its criteria run as the token's own search, which the patient/ scope confines)
		{"a conditional create its user/ scope allows", "POST", "/Observation", noID(obs("x", "p2", "laboratory")), "GET /Observation?code=none&patient=Patient%2Fp1&_count=101"},
	} {
		var hdr []string
		if c.method == "POST" {
			hdr = []string{"Content-Type", "application/fhir+json", "If-None-Exist", "code=none"}
		}
		r := f.do(c.method, c.target, mixed, c.body, hdr...)
		if r.status >= 300 {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		if got := f.sentPaths(); len(got) == 0 || got[0] != c.sent {
			t.Errorf("%s: the upstream received %q, want first %q", c.name, got, c.sent)
		}
		f.up.reset()
	}
}
