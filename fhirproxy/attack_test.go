package fhirproxy_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
)

// The attack classes of the proxy section of SECURITY-BASELINE.md that the
// other tests cover with one or two examples, here with more variants each.

// TestHeaderAttacks: method overrides are refused; identity, forwarding,
// hop-by-hop and upgrade headers a client sends never reach the upstream;
// an upstream cannot strip the proxy's own headers by naming them in
// Connection.
func TestHeaderAttacks(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/*.rs", nil)
	for _, h := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x-http-method-override"} {
		f.refused(h, f.do("GET", "/Observation", tok, "", h, "DELETE"), 400)
	}

	spoofed := []string{
		"X-Forwarded-For", "203.0.113.9", "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "http",
		"Forwarded", "for=203.0.113.9;host=evil.example", "X-Real-Ip", "203.0.113.9",
		"Cookie", "session=stolen", "Proxy-Authorization", "Basic YWRtaW46YWRtaW4=",
		"X-Remote-User", "admin", "X-Patient", "p2", "Te", "trailers", "X-Custom", "anything",
	}
	for name, extra := range map[string][]string{
		"forwarding and identity": spoofed,
		// Listing Authorization as hop-by-hop must not strip the proxy's
		// own credential (or pass the client's token).
		"Connection names Authorization": {"Connection", "Authorization, X-Custom", "X-Custom", "x"},
		"h2c upgrade":                    {"Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"},
		"websocket upgrade":              {"Connection", "Upgrade", "Upgrade", "websocket", "Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-Websocket-Version", "13"},
	} {
		r := f.do("GET", "/Observation/lab-1", tok, "", extra...)
		if r.status != 200 {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		got := f.up.requests()
		if len(got) != 1 {
			t.Fatalf("%s: the upstream got %d requests", name, len(got))
		}
		for i := 0; i < len(extra); i += 2 {
			if v := got[0].Header.Values(extra[i]); len(v) > 0 {
				t.Errorf("%s: %s reached the upstream: %q", name, extra[i], v)
			}
		}
		for _, k := range []string{"Upgrade", "Http2-Settings", "Connection"} {
			if v := got[0].Header.Values(k); len(v) > 0 && k != "Connection" || strings.Contains(strings.ToLower(strings.Join(v, ",")), "upgrade") {
				t.Errorf("%s: %s reached the upstream: %q", name, k, v)
			}
		}
		if a := got[0].Header.Values("Authorization"); len(a) != 1 || a[0] != "Bearer upstream-credential" {
			t.Errorf("%s: the upstream got Authorization %q", name, a)
		}
		f.up.reset()
	}

	// The upstream lists the proxy's headers as hop-by-hop and sets its own.
	f.up.header = http.Header{
		"Connection":    {"X-Content-Type-Options, Cache-Control, Content-Security-Policy, Referrer-Policy"},
		"Cache-Control": {"public, max-age=86400"},
	}
	r := f.do("GET", "/Observation/lab-1", tok, "")
	for _, h := range []struct{ key, want string }{
		{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"}, {"Referrer-Policy", "no-referrer"},
		{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
	} {
		if got := r.header.Values(h.key); r.status != 200 || len(got) != 1 || got[0] != h.want {
			t.Errorf("upstream Connection header: %d, %s = %q, want exactly %q", r.status, h.key, got, h.want)
		}
	}
}

// TestAddressingVariants: types outside the Patient compartment that are
// not shared are refused to patient/ tokens, however addressed (a read of
// a Binary is judged by its securityContext: TestBinarySecurityContext); a
// Patient search is confined to the context patient whatever it names.
func TestAddressingVariants(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/*.rs", nil)
	for _, target := range []string{
		"/Binary?_id=b1", "/Group/g1", "/Group?member=Patient/p1", "/Account/a1", "/Account?subject=Patient/p1",
		"/Provenance?patient=p1", "/Basic?patient=p1", "/Person/x", "/Linkage?item=Patient/p1", "/Patient/p1/Binary", "/Patient/p1/Group",
		"/Patient/p2/Observation?category=laboratory", "/Patient/p2/_history", "/Patient/p2/_history/1",
	} {
		r := f.do("GET", target, tok, "")
		if r.status != 403 && r.status != 404 {
			t.Errorf("%s: %d", target, r.status)
		}
		f.refused(target, r, r.status)
	}
	// Patient.link and other references cannot widen a Patient search.
	for _, q := range []string{"link=Patient/p1", "general-practitioner=Practitioner/dr", "name=Two", "_id=p1"} {
		r := f.do("GET", "/Patient?"+q, tok, "")
		got := f.up.requests()
		if r.status != 200 || len(got) != 1 || got[0].URL.Query()["_id"] == nil || strings.Contains(r.raw, `"p2"`) {
			t.Errorf("Patient?%s: %d, forwarded %v: %s", q, r.status, got, r.raw)
		} else if ids := got[0].URL.Query()["_id"]; ids[len(ids)-1] != "p1" {
			t.Errorf("Patient?%s: forwarded with _id %q", q, ids)
		}
		f.up.reset()
	}
}

// TestOperationVariants: operations other than Patient/{id}/$everything are
// refused, at every level, before anything is forwarded.
func TestOperationVariants(t *testing.T) {
	f := newFixture(t)
	for scope, targets := range map[string][]string{
		"launch/patient patient/*.rs": {"/$export", "/Patient/$export", "/Group/g1/$export", "/Patient/p1/$graphql",
			"/$graphql?query=%7BPatientList%7Bid%7D%7D", "/Observation/lab-1/$meta", "/Patient/p1/$everything/x", "/Observation/lab-1/$lastn",
			"/Patient/p2/$everything", "/Patient/$everything", "/Patient/p1/$everything?_has:Observation:patient:code=1"},
		"system/*.rs": {"/$export", "/Patient/$export", "/Group/g1/$export", "/$graphql", "/Patient/$match", "/Observation/lab-1/$meta-delete",
			"/Patient/p1/$purge", "/$reindex"},
	} {
		tok := f.token(scope, nil)
		for _, target := range targets {
			r := f.do("GET", target, tok, "")
			if r.status != 403 && r.status != 400 && r.status != 404 {
				t.Errorf("%s with %s: %d", target, scope, r.status)
			}
			f.refused(target, r, r.status)
			r = f.do("POST", target, tok, `{"resourceType":"Parameters"}`)
			if r.status < 400 || r.status >= 500 {
				t.Errorf("POST %s with %s: %d", target, scope, r.status)
			}
			f.refused("POST "+target, r, r.status)
		}
	}
	// $everything's body is read into its parameters, checked as the
	// query's are: none goes upstream unread (HAPI's _mdm asks $everything
	// for the records linked to the patient).
	tok := f.token("launch/patient patient/*.rs", nil)
	for body, status := range map[string]int{`{"resourceType":"Parameters","parameter":[{"name":"_mdm","valueBoolean":true}]}`: http.StatusForbidden,
		"x": http.StatusBadRequest} {
		f.refused("POST $everything with "+body, f.do("POST", "/Patient/p1/$everything", tok, body), status)
	}
	if r := f.do("POST", "/Patient/p1/$everything?_count=10", tok, ""); r.status != http.StatusOK {
		t.Errorf("POST $everything without a body: %d %s", r.status, r.raw)
	}
	// An operation is invoked with GET or POST. Found by probing: a
	// read-only token's DELETE /Patient/p1/$everything went upstream as a
	// DELETE.
	f.up.reset()
	terminology(f)
	user := f.token("user/ValueSet.rs user/Observation.rs", everyLabel())
	for _, m := range []string{"PUT", "DELETE", "PATCH"} {
		f.refused(m+" $everything", f.do(m, "/Patient/p1/$everything", tok, ""), http.StatusBadRequest)
		f.refused(m+" $expand", f.do(m, "/ValueSet/colours/$expand", user, ""), http.StatusBadRequest)
		f.refused(m+" $lastn", f.do(m, "/Observation/$lastn?code=x", user, ""), http.StatusBadRequest)
		f.refused(m+" $everything in a batch", f.do("POST", "/", f.token("user/*.rs", everyLabel()),
			bundle("batch", entry("", m, "Patient/p1/$everything", ""))), http.StatusBadRequest)
	}
}

// TestElementSelections: an element selection keeps what the proxy judges
// an answer by (meta for labels, the compartment references for a patient/
// token), so a server that leaves unrequested elements out cannot make an
// absent label or reference read as allowed; selections that could drop
// them regardless are refused, and nothing is forwarded.
func TestElementSelections(t *testing.T) {
	f := newFixture(t)
	patient := f.token("launch/patient patient/*.rs", nil)
	user := f.token("user/Observation.rs", nil) // normal clearance: labels judged
	system := f.token("system/Observation.rs", everyLabel())
	for _, c := range []struct {
		target, tok, want string
	}{
		{"/Observation?_elements=status", patient, "status,meta,subject"},
		{"/Observation/lab-1?_elements=status", patient, "status,meta,subject"},
		{"/Observation?_elements=subject,status,meta", patient, "subject,status,meta"},
		{"/Observation?_elements=", patient, "meta,subject"},
		{"/AllergyIntolerance?_elements=code", patient, "code,meta,patient"},
		{"/Appointment?_elements=status", patient, "status,meta,participant"},
		{"/Coverage?_elements=status", patient, "status,meta,beneficiary"},
		{"/Patient?_elements=name", patient, "name,meta"},
		{"/Practitioner?_elements=name", patient, "name,meta"},
		{"/Observation?_elements=status", user, "status,meta,subject"},            // (its patient, named in the audit)
		{"/Patient/p1/Observation?_elements=status", user, "status,meta,subject"}, // a compartment search
		{"/Observation/lab-1?_elements=status", system, "status"},                 // nothing judged: as asked
	} {
		r := f.do("GET", c.target, c.tok, "")
		got := f.up.requests()
		if r.status != 200 || len(got) != 1 || got[0].URL.Query().Get("_elements") != c.want {
			t.Errorf("%s: %d, forwarded %v; want _elements=%s", c.target, r.status, got, c.want)
		}
		f.up.reset()
	}
	for _, c := range []struct{ target, tok string }{
		{"/Observation?_elements:exclude=meta", patient},
		{"/Observation?_elements:exclude=meta", user},
		{"/Patient/p1/Observation?_elements:exclude=meta", user},
		{"/Observation/lab-1?_elements:exclude=subject", patient},
		{"/Observation?_summary:x=true", patient},
		{"/Observation?_summary=text", patient},
		{"/Observation/lab-1?_summary=text", patient},
	} {
		f.refused(c.target, f.do("GET", c.target, c.tok, ""), http.StatusBadRequest)
	}
	// Contained resources answered on their own have lost their container's
	// labels: not with a clearance short of every label.
	for _, target := range []string{"/Observation?_contained=true", "/Observation?_contained=both&_containedType=contained", "/Patient/p1/Observation?_contained=true"} {
		f.refused(target, f.do("GET", target, user, ""), http.StatusForbidden)
	}
	if r := f.do("GET", "/Observation?_contained=true", system, ""); r.status != 200 {
		t.Errorf("_contained with every label cleared: %d", r.status)
	}
	f.up.reset()
	// _summary=text keeps meta, and a Patient is judged by its id.
	if r := f.do("GET", "/Patient/p1?_summary=text", patient, ""); r.status != 200 {
		t.Errorf("Patient/p1?_summary=text: %d", r.status)
	}
}

// TestResponseShapingVariants: shaping parameters neither reach outside
// the compartment nor count it.
func TestResponseShapingVariants(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/*.rs", nil)
	for _, target := range []string{
		"/Observation?_summary=count&patient=p2", "/Observation?_contained=true", "/Observation?_containedType=contained",
		"/Observation?_elements=subject&subject=Patient/p2", "/Observation?_revinclude=*", "/Observation?_include:iterate=*",
		"/Observation?_format=application/fhir%2Bxml", "/Observation?_format=text/html",
	} {
		r := f.do("GET", target, tok, "")
		if r.status != 403 && r.status != 400 && r.status != 406 {
			t.Errorf("%s: %d", target, r.status)
		}
		f.refused(target, r, r.status)
	}
	// Counts, element selections and includes are confined like any search
	// (the test upstream answers any _include with another patient's record).
	// The clearance releases every label: a count is refused otherwise
	// (TestLabelInference).
	tok = f.token("launch/patient patient/*.rs", everyLabel())
	for _, q := range []string{"_summary=count", "_summary=true", "_elements=status", "_count=0", "_total=accurate", "_include=*", "_include=Observation:subject"} {
		r := f.do("GET", "/Observation?"+q, tok, "")
		got := f.up.requests()
		if r.status != 200 || len(got) != 1 || got[0].URL.Query().Get("patient") != "Patient/p1" {
			t.Errorf("Observation?%s: %d, forwarded %v", q, r.status, got)
		}
		if strings.Contains(r.raw, "Patient/p2") || strings.Contains(r.raw, `"p2"`) {
			t.Errorf("Observation?%s: another patient's data: %s", q, r.raw)
		}
		f.up.reset()
	}
	// An upstream that answers a narrowed query with elements that do not
	// place the resource (no subject) has its entries withheld: presence,
	// never absence, admits.
	f.up.resources["Observation/bare"] = map[string]any{"resourceType": "Observation", "id": "bare", "status": "final"}
	f.up.misbehave = true
	r := f.do("GET", "/Observation?_elements=status", tok, "")
	if r.status != 200 || strings.Contains(r.raw, `"bare"`) || strings.Contains(r.raw, "lab-2") {
		t.Errorf("entries without a subject, or another patient's, passed: %d %s", r.status, r.raw)
	}
}

// TestBatchVariants: a transaction whose entries would write outside the
// compartment, or whose entry URLs do not parse as plain relative
// references, is refused whole, and nothing reaches the upstream.
func TestBatchVariants(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.cruds", nil)
	entry := func(method, url, resource string) string {
		e := `{"request":{"method":"` + method + `","url":"` + url + `"}`
		if resource != "" {
			e += `,"resource":` + resource
		}
		return e + "}"
	}
	bundle := func(typ string, entries ...string) string {
		return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
	}
	own := mustJSON(obs("x", "p1", "laboratory"))
	withSubject := func(ref string) string {
		return `{"resourceType":"Observation","status":"final","subject":{"reference":"` + ref + `"}}`
	}
	for name, body := range map[string]string{
		"urn:uuid subject":        bundle("transaction", entry("POST", "Observation", withSubject("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"))),
		"conditional subject":     bundle("transaction", entry("POST", "Observation", withSubject("Patient?identifier=urn:mrn|2"))),
		"absolute subject":        bundle("transaction", entry("POST", "Observation", withSubject("https://evil.example/fhir/Patient/p1"))),
		"contained subject":       bundle("transaction", entry("POST", "Observation", withSubject("#p"))),
		"another patient's write": bundle("transaction", entry("POST", "Observation", own), entry("POST", "Observation", mustJSON(obs("y", "p2", "laboratory")))),
		"a Patient created":       bundle("transaction", entry("POST", "Patient", `{"resourceType":"Patient"}`)),
		"dot segments":            bundle("batch", entry("GET", "Observation/lab-1/../lab-2", "")),
		"leading dot segment":     bundle("batch", entry("GET", "../Observation/lab-2", "")),
		"encoded slash":           bundle("batch", entry("GET", "Observation/lab-1%2F..%2Flab-2", "")),
		"network-path reference":  bundle("batch", entry("GET", "//evil.example/Observation/1", "")),
		"fragment":                bundle("batch", entry("GET", "Observation/lab-2#x", "")),
		"matrix parameter":        bundle("batch", entry("GET", "Observation/lab-1;x=y", "")),
		"other patient search":    bundle("batch", entry("GET", "Observation?subject:Patient=p2", "")),
		"system history":          bundle("batch", entry("GET", "_history", "")),
		"nested transaction":      bundle("transaction", entry("POST", "", bundle("transaction", entry("POST", "Observation", own)))),
		"unknown method":          bundle("batch", entry("TRACE", "Observation/lab-1", "")),
		"operation":               bundle("batch", entry("GET", "Patient/p2/$everything", "")),
		"not a batch":             bundle("collection", entry("POST", "Observation", own)),
		"a read with a resource":  bundle("batch", entry("GET", "Observation/lab-1", own)),
		"a read in XML":           bundle("batch", entry("GET", "Observation/lab-1?_format=xml", "")),
	} {
		r := f.do("POST", "/", tok, body)
		if r.status < 400 || r.status >= 500 {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.refused(name, r, r.status)
	}
	// Where writes may be batched, an entry is a write with its content or
	// carries none: the Bundle goes upstream as sent.
	user := f.token("user/Observation.cruds", everyLabel())
	for name, body := range map[string]string{
		"a create without its resource":  bundle("transaction", entry("POST", "Observation", "")),
		"an update without its resource": bundle("transaction", entry("PUT", "Observation/lab-1", "")),
		"a delete with a resource":       bundle("transaction", entry("DELETE", "Observation/lab-1", mustJSON(obs("lab-1", "p2", "laboratory")))),
		"a search with a resource":       bundle("batch", entry("GET", "Observation?code=x", own)),
	} {
		f.refused(name, f.do("POST", "/", user, body), http.StatusBadRequest)
	}
	// The POST's own URL takes no query: it would go upstream unjudged.
	for _, q := range []string{"patient=p2", "_has:Observation:subject:code=x", "."} {
		f.refused("batch?"+q, f.do("POST", "/?"+q, tok, bundle("batch", entry("GET", "Observation/lab-1", ""))), http.StatusBadRequest)
	}
}

// TestWriteParameters: a create or an instance write takes no query but
// _format, and a conditional write's query holds search criteria only:
// servers read some parameters as instructions that reach beyond the
// record (HAPI's _cascade=delete deletes what refers to it, of any type,
// which a token allowed to delete Observations only would get through),
// so they are refused, whatever the token, and nothing is forwarded.
func TestWriteParameters(t *testing.T) {
	f := newFixture(t)
	tok := f.token("system/Observation.cruds system/DiagnosticReport.s", everyLabel()) // s: the _has criterion reads DiagnosticReport
	own := mustJSON(obs("lab-1", "p1", "laboratory"))
	fresh := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`
	for _, c := range []struct{ method, target, body string }{
		{"DELETE", "/Observation/lab-1?_cascade=delete", ""},
		{"DELETE", "/Observation/lab-1?code=x", ""},
		{"PUT", "/Observation/lab-1?_cascade=delete", own},
		{"PATCH", "/Observation/lab-1?status=final", `[]`},
		{"POST", "/Observation?identifier=x", fresh},
		{"DELETE", "/Observation?code=x&_cascade=delete", ""},
		{"DELETE", "/Observation?code=x&_expunge=true", ""},
		{"PUT", "/Observation?identifier=x&_cascade=delete", fresh},
		{"DELETE", "/Observation?code=x&_count=1", ""},
		{"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Observation/lab-1?_cascade=delete"}}]}`},
		{"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Observation?code=x&_cascade=delete"}}]}`},
	} {
		f.refused(c.method+" "+c.target+" "+c.body, f.do(c.method, c.target, tok, c.body), http.StatusBadRequest)
	}
	for _, c := range []struct{ method, target, body string }{
		{"DELETE", "/Observation?_id=lab-1", ""},
		{"DELETE", "/Observation?_id=lab-1&_has:DiagnosticReport:result:status=final", ""},
		{"PUT", "/Observation/lab-1?_format=json", own},
		{"POST", "/Observation?_format=json", fresh},
	} {
		r := f.do(c.method, c.target, tok, c.body)
		if got := f.up.requests(); r.status >= 400 || len(got) == 0 || got[len(got)-1].Method != c.method {
			t.Errorf("%s %s: %d %s", c.method, c.target, r.status, r.raw)
		}
		f.up.reset()
	}
}

// TestCriteriaNeedScopes: a search's criteria that other types' records
// meet (chains, _has, _list, _filter, _query, a sort by a chained key) tell
// which records of those types exist and what they hold, so the token must
// be allowed to search those types, outright, whatever its clearance.
// Found by probing: a system/ token with Observation.rs alone, whose
// answers pass unread, sent Observation?_has:Condition:subject:code=…
// upstream as it was (which patients have that condition), and
// subject:Patient.name=… (patients' names).
func TestCriteriaNeedScopes(t *testing.T) {
	f := newFixture(t)
	obsOnly := f.token("system/Observation.rs", everyLabel())
	writer := f.token("system/Observation.cruds", everyLabel())
	constrained := f.token("system/Observation.rs system/Condition.rs?category=problem-list-item system/Patient.rs?gender=female", everyLabel())
	patient := f.token("launch/patient patient/Observation.rs patient/Patient.rs", everyLabel())
	for _, c := range []struct{ tok, method, target, body string }{
		{obsOnly, "GET", "/Observation?subject:Patient.name=Smith", ""},
		{obsOnly, "GET", "/Observation?patient.name=Smith", ""},                  // the parameter names the type
		{obsOnly, "GET", "/Observation?subject.name=Smith", ""},                  // any type subject reaches
		{obsOnly, "GET", "/Observation?subject:Patient.organization.name=x", ""}, // longer: any type
		{obsOnly, "GET", "/Observation?_has:Condition:subject:code=x", ""},
		{obsOnly, "GET", "/Observation?_has:Observation:has-member:_has:Condition:subject:code=x", ""}, // nested
		{obsOnly, "GET", "/Observation?_has:Observation:has-member:subject.name=x", ""},                // its last parameter chains
		{obsOnly, "GET", "/Observation?_has:observation:has-member:code=x", ""},                        // no such type
		{obsOnly, "GET", "/Observation?_has=x", ""},                                                    // malformed: found by FuzzParsePath
		{obsOnly, "GET", "/Observation?_list=l1", ""},
		{obsOnly, "GET", "/Observation?_list=$current-problems,l1", ""},
		{obsOnly, "GET", "/Observation?_query=current", ""},
		{obsOnly, "GET", "/Observation?_sort=-subject.birthdate", ""},
		{obsOnly, "GET", "/Observation?_sort=date,patient.name", ""},
		{obsOnly, "POST", "/Observation/_search", "_has:Condition:subject:code=x"},
		{obsOnly, "GET", "/Observation/$lastn?subject:Patient.name=Smith", ""},
		{writer, "DELETE", "/Observation?_has:Condition:subject:code=x", ""},
		{constrained, "GET", "/Observation?_has:Condition:subject:code=x", ""}, // the server would not apply the constraint inside
		{constrained, "GET", "/Observation?subject:Patient.name=Smith", ""},
		{patient, "GET", "/Observation?_sort=patient.name", ""},
		{writer, "POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?_has:Condition:subject:code=x"}}]}`},
		{writer, "POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"Observation?_has:Condition:subject:code=x"}}]}`},
		// Whether the create happened would tell whether a record matched.
		{writer, "POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"Observation","ifNoneExist":"_has:Condition:subject:code=x"},` +
			`"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}}}]}`},
	} {
		name := c.method + " " + c.target + " " + c.body
		var hdr []string
		if strings.HasSuffix(c.target, "/_search") {
			hdr = []string{"Content-Type", "application/x-www-form-urlencoded"}
		}
		f.refused(name, f.do(c.method, c.target, c.tok, c.body, hdr...), http.StatusForbidden)
		evs := f.audit.Events()
		if ev := evs[len(evs)-1]; ev.Outcome != audit.Failure || ev.Severity != audit.Security || !strings.Contains(ev.Reason, "searches by") {
			t.Errorf("%s: audited as %s %s %q", name, ev.Outcome, ev.Severity, ev.Reason)
		}
	}
	// With the types' scopes, each goes upstream as it was.
	wide := f.token("system/Observation.rs system/Patient.s system/Condition.s system/List.s", everyLabel())
	every := f.token("system/*.rs", everyLabel())
	for _, c := range []struct{ tok, target, param string }{
		{wide, "/Observation?subject:Patient.name=Smith", "subject:Patient.name"},
		{wide, "/Observation?patient.name=Smith", "patient.name"},
		{wide, "/Observation?_has:Condition:subject:code=x", "_has:Condition:subject:code"},
		{wide, "/Observation?_list=l1", "_list"},
		{obsOnly, "/Observation?_list=$current-problems", "_list"}, // a functional list: the searched type
		{every, "/Observation?subject.name=Smith", "subject.name"},
		{every, "/Observation?_sort=-subject.birthdate", "_sort"},
		{every, "/Observation?_has:Observation:has-member:_has:Condition:subject:code=x", "_has:Observation:has-member:_has:Condition:subject:code"},
	} {
		r := f.do("GET", c.target, c.tok, "")
		if got := f.up.requests(); r.status != 200 || len(got) != 1 || !got[0].URL.Query().Has(c.param) {
			t.Errorf("%s: %d, upstream got %v: %s", c.target, r.status, got, r.raw)
		}
		f.up.reset()
	}
}

// TestParameterNames: a read takes _format, _pretty, _summary and
// _elements; _type chooses types at system level only. Anything else is 400 with nothing sent (found by probing: a
// read's ?_id=lab-2 and ?patient=p2 went upstream with it). An underscored
// name FHIR does not define still goes with a search (servers page with
// their own), but its answer is read and judged even for a token that
// sees everything its scopes name: found by probing, R5's _graph brought
// a system/Observation.rs token Patient and Practitioner records unread.
func TestParameterNames(t *testing.T) {
	f := newFixture(t)
	sys := f.token("system/Observation.rs", everyLabel())
	patient := f.token("launch/patient patient/Observation.rs patient/Patient.rs", nil)
	for _, c := range []struct{ tok, target string }{
		{sys, "/Observation/lab-1?_id=lab-2"},
		{sys, "/Observation/lab-1?patient=p2"},
		{sys, "/Observation/lab-1?_include=Observation:subject"},
		{sys, "/Observation/lab-1?_count=1"},
		{sys, "/Observation/lab-1/_history/1?_id=x"},
		{sys, "/Observation/lab-1/_history/1?code=x"},
		{sys, "/Observation?_type=Patient"},
		{patient, "/Patient/p1/Observation?_type=Patient"},
		{patient, "/Observation/lab-1?_id=lab-2"},
		{sys, "/Observation/$lastn?_type=Patient"},
	} {
		f.refused(c.target, f.do("GET", c.target, c.tok, ""), http.StatusBadRequest)
	}
	f.refused("_type in a POSTed search", f.do("POST", "/Observation/_search", sys, "_type=Patient", "Content-Type", "application/x-www-form-urlencoded"), http.StatusBadRequest)
	// If-None-Exist holds search criteria only, in a batch entry too (where
	// answers pass unread it went upstream as it was).
	writer := f.token("system/Observation.cruds", everyLabel())
	fresh := `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`
	for _, crit := range []string{"_include=Observation:subject", "_summary=count", "identifier=a&_cascade=delete"} {
		f.refused("If-None-Exist: "+crit, f.do("POST", "/Observation", writer, fresh, "If-None-Exist", crit), http.StatusBadRequest)
		f.refused("ifNoneExist: "+crit, f.do("POST", "/", writer, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"Observation",`+
			`"ifNoneExist":"`+crit+`"},"resource":`+fresh+`}]}`), http.StatusBadRequest)
	}
	for _, target := range []string{"/Observation/lab-1?_format=json", "/Observation/lab-1?_summary=true", "/Observation/lab-1?_elements=status",
		"/Observation/lab-1?_pretty=true", "/Observation/lab-1/_history?_since=2020-01-01&_count=2", "/Observation?_maxresults=5&_score=true",
		"/Observation/_history?ct=W3sidG9rZW4iOiIxIn1d"} { // a page link's own parameter (Azure's continuation token)
		if r := f.do("GET", target, sys, ""); r.status != 200 {
			t.Errorf("%s: %d %s", target, r.status, r.raw)
		}
		f.up.reset()
	}
	r := f.do("GET", "/Observation?_graph=everything", sys, "")
	var types []string
	for _, e := range r.body["entry"].([]any) {
		types = append(types, e.(map[string]any)["resource"].(map[string]any)["resourceType"].(string))
	}
	if got := f.up.requests(); r.status != 200 || len(got) != 1 || got[0].URL.Query().Get("_graph") != "everything" ||
		len(types) == 0 || slices.ContainsFunc(types, func(t string) bool { return t != "Observation" }) {
		t.Errorf("_graph: %d, upstream got %v, answer holds %v", r.status, got, types)
	}
}

// TestLogicalReferences: with patient context, a reference that may be to
// a patient carries no identifier. Found by probing: a patient app's
// Observation with subject Patient/p1 and another patient's record number
// as the subject's identifier was created, in p1's compartment, and a
// search by subject:identifier finds it as that other patient's; so was
// one whose performer was another patient's record number alone. The
// proxy cannot tell whose an identifier is; a reference naming another
// type (a Practitioner with its NPI) may carry one.
func TestLogicalReferences(t *testing.T) {
	f := newFixture(t)
	app := f.token("launch/patient patient/Observation.cruds patient/Patient.rs", nil)
	obsWith := func(extra string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}` + extra + `}`
	}
	mrn2 := `"identifier":{"system":"urn:mrn","value":"2"}`
	for name, body := range map[string]string{
		"subject with an identifier": `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1",` + mrn2 + `}}`,
		"performer by identifier":    obsWith(`,"performer":[{` + mrn2 + `}]`),
		"performer typed Patient":    obsWith(`,"performer":[{"type":"Patient",` + mrn2 + `}]`),
		"performer typed by URL":     obsWith(`,"performer":[{"type":"http://hl7.org/fhir/StructureDefinition/Patient",` + mrn2 + `}]`),
		"absolute URL":               obsWith(`,"performer":[{"reference":"http://elsewhere.example/fhir/Patient/9",` + mrn2 + `}]`),
		"in an extension":            obsWith(`,"extension":[{"url":"http://example.org/x","valueReference":{` + mrn2 + `}}]`),
		"in a contained resource": obsWith(`,"contained":[{"resourceType":"Observation","id":"c1","status":"final","code":{"text":"y"},"subject":{` + mrn2 + `}}],` +
			`"hasMember":[{"reference":"#c1"}]`),
	} {
		// The patient's record may be read, to compare identifiers with
		// its own; nothing else goes.
		if r := f.do("POST", "/Observation", app, body); r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
		entry := `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:4f8e3d2a-0000-4000-8000-000000000001","request":{"method":"POST","url":"Observation"},"resource":` + body + `}]}`
		if r := f.do("POST", "/", app, entry); r.status != http.StatusForbidden {
			t.Errorf("%s, in a transaction: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name + ", in a transaction")
	}
	// The patient's own identifier may go beside its reference, or alone,
	// as the patient's record holds it (urn:mrn|1): an EHR-launched app
	// writes the record number as the EHR does. A transaction reads the
	// record once for all its entries.
	mrn1 := `"identifier":{"system":"urn:mrn","value":"1"}`
	for name, body := range map[string]string{
		"its own identifier beside the reference": `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1",` + mrn1 + `}}`,
		"its own identifier alone":                obsWith(`,"performer":[{"type":"Patient",` + mrn1 + `}]`),
	} {
		r := f.do("POST", "/Observation", app, body)
		if got := f.up.requests(); r.status != http.StatusCreated || len(got) == 0 || got[len(got)-1].Method != "POST" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.up.reset()
	}
	own := obsWith(`,"performer":[{"type":"Patient",` + mrn1 + `}]`)
	if r := f.do("POST", "/", app, `{"resourceType":"Bundle","type":"transaction","entry":[`+
		`{"request":{"method":"POST","url":"Observation"},"resource":`+own+`},{"request":{"method":"POST","url":"Observation"},"resource":`+own+`}]}`); r.status != http.StatusOK {
		t.Errorf("a transaction of two: %d %s", r.status, r.raw)
	}
	if reads := f.up.requests(); len(reads) != 2 || reads[0].Method != "GET" || reads[0].URL.Path != "/Patient/p1" || reads[1].Method != "POST" {
		t.Errorf("a transaction of two: the upstream got %d requests (want the patient's read once, then the transaction)", len(reads))
	}
	f.up.reset()
	// Not its own: the value under another system or none, the reference
	// in another form, one identifier of two; nor when the token may not
	// read the patient's record, which is then not read.
	writer := f.token("launch/patient patient/Observation.c", nil)
	for name, c := range map[string]struct{ tok, body string }{
		"the value under another system": {app, obsWith(`,"performer":[{"type":"Patient","identifier":{"system":"urn:other","value":"1"}}]`)},
		"the value without a system":     {app, obsWith(`,"performer":[{"type":"Patient","identifier":{"value":"1"}}]`)},
		"a versioned reference":          {app, obsWith(`,"performer":[{"reference":"Patient/p1/_history/1",` + mrn1 + `}]`)},
		"an absolute reference":          {app, obsWith(`,"performer":[{"reference":"` + f.up.ts.URL + `/Patient/p1",` + mrn1 + `}]`)},
		"one of two":                     {app, obsWith(`,"performer":[{"type":"Patient",` + mrn1 + `},{"type":"Patient",` + mrn2 + `}]`)},
		"a token that cannot read it":    {writer, obsWith(`,"performer":[{"type":"Patient",` + mrn1 + `}]`)},
	} {
		if r := f.do("POST", "/Observation", c.tok, c.body); r.status != http.StatusForbidden || diagnostics(r) == "" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		if c.tok == writer && len(f.up.requests()) > 0 {
			t.Errorf("%s: the patient's record was read", name)
		}
		f.onlyReads(name)
	}
	// The identifiers are those of the patient's record as the token may
	// see it: not another record the upstream answers with, nor one whose
	// labels are beyond the clearance.
	for name, p1 := range map[string]map[string]any{
		"another patient's record answered": {"resourceType": "Patient", "id": "p2", "identifier": []any{map[string]any{"system": "urn:mrn", "value": "2"}}},
		"a record beyond the clearance": {"resourceType": "Patient", "id": "p1", "identifier": []any{map[string]any{"system": "urn:mrn", "value": "2"}},
			"meta": map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}}}},
	} {
		f.up.mu.Lock()
		saved := f.up.resources["Patient/p1"]
		f.up.resources["Patient/p1"] = p1
		f.up.mu.Unlock()
		if r := f.do("POST", "/Observation", app, obsWith(`,"performer":[{"type":"Patient",`+mrn2+`}]`)); r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
		f.up.mu.Lock()
		f.up.resources["Patient/p1"] = saved
		f.up.mu.Unlock()
	}
	// Another type's reference may carry its identifier, and so may an
	// element that admits no Patient; a token without patient context is
	// not confined to a compartment.
	sys := f.token("system/Observation.cruds system/Practitioner.rs", everyLabel())
	for _, c := range []struct{ name, tok, body string }{
		{"a practitioner's NPI", app, obsWith(`,"performer":[{"reference":"Practitioner/dr","identifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"1"}}]`)},
		{"a logical practitioner", app, obsWith(`,"performer":[{"type":"Practitioner","identifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"1"}}]`)},
		{"a device by its serial number", app, obsWith(`,"device":{"identifier":{"system":"urn:serial","value":"D-1"}}`)},
		{"without patient context", sys, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1",` + mrn2 + `}}`},
	} {
		r := f.do("POST", "/Observation", c.tok, c.body)
		if got := f.up.requests(); r.status != http.StatusCreated || len(got) == 0 || got[len(got)-1].Method != "POST" {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		f.up.reset()
	}
	// What the stored version holds may be written again (an app sends
	// back the record it read, where the EHR wrote the patient's record
	// number beside the reference); another identifier may not, by PUT or
	// by patch.
	stored := map[string]any{"resourceType": "Observation", "id": "ehr-1", "status": "preliminary", "code": map[string]any{"text": "x"},
		"subject": map[string]any{"reference": "Patient/p1", "identifier": map[string]any{"system": "urn:mrn", "value": "1"}}}
	f.up.mu.Lock()
	f.up.resources["Observation/ehr-1"] = stored
	f.up.mu.Unlock()
	back := `{"resourceType":"Observation","id":"ehr-1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1","identifier":{"system":"urn:mrn","value":"1"}}}`
	if r := f.do("PUT", "/Observation/ehr-1", app, back); r.status != http.StatusOK {
		t.Errorf("sent back as read: %d %s", r.status, r.raw)
	}
	f.up.reset()
	for name, c := range map[string]struct{ method, body, contentType string }{
		"PUT":   {"PUT", strings.Replace(back, `"value":"1"`, `"value":"2"`, 1), ""},
		"patch": {"PATCH", `[{"op":"replace","path":"/subject/identifier/value","value":"2"}]`, "application/json-patch+json"},
	} {
		var hdr []string
		if c.contentType != "" {
			hdr = []string{"Content-Type", c.contentType}
		}
		r := f.do(c.method, "/Observation/ehr-1", app, c.body, hdr...)
		for _, got := range f.up.requests() {
			if got.Method != "GET" {
				t.Errorf("%s: the upstream got a %s", name, got.Method)
			}
		}
		if r.status != http.StatusForbidden {
			t.Errorf("%s of another identifier: %d %s", name, r.status, r.raw)
		}
		f.up.reset()
	}
}

// TestLogicalRecordReferences: with patient context, a logical reference
// to a record of the compartment's types (an Observation's encounter by
// its visit number) must name by its identifier records on this server
// that are all the patient's and that the token may see. Found by
// probing: a patient app filed p1's Observation under another patient's
// encounter by that encounter's visit number, so that a search by
// encounter:identifier finds it in that patient's visit. Another
// patient's record, one shared by both, a withheld one and none are
// refused alike (403), with nothing written; a reference that does not
// say its type where several are admitted is refused; another type's (a
// practitioner's NPI) goes unread.
func TestLogicalRecordReferences(t *testing.T) {
	f := newFixture(t)
	enc := func(id, patient, visit string, labels ...string) map[string]any {
		r := map[string]any{"resourceType": "Encounter", "id": id, "status": "finished", "class": map[string]any{"code": "AMB"},
			"subject": map[string]any{"reference": "Patient/" + patient}, "identifier": []any{map[string]any{"system": "urn:visit", "value": visit}}}
		if labels != nil {
			r["meta"] = map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": labels[0]}}}
		}
		return r
	}
	f.up.mu.Lock()
	for _, e := range []map[string]any{enc("e1", "p1", "V1"), enc("e2", "p2", "V2"), enc("e3", "p1", "SHARED"), enc("e4", "p2", "SHARED"), enc("e5", "p1", "V5", "R")} {
		f.up.resources["Encounter/"+e["id"].(string)] = e
	}
	f.up.mu.Unlock()
	app := f.token("launch/patient patient/Observation.cruds patient/Encounter.rs", nil)
	obsWith := func(extra string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}` + extra + `}`
	}
	visit := func(v string) string { return `"identifier":{"system":"urn:visit","value":"` + v + `"}` }
	for name, c := range map[string]struct{ tok, body string }{
		"another patient's encounter":                   {app, obsWith(`,"encounter":{` + visit("V2") + `}`)},
		"one no record carries":                         {app, obsWith(`,"encounter":{` + visit("NONE") + `}`)},
		"one both patients' records carry":              {app, obsWith(`,"encounter":{` + visit("SHARED") + `}`)},
		"the patient's, beyond its clearance":           {app, obsWith(`,"encounter":{` + visit("V5") + `}`)},
		"its own by reference, another's by identifier": {app, obsWith(`,"encounter":{"reference":"Encounter/e1",` + visit("V2") + `}`)},
		"without a system":                              {app, obsWith(`,"encounter":{"identifier":{"value":"V1"}}`)},
		"a type not said":                               {app, obsWith(`,"basedOn":[{"identifier":{"system":"urn:placer","value":"1"}}]`)},
		"in an extension, typed":                        {app, obsWith(`,"extension":[{"url":"http://example.org/x","valueReference":{"type":"Encounter",` + visit("V2") + `}}]`)},
	} {
		r := f.do("POST", "/Observation", c.tok, c.body)
		if r.status != http.StatusForbidden || !strings.Contains(diagnostics(r), "must name this patient's records") {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	if r := f.do("POST", "/", app, `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Observation"},"resource":`+
		obsWith(`,"encounter":{`+visit("V2")+`}`)+`}]}`); r.status != http.StatusForbidden {
		t.Errorf("in a transaction: %d %s", r.status, r.raw)
	}
	f.onlyReads("in a transaction")
	// A token that may not read encounters is refused without a search.
	writer := f.token("launch/patient patient/Observation.c", nil)
	if r := f.do("POST", "/Observation", writer, obsWith(`,"encounter":{`+visit("V1")+`}`)); r.status != http.StatusForbidden || len(f.up.requests()) != 0 {
		t.Errorf("a token without Encounter read: %d, %d upstream requests: %s", r.status, len(f.up.requests()), r.raw)
	}
	f.up.reset()
	// The patient's own encounter by its visit number goes, alone or beside
	// its reference; a transaction searches each identifier once; what
	// the stored version holds may be sent back.
	for name, body := range map[string]string{
		"its own encounter":             obsWith(`,"encounter":{` + visit("V1") + `}`),
		"beside its reference":          obsWith(`,"encounter":{"reference":"Encounter/e1","type":"Encounter",` + visit("V1") + `}`),
		"a practitioner by its NPI":     obsWith(`,"performer":[{"type":"Practitioner","identifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"1"}}]`),
		"in an extension, by reference": obsWith(`,"extension":[{"url":"http://example.org/x","valueReference":{"reference":"Encounter/e1",` + visit("V1") + `}}]`),
	} {
		r := f.do("POST", "/Observation", app, body)
		if got := f.up.requests(); r.status != http.StatusCreated || len(got) == 0 || got[len(got)-1].Method != "POST" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.up.reset()
	}
	own := obsWith(`,"encounter":{` + visit("V1") + `}`)
	if r := f.do("POST", "/", app, `{"resourceType":"Bundle","type":"transaction","entry":[`+
		`{"request":{"method":"POST","url":"Observation"},"resource":`+own+`},{"request":{"method":"POST","url":"Observation"},"resource":`+own+`}]}`); r.status != http.StatusOK {
		t.Errorf("a transaction of two: %d %s", r.status, r.raw)
	}
	if got := f.up.requests(); len(got) != 2 || got[0].URL.Path != "/Encounter" || got[1].Method != "POST" {
		t.Errorf("a transaction of two: %d upstream requests (want one search, then the transaction)", len(got))
	}
	f.up.reset()
	// Each identifier is searched once a write, and a write naming more
	// than 32 records by identifier is refused before any search (each
	// would be a search: an amplification otherwise).
	twice := obsWith(`,"encounter":{` + visit("V1") + `},"extension":[{"url":"http://example.org/x","valueReference":{"type":"Encounter",` + visit("V1") + `}}]`)
	if r := f.do("POST", "/Observation", app, twice); r.status != http.StatusCreated || len(f.up.requests()) != 2 {
		t.Errorf("one identifier twice: %d, %d upstream requests (want one search, then the create): %s", r.status, len(f.up.requests()), r.raw)
	}
	f.up.reset()
	var many []string
	for i := range 33 {
		many = append(many, `{"url":"http://example.org/x","valueReference":{"type":"Encounter",`+visit("V"+strconv.Itoa(100+i))+`}}`)
	}
	f.refused("33 records by identifier", f.do("POST", "/Observation", app, obsWith(`,"extension":[`+strings.Join(many, ",")+`]`)), http.StatusBadRequest)
	stored := map[string]any{}
	_ = json.Unmarshal([]byte(obsWith(`,"id":"ehr-3","encounter":{`+visit("V2")+`}`)), &stored)
	f.up.mu.Lock()
	f.up.resources["Observation/ehr-3"] = stored
	f.up.mu.Unlock()
	if r := f.do("PUT", "/Observation/ehr-3", app, mustJSON(stored)); r.status != http.StatusOK {
		t.Errorf("sent back as read: %d %s", r.status, r.raw)
	}
}

// TestContainedPatients: with patient context a written record contains
// no Patient. Found by probing: a patient app created an Observation for
// p1 whose performer was a contained Patient with another person's name
// and record number (#x): another person's record filed in p1's chart,
// shown to whoever reads it, and found by a search on that person's
// identifiers where the server indexes contained resources. A related
// person may be contained; an EHR-written contained Patient may be sent
// back as read; a token without patient context is not confined.
func TestContainedPatients(t *testing.T) {
	f := newFixture(t)
	app := f.token("launch/patient patient/Observation.cruds patient/Patient.rus", nil)
	other := `{"resourceType":"Patient","id":"x","identifier":[{"system":"urn:mrn","value":"2"}],"name":[{"family":"Two"}]}`
	with := func(contained, extra string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"contained":[` +
			contained + `],"performer":[{"reference":"#x"}]` + extra + `}`
	}
	patch := []string{"Content-Type", "application/json-patch+json"}
	for name, c := range map[string]struct {
		method, target, body string
		hdr                  []string
	}{
		"a create":          {"POST", "/Observation", with(other, ""), nil},
		"an update":         {"PUT", "/Observation/lab-1", strings.Replace(with(other, ""), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"lab-1",`, 1), nil},
		"a JSON Patch":      {"PATCH", "/Observation/lab-1", `[{"op":"add","path":"/contained","value":[` + other + `]}]`, patch},
		"the patient's own": {"PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"One"}],"identifier":[{"system":"urn:mrn","value":"1"}],"contained":[` + other + `]}`, nil},
		"in a transaction":  {"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Observation"},"resource":` + with(other, "") + `}]}`, nil},
	} {
		r := f.do(c.method, c.target, app, c.body, c.hdr...)
		if r.status != http.StatusForbidden || !strings.Contains(diagnostics(r), "contains no Patient") {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	stored := map[string]any{}
	_ = json.Unmarshal([]byte(with(other, `,"id":"ehr-2"`)), &stored)
	f.up.mu.Lock()
	f.up.resources["Observation/ehr-2"] = stored
	f.up.mu.Unlock()
	user := f.token("user/Observation.cruds", everyLabel())
	for name, c := range map[string]struct{ method, target, tok, body string }{
		"a related person":        {"POST", "/Observation", app, with(`{"resourceType":"RelatedPerson","id":"x","patient":{"reference":"Patient/p1"},"name":[{"family":"Kin"}]}`, "")},
		"sent back as read":       {"PUT", "/Observation/ehr-2", app, mustJSON(stored)},
		"without patient context": {"POST", "/Observation", user, with(other, "")},
	} {
		if r := f.do(c.method, c.target, c.tok, c.body); r.status != http.StatusCreated && r.status != http.StatusOK {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.up.reset()
	}
}

// TestForeignReferences: Patient/p1 on another FHIR server is another
// person. An absolute reference places a resource in p1's compartment only
// on a base this server is known by (the upstream's, the proxy's public
// base, the token's audience): a record about another server's p1 reads
// as missing, a write naming one is refused, and so is a search.
func TestForeignReferences(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.crs", nil)
	about := func(ref string) map[string]any {
		r := obs("x", "p1", "laboratory")
		r["subject"] = map[string]any{"reference": ref}
		delete(r, "id")
		return r
	}
	foreign := []string{"https://other.example/fhir/Patient/p1", "https://other.example/Patient/p1?x=/Patient/p1", "x://Patient/p1",
		strings.Replace(f.up.ts.URL, "127.0.0.1", "localhost", 1) + "/Patient/p1"}
	for _, ref := range foreign {
		f.refused("a write about "+ref, f.do("POST", "/Observation", tok, mustJSON(about(ref))), http.StatusForbidden)
		f.refused("a search for "+ref, f.do("GET", "/Observation?subject="+url.QueryEscape(ref), tok, ""), http.StatusForbidden)
	}
	for _, ref := range []string{f.up.ts.URL + "/Patient/p1", f.base + "/Patient/p1"} {
		if r := f.do("POST", "/Observation", tok, mustJSON(about(ref))); r.status != http.StatusCreated {
			t.Errorf("a write about %s: %d %s", ref, r.status, r.raw)
		}
		f.up.reset()
	}
	ext := about(foreign[0])
	ext["id"] = "ext-1"
	f.up.resources["Observation/ext-1"] = ext
	local := about(f.up.ts.URL + "/Patient/p1")
	local["id"] = "loc-1"
	f.up.resources["Observation/loc-1"] = local
	missing := f.do("GET", "/Observation/nope", tok, "")
	if r := f.do("GET", "/Observation/ext-1", tok, ""); r.status != missing.status || r.raw != missing.raw {
		t.Errorf("a record about another server's p1: %d %s", r.status, r.raw)
	}
	if r := f.do("GET", "/Observation/loc-1", tok, ""); r.status != http.StatusOK {
		t.Errorf("a record about p1 on the upstream's base: %d %s", r.status, r.raw)
	}
}

// TestBatchResponseOracle: in a batch response, another patient's record
// takes the place of its entry as a missing one would, byte for byte.
func TestBatchResponseOracle(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs", nil)
	r := f.do("POST", "/", tok, `{"resourceType":"Bundle","type":"batch","entry":[
		{"request":{"method":"GET","url":"Observation/lab-1"}},
		{"request":{"method":"GET","url":"Observation/lab-2"}},
		{"request":{"method":"GET","url":"Observation/nope"}},
		{"request":{"method":"GET","url":"Observation/psy-1"}}]}`)
	entries, _ := r.body["entry"].([]any)
	if r.status != 200 || len(entries) != 4 {
		t.Fatalf("%d, %d entries: %s", r.status, len(entries), r.raw)
	}
	if !strings.Contains(mustJSON(entries[0]), `"lab-1"`) {
		t.Errorf("the own record: %s", mustJSON(entries[0]))
	}
	other, missing, labelled := mustJSON(entries[1]), mustJSON(entries[2]), mustJSON(entries[3])
	if other != missing || labelled != missing || !strings.Contains(missing, "404") {
		t.Errorf("another patient's record %s, a labelled one %s, a missing one %s", other, labelled, missing)
	}
	if strings.Contains(r.raw, "lab-2") || strings.Contains(r.raw, "HAPI") || strings.Contains(r.raw, "REDACTED") {
		t.Errorf("the batch response tells the entries apart: %s", r.raw)
	}
	// A conditional read entry: the server answers 304, without the
	// resource, for a record that exists in the version named, whoever's
	// it is. Where the answer is judged the entry is refused (the proxy
	// evaluates conditions on a read of its own); where it is not, it
	// passes to the server.
	cond := func(tok, id string) result {
		f.up.reset()
		return f.do("POST", "/", tok, `{"resourceType":"Bundle","type":"batch","entry":[
			{"request":{"method":"GET","url":"Observation/`+id+`","ifNoneMatch":"W/\"1\""}}]}`)
	}
	for _, tok := range []string{tok, f.token("user/Observation.rs", nil)} {
		other, missing := cond(tok, "lab-2"), cond(tok, "nope")
		if other.status != missing.status || other.raw != missing.raw {
			t.Errorf("a conditional read of a withheld record %d %s, of a missing one %d %s", other.status, other.raw, missing.status, missing.raw)
		}
		if labelled := cond(tok, "psy-1"); labelled.raw != missing.raw {
			t.Errorf("a conditional read of a labelled record %d %s, of a missing one %s", labelled.status, labelled.raw, missing.raw)
		}
		f.refused("a conditional read entry", missing, http.StatusForbidden)
	}
	system := f.token("system/Observation.rs", everyLabel())
	if r := cond(system, "lab-2"); r.status != http.StatusOK || !strings.Contains(r.raw, "304") {
		t.Errorf("a conditional read entry nothing judges: %d %s", r.status, r.raw)
	}
	// An upstream that answers a read "found" without the resource: the
	// entry reads as missing, since what the access may not see exists.
	f.up.coy = true
	read := func(id string) string {
		r := f.do("POST", "/", tok, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/`+id+`"}}]}`)
		return r.raw
	}
	if other, missing := read("lab-2"), read("nope"); other != missing {
		t.Errorf("a read answered found without its resource %s, a missing one %s", other, missing)
	}
}

// TestTransactionWritesStayAnswered: in a transaction (or batch) response,
// a write whose stored result the token may not read (a create-only
// scope, with Prefer: return=representation) keeps its answer — status
// and location, not the resource — as a single write does; a read the
// token may not see is still the not-found entry.
func TestTransactionWritesStayAnswered(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[
			{"resource":%s,"response":{"status":"201 Created","location":"Observation/new-1/_history/1"}},
			{"resource":%s,"response":{"status":"200 OK"}}]}`, mustJSON(obs("new-1", "p1", "laboratory")), mustJSON(obs("lab-1", "p1", "laboratory")))
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	tok := f.token("user/Observation.c user/Patient.rs", everyLabel())
	r := f.do("POST", "/", tok, `{"resourceType":"Bundle","type":"transaction","entry":[
		{"request":{"method":"POST","url":"Observation"},"resource":`+mustJSON(map[string]any{"resourceType": "Observation", "status": "final",
		"code": map[string]any{"text": "x"}, "subject": map[string]any{"reference": "Patient/p1"}})+`},
		{"request":{"method":"GET","url":"Patient/p1"}}]}`, "Prefer", "return=representation")
	entries, _ := r.body["entry"].([]any)
	if r.status != 200 || len(entries) != 2 {
		t.Fatalf("%d: %s", r.status, r.raw)
	}
	created, read := mustJSON(entries[0]), mustJSON(entries[1])
	if !strings.Contains(created, `"201 Created"`) || !strings.Contains(created, "Observation/new-1/_history/1") || strings.Contains(created, `"resource"`) {
		t.Errorf("the create's entry: %s", created)
	}
	if !strings.Contains(read, "404") || strings.Contains(read, "lab-1") {
		t.Errorf("the read's entry: %s", read)
	}
}

// TestHistoryVariants: a vread or a history of a resource that once
// belonged to another patient shows only the versions in the compartment;
// a withheld version looks like a missing one.
func TestHistoryVariants(t *testing.T) {
	f := newFixture(t)
	// lab-1 was recorded against p2 by mistake, then moved to p1.
	f.up.versions = map[string][]map[string]any{"Observation/lab-1": {obs("lab-1", "p2", "laboratory")}}
	tok := f.token("launch/patient patient/Observation.rs", nil)
	old := f.do("GET", "/Observation/lab-1/_history/1", tok, "")
	missing := f.do("GET", "/Observation/lab-1/_history/9", tok, "")
	if old.status != 404 || old.raw != missing.raw {
		t.Errorf("a version from before the move: %d %s (missing: %d %s)", old.status, old.raw, missing.status, missing.raw)
	}
	if r := f.do("GET", "/Observation/lab-1/_history/2", tok, ""); r.status != 200 || !strings.Contains(r.raw, "Patient/p1") {
		t.Errorf("the current version: %d %s", r.status, r.raw)
	}
	r := f.do("GET", "/Observation/lab-1/_history", tok, "")
	if r.status != 200 || strings.Contains(r.raw, "Patient/p2") || !strings.Contains(r.raw, "Patient/p1") {
		t.Errorf("instance history: %d %s", r.status, r.raw)
	}
	if _, ok := r.body["total"]; ok {
		t.Errorf("instance history: a total counting the withheld version: %s", r.raw)
	}
	f.up.reset()
	// Another patient's record has a history exactly like a missing one's,
	// also when its history holds a deletion.
	f.up.versions["Observation/lab-2"] = []map[string]any{obs("lab-2", "p2", "laboratory"), {"deleted": true}}
	for _, v := range []string{"", "/1", "/2", "/3"} {
		hidden := f.do("GET", "/Observation/lab-2/_history"+v, tok, "")
		absent := f.do("GET", "/Observation/nope/_history"+v, tok, "")
		if hidden.status != 404 || hidden.raw != absent.raw {
			t.Errorf("history%s of another patient's record: %d %s, of a missing one: %d %s", v, hidden.status, hidden.raw, absent.status, absent.raw)
		}
	}
	f.up.reset()
	for _, target := range []string{"/_history", "/Observation/_history", "/Patient/p2/_history"} {
		f.refused(target, f.do("GET", target, tok, ""), 403)
	}
}

// TestConditionalCreateAndUpsert: If-None-Exist criteria search the whole
// type, so they are parsed strictly, need the s letter, and are resolved
// by the proxy (TestConditionalWrites; in a batch,
// TestBatchedConditionalWrites), never forwarded; and with patient context
// a PUT to a free id answers as one to another patient's record does.
func TestConditionalCreateAndUpsert(t *testing.T) {
	f := newFixture(t)
	patient := f.token("launch/patient patient/Observation.cruds", nil)
	own := mustJSON(obs("x", "p1", "laboratory"))

	createOnly := f.token("user/Observation.c", nil)
	f.refused("conditional create without s", f.do("POST", "/Observation", createOnly, own, "If-None-Exist", "identifier=a"), 403)
	f.refused("conditional create without s, batched", f.do("POST", "/", createOnly, `{"resourceType":"Bundle","type":"batch","entry":[
		{"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=a"},"resource":`+own+`}]}`), 403)
	user := f.token("user/Observation.cs", nil)
	for name, v := range map[string]string{"bad escape": "identifier=%zz", "semicolon": "identifier=a;b", "empty": "&"} {
		f.refused(name, f.do("POST", "/Observation", user, own, "If-None-Exist", v), 400)
	}
	f.refused("on a search", f.do("GET", "/Observation?code=1", user, "", "If-None-Exist", "identifier=a"), 400)
	// The proxy searches the criteria, re-encoded, and creates when they
	// match nothing: the server is not asked to match them again.
	cleared := f.token("user/Observation.cs", everyLabel())
	if r := f.do("POST", "/Observation", cleared, own, "If-None-Exist", "identifier=urn:mrn|2"); r.status != 201 {
		t.Errorf("conditional create: %d %s", r.status, r.raw)
	}
	if got := f.up.requests(); len(got) != 2 || got[0].URL.RawQuery != "identifier=urn%3Amrn%7C2&_count=101" ||
		got[1].Method != "POST" || got[1].Header["If-None-Exist"] != nil {
		t.Errorf("conditional create forwarded as %v", got)
	}
	f.up.reset()
	// Criteria within the limit as sent, over it re-encoded (each | as %7C).
	f.refused("If-None-Exist too long re-encoded", f.do("POST", "/Observation", cleared, own, "If-None-Exist", "identifier="+strings.Repeat("|", 3<<10)), 400)

	taken := f.do("PUT", "/Observation/lab-2", patient, mustJSON(obs("lab-2", "p1", "laboratory")))
	free := f.do("PUT", "/Observation/fresh", patient, mustJSON(obs("fresh", "p1", "laboratory")))
	if taken.status != 404 || free.status != taken.status || free.raw != taken.raw {
		t.Errorf("PUT to another patient's id: %d %s; to a free id: %d %s", taken.status, taken.raw, free.status, free.raw)
	}
	for _, g := range f.up.requests() {
		if g.Method != "GET" {
			t.Errorf("a %s reached the upstream", g.Method)
		}
	}
}

// TestEncodedQueryValues: an encoded slash is refused in the path but is
// data in a query value (a reference searched for, as url.Values encodes
// it, and as the proxy's own injected parameters come back in paging
// links), judged after decoding like any other value.
func TestEncodedQueryValues(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/*.rs", nil)
	for _, target := range []string{"/Observation?subject=Patient%2Fp1", "/Observation?patient=Patient%2fp1&_count=2", "/Observation?code=a%5Cb"} {
		r := f.do("GET", target, tok, "")
		got := f.up.requests()
		if r.status != 200 || len(got) != 1 || got[0].URL.Path != "/Observation" {
			t.Errorf("%s: %d, forwarded %v: %.200s", target, r.status, got, r.raw)
		}
		f.up.reset()
	}
	f.refused("encoded slash naming another patient", f.do("GET", "/Observation?subject=Patient%2Fp2", tok, ""), 403)
	f.refused("encoded slash in the path", f.do("GET", "/Observation%2Flab-1", tok, ""), 400)
	f.refused("encoded backslash in the path", f.do("GET", "/Observation%5Clab-1", tok, ""), 400)
}

// TestConditionalRead: an inspected read's conditions are evaluated by the
// proxy on the judged answer, so a 304 never speaks for a record the token
// may not see; an uninspected read passes them on and the upstream's 304
// through.
func TestConditionalRead(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs", nil)
	missing := f.do("GET", "/Observation/nope", tok, "", "If-None-Match", `W/"1"`)
	for _, c := range []struct {
		path, header, value string
		status              int
	}{
		{"/Observation/lab-1", "If-None-Match", `W/"1"`, 304},
		{"/Observation/lab-1", "If-None-Match", `"1"`, 304},
		{"/Observation/lab-1", "If-None-Match", `W/"7", W/"1"`, 304},
		{"/Observation/lab-1", "If-None-Match", `*`, 304},
		{"/Observation/lab-1", "If-None-Match", `W/"2"`, 200},
		{"/Observation/lab-1", "If-Modified-Since", "Tue, 03 Nov 2026 10:00:00 GMT", 304},
		{"/Observation/lab-1", "If-Modified-Since", "Sun, 01 Nov 2026 10:00:00 GMT", 200},
		{"/Observation/lab-2", "If-None-Match", `W/"1"`, 404},
		{"/Observation/lab-2", "If-None-Match", `*`, 404},
		{"/Observation/lab-2", "If-Modified-Since", "Tue, 03 Nov 2026 10:00:00 GMT", 404},
		{"/Observation/psy-1", "If-None-Match", `W/"1"`, 404}, // beyond the clearance
	} {
		r := f.do("GET", c.path, tok, "", c.header, c.value)
		if r.status != c.status {
			t.Errorf("%s %s: %s: %d, want %d: %.200s", c.path, c.header, c.value, r.status, c.status, r.raw)
		}
		switch r.status {
		case 304:
			if r.raw != "" || r.header.Get("Etag") == "" || r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s: %s: 304 with body %q, headers %v", c.path, c.header, c.value, r.raw, r.header)
			}
		case 404:
			if r.raw != missing.raw {
				t.Errorf("%s %s: %s: %s, a missing record's: %s", c.path, c.header, c.value, r.raw, missing.raw)
			}
		}
		for _, g := range f.up.requests() {
			if g.Header.Get("If-None-Match") != "" || g.Header.Get("If-Modified-Since") != "" {
				t.Errorf("%s %s: the condition reached the upstream", c.path, c.header)
			}
		}
		f.up.reset()
	}
	// Uninspected (a system/ token with every label): the upstream decides.
	sys := f.token("system/Observation.rs", everyLabel())
	if r := f.do("GET", "/Observation/lab-2", sys, "", "If-None-Match", `W/"1"`); r.status != 304 {
		t.Errorf("uninspected conditional read: %d %s", r.status, r.raw)
	}
	if got := f.up.requests(); len(got) != 1 || got[0].Header.Get("If-None-Match") != `W/"1"` {
		t.Errorf("uninspected conditional read forwarded as %v", got)
	}
}

// TestLinksMoveOntoTheProxyBase: with Proxy.Base set, the upstream's
// paging links, fullUrls and Location come back on the proxy's base, are
// followed through the proxy and authorised there, and the upstream's
// address is not disclosed; without it they pass as written.
func TestLinksMoveOntoTheProxyBase(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.cruds", nil)
	r := f.do("GET", "/Observation?_count=1", tok, "")
	if !strings.Contains(r.raw, f.up.ts.URL) {
		t.Fatalf("without Base, the upstream's links should pass as written: %.300s", r.raw)
	}
	f.up.reset()

	f = newFixture(t)
	f.proxy.Base = f.base
	tok = f.token("launch/patient patient/Observation.cruds", nil)
	sys := f.token("system/Observation.rs", everyLabel())
	for _, c := range []struct{ name, tok, target string }{
		{"patient search", tok, "/Observation?_count=1"},
		{"patient search losing entries", tok, "/Observation?_count=5&_include=Observation:performer"},
		{"uninspected system search", sys, "/Observation?_count=1"},
	} {
		r := f.do("GET", c.target, c.tok, "")
		if r.status != 200 || strings.Contains(r.raw, f.up.ts.URL) {
			t.Errorf("%s: %d, the upstream's address in %.400s", c.name, r.status, r.raw)
		}
		next := r.next()
		if !strings.HasPrefix(next, f.base+"/Observation?") {
			t.Fatalf("%s: next link %q", c.name, next)
		}
		for _, e := range r.body["entry"].([]any) {
			if u, _ := e.(map[string]any)["fullUrl"].(string); u != "" && !strings.HasPrefix(u, f.base+"/") {
				t.Errorf("%s: fullUrl %q", c.name, u)
			}
		}
		f.up.reset()
		// Following it goes through the proxy, which authorises it afresh.
		page := f.do("GET", strings.TrimPrefix(next, f.base), c.tok, "")
		if got := f.up.requests(); page.status != 200 || len(got) != 1 || got[0].URL.Query().Get("ct") != "page-2" {
			t.Errorf("%s: following next: %d, forwarded %v", c.name, page.status, got)
		}
		f.up.reset()
	}
	f.refused("a next link edited to name another patient",
		f.do("GET", "/Observation?_count=1&patient=Patient%2Fp2&ct=page-2", tok, ""), 403)
	created := f.do("POST", "/Observation", tok, mustJSON(obs("x", "p1", "laboratory")))
	if loc := created.header.Get("Location"); created.status != 201 || loc != f.base+"/Observation/new-1/_history/1" {
		t.Errorf("create: %d, Location %q", created.status, loc)
	}
}

// TestSignedPageLinks: a server that pages with a token at its base (as
// HAPI does: [base]?_getpages=…) gets its page links signed for the grant,
// patient and type of the search; followed, the page is forwarded as the
// server wrote it and inspected like the search. A page link does not work
// for another grant, and cannot be edited.
func TestSignedPageLinks(t *testing.T) {
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.RequestURI())
		base := "http://" + r.Host
		w.Header().Set("Content-Type", "application/fhir+json")
		if r.URL.Query().Get("_getpages") == "" { // the first page
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"%s?_getpages=abc&_getpagesoffset=1&_count=1"}],
				"entry":[{"fullUrl":"%s/Observation/a","resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"}}}]}`, base, base)
			return
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"%s?_getpages=abc&_getpagesoffset=2&_count=1"}],
			"entry":[{"resource":{"resourceType":"Observation","id":"b","subject":{"reference":"Patient/p1"}}},
			{"resource":{"resourceType":"Observation","id":"c","subject":{"reference":"Patient/p2"}}}]}`, base)
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	f.proxy.Base = f.base
	// Two tokens of one grant: the first, and one refreshed to narrower scopes.
	mint := func(scope string) string {
		tok, err := f.srv.Mint(context.Background(), "", smart.Grant{ID: "g-paging", ClientID: "app", UserID: "u1", FHIRUser: "Practitioner/dr",
			Scope: scope, Context: launch.Context{Patient: "p1"}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tok := mint("launch/patient patient/Observation.rs")
	narrower := mint("launch/patient patient/Observation.rs?category=laboratory")
	first := f.do("GET", "/Observation?_count=1", tok, "")
	link := first.next()
	if first.status != 200 || !strings.HasPrefix(link, f.base+"?_page=") || strings.Contains(first.raw, up.URL) {
		t.Fatalf("first page: %d, next %q: %.300s", first.status, link, first.raw)
	}
	got = nil
	page := f.do("GET", strings.TrimPrefix(link, f.base), tok, "")
	if page.status != 200 || len(got) != 1 || got[0] != "/?_getpages=abc&_getpagesoffset=1&_count=1" {
		t.Fatalf("second page: %d, forwarded %q: %.300s", page.status, got, page.raw)
	}
	if !strings.Contains(page.raw, `"b"`) || strings.Contains(page.raw, `"c"`) || !strings.HasPrefix(page.next(), f.base+"?_page=") {
		t.Errorf("second page not inspected as the search: %s", page.raw)
	}
	got = nil
	other := f.token("launch/patient patient/Observation.rs", nil) // another grant, the same patient
	for name, target := range map[string]string{
		"another grant's token": strings.TrimPrefix(link, f.base),
		"narrower scopes":       strings.TrimPrefix(link, f.base),
		"an edited link":        strings.TrimPrefix(link, f.base)[:len(link)-len(f.base)-3] + "AAA",
		"a forged link":         "?_page=eyJVcHN0cmVhbSI6Ij9fZ2V0cGFnZXM9eHl6In0.AAAA",
	} {
		bearer := tok
		switch name {
		case "another grant's token":
			bearer = other
		case "narrower scopes": // the page continues a search authorised for broader ones
			bearer = narrower
		}
		r := f.do("GET", target, bearer, "")
		if r.status != 400 || len(got) != 0 {
			t.Errorf("%s: %d, forwarded %q", name, r.status, got)
		}
	}
}

// TestUpstreamResponseHeaders: of the upstream's response headers only
// those that describe the answer reach the client: no cookie lands on the
// proxy's origin, no Alt-Svc or Link leads elsewhere, nothing discloses the
// upstream, and no trailer follows.
func TestUpstreamResponseHeaders(t *testing.T) {
	f := newFixture(t)
	f.up.header = http.Header{
		"Set-Cookie": {"JSESSIONID=upstream; Path=/"}, "Alt-Svc": {`h3=":443"`}, "Link": {"</Patient/p2>; rel=preload"},
		"Server": {"HAPI FHIR 7.0"}, "X-Powered-By": {"HAPI"}, "Strict-Transport-Security": {"max-age=0"},
		"X-Internal-Path": {"/var/lib/fhir"}, "Trailer": {"X-Checksum"}, "X-Request-Id": {"req-7"},
		"Date": {"Mon, 01 Jan 2001 00:00:00 GMT"}, // the upstream's clock: the answer is the proxy's, dated by it
	}
	tok := f.token("launch/patient patient/Observation.cruds", nil)
	sys := f.token("system/Observation.rs", everyLabel())
	for name, r := range map[string]result{
		"inspected read":   f.do("GET", "/Observation/lab-1", tok, ""),
		"uninspected read": f.do("GET", "/Observation/lab-1", sys, ""),
		"search":           f.do("GET", "/Observation", tok, ""),
		"create":           f.do("POST", "/Observation", tok, mustJSON(obs("x", "p1", "laboratory"))),
		"metadata":         f.do("GET", "/metadata", "", ""),
	} {
		for _, k := range []string{"Set-Cookie", "Alt-Svc", "Link", "Server", "X-Powered-By", "Strict-Transport-Security", "X-Internal-Path", "Trailer"} {
			if v := r.header.Values(k); len(v) > 0 {
				t.Errorf("%s (%d): %s passed on: %q", name, r.status, k, v)
			}
		}
		if r.header.Get("Content-Type") == "" || r.header.Get("X-Request-Id") != "req-7" {
			t.Errorf("%s (%d): the answer's own headers were lost: %v", name, r.status, r.header)
		}
		if d, err := http.ParseTime(r.header.Get("Date")); err != nil || d.Year() < 2020 {
			t.Errorf("%s (%d): Date %q, want the proxy's own", name, r.status, r.header.Get("Date"))
		}
	}
	if r := f.do("GET", "/Observation/lab-1", tok, ""); r.header.Get("Etag") == "" || r.header.Get("Last-Modified") == "" {
		t.Errorf("validators lost: %v", r.header)
	}
}

// TestCountCeiling: a page size over Limits.MaxCount is lowered to it,
// whether in the query or a POST _search form; one that is not a
// non-negative integer is refused.
func TestCountCeiling(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs", nil)
	for _, q := range []string{"_count=1000000", "_count=1001&_count=5"} {
		r := f.do("GET", "/Observation?"+q, tok, "")
		got := f.up.requests()
		if r.status != 200 || len(got) != 1 || got[0].URL.Query()["_count"][0] != "1000" {
			t.Errorf("%s: %d, forwarded %v", q, r.status, got)
		}
		f.up.reset()
	}
	r := f.do("POST", "/Observation/_search", tok, "_count=99999", "Content-Type", "application/x-www-form-urlencoded")
	if got := f.up.requests(); r.status != 200 || len(got) != 1 || !strings.Contains(f.up.bodies[0], "_count=1000&") && !strings.HasSuffix(f.up.bodies[0], "_count=1000") {
		t.Errorf("POST _search: %d, forwarded %q", r.status, f.up.bodies)
	}
	f.up.reset()
	for _, q := range []string{"_count=abc", "_count=-1", "_count=1e3", "_count="} {
		f.refused(q, f.do("GET", "/Observation?"+q, tok, ""), 400)
	}
}

// TestConcurrentRequests: requests served at once, through pooled
// exchanges, each get exactly their own answer (run with -race).
func TestConcurrentRequests(t *testing.T) {
	f := newFixture(t)
	f.up.forgetful = true
	f.proxy.Base = f.base
	tok := f.token("launch/patient patient/Observation.rs", nil)
	missing := f.do("GET", "/Observation/nope", tok, "").raw
	check := func(i int) error {
		switch i % 4 {
		case 0:
			if r := f.do("GET", "/Observation/lab-1", tok, ""); r.status != 200 || r.body["id"] != "lab-1" || r.header.Get("Cache-Control") != "no-store" {
				return fmt.Errorf("own read: %d %.100s", r.status, r.raw)
			}
		case 1:
			if r := f.do("GET", "/Observation/lab-2", tok, ""); r.status != 404 || r.raw != missing {
				return fmt.Errorf("another's read: %d %.100s", r.status, r.raw)
			}
		case 2:
			if r := f.do("GET", "/Observation?_count=3", tok, ""); r.status != 200 || strings.Contains(r.raw, "Patient/p2") || strings.Contains(r.raw, f.up.ts.URL) {
				return fmt.Errorf("search: %d %.200s", r.status, r.raw)
			}
		case 3:
			r := f.do("POST", "/", tok, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/lab-2"}},{"request":{"method":"GET","url":"Observation/lab-1"}}]}`)
			if entries, _ := r.body["entry"].([]any); r.status != 200 || len(entries) != 2 || !strings.Contains(mustJSON(entries[1]), `"lab-1"`) {
				return fmt.Errorf("batch: %d %.200s", r.status, r.raw)
			}
		}
		return nil
	}
	concurrently(t, 8, 40, func(w, i int) error { return check(w + i) })
}

// concurrently runs check for each of workers × each requests, the
// workers at once, and reports each worker's first error.
func concurrently(t *testing.T, workers, each int, check func(worker, i int) error) {
	t.Helper()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := check(w, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestConcurrentPatients: two patients' apps, and a clinician's whose
// clearance withholds the psychotherapy note, served at once through the
// pooled exchanges, memos and caches: each answer holds only what its own
// token may see, in reads, searches with includes, batches and
// $everything (run with -race). State left over from another request (a
// patient, a clearance, a memo of what was judged) would show here.
func TestConcurrentPatients(t *testing.T) {
	f := newFixture(t)
	f.up.forgetful = true
	mint := func(patient string) string {
		tok, err := f.srv.Mint(context.Background(), "", smart.Grant{ClientID: "app-" + patient, Scope: "launch/patient patient/*.rs",
			UserID: "u-" + patient, Context: launch.Context{Patient: patient}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	type who struct{ tok, patient string }
	apps := []who{{mint("p1"), "p1"}, {mint("p2"), "p2"}, {f.token("user/*.rs", nil), ""}}
	// seen: each record an answer holds, as Type/id with its subject.
	var seen func(r result) []map[string]any
	seen = func(r result) []map[string]any {
		if r.body["resourceType"] != "Bundle" {
			return []map[string]any{r.body}
		}
		var out []map[string]any
		entries, _ := r.body["entry"].([]any)
		for _, e := range entries {
			res, _ := e.(map[string]any)["resource"].(map[string]any)
			if res == nil {
				continue
			}
			if res["resourceType"] == "Bundle" { // a batched search
				out = append(out, seen(result{body: res})...)
				continue
			}
			out = append(out, res)
		}
		return out
	}
	var checked atomic.Int64 // records checked: the test checks something
	check := func(a who, i int) error {
		targets := []string{"/Observation/lab-1", "/Observation/lab-2", "/Observation?_include=Observation:subject", "/Patient/p1/$everything",
			"/Patient/p2/$everything", "/Observation/psy-1", "/Condition"}
		target := targets[i%len(targets)]
		r := f.do("GET", target, a.tok, "")
		if i%3 == 0 {
			r = f.do("POST", "/", a.tok, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"`+target[1:]+`"}}]}`)
		}
		if r.status >= 500 {
			return fmt.Errorf("%s by %q: %d %.200s", target, a.patient, r.status, r.raw)
		}
		if r.status != http.StatusOK {
			return nil
		}
		for _, res := range seen(r) {
			checked.Add(1)
			subject, _ := res["subject"].(map[string]any)
			ref, _ := subject["reference"].(string)
			switch {
			case res["id"] == "psy-1":
				return fmt.Errorf("%s by %q: the withheld note went out", target, a.patient)
			case a.patient == "":
			case res["resourceType"] == "Patient" && res["id"] != a.patient, ref != "" && ref != "Patient/"+a.patient:
				return fmt.Errorf("%s by %q: %s/%s of %s went out", target, a.patient, res["resourceType"], res["id"], ref)
			}
		}
		return nil
	}
	concurrently(t, 9, 42, func(w, i int) error { return check(apps[(w+i)%len(apps)], w+i) })
	if n := checked.Load(); n < 200 {
		t.Errorf("%d records checked", n)
	}
}

// TestWritesAreValidR4: a written resource must be valid against the R4
// base specification (after the security checks, which keep their codes);
// the refusal names where, not what.
func TestWritesAreValidR4(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.cruds", nil)
	subject := `"subject":{"reference":"Patient/p1"}`
	for name, body := range map[string]string{
		"a required element missing": `{"resourceType":"Observation","status":"final",` + subject + `}`,
		"an unknown element":         `{"resourceType":"Observation","status":"final","code":{"text":"x"},"sekret":"value-1",` + subject + `}`,
		"a code outside its set":     `{"resourceType":"Observation","status":"value-2","code":{"text":"x"},` + subject + `}`,
		"a malformed date":           `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"value-3",` + subject + `}`,
	} {
		r := f.do("POST", "/Observation", tok, body)
		f.refused(name, r, 400)
		if !strings.Contains(r.raw, "not valid FHIR R4") || strings.Contains(r.raw, "value-") {
			t.Errorf("%s: %s", name, r.raw)
		}
	}
	f.refused("an invalid update", f.do("PUT", "/Observation/lab-1", tok, `{"resourceType":"Observation","id":"lab-1","status":"final",`+subject+`}`), 400)
	user := f.token("user/Observation.cruds", nil)
	f.refused("an invalid resource in a transaction", f.do("POST", "/", user, `{"resourceType":"Bundle","type":"transaction","entry":[
		{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}}},
		{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final"}}]}`), 400)
	// Security refusals come first, with their own codes.
	f.refused("invalid and for another patient", f.do("POST", "/Observation", tok, `{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}`), 403)
	// Extensions, primitive extensions and contained resources are valid.
	valid := `{"resourceType":"Observation","status":"final","_status":{"extension":[{"url":"http://x.example/e","valueString":"y"}]},
		"extension":[{"url":"http://x.example/f","valueBoolean":true}],"contained":[{"resourceType":"Practitioner","id":"pr"}],
		"performer":[{"reference":"#pr"}],"code":{"text":"x"},` + subject + `}`
	if r := f.do("POST", "/Observation", tok, valid); r.status != 201 {
		t.Errorf("a valid resource with extensions: %d %s", r.status, r.raw)
	}
	// Concurrently (the parser is shared).
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if r := f.do("POST", "/Observation", tok, valid); r.status != 201 {
					t.Errorf("concurrent valid create: %d", r.status)
				}
			}
		})
	}
	wg.Wait()
}

// TestLabelInference: with a clearance short of every label, a search tells
// nothing of what the clearance withholds beyond the REDACTED mark of a
// page that lost entries: no criteria met by resources the proxy does not
// judge (Patient?_has:…:_security=PSY would name the patients with
// psychiatric records), no count or total counting withheld matches (a
// count is the proxy's own, of what the token may see:
// TestCountedByTheProxy).
func TestLabelInference(t *testing.T) {
	f := newFixture(t)
	user := f.token("user/*.rs", nil) // normal clearance: labels judged
	patient := f.token("launch/patient patient/*.rs", nil)
	cleared := f.token("user/*.rs", everyLabel())
	psy := url.QueryEscape("http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY")
	searches := []string{
		"/Patient?_has:Observation:subject:_security=" + psy,
		"/Patient?_has:Observation:patient:_has:AuditEvent:entity:agent=x",
		"/Encounter?_has:Condition:encounter:code=F32",
		"/Observation?subject.name=One", // a chain of unnamed type (TestChainsResolved has those it resolves)
		"/Observation?encounter:Encounter.subject:Patient.name=One",
		"/Observation?_filter=" + url.QueryEscape("subject.name eq One"),
		"/Observation?_list=psy-list",
		"/Observation?_query=sensitive",
		// A chain's criteria are the proxy's own search of its target,
		// held to the same rules: found, the proxy resolved these over
		// every record (Patient?_has:…:_security=PSY named the patients
		// with psychiatric records, and the search then came back by them).
		"/Observation?patient._has:Observation:subject:_security=" + psy,
		"/Observation?subject:Patient._has:Observation:subject:_security=" + psy,
		"/Observation?patient._filter=" + url.QueryEscape("_security eq PSY"),
		"/Observation?encounter._list=psy-list", "/Observation?encounter._query=sensitive",
	}
	for _, target := range searches {
		f.refused(target, f.do("GET", target, user, ""), http.StatusForbidden)
	}
	f.refused("POST _search with _has", f.do("POST", "/Patient/_search", user, "_has:Observation:subject:_security="+psy,
		"Content-Type", "application/x-www-form-urlencoded"), http.StatusForbidden)
	f.refused("a batch entry with a chain", f.do("POST", "/", user,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?subject.name=One"}}]}`), http.StatusForbidden)
	for _, target := range []string{"/Observation?encounter:Encounter.subject=Patient/p2", "/Condition?encounter:Encounter.subject:Patient.name=Two",
		"/Observation?encounter._has:Condition:encounter:code=F32", "/Observation?encounter._filter=x"} {
		f.refused(target+" (patient)", f.do("GET", target, patient, ""), http.StatusForbidden)
	}
	// A clearance that releases every label withholds nothing: as asked.
	for _, target := range searches {
		r := f.do("GET", target, cleared, "")
		if got := f.up.requests(); r.status != 200 || len(got) != 1 {
			t.Errorf("%s with every label cleared: %d, forwarded %d", target, r.status, len(got))
		}
		f.up.reset()
	}

	// The total: only when the page is the whole result and nothing on it
	// was withheld. The test upstream pages (a next link) when asked _count.
	for _, c := range []struct {
		target, tok string
		total       any
	}{
		{"/Observation?category=vital-signs", user, 1.0},             // the whole result, nothing withheld
		{"/Observation?category=vital-signs&_count=5", user, nil},    // more pages: they may withhold
		{"/Observation?category=laboratory", user, nil},              // psy-1 withheld
		{"/Observation?category=vital-signs&_count=5", cleared, 1.0}, // nothing is withheld from it
		{"/Observation?_summary=count", cleared, 4.0},
		{"/Patient/p1/Observation?_summary=count", user, 2.0}, // the proxy's count: psy-1 withheld
		{"/Observation?_count=5", patient, nil},
	} {
		r := f.do("GET", c.target, c.tok, "")
		if r.status != 200 || r.body["total"] != c.total {
			t.Errorf("%s: %d, total %v, want %v: %.300s", c.target, r.status, r.body["total"], c.total, r.raw)
		}
		f.up.reset()
	}

	// The Bundle's meta, where servers put the high-water mark of the
	// matches' labels, goes on the same terms, and never with a removed
	// entry's labels.
	f.up.bundleMeta = map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}}}
	for _, c := range []struct {
		target, tok string
		meta        bool
	}{
		{"/Observation?category=vital-signs", user, true},
		{"/Observation?category=vital-signs&_count=5", user, false},
		{"/Observation?category=vital-signs&_count=5", cleared, true},
		// Patient/p2 and its record removed, which a server that ignores
		// the patient parameter brought.
		{"/Observation?_include=Observation:subject", f.token("launch/patient patient/*.rs", everyLabel()), false},
	} {
		f.up.misbehave = strings.Contains(c.target, "_include")
		r := f.do("GET", c.target, c.tok, "")
		if r.status != 200 || strings.Contains(r.raw, `"HIV"`) != c.meta {
			t.Errorf("%s: %d, the upstream's meta passed: %v, want %v: %.300s", c.target, r.status, !c.meta, c.meta, r.raw)
		}
		f.up.reset()
	}
}

// TestLabelledWrites: with a clearance short of every label, a write never
// touches a record the clearance withholds, nor tells one exists: an
// update (which would strip its labels), a patch or a delete of it answers
// the 404 a read of it gets, and so does one of a free id (in a batch,
// the Bundle's 403). Conditional writes, which the FHIR server would match
// against withheld records, are resolved by the proxy
// (TestConditionalWritesByLabels, TestBatchedConditionalWrites). Only the
// stored version's read reaches the upstream.
func TestLabelledWrites(t *testing.T) {
	f := newFixture(t)
	user := f.token("user/Observation.cruds", nil)
	stripped := mustJSON(obs("psy-1", "p1", "laboratory")) // psy-1 without its R and PSY labels
	patch := []string{"Content-Type", "application/json-patch+json"}
	var answers []string
	for _, c := range []struct {
		method, target, body string
		hdr                  []string
	}{
		{"PUT", "/Observation/psy-1", stripped, nil},
		{"PATCH", "/Observation/psy-1", `[{"op":"remove","path":"/meta"}]`, patch},
		{"DELETE", "/Observation/psy-1", "", nil},
		{"PUT", "/Observation/fresh", mustJSON(obs("fresh", "p1", "laboratory")), nil},
		{"PATCH", "/Observation/fresh", `[{"op":"remove","path":"/meta"}]`, patch},
		{"DELETE", "/Observation/fresh", "", nil},
	} {
		r := f.do(c.method, c.target, user, c.body, c.hdr...)
		if r.status != http.StatusNotFound {
			t.Errorf("%s %s: %d %s", c.method, c.target, r.status, r.raw)
		}
		answers = append(answers, r.raw)
		for _, g := range f.up.requests() {
			if g.Method != http.MethodGet {
				t.Errorf("%s %s: a %s reached the upstream", c.method, c.target, g.Method)
			}
		}
		f.up.reset()
	}
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Errorf("answers differ: %s and %s", answers[0], a)
		}
	}
	// Batched, an update or a delete is checked against the stored version
	// as on its own (TestBatchedWritesByLabels).
	for name, body := range map[string]string{
		"batched update": `{"resourceType":"Bundle","type":"batch","entry":[
			{"request":{"method":"PUT","url":"Observation/psy-1"},"resource":` + stripped + `}]}`,
		"batched delete": `{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"DELETE","url":"Observation/fresh"}}]}`,
	} {
		if r := f.do("POST", "/", user, body); r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}

	// What the clearance releases may be written over.
	if r := f.do("PUT", "/Observation/lab-1", user, mustJSON(obs("lab-1", "p1", "laboratory"))); r.status != 200 {
		t.Errorf("update of a record the token may read: %d %s", r.status, r.raw)
	}
	f.up.reset()
	cleared := f.token("user/Observation.cruds", everyLabel())
	if r := f.do("PUT", "/Observation/psy-1", cleared, mustJSON(obs("psy-1", "p1", "laboratory", "R", "PSY"))); r.status != 200 {
		t.Errorf("every label cleared, labels kept: %d", r.status)
	}
}

// TestLabelDowngrade: an update or patch may raise a record's security
// labels, never lower or remove them, whatever the token's clearance: an
// app cleared for a record could otherwise launder it to every app that is
// not. Nothing but the stored version's read reaches the upstream.
func TestLabelDowngrade(t *testing.T) {
	f := newFixture(t)
	boxed := obs("boxed", "p1", "laboratory")
	boxed["contained"] = []any{obs("inner", "p1", "laboratory", "PSY")}
	f.up.resources["Observation/boxed"] = boxed
	cleared := f.token("user/Observation.cruds", everyLabel())
	patient := f.token("launch/patient patient/Observation.cruds", everyLabel())
	patch := []string{"Content-Type", "application/json-patch+json"}
	for name, c := range map[string]struct {
		method, target, tok, body string
		hdr                       []string
	}{
		"a conditional update":     {"PUT", "/Observation?_id=psy-1", cleared, noID(obs("x", "p1", "laboratory")), nil},
		"a conditional patch":      {"PATCH", "/Observation?_id=psy-1", cleared, `[{"op":"remove","path":"/meta"}]`, patch},
		"labels removed":           {"PUT", "/Observation/psy-1", cleared, mustJSON(obs("psy-1", "p1", "laboratory")), nil},
		"a tag removed":            {"PUT", "/Observation/psy-1", cleared, mustJSON(obs("psy-1", "p1", "laboratory", "R")), nil},
		"confidentiality lowered":  {"PUT", "/Observation/psy-1", cleared, mustJSON(obs("psy-1", "p1", "laboratory", "N", "PSY")), nil},
		"by the patient's own app": {"PUT", "/Observation/psy-1", patient, mustJSON(obs("psy-1", "p1", "laboratory")), nil},
		"a contained label":        {"PUT", "/Observation/boxed", cleared, mustJSON(obs("boxed", "p1", "laboratory")), nil},
		"a patch touching meta":    {"PATCH", "/Observation/psy-1", cleared, `[{"op":"remove","path":"/meta/security/1"}]`, patch},
		// The patch is read, not searched for a word: escapes, the root,
		// contained resources, copies and moves, and FHIRPath.
		"an escaped meta":           {"PATCH", "/Observation/psy-1", cleared, `[{"op":"remove","path":"/\u006deta/security/1"}]`, patch},
		"the whole record":          {"PATCH", "/Observation/psy-1", cleared, `[{"op":"replace","path":"","value":` + mustJSON(obs("psy-1", "p1", "laboratory")) + `}]`, patch},
		"a patched contained label": {"PATCH", "/Observation/boxed", cleared, `[{"op":"remove","path":"/contained/0/meta"}]`, patch},
		"a copy over meta":          {"PATCH", "/Observation/psy-1", cleared, `[{"op":"copy","from":"/code","path":"/m\u0065ta"}]`, patch},
		"a move out of meta":        {"PATCH", "/Observation/psy-1", cleared, `[{"op":"move","from":"/meta","path":"/extension"}]`, patch},
		"a FHIRPath patch":          {"PATCH", "/Observation/psy-1", cleared, fhirPathPatch("delete", "Observation.\u006deta"), nil},
		"a FHIRPath patch of text":  {"PATCH", "/Observation/psy-1", cleared, fhirPathPatch("delete", "Observation.status"), nil},
		"a batched patch": {"POST", "/", cleared, `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PATCH","url":"Observation/psy-1"},` +
			`"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` +
			base64.StdEncoding.EncodeToString([]byte(`[{"op":"remove","path":"/meta"}]`)) + `"}}]}`, nil},
		"batched": {"POST", "/", cleared, `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Observation/psy-1"},"resource":` +
			mustJSON(obs("psy-1", "p1", "laboratory")) + `}]}`, nil},
	} {
		r := f.do(c.method, c.target, c.tok, c.body, c.hdr...)
		if r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	// A patch is a JSON Patch or a FHIRPath Patch, read strictly; anything
	// else would go upstream unread.
	for name, c := range map[string]struct {
		body   string
		hdr    []string
		status int
	}{
		"an XML patch":       {`<diff><remove sel="/Observation/meta"/></diff>`, []string{"Content-Type", "application/xml-patch+xml"}, http.StatusUnsupportedMediaType},
		"a case-folded twin": {`[{"op":"remove","path":"/status","PATH":"/meta"}]`, patch, http.StatusBadRequest},
		"an unknown op":      {`[{"op":"delete","path":"/status"}]`, patch, http.StatusBadRequest},
		"not a pointer":      {`[{"op":"remove","path":"meta"}]`, patch, http.StatusBadRequest},
		"no path":            {`[{"op":"remove"}]`, patch, http.StatusBadRequest},
		// An operation without a member it requires, beside one in another
		// case a folding server would take for it (found by probing: a copy
		// from "/meta" went through, read as copying from nowhere).
		"a copy from in another case":       {`[{"op":"copy","From":"/meta","path":"/extension"}]`, patch, http.StatusBadRequest},
		"a copy without from":               {`[{"op":"copy","path":"/extension"}]`, patch, http.StatusBadRequest},
		"a move without from":               {`[{"op":"move","path":"/extension"}]`, patch, http.StatusBadRequest},
		"an add of a value in another case": {`[{"op":"add","path":"/status","Value":"final"}]`, patch, http.StatusBadRequest},
		"a replace without value":           {`[{"op":"replace","path":"/status"}]`, patch, http.StatusBadRequest},
		"a test without value":              {`[{"op":"test","path":"/status"}]`, patch, http.StatusBadRequest},
		"not a Parameters":                  {mustJSON(obs("lab-1", "p1", "laboratory")), nil, http.StatusBadRequest},
	} {
		f.refused(name, f.do("PATCH", "/Observation/lab-1", cleared, c.body, c.hdr...), c.status)
	}
	// What may pass: labels kept or raised, a patch that leaves meta alone,
	// an unlabelled record, and a new resource at a free id.
	for name, c := range map[string]struct {
		method, target, body string
		hdr                  []string
	}{
		"labels kept":                         {"PUT", "/Observation/psy-1", mustJSON(obs("psy-1", "p1", "vital-signs", "R", "PSY")), nil},
		"labels raised":                       {"PUT", "/Observation/psy-1", mustJSON(obs("psy-1", "p1", "laboratory", "V", "PSY", "HIV")), nil},
		"a patch of the rest":                 {"PATCH", "/Observation/psy-1", `[{"op":"replace","path":"/status","value":"amended"}]`, patch},
		"a patch testing meta":                {"PATCH", "/Observation/psy-1", `[{"op":"test","path":"/meta/versionId","value":"1"},{"op":"copy","from":"/meta","path":"/extension"}]`, patch},
		"a FHIRPath patch of an unlabelled":   {"PATCH", "/Observation/lab-1", fhirPathPatch("delete", "Observation.status"), nil},
		"an unlabelled record":                {"PUT", "/Observation/lab-1", mustJSON(obs("lab-1", "p1", "laboratory")), nil},
		"a free id":                           {"PUT", "/Observation/fresh", mustJSON(obs("fresh", "p1", "laboratory")), nil},
		"a conditional update keeping labels": {"PUT", "/Observation?_id=psy-1", noID(obs("x", "p1", "laboratory", "R", "PSY")), nil},
		"a conditional update matching none":  {"PUT", "/Observation?_id=nope", noID(obs("x", "p1", "laboratory")), nil},
	} {
		r := f.do(c.method, c.target, cleared, c.body, c.hdr...)
		sent := false
		for _, g := range f.up.requests() {
			sent = sent || g.Method != http.MethodGet // a conditional update matching none creates (POST)
		}
		if r.status == http.StatusForbidden || !sent {
			t.Errorf("%s: %d, forwarded %v: %s", name, r.status, sent, r.raw)
		}
		f.up.reset()
	}
}

// TestPatientLinks (decision D-6): Patient.link says another record is the
// same person, and puts the record in that patient's compartment. An app
// acting for one patient may update its record only keeping the links as
// stored (sending back what it read passes, in any member order); adding,
// removing or retyping one is refused, and nothing but the stored
// version's read reaches the upstream. A user/ token may change them.
func TestPatientLinks(t *testing.T) {
	f := newFixture(t)
	link := func(other, typ string) map[string]any {
		return map[string]any{"other": map[string]any{"reference": other}, "type": typ}
	}
	p1 := func(links ...any) map[string]any {
		r := map[string]any{"resourceType": "Patient", "id": "p1", "name": []any{map[string]any{"family": "One"}}}
		if links != nil {
			r["link"] = links
		}
		return r
	}
	f.up.resources["Patient/p1"] = p1(link("Patient/p9", "seealso"))
	patient := f.token("launch/patient patient/Patient.rus", nil)
	for name, body := range map[string]string{
		"a link added":    mustJSON(p1(link("Patient/p9", "seealso"), link("Patient/p2", "replaced-by"))),
		"the link gone":   mustJSON(p1()),
		"a link retyped":  mustJSON(p1(link("Patient/p9", "replaced-by"))),
		"a link retarget": mustJSON(p1(link("Patient/p2", "seealso"))),
		// Members are matched by their exact name, as the server reads them.
		"a case-folded twin": `{"resourceType":"Patient","id":"p1","link":[{"other":{"reference":"Patient/p2"},"type":"replaced-by"}],` +
			`"Link":[{"other":{"reference":"Patient/p9"},"type":"seealso"}]}`,
	} {
		r := f.do("PUT", "/Patient/p1", patient, body)
		if r.status != http.StatusForbidden && r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	kept := `{"link":[{"type":"seealso","other":{"reference":"Patient/p9"}}],"id":"p1","resourceType":"Patient","name":[{"family":"Uno"}]}`
	if r := f.do("PUT", "/Patient/p1", patient, kept); r.status != http.StatusOK {
		t.Errorf("an update keeping the links: %d %s", r.status, r.raw)
	}
	f.up.resources["Patient/p1"] = p1()
	f.up.reset()
	if r := f.do("PUT", "/Patient/p1", patient, mustJSON(p1(link("Patient/p2", "replaces")))); r.status != http.StatusForbidden {
		t.Errorf("a first link: %d %s", r.status, r.raw)
	}
	f.up.reset()
	if r := f.do("PUT", "/Patient/p1", patient, mustJSON(p1())); r.status != http.StatusOK {
		t.Errorf("an update of an unlinked record: %d %s", r.status, r.raw)
	}
	user := f.token("user/Patient.rus", nil)
	if r := f.do("PUT", "/Patient/p1", user, mustJSON(p1(link("Patient/p2", "replaced-by")))); r.status != http.StatusOK {
		t.Errorf("a clinician linking records: %d %s", r.status, r.raw)
	}
}

// TestPatientIdentifiers: Patient.identifier says which person the record
// is. Found by probing: a patient app with patient/Patient.u could add
// another patient's record number to its own patient's record, so that a
// search by it found this patient, and then write that number beside
// references to the patient as the patient's own (checkOwnIdentifiers).
// With patient context the identifiers stay exactly as stored, whatever
// the form of the write; nothing but the stored version's read reaches the
// upstream. A user/ token may change them.
func TestPatientIdentifiers(t *testing.T) {
	f := newFixture(t)
	patient := f.token("launch/patient patient/Patient.rus patient/Observation.cruds", nil)
	p1 := func(ids ...string) string {
		var list []any
		for _, v := range ids {
			list = append(list, map[string]any{"system": "urn:mrn", "value": v})
		}
		r := map[string]any{"resourceType": "Patient", "id": "p1", "name": []any{map[string]any{"family": "Uno"}}}
		if list != nil {
			r["identifier"] = list
		}
		return mustJSON(r)
	}
	jsonPatch := []string{"Content-Type", "application/json-patch+json"}
	for name, c := range map[string]struct {
		method, target, body string
		hdr                  []string
	}{
		"another patient's added": {"PUT", "/Patient/p1", p1("1", "2"), nil},
		"one replaced":            {"PUT", "/Patient/p1", p1("2"), nil},
		"all removed":             {"PUT", "/Patient/p1", p1(), nil},
		"a case-folded twin": {"PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:mrn","value":"2"}],` +
			`"Identifier":[{"system":"urn:mrn","value":"1"}]}`, nil},
		"by JSON Patch":     {"PATCH", "/Patient/p1", `[{"op":"add","path":"/identifier/-","value":{"system":"urn:mrn","value":"2"}}]`, jsonPatch},
		"by an escaped key": {"PATCH", "/Patient/p1", `[{"op":"replace","path":"/\u0069dentifier/0/value","value":"2"}]`, jsonPatch},
		"by FHIRPath Patch": {"PATCH", "/Patient/p1", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},` +
			`{"name":"path","valueString":"Patient"},{"name":"name","valueString":"identifier"},{"name":"value","valueIdentifier":{"system":"urn:mrn","value":"2"}}]}]}`, nil},
		"in a transaction": {"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Patient/p1"},"resource":` +
			p1("1", "2") + `}]}`, nil},
	} {
		r := f.do(c.method, c.target, patient, c.body, c.hdr...)
		if r.status != http.StatusForbidden && r.status != http.StatusBadRequest || diagnostics(r) == "" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	// The record as read, sent back with its members in another order and
	// a new name, passes; so does a patch that leaves the identifiers be.
	kept := `{"name":[{"family":"Uno"}],"identifier":[{"value":"1","system":"urn:mrn"}],"resourceType":"Patient","id":"p1"}`
	if r := f.do("PUT", "/Patient/p1", patient, kept); r.status != http.StatusOK {
		t.Errorf("an update keeping the identifiers: %d %s", r.status, r.raw)
	}
	f.up.reset()
	if r := f.do("PATCH", "/Patient/p1", patient, `[{"op":"replace","path":"/name/0/family","value":"Un"}]`, jsonPatch...); r.status != http.StatusOK {
		t.Errorf("a patch of the name: %d %s", r.status, r.raw)
	}
	f.up.reset()
	user := f.token("user/Patient.rus", nil)
	if r := f.do("PUT", "/Patient/p1", user, p1("1", "1-b")); r.status != http.StatusOK {
		t.Errorf("a clinician adding an identifier: %d %s", r.status, r.raw)
	}
}

// fhirPathPatch is a FHIRPath Patch of one operation.
func fhirPathPatch(typ, path string) string {
	return `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"` + typ +
		`"},{"name":"path","valueString":"` + path + `"}]}]}`
}

// TestHistoryFollowsTheRecord: an earlier version is shown only while the
// resource as it is now may be: a record moved to another patient, or
// labelled, after it was written is withheld in every version (each one
// is still judged on its own too: TestHistoryVariants). The answer is the
// 404 of a missing resource, and nothing but the current version's read
// reaches the upstream. Histories of many records are refused when labels
// are judged.
func TestHistoryFollowsTheRecord(t *testing.T) {
	f := newFixture(t)
	// lab-2 was recorded against p1, then moved to p2, where it belongs;
	// vs-1 was recorded without labels, then labelled PSY.
	f.up.versions = map[string][]map[string]any{
		"Observation/lab-2": {obs("lab-2", "p1", "laboratory")},
		"Observation/vs-1":  {obs("vs-1", "p1", "vital-signs")},
		"Practitioner/dr":   {{"resourceType": "Practitioner", "id": "dr"}},
	}
	f.up.resources["Observation/vs-1"] = obs("vs-1", "p1", "vital-signs", "R", "PSY")
	patient := f.token("launch/patient patient/Observation.rs patient/Practitioner.rs", everyLabel())
	user := f.token("user/Observation.rs", nil)
	absent := f.do("GET", "/Observation/nope/_history/1", patient, "")
	f.up.reset()
	for _, c := range []struct{ target, tok string }{
		{"/Observation/lab-2/_history/1", patient},
		{"/Observation/lab-2/_history", patient},
		{"/Observation/vs-1/_history/1", user},
		{"/Observation/vs-1/_history", user},
	} {
		r := f.do("GET", c.target, c.tok, "")
		if r.status != 404 || r.raw != absent.raw {
			t.Errorf("%s: %d %s", c.target, r.status, r.raw)
		}
		if got := f.up.requests(); len(got) != 1 || got[0].URL.Path != strings.SplitN(c.target, "/_history", 2)[0] {
			t.Errorf("%s: forwarded %v", c.target, got)
		}
		f.up.reset()
	}
	for _, c := range []struct{ target, tok string }{
		{"/Observation/vs-1/_history/1", patient}, // every label cleared, the patient's own
		{"/Observation/lab-1/_history", user},
		{"/Practitioner/dr/_history/1", patient}, // a shared type is in no compartment
	} {
		if r := f.do("GET", c.target, c.tok, ""); r.status != 200 {
			t.Errorf("%s: %d %s", c.target, r.status, r.raw)
		}
	}
	f.up.reset()
	f.refused("a batched vread", f.do("POST", "/", patient, `{"resourceType":"Bundle","type":"batch","entry":[
		{"request":{"method":"GET","url":"Observation/lab-2/_history/1"}}]}`), http.StatusForbidden)
	// Type and system history hold versions of many records, which no
	// current version vouches for: not with labels judged.
	everyType := f.token("user/*.rs", nil)
	for _, target := range []string{"/Observation/_history", "/_history"} {
		f.refused(target, f.do("GET", target, everyType, ""), http.StatusForbidden)
	}
	f.do("GET", "/Observation/_history", f.token("user/*.rs", everyLabel()), "")
	if got := f.up.requests(); len(got) != 1 || got[0].URL.Path != "/Observation/_history" {
		t.Errorf("type history with every label cleared: forwarded %v", got)
	}
}

// TestBinarySecurityContext: a Binary shares the access rules of the
// resource its securityContext names (a document's content, its
// DocumentReference). With patient context or a clearance short of every
// label a read, vread or write of one is judged by that resource as it is
// now, read from the upstream; a context the proxy cannot read there sees
// nothing. In a search, and in a batch, each is judged so too (before the
// seventeenth session every Binary with a context was left out of a
// search). Patient/ tokens may read, never search, Binary.
func TestBinarySecurityContext(t *testing.T) {
	f := newFixture(t)
	doc := func(id, patient string, labels ...string) map[string]any {
		d := obs(id, patient, "x", labels...)
		d["resourceType"] = "DocumentReference"
		return d
	}
	bin := func(id, context string) map[string]any {
		b := map[string]any{"resourceType": "Binary", "id": id, "contentType": "text/plain", "data": "bm90ZQ=="}
		if context != "" {
			b["securityContext"] = map[string]any{"reference": context}
		}
		return b
	}
	for _, r := range []map[string]any{
		doc("note-psy", "p1", "R", "PSY"), doc("note-ok", "p1"), doc("note-p2", "p2"),
		bin("bin-psy", "DocumentReference/note-psy"), bin("bin-ok", "DocumentReference/note-ok"),
		bin("bin-upstream", f.up.ts.URL+"/DocumentReference/note-ok"), bin("bin-elsewhere", "https://other.example/fhir/DocumentReference/note-ok"),
		bin("bin-contained", "#n1"), bin("bin-missing", "DocumentReference/nope"), bin("bin-plain", ""),
	} {
		f.up.resources[r["resourceType"].(string)+"/"+r["id"].(string)] = r
	}
	user := f.token("user/Binary.rs user/DocumentReference.rs", nil)
	for id, want := range map[string]int{"bin-psy": 404, "bin-ok": 200, "bin-upstream": 200, "bin-elsewhere": 404,
		"bin-contained": 404, "bin-missing": 404, "bin-plain": 200} {
		for _, target := range []string{"/Binary/" + id, "/Binary/" + id + "/_history/1"} {
			if r := f.do("GET", target, user, ""); r.status != want {
				t.Errorf("%s: %d, want %d", target, r.status, want)
			}
		}
	}
	// An element selection keeps the context (a server would leave it out).
	f.up.reset()
	f.do("GET", "/Binary/bin-psy?_elements=data", user, "")
	if got := f.up.requests(); len(got) == 0 || got[0].URL.Query().Get("_elements") != "data,meta,securityContext" {
		t.Errorf("a Binary's element selection: forwarded %v", got)
	}
	if r := f.do("GET", "/Binary/bin-ok", f.token("user/Binary.rs", nil), ""); r.status != 404 {
		t.Errorf("a Binary whose context's type the token may not read: %d", r.status)
	}
	if r := f.do("GET", "/Binary/bin-psy", f.token("user/Binary.rs user/DocumentReference.rs", everyLabel()), ""); r.status != 200 {
		t.Errorf("every label cleared: %d", r.status)
	}
	r := f.do("GET", "/Binary", user, "")
	got := entryIDs(r)
	if slices.Sort(got); r.status != 200 || !slices.Equal(got, []string{"bin-ok", "bin-plain", "bin-upstream"}) {
		t.Errorf("a Binary search: %d %v", r.status, got)
	}
	f.up.reset()
	// A patient/ token reads a Binary whose context is in its compartment,
	// and nothing else of Binary.
	f.up.resources["Binary/bin-p2"] = bin("bin-p2", "DocumentReference/note-p2")
	f.up.resources["Binary/bin-self"] = bin("bin-self", "Patient/p1")
	patient := f.token("launch/patient patient/Binary.r patient/DocumentReference.r patient/Patient.r", nil)
	for id, want := range map[string]int{"bin-ok": 200, "bin-self": 200, "bin-p2": 404, "bin-psy": 404, "bin-plain": 404, "bin-missing": 404} {
		for _, target := range []string{"/Binary/" + id, "/Binary/" + id + "/_history/1"} {
			if r := f.do("GET", target, patient, ""); r.status != want {
				t.Errorf("patient context, %s: %d, want %d", target, r.status, want)
			}
		}
	}
	f.up.reset()
	for _, target := range []string{"/Binary", "/Binary?_id=bin-ok", "/Patient/p1/Binary"} {
		f.refused("patient context, "+target, f.do("GET", target, f.token("launch/patient patient/Binary.rs", nil), ""), 403)
	}

	// A token that may write Binary but not read it is held to the context too.
	f.up.reset()
	if r := f.do("PUT", "/Binary/bin-psy", f.token("user/Binary.u user/DocumentReference.rs", nil), mustJSON(bin("bin-psy", "DocumentReference/note-ok"))); r.status != 404 {
		t.Errorf("a write-only token overwriting a withheld document's content: %d", r.status)
	}
	writer := f.token("user/Binary.cruds user/DocumentReference.rs", nil)
	if r := f.do("PUT", "/Binary/bin-psy", writer, mustJSON(bin("bin-psy", "DocumentReference/note-ok"))); r.status != 404 {
		t.Errorf("overwriting the content of a withheld document: %d", r.status)
	}
	for _, g := range f.up.requests() {
		if g.Method != http.MethodGet {
			t.Errorf("a %s reached the upstream", g.Method)
		}
	}
}

// TestChainsResolved: with labels judged, a chain of one link to a named
// type (patient.name, subject:Patient.name) is resolved by the proxy: it
// searches the target itself, keeps the records the access may see and
// forwards the search by their references, so a withheld record matches
// no more than a missing one. Other chains stay refused; unrestricted
// tokens' chains go upstream as sent.
// TestPatientChains: a patient app's chain of one link through a
// reference that is not to a patient (encounter.identifier=…,
// practitioner.name=…) is resolved by the proxy over the records the token
// may see, the patient's and shared ones, so another patient's encounter
// matches as a missing one does; a chain through a patient reference, one
// whose criteria name another patient or search by other records, is
// refused with nothing forwarded. Patient apps had every chain refused.
func TestPatientChains(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	for _, e := range [...][2]string{{"e1", "p1"}, {"e2", "p2"}} {
		f.up.resources["Encounter/"+e[0]] = map[string]any{"resourceType": "Encounter", "id": e[0], "status": "finished",
			"subject": map[string]any{"reference": "Patient/" + e[1]}, "identifier": []any{map[string]any{"system": "urn:visit", "value": "V" + e[0][1:]}}}
	}
	f.up.resources["PractitionerRole/pr"] = map[string]any{"resourceType": "PractitionerRole", "id": "pr", "practitioner": map[string]any{"reference": "Practitioner/dr"}}
	f.up.mu.Unlock()
	tok := f.token("launch/patient patient/Observation.rs patient/Encounter.rs patient/PractitionerRole.rs patient/Practitioner.rs patient/Patient.rs", nil)
	forwarded := func(target string) (result, []*http.Request) {
		t.Helper()
		f.up.reset()
		r := f.do("GET", target, tok, "")
		return r, f.up.requests()
	}
	r, got := forwarded("/Observation?encounter.identifier=" + url.QueryEscape("urn:visit|V1"))
	if r.status != 200 || len(got) != 2 || got[1].URL.Query().Get("encounter") != "Encounter/e1" || got[1].URL.Query().Get("patient") != "Patient/p1" {
		t.Errorf("a chain to the patient's encounter: %d, forwarded %v", r.status, got)
	}
	// The chain's own search asks for the patient's records of its type
	// only (those of a compartment's type the token can see): a server of
	// real size holds more of every other patient's than the proxy reads.
	if len(got) == 2 && (got[0].URL.Path != "/Encounter" || got[0].URL.Query().Get("patient") != "Patient/p1") {
		t.Errorf("the chain's own search: %s", got[0].URL)
	}
	var refs []string
	for _, v := range []string{"V2", "V9"} { // another patient's encounter, and none: alike
		r, got := forwarded("/Observation?encounter.identifier=" + url.QueryEscape("urn:visit|"+v))
		var enc []string
		if len(got) > 0 {
			enc = got[len(got)-1].URL.Query()["encounter"]
		}
		if r.status != 200 || len(got) != 2 || len(enc) != 1 || enc[0] == "Encounter/e2" || !strings.HasPrefix(enc[0], "Encounter/") {
			t.Errorf("a chain to %s: %d, forwarded %v", v, r.status, got)
		} else {
			refs = append(refs, got[1].URL.Query().Get("encounter"))
		}
	}
	if len(refs) == 2 && refs[0] == refs[1] {
		t.Errorf("the same reference twice: %v", refs)
	}
	if r, got := forwarded("/PractitionerRole?practitioner.name=Lee"); r.status != 200 || len(got) != 2 || got[1].URL.Query().Get("practitioner") != "Practitioner/dr" {
		t.Errorf("a chain between shared records: %d, forwarded %v", r.status, got)
	}
	f.up.reset()
	for _, target := range []string{
		"/Observation?subject:Patient.name=Two", "/Observation?patient.identifier=" + url.QueryEscape("urn:mrn|2"),
		"/Observation?encounter.subject=Patient/p2", "/Observation?encounter.patient=p2",
		"/Observation?encounter._has:Condition:encounter:code=F32", "/Observation?encounter.subject.name=Two",
	} {
		f.refused(target, f.do("GET", target, tok, ""), http.StatusForbidden)
	}
	f.refused("a chain's target the token may not search", f.do("GET", "/Observation?encounter.identifier=V1",
		f.token("launch/patient patient/Observation.rs", nil), ""), http.StatusForbidden)
}

func TestChainsResolved(t *testing.T) {
	f := newFixture(t)
	p2 := f.up.resources["Patient/p2"]
	p2["meta"] = map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}}}
	user := f.token("user/*.rs", nil)
	forwarded := func(target, tok string) (result, []*http.Request) {
		t.Helper()
		f.up.reset()
		r := f.do("GET", target, tok, "")
		return r, f.up.requests()
	}
	for target, want := range map[string]string{
		"/Observation?subject:Patient.name=x": "subject=Patient%2Fp1",
		"/Observation?patient.name=x":         "patient=Patient%2Fp1",
	} {
		r, got := forwarded(target, user)
		if r.status != 200 || len(got) != 2 || got[0].URL.Path != "/Patient" || got[0].URL.Query().Get("name") != "x" ||
			got[1].URL.Path != "/Observation" || got[1].URL.RawQuery != want {
			t.Errorf("%s: %d, forwarded %v", target, r.status, got)
		}
	}
	f.up.reset()
	if r := f.do("POST", "/Observation/_search", user, "patient.name=x", "Content-Type", "application/x-www-form-urlencoded"); r.status != 200 ||
		len(f.up.bodies) != 2 || f.up.bodies[1] != "patient=Patient%2Fp1" {
		t.Errorf("POST _search: %d, forwarded %q", r.status, f.up.bodies)
	}
	if _, got := forwarded("/Observation?patient.name=x", f.token("user/*.rs", everyLabel())); len(got) != 1 || got[0].URL.Query().Get("patient.name") != "x" {
		t.Errorf("every label cleared: the chain went upstream as %v", got)
	}
	// A chain reaching only a withheld record, and one reaching none, are
	// forwarded alike: as a reference to a random id.
	var refs []string
	for _, target := range []string{"/Observation?patient._id=p2", "/Observation?patient._id=nope"} {
		r, got := forwarded(target, user)
		if r.status != 200 || len(got) != 2 || strings.Contains(got[1].URL.RawQuery, "p2") || !strings.HasPrefix(got[1].URL.Query().Get("patient"), "Patient/") {
			t.Fatalf("%s: %d, forwarded %v", target, r.status, got)
		}
		refs = append(refs, got[1].URL.Query().Get("patient"))
	}
	if refs[0] == refs[1] {
		t.Errorf("the same reference twice: %v", refs)
	}
	// Refused, nothing forwarded: a target the scopes do not search, a
	// chain of unnamed type, in a batch.
	f.up.reset()
	f.refused("a target the token may not search", f.do("GET", "/Observation?patient.name=x", f.token("user/Observation.rs", nil), ""), http.StatusForbidden)
	f.refused("a chain of unnamed type", f.do("GET", "/Observation?subject.name=x", user, ""), http.StatusForbidden)
	f.refused("a target the token searches under a constraint", f.do("GET", "/Observation?patient.name=x",
		f.token("user/Observation.rs user/Patient.rs?gender=female", nil), ""), http.StatusForbidden)
	f.refused("a batched chain", f.do("POST", "/", user, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?patient.name=x"}}]}`), http.StatusForbidden)
	// Each chain costs the upstream searches of its own: more than
	// Limits.MaxChains (4) is refused before any (found: 64 chained
	// parameters made one request up to 640 upstream searches).
	four := "/Observation?patient.name=x&patient.gender=y&subject:Patient.name=z&encounter.status=w"
	if r, got := forwarded(four, user); r.status != 200 || len(got) != 5 {
		t.Errorf("four chains: %d, forwarded %d requests", r.status, len(got))
	}
	f.up.reset()
	f.refused("five chains", f.do("GET", four+"&patient.birthdate=v", user, ""), http.StatusBadRequest)
	// Criteria matching more than chainLimit records: refused after the
	// proxy's own search, and the search itself is not forwarded.
	for i := range 101 {
		id := "many-" + strconv.Itoa(i)
		f.up.resources["Patient/"+id] = map[string]any{"resourceType": "Patient", "id": id}
	}
	r, got := forwarded("/Observation?patient.name=x", user)
	if r.status != http.StatusForbidden || len(got) != 1 || got[0].URL.Path != "/Patient" {
		t.Errorf("too broad: %d, forwarded %v", r.status, got)
	}
}

// TestChainPagesFollowed: the proxy's own search for a chain follows the
// target's pages, so what decides whether the chain is too broad is how
// many matches the access may see, not how many the clearance withholds.
// A chain whose criteria also match 150 withheld records is resolved as
// one that matches only the visible record; 101 visible matches are still
// refused, and so are criteria whose pages do not end within chainPages.
// A next link off the upstream's base is not followed: the proxy's
// credential goes only to the upstream.
func TestChainPagesFollowed(t *testing.T) {
	f := newFixture(t)
	f.up.pageSize = 20
	restricted := map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}}}
	f.up.resources["Patient/p2"]["meta"] = restricted
	addPatients := func(prefix string, n int, labelled bool) {
		for i := range n {
			id := prefix + strconv.Itoa(i)
			r := map[string]any{"resourceType": "Patient", "id": id}
			if labelled {
				r["meta"] = restricted
			}
			f.up.resources["Patient/"+id] = r
		}
	}
	user := f.token("user/*.rs", nil)
	chain := func() (result, []*http.Request) {
		t.Helper()
		f.up.reset()
		r := f.do("GET", "/Observation?patient.name=x", user, "")
		return r, f.up.requests()
	}
	searches := func(got []*http.Request, path string) (n int) {
		for _, r := range got {
			if r.URL.Path == path {
				n++
			}
		}
		return n
	}

	// Only p1 visible, and 150 withheld matches on 8 pages of 20.
	addPatients("vip-", 150, true)
	r, got := chain()
	if r.status != 200 || searches(got, "/Patient") != 8 || searches(got, "/Observation") != 1 ||
		got[len(got)-1].URL.RawQuery != "patient=Patient%2Fp1" {
		t.Fatalf("withheld matches on later pages: %d, forwarded %v", r.status, got)
	}

	// 101 visible matches: refused, the search itself not forwarded.
	addPatients("many-", 100, false)
	r, got = chain()
	if r.status != http.StatusForbidden || searches(got, "/Observation") != 0 || !strings.Contains(r.raw, "narrow") {
		t.Errorf("101 visible matches: %d %s, forwarded %v", r.status, r.raw, got)
	}

	// More pages than chainPages: refused after reading chainPages of them.
	f.up.pageSize = 5
	for k := range f.up.resources {
		if strings.HasPrefix(k, "Patient/many-") {
			delete(f.up.resources, k)
		}
	}
	r, got = chain()
	if r.status != http.StatusForbidden || searches(got, "/Patient") != 10 || searches(got, "/Observation") != 0 {
		t.Errorf("pages without end: %d, %d page(s) read, forwarded %v", r.status, searches(got, "/Patient"), got)
	}

	// A next link elsewhere: 502, not followed, nothing forwarded.
	var elsewhere []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere = append(elsewhere, r.Header.Get("Authorization"))
	}))
	defer other.Close()
	f.up.pageSize, f.up.nextBase = 20, other.URL
	r, got = chain()
	if r.status != http.StatusBadGateway || len(got) != 1 || len(elsewhere) != 0 {
		t.Errorf("a next link off the upstream's base: %d, forwarded %v, elsewhere got %q", r.status, got, elsewhere)
	}
}

// TestOwnPagesOnThePublicBase: a FHIR server behind the proxy that is told
// it lives at the proxy's public base (Proxy.Base) writes its next links
// there. The proxy follows them on the upstream, for the searches it runs
// itself: a chain's target (and a conditional write's criteria, by the
// same function), and a logical reference's identifier. Found by probing
// the sandbox, whose data server does so: a patient app's
// Observation?encounter.status=finished was refused with 502.
func TestOwnPagesOnThePublicBase(t *testing.T) {
	f := newFixture(t)
	f.proxy.Base = f.base
	f.up.pageSize, f.up.nextBase = 20, f.base
	restricted := map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}}}
	f.up.mu.Lock()
	for i := range 50 { // withheld matches on the first pages
		id := "vip-" + strconv.Itoa(i)
		f.up.resources["Patient/"+id] = map[string]any{"resourceType": "Patient", "id": id, "meta": restricted}
	}
	f.up.mu.Unlock()
	user := f.token("user/*.rs", nil)
	r := f.do("GET", "/Observation?patient.name=x", user, "")
	got := f.up.requests()
	if r.status != http.StatusOK || len(got) != 4 || got[len(got)-1].URL.Path != "/Observation" || got[len(got)-1].URL.RawQuery != "patient=Patient%2Fp1%2CPatient%2Fp2" {
		t.Fatalf("a chain whose target's matches page on the public base: %d %s, upstream %v", r.status, r.raw, got)
	}
	for _, g := range got {
		if g.Host != strings.TrimPrefix(f.up.ts.URL, "http://") {
			t.Errorf("%s went to %s", g.URL, g.Host)
		}
	}
	f.up.reset()

	// Two of the patient's encounters carry the visit number, a page each.
	f.up.pageSize = 1
	f.up.mu.Lock()
	for _, id := range []string{"e1", "e2"} {
		f.up.resources["Encounter/"+id] = map[string]any{"resourceType": "Encounter", "id": id, "status": "finished", "class": map[string]any{"code": "AMB"},
			"subject": map[string]any{"reference": "Patient/p1"}, "identifier": []any{map[string]any{"system": "urn:visit", "value": "V1"}}}
	}
	f.up.mu.Unlock()
	app := f.token("launch/patient patient/Observation.cruds patient/Encounter.rs", nil)
	body := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"encounter":{"identifier":{"system":"urn:visit","value":"V1"}}}`
	if r := f.do("POST", "/Observation", app, body); r.status != http.StatusCreated {
		t.Errorf("an encounter by a visit number whose matches page on the public base: %d %s, upstream %v", r.status, r.raw, f.up.requests())
	}
}

// TestMediaTypeParameters: a body goes upstream labelled as what the proxy
// read it as, FHIR R4 JSON in UTF-8. A media type parameter that would make
// the server read the same bytes otherwise (charset=utf-7 turns +ACI- into
// a quote; fhirVersion=1.0 makes a multi-version server read a Condition's
// patient from "patient", not the "subject" judged here) is refused, in
// the Content-Type and in _format alike; what is allowed goes upstream as
// the bare media type.
func TestMediaTypeParameters(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Condition.cruds patient/Observation.rs", nil)
	user := f.token("user/Observation.cruds", everyLabel())
	cond := `{"resourceType":"Condition","subject":{"reference":"Patient/p1"}}`
	update := `{"resourceType":"Condition","id":"c-1","subject":{"reference":"Patient/p1"}}`
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/lab-1"}}]}`
	patch := `[{"op":"add","path":"/status","value":"amended"}]`
	for _, c := range []struct{ name, method, target, tok, body, ct string }{
		{"utf-7 create", "POST", "/Condition", tok, cond, "application/fhir+json; charset=utf-7"},
		{"utf-16 create", "POST", "/Condition", tok, cond, "application/json;charset=UTF-16"},
		{"latin-1 create", "POST", "/Condition", tok, cond, "application/fhir+json; charset=iso-8859-1"},
		{"DSTU2 create", "POST", "/Condition", tok, cond, "application/fhir+json; fhirVersion=1.0"},
		{"STU3 update", "PUT", "/Condition/c-1", tok, update, "application/fhir+json;fhirVersion=3.0"},
		{"R5 update", "PUT", "/Condition/c-1", tok, update, "application/fhir+json; fhirVersion=5.0"},
		{"unknown parameter", "POST", "/Condition", tok, cond, "application/fhir+json; profile=x"},
		{"malformed type", "POST", "/Condition", tok, cond, "application/fhir+json; charset"},
		{"utf-7 patch", "PATCH", "/Observation/lab-1", user, patch, "application/json-patch+json; charset=utf-7"},
		{"DSTU2 batch", "POST", "/", user, batch, "application/fhir+json; fhirVersion=1.0"},
		{"utf-7 form search", "POST", "/Observation/_search", tok, "code=x", "application/x-www-form-urlencoded; charset=utf-7"},
	} {
		f.refused(c.name, f.do(c.method, c.target, c.tok, c.body, "Content-Type", c.ct), http.StatusUnsupportedMediaType)
	}
	for _, c := range []struct{ name, method, target, tok, body, ct, want string }{
		{"UTF-8 create", "POST", "/Condition", tok, cond, "application/fhir+json; charset=UTF-8", "application/fhir+json"},
		{"R4 create", "POST", "/Condition", tok, cond, "Application/FHIR+JSON;fhirVersion=4.0", "application/fhir+json"},
		{"R4 patch release", "PUT", "/Condition/c-1", tok, update, "application/json; fhirVersion=4.0.1", "application/json"},
		{"untyped create", "POST", "/Condition", tok, cond, "", "application/fhir+json"},
		{"patch", "PATCH", "/Observation/lab-1", user, patch, "application/json-patch+json; charset=utf-8", "application/json-patch+json"},
	} {
		r := f.do(c.method, c.target, c.tok, c.body, "Content-Type", c.ct)
		got := f.up.requests()
		// (The test upstream does not apply patches: what matters is what it got.)
		if r.status >= 300 && c.method != "PATCH" || len(got) == 0 || got[len(got)-1].Method != c.method || got[len(got)-1].Header.Get("Content-Type") != c.want {
			t.Errorf("%s: %d, upstream %v: %s", c.name, r.status, got, r.raw)
		}
		f.up.reset()
	}
	for _, format := range []string{"application/fhir%2Bjson%3BfhirVersion%3D1.0", "jsonx", "application/fhir%2Bxml%3Bx%3Djson", "json%3Bcharset%3Dutf-16", "ttl"} {
		f.refused("_format="+format, f.do("GET", "/Observation/lab-1?_format="+format, tok, ""), http.StatusNotAcceptable)
		f.refused("batched _format="+format, f.do("POST", "/", user, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/lab-1?_format=`+format+`"}}]}`), http.StatusNotAcceptable)
	}
	for _, format := range []string{"json", "application/json", "application/fhir%2Bjson", "application/fhir%2Bjson%3BfhirVersion%3D4.0"} {
		if r := f.do("GET", "/Observation/lab-1?_format="+format, tok, ""); r.status != 200 {
			t.Errorf("_format=%s: %d %s", format, r.status, r.raw)
		}
		f.up.reset()
	}
}

// TestAcceptNegotiated: a request whose Accept header admits nothing the
// proxy serves (FHIR R4 JSON) is 406, before its token is looked at and
// with nothing sent upstream (found by probing: Accept:
// application/fhir+xml was answered 200 with JSON, where _format=xml was
// 406). Read as RFC 9110 reads it: the most specific range decides, q=0
// excludes, _format overrides the header; a Binary read for its native
// content and an export file have types of their own.
func TestAcceptNegotiated(t *testing.T) {
	f := newFixture(t)
	f.up.boundRecords()
	tok := f.token("launch/patient patient/Observation.rs patient/Binary.rs", nil)
	for _, accept := range []string{
		"application/fhir+xml",
		"application/xml, text/xml",
		"text/html",
		"application/fhir+json;q=0",
		"application/fhir+json;q=0, application/json;q=0, application/json+fhir;q=0",
		"application/*;q=0, text/*",
		"application/fhir+json;q=0, application/json;q=0, application/json+fhir;q=0, */*", // the most specific range decides
		"*/*;q=0",
		"application/fhir+json; fhirVersion=3.0",
		"application/fhir+json; fhirVersion=5.0, application/xml",
		"application/json; charset=utf-16",
		"application/fhir+json;q=x, application/xml",
	} {
		r := f.do("GET", "/Observation/lab-1", tok, "", "Accept", accept)
		f.refused("Accept: "+accept, r, http.StatusNotAcceptable)
		f.refused("Accept: "+accept+", no token", f.do("GET", "/Observation/lab-1", "", "", "Accept", accept), http.StatusNotAcceptable)
	}
	// (A bulk export's file is NDJSON, and its own test reads one.)
	for _, c := range []struct{ target, accept string }{
		{"/Observation/lab-1", "application/fhir+json"},
		{"/Observation/lab-1", "application/json"},
		{"/Observation/lab-1", "application/json+fhir"},
		{"/Observation/lab-1", "*/*"},
		{"/Observation/lab-1", "application/*"},
		{"/Observation/lab-1", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, // a browser's
		{"/Observation/lab-1", "application/fhir+xml;q=1.0, application/fhir+json;q=0.9"},
		{"/Observation/lab-1", "application/fhir+json;q=0, application/json"},
		{"/Observation/lab-1", "application/json;q=0, */*;q=0.1"}, // fhir+json, by */*
		{"/Observation/lab-1", "Application/FHIR+JSON; fhirVersion=4.0; charset=UTF-8"},
		{"/Observation/lab-1", "application/fhir+json; q=0.001"},
		{"/Observation/lab-1", ",,"},                                // no range: as no header
		{"/Observation/lab-1", "not a range"},                       // likewise
		{"/Observation/lab-1", "application/xml;q=1.5"},             // likewise: a quality above 1
		{"/Observation/lab-1?_format=json", "application/fhir+xml"}, // _format overrides Accept
		{"/Observation?code=x", "application/fhir+json"},
		{"/metadata", "application/fhir+json"},
		{"/Binary/b-lab", "application/pdf"}, // its native content
	} {
		r := f.do("GET", c.target, tok, "", "Accept", c.accept)
		if r.status != http.StatusOK {
			t.Errorf("GET %s, Accept: %s: %d %s", c.target, c.accept, r.status, r.raw)
		}
		f.up.reset()
	}
	for _, target := range []string{"/metadata", "/Binary/b-lab?_elements=contentType", "/Observation?code=x", "/Observation/lab-1/_history"} {
		f.refused("GET "+target+" as XML", f.do("GET", target, tok, "", "Accept", "application/fhir+xml"), http.StatusNotAcceptable)
	}
	f.refused("a POSTed search as XML", f.do("POST", "/Observation/_search", tok, "code=x", "Content-Type", "application/x-www-form-urlencoded", "Accept", "application/fhir+xml"), http.StatusNotAcceptable)
	f.refused("a write as XML", f.do("PUT", "/Observation/lab-1", tok, mustJSON(obs("lab-1", "p1", "laboratory")), "Accept", "application/fhir+xml"), http.StatusNotAcceptable)
	refusals := 0
	for _, ev := range f.audit.Events() {
		if ev.Outcome != audit.Success && strings.Contains(ev.Reason, "Accept header") {
			refusals++
		}
	}
	if refusals == 0 {
		t.Error("no 406 refusal was audited")
	}
}

