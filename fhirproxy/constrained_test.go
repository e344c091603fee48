package fhirproxy_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
)

// reading is a new Observation of p1's (no id) whose category is one
// coding; system "" leaves the coding's system out.
func reading(system, code string) map[string]any {
	r := obs("", "p1", code)
	delete(r, "id")
	if system != "" {
		r["category"] = []any{map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}}
	}
	return r
}

const categories = "http://terminology.hl7.org/CodeSystem/observation-category"

// TestConstrainedWrites: a write under a query-constrained scope is held to
// the constraint (SPEC-NOTES A7). A create's content must match it; an
// update's stored version and new content must both match; a patch is
// applied by the proxy and its stored version and result must match; a
// delete's stored version must match. What is stored and does not match
// answers the 404 a constrained read of it gets, as a free id does; content
// that does not match is 403. Nothing is written when refused.
func TestConstrainedWrites(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs patient/Observation.cud?category=vital-signs", nil)
	jsonPatch := []string{"Content-Type", "application/json-patch+json"}

	if r := f.do("POST", "/Observation", tok, mustJSON(reading("", "vital-signs"))); r.status != 201 {
		t.Fatalf("a vital sign under a vital-signs scope: %d %s", r.status, r.raw)
	}
	if got := f.writes(); !slices.Equal(got, []string{"POST /Observation"}) {
		t.Errorf("the create went upstream as %q", got)
	}
	if r := f.do("PUT", "/Observation/vs-1", tok, mustJSON(obs("vs-1", "p1", "vital-signs"))); r.status != 200 {
		t.Fatalf("an update of a vital sign: %d %s", r.status, r.raw)
	}
	if got := f.writes(); !slices.Equal(got, []string{`PUT /Observation/vs-1 W/"1"`}) {
		t.Errorf("the update went upstream as %q, want pinned to the version checked", got)
	}
	r := f.do("PATCH", "/Observation/vs-1", tok, `[{"op":"replace","path":"/status","value":"amended"}]`, jsonPatch...)
	if r.status != 200 {
		t.Fatalf("a patch of a vital sign: %d %s", r.status, r.raw)
	}
	want := obs("vs-1", "p1", "vital-signs")
	want["status"] = "amended"
	if sent := f.up.bodies[len(f.up.bodies)-1]; !sameJSON(sent, mustJSON(want)) {
		t.Errorf("the patch's result went upstream as %s", sent)
	}
	if got := f.writes(); !slices.Equal(got, []string{`PUT /Observation/vs-1 W/"1"`}) {
		t.Errorf("the patch went upstream as %q, want its result pinned to the version it was applied to", got)
	}

	contained := reading("", "laboratory")
	contained["contained"] = []any{obs("c", "p1", "vital-signs")}
	otherSystem := reading("http://example.org/categories", "laboratory")
	otherSystem["category"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://example.org/categories", "code": "Vital-Signs"}}}}
	var stored []string // the answers for what is stored and does not match, and for a free id
	for _, c := range []struct {
		name, method, target, body string
		status                     int
	}{
		{"creating a laboratory result", "POST", "/Observation", mustJSON(reading("", "laboratory")), 403},
		{"creating one without a category", "POST", "/Observation", noID(func() map[string]any { r := reading("", "x"); delete(r, "category"); return r }()), 403},
		{"a vital sign in a contained resource only", "POST", "/Observation", mustJSON(contained), 403},
		{"a code in another case", "POST", "/Observation", mustJSON(otherSystem), 403},
		{"a category written as text", "POST", "/Observation", withMember("category", []any{map[string]any{"text": "vital-signs"}}), 403},
		{"moving a vital sign out of the category", "PUT", "/Observation/vs-1", mustJSON(obs("vs-1", "p1", "laboratory")), 403},
		{"patching it out of the category", "PATCH", "/Observation/vs-1", `[{"op":"replace","path":"/category/0/coding/0/code","value":"laboratory"}]`, 403},
		{"patching the category away", "PATCH", "/Observation/vs-1", `[{"op":"remove","path":"/category"}]`, 403},
		{"taking over a laboratory result", "PUT", "/Observation/lab-1", mustJSON(obs("lab-1", "p1", "vital-signs")), 404},
		{"patching a laboratory result into the category", "PATCH", "/Observation/lab-1", `[{"op":"replace","path":"/category/0/coding/0/code","value":"vital-signs"}]`, 404},
		{"deleting a laboratory result", "DELETE", "/Observation/lab-1", "", 404},
		{"an update of a free id", "PUT", "/Observation/fresh", mustJSON(obs("fresh", "p1", "vital-signs")), 404},
		{"a delete of a free id", "DELETE", "/Observation/fresh", "", 404},
		{"another patient's vital sign", "PUT", "/Observation/lab-2", mustJSON(obs("lab-2", "p1", "vital-signs")), 404},
		{"a FHIRPath Patch", "PATCH", "/Observation/vs-1", fhirPathPatch("delete", "Observation.note"), 403},
	} {
		var hdr []string
		if c.method == "PATCH" && strings.HasPrefix(c.body, "[") {
			hdr = jsonPatch
		}
		r := f.do(c.method, c.target, tok, c.body, hdr...)
		if r.status != c.status || r.body["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		if got := f.writes(); len(got) != 0 {
			t.Errorf("%s: written upstream: %q", c.name, got)
		}
		if c.status == 404 {
			stored = append(stored, diagnostics(r))
		}
		if ev := f.audit.Events()[len(f.audit.Events())-1]; ev.Outcome == audit.Success {
			t.Errorf("%s: audited as a success: %+v", c.name, ev)
		}
	}
	if len(slices.Compact(stored)) != 1 {
		t.Errorf("what is stored outside the constraint is told from a free id: %q", stored)
	}
	// A refusal names the constraint the content missed.
	if r := f.do("POST", "/Observation", tok, mustJSON(reading("", "laboratory"))); !strings.Contains(diagnostics(r), "category=vital-signs") {
		t.Errorf("the refusal does not name the constraint: %s", r.raw)
	}
	f.up.reset()
	if r := f.do("DELETE", "/Observation/vs-1", tok, ""); r.status >= 300 {
		t.Fatalf("a delete of a vital sign: %d %s", r.status, r.raw)
	}
	if got := f.writes(); !slices.Equal(got, []string{`DELETE /Observation/vs-1 W/"1"`}) {
		t.Errorf("the delete went upstream as %q", got)
	}
}

// TestConstraintForms: the token forms a constraint's value may take, the
// pairs of one scope (ANDed), several scopes (ORed), and the constraints
// the proxy cannot evaluate, which refuse the write before anything is
// read.
func TestConstraintForms(t *testing.T) {
	f := newFixture(t)
	noSystem, withSystem := reading("", "vital-signs"), reading(categories, "vital-signs")
	preliminary := reading(categories, "vital-signs")
	preliminary["status"] = "preliminary"
	tagged := reading("", "survey")
	tagged["meta"] = map[string]any{"tag": []any{map[string]any{"system": "http://example.org/source", "code": "device"}}}
	for _, c := range []struct {
		scope string
		ok    []map[string]any
		not   []map[string]any
	}{
		{"category=vital-signs", []map[string]any{noSystem, withSystem}, []map[string]any{reading("", "laboratory")}},
		{"category=" + categories + "|vital-signs", []map[string]any{withSystem}, []map[string]any{noSystem, reading("http://example.org", "vital-signs")}},
		{"category=|vital-signs", []map[string]any{noSystem}, []map[string]any{withSystem}},
		{"category=" + categories + "|", []map[string]any{withSystem, reading(categories, "laboratory")}, []map[string]any{noSystem}},
		{"category=laboratory,vital-signs", []map[string]any{noSystem, reading("", "laboratory")}, []map[string]any{reading("", "survey")}},
		{"category=vital-signs&status=final", []map[string]any{withSystem}, []map[string]any{preliminary}},
		{"_tag=http://example.org/source|device", []map[string]any{tagged}, []map[string]any{noSystem}},
		{"category=vital-signs patient/Observation.c?category=laboratory", []map[string]any{noSystem, reading("", "laboratory")}, []map[string]any{reading("", "survey")}},
		// A scope whose constraint cannot be evaluated allows nothing; the other still does.
		{"category=vital-signs patient/Observation.c?code:in=http://example.org/vs", []map[string]any{noSystem}, []map[string]any{reading("", "laboratory")}},
	} {
		tok := f.token("launch/patient patient/Observation.c?"+c.scope, nil)
		for _, r := range c.ok {
			if res := f.do("POST", "/Observation", tok, noID(r)); res.status != 201 {
				t.Errorf("%s: %s refused: %d %s", c.scope, mustJSON(r["category"]), res.status, res.raw)
			}
			f.up.reset()
		}
		for _, r := range c.not {
			f.refused(c.scope+": "+mustJSON(r["category"]), f.do("POST", "/Observation", tok, noID(r)), 403)
		}
	}
	for _, scope := range []string{
		"code:in=http://example.org/vs",                       // a modifier
		"category:not=laboratory",                             // another
		"performer=Practitioner/dr",                           // not a token parameter
		"subject.name=x",                                      // a chain
		"status=http://hl7.org/fhir/observation-status|final", // a system for a primitive code
		"category=x%5C,y",                                     // an escape (percent-encoded in the scope)
		"category=|",                                          // no system and any code
		"value-concept=x",                                     // a token parameter the proxy does not evaluate
	} {
		tok := f.token("launch/patient patient/Observation.c?"+scope, nil)
		r := f.do("POST", "/Observation", tok, mustJSON(reading("", "vital-signs")))
		f.refused(scope, r, 403)
		if !strings.Contains(diagnostics(r), "cannot check") {
			t.Errorf("%s: the refusal does not say the proxy cannot check the constraint: %s", scope, r.raw)
		}
	}
}

// TestConstrainedWritesOfEveryRecord: a token that sees every record (no
// patient, every label cleared) is held to its constraint too: a delete's
// stored version is read to be matched, as an update's is, and a free id
// is not created.
func TestConstrainedWritesOfEveryRecord(t *testing.T) {
	f := newFixture(t)
	tok := f.token("system/Observation.rs system/Observation.ud?category=vital-signs", everyLabel())
	for _, c := range []struct {
		name, method, target, body string
	}{
		{"deleting a laboratory result", "DELETE", "/Observation/lab-2", ""},
		{"taking one over", "PUT", "/Observation/lab-2", mustJSON(obs("lab-2", "p2", "vital-signs"))},
		{"creating by update", "PUT", "/Observation/fresh", mustJSON(obs("fresh", "p2", "vital-signs"))},
	} {
		if r := f.do(c.method, c.target, tok, c.body); r.status != 404 {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		f.onlyReads(c.name)
	}
	// A patch is applied by the proxy here too, and its result matched.
	jsonPatch := []string{"Content-Type", "application/json-patch+json"}
	r := f.do("PATCH", "/Observation/vs-1", tok, `[{"op":"replace","path":"/category/0/coding/0/code","value":"laboratory"}]`, jsonPatch...)
	if r.status != 403 {
		t.Errorf("patching a vital sign out of the category: %d %s", r.status, r.raw)
	}
	f.onlyReads("patching a vital sign out of the category")
	if r := f.do("PATCH", "/Observation/vs-1", tok, `[{"op":"replace","path":"/status","value":"amended"}]`, jsonPatch...); r.status != 200 {
		t.Errorf("a patch of a vital sign: %d %s", r.status, r.raw)
	}
	if got := f.writes(); !slices.Equal(got, []string{`PUT /Observation/vs-1 W/"1"`}) {
		t.Errorf("the patch went upstream as %q, want its result pinned", got)
	}
	if r := f.do("DELETE", "/Observation/vs-1", tok, ""); r.status >= 300 {
		t.Fatalf("a delete of a vital sign: %d %s", r.status, r.raw)
	}
	if got := f.writes(); !slices.Equal(got, []string{`DELETE /Observation/vs-1 W/"1"`}) {
		t.Errorf("the delete went upstream as %q", got)
	}
}

// TestBatchedConstrainedWrites: in a batch or transaction each write entry
// is held to the constraint as on its own; one that misses it refuses the
// Bundle, and nothing is written.
func TestBatchedConstrainedWrites(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs patient/Observation.cu?category=vital-signs", nil)
	good := bundle("", entry("urn:uuid:6b3c1d2e-0000-4000-8000-000000000001", "POST", "Observation", mustJSON(reading("", "vital-signs"))),
		entry("", "PUT", "Observation/vs-1", mustJSON(obs("vs-1", "p1", "vital-signs"))))
	if r := f.do("POST", "", tok, good); r.status != 200 {
		t.Fatalf("a transaction of vital signs: %d %s", r.status, r.raw)
	}
	sent := f.sentBundle()
	if len(sent) != 2 || sent[1]["ifMatch"] != `W/"1"` {
		t.Errorf("the transaction went upstream as %v", sent)
	}
	f.up.reset()
	for name, b := range map[string]string{
		"a laboratory result among vital signs": bundle("", entry("", "POST", "Observation", mustJSON(reading("", "vital-signs"))),
			entry("", "POST", "Observation", mustJSON(reading("", "laboratory")))),
		"taking over a laboratory result": bundle("batch", entry("", "PUT", "Observation/lab-1", mustJSON(obs("lab-1", "p1", "vital-signs")))),
		"patching one out of the category": bundle("", entry("", "PATCH", "Observation/vs-1", mustJSON(map[string]any{"resourceType": "Binary",
			"contentType": "application/json-patch+json", "data": base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/category/0/coding/0/code","value":"laboratory"}]`))}))),
	} {
		if r := f.do("POST", "", tok, b); r.status != 403 {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		if got := f.writes(); len(got) != 0 {
			t.Errorf("%s: written upstream: %q", name, got)
		}
	}
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return mustJSON(x) == mustJSON(y)
}

// TestConstrainedReadOfWhatIsWritten: a token whose read of a type is
// constrained gets a write's answer, the record as stored, when the proxy
// sees it match the constraint; otherwise the write's status alone (the
// write happened: not a 404), as a write-only token does.
func TestConstrainedReadOfWhatIsWritten(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs?category=vital-signs patient/Observation.cu", nil)
	jsonPatch := []string{"Content-Type", "application/json-patch+json"}
	for _, c := range []struct {
		name, method, target, body string
		hdr                        []string
		status                     int
		shown                      bool
	}{
		{"a vital sign created", "POST", "/Observation", mustJSON(reading("", "vital-signs")), nil, 201, true},
		{"a laboratory result created", "POST", "/Observation", mustJSON(reading("", "laboratory")), nil, 201, false},
		{"a vital sign updated", "PUT", "/Observation/vs-1", mustJSON(obs("vs-1", "p1", "vital-signs")), nil, 200, true},
		{"a laboratory result updated", "PUT", "/Observation/lab-1", mustJSON(obs("lab-1", "p1", "laboratory")), nil, 200, false},
		{"a vital sign patched", "PATCH", "/Observation/vs-1", `[{"op":"replace","path":"/status","value":"amended"}]`, jsonPatch, 200, true},
		{"a laboratory result patched", "PATCH", "/Observation/lab-1", `[{"op":"replace","path":"/status","value":"amended"}]`, jsonPatch, 200, false},
	} {
		r := f.do(c.method, c.target, tok, c.body, c.hdr...)
		if r.status != c.status || c.shown != (r.body["resourceType"] == "Observation") || !c.shown && r.raw != "" {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		if got := f.writes(); len(got) != 1 {
			t.Errorf("%s: written %q", c.name, got)
		}
	}
	// A read constraint the proxy cannot evaluate shows nothing.
	tok = f.token("launch/patient patient/Observation.rs?code:in=http://example.org/vs patient/Observation.c", nil)
	if r := f.do("POST", "/Observation", tok, mustJSON(reading("", "vital-signs"))); r.status != 201 || r.raw != "" {
		t.Errorf("a create under a read constraint the proxy cannot evaluate: %d %s", r.status, r.raw)
	}
	f.up.reset()
}

// TestConstrainedConditionalWrites: a conditional write under a constrained
// scope is resolved as any is (TestConditionalWrites), by the token's own
// search, which carries the constraint, and the write it resolves to is
// held to the constraint as on its own. A create that finds its record
// reads it as a constrained read does: by _id with the criteria and the
// constraint, so the server proves the match again. A write constraint
// the proxy cannot check refuses it before anything is searched.
func TestConstrainedConditionalWrites(t *testing.T) {
	f := newFixture(t)
	f.up.resources["Observation/vs-1"] = identified(obs("vs-1", "p1", "vital-signs"), "V")
	f.up.resources["Observation/lab-1"] = identified(obs("lab-1", "p1", "laboratory"), "L")
	tok := f.token("launch/patient patient/Observation.cruds?category=vital-signs", nil)
	search := func() string { // the criteria's search, as the upstream received it
		for _, g := range f.up.requests() {
			if g.Method == "GET" {
				return g.URL.RawQuery
			}
		}
		return ""
	}
	ifNoneExist := func(v string) []string { return []string{"If-None-Exist", "identifier=urn:lab|" + v} }

	// A create that finds its record is answered with it, nothing written.
	r := f.do("POST", "/Observation", tok, noID(identified(reading("", "vital-signs"), "V")), ifNoneExist("V")...)
	if r.status != 200 || r.body["id"] != "vs-1" {
		t.Errorf("a conditional create finding its reading: %d %s", r.status, r.raw)
	}
	var reads []string
	for _, g := range f.up.requests() {
		reads = append(reads, g.URL.Path+"?"+g.URL.RawQuery)
	}
	if len(reads) != 2 || !strings.Contains(reads[0], "category=vital-signs") ||
		!strings.HasPrefix(reads[1], "/Observation?_id=vs-1&") || !strings.Contains(reads[1], "category=vital-signs") || !strings.Contains(reads[1], "identifier=") {
		t.Errorf("the criteria and the read of what they found went upstream as %q", reads)
	}
	if got := f.writes(); len(got) != 0 {
		t.Errorf("written: %q", got)
	}
	// One whose only match is outside the constraint finds nothing, and
	// creates: the token may not see it.
	if r := f.do("POST", "/Observation", tok, noID(identified(reading("", "vital-signs"), "L")), ifNoneExist("L")...); r.status != 201 {
		t.Errorf("a conditional create whose match is a laboratory result: %d %s", r.status, r.raw)
	}
	if q := search(); !strings.Contains(q, "category=vital-signs") {
		t.Errorf("the criteria were searched without the constraint: %q", q)
	}
	if got := f.writes(); !slices.Equal(got, []string{"POST /Observation"}) {
		t.Errorf("written: %q", got)
	}
	// An update and a delete resolve to the record found, pinned.
	if r := f.do("PUT", "/Observation?identifier=urn:lab|V", tok, noID(identified(obs("", "p1", "vital-signs"), "V"))); r.status != 200 {
		t.Errorf("a conditional update of a reading: %d %s", r.status, r.raw)
	}
	if got := f.writes(); !slices.Equal(got, []string{`PUT /Observation/vs-1 W/"1"`}) {
		t.Errorf("the update went upstream as %q", got)
	}
	if r := f.do("DELETE", "/Observation?identifier=urn:lab|V", tok, ""); r.status >= 300 {
		t.Errorf("a conditional delete of a reading: %d %s", r.status, r.raw)
	}
	if got := f.writes(); !slices.Equal(got, []string{`DELETE /Observation/vs-1 W/"1"`}) {
		t.Errorf("the delete went upstream as %q", got)
	}

	// Refused, nothing written.
	for _, c := range []struct {
		name, method, target, body string
		hdr                        []string
		status                     int
	}{
		{"creating a laboratory result", "POST", "/Observation", noID(identified(reading("", "laboratory"), "Z")), ifNoneExist("Z"), 403},
		{"moving the reading found out of the category", "PUT", "/Observation?identifier=urn:lab|V", noID(identified(obs("", "p1", "laboratory"), "V")), nil, 403},
		{"updating a laboratory result", "PUT", "/Observation?identifier=urn:lab|L", noID(identified(obs("", "p1", "vital-signs"), "L")), nil, 201},
		{"deleting one", "DELETE", "/Observation?identifier=urn:lab|L", "", nil, 404},
	} {
		r := f.do(c.method, c.target, tok, c.body, c.hdr...)
		got := f.writes()
		if c.status == 201 {
			// The laboratory result is not the token's to see: the update
			// creates a new reading, as FHIR's conditional update does
			// when nothing matches, and the laboratory result is untouched.
			if r.status != 201 || !slices.Equal(got, []string{"POST /Observation"}) {
				t.Errorf("%s: %d %q", c.name, r.status, got)
			}
			continue
		}
		if r.status != c.status || len(got) != 0 {
			t.Errorf("%s: %d %s, written %q", c.name, r.status, r.raw, got)
		}
	}
	// Criteria repeating the constraint's parameter: what the server
	// matches is held to the constraint by the proxy (the test upstream,
	// like a careless server, takes the first value), so the laboratory
	// result is no match, and its read is not sent.
	r = f.do("POST", "/Observation", tok, noID(identified(reading("", "vital-signs"), "L")), "If-None-Exist", "category=laboratory&identifier=urn:lab|L")
	if got := f.writes(); r.status != 201 || !slices.Equal(got, []string{"POST /Observation"}) {
		t.Errorf("criteria repeating the constraint's parameter: %d %.200s, written %q", r.status, r.raw, got)
	}
	// A write constraint the proxy cannot check: refused before the search.
	unread := f.token("launch/patient patient/Observation.crs?code:in=http://example.org/vs", nil)
	f.refused("a constraint the proxy cannot check", f.do("POST", "/Observation", unread, noID(identified(reading("", "vital-signs"), "V")), ifNoneExist("V")...), 403)
	// In a batch, where the criteria's search and a found record's read
	// cannot go under the constraint, it is refused.
	b := bundle("", `{"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:lab|V"},"resource":`+noID(identified(reading("", "vital-signs"), "V"))+`}`)
	f.refused("a batched conditional create", f.do("POST", "", tok, b), 403)
}

// TestConstrainedIncludes: a constrained search may _include and
// _revinclude. The server applies the constraint to its matches only, so
// each entry the answer does not mark as a match (search.mode include, or
// none) is held to the constraint by the proxy: one of the constrained type
// is kept only when it matches as the proxy evaluates it (and dropped when
// the proxy cannot evaluate the constraint), and one of another type
// carrying a resource of the constrained type (a Bundle held as a
// resource) is dropped. Other
// types are judged by their own scopes, as ever. The same holds when the
// search carries the constraint itself, and when the answer streams.
func TestConstrainedIncludes(t *testing.T) {
	f := newFixture(t)
	entry := func(res map[string]any, mode string) map[string]any {
		e := map[string]any{"resource": res}
		if mode != "" {
			e["search"] = map[string]any{"mode": mode}
		}
		return e
	}
	collection := map[string]any{"resourceType": "Bundle", "id": "b-1", "type": "collection",
		"entry": []any{map[string]any{"resource": obs("vs-7", "p1", "vital-signs")}}}
	// Each included reading is a member of lab-1, and has lab-1 as its
	// member (so either include, or reverse include, brings it).
	member := func(o map[string]any) map[string]any {
		o["hasMember"] = []any{map[string]any{"reference": "Observation/lab-1"}}
		return o
	}
	f.up.includes = []map[string]any{
		entry(member(obs("vs-8", "p1", "vital-signs")), "include"),
		entry(member(obs("lab-8", "p1", "laboratory")), "include"),
		entry(obs("vs-9", "p1", "vital-signs"), ""),
		entry(obs("lab-9", "p1", "laboratory"), ""),
		entry(f.up.resources["Practitioner/dr"], "include"),
		entry(collection, "include"),
	}
	// What a match kept refers to is included; what only vs-1, outside
	// the constraint, refers to would not be.
	link := func(f *fixture) {
		f.up.resources["Observation/lab-1"]["hasMember"] = []any{map[string]any{"reference": "Observation/vs-8"},
			map[string]any{"reference": "Observation/lab-8"}, map[string]any{"reference": "Bundle/b-1"}}
		f.up.resources["Observation/lab-1"]["performer"] = []any{map[string]any{"reference": "Practitioner/dr"}}
	}
	link(f)
	lab := f.token("user/Observation.rs?category=laboratory user/Practitioner.rs user/Bundle.rs", everyLabel())
	unread := f.token("user/Observation.rs?code:in=http://example.org/labs user/Practitioner.rs user/Bundle.rs", everyLabel())
	for _, streamed := range []bool{false, true} {
		if streamed {
			f.proxy.Limits.StreamFrom = 2 << 10 // the answers are larger
		}
		for _, c := range []struct {
			name, tok, query string
			want             []string
		}{
			{"an include", lab, "_include=Observation:has-member&_include=Observation:performer", []string{"dr", "lab-1", "lab-2", "lab-8", "lab-9", "psy-1"}},
			{"a revinclude", lab, "_revinclude=Observation:has-member&_include=Observation:performer", []string{"dr", "lab-1", "lab-2", "lab-8", "lab-9", "psy-1"}},
			{"a search carrying the constraint", lab, "category=laboratory&_include=Observation:has-member&_include=Observation:performer", []string{"dr", "lab-1", "lab-2", "lab-8", "lab-9", "psy-1"}},
			{"a constraint the proxy cannot evaluate", unread, "_include=Observation:has-member&_include=Observation:performer", []string{"dr", "lab-1", "lab-2", "psy-1", "vs-1"}},
		} {
			r := f.do("GET", "/Observation?"+c.query, c.tok, "")
			if got := entryIDs(r); r.status != 200 || !slices.Equal(got, c.want) {
				t.Errorf("%s (streamed %v): %d %v, want %v", c.name, streamed, r.status, got, c.want)
			}
			f.up.reset()
		}
	}
	// An element selection keeps what the constraint reads, or an
	// included record would lose it and be dropped.
	f.proxy.Limits.StreamFrom = 0
	f.do("GET", "/Observation?_include=Observation:has-member&_elements=id,status", lab, "")
	if got := f.up.requests(); len(got) != 1 || !slices.Contains(strings.Split(got[0].URL.Query().Get("_elements"), ","), "category") {
		t.Errorf("the element selection went upstream as %v", got)
	}
	f.up.reset()
	// Page by page: a page link continues the search without its
	// parameters, and its entries are held alike. (The links move onto
	// the proxy's base, set before the first request.)
	includes := f.up.includes
	f = newFixture(t)
	f.proxy.Base, f.up.pageSize, f.up.includes = f.base, 2, includes
	link(f)
	lab = f.token("user/Observation.rs?category=laboratory user/Practitioner.rs user/Bundle.rs", everyLabel())
	var all []string
	next, pages := "/Observation?_include=Observation:has-member&_include=Observation:performer", 0
	for ; next != "" && pages < 10; pages++ {
		r := f.do("GET", next, lab, "")
		if r.status != 200 {
			t.Fatalf("page %d (%s): %d %s", pages, next, r.status, r.raw)
		}
		all = append(all, entryIDs(r)...)
		next = strings.TrimPrefix(r.next(), f.base)
	}
	f.up.reset()
	if all = slices.Compact(slices.Sorted(slices.Values(all))); pages < 2 || !slices.Equal(all, []string{"dr", "lab-1", "lab-2", "lab-8", "lab-9", "psy-1"}) {
		t.Errorf("over %d pages: %v", pages, all)
	}
}

// TestConstrainedIncludesOnSignedPages: a page link at the server's base
// (HAPI's [base]?_getpages=…) continues a constrained search without its
// parameters, so whether it asked for includes is not known: on such a
// page each entry not marked as a match is held to the constraint. A page
// of a search whose matches were held too (it repeated the constraint's
// parameter) holds every entry of the type, matches included: the link
// says so (pageRef.Held).
func TestConstrainedIncludesOnSignedPages(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := "http://" + r.Host
		w.Header().Set("Content-Type", "application/fhir+json")
		entry := func(id, category, mode string) string {
			return `{"resource":` + mustJSON(obs(id, "p1", category)) + `,"search":{"mode":"` + mode + `"}}`
		}
		if r.URL.Query().Get("_getpages") == "" { // the first page
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"%s?_getpages=abc&_getpagesoffset=1"}],"entry":[%s]}`,
				base, entry("a", "laboratory", "match"))
			return
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","entry":[%s,%s,%s]}`,
			entry("b", "laboratory", "include"), entry("c", "vital-signs", "include"), entry("d", "vital-signs", "match"))
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	f.proxy.Base = f.base
	tok := f.token("user/Observation.rs?category=laboratory", everyLabel())
	for _, c := range []struct {
		query string
		want  []string
	}{
		// d is what the server calls a match, but it is not a laboratory
		// result: where the proxy evaluates the constraint, it holds the
		// server's matches to it too (access.checkMatches), and drops d.
		{"_include=Observation:has-member", []string{"b"}},
		// A server that took the last category would match d: held.
		{"category=vital-signs", []string{"b"}},
	} {
		first := f.do("GET", "/Observation?"+c.query, tok, "")
		next := first.next()
		if first.status != 200 || !strings.HasPrefix(next, f.base+"?_page=") {
			t.Fatalf("%s: first page: %d, next %q", c.query, first.status, next)
		}
		page := f.do("GET", strings.TrimPrefix(next, f.base), tok, "")
		if got := entryIDs(page); page.status != 200 || !slices.Equal(got, c.want) {
			t.Errorf("%s: the second page: %d %v", c.query, page.status, got)
		}
	}
}

// TestConstrainedVersions: under a constrained scope a vread and an
// instance history are shown only while the record as it is now matches
// the constraint, and each version shown must match it too, as the proxy
// evaluates it (a search, which the server could apply the constraint to,
// finds current versions only). What fails answers the 404 of a missing
// record; a constraint the proxy cannot evaluate refuses them.
func TestConstrainedVersions(t *testing.T) {
	f := newFixture(t)
	// lab-1 was first recorded as a vital sign; vs-1 was a laboratory
	// result before it was recategorised.
	f.up.versions = map[string][]map[string]any{
		"Observation/lab-1": {obs("lab-1", "p1", "vital-signs")},
		"Observation/vs-1":  {obs("vs-1", "p1", "laboratory")},
	}
	versions := func(r result) []string {
		var out []string
		entries, _ := r.body["entry"].([]any)
		for _, e := range entries {
			res, _ := e.(map[string]any)["resource"].(map[string]any)
			cat := res["category"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
			out = append(out, res["id"].(string)+" "+cat)
		}
		return out
	}
	for _, scope := range []string{"user/Observation.rs?category=laboratory", "launch/patient patient/Observation.rs?category=laboratory"} {
		tok := f.token(scope, everyLabel())
		absent := f.do("GET", "/Observation/nope/_history/1", tok, "")
		if r := f.do("GET", "/Observation/lab-1/_history/2", tok, ""); r.status != 200 || r.body["id"] != "lab-1" {
			t.Errorf("%s: the current version of a laboratory result: %d %s", scope, r.status, r.raw)
		}
		r := f.do("GET", "/Observation/lab-1/_history", tok, "")
		if got := versions(r); r.status != 200 || !slices.Equal(got, []string{"lab-1 laboratory"}) {
			t.Errorf("%s: the history of a laboratory result: %d %v", scope, r.status, got)
		}
		// In part: what the constraint reads is asked for too, or the
		// version would be withheld as not matching; _summary=text, which
		// would leave it out, is refused.
		f.up.reset()
		r = f.do("GET", "/Observation/lab-1/_history/2?_elements=code", tok, "")
		if sent := f.up.requests(); r.status != 200 || r.body["status"] != nil || len(sent) == 0 ||
			!slices.Contains(strings.Split(sent[len(sent)-1].URL.Query().Get("_elements"), ","), "category") {
			t.Errorf("%s: the current version in part: %d %s, sent as %v", scope, r.status, r.raw, sent)
		}
		f.up.reset()
		f.refused(scope+": a version with _summary=text", f.do("GET", "/Observation/lab-1/_history/2?_summary=text", tok, ""), 400)
		for _, target := range []string{
			"/Observation/lab-1/_history/1", // a version outside the constraint
			"/Observation/vs-1/_history/1",  // a version inside it, of a record now outside it
			"/Observation/vs-1/_history",
		} {
			if r := f.do("GET", target, tok, ""); r.status != 404 || r.raw != absent.raw {
				t.Errorf("%s: %s: %d %s", scope, target, r.status, r.raw)
			}
		}
		f.up.reset()
	}
	f.refused("a constraint the proxy cannot evaluate", f.do("GET", "/Observation/lab-1/_history/2",
		f.token("user/Observation.rs?code:in=http://example.org/labs", everyLabel()), ""), 403)
}

// TestConstraintOverRepeatedParameters: a search that names a parameter of
// the scope's constraint again (category=vital-signs under
// category=laboratory) is bounded only by a server that ANDs repeated
// parameters. The test upstream, like a server that takes the first value,
// does not: each entry of the constrained type is then held to the
// constraint by the proxy, and where it cannot evaluate the constraint the
// search is refused.
func TestConstraintOverRepeatedParameters(t *testing.T) {
	f := newFixture(t)
	for _, scope := range []string{"user/Observation.rs?category=laboratory", "launch/patient patient/Observation.rs?category=laboratory"} {
		tok := f.token(scope, everyLabel())
		for _, q := range []string{"category=vital-signs", "category=vital-signs&category=laboratory"} {
			r := f.do("GET", "/Observation?"+q, tok, "")
			if got := entryIDs(r); r.status != 200 || len(got) != 0 {
				t.Errorf("%s: %s: %d %v", scope, q, r.status, got)
			}
		}
		// Nor does a count of them: the server's count is of its matches,
		// so the proxy counts those it holds (TestCountedByTheProxy).
		if r := f.do("GET", "/Observation?category=vital-signs&_summary=count", tok, ""); r.status != 200 || r.body["total"] != float64(0) {
			t.Errorf("%s: a count repeating the constraint: %d %s", scope, r.status, r.raw)
		}
		// Not repeated: the server's matches stand.
		if r := f.do("GET", "/Observation?status=final", tok, ""); r.status != 200 || !slices.Contains(entryIDs(r), "lab-1") {
			t.Errorf("%s: a search not repeating the constraint: %d %v", scope, r.status, entryIDs(r))
		}
		f.up.reset()
		// Held by the proxy, an answer in part keeps what the constraint
		// reads, and _summary=text, which would leave it out, is refused
		// (found by FuzzElementsAgree: every record withheld as not
		// matching); in a batch, where every search is held, it is sent on
		// its own instead, where the server applies the constraint.
		if r := f.do("GET", "/Observation?category=laboratory&category=laboratory&_elements=code", tok, ""); r.status != 200 || !slices.Contains(entryIDs(r), "lab-1") {
			t.Errorf("%s: a search in part repeating the constraint: %d %v", scope, r.status, entryIDs(r))
		}
		f.up.reset()
		for _, target := range []string{"/Observation?category=laboratory&category=laboratory&_summary=text", "/Observation/$lastn?_summary=text"} {
			f.refused(scope+": "+target, f.do("GET", target, tok, ""), 400)
		}
		r := f.do("POST", "/", tok, bundle("batch", entry("", "GET", "Observation?_summary=text", "")))
		if f.refused(scope+": a batched search with _summary=text", r, r.status); r.status != 400 && !strings.Contains(diagnostics(r), "send it on its own") {
			t.Errorf("%s: a batched search with _summary=text: %s", scope, r.raw) // (with patient context, refused for the patient reference it leaves out)
		}
	}
	unread := f.token("user/Observation.rs?code:in=http://example.org/labs", everyLabel())
	f.refused("a repeated parameter of a constraint the proxy cannot evaluate", f.do("GET", "/Observation?code:in=http://example.org/vitals", unread, ""), 403)
}

// TestServerProvenConstrainedDeletes: a delete under a constraint the
// proxy cannot evaluate (identifier, an Identifier, is not among its token
// paths) is proven by the FHIR server: the stored record must be found by
// _id with the constraint (strictly: Prefer: handling=strict), and the
// delete goes pinned to the version read. One the search does not find answers as a missing record, and nothing is
// deleted. Writes other than deletes stay refused under such a constraint.
func TestServerProvenConstrainedDeletes(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	f.up.resources["Observation/lab-1"]["identifier"] = []any{map[string]any{"system": "urn:dev", "value": "r-1"}}
	f.up.mu.Unlock()
	for _, scope := range []string{"launch/patient patient/Observation.rd?identifier=urn:dev|r-1",
		"system/Observation.rd?identifier=urn:dev|r-1",
		// partly evaluable: the category scope alone would not allow it
		"launch/patient patient/Observation.d?category=vital-signs patient/Observation.d?identifier=urn:dev|r-1"} {
		clearance := (*consent.Clearance)(nil)
		if strings.HasPrefix(scope, "system/") {
			clearance = everyLabel()
		}
		tok := f.token(scope, clearance)
		r := f.do("DELETE", "/Observation/lab-1", tok, "")
		got := f.sentPaths()
		if n := len(got); r.status != http.StatusNoContent || n < 3 || got[0] != "GET /Observation/lab-1?" ||
			!strings.HasPrefix(got[n-2], "GET /Observation?_id=lab-1&identifier=urn") || got[n-1] != "DELETE /Observation/lab-1?" {
			t.Errorf("%s: %d %s, the upstream received %q", scope, r.status, r.raw, got)
		} else if pin := f.up.requests()[n-1].Header.Get("If-Match"); pin != f.up.etag("Observation/lab-1") {
			t.Errorf("%s: the delete went with If-Match %q", scope, pin)
		} else if prefer := f.up.requests()[n-2].Header.Get("Prefer"); prefer != "handling=strict" {
			// A lenient server would ignore a parameter it does not
			// support, and prove the constraint for any record.
			t.Errorf("%s: the search that proves the constraint went with Prefer %q", scope, prefer)
		}
		f.up.reset()
		missing := f.do("DELETE", "/Observation/nope", tok, "")
		f.onlyReads(scope + ": a free id")
		r = f.do("DELETE", "/Observation/lab-2", tok, "") // another laboratory result, without the identifier
		if r.status != http.StatusNotFound || r.raw != missing.raw {
			t.Errorf("%s: a record outside the constraint: %d %s, want what a free id gets (%d %s)", scope, r.status, r.raw, missing.status, missing.raw)
		}
		f.onlyReads(scope + ": outside the constraint")
	}
	// A conditional delete resolves, by the token's own search, to the
	// plain delete, proven as above.
	tok := f.token("system/Observation.ds?identifier=urn:dev|r-1", everyLabel())
	r := f.do("DELETE", "/Observation?_id=lab-1", tok, "")
	if got := f.sentPaths(); r.status != http.StatusNoContent || got[len(got)-1] != "DELETE /Observation/lab-1?" {
		t.Errorf("a conditional delete: %d %s, the upstream received %q", r.status, r.raw, got)
	}
	f.up.reset()
	if r := f.do("DELETE", "/Observation?_id=lab-2", tok, ""); r.status != http.StatusNotFound {
		t.Errorf("a conditional delete outside the constraint: %d %s", r.status, r.raw)
	}
	f.onlyReads("a conditional delete outside the constraint")
	// In a batch too, each entry proven on its own.
	tok = f.token("system/Observation.rd?identifier=urn:dev|r-1", everyLabel())
	r = f.do("POST", "/", tok, bundle("batch", entry("", "DELETE", "Observation/lab-1", "")))
	if sent := f.sentEntries(); r.status != http.StatusOK || len(sent) != 1 || sent[0].Request["ifMatch"] != f.up.etag("Observation/lab-1") {
		t.Errorf("a batched delete: %d %s, sent %+v", r.status, r.raw, sent)
	}
	f.up.reset()
	free := f.do("POST", "/", tok, bundle("batch", entry("", "DELETE", "Observation/nope", "")))
	f.onlyReads("a batched delete of a free id")
	r = f.do("POST", "/", tok, bundle("batch", entry("", "DELETE", "Observation/lab-2", "")))
	if r.status >= 200 && r.status < 300 || r.raw != free.raw {
		t.Errorf("a batched delete outside the constraint: %d %s, want what a free id gets: %d %s", r.status, r.raw, free.status, free.raw)
	}
	f.onlyReads("a batched delete outside the constraint")
	// An update's new content cannot be proven by the server before it is
	// written: still refused, before anything is read.
	tok = f.token("launch/patient patient/Observation.ru?identifier=urn:dev|r-1", nil)
	f.refused("an update under it", f.do("PUT", "/Observation/lab-1", tok, mustJSON(f.up.resources["Observation/lab-1"])), 403)
}

// TestConstrainedSearchesStrict: a search carrying a scope's constraint
// (added by the proxy, or sent by the client) goes with Prefer:
// handling=strict, so a server lenient by default that does not support
// the constraint's parameter refuses the search rather than answering it
// unconstrained; the client sees the server's error. Other searches go
// without it.
func TestConstrainedSearchesStrict(t *testing.T) {
	var prefer requestLog
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefer.add(strings.Join(r.Header.Values("Prefer"), "; "))
		w.Header().Set("Content-Type", "application/fhir+json")
		if r.URL.Query().Has("status") && strings.Contains(r.Header.Get("Prefer"), "handling=strict") { // a parameter it does not support
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-supported","diagnostics":"unknown search parameter status"}]}`)
			return
		}
		prelim := obs("pre-1", "p1", "laboratory")
		prelim["status"] = "preliminary"
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":%s,"search":{"mode":"match"}},{"resource":%s,"search":{"mode":"match"}}]}`,
			mustJSON(obs("lab-1", "p1", "laboratory")), mustJSON(prelim))
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	sent := prefer.take
	final := f.token("user/Observation.rs?status=final", everyLabel())
	for _, c := range []struct {
		name, tok, target, prefer string
		status                    int
	}{
		{"the constraint added", final, "/Observation?category=laboratory", "handling=strict", http.StatusBadRequest},
		{"the constraint sent by the client", final, "/Observation?status=final", "handling=strict", http.StatusBadRequest},
		{"a read under the constraint", final, "/Observation/lab-1", "handling=strict", http.StatusBadRequest},
		{"with a return preference", final, "/Observation?category=laboratory", "return=representation, handling=strict", http.StatusBadRequest},
		{"no constraint", f.token("user/Observation.rs", everyLabel()), "/Observation?category=laboratory", "", http.StatusOK},
	} {
		hdr := []string{}
		if strings.HasPrefix(c.prefer, "return=") {
			hdr = []string{"Prefer", "return=representation, handling=lenient"}
		}
		r := f.do("GET", c.target, c.tok, "", hdr...)
		if got := sent(); r.status != c.status || len(got) != 1 || got[0] != c.prefer {
			t.Errorf("%s: %d, the server got Prefer %q: %.200s", c.name, r.status, got, r.raw)
		}
	}
}

// TestConstraintCheckedOnResults: a FHIR server that ignores a constraint's
// parameter (a lenient one, or one that does not support it and ignores
// Prefer: handling=strict) answers unconstrained. Where the proxy
// evaluates every scope's constraint, it holds the server's matches to it
// too, for a search, a read (a search by _id), a page that continues one
// and a POSTed search, so a vital sign never reaches a token granted
// laboratory results (found by probing smarttest's fake server, which
// ignores such parameters: a patient app read a vital sign there). A
// constraint the proxy cannot evaluate, in whole or in part, stays the
// server's to apply.
func TestConstraintCheckedOnResults(t *testing.T) {
	f := newFixture(t)
	f.up.misbehave = true // searches ignore every parameter
	f.proxy.Base = f.base
	for _, c := range []struct {
		scope string
		want  []string
	}{
		{"user/Observation.rs?category=laboratory", []string{"lab-1", "lab-2", "psy-1"}},
		{"launch/patient patient/Observation.rs?category=laboratory", []string{"lab-1", "psy-1"}},
		{"user/Observation.rs?category=laboratory user/Observation.rs?category=vital-signs", []string{"lab-1", "lab-2", "psy-1", "vs-1"}},
	} {
		tok := f.token(c.scope, everyLabel())
		var got []string
		f.up.pageSize = 2
		next := "/Observation?_count=2"
		for pages := 0; next != "" && pages < 5; pages++ {
			r := f.do("GET", next, tok, "")
			if r.status != 200 {
				t.Fatalf("%s: %s: %d %s", c.scope, next, r.status, r.raw)
			}
			got = append(got, entryIDs(r)...)
			next = strings.TrimPrefix(r.next(), f.base)
		}
		f.up.pageSize = 0
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: page by page %v, want %v", c.scope, got, c.want)
		}
		f.audit.Reset()
		r := f.do("POST", "/Observation/_search", tok, "_count=50", "Content-Type", "application/x-www-form-urlencoded")
		if ids := entryIDs(r); r.status != 200 || !slices.Equal(ids, c.want) {
			t.Errorf("%s: POSTed %d %v, want %v", c.scope, r.status, ids, c.want)
		}
		// The event tells the server's failing, for its operators.
		dropped := len(c.want) < 4
		if evs := f.audit.Events(); len(evs) != 1 || strings.Contains(evs[0].Reason, "outside the scope's constraint") != dropped ||
			dropped && evs[0].Severity != audit.Warning {
			t.Errorf("%s: POSTed search audited as %+v", c.scope, evs)
		}
		// So does the event that follows a Bundle filtered as it streams.
		f.proxy.Limits.StreamFrom = 16
		f.audit.Reset()
		r = f.do("GET", "/Observation?_count=50", tok, "")
		f.proxy.Limits.StreamFrom = 0
		waitFor(t, func() bool { return len(f.audit.Events()) >= 2 }) // (the second is recorded once the stream ends)
		evs := f.audit.Events()
		if ids := entryIDs(r); r.status != 200 || !slices.Equal(ids, c.want) || len(evs) != 2 || !strings.HasPrefix(evs[0].Reason, "Bundle streamed") ||
			strings.Contains(evs[1].Reason, "outside the scope's constraint") != dropped || dropped && evs[1].Severity != audit.Warning {
			t.Errorf("%s: streamed %d %v, audited as %+v", c.scope, r.status, ids, evs)
		}
		for _, id := range []string{"lab-1", "vs-1"} {
			f.audit.Reset()
			r := f.do("GET", "/Observation/"+id, tok, "")
			if want := slices.Contains(c.want, id); (r.status == 200) != want || !want && r.status != 404 {
				t.Errorf("%s: read %s: %d %.200s", c.scope, id, r.status, r.raw)
			}
			// Audited as the read it is, naming the record (it goes as a
			// search by _id, which named none), and saying, where the check
			// dropped any, that the server answered records outside the
			// constraint it was asked to apply.
			evs := f.audit.Events()
			if len(evs) != 1 || evs[0].Interaction != "read" || evs[0].Resource != "Observation/"+id ||
				strings.Contains(evs[0].Reason, "outside the scope's constraint") != (len(c.want) < 4) {
				t.Errorf("%s: read %s audited as %+v", c.scope, id, evs)
			}
		}
		f.up.reset()
		// _summary=text would leave out the category checked.
		f.refused(c.scope+": _summary=text", f.do("GET", "/Observation?_summary=text", tok, ""), 400)
	}
	// The total goes as the server wrote it, unless the check removed a
	// match: a server that applied the constraint counted right (and a
	// count shows no record); one that did not counted vs-1 too.
	labs := f.token("user/Observation.rs?category=laboratory", everyLabel())
	if r := f.do("GET", "/Observation?_total=accurate", labs, ""); r.status != 200 || r.body["total"] != nil {
		t.Errorf("a total with a match removed: %d %v", r.status, r.body["total"])
	}
	f.up.misbehave = false
	for _, target := range []string{"/Observation?_total=accurate", "/Observation?_summary=count"} {
		if r := f.do("GET", target, labs, ""); r.status != 200 || r.body["total"] != 3.0 {
			t.Errorf("%s, the constraint applied by the server: %d total %v", target, r.status, r.body["total"])
		}
	}
	// In a batch, which cannot ask for strict handling, the proxy would
	// hold the matches in place of the server, and a count it cannot check
	// would go without its total: the proxy counts only a search on its
	// own, and refuses the entry (it went without a total before).
	f.up.reset()
	f.refused("a batched count under the constraint", f.do("POST", "/", labs, bundle("batch", entry("", "GET", "Observation?_summary=count", ""))), http.StatusForbidden)
	// So in $lastn, whose parameters servers support few of: its total
	// goes only when the page holds the whole answer.
	f.up.pageSize = 1
	if r := f.do("GET", "/Observation/$lastn", labs, ""); r.status != 200 || r.next() == "" || r.body["total"] != nil {
		t.Errorf("$lastn's first page under the constraint: %d next %q total %v", r.status, r.next(), r.body["total"])
	}
	f.up.pageSize = 0
	f.up.misbehave = true
	f.up.reset()
	// A constraint the proxy cannot evaluate (a date) is the server's: this
	// one ignores it, and the proxy, which cannot tell, passes what it sent.
	// So is one it evaluates in part (a status named with a system, which
	// a primitive code has not): held to the part it reads, vs-1, amended,
	// which only the other part allows, would be withheld.
	f.up.mu.Lock()
	f.up.resources["Observation/vs-1"]["status"] = "amended"
	f.up.mu.Unlock()
	for scope, sent := range map[string]string{
		"user/Observation.rs?date=ge2020": "date=ge2020",
		"user/Observation.rs?status=final user/Observation.rs?status=http://hl7.org/fhir/observation-status|amended": "status=final%2Chttp%3A%2F%2Fhl7.org%2Ffhir%2Fobservation-status%7Camended",
	} {
		r := f.do("GET", "/Observation?_count=50", f.token(scope, everyLabel()), "")
		if got := f.up.requests(); r.status != 200 || len(entryIDs(r)) != 4 || len(got) != 1 || !strings.Contains(got[0].URL.RawQuery, sent) ||
			got[0].Header.Get("Prefer") != "handling=strict" {
			t.Errorf("%s, evaluated in part or not at all: %d %v, sent %v", scope, r.status, entryIDs(r), got)
		}
		f.up.reset()
		if r := f.do("GET", "/Observation?_summary=text", f.token(scope, everyLabel()), ""); r.status != 200 {
			t.Errorf("%s, evaluated in part or not at all: _summary=text: %d %s", scope, r.status, r.raw)
		}
		f.up.reset()
	}
}
