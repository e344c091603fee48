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
// The server's words in an OperationOutcome pass only to a token that may
// read every record of every type (TestServerWordsWithheld).
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
		case "/Observation/named", "/Observation":
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
	withheld := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"the FHIR server's own words are withheld from this token: they can name records it may not see"}]}`
	for _, c := range []struct {
		path   string
		status int
		passes bool // the server's OperationOutcome goes, without its words
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
		case c.passes != (r.raw == withheld):
			t.Errorf("%s: passed %v: %.200s", c.path, !c.passes, r.raw)
		case !c.passes && (strings.Contains(r.raw, "p2") || !strings.Contains(diagnostics(r), "refused the request")):
			t.Errorf("%s: %.200s", c.path, r.raw)
		}
	}
	// A token that may read every record of every type hears the server's
	// words; with Base set, its address in them comes back as the proxy's
	// (a search: where answers are read).
	g := newFixture(t)
	g.proxy.Upstream, _ = url.Parse(up.URL)
	g.proxy.Base = g.base
	r := g.do("GET", "/Observation?code=x", g.token("system/*.rs", everyLabel()), "")
	if r.status != 400 || strings.Contains(r.raw, strings.TrimPrefix(up.URL, "http://")) || diagnostics(r) != "no such search parameter: "+g.base+"/Observation?x=1" {
		t.Errorf("the server's address in its words: %d %s", r.status, r.raw)
	}
	// Proven, unread: as the server wrote it, to a token that may read
	// every record of every type; to one of one type, as any error.
	if r := f.do("GET", "/Observation/resource", f.token("system/*.rs", everyLabel()), ""); r.status != 400 || !strings.Contains(r.raw, `"lab-2"`) {
		t.Errorf("a proven read's error: %d %.200s", r.status, r.raw)
	}
	if r := f.do("GET", "/Observation/resource", f.token("system/Observation.rs", everyLabel()), ""); r.status != 400 || strings.Contains(r.raw, `"lab-2"`) {
		t.Errorf("a proven read's error, to a token of one type: %d %.200s", r.status, r.raw)
	}
}

// TestWriteAnsweredWithoutBody: a write the FHIR server answers without a
// body (Prefer: return=minimal; with a length of 0, or chunked and empty)
// is passed on as made, its Location and ETag with it, for a patient's app
// and a clinician: the proxy answered 502, for a record written, which
// invites a retry that writes it again (found by probing the sandbox). A
// read answered so is still refused, and so is a write answered with a
// body the proxy cannot read.
func TestWriteAnsweredWithoutBody(t *testing.T) {
	f := newFixture(t)
	var chunked bool
	body := "" // a write's answer
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet { // what a write is checked against: as the test upstream has it
			f.up.serve(w, r)
			return
		}
		w.Header().Set("Location", f.up.ts.URL+"/Observation/lab-1/_history/2")
		w.Header().Set("ETag", `W/"2"`)
		if body != "" {
			w.Header().Set("Content-Type", "text/html")
		}
		w.WriteHeader(map[string]int{http.MethodPost: http.StatusCreated}[r.Method] + map[bool]int{true: 200}[r.Method != http.MethodPost])
		if chunked {
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, body)
	}))
	defer up.Close()
	f.proxy.Upstream, _ = url.Parse(up.URL)
	patient := f.token("launch/patient patient/Observation.cruds", nil)
	user := f.token("user/Observation.cruds", nil)
	lab := mustJSON(obs("lab-1", "p1", "laboratory"))
	created := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`
	for _, chunked = range []bool{false, true} {
		for _, c := range []struct{ name, method, target, tok, body string }{
			{"a patient app's create", "POST", "/Observation", patient, created},
			{"a clinician's create", "POST", "/Observation", user, created},
			{"a patient app's update", "PUT", "/Observation/lab-1", patient, lab},
			{"a clinician's patch", "PATCH", "/Observation/lab-1", user, `[{"op":"replace","path":"/status","value":"amended"}]`},
		} {
			ct := "application/fhir+json"
			if c.method == "PATCH" {
				ct = "application/json-patch+json"
			}
			r := f.do(c.method, c.target, c.tok, c.body, "Content-Type", ct, "Prefer", "return=minimal")
			if r.status >= 300 || r.raw != "" || r.header.Get("ETag") != `W/"2"` || r.header.Get("Location") == "" {
				t.Errorf("%s (chunked %v): %d %q, ETag %q, Location %q", c.name, chunked, r.status, r.raw, r.header.Get("ETag"), r.header.Get("Location"))
			}
		}
	}
	chunked = false
	body = "<html>written</html>"
	if r := f.do("POST", "/Observation", user, created, "Content-Type", "application/fhir+json"); r.status != http.StatusBadGateway {
		t.Errorf("a write answered with HTML: %d %s", r.status, r.raw)
	}
}