// TestWritesMeetTheVersionJudged: an update, patch or delete checked
// against the stored version goes upstream with If-Match on that version,
// so a record relabelled, or moved to another patient, between the check
// and the write is refused by the server instead of overwritten (found by
// probing: the write went unpinned, and an update judged against the
// unlabelled record stripped the label added in between). A client's
// If-Match that names another version is refused before anything is
// written.
func TestWritesMeetTheVersionJudged(t *testing.T) {
	f := newFixture(t)
	user := f.token("user/Observation.cruds", nil) // clearance: normal data only
	patient := f.token("launch/patient patient/Observation.cruds", nil)
	plain := mustJSON(obs("lab-1", "p1", "laboratory"))
	change := func(key string, to map[string]any) {
		f.up.mu.Lock()
		f.up.afterRead = func(k string) {
			if k != key {
				return
			}
			f.up.mu.Lock()
			f.up.afterRead = nil
			f.up.versions[key] = append(f.up.versions[key], f.up.resources[key])
			f.up.resources[key] = to
			f.up.mu.Unlock()
		}
		f.up.mu.Unlock()
	}
	f.up.versions = map[string][]map[string]any{}
	written := func(name, method, ifMatch string) {
		t.Helper()
		var got *http.Request
		for _, g := range f.up.requests() {
			if g.Method == method {
				got = g
			}
		}
		if got == nil || got.Header.Get("If-Match") != ifMatch {
			t.Errorf("%s: the %s went upstream as %v", name, method, got)
		}
		f.up.reset()
	}

	// Nothing changes in between: the write carries the version judged.
	if r := f.do("PUT", "/Observation/lab-1", user, plain); r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.raw)
	}
	written("update", "PUT", `W/"1"`)
	for _, im := range []string{`W/"1"`, `"1"`, `*`, `W/"0", W/"1"`} {
		if r := f.do("PUT", "/Observation/lab-1", user, plain, "If-Match", im); r.status != 200 {
			t.Fatalf("update with the client's If-Match %s: %d %s", im, r.status, r.raw)
		}
		written("update with the client's If-Match "+im, "PUT", `W/"1"`)
	}

	// The client names another version: refused here, nothing written.
	r := f.do("PUT", "/Observation/lab-1", user, plain, "If-Match", `W/"7"`)
	if r.status != http.StatusPreconditionFailed {
		t.Errorf("If-Match on another version: %d %s", r.status, r.raw)
	}
	for _, g := range f.up.requests() {
		if g.Method != http.MethodGet {
			t.Errorf("If-Match on another version: a %s reached the upstream", g.Method)
		}
	}
	f.up.reset()

	// Relabelled restricted between the check and the write: the update,
	// judged against the unlabelled record, would strip the label.
	change("Observation/lab-1", obs("lab-1", "p1", "laboratory", "R"))
	if r := f.do("PUT", "/Observation/lab-1", user, plain); r.status != http.StatusPreconditionFailed {
		t.Errorf("update of a record relabelled in between: %d %s", r.status, r.raw)
	}
	written("update of a record relabelled in between", "PUT", `W/"1"`)

	// Moved to another patient between a patient app's check and its delete.
	change("Observation/vs-1", obs("vs-1", "p2", "vital-signs"))
	if r := f.do("DELETE", "/Observation/vs-1", patient, ""); r.status != http.StatusPreconditionFailed {
		t.Errorf("delete of a record moved to another patient in between: %d %s", r.status, r.raw)
	}
	written("delete of a record moved in between", "DELETE", `W/"1"`)

	// A batched update by a token cleared for every label is judged
	// against the stored version too (as any token's is:
	// TestBatchedWritesWithPatientContext, TestBatchedWritesByLabels),
	// and its entry goes upstream with ifMatch on that version.
	full := f.token("user/Observation.cruds", everyLabel())
	now := f.up.etag("Observation/lab-1")
	entry := func(ifMatch string) string {
		req := `{"method":"PUT","url":"Observation/lab-1"` + ifMatch + `}`
		return `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/vs-1"}},` +
			`{"request":` + req + `,"resource":` + mustJSON(obs("lab-1", "p1", "laboratory", "R")) + `}]}`
	}
	sent := func() string {
		t.Helper()
		got := f.up.requests()
		if len(got) == 0 || got[len(got)-1].Method != http.MethodPost {
			t.Fatalf("the Bundle did not go upstream: %v", got)
		}
		b := f.up.bodies[len(f.up.bodies)-1]
		if !json.Valid([]byte(b)) {
			t.Fatalf("the Bundle went upstream invalid: %s", b)
		}
		return b
	}
	if r := f.do("POST", "/", full, entry("")); r.status != 200 {
		t.Fatalf("batched update: %d %s", r.status, r.raw)
	}
	if b := sent(); !strings.Contains(b, `"request":{"ifMatch":`+mustJSON(now)+`,"method":"PUT","url":"Observation/lab-1"}`) ||
		strings.Count(b, "ifMatch") != 1 {
		t.Errorf("the batched update went upstream as %s", b)
	}
	f.up.reset()
	if r := f.do("POST", "/", full, entry(`,"ifMatch":`+mustJSON(now))); r.status != 200 || strings.Count(sent(), "ifMatch") != 1 {
		t.Errorf("a batched update naming the version judged: %d, sent %s", r.status, f.up.bodies)
	}
	f.up.reset()
	r = f.do("POST", "/", full, entry(`,"ifMatch":"W/\"7\""`))
	if r.status != http.StatusPreconditionFailed || diagnostics(r) == "" {
		t.Errorf("a batched update naming another version: %d %s", r.status, r.raw)
	}
	for _, g := range f.up.requests() {
		if g.Method != http.MethodGet {
			t.Errorf("a batched update naming another version: a %s reached the upstream", g.Method)
		}
	}
}

