package fhirproxy_test

import (
	"cmp"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
)

// terminology adds to the fixture's upstream a value set, one labelled
// restricted, a code system and a concept map, and lets patient/ tokens
// read those types outside the compartment.
func terminology(f *fixture) {
	f.up.mu.Lock()
	defer f.up.mu.Unlock()
	for _, r := range []map[string]any{
		{"resourceType": "ValueSet", "id": "colours", "url": "http://example.org/vs/colours", "status": "active"},
		{"resourceType": "ValueSet", "id": "secret", "url": "http://example.org/vs/secret", "status": "active",
			"meta": map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}}}},
		{"resourceType": "CodeSystem", "id": "cs", "url": "http://example.org/cs", "status": "active", "content": "complete"},
		{"resourceType": "ConceptMap", "id": "cm", "url": "http://example.org/cm", "status": "active"},
	} {
		f.up.resources[r["resourceType"].(string)+"/"+r["id"].(string)] = r
	}
	f.proxy.SharedTypes = []string{"Practitioner", "ValueSet", "CodeSystem", "ConceptMap"}
}

// sentPaths are the paths and queries the upstream received, in order.
func (f *fixture) sentPaths() []string {
	var out []string
	for _, g := range f.up.requests() {
		out = append(out, g.Method+" "+g.URL.Path+"?"+g.URL.RawQuery)
	}
	return out
}

