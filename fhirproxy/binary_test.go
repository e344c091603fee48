package fhirproxy_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestNativeBinaryReads: a read of a Binary whose Accept names no FHIR
// format gets the content itself, in its own media type, once the proxy
// has judged the resource as any read's (the upstream is asked for FHIR
// JSON); what the token may not see reads as a missing one does, as FHIR
// JSON. The content runs nothing in a browser (CSP sandbox, nosniff).
func TestNativeBinaryReads(t *testing.T) {
	f := newFixture(t)
	page := map[string]any{"resourceType": "Binary", "id": "page", "contentType": "text/html",
		"data": base64.StdEncoding.EncodeToString([]byte("<script>alert(1)</script>")), "securityContext": map[string]any{"reference": "Patient/p1"}}
	bad := binary("bad", "Patient/p1")
	bad["data"] = "!!!"
	f.up.mu.Lock()
	for id, ctx := range map[string]string{"mine": "Patient/p1", "theirs": "Patient/p2", "psy": "Observation/psy-1"} {
		f.up.resources["Binary/"+id] = binary(id, ctx)
	}
	f.up.resources["Binary/page"], f.up.resources["Binary/bad"] = page, bad
	f.up.mu.Unlock()
	app := f.token("launch/patient patient/Binary.rs patient/Patient.rs patient/Observation.rs", nil)
	missing := f.do("GET", "/Binary/nope", app, "", "Accept", "text/plain")

	for _, c := range []struct {
		name, target, accept, token string
		native                      bool
	}{
		{"its own, as text", "/Binary/mine", "text/plain", app, true},
		{"its own, as a PDF (it is text)", "/Binary/mine", "application/pdf", app, true},
		{"anything", "/Binary/mine", "*/*", app, true},
		{"a browser's", "/Binary/mine", "text/html,application/xhtml+xml,image/webp,*/*;q=0.8", app, true},
		{"a version", "/Binary/mine/_history/1", "text/plain", app, true},
		{"FHIR JSON", "/Binary/mine", "application/fhir+json", app, false},
		{"JSON", "/Binary/mine", "application/json", app, false},
		{"FHIR among others", "/Binary/mine", "text/plain, application/fhir+json;q=0.5", app, false},
		{"no Accept", "/Binary/mine", "", app, false},
		{"_format", "/Binary/mine?_format=json", "text/plain", app, false},
		{"an Accept the proxy cannot parse", "/Binary/mine", "text/plain;;=", app, false},
		{"a clinician's of full clearance", "/Binary/psy", "text/plain", f.token("user/Binary.rs", everyLabel()), true},
	} {
		r := f.do("GET", c.target, c.token, "", "Accept", c.accept)
		switch {
		case r.status != 200:
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		case c.native && (r.raw != "hello" || r.header.Get("Content-Type") != "text/plain" ||
			!strings.HasSuffix(r.header.Get("Content-Security-Policy"), "; sandbox") || r.header.Get("X-Content-Type-Options") != "nosniff"):
			t.Errorf("%s: %q, headers %v", c.name, r.raw, r.header)
		case c.native && c.token == app && r.header.Get("X-Security-Context") != "Patient/p1":
			t.Errorf("%s: X-Security-Context %q", c.name, r.header.Get("X-Security-Context"))
		case !c.native && (r.body["resourceType"] != "Binary" || r.header.Get("Content-Type") != "application/fhir+json" ||
			strings.Contains(r.header.Get("Content-Security-Policy"), "sandbox")):
			t.Errorf("%s: not FHIR JSON: %s, headers %v", c.name, r.raw, r.header)
		}
		for _, g := range f.up.requests() {
			if g.Header.Get("Accept") != "application/fhir+json" {
				t.Errorf("%s: the upstream was asked for %q", c.name, g.Header.Get("Accept"))
			}
		}
		f.up.reset()
	}

	// Larger than what streams: read whole, as any single resource.
	f.proxy.Limits.StreamFrom = 16
	if r := f.do("GET", "/Binary/mine", app, "", "Accept", "text/plain"); r.status != 200 || r.raw != "hello" {
		t.Errorf("past StreamFrom: %d %q", r.status, r.raw)
	}
	f.proxy.Limits.StreamFrom = 0

	// Content a browser would run is served so that it runs nothing.
	if r := f.do("GET", "/Binary/page", app, "", "Accept", "text/html"); r.status != 200 || r.header.Get("Content-Type") != "text/html" ||
		r.header.Get("Content-Security-Policy") != "default-src 'none'; frame-ancestors 'none'; sandbox" {
		t.Errorf("an HTML Binary: %d, headers %v", r.status, r.header)
	}
	// What the token may not see reads as a missing one does, natively
	// asked or not; a Binary whose data is not base64 is the server's
	// fault.
	for _, c := range []struct{ target, token string }{
		{"/Binary/theirs", app}, {"/Binary/psy", app}, {"/Binary/psy", f.token("user/Binary.rs user/Observation.rs", nil)},
	} {
		if r := f.do("GET", c.target, c.token, "", "Accept", "text/plain"); r.status != 404 || r.raw != missing.raw || r.header.Get("X-Security-Context") != "" {
			t.Errorf("%s natively: %d %s, want the missing one's %s", c.target, r.status, r.raw, missing.raw)
		}
	}
	if r := f.do("GET", "/Binary/bad", app, "", "Accept", "text/plain"); r.status != 502 || r.body["resourceType"] != "OperationOutcome" {
		t.Errorf("a Binary whose data is not base64: %d %s", r.status, r.raw)
	}
	// Conditional reads are the proxy's, of the judged resource.
	etag := f.up.etag("Binary/mine")
	if r := f.do("GET", "/Binary/mine", app, "", "Accept", "text/plain", "If-None-Match", etag); r.status != 304 || r.raw != "" {
		t.Errorf("If-None-Match of the current version: %d %q", r.status, r.raw)
	}
	if r := f.do("GET", "/Binary/theirs", app, "", "Accept", "text/plain", "If-None-Match", etag); r.status != 404 {
		t.Errorf("If-None-Match of another patient's: %d %q", r.status, r.raw)
	}
}

