package fhirproxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestUpstreamErrorBodies: where answers are read, the FHIR server's error
// answer passes only as an OperationOutcome (strict FHIR JSON, bounded);
// any other body, such as another patient's record sent with an error or
// a page of HTML, becomes the proxy's own OperationOutcome with the same
// status. Before, every error body passed unread. An answer the request
// proves (every label, no patient) still passes as the server wrote it.
func TestUpstreamErrorBodies(t *testing.T) {
	outcome := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"status is required"}]}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct, status, body := "application/fhir+json", http.StatusBadRequest, ""
		switch r.URL.Path {
		case "/Observation/resource":
			body = mustJSON(obs("lab-2", "p2", "laboratory")) // another patient's record, with an error
		case "/Observation/outcome":
			status, body = http.StatusUnprocessableEntity, outcome
		case "/Observation/html":
			ct, status, body = "text/html", http.StatusInternalServerError, "<html><body>Patient p2: stack trace</body></html>"
		case "/Observation/named":
			body = `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"no such search parameter: http://` + r.Host + `/Observation?x=1"}]}`
		case "/Observation/contained":
			body = `{"resourceType":"OperationOutcome","contained":[` + mustJSON(obs("lab-2", "p2", "laboratory")) + `],"issue":[{"severity":"error","code":"invalid"}]}`
		case "/Observation/duplicate":
			body = `{"resourceType":"OperationOutcome","resourceType":"Patient","id":"p2"}`
		case "/Observation/large":
			body = `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"` + strings.Repeat("x", 70<<10) + `"}]}`
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	patient := f.token("launch/patient patient/Observation.rs", nil)
	for _, c := range []struct {
		path   string
		status int
		passes bool // the server's body goes as it wrote it
	}{
		{"/Observation/resource", 400, false},
		{"/Observation/outcome", 422, true},
		{"/Observation/html", 500, false},
		{"/Observation/duplicate", 400, false},
		{"/Observation/contained", 400, false},
		{"/Observation/large", 400, false},
	} {
		r := f.do("GET", c.path, patient, "")
		switch {
		case r.status != c.status || r.body["resourceType"] != "OperationOutcome":
			t.Errorf("%s: %d %.200s", c.path, r.status, r.raw)
		case c.passes != (r.raw == outcome):
			t.Errorf("%s: passed %v: %.200s", c.path, !c.passes, r.raw)
		case !c.passes && (strings.Contains(r.raw, "p2") || !strings.Contains(diagnostics(r), "refused the request")):
			t.Errorf("%s: %.200s", c.path, r.raw)
		}
	}
	// With Base set, the server's address in its words comes back as the
	// proxy's.
	g := newFixture(t)
	g.proxy.Upstream, _ = url.Parse(up.URL)
	g.proxy.Base = g.base
	r := g.do("GET", "/Observation/named", g.token("launch/patient patient/Observation.rs", nil), "")
	if r.status != 400 || strings.Contains(r.raw, strings.TrimPrefix(up.URL, "http://")) || diagnostics(r) != "no such search parameter: "+g.base+"/Observation?x=1" {
		t.Errorf("the server's address in its words: %d %s", r.status, r.raw)
	}
	// Proven, unread: as the server wrote it.
	if r := f.do("GET", "/Observation/resource", f.token("system/Observation.rs", everyLabel()), ""); r.status != 400 || !strings.Contains(r.raw, `"lab-2"`) {
		t.Errorf("a proven read's error: %d %.200s", r.status, r.raw)
	}
}