// TestTerminologyOperations: the operations of the proxy's table are
// allowed to tokens that may read the terminology they run on, with their
// parameters checked; the resource they run on is judged first for a
// clearance short of every label (a withheld value set is not expanded),
// and their answers are judged (type, labels, no records inside).
func TestTerminologyOperations(t *testing.T) {
	f := newFixture(t)
	terminology(f)
	user := f.token("user/ValueSet.rs user/CodeSystem.rs user/ConceptMap.rs", everyLabel())
	restricted := f.token("user/ValueSet.rs user/CodeSystem.rs", nil)
	patient := f.token("launch/patient patient/ValueSet.rs patient/CodeSystem.r", nil)
	system := f.token("system/ConceptMap.rs system/ValueSet.r", everyLabel())
	for _, c := range []struct {
		name, tok, target, answer string
		sent                      []string // what the upstream received, in order
	}{
		{"expand by url", user, "/ValueSet/$expand?url=http://example.org/vs/colours&filter=re&count=10", "ValueSet",
			[]string{"GET /ValueSet/$expand?url=http%3A%2F%2Fexample.org%2Fvs%2Fcolours&filter=re&count=10"}},
		{"expand an instance", user, "/ValueSet/colours/$expand?displayLanguage=en&_format=json", "ValueSet",
			[]string{"GET /ValueSet/colours/$expand?displayLanguage=en&_format=json"}},
		{"lookup with properties", user, "/CodeSystem/$lookup?system=http://example.org/cs&code=red&property=display&property=designation", "Parameters",
			[]string{"GET /CodeSystem/$lookup?system=http%3A%2F%2Fexample.org%2Fcs&code=red&property=display&property=designation"}},
		{"validate-code", user, "/ValueSet/$validate-code?url=http://example.org/vs/colours&system=http://example.org/cs&code=red", "Parameters",
			[]string{"GET /ValueSet/$validate-code?url=http%3A%2F%2Fexample.org%2Fvs%2Fcolours&system=http%3A%2F%2Fexample.org%2Fcs&code=red"}},
		{"subsumes", user, "/CodeSystem/cs/$subsumes?codeA=red&codeB=crimson", "Parameters",
			[]string{"GET /CodeSystem/cs/$subsumes?codeA=red&codeB=crimson"}},
		{"translate, system/", system, "/ConceptMap/$translate?url=http://example.org/cm&system=http://example.org/cs&code=red", "Parameters",
			[]string{"GET /ConceptMap/$translate?url=http%3A%2F%2Fexample.org%2Fcm&system=http%3A%2F%2Fexample.org%2Fcs&code=red"}},
		{"a POST without a body", user, "/ValueSet/colours/$expand", "ValueSet", []string{"POST /ValueSet/colours/$expand?"}},
		// A clearance short of every label: what the operation runs on is
		// judged first, read by its id or searched by its url.
		{"restricted, instance", restricted, "/ValueSet/colours/$expand", "ValueSet",
			[]string{"GET /ValueSet/colours?", "GET /ValueSet/colours/$expand?"}},
		{"restricted, by url", restricted, "/ValueSet/$expand?url=http://example.org/vs/colours", "ValueSet",
			[]string{"GET /ValueSet?url=http%3A%2F%2Fexample.org%2Fvs%2Fcolours", "GET /ValueSet/$expand?url=http%3A%2F%2Fexample.org%2Fvs%2Fcolours"}},
		{"restricted, a url no resource has", restricted, "/CodeSystem/$lookup?system=http://loinc.org&code=8867-4", "Parameters",
			[]string{"GET /CodeSystem?url=http%3A%2F%2Floinc.org", "GET /CodeSystem/$lookup?system=http%3A%2F%2Floinc.org&code=8867-4"}},
		{"patient app, shared type", patient, "/ValueSet/$expand?url=http://example.org/vs/colours", "ValueSet",
			[]string{"GET /ValueSet?url=http%3A%2F%2Fexample.org%2Fvs%2Fcolours", "GET /ValueSet/$expand?url=http%3A%2F%2Fexample.org%2Fvs%2Fcolours"}},
		{"patient app, instance with r only", patient, "/CodeSystem/cs/$lookup?code=red", "Parameters",
			[]string{"GET /CodeSystem/cs?", "GET /CodeSystem/cs/$lookup?code=red"}},
	} {
		method := "GET"
		if strings.HasPrefix(c.name, "a POST") {
			method = "POST"
		}
		r := f.do(method, c.target, c.tok, "")
		if r.status != http.StatusOK || r.body["resourceType"] != c.answer {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		if got := f.sentPaths(); !slices.Equal(got, c.sent) {
			t.Errorf("%s: the upstream received\n%q\nwant\n%q", c.name, got, c.sent)
		}
		f.up.reset()
	}
}

// TestTerminologyOperationRefusals: an operation of the table is refused,
// with nothing sent upstream, when the scopes do not allow it, when a
// parameter is not one it takes, and when it is not one of the table.
func TestTerminologyOperationRefusals(t *testing.T) {
	f := newFixture(t)
	terminology(f)
	user := f.token("user/ValueSet.rs user/CodeSystem.rs", everyLabel())
	for _, c := range []struct {
		name, scope, method, target, body string
		status                            int
	}{
		{"read only, at type level", "user/ValueSet.r", "GET", "/ValueSet/$expand?url=http://example.org/vs/colours", "", 403},
		{"search only, at instance level", "user/ValueSet.s", "GET", "/ValueSet/colours/$expand", "", 403},
		{"another type's scope", "user/Observation.rs", "GET", "/ValueSet/colours/$expand", "", 403},
		{"a constrained scope", "user/ValueSet.rs?status=active", "GET", "/ValueSet/$expand?url=http://example.org/vs/colours", "", 403},
		{"patient app, other type", "launch/patient patient/*.rs", "GET", "/Observation/$stats?code=8867-4", "", 403},
		{"no url at type level", "", "GET", "/ValueSet/$expand?filter=re", "", 400},
		{"the url twice", "", "GET", "/ValueSet/$expand?url=http://example.org/vs/colours&url=http://example.org/vs/secret", "", 400},
		{"a url at instance level", "", "GET", "/ValueSet/colours/$expand?url=http://example.org/vs/secret", "", 403},
		{"a system at instance level", "", "GET", "/CodeSystem/cs/$lookup?system=http://example.org/other&code=x", "", 403},
		{"context picks another value set", "", "GET", "/ValueSet/$expand?url=http://example.org/vs/colours&context=Observation.code", "", 403},
		{"a modifier", "", "GET", "/ValueSet/$expand?url=http://example.org/vs/colours&filter:exact=re", "", 403},
		{"a search parameter", "", "GET", "/ValueSet/$expand?url=http://example.org/vs/colours&_has:Observation:code:patient=p2", "", 403},
		{"a single parameter twice", "", "GET", "/CodeSystem/$lookup?system=http://example.org/cs&code=a&code=b", "", 400},
		{"_format twice", "", "GET", "/CodeSystem/$lookup?system=http://example.org/cs&code=a&_format=json&_format=json", "", 400},
		{"_format XML", "", "GET", "/CodeSystem/$lookup?system=http://example.org/cs&code=a&_format=xml", "", 406},
		{"_pretty", "", "GET", "/CodeSystem/$lookup?system=http://example.org/cs&code=a&_pretty=true", "", 403},
		{"an operation of another type", "", "GET", "/CodeSystem/cs/$expand", "", 403},
		{"an operation not in the table", "", "GET", "/ValueSet/colours/$meta", "", 403},
		{"at system level", "", "GET", "/$expand?url=http://example.org/vs/colours", "", 403},
		{"a body", "", "POST", "/ValueSet/$expand?url=http://example.org/vs/colours",
			`{"resourceType":"Parameters","parameter":[{"name":"valueSet","resource":{"resourceType":"ValueSet"}}]}`, 400},
		{"in a batch", "", "POST", "/", bundle("batch", entry("", "GET", "ValueSet/colours/$expand", "")), 403},
	} {
		tok := user
		if c.scope != "" {
			tok = f.token(c.scope, everyLabel())
		}
		f.refused(c.name, f.do(c.method, c.target, tok, c.body), c.status)
	}
	// A patient app may call them on the types it may read outside its
	// compartment only.
	f.proxy.SharedTypes = nil
	f.refused("patient app, type not shared", f.do("GET", "/ValueSet/$expand?url=http://example.org/vs/colours",
		f.token("launch/patient patient/ValueSet.rs", nil), ""), 403)
	// A mixed token's user/ scope allows it on its own terms.
	if r := f.do("GET", "/ValueSet/colours/$expand", f.token("launch/patient patient/Observation.rs user/ValueSet.r", everyLabel()), ""); r.status != http.StatusOK {
		t.Errorf("a mixed token's user/ scope: %d %s", r.status, r.raw)
	}
	f.up.reset()
	terminology(f)
	// A restricted clearance: a value set it withholds is answered as a
	// missing one, by id and by url, and only the judging read went.
	restricted := f.token("user/ValueSet.rs", nil)
	for _, c := range []struct{ target, sent string }{
		{"/ValueSet/secret/$expand", "GET /ValueSet/secret?"},
		{"/ValueSet/$expand?url=http://example.org/vs/secret", "GET /ValueSet?url=http%3A%2F%2Fexample.org%2Fvs%2Fsecret"},
	} {
		missing := f.do("GET", "/ValueSet/absent/$expand", restricted, "")
		f.up.reset()
		r := f.do("GET", c.target, restricted, "")
		if r.status != http.StatusNotFound || r.raw != missing.raw {
			t.Errorf("%s: %d %s, want what a missing one gets: %d %s", c.target, r.status, r.raw, missing.status, missing.raw)
		}
		if got := f.sentPaths(); !slices.Equal(got, []string{c.sent}) {
			t.Errorf("%s: the upstream received %q", c.target, got)
		}
		if ev := f.audit.Events()[len(f.audit.Events())-1]; ev.Outcome == audit.Success || !strings.HasPrefix(ev.Reason, "outside the grant") {
			t.Errorf("%s: audited as %+v", c.target, ev)
		}
		f.up.reset()
	}
}

// TestTerminologyOperationAnswers: an operation's answer is judged. One of
// another type, a Bundle, or a Parameters with a record inside is the
// server's error (502), and a labelled answer the clearance withholds is
// answered as missing; an OperationOutcome passes.
func TestTerminologyOperationAnswers(t *testing.T) {
	f := newFixture(t)
	terminology(f)
	user := f.token("user/ValueSet.rs user/CodeSystem.rs", nil)
	obs := map[string]any{"resourceType": "Observation", "id": "lab-2", "subject": map[string]any{"reference": "Patient/p2"}}
	for _, c := range []struct {
		name, target string
		answer       map[string]any
		status       int
	}{
		{"another type", "/ValueSet/colours/$expand", obs, 502},
		{"a Bundle", "/ValueSet/colours/$expand", map[string]any{"resourceType": "Bundle", "type": "searchset",
			"entry": []any{map[string]any{"resource": obs}}}, 502},
		{"a record in a parameter", "/CodeSystem/cs/$lookup?code=red", map[string]any{"resourceType": "Parameters",
			"parameter": []any{map[string]any{"name": "name", "valueString": "cs"}, map[string]any{"name": "x", "resource": obs}}}, 502},
		{"a record in a part", "/CodeSystem/cs/$lookup?code=red", map[string]any{"resourceType": "Parameters",
			"parameter": []any{map[string]any{"name": "property", "part": []any{map[string]any{"name": "value", "resource": obs}}}}}, 502},
		{"entries outside a Bundle", "/CodeSystem/cs/$lookup?code=red", map[string]any{"resourceType": "Parameters",
			"entry": []any{map[string]any{"resource": obs}}}, 502},
		{"a Parameters for an expansion", "/ValueSet/colours/$expand", map[string]any{"resourceType": "Parameters"}, 502},
		{"a contained record", "/ValueSet/colours/$expand", map[string]any{"resourceType": "ValueSet", "status": "active",
			"contained": []any{obs}}, 502},
		{"a labelled expansion", "/ValueSet/colours/$expand", map[string]any{"resourceType": "ValueSet", "status": "active",
			"meta": map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}}}}, 404},
		{"an outcome", "/CodeSystem/cs/$lookup?code=red", map[string]any{"resourceType": "OperationOutcome",
			"issue": []any{map[string]any{"severity": "information", "code": "informational"}}}, 200},
		{"codes", "/CodeSystem/cs/$lookup?code=red", map[string]any{"resourceType": "Parameters", "parameter": []any{
			map[string]any{"name": "display", "valueString": "Red"},
			map[string]any{"name": "designation", "part": []any{map[string]any{"name": "value", "valueString": "rouge"}}}}}, 200},
	} {
		f.up.mu.Lock()
		f.up.opAnswer = c.answer
		f.up.mu.Unlock()
		r := f.do("GET", c.target, user, "")
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.raw, c.status)
		}
		if c.status != 200 && (r.body["resourceType"] != "OperationOutcome" || strings.Contains(r.raw, "lab-2") || strings.Contains(r.raw, "PSY")) {
			t.Errorf("%s: %s", c.name, r.raw)
		}
		f.up.reset()
	}
}