// TestNativeBinaryWrites: content sent as it is (its own Content-Type, the
// record it belongs to in X-Security-Context) goes upstream as the FHIR
// JSON Binary it describes, and is checked as that: a patient app's must
// be bound to one of its patient's records, a clinician's may not be bound
// to a withheld one. A malformed X-Security-Context is 400, nothing sent.
func TestNativeBinaryWrites(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	f.up.resources["Binary/mine"] = binary("mine", "Patient/p1")
	f.up.resources["Binary/theirs"] = binary("theirs", "Patient/p2")
	f.up.mu.Unlock()
	app := f.token("launch/patient patient/Binary.cruds patient/Patient.rs patient/Observation.rs", nil)
	clinician := f.token("user/Binary.cruds user/Observation.rs", nil)
	pdf := "%PDF-1.4\n\x00\x01binary\xff"
	for _, c := range []struct {
		name, method, target, token, contentType, context string
		status                                            int
		stored                                            string // contentType upstream
	}{
		{"a patient's PDF", "POST", "/Binary", app, "application/pdf", "Patient/p1", 201, "application/pdf"},
		{"bound to the patient's record", "POST", "/Binary", app, "application/pdf", "Observation/lab-1", 201, "application/pdf"},
		{"its own replaced", "PUT", "/Binary/mine", app, "application/pdf", "Patient/p1", 200, "application/pdf"},
		{"a clinician's text in Latin-1", "POST", "/Binary", clinician, "text/plain; charset=ISO-8859-1", "Observation/lab-2", 201, "text/plain; charset=ISO-8859-1"},
		{"a clinician's, bound to nothing", "POST", "/Binary", clinician, "image/png", "", 201, "image/png"},
		{"a clinician's conditional update, matching nothing: a create", "PUT", "/Binary?_id=nope", clinician, "text/plain", "Observation/lab-1", 201, "text/plain"},

		{"bound to another patient", "POST", "/Binary", app, "application/pdf", "Patient/p2", 403, ""},
		{"bound to another patient's record", "POST", "/Binary", app, "application/pdf", "Observation/lab-2", 403, ""},
		{"bound to nothing", "POST", "/Binary", app, "application/pdf", "", 403, ""},
		{"another patient's taken over", "PUT", "/Binary/theirs", app, "application/pdf", "Patient/p1", 404, ""},
		{"a clinician's, bound to a withheld record", "POST", "/Binary", clinician, "application/pdf", "Observation/psy-1", 403, ""},
		{"two references", "POST", "/Binary", app, "application/pdf", "Patient/p1 Patient/p2", 400, ""},
		{"a reference not in ASCII", "POST", "/Binary", clinician, "application/pdf", "Observation/lab-1\x89", 400, ""},
		{"a media type without a subtype", "POST", "/Binary", clinician, "pdf", "Observation/lab-1", 415, ""},
		{"a FHIR XML body", "POST", "/Binary", app, "application/fhir+xml", "Patient/p1", 415, ""},
		{"a Content-Type not understood", "POST", "/Binary", app, "application/pdf; x", "Patient/p1", 415, ""},
	} {
		hdr := []string{"Content-Type", c.contentType}
		if c.context != "" {
			hdr = append(hdr, "X-Security-Context", c.context)
		}
		r := f.do(c.method, c.target, c.token, pdf, hdr...)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.raw, c.status)
		}
		if c.status >= 400 {
			if r.body["resourceType"] != "OperationOutcome" {
				t.Errorf("%s: %s", c.name, r.raw)
			}
			f.onlyReads(c.name)
			continue
		}
		var sent map[string]any
		var last *http.Request
		f.up.mu.Lock()
		for i, g := range f.up.got { // the write, among the proxy's own reads
			if g.Method == "POST" || g.Method == "PUT" {
				last = g
				_ = json.Unmarshal([]byte(f.up.bodies[i]), &sent)
			}
		}
		f.up.mu.Unlock()
		if last == nil {
			t.Errorf("%s: nothing written", c.name)
			continue
		}
		b64, _ := sent["data"].(string)
		data, _ := base64.StdEncoding.DecodeString(b64)
		ctx, _ := sent["securityContext"].(map[string]any)
		switch {
		case last.Method != c.method && !strings.Contains(c.target, "?") || last.Header.Get("Content-Type") != "application/fhir+json":
			t.Errorf("%s: the upstream got %s as %q", c.name, last.Method, last.Header.Get("Content-Type"))
		case sent["resourceType"] != "Binary" || sent["contentType"] != c.stored || string(data) != pdf:
			t.Errorf("%s: the upstream got %v", c.name, sent)
		case c.context != "" && ctx["reference"] != c.context, c.context == "" && ctx != nil:
			t.Errorf("%s: bound upstream to %v", c.name, ctx)
		case c.method == "PUT" && !strings.Contains(c.target, "?") && sent["id"] != strings.TrimPrefix(c.target, "/Binary/"):
			t.Errorf("%s: id %v", c.name, sent["id"])
		}
		f.up.reset()
	}

	// X-Security-Context given twice is ambiguous: 400, nothing sent.
	req, _ := http.NewRequest("POST", f.base+"/Binary", strings.NewReader(pdf))
	req.Header.Set("Authorization", "Bearer "+app)
	req.Header.Set("Content-Type", "application/pdf")
	req.Header.Add("X-Security-Context", "Patient/p1")
	req.Header.Add("X-Security-Context", "Patient/p2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || len(f.up.requests()) != 0 {
		t.Errorf("two X-Security-Context headers: %d %s, %d upstream requests", resp.StatusCode, b, len(f.up.requests()))
	}
}