// TestMethods: only FHIR's methods are taken; any other is a 405 with
// Allow, before anything is forwarded. HEAD included: its answer's status
// alone would tell another patient's record (withheld) from a missing one
// unless the proxy fetched and judged the body the client never sees.
func TestMethods(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs", nil)
	var answers []string
	for _, c := range []struct{ method, target string }{
		{"HEAD", "/Observation/lab-1"}, {"HEAD", "/Observation/lab-2"}, {"HEAD", "/Observation/none"},
		{"HEAD", "/Observation?code=x"}, {"TRACE", "/Observation/lab-1"}, {"PROPFIND", "/Observation"},
		{"get", "/Observation/lab-1"}, {"OPTIONS", "/Observation"},
	} {
		r := f.do(c.method, c.target, tok, "")
		if c.method == "HEAD" { // no body to read
			if got := f.up.requests(); r.status != http.StatusMethodNotAllowed || len(got) != 0 {
				t.Errorf("HEAD %s: %d, %d forwarded", c.target, r.status, len(got))
			}
		} else {
			f.refused(c.method+" "+c.target, r, http.StatusMethodNotAllowed)
		}
		if r.header.Get("Allow") != "GET, POST, PUT, PATCH, DELETE" {
			t.Errorf("%s %s: Allow %q", c.method, c.target, r.header.Get("Allow"))
		}
		answers = append(answers, r.header.Get("Content-Length"))
	}
	if answers[0] != answers[1] || answers[1] != answers[2] {
		t.Errorf("HEAD answers differ: %v", answers[:3])
	}
}