// TestLastN: Observation/$lastn is a search. It is confined, constrained
// and judged as Observation's search is, and forwarded to
// Observation/$lastn with what the proxy adds; under a constraint the proxy
// evaluates, each match is held to it too, for a server that ignores it.
func TestLastN(t *testing.T) {
	f := newFixture(t)
	patient := f.token("launch/patient patient/Observation.rs", nil)
	labs := f.token("launch/patient patient/Observation.rs?category=laboratory", nil)
	for _, c := range []struct {
		name, tok, query, sent string
		ids                    []string
		misbehave              bool
	}{
		{"a patient app", patient, "category=vital-signs&max=1", "category=vital-signs&max=1&patient=Patient%2Fp1", []string{"vs-1"}, false},
		{"the patient added, and judged", patient, "code=x", "code=x&patient=Patient%2Fp1", []string{"lab-1", "vs-1"}, true},
		{"the constraint added", labs, "max=3", "max=3&category=laboratory&patient=Patient%2Fp1", []string{"lab-1"}, false},
		// A server that ignores the category in $lastn sends vs-1 too.
		{"the constraint added, and held", labs, "max=3", "max=3&category=laboratory&patient=Patient%2Fp1", []string{"lab-1"}, true},
		{"the constraint sent by the client, and held", labs, "category=laboratory", "category=laboratory&patient=Patient%2Fp1", []string{"lab-1"}, true},
	} {
		f.up.mu.Lock()
		f.up.misbehave = c.misbehave
		f.up.mu.Unlock()
		r := f.do("GET", "/Observation/$lastn?"+c.query, c.tok, "")
		if r.status != http.StatusOK || r.body["type"] != "searchset" {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		if got := entryIDs(r); !slices.Equal(got, c.ids) {
			t.Errorf("%s: entries %v, want %v", c.name, got, c.ids)
		}
		if got := f.sentPaths(); !slices.Equal(got, []string{"GET /Observation/$lastn?" + c.sent}) {
			t.Errorf("%s: the upstream received %q", c.name, got)
		}
		if ev := f.audit.Events()[len(f.audit.Events())-1]; ev.Patient != "p1" || ev.Outcome != audit.Success {
			t.Errorf("%s: audited %+v", c.name, ev)
		}
		f.up.reset()
	}
	f.up.misbehave = false
	for _, c := range []struct{ name, tok, method, target, body string }{
		{"another patient", patient, "GET", "/Observation/$lastn?patient=p2&category=laboratory", ""},
		{"another patient's subject", patient, "GET", "/Observation/$lastn?subject=Patient/p2", ""},
		{"a reverse chain", patient, "GET", "/Observation/$lastn?_has:Observation:has-member:code=x", ""},
		{"read only", f.token("launch/patient patient/Observation.r", nil), "GET", "/Observation/$lastn?category=laboratory", ""},
		{"another type's scope", f.token("launch/patient patient/Condition.rs", nil), "GET", "/Observation/$lastn?category=laboratory", ""},
		{"an instance", patient, "GET", "/Observation/lab-1/$lastn", ""},
		{"another type", patient, "GET", "/Condition/$lastn", ""},
		{"another patient, in a body", patient, "POST", "/Observation/$lastn", `{"resourceType":"Parameters","parameter":[{"name":"patient","valueString":"p2"}]}`},
		{"in a batch", f.token("user/Observation.rs", everyLabel()), "POST", "/", bundle("batch", entry("", "GET", "Observation/$lastn?code=x", ""))},
	} {
		r := f.do(c.method, c.target, c.tok, c.body)
		if r.status != http.StatusForbidden && r.status != http.StatusBadRequest {
			t.Errorf("%s: %d", c.name, r.status)
		}
		f.refused(c.name, r, r.status)
	}
}

// TestDocRef: US Core's DocumentReference/$docref is a search of the
// patient's documents, confined and judged as DocumentReference's search.
func TestDocRef(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	for _, d := range []struct{ id, patient string }{{"note-1", "p1"}, {"note-2", "p2"}} {
		f.up.resources["DocumentReference/"+d.id] = map[string]any{"resourceType": "DocumentReference", "id": d.id, "status": "current",
			"subject": map[string]any{"reference": "Patient/" + d.patient}, "content": []any{map[string]any{"attachment": map[string]any{"url": "Binary/" + d.id}}}}
	}
	f.up.misbehave = true // the patient parameter ignored: what the proxy judges keeps p2's out
	f.up.mu.Unlock()
	tok := f.token("launch/patient patient/DocumentReference.rs", nil)
	r := f.do("GET", "/DocumentReference/$docref?start=2026-01-01&on-demand=true", tok, "")
	if r.status != http.StatusOK || !slices.Equal(entryIDs(r), []string{"note-1"}) {
		t.Errorf("$docref: %d %v %s", r.status, entryIDs(r), r.raw)
	}
	if got := f.sentPaths(); !slices.Equal(got, []string{"GET /DocumentReference/$docref?start=2026-01-01&on-demand=true&patient=p1"}) {
		t.Errorf("$docref: the upstream received %q", got)
	}
	f.up.reset()
	// Its patient is an id, given once: the client's own, in whatever
	// form, goes as the id.
	for _, own := range []string{"p1", "Patient/p1", "p1,Patient/p1"} {
		if r := f.do("GET", "/DocumentReference/$docref?patient="+own, tok, ""); r.status != http.StatusOK {
			t.Errorf("$docref?patient=%s: %d %s", own, r.status, r.raw)
		}
		if got := f.sentPaths(); !slices.Equal(got, []string{"GET /DocumentReference/$docref?patient=p1"}) {
			t.Errorf("$docref?patient=%s: the upstream received %q", own, got)
		}
		f.up.reset()
	}
	f.refused("$docref of another patient", f.do("GET", "/DocumentReference/$docref?patient=p2", tok, ""), 403)
	f.refused("$docref without search", f.do("GET", "/DocumentReference/$docref", f.token("launch/patient patient/DocumentReference.r", nil), ""), 403)
}

// TestDocRefConstrained: $docref takes its own parameters, not
// DocumentReference's search parameters, so a server answers it without a
// scope's constraint (this one, as a real one would, ignores a category).
// Under a constrained scope the constraint does not go upstream, and every
// document answered is held to it by the proxy, on a signed later page as
// on the first, and when the client sends the constraint's pair itself. A
// constraint the proxy cannot evaluate refuses $docref.
func TestDocRefConstrained(t *testing.T) {
	const categories = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
	var received requestLog
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.add(r.URL.RequestURI())
		doc := func(id, category string) string {
			return `{"resource":` + mustJSON(map[string]any{"resourceType": "DocumentReference", "id": id, "status": "current",
				"subject":  map[string]any{"reference": "Patient/p1"},
				"category": []any{map[string]any{"coding": []any{map[string]any{"system": categories, "code": category}}}},
				"content":  []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "data": "bm90ZQ=="}}}}) +
				`,"search":{"mode":"match"}}`
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		if r.URL.Query().Get("_getpages") == "" { // the first page
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"http://%s?_getpages=abc"}],"entry":[%s,%s]}`,
				r.Host, doc("note-1", "clinical-note"), doc("scan-1", "imaging"))
			return
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","entry":[%s,%s]}`, doc("note-2", "clinical-note"), doc("scan-2", "imaging"))
	}))
	defer up.Close()
	sent := received.take
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	f.proxy.Base = f.base
	notes := "DocumentReference.rs?category=" + categories + "|clinical-note"
	for _, c := range []struct {
		name, scope, query, upstream string
		clearance                    *consent.Clearance
	}{
		{"a patient app", "launch/patient patient/" + notes, "start=2026-01-01", "start=2026-01-01&patient=p1", nil},
		{"a clinician's app, every label", "user/" + notes, "patient=p1", "patient=p1", everyLabel()},
		{"the constraint's pair sent by the client", "launch/patient patient/" + notes, "category=" + categories + "|clinical-note",
			"category=" + url.QueryEscape(categories+"|clinical-note") + "&patient=p1", nil},
	} {
		tok := f.token(c.scope, c.clearance)
		first := f.do("GET", "/DocumentReference/$docref?"+c.query, tok, "")
		if first.status != http.StatusOK || !slices.Equal(entryIDs(first), []string{"note-1"}) {
			t.Errorf("%s: %d %v %.300s", c.name, first.status, entryIDs(first), first.raw)
		}
		if got := sent(); !slices.Equal(got, []string{"/DocumentReference/$docref?" + c.upstream}) {
			t.Errorf("%s: the server received %q", c.name, got)
		}
		next := first.next()
		if !strings.HasPrefix(next, f.base+"?_page=") {
			t.Fatalf("%s: next link %q", c.name, next)
		}
		page := f.do("GET", strings.TrimPrefix(next, f.base), tok, "")
		if page.status != http.StatusOK || !slices.Equal(entryIDs(page), []string{"note-2"}) {
			t.Errorf("%s: the next page: %d %v %.300s", c.name, page.status, entryIDs(page), page.raw)
		}
		if got := sent(); !slices.Equal(got, []string{"/?_getpages=abc"}) {
			t.Errorf("%s: for the next page the server received %q", c.name, got)
		}
	}
	r := f.do("GET", "/DocumentReference/$docref", f.token("launch/patient patient/DocumentReference.rs?date=gt2026-01-01", nil), "")
	if r.status != http.StatusForbidden || len(sent()) != 0 {
		t.Errorf("a constraint the proxy cannot evaluate: %d %.200s", r.status, r.raw)
	}
}