// TestBinarySummaries: a Binary is judged by its securityContext, so where
// answers are judged a summary that may leave it out is refused (a Binary
// without one is bound to nothing, and one bound to a withheld record
// would pass as that); an element selection asks for it, and the Binary
// is judged as when read whole.
func TestBinarySummaries(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	for id, ctx := range map[string]string{"mine": "Observation/lab-1", "psy": "Observation/psy-1", "loose": ""} {
		f.up.resources["Binary/"+id] = binary(id, ctx)
	}
	f.up.mu.Unlock()
	for _, tok := range []string{f.token("user/Binary.rs user/Observation.rs", nil), f.token("launch/patient patient/Binary.rs patient/Observation.rs", nil)} {
		for _, target := range []string{"/Binary/psy?_summary=true", "/Binary/psy?_summary=text", "/Binary/mine?_summary=true"} {
			f.refused(target, f.do("GET", target, tok, ""), 400)
		}
		r := f.do("GET", "/Binary?_summary=true", tok, "")
		f.refused("a search of Binary in summary", r, r.status) // (400; with patient context, 403 first: no Binary search)
		if r.status != 400 && r.status != 403 {
			t.Errorf("a search of Binary in summary: %d", r.status)
		}
		// In a batch alike.
		b := f.do("POST", "/", tok, bundle("batch", entry("", "GET", "Binary/psy?_summary=true", "")))
		f.refused("a batched Binary read in summary", b, 400)
		for target, want := range map[string]int{"/Binary/psy?_elements=contentType": 404, "/Binary/mine?_elements=contentType": 200,
			"/Binary/psy?_summary=data": 404, "/Binary/mine?_summary=false": 200} {
			if r := f.do("GET", target, tok, ""); r.status != want {
				t.Errorf("%s: %d %s, want %d", target, r.status, r.raw, want)
			}
		}
		f.up.reset()
	}
	// A token that sees every record judges nothing: a summary passes.
	if r := f.do("GET", "/Binary/psy?_summary=true", f.token("user/Binary.rs user/Observation.rs", everyLabel()), ""); r.status != 200 {
		t.Errorf("a summary where nothing is judged: %d %s", r.status, r.raw)
	}
}

