package smart_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestStandaloneFlow(t *testing.T) {
	e := newEnv(t)
	m := e.tokens("launch/patient openid fhirUser offline_access patient/Observation.rs")
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if s, _ := m[k].(string); s == "" {
			t.Errorf("token response lacks %s: %v", k, m)
		}
	}
	if m["token_type"] != "Bearer" || m["patient"] != "123" || m["scope"] != "launch/patient openid fhirUser offline_access patient/Observation.rs" {
		t.Errorf("token response %v", m)
	}
	if _, ok := m["expires_in"].(float64); !ok {
		t.Errorf("expires_in is not a number: %v", m["expires_in"])
	}
	tok, err := e.verifier().Verify(context.Background(), m["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Context.Patient != "123" || tok.FHIRUser != "Patient/123" || tok.ClientID != "app" || tok.Audience != e.fhir {
		t.Errorf("verified token %+v", tok)
	}
	if e.events("code.issued") != 1 || e.events("token.issued") != 1 || e.events("consent.granted") != 1 {
		t.Errorf("audit: %+v", e.audit.Events())
	}
}

func TestTokenResponseHeaders(t *testing.T) {
	e := newEnv(t)
	code, verifier := e.code("launch/patient patient/Patient.r", "patient")
	resp, _ := e.exchange(code, verifier)
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("token response headers %v", resp.Header)
	}
	bad := e.post(e.issuer+"/token", map[string][]string{"grant_type": {"authorization_code"}, "client_id": {"app"}, "code": {"x"}}, "")
	if bad.Header.Get("Cache-Control") != "no-store" {
		t.Error("error response lacks no-store")
	}
}

func TestPickerFlow(t *testing.T) {
	e := newEnv(t)
	params, verifier := e.authzParams("launch/patient patient/*.rs")
	p := parsePage(e.start(params, "dr-lee"))
	if p.status != http.StatusOK || !strings.Contains(p.body, "Alice Adams") {
		t.Fatalf("picker page: %d %s", p.status, p.body)
	}
	// A forged choice is re-checked server-side.
	forged := parsePage(e.post(e.issuer+"/authorize/patient", map[string][]string{"req": {p.req}, "csrf": {p.csrf}, "patient": {"999"}}, "dr-lee"))
	if !strings.Contains(forged.body, "not available") {
		t.Fatalf("forged patient accepted: %s", forged.body)
	}
	resp := e.post(e.issuer+"/authorize/patient", map[string][]string{"req": {p.req}, "csrf": {p.csrf}, "patient": {"456"}}, "dr-lee")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("choosing: %d %s", resp.StatusCode, body(resp))
	}
	consent := parsePage(e.get(resp.Header.Get("Location"), "dr-lee"))
	q := e.redirectParams(e.approve(consent, "dr-lee"), "https://app.example/cb")
	_, m := e.exchange(q.Get("code"), verifier)
	if m["patient"] != "456" {
		t.Fatalf("patient = %v, want 456", m["patient"])
	}
}

func TestGranularConsent(t *testing.T) {
	e := newEnv(t)
	params, verifier := e.authzParams("launch/patient patient/Observation.rs patient/Condition.rs")
	p := parsePage(e.start(params, "patient"))
	if len(p.boxes) != 2 {
		t.Fatalf("checkboxes %v, want one per resource scope (launch scopes are fixed)", p.boxes)
	}
	q := e.redirectParams(e.approve(p, "patient", p.boxes[1]), "https://app.example/cb")
	_, m := e.exchange(q.Get("code"), verifier)
	if m["scope"] != "launch/patient patient/Observation.rs" {
		t.Fatalf("granted %v, want the condition scope deselected", m["scope"])
	}
}

func TestUserScopesNeedAFHIRUser(t *testing.T) {
	e := newEnv(t)
	params, verifier := e.authzParams("launch/patient fhirUser openid patient/Patient.r user/Observation.rs")
	p := parsePage(e.start(params, "nobody"))
	q := e.redirectParams(e.approve(p, "nobody"), "https://app.example/cb")
	_, m := e.exchange(q.Get("code"), verifier)
	if m["scope"] != "launch/patient openid patient/Patient.r" {
		t.Fatalf("granted %v to a user without a FHIR identity", m["scope"])
	}
	if _, err := e.verifier().Verify(context.Background(), m["access_token"].(string)); err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
}

// TestMethods: the OAuth endpoints answer a wrong method with an OAuth
// error and 405, the documents that are the same for every GET also answer
// HEAD, and the pages of the authorization flow, which have effects, do not.
func TestMethods(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/token", "POST, OPTIONS"}, {"PUT", "/token", "POST, OPTIONS"}, {"HEAD", "/token", "POST, OPTIONS"},
		{"GET", "/introspect", "POST"}, {"DELETE", "/revoke", "POST, OPTIONS"},
		{"GET", "/t/t2/token", "POST, OPTIONS"},
	} {
		req, _ := http.NewRequest(c.method, e.issuer+c.path, nil)
		resp := e.do(req, "")
		b := body(resp)
		var m map[string]string
		if c.method != "HEAD" && json.Unmarshal([]byte(b), &m) != nil || c.method != "HEAD" && m["error"] != "invalid_request" ||
			resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow ||
			resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: %d %v %q", c.method, c.path, resp.StatusCode, resp.Header, b)
		}
	}
	for _, path := range []string{"/.well-known/smart-configuration", "/.well-known/openid-configuration", "/jwks", "/assets/smart.css", "/t/t2/jwks"} {
		get := e.get(e.issuer+path, "")
		full := body(get)
		req, _ := http.NewRequest("HEAD", e.issuer+path, nil)
		head := e.do(req, "")
		if head.StatusCode != http.StatusOK || get.StatusCode != http.StatusOK || body(head) != "" || full == "" ||
			head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d (GET %d) %v", path, head.StatusCode, get.StatusCode, head.Header)
		}
	}
	for _, path := range []string{"/authorize", "/authorize/continue", "/authorize/consent"} {
		req, _ := http.NewRequest("HEAD", e.issuer+path, nil)
		if resp := e.do(req, "patient"); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("HEAD %s: %d", path, resp.StatusCode)
		}
	}
}