// TestTerminologyOperationBodies: a POSTed terminology operation may carry
// its parameters in a Parameters body, Codings and CodeableConcepts
// included; each is checked with the query's, and the body goes upstream
// as it came. Anything else in it is refused, with nothing sent.
func TestTerminologyOperationBodies(t *testing.T) {
	f := newFixture(t)
	terminology(f)
	user := f.token("user/ValueSet.rs user/CodeSystem.rs user/ConceptMap.rs", everyLabel())
	restricted := f.token("user/ValueSet.rs", nil)
	params := func(ps ...string) string {
		return `{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`
	}
	vsURL := `{"name":"url","valueUri":"http://example.org/vs/colours"}`
	coding := `{"name":"coding","valueCoding":{"system":"http://example.org/cs","code":"red","display":"Red","userSelected":true}}`
	for _, c := range []struct {
		name, tok, target, body string
		sent                    []string
	}{
		{"validate a Coding", user, "/ValueSet/$validate-code", params(vsURL, coding), []string{"POST /ValueSet/$validate-code?"}},
		{"validate a CodeableConcept", user, "/CodeSystem/$validate-code", params(`{"name":"url","valueUri":"http://example.org/cs"}`,
			`{"name":"codeableConcept","valueCodeableConcept":{"coding":[{"system":"http://example.org/cs","code":"red"}],"text":"red"}}`),
			[]string{"POST /CodeSystem/$validate-code?"}},
		{"lookup, primitives", user, "/CodeSystem/$lookup", params(`{"name":"system","valueUri":"http://example.org/cs"}`,
			`{"name":"code","valueCode":"red"}`, `{"name":"property","valueCode":"display"}`, `{"name":"property","valueCode":"parent"}`),
			[]string{"POST /CodeSystem/$lookup?"}},
		{"subsumes, two Codings", user, "/CodeSystem/cs/$subsumes", params(`{"name":"codingA","valueCoding":{"code":"red"}}`,
			`{"name":"codingB","valueCoding":{"code":"crimson"}}`), []string{"POST /CodeSystem/cs/$subsumes?"}},
		{"the query and the body", user, "/ConceptMap/$translate?url=http://example.org/cm&_format=json", params(coding,
			`{"name":"reverse","valueBoolean":false}`), []string{"POST /ConceptMap/$translate?url=http%3A%2F%2Fexample.org%2Fcm&_format=json"}},
		{"restricted: the url in the body is judged first", restricted, "/ValueSet/$expand", params(vsURL, `{"name":"count","valueInteger":10}`),
			[]string{"GET /ValueSet?url=http%3A%2F%2Fexample.org%2Fvs%2Fcolours", "POST /ValueSet/$expand?"}},
	} {
		r := f.do("POST", c.target, c.tok, c.body, "Content-Type", "application/fhir+json; charset=utf-8")
		if r.status != http.StatusOK {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		if got := f.sentPaths(); !slices.Equal(got, c.sent) {
			t.Errorf("%s: the upstream received %q, want %q", c.name, got, c.sent)
		} else if body, ct := f.up.bodies[len(got)-1], f.up.requests()[len(got)-1].Header.Get("Content-Type"); body != c.body || ct != "application/fhir+json" {
			t.Errorf("%s: the upstream received %q as %q", c.name, body, ct)
		}
		f.up.reset()
	}
	for _, c := range []struct {
		name, target, body, contentType string
		status                          int
	}{
		{"an inline value set", "/ValueSet/$expand", params(`{"name":"valueSet","resource":{"resourceType":"ValueSet","status":"active"}}`), "", 400},
		{"a part", "/ConceptMap/$translate?url=http://example.org/cm", params(`{"name":"dependency","part":[{"name":"element","valueUri":"x"}]}`), "", 400},
		{"an extension on a parameter", "/ValueSet/$expand", params(`{"name":"url","valueUri":"http://example.org/vs/colours","extension":[]}`), "", 400},
		{"two values", "/ValueSet/$expand", params(`{"name":"url","valueUri":"http://example.org/vs/colours","valueString":"x"}`), "", 400},
		{"a name it does not take", "/ValueSet/$expand", params(vsURL, `{"name":"context","valueUri":"Observation.code"}`), "", 403},
		{"_format in the body", "/ValueSet/$expand", params(vsURL, `{"name":"_format","valueString":"json"}`), "", 403},
		{"the url in the query and the body", "/ValueSet/$expand?url=http://example.org/vs/secret", params(vsURL), "", 400},
		{"the url twice in the body", "/ValueSet/$expand", params(vsURL, `{"name":"url","valueUri":"http://example.org/vs/secret"}`), "", 400},
		{"the url at instance level", "/ValueSet/colours/$expand", params(`{"name":"url","valueUri":"http://example.org/vs/secret"}`), "", 403},
		{"no url at type level", "/ValueSet/$expand", params(`{"name":"filter","valueString":"re"}`), "", 400},
		{"a Coding as a string", "/ValueSet/$validate-code", params(vsURL, `{"name":"coding","valueString":"red"}`), "", 400},
		{"a code as a Coding", "/ValueSet/$validate-code", params(vsURL, `{"name":"code","valueCoding":{"code":"red"}}`), "", 400},
		{"a Coding where the operation takes none", "/ValueSet/$expand", params(vsURL, coding), "", 400},
		{"a Coding with more in it", "/ValueSet/$validate-code", params(vsURL, `{"name":"coding","valueCoding":{"code":"red","extension":[{"url":"x"}]}}`), "", 400},
		{"a CodeableConcept with more in it", "/ValueSet/$validate-code", params(vsURL,
			`{"name":"codeableConcept","valueCodeableConcept":{"coding":[{"code":"red","id":"x"}]}}`), "", 400},
		{"a control character", "/ValueSet/$expand", params(vsURL, `{"name":"filter","valueString":"a\u0000b"}`), "", 400},
		{"an object as a primitive", "/ValueSet/$expand", params(`{"name":"url","valueUri":{"x":1}}`), "", 400},
		{"meta on the Parameters", "/ValueSet/$expand", `{"resourceType":"Parameters","meta":{"tag":[]},"parameter":[` + vsURL + `]}`, "", 400},
		{"another resource", "/ValueSet/$expand", `{"resourceType":"Observation","parameter":[` + vsURL + `]}`, "", 400},
		{"no resourceType", "/ValueSet/$expand", `{"parameter":[` + vsURL + `]}`, "", 400},
		{"a duplicate member", "/ValueSet/$expand", `{"resourceType":"Parameters","parameter":[` + vsURL + `],"parameter":[]}`, "", 400},
		{"XML", "/ValueSet/$expand", `<Parameters/>`, "application/fhir+xml", 415},
	} {
		ct := c.contentType
		if ct == "" {
			ct = "application/fhir+json"
		}
		f.refused(c.name, f.do("POST", c.target, user, c.body, "Content-Type", ct), c.status)
	}
	// The body is read once the token is good: without one, the answer is
	// 401 whatever the body.
	f.refused("no token", f.do("POST", "/ValueSet/$expand", "", "not JSON", "Content-Type", "application/fhir+json"), http.StatusUnauthorized)
}

// TestTerminologySubjectLimits: the resource a terminology operation runs
// on is judged on the server's first page of those with its URL; more
// (versions of a value set) are refused, and an upstream that cannot be
// reached is the proxy's 502, with the operation not sent.
func TestTerminologySubjectLimits(t *testing.T) {
	f := newFixture(t)
	terminology(f)
	restricted := f.token("user/ValueSet.rs", nil)
	f.up.mu.Lock()
	f.up.resources["ValueSet/colours-2"] = map[string]any{"resourceType": "ValueSet", "id": "colours-2", "url": "http://example.org/vs/colours",
		"version": "2", "status": "active"}
	f.up.pageSize = 1
	f.up.mu.Unlock()
	r := f.do("GET", "/ValueSet/$expand?url=http://example.org/vs/colours", restricted, "")
	if r.status != http.StatusForbidden || !strings.Contains(diagnostics(r), "name one by its id") {
		t.Errorf("two versions over two pages: %d %s", r.status, r.raw)
	}
	if got := f.sentPaths(); !slices.Equal(got, []string{"GET /ValueSet?url=http%3A%2F%2Fexample.org%2Fvs%2Fcolours"}) {
		t.Errorf("two versions over two pages: the upstream received %q", got)
	}
	f.up.ts.Close()
	for _, target := range []string{"/ValueSet/$expand?url=http://example.org/vs/colours", "/ValueSet/colours/$expand"} {
		if r := f.do("GET", target, restricted, ""); r.status != http.StatusBadGateway {
			t.Errorf("%s with the upstream down: %d %s", target, r.status, r.raw)
		}
	}
}

// TestEverythingNarrowScopes: a token that reads and searches some types
// only asks $everything for those (_type), and gets no entry of another
// type whatever the server sends, and of a type allowed under a query
// constraint only the entries that match it; a _type beyond them, a type
// allowed only under a constraint the proxy cannot evaluate, and a
// patient's $everything by a token that may not read Patient are refused
// with nothing sent. (entryIDs sorts.)
func TestEverythingNarrowScopes(t *testing.T) {
	f := newFixture(t)
	var got []*http.Request
	var mu sync.Mutex
	everything := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		entry := func(res map[string]any) map[string]any { return map[string]any{"resource": res} }
		f.up.write(w, 200, map[string]any{"resourceType": "Bundle", "type": "searchset", "entry": []any{ // whatever _type says
			entry(map[string]any{"resourceType": "Patient", "id": "p1"}), entry(obs("lab-1", "p1", "laboratory")),
			entry(map[string]any{"resourceType": "Condition", "id": "c-1", "subject": map[string]any{"reference": "Patient/p1"}}),
			entry(obs("psy-1", "p1", "laboratory", "R", "PSY")), entry(obs("lab-2", "p2", "laboratory")), entry(obs("vs-1", "p1", "vital-signs")),
			entry(provenance("lab", "Observation/lab-1")), entry(provenance("vs", "Observation/vs-1"))}})
	}))
	defer everything.Close()
	f.proxy.Upstream, _ = url.Parse(everything.URL)
	sent := func() string { // the _type of the $everything sent (a Provenance's target may be read after it)
		mu.Lock()
		defer mu.Unlock()
		defer func() { got = nil }()
		if len(got) == 0 || !strings.HasSuffix(got[0].URL.Path, "/$everything") {
			return fmt.Sprint(len(got), " requests")
		}
		return got[0].URL.Query().Get("_type")
	}
	for _, c := range []struct {
		name, scope, target, types string
		entries                    []string
	}{
		{"a patient app reading Observations", "launch/patient patient/Observation.rs", "/Patient/p1/$everything", "Observation", []string{"lab-1", "vs-1"}},
		{"its own _type", "launch/patient patient/Observation.rs patient/Condition.rs", "/Patient/p1/$everything?_type=Observation", "Observation", []string{"c-1", "lab-1", "vs-1"}}, // the Condition the server sent anyway: the token reads it
		{"two types", "launch/patient patient/Observation.rs patient/Condition.rs", "/Patient/p1/$everything", "Observation,Condition", []string{"c-1", "lab-1", "vs-1"}},
		// _type repeats (R4: 0..*, each a list): one list goes upstream.
		{"_type repeated", "launch/patient patient/Observation.rs patient/Condition.rs", "/Patient/p1/$everything?_type=Condition&_type=Observation,Condition",
			"Condition,Observation", []string{"c-1", "lab-1", "vs-1"}},
		{"a clinician who reads Patient", "user/Observation.rs user/Patient.r", "/Patient/p1/$everything", "Observation", []string{"lab-1", "lab-2", "p1", "vs-1"}}, // the Patient the server sent anyway: the token reads it
		{"every type", "launch/patient patient/*.rs", "/Patient/p1/$everything", "", []string{"c-1", "lab", "lab-1", "p1", "vs", "vs-1"}},
		// A type allowed only under a constraint the proxy evaluates: its
		// entries held to it, and a Provenance about one left out kept
		// only with it.
		{"a type only under a constraint", "launch/patient patient/Observation.rs?category=laboratory patient/Provenance.rs", "/Patient/p1/$everything",
			"Observation,Provenance", []string{"lab", "lab-1"}},
		{"its own _type under a constraint", "launch/patient patient/Observation.rs?category=laboratory patient/Condition.rs", "/Patient/p1/$everything?_type=Observation",
			"Observation", []string{"c-1", "lab-1"}},
		{"a clinician, under a constraint", "user/Observation.rs?category=vital-signs user/Patient.r user/Provenance.rs", "/Patient/p1/$everything",
			"Observation,Provenance", []string{"p1", "vs", "vs-1"}},
	} {
		r := f.do("GET", c.target, f.token(c.scope, nil), "")
		if types := sent(); r.status != 200 || types != c.types || !slices.Equal(entryIDs(r), c.entries) {
			t.Errorf("%s: %d, _type %q, entries %v; want _type %q, entries %v", c.name, r.status, types, entryIDs(r), c.types, c.entries)
		}
	}
	for _, c := range []struct {
		name, scope, target string
		status              int
	}{
		{"a _type beyond the scopes", "launch/patient patient/Observation.rs", "/Patient/p1/$everything?_type=Observation,Condition", 403},
		{"a type only under a constraint the proxy cannot evaluate", "launch/patient patient/Observation.rs?date=gt2020-01-01", "/Patient/p1/$everything", 403},
		{"its _type only under such a constraint", "launch/patient patient/Observation.rs?date=gt2020-01-01 patient/Condition.rs", "/Patient/p1/$everything?_type=Observation", 403},
		{"a clinician who may not read Patient", "user/Observation.rs", "/Patient/p1/$everything", 403},
		{"a type in another case", "launch/patient patient/Observation.rs", "/Patient/p1/$everything?_type=observation", 403},
		{"a _type repeated, beyond the scopes", "launch/patient patient/Observation.rs", "/Patient/p1/$everything?_type=Observation&_type=Condition", 403},
	} {
		f.refused(c.name, f.do("GET", c.target, f.token(c.scope, nil), ""), c.status)
		if types := sent(); types != "0 requests" {
			t.Errorf("%s: the server got %s", c.name, types)
		}
	}
}