// TestBatchedBoundSearches: a batched search of Binary or Provenance, whose
// records are judged by what they are bound to, answers what the search
// answers on its own (found by probing: batched, it answered none, the
// search's access having no reader for the records they name), within the
// reads one response may make.
func TestBatchedBoundSearches(t *testing.T) {
	f := newFixture(t)
	f.up.boundRecords()
	tok := f.token("user/Binary.rs user/Provenance.rs user/Observation.rs", nil) // the psychotherapy note withheld
	for search, want := range map[string][]string{"Binary": {"b-lab"}, "Provenance": {"pv-lab"}, "Binary?_elements=contentType": {"b-lab"}} {
		alone := f.do("GET", "/"+search, tok, "")
		r := f.do("POST", "/", tok, bundle("batch", entry("", "GET", search, ""), entry("", "GET", "Binary/b-psy", "")))
		entries, _ := r.body["entry"].([]any)
		if r.status != 200 || len(entries) != 2 {
			t.Fatalf("%s batched: %d %.300s", search, r.status, r.raw)
		}
		nested, _ := entries[0].(map[string]any)["resource"].(map[string]any)
		if got := entryIDs(result{body: nested}); !slices.Equal(got, want) || !slices.Equal(entryIDs(alone), want) {
			t.Errorf("%s: batched %v, on its own %v, want %v", search, got, entryIDs(alone), want)
		}
		if !strings.Contains(mustJSON(nested), "REDACTED") {
			t.Errorf("%s batched: no REDACTED mark for what was withheld: %s", search, mustJSON(nested))
		}
		if status := entries[1].(map[string]any)["response"].(map[string]any)["status"]; status != "404 Not Found" {
			t.Errorf("%s: the withheld Binary read beside it: %v", search, status)
		}
	}
}