// TestTransformSeesEveryBody: the host's Transform (a research app's
// de-identification, say) runs on every response that can carry
// resources, whatever the token, also where the request proves the answer
// and the proxy would not otherwise read it (found by probing: for a
// system/ or user/ token cleared for every label, the answer passed
// unread and untransformed, so the very apps redaction is usually for got
// the names it was to remove). A Transform that fails fails the response.
func TestTransformSeesEveryBody(t *testing.T) {
	f := newFixture(t)
	var failing bool
	f.proxy.Transform = func(_ context.Context, tok *smart.Token, in fhirproxy.Interaction, body []byte) ([]byte, error) {
		if failing {
			return nil, fmt.Errorf("the de-identification service is down")
		}
		return []byte(strings.ReplaceAll(string(body), `"family":"One"`, `"family":"(redacted)"`)), nil
	}
	user := f.token("user/*.cruds", everyLabel())
	for _, tok := range []string{f.token("system/*.rs", everyLabel()), user, f.token("system/*.rs", nil), f.token("launch/patient patient/*.rs", everyLabel())} {
		for _, target := range []string{"/Patient/p1", "/Patient?name=One", "/Patient/p1/_history", "/Patient/p1/_history/1"} {
			r := f.do("GET", target, tok, "")
			if r.status != 200 || strings.Contains(r.raw, `"One"`) || !strings.Contains(r.raw, "(redacted)") {
				t.Errorf("%s: %d, not transformed: %.200s", target, r.status, r.raw)
			}
			f.up.reset()
		}
	}
	if r := f.do("POST", "/", user, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/p1"}}]}`); r.status != 200 ||
		strings.Contains(r.raw, `"One"`) {
		t.Errorf("batch: %d, not transformed: %.200s", r.status, r.raw)
	}
	f.up.reset()
	failing = true
	if r := f.do("GET", "/Patient/p1", user, ""); r.status != http.StatusInternalServerError || strings.Contains(r.raw, `"One"`) || diagnostics(r) == "" {
		t.Errorf("a failing Transform: %d %.200s", r.status, r.raw)
	}
}

// TestAuditNamesThePatientsDisclosed: a response's audit event names every
// patient whose records went out, so "who saw this patient's records"
// finds a user/ or system/ search whose page held many patients' (found by
// probing: only the first kept resource's patient was named), and an
// answer the proxy passes unread names the patient the request names.
func TestAuditNamesThePatientsDisclosed(t *testing.T) {
	f := newFixture(t)
	last := func() audit.Event { evs := f.audit.Events(); return evs[len(evs)-1] }
	named := func(e audit.Event) []string {
		out := append([]string{e.Patient}, e.Patients...)
		slices.Sort(out)
		return out
	}
	user := f.token("user/*.rs", nil) // labels judged: the answers are read
	if r := f.do("GET", "/Observation", user, ""); r.status != 200 {
		t.Fatalf("search: %d", r.status)
	}
	if got := named(last()); !slices.Equal(got, []string{"p1", "p2"}) {
		t.Errorf("a search over two patients' records named %v", got)
	}
	if r := f.do("GET", "/Observation/lab-2", user, ""); r.status != 200 || last().Patient != "p2" || last().Patients != nil {
		t.Errorf("a read named %q %v", last().Patient, last().Patients)
	}
	system := f.token("system/*.rs", everyLabel()) // proven by the request: passed unread
	for target, want := range map[string]string{"/Patient/p2": "p2", "/Patient/p1/_history": "p1", "/Observation/lab-2": "",
		"/Observation?patient=p2": "p2", "/Observation?subject=Patient/p2&code=x": "p2", "/Observation?patient=p1,p2": "",
		"/Observation?patient=p1&subject=Patient/p2": "", "/Observation?subject=Group/g1": ""} {
		if r := f.do("GET", target, system, ""); r.status != 200 || last().Patient != want {
			t.Errorf("%s unread: %d, named %q, want %q", target, r.status, last().Patient, want)
		}
	}
	// With AuditEveryDisclosure they are read too, and name what went out.
	f.proxy.AuditEveryDisclosure = true
	for target, want := range map[string][]string{"/Observation/lab-2": {"", "p2"}, "/Observation?category=laboratory": {"", "p1", "p2"},
		"/Observation?_lastUpdated=gt2020-01-01": {"", "p1", "p2"}, "/Patient/p2": {"", "p2"}} {
		if r := f.do("GET", target, system, ""); r.status != 200 || !slices.Equal(named(last()), want) && !slices.Equal(named(last()), want[1:]) {
			t.Errorf("%s read for the audit: %d, named %v, want %v", target, r.status, named(last()), want[1:])
		}
	}
	f.proxy.AuditEveryDisclosure = false
	// The patient in context stays the one named; nothing else of theirs goes out.
	patient := f.token("launch/patient patient/*.rs", nil)
	if r := f.do("GET", "/Observation", patient, ""); r.status != 200 || last().Patient != "p1" || last().Patients != nil {
		t.Errorf("a patient app's search named %q %v", last().Patient, last().Patients)
	}
}

// TestAuditNamesThePatientsInPart: where every disclosure is audited
// (AuditEveryDisclosure) or the answer is read anyway, a record answered
// in part is named for its patient too: an element selection keeps the
// references that name it (and meta, its labels); a summary that leaves
// them out is refused unless the request names its patient, and then the
// record is named for that patient. Found by probing the sandbox: a
// clinician's Observation?category=laboratory&_elements=code disclosed
// two patients' results, _summary=text too, and their events named
// neither; a ResearchSubject's individual, an AppointmentResponse's actor
// and a Provenance about the Patient went unnamed whole.
func TestAuditNamesThePatientsInPart(t *testing.T) {
	f := newFixture(t)
	for _, r := range []map[string]any{
		{"resourceType": "ResearchSubject", "id": "rs-1", "status": "on-study", "study": map[string]any{"reference": "ResearchStudy/s1"}, "individual": map[string]any{"reference": "Patient/p2"}},
		{"resourceType": "AppointmentResponse", "id": "ar-1", "participantStatus": "accepted", "appointment": map[string]any{"reference": "Appointment/a1"}, "actor": map[string]any{"reference": "Patient/p2"}},
		{"resourceType": "Provenance", "id": "prov-1", "recorded": "2026-01-01T00:00:00Z", "target": []any{map[string]any{"reference": "Patient/p2"}}},
		{"resourceType": "Appointment", "id": "a1", "status": "booked", "participant": []any{map[string]any{"status": "accepted", "actor": map[string]any{"reference": "Patient/p2"}}}},
	} {
		f.up.resources[r["resourceType"].(string)+"/"+r["id"].(string)] = r
	}
	last := func() audit.Event { evs := f.audit.Events(); return evs[len(evs)-1] }
	named := func() []string {
		e := last()
		out := slices.DeleteFunc(append([]string{e.Patient}, e.Patients...), func(p string) bool { return p == "" })
		slices.Sort(out)
		return out
	}
	system := f.token("system/*.rs", everyLabel())
	user := f.token("user/*.rs", nil) // labels judged: the answers are read
	f.proxy.AuditEveryDisclosure = true
	for _, c := range []struct {
		target, tok string
		want        []string
		elements    string // forwarded
	}{
		{"/Observation?category=laboratory&_elements=code", system, []string{"p1", "p2"}, "code,meta,subject"},
		{"/Observation/lab-2?_elements=status", system, []string{"p2"}, "status,meta,subject"},
		{"/Observation?category=laboratory&_elements=code", user, []string{"p1", "p2"}, "code,meta,subject"},
		{"/Appointment?_elements=status", system, []string{"p2"}, "status,meta,participant"},
		{"/Observation?_summary=true", system, []string{"p1", "p2"}, ""}, // its subject is a summary element
		{"/Observation?patient=p1&_summary=text", system, []string{"p1"}, ""},
		{"/Patient/p1/Observation?_summary=text", user, []string{"p1"}, ""},
		{"/?_type=Observation&patient=p1&_summary=text", system, []string{"p1"}, ""},
		{"batch:Observation?patient=p1&_summary=text", system, []string{"p1"}, ""}, // as on its own (found by probing: named no one)
		{"/?_type=Observation,Appointment&_elements=status", system, []string{"p1", "p2"}, "status,meta,subject,participant"},
		{"/ResearchSubject/rs-1", system, []string{"p2"}, ""},
		{"/AppointmentResponse/ar-1", system, []string{"p2"}, ""},
		{"/Provenance/prov-1", system, []string{"p2"}, ""},
		{"/Practitioner?_elements=name", system, nil, "name,meta"},
	} {
		method, target, body := "GET", c.target, ""
		if search, ok := strings.CutPrefix(c.target, "batch:"); ok {
			method, target, body = "POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"`+search+`"}}]}`
		}
		r := f.do(method, target, c.tok, body)
		got := f.up.requests()
		if r.status != 200 || len(got) != 1 || got[0].URL.Query().Get("_elements") != c.elements || !slices.Equal(named(), c.want) {
			t.Errorf("%s: %d, forwarded %v, named %v; want %v", c.target, r.status, got, named(), c.want)
		}
		f.up.reset()
	}
	for _, c := range []struct{ target, tok string }{
		{"/Observation?category=laboratory&_summary=text", system},
		{"/Observation/lab-2?_summary=text", system},
		{"/Observation?category=laboratory&_summary=text", user},
		{"/Appointment?_summary=true", system}, // its participants are not a summary element
		{"/Encounter?_summary=true&_revinclude=Appointment:actor", system},
		{"/Encounter?_summary=text&_include=*", system},
		{"/?_type=Observation&_summary=text", system},
	} {
		r := f.do("GET", c.target, c.tok, "")
		f.refused(c.target, r, http.StatusBadRequest)
		if d := diagnostics(r); !strings.Contains(d, "use _elements") {
			t.Errorf("%s: %q", c.target, d)
		}
	}
	// Without it, an answer the request proves allowed passes unread, as asked.
	f.proxy.AuditEveryDisclosure = false
	for target, elements := range map[string]string{"/Observation/lab-2?_summary=text": "", "/Observation?category=laboratory&_elements=code": "code"} {
		if r := f.do("GET", target, system, ""); r.status != 200 || f.up.requests()[0].URL.Query().Get("_elements") != elements {
			t.Errorf("%s unread: %d, forwarded %v", target, r.status, f.up.requests())
		}
		f.up.reset()
	}
}

// TestAuditNamesThePatientsOfBoundRecords: a Binary and a Provenance,
// judged by the records they are bound to (its securityContext, its
// targets), are named in the audit for those records' patients, as the
// proxy read them: a document's content is its patient's. For a token
// that sees everything, which judges none, they are read for the audit
// where every disclosure is named (AuditEveryDisclosure). Found by
// probing the sandbox: a clinician's search of Provenances about three
// patients' conditions named none.
func TestAuditNamesThePatientsOfBoundRecords(t *testing.T) {
	f := newFixture(t)
	for _, r := range []map[string]any{
		{"resourceType": "DocumentReference", "id": "doc-2", "status": "current", "subject": map[string]any{"reference": "Patient/p2"},
			"content": []any{map[string]any{"attachment": map[string]any{"url": "Binary/bin-2"}}}},
		{"resourceType": "Binary", "id": "bin-2", "contentType": "text/plain", "data": "aGk=", "securityContext": map[string]any{"reference": "DocumentReference/doc-2"}},
		{"resourceType": "Provenance", "id": "prov-2", "recorded": "2026-01-01T00:00:00Z", "target": []any{map[string]any{"reference": "Observation/lab-2"}},
			"agent": []any{map[string]any{"who": map[string]any{"reference": "Practitioner/dr"}}}},
		{"resourceType": "Provenance", "id": "prov-12", "recorded": "2026-01-01T00:00:00Z", "target": []any{map[string]any{"reference": "Observation/lab-1"}, map[string]any{"reference": "Observation/lab-2"}},
			"agent": []any{map[string]any{"who": map[string]any{"reference": "Practitioner/dr"}}}},
	} {
		f.up.resources[r["resourceType"].(string)+"/"+r["id"].(string)] = r
	}
	user := f.token("user/*.rs", nil) // labels judged: the bound records are read
	// Of every label, with AuditEveryDisclosure: read for the audit alone.
	system := f.token("system/*.rs", everyLabel())
	for target, want := range map[string][]string{
		"/Binary/bin-2":                  {"p2"},
		"/Provenance/prov-2":             {"p2"},
		"/Provenance/prov-12":            {"p1", "p2"},
		"/Provenance?_id=prov-2,prov-12": {"p1", "p2"},
		"batch:Provenance?_id=prov-2":    {"p2"}, // as on its own (found by probing: named no one)
	} {
		method, body := "GET", ""
		if search, ok := strings.CutPrefix(target, "batch:"); ok {
			method, target, body = "POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"`+search+`"}}]}`
		}
		for _, tok := range []string{user, system} {
			f.proxy.AuditEveryDisclosure = tok == system
			r := f.do(method, target, tok, body, "Accept", "application/fhir+json")
			evs := f.audit.Events()
			e := evs[len(evs)-1]
			named := slices.Sorted(slices.Values(slices.DeleteFunc(append([]string{e.Patient}, e.Patients...), func(p string) bool { return p == "" })))
			if r.status != 200 || !slices.Equal(named, want) {
				t.Errorf("%s (full clearance %v): %d, named %v, want %v: %.200s", target, tok == system, r.status, named, want, r.raw)
			}
		}
	}
	// Without AuditEveryDisclosure, a full clearance's answer goes unread:
	// nothing is read for it.
	f.proxy.AuditEveryDisclosure = false
	f.up.reset()
	if r := f.do("GET", "/Provenance/prov-12", system, ""); r.status != 200 || len(f.up.requests()) != 1 {
		t.Errorf("unread: %d, sent %d requests", r.status, len(f.up.requests()))
	}
}

// TestAuditNamesWhoseRecordsAWriteChanges: a write's audit events (the
// one before it goes and the one after) name the patients whose records
// it changes: the new content's, and the stored version's it replaces or
// deletes, which the proxy reads for a delete too where every disclosure
// is audited. Found by probing the sandbox: a clinician's DELETE of a
// patient's Condition named no patient, an update that moved a reading
// to another patient named only the new one, and a transaction's events
// named none.
func TestAuditNamesWhoseRecordsAWriteChanges(t *testing.T) {
	f := newFixture(t)
	f.proxy.AuditEveryDisclosure = true
	system := f.token("system/Observation.cruds", everyLabel())
	user := f.token("user/Observation.cruds", nil) // labels judged: the stored version is read anyway
	provenances := f.token("user/Provenance.cruds user/Observation.rs", nil)
	f.up.resources["Provenance/prov-2"] = map[string]any{"resourceType": "Provenance", "id": "prov-2", "recorded": "2026-01-01T00:00:00Z",
		"target": []any{map[string]any{"reference": "Observation/lab-2"}}, "agent": []any{map[string]any{"who": map[string]any{"reference": "Practitioner/dr"}}}}
	obs := func(id, patient string) string {
		if id != "" {
			id = `"id":"` + id + `",`
		}
		return `{"resourceType":"Observation",` + id + `"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`
	}
	for _, c := range []struct {
		method, target, tok, body string
		want                      []string
		reads                     int // of the stored version, before the write
	}{
		{"POST", "/Observation", system, obs("", "p2"), []string{"p2"}, 0},
		{"PUT", "/Observation/lab-1", system, obs("lab-1", "p2"), []string{"p1", "p2"}, 1}, // moved to another patient
		{"DELETE", "/Observation/lab-2", system, "", []string{"p2"}, 1},
		{"DELETE", "/Observation/lab-1", user, "", []string{"p1"}, 1},
		// A Provenance's: of the records it is about, as read to judge it.
		{"PUT", "/Provenance/prov-2", provenances, `{"resourceType":"Provenance","id":"prov-2","recorded":"2026-01-02T00:00:00Z","target":[{"reference":"Observation/lab-2"}],` +
			`"agent":[{"who":{"reference":"Practitioner/dr"}}]}`, []string{"p2"}, 3},
		{"POST", "/", system, `{"resourceType":"Bundle","type":"transaction","entry":[` +
			`{"request":{"method":"POST","url":"Observation"},"resource":` + obs("", "p1") + `},` +
			`{"request":{"method":"PUT","url":"Observation/lab-2"},"resource":` + obs("lab-2", "p2") + `}]}`, []string{"p1", "p2"}, 1},
	} {
		before := len(f.audit.Events())
		r := f.do(c.method, c.target, c.tok, c.body, "Prefer", "return=minimal") // (named before the answer is read)
		evs := f.audit.Events()[before:]
		reads := 0
		for _, q := range f.up.requests() {
			if q.Method == http.MethodGet {
				reads++
			}
		}
		if r.status >= 300 || len(evs) != 2 || reads != c.reads {
			t.Fatalf("%s %s: %d, %d events, %d reads first: %.300s", c.method, c.target, r.status, len(evs), reads, r.raw)
		}
		for _, e := range evs {
			named := slices.Sorted(slices.Values(append([]string{e.Patient}, e.Patients...)))
			if !slices.Equal(named, c.want) {
				t.Errorf("%s %s: the event %q names %v, want %v", c.method, c.target, e.Reason, named, c.want)
			}
		}
		f.up.reset()
	}
	// Without it, a delete the token may make whatever is stored goes
	// unread, as asked.
	f.proxy.AuditEveryDisclosure = false
	if r := f.do("DELETE", "/Observation/lab-2", system, ""); r.status >= 300 || len(f.up.requests()) != 1 {
		t.Errorf("a delete without AuditEveryDisclosure: %d, sent %v", r.status, f.up.requests())
	}
}

// TestBatchTwins: a batch or transaction Bundle goes upstream as sent, so a
// member name that repeats another under case folding is refused anywhere
// in it (found by probing: `"Method":"DELETE"` beside `"method":"GET"`, or
// an `"Entry"` array beside `"entry"`, went upstream unjudged, and a
// server whose JSON reader folds names, as Go's and ASP.NET's defaults do,
// ran a delete for a read-only token).
func TestBatchTwins(t *testing.T) {
	f := newFixture(t)
	tok := f.token("user/Observation.rs", everyLabel())
	for name, body := range map[string]string{
		"method twin":  `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/lab-1","Method":"DELETE"}}]}`,
		"url twin":     `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/lab-1","URL":"Patient/p2"}}]}`,
		"request twin": `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/lab-1"},"Request":{"method":"DELETE","url":"Observation/lab-1"}}]}`,
		"entry twin":   `{"resourceType":"Bundle","type":"batch","entry":[],"Entry":[{"request":{"method":"DELETE","url":"Observation/lab-1"}}]}`,
		"unseen entry": `{"resourceType":"Bundle","type":"batch","Entry":[{"request":{"method":"DELETE","url":"Observation/lab-1"}}]}`,
		"type twin":    `{"resourceType":"Bundle","type":"batch","Type":"transaction","entry":[{"request":{"method":"GET","url":"Observation/lab-1"}}]}`,
	} {
		r := f.do("POST", "/", tok, body)
		if name == "unseen entry" && r.status == 200 {
			// No twin here: the Bundle has no "entry" the proxy reads, but
			// one a folding server would; it must not pass either.
			t.Errorf("%s: passed", name)
		}
		f.refused(name, r, http.StatusBadRequest)
	}
	if r := f.do("POST", "/", tok, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/lab-1"}}]}`); r.status != 200 {
		t.Errorf("a plain batch: %d %s", r.status, r.raw)
	}
}

// TestParameterNameCase: FHIR's parameter names are case-sensitive, and the
// proxy judges its special parameters by name; one written in another case
// is refused, not forwarded for a server that matches names without case to
// run (found by probing: `_HAS`, `_SUMMARY=count`, `_Filter`, `_LIST` and
// `_REVINCLUDE` passed as names the proxy did not know). Case goes by
// Unicode folding, as such servers fold (ſ is s). So is an access_token in
// any case.
func TestParameterNameCase(t *testing.T) {
	f := newFixture(t)
	patient := f.token("launch/patient patient/*.rs", nil)
	user := f.token("user/*.rs", nil)
	for _, c := range []struct{ tok, target string }{
		{patient, "/Practitioner?_HAS:Observation:performer:subject=Patient/p2"},
		{patient, "/Observation?_Filter=subject%20eq%20Patient/p2"},
		{patient, "/Observation?_LIST=l1"},
		{patient, "/Practitioner?_REVINCLUDE=Observation:performer"},
		{patient, "/Observation?_Elements=id"},
		{patient, "/Observation?_lastupdated=gt2020"},
		{user, "/Observation?_SUMMARY=count"},
		{user, "/Observation?_Contained=true"},
		{user, "/Observation?_has:Observation:patient:code=x&_Has:Observation:patient:code=y"},
		{patient, "/Observation?subject:NOT=Patient/p1"},
		{patient, "/Observation?_include:ITERATE=Observation:subject"},
		{user, "/Observation?code:Missing=true"},
		{patient, "/Practitioner?_ha%C5%BF:Observation:performer:subject=Patient/p2"}, // ſ, which folds to s
		{patient, "/Patient?identifier:OF-TYPE=x"},
	} {
		f.refused(c.target, f.do("GET", c.target, c.tok, ""), http.StatusBadRequest)
	}
	f.refused("Access_Token", f.do("GET", "/Observation?Access_Token=x", patient, ""), http.StatusBadRequest)
	for _, target := range []string{"/Observation?_lastUpdated=gt2020&_count=5", "/Observation?_getpagesoffset=10"} {
		if r := f.do("GET", target, patient, ""); r.status != 200 {
			t.Errorf("%s: %d %s", target, r.status, r.raw)
		}
		f.up.reset()
	}
}

// TestReferencedBinaries: a written record's references to a Binary, and
// its attachments' urls (a DocumentReference's content, a Patient's
// photo), are judged as a read of the Binary is: by the record its
// securityContext names. Found by probing: a patient app could file
// another patient's document (Binary/b2, bound to Patient/p2) as its
// patient's DocumentReference, which a viewer would show as p1's, and an
// extension naming it was created where one naming a missing Binary was
// refused (an existence oracle). Nothing but reads reaches the upstream.
func TestReferencedBinaries(t *testing.T) {
	f := newFixture(t)
	bin := func(id, context string) map[string]any {
		b := map[string]any{"resourceType": "Binary", "id": id, "contentType": "text/plain", "data": "eA=="}
		if context != "" {
			b["securityContext"] = map[string]any{"reference": context}
		}
		return b
	}
	f.up.mu.Lock()
	for _, b := range []map[string]any{bin("b1", "Patient/p1"), bin("b2", "Patient/p2"), bin("b3", "Observation/lab-2"), bin("free", "")} {
		f.up.resources["Binary/"+b["id"].(string)] = b
	}
	f.up.mu.Unlock()
	app := f.token("launch/patient patient/Observation.cruds patient/DocumentReference.cruds patient/Binary.rs patient/Patient.rus", nil)
	doc := func(url string) string {
		return `{"resourceType":"DocumentReference","status":"current","subject":{"reference":"Patient/p1"},"content":[{"attachment":{"contentType":"text/plain","url":"` + url + `"}}]}`
	}
	extension := func(ref string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"extension":[{"url":"http://example.org/x","valueReference":{"reference":"` + ref + `"}}]}`
	}
	type write struct{ method, target, body string }
	for name, c := range map[string]write{
		"an extension naming another patient's Binary": {"POST", "/Observation", extension("Binary/b2")},
		"one bound to another patient's record":        {"POST", "/Observation", extension("Binary/b3")},
		"one bound to nothing":                         {"POST", "/Observation", extension("Binary/free")},
		"an attachment of another patient's Binary":    {"POST", "/DocumentReference", doc("Binary/b2")},
		"an absolute url on the upstream":              {"POST", "/DocumentReference", doc(f.up.ts.URL + "/Binary/b2")},
		"a versioned url":                              {"POST", "/DocumentReference", doc("Binary/b2/_history/1")},
		"a missing Binary":                             {"POST", "/DocumentReference", doc("Binary/nope")},
		"an attachment in a contained resource": {"POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},` +
			`"contained":[` + strings.Replace(doc("Binary/b2"), `{"resourceType":"DocumentReference",`, `{"resourceType":"DocumentReference","id":"d",`, 1) + `],"derivedFrom":[{"reference":"#d"}]}`},
		"the patient's photo": {"PUT", "/Patient/p1", `{"resourceType":"Patient","id":"p1","name":[{"family":"One"}],"identifier":[{"system":"urn:mrn","value":"1"}],` +
			`"photo":[{"contentType":"image/png","url":"Binary/b2"}]}`},
		"in a transaction": {"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"DocumentReference"},"resource":` + doc("Binary/b2") + `}]}`},
	} {
		r := f.do(c.method, c.target, app, c.body)
		if r.status != http.StatusForbidden || !strings.Contains(diagnostics(r), "not a record this token may see") {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	// A url the viewer could resolve to a record in another form than the
	// proxy reads is refused as a reference in that form would be.
	for _, u := range []string{"Binary/b2/", "./Binary/b2", " Binary/b2"} {
		f.refused("an attachment url "+strconv.Quote(u), f.do("POST", "/DocumentReference", app, doc(u)), http.StatusBadRequest)
	}
	// Its own patient's Binary may be named; so may a document elsewhere,
	// a url naming no record (cid:), and what the stored version holds
	// (an EHR-filed document's url, sent back as read).
	f.up.mu.Lock()
	f.up.resources["DocumentReference/ehr-doc"] = map[string]any{"resourceType": "DocumentReference", "id": "ehr-doc", "status": "current",
		"subject": map[string]any{"reference": "Patient/p1"}, "content": []any{map[string]any{"attachment": map[string]any{"url": "Binary/b2"}}}}
	f.up.mu.Unlock()
	for name, c := range map[string]write{
		"its own patient's Binary": {"POST", "/DocumentReference", doc("Binary/b1")},
		"a document elsewhere":     {"POST", "/DocumentReference", doc("https://docs.example.org/d/1.pdf")},
		"a MIME part":              {"POST", "/DocumentReference", doc("cid:part-1")},
		"as stored":                {"PUT", "/DocumentReference/ehr-doc", strings.Replace(doc("Binary/b2"), `{"resourceType":"DocumentReference",`, `{"resourceType":"DocumentReference","id":"ehr-doc",`, 1)},
	} {
		r := f.do(c.method, c.target, app, c.body)
		if r.status != http.StatusOK && r.status != http.StatusCreated {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.up.reset()
	}
	// Without patient context, where labels are judged, a Binary bound to
	// a record the clearance withholds (psy-1) is named by no create or
	// patch of any kind.
	f.up.mu.Lock()
	f.up.resources["Binary/bpsy"] = bin("bpsy", "Observation/psy-1")
	f.up.mu.Unlock()
	clinician := f.token("user/DocumentReference.cruds user/Binary.rs user/Observation.rs", nil)
	for name, c := range map[string]struct {
		method, target, body string
		hdr                  []string
	}{
		"a clinician's create": {"POST", "/DocumentReference", doc("Binary/bpsy"), nil},
		"a FHIRPath Patch": {"PATCH", "/DocumentReference/ehr-doc", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[` +
			`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"DocumentReference.content[0].attachment.url"},{"name":"value","valueUrl":"Binary/bpsy"}]}]}`, nil},
		"a JSON Patch": {"PATCH", "/DocumentReference/ehr-doc", `[{"op":"replace","path":"/content/0/attachment/url","value":"Binary/bpsy"}]`,
			[]string{"Content-Type", "application/json-patch+json"}},
	} {
		r := f.do(c.method, c.target, clinician, c.body, c.hdr...)
		if r.status != http.StatusForbidden || !strings.Contains(diagnostics(r), "not a record this token may see") {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	// A Patient's own references are checked as any record's (its links
	// as stored aside: TestPatientLinks).
	r := f.do("PUT", "/Patient/p1", app, `{"resourceType":"Patient","id":"p1","name":[{"family":"One"}],`+
		`"identifier":[{"system":"urn:mrn","value":"1"}],"generalPractitioner":[{"reference":"Practitioner/nope"}]}`)
	if r.status != http.StatusForbidden {
		t.Errorf("a Patient naming a missing practitioner: %d %s", r.status, r.raw)
	}
	f.onlyReads("a Patient naming a missing practitioner")
}

// TestWritesNameNoOtherPatient: with patient context, a written record may
// refer to its own patient only. The CompartmentDefinition puts a record
// in the compartment of every patient its fields name (an Observation's
// performer too), so naming another would write into that patient's
// compartment, and a server checking references would tell whether that
// patient exists (found by probing: only the subject was checked). Any
// form counts: relative, versioned, absolute on this server, in a
// contained resource; another server's Patient is not one of this
// server's. Nothing reaches the upstream. Nor may it refer to another
// patient's record of another type (an Observation as hasMember).
func TestWritesNameNoOtherPatient(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.cruds", nil)
	for name, body := range map[string]string{
		"a performer":          withMember("performer", []any{reference("Patient/p2")}),
		"versioned":            withMember("performer", []any{reference("Patient/p2/_history/1")}),
		"absolute":             withMember("performer", []any{reference(f.up.ts.URL + "/Patient/p2")}),
		"on the proxy's base":  withMember("focus", []any{reference(f.base + "/Patient/p2")}),
		"in a contained":       withMember("contained", []any{map[string]any{"resourceType": "Specimen", "id": "s", "subject": reference("Patient/p2")}}),
		"deep in an extension": withMember("extension", []any{map[string]any{"url": "urn:x", "valueReference": reference("Patient/p2")}}),
	} {
		f.refused(name, f.do("POST", "/Observation", tok, body), http.StatusForbidden)
	}
	if r := f.do("PUT", "/Observation/lab-1", tok, strings.Replace(withMember("performer", []any{reference("Patient/p2")}), "{", `{"id":"lab-1",`, 1)); r.status != http.StatusForbidden {
		t.Errorf("an update: %d %s", r.status, r.raw)
	}
	f.onlyReads("an update") // the stored version's
	for name, body := range map[string]string{
		"its own patient":       withMember("performer", []any{reference("Patient/p1"), reference(f.base + "/Patient/p1")}),
		"another server's":      withMember("performer", []any{reference("https://other.example/fhir/Patient/p2")}),
		"its own records":       withMember("hasMember", []any{reference("Observation/vs-1"), reference(f.base + "/Observation/lab-1")}),
		"shared types":          withMember("performer", []any{reference("Practitioner/dr")}),
		"a Patient in its text": withMember("note", []any{map[string]any{"text": "Patient/p2"}}),
	} {
		if r := f.do("POST", "/Observation", tok, body); r.status != http.StatusCreated {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.up.reset()
	}
	// The records of the compartment's types it refers to are read, and must
	// be the patient's and within its clearance: another patient's, a
	// withheld one and a missing one are refused alike, only reads sent.
	answers := map[string]string{}
	for name, target := range map[string]string{"another patient's": "Observation/lab-2", "withheld": "Observation/psy-1",
		"missing": "Observation/nope", "another's, absolute": f.up.ts.URL + "/Observation/lab-2"} {
		r := f.do("POST", "/Observation", tok, withMember("hasMember", []any{reference("Observation/vs-1"), reference(target)}))
		if r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
		answers[name] = strings.NewReplacer("Observation/lab-2", "X", "Observation/psy-1", "X", "Observation/nope", "X", "Condition/nope", "X").Replace(r.raw)
	}
	for name, a := range answers {
		if a != answers["missing"] {
			t.Errorf("%s answers %s, a missing record %s", name, a, answers["missing"])
		}
	}
	// A record of a type the token may not read is refused too: its
	// existence is not the app's to learn.
	own := withMember("focus", []any{reference("Condition/c-1")})
	f.refused("a type the token may not read", f.do("POST", "/Observation", tok, own), http.StatusForbidden)
	if r := f.do("POST", "/Observation", f.token("launch/patient patient/Observation.cruds patient/Condition.rs", nil), own); r.status != http.StatusCreated {
		t.Errorf("its own condition, readable: %d %s", r.status, r.raw)
	}
	f.up.reset()
}

// TestWritesKeepWhatTheyHad: what the stored version already refers to may
// be written again (an app sends back the record it read, with a change):
// a clinician's record of p1 naming p2 as performer, one naming a withheld
// record. Only a reference it adds is checked.
func TestWritesKeepWhatTheyHad(t *testing.T) {
	f := newFixture(t)
	stored := obs("lab-1", "p1", "laboratory")
	stored["performer"] = []any{reference("Patient/p2")}
	stored["hasMember"] = []any{reference("Observation/psy-1")}
	f.up.resources["Observation/lab-1"] = stored
	sent := func(change func(map[string]any)) string {
		r := obs("lab-1", "p1", "laboratory")
		r["performer"] = []any{reference("Patient/p2")}
		r["hasMember"] = []any{reference("Observation/psy-1")}
		r["status"] = "amended"
		if change != nil {
			change(r)
		}
		return mustJSON(r)
	}
	for name, tok := range map[string]string{
		"a patient app": f.token("launch/patient patient/Observation.cruds", nil),
		"a user app":    f.token("user/Observation.cruds", nil),
	} {
		if r := f.do("PUT", "/Observation/lab-1", tok, sent(nil)); r.status != http.StatusOK {
			t.Errorf("%s, sending back what it read: %d %s", name, r.status, r.raw)
		}
		f.up.reset()
		added := sent(func(r map[string]any) {
			r["hasMember"] = []any{reference("Observation/psy-1"), reference("Observation/nope")}
		})
		if r := f.do("PUT", "/Observation/lab-1", tok, added); r.status != http.StatusForbidden {
			t.Errorf("%s, adding a reference to a missing record: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	patient := f.token("launch/patient patient/Observation.cruds", nil)
	moved := strings.Replace(mustJSON(obs("vs-1", "p1", "vital-signs")), "{", `{"performer":[{"reference":"Patient/p2"}],`, 1)
	if r := f.do("PUT", "/Observation/vs-1", patient, moved); r.status != http.StatusForbidden {
		t.Errorf("a patient app adding another patient: %d %s", r.status, r.raw)
	}
	f.onlyReads("a patient app adding another patient")
}

// TestWritesNameNoWithheldRecord: with a clearance short of every label, a
// write may not name a record the clearance withholds: a server that checks
// references would accept it where it refuses a missing one, telling that
// the withheld record exists (found by probing: a hasMember naming a PSY
// Observation, or a subject naming a restricted patient, went upstream).
// Each record named is read; a withheld one and a missing one are refused
// alike, in a resource or a patch, and only reads reach the upstream. An
// access that sees everything names what it likes, unread.
func TestWritesNameNoWithheldRecord(t *testing.T) {
	f := newFixture(t)
	vip := map[string]any{"resourceType": "Patient", "id": "vip", "meta": map[string]any{"security": []any{
		map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}}}}
	f.up.resources["Patient/vip"] = vip
	user := f.token("user/Observation.cruds user/Patient.rs", nil)
	jsonPatch := []string{"Content-Type", "application/json-patch+json"}
	mask := strings.NewReplacer("Observation/psy-1", "X", "Observation/nope", "X", "Patient/vip", "X", "Patient/nope", "X")
	answers := map[string]string{}
	for name, c := range map[string]struct {
		method, target, body string
		hdr                  []string
	}{
		"a withheld member":             {"POST", "/Observation", withMember("hasMember", []any{reference("Observation/psy-1")}), nil},
		"a missing member":              {"POST", "/Observation", withMember("hasMember", []any{reference("Observation/nope")}), nil},
		"a withheld patient":            {"POST", "/Observation", withMember("subject", reference("Patient/vip")), nil},
		"a missing patient":             {"POST", "/Observation", withMember("subject", reference("Patient/nope")), nil},
		"a patched member":              {"PATCH", "/Observation/lab-1", `[{"op":"add","path":"/hasMember","value":[{"reference":"Observation/psy-1"}]}]`, jsonPatch},
		"a patched reference, a string": {"PATCH", "/Observation/lab-1", `[{"op":"replace","path":"/subject/reference","value":"Patient/vip"}]`, jsonPatch},
	} {
		r := f.do(c.method, c.target, user, c.body, c.hdr...)
		if r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
		answers[name] = mask.Replace(r.raw)
	}
	for name, a := range answers {
		if a != answers["a missing member"] {
			t.Errorf("%s answers %s, a missing record %s", name, a, answers["a missing member"])
		}
	}
	for name, body := range map[string]string{
		"records it may see": withMember("hasMember", []any{reference("Observation/lab-2")}),
		"a practitioner":     withMember("performer", []any{reference("Practitioner/dr")}),
		"another patient":    withMember("subject", reference("Patient/p2")),
	} {
		if r := f.do("POST", "/Observation", user, body); r.status != http.StatusCreated {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.up.reset()
	}
	cleared := f.token("system/Observation.cruds", everyLabel())
	if r := f.do("POST", "/Observation", cleared, withMember("hasMember", []any{reference("Observation/psy-1")})); r.status != http.StatusCreated {
		t.Errorf("an access that sees everything: %d %s", r.status, r.raw)
	}
	if got := f.up.requests(); len(got) != 1 || got[0].Method != http.MethodPost {
		t.Errorf("an access that sees everything: the upstream received %v", got)
	}
	f.up.reset()
}

// TestOddReferences: wherever answers are judged, a written reference must
// have a form the proxy reads (Type/id, versioned, absolute on this server,
// #contained, urn:uuid or urn:oid, another server's URL): a FHIR server may
// read an odd one (a trailing slash, a space, a dot segment) as one of
// those, past the checks the proxy made (found by probing: "Patient/p2/"
// passed the check for other patients, and "Observation/psy-1/" the one
// for withheld records). Nothing is written.
func TestOddReferences(t *testing.T) {
	f := newFixture(t)
	patient := f.token("launch/patient patient/Observation.cruds", nil)
	user := f.token("user/Observation.cruds", nil)
	for name, c := range map[string]struct{ tok, member, ref string }{
		"another patient, a trailing slash": {patient, "performer", "Patient/p2/"},
		"another patient, a space":          {patient, "performer", " Patient/p2"},
		"another patient, a dot segment":    {patient, "performer", "./Patient/p2"},
		"another patient, absolute, slash":  {patient, "performer", f.up.ts.URL + "/Patient/p2/"},
		"a withheld record, a slash":        {user, "hasMember", "Observation/psy-1/"},
		"a withheld record, two slashes":    {user, "hasMember", "Observation//psy-1"},
		"a withheld record, history":        {user, "hasMember", "Observation/psy-1/_history"},
		"a withheld record, a fragment":     {user, "hasMember", "Observation/psy-1#x"},
		"a withheld record, absolute space": {user, "hasMember", " " + f.up.ts.URL + "/Observation/psy-1"},
	} {
		v := any(reference(c.ref))
		if c.member != "subject" {
			v = []any{v}
		}
		r := f.do("POST", "/Observation", c.tok, withMember(c.member, v))
		if r.status != http.StatusBadRequest && r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	// In a patch, a string that begins like a reference must be one.
	jsonPatch := []string{"Content-Type", "application/json-patch+json"}
	for _, v := range []string{"Observation/psy-1/", " Patient/p2", f.up.ts.URL + "/Observation/psy-1/"} {
		r := f.do("PATCH", "/Observation/lab-1", user, `[{"op":"replace","path":"/subject/reference","value":`+strconv.Quote(v)+`}]`, jsonPatch...)
		if r.status != http.StatusBadRequest {
			t.Errorf("a patched reference %q: %d %s", v, r.status, r.raw)
		}
		f.onlyReads(v)
	}
	for name, ref := range map[string]string{"contained": "#c", "a Bundle entry's": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
		"another server's": "https://other.example/fhir/Observation/1", "versioned": "Observation/lab-2/_history/1"} {
		if r := f.do("POST", "/Observation", user, withMember("hasMember", []any{reference(ref)})); r.status != http.StatusCreated {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		f.up.reset()
	}
}