// TestEverythingPages: a server pages $everything either at its base
// (HAPI's _getpages, which the proxy signs) or on the operation's own URL
// with a continuation of its own (Microsoft's ct, Google's _page_token).
// Each later page is authorised and judged as the $everything it
// continues: a signed page was a search of Patient, refused to a token
// that reads only Observations and judged without the constraint a type
// is held to, and a continuation parameter was refused on $everything.
func TestEverythingPages(t *testing.T) {
	var received requestLog
	var mu sync.Mutex
	continuation := "" // the server's style: "" pages at its base, else the name of its continuation
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.add(r.URL.RequestURI())
		mu.Lock()
		style := continuation
		mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		entries := func(res ...map[string]any) string {
			var out []string
			for _, x := range res {
				out = append(out, `{"resource":`+mustJSON(x)+`}`)
			}
			return strings.Join(out, ",")
		}
		q := r.URL.Query()
		switch {
		case q.Get("_getpages") != "" || q.Get("ct") != "" || q.Get("_page_token") != "": // the second page
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","entry":[%s]}`, entries(obs("vs-1", "p1", "vital-signs"), obs("lab-3", "p1", "laboratory"),
				obs("lab-9", "p2", "laboratory"), map[string]any{"resourceType": "Condition", "id": "c-1", "subject": map[string]any{"reference": "Patient/p1"}}))
		default:
			next := "http://" + r.Host + "?_getpages=abc"
			if style != "" {
				next = "http://" + r.Host + r.URL.Path + "?" + style + "=abc"
			}
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":%q}],"entry":[%s]}`,
				next, entries(map[string]any{"resourceType": "Patient", "id": "p1"}, obs("lab-1", "p1", "laboratory")))
		}
	}))
	defer up.Close()
	sent := received.take
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	f.proxy.Base = f.base
	for _, c := range []struct {
		name, scope, continuation string
		first, second             []string
		upstream                  string
	}{
		{"Observations only, a signed page", "launch/patient patient/Observation.rs", "", []string{"lab-1"}, []string{"lab-3", "vs-1"}, "/?_getpages=abc"},
		{"laboratory only, a signed page", "launch/patient patient/Observation.rs?category=laboratory", "", []string{"lab-1"}, []string{"lab-3"}, "/?_getpages=abc"},
		{"laboratory and Patient, a signed page", "launch/patient patient/Patient.rs patient/Observation.rs?category=laboratory", "",
			[]string{"lab-1", "p1"}, []string{"lab-3"}, "/?_getpages=abc"},
		{"every type, a signed page", "launch/patient patient/*.rs", "", []string{"lab-1", "p1"}, []string{"c-1", "lab-3", "vs-1"}, "/?_getpages=abc"},
		{"laboratory only, Microsoft's ct", "launch/patient patient/Observation.rs?category=laboratory", "ct", []string{"lab-1"}, []string{"lab-3"},
			"/Patient/p1/$everything?ct=abc&_type=Observation"},
		{"every type, Google's _page_token", "launch/patient patient/*.rs", "_page_token", []string{"lab-1", "p1"}, []string{"c-1", "lab-3", "vs-1"},
			"/Patient/p1/$everything?_page_token=abc"},
	} {
		tok := f.token(c.scope, nil)
		mu.Lock()
		continuation = c.continuation
		mu.Unlock()
		first := f.do("GET", "/Patient/p1/$everything", tok, "")
		next := first.next()
		if first.status != http.StatusOK || !slices.Equal(entryIDs(first), c.first) || !strings.HasPrefix(next, f.base) {
			t.Fatalf("%s: the first page: %d %v, next %q", c.name, first.status, entryIDs(first), next)
		}
		sent()
		page := f.do("GET", strings.TrimPrefix(next, f.base), tok, "")
		if page.status != http.StatusOK || !slices.Equal(entryIDs(page), c.second) {
			t.Errorf("%s: the next page: %d %v %.300s", c.name, page.status, entryIDs(page), page.raw)
		}
		if got := sent(); !slices.Equal(got, []string{c.upstream}) {
			t.Errorf("%s: for the next page the server received %q", c.name, got)
		}
	}
	tok := f.token("launch/patient patient/*.rs", nil)
	for _, q := range []string{"_elements=id", "_summary=true", "cursor=abc", "CT=abc"} {
		if r := f.do("GET", "/Patient/p1/$everything?"+q, tok, ""); r.status != http.StatusForbidden || len(sent()) != 0 {
			t.Errorf("$everything?%s: %d %.200s", q, r.status, r.raw)
		}
	}
}

// TestSearchOperationBodies: a search operation ($lastn, $docref,
// $everything) POSTed with a Parameters body is the GET it stands for: its
// parameters join the query's, are authorised as they would be there (the
// patient added, another patient refused, _count capped, _format and
// unknown names refused), and go upstream in the query of a GET, no body.
// $docref's type, a CodeableConcept, becomes a token OR list.
func TestSearchOperationBodies(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	f.up.resources["DocumentReference/note-1"] = map[string]any{"resourceType": "DocumentReference", "id": "note-1", "status": "current",
		"subject": map[string]any{"reference": "Patient/p1"}}
	f.up.mu.Unlock()
	patient := f.token("launch/patient patient/Observation.rs patient/DocumentReference.rs", nil)
	clinician := f.token("user/Observation.rs user/Patient.r", everyLabel())
	params := func(ps ...string) string {
		return `{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`
	}
	for _, c := range []struct {
		name, tok, target, body, sent string
		ids                           []string
	}{
		{"$lastn", patient, "/Observation/$lastn", params(`{"name":"category","valueCode":"vital-signs"}`, `{"name":"max","valuePositiveInt":1}`),
			"GET /Observation/$lastn?category=vital-signs&max=1&patient=Patient%2Fp1", []string{"vs-1"}},
		{"$lastn, the query and the body", patient, "/Observation/$lastn?max=2", params(`{"name":"code","valueString":"x"}`),
			"GET /Observation/$lastn?max=2&code=x&patient=Patient%2Fp1", []string{}},
		{"$lastn, _count capped", clinician, "/Observation/$lastn", params(`{"name":"patient","valueString":"p2"}`, `{"name":"_count","valueInteger":5000}`),
			"GET /Observation/$lastn?patient=p2&_count=1000", []string{"lab-2"}},
		{"$docref", patient, "/DocumentReference/$docref", params(`{"name":"patient","valueId":"p1"}`, `{"name":"start","valueDate":"2026-01-01"}`,
			`{"name":"type","valueCodeableConcept":{"coding":[{"system":"http://loinc.org","code":"34133-9"},{"code":"a,b"}],"text":"summary"}}`,
			`{"name":"on-demand","valueBoolean":true}`),
			"GET /DocumentReference/$docref?start=2026-01-01&type=http%3A%2F%2Floinc.org%7C34133-9%2Ca%5C%2Cb&on-demand=true&patient=p1", []string{"note-1"}},
		{"$docref, a Coding", patient, "/DocumentReference/$docref", params(`{"name":"type","valueCoding":{"system":"http://loinc.org","code":"34133-9"}}`),
			"GET /DocumentReference/$docref?type=http%3A%2F%2Floinc.org%7C34133-9&patient=p1", []string{"note-1"}},
		{"$everything", patient, "/Patient/p1/$everything", params(`{"name":"_type","valueCode":"Observation"}`, `{"name":"_count","valueInteger":10}`),
			"GET /Patient/p1/$everything?_count=10&_type=Observation", nil},
	} {
		r := f.do("POST", c.target, c.tok, c.body)
		if r.status != http.StatusOK || r.body["type"] != "searchset" {
			t.Errorf("%s: %d %.300s", c.name, r.status, r.raw)
		}
		if got := f.sentPaths(); !slices.Equal(got, []string{c.sent}) {
			t.Errorf("%s: the upstream received %q, want %q", c.name, got, c.sent)
		} else if f.up.bodies[0] != "" {
			t.Errorf("%s: the upstream received a body: %q", c.name, f.up.bodies[0])
		}
		if got := entryIDs(r); c.ids != nil && !slices.Equal(got, c.ids) {
			t.Errorf("%s: entries %v, want %v", c.name, got, c.ids)
		}
		f.up.reset()
	}
	for _, c := range []struct {
		name, target, body, contentType string
		status                          int
	}{
		{"another patient", "/Observation/$lastn", params(`{"name":"patient","valueString":"p2"}`), "", 403},
		{"another patient's subject", "/Observation/$lastn", params(`{"name":"subject","valueReference":{"reference":"Patient/p2"}}`), "", 400},
		{"another patient, beside the query's", "/Observation/$lastn?patient=p1", params(`{"name":"patient","valueString":"p2"}`), "", 403},
		{"$everything of another patient", "/Patient/p2/$everything", params(`{"name":"_count","valueInteger":1}`), "", 403},
		{"a name $everything does not take", "/Patient/p1/$everything", params(`{"name":"_mdm","valueBoolean":true}`), "", 403},
		{"a reverse chain", "/Observation/$lastn", params(`{"name":"_has:Observation:has-member:code","valueString":"x"}`), "", 403},
		{"_format", "/Observation/$lastn", params(`{"name":"_format","valueString":"xml"}`), "", 406},
		{"_count not a number", "/Observation/$lastn", params(`{"name":"_count","valueString":"x"}`), "", 400},
		{"a name with an empty part", "/Observation/$lastn", params(`{"name":"subject:Patient.","valueString":"x"}`), "", 400},
		{"a name in another case", "/Observation/$lastn", params(`{"name":"_HAS:Observation:has-member:code","valueString":"x"}`), "", 400},
		{"a control character", "/Observation/$lastn", params(`{"name":"code","valueString":"a\u0000b"}`), "", 400},
		{"a token", "/Observation/$lastn", params(`{"name":"access_token","valueString":"x"}`), "", 400},
		{"a type without a code", "/DocumentReference/$docref", params(`{"name":"type","valueCodeableConcept":{"text":"summary"}}`), "", 400},
		{"a type with more in it", "/DocumentReference/$docref", params(`{"name":"type","valueCoding":{"code":"x","extension":[]}}`), "", 400},
		{"a Coding where a token is not read", "/Observation/$lastn", params(`{"name":"code","valueCoding":{"code":"x"}}`), "", 400},
		{"a resource", "/Patient/p1/$everything", params(`{"name":"x","resource":{"resourceType":"Patient"}}`), "", 400},
		{"not a Parameters", "/Observation/$lastn", `{"resourceType":"Observation"}`, "", 400},
		{"XML", "/Observation/$lastn", `<Parameters/>`, "application/fhir+xml", 415},
	} {
		ct := cmp.Or(c.contentType, "application/fhir+json")
		f.refused(c.name, f.do("POST", c.target, patient, c.body, "Content-Type", ct), c.status)
	}
}
