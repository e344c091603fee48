package fhirproxy_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
)

// identified gives a test record an identifier (urn:lab|value).
func identified(r map[string]any, value string) map[string]any {
	r["identifier"] = []any{map[string]any{"system": "urn:lab", "value": value}}
	return r
}

// conditionalFixture is the fixture with identifiers to match: A is lab-1
// (p1's), B lab-2 (p2's), C psy-1 (p1's, labelled R and PSY), and D two
// of p1's records (vs-1 and lab-3). Nothing has Z.
func conditionalFixture(t *testing.T) *fixture {
	f := newFixture(t)
	for key, r := range map[string]map[string]any{
		"Observation/lab-1": identified(obs("lab-1", "p1", "laboratory"), "A"),
		"Observation/lab-2": identified(obs("lab-2", "p2", "laboratory"), "B"),
		"Observation/psy-1": identified(obs("psy-1", "p1", "laboratory", "R", "PSY"), "C"),
		"Observation/vs-1":  identified(obs("vs-1", "p1", "vital-signs"), "D"),
		"Observation/lab-3": identified(obs("lab-3", "p1", "laboratory"), "D"),
	} {
		f.up.resources[key] = r
	}
	return f
}

// writes are the requests other than GET the upstream received, as
// "METHOD path If-Match", and it forgets them all.
func (f *fixture) writes() []string {
	var out []string
	for _, g := range f.up.requests() {
		if g.Method != http.MethodGet {
			out = append(out, strings.TrimSpace(g.Method+" "+g.URL.Path+" "+g.Header.Get("If-Match")))
		}
	}
	f.up.reset()
	return out
}

// withMember is the JSON of a new Observation of p1's (no id) with one
// more member.
func withMember(member string, v any) string {
	r := obs("", "p1", "laboratory")
	delete(r, "id")
	r[member] = v
	return mustJSON(r)
}

// reference is a FHIR Reference to v.
func reference(v string) map[string]any { return map[string]any{"reference": v} }

// noID is a resource's JSON without its id.
func noID(r map[string]any) string {
	delete(r, "id")
	return mustJSON(r)
}

// TestConditionalWrites: a conditional write is resolved by the proxy, over
// the matches the token may see (its compartment, its clearance), into the
// plain write they call for, which is authorised, checked and pinned
// (If-Match) as that write is on its own; the FHIR server never matches the
// criteria itself, over records the token may not see. So a patient app
// can upsert its own records, and cannot reach another patient's, nor a
// withheld one, nor tell one exists: for it they match nothing.
func TestConditionalWrites(t *testing.T) {
	f := conditionalFixture(t)
	patient := f.token("launch/patient patient/Observation.cruds", nil)
	mine := func() map[string]any { return obs("", "p1", "laboratory") }
	type want struct {
		status int
		writes []string // what reached the upstream, besides reads
	}
	for name, c := range map[string]struct {
		method, target, body string
		hdr                  []string
		want
	}{
		// An update matching one of the patient's records updates it, pinned
		// to the version judged; the body gets its id.
		"update matching one": {"PUT", "/Observation?identifier=urn:lab|A", noID(mine()), nil,
			want{200, []string{`PUT /Observation/lab-1 W/"1"`}}},
		"update naming the match's id": {"PUT", "/Observation?identifier=urn:lab|A", mustJSON(obs("lab-1", "p1", "laboratory")), nil,
			want{200, []string{`PUT /Observation/lab-1 W/"1"`}}},
		// Another patient's record, and a withheld one, match nothing: the
		// update creates, as it does for criteria nobody meets.
		"update matching another patient's": {"PUT", "/Observation?identifier=urn:lab|B", noID(mine()), nil, want{201, []string{"POST /Observation"}}},
		"update matching a withheld record": {"PUT", "/Observation?identifier=urn:lab|C", noID(mine()), nil, want{201, []string{"POST /Observation"}}},
		"update matching none":              {"PUT", "/Observation?identifier=urn:lab|Z", noID(mine()), nil, want{201, []string{"POST /Observation"}}},
		"update matching two":               {"PUT", "/Observation?identifier=urn:lab|D", noID(mine()), nil, want{412, nil}},
		"update naming another id":          {"PUT", "/Observation?identifier=urn:lab|A", mustJSON(obs("vs-1", "p1", "laboratory")), nil, want{400, nil}},
		"update with an id matching none":   {"PUT", "/Observation?identifier=urn:lab|Z", mustJSON(obs("new", "p1", "laboratory")), nil, want{400, nil}},
		// The new content is checked as any update's: it stays in the
		// compartment, and within the clearance.
		"update moving the match away": {"PUT", "/Observation?identifier=urn:lab|A", noID(obs("", "p2", "laboratory")), nil, want{403, nil}},
		"update labelling beyond":      {"PUT", "/Observation?identifier=urn:lab|A", noID(obs("", "p1", "laboratory", "R")), nil, want{403, nil}},
		"create moving away":           {"PUT", "/Observation?identifier=urn:lab|Z", noID(obs("", "p2", "laboratory")), nil, want{403, nil}},
		"a null id":                    {"PUT", "/Observation?identifier=urn:lab|A", `{"resourceType":"Observation","id":null,"status":"final","subject":{"reference":"Patient/p1"}}`, nil, want{400, nil}},

		"delete matching one":               {"DELETE", "/Observation?identifier=urn:lab|A", "", nil, want{204, []string{`DELETE /Observation/lab-1 W/"1"`}}},
		"delete matching another patient's": {"DELETE", "/Observation?identifier=urn:lab|B", "", nil, want{404, nil}},
		"delete matching a withheld record": {"DELETE", "/Observation?identifier=urn:lab|C", "", nil, want{404, nil}},
		"delete matching none":              {"DELETE", "/Observation?identifier=urn:lab|Z", "", nil, want{404, nil}},
		"delete matching two":               {"DELETE", "/Observation?identifier=urn:lab|D", "", nil, want{412, nil}},
		"delete naming another patient":     {"DELETE", "/Observation?identifier=urn:lab|A&patient=Patient/p2", "", nil, want{403, nil}},

		// A create with If-None-Exist: a visible match is answered (200,
		// the record), nothing created; one the token may not see is none.
		"create matching one":               {"POST", "/Observation", noID(mine()), []string{"If-None-Exist", "identifier=urn:lab|A"}, want{200, nil}},
		"create matching another patient's": {"POST", "/Observation", noID(mine()), []string{"If-None-Exist", "identifier=urn:lab|B"}, want{201, []string{"POST /Observation"}}},
		"create matching a withheld record": {"POST", "/Observation", noID(mine()), []string{"If-None-Exist", "identifier=urn:lab|C"}, want{201, []string{"POST /Observation"}}},
		"create matching two":               {"POST", "/Observation", noID(mine()), []string{"If-None-Exist", "identifier=urn:lab|D"}, want{412, nil}},
		"create, criteria naming another":   {"POST", "/Observation", noID(mine()), []string{"If-None-Exist", "subject=Patient/p2"}, want{403, nil}},
		"create, criteria with a chain":     {"POST", "/Observation", noID(mine()), []string{"If-None-Exist", "subject:Patient.name=Two"}, want{403, nil}},
		"create, criteria that include":     {"POST", "/Observation", noID(mine()), []string{"If-None-Exist", "_id=lab-1&_include=Observation:has-member"}, want{400, nil}},
		"create, criteria that count":       {"POST", "/Observation", noID(mine()), []string{"If-None-Exist", "identifier=urn:lab|A&_summary=count"}, want{400, nil}},
	} {
		r := f.do(c.method, c.target, patient, c.body, c.hdr...)
		if r.status != c.status {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		if got := f.writes(); strings.Join(got, "; ") != strings.Join(c.writes, "; ") {
			t.Errorf("%s: the upstream received %q, want %q", name, got, c.writes)
		}
		if r.status >= 400 && r.body["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: %s", name, r.raw)
		}
	}

	// What was forwarded: the search the token itself would make (confined
	// to its patient), then the plain write, its body carrying the id.
	f.do("PUT", "/Observation?identifier=urn:lab|A", patient, noID(mine()))
	got := f.up.requests()
	if len(got) != 3 || got[0].URL.Query().Get("patient") != "Patient/p1" || got[0].URL.Query().Get("identifier") != "urn:lab|A" ||
		got[1].URL.Path != "/Observation/lab-1" || got[2].Method != "PUT" {
		t.Errorf("forwarded %v", got)
	}
	var sent map[string]any
	f.up.mu.Lock()
	_ = json.Unmarshal([]byte(f.up.bodies[len(f.up.bodies)-1]), &sent)
	f.up.mu.Unlock()
	if sent["id"] != "lab-1" || sent["subject"].(map[string]any)["reference"] != "Patient/p1" {
		t.Errorf("the update went as %v", sent)
	}
	f.up.reset()

	// A record the criteria match, taken by another patient between the
	// proxy's check and the write: the server refuses the pinned write.
	f.up.versions = map[string][]map[string]any{}
	f.up.mu.Lock()
	f.up.afterRead = func(k string) {
		f.up.mu.Lock()
		defer f.up.mu.Unlock()
		f.up.afterRead = nil
		f.up.versions[k] = append(f.up.versions[k], f.up.resources[k])
		f.up.resources[k] = identified(obs("lab-1", "p2", "laboratory"), "A")
	}
	f.up.mu.Unlock()
	if r := f.do("PUT", "/Observation?identifier=urn:lab|A", patient, noID(mine())); r.status != http.StatusPreconditionFailed {
		t.Errorf("a match changed in between: %d %s", r.status, r.raw)
	}
	if got := f.writes(); len(got) != 1 || got[0] != `PUT /Observation/lab-1 W/"1"` {
		t.Errorf("a match changed in between: %q", got)
	}
	f.up.mu.Lock()
	f.up.resources["Observation/lab-1"], f.up.versions = identified(obs("lab-1", "p1", "laboratory"), "A"), nil
	f.up.mu.Unlock()

	// The answers for another patient's record, a withheld one and none
	// are the same: nothing tells them apart.
	var answers []string
	for _, v := range []string{"B", "C", "Z"} {
		answers = append(answers, f.do("DELETE", "/Observation?identifier=urn:lab|"+v, patient, "").raw)
	}
	if answers[0] != answers[1] || answers[1] != answers[2] {
		t.Errorf("conditional deletes tell records apart: %q", answers)
	}
	f.up.reset()

	// The create that matched answers with the record, as a read would.
	if r := f.do("POST", "/Observation", patient, noID(mine()), "If-None-Exist", "identifier=urn:lab|A"); r.status != 200 || r.body["id"] != "lab-1" {
		t.Errorf("create matching one: %s", r.raw)
	}
	f.up.reset()

	// The audit event names the record written.
	f.do("DELETE", "/Observation?identifier=urn:lab|D&category=vital-signs", patient, "")
	evs := f.audit.Events()
	if ev := evs[len(evs)-1]; ev.Type != audit.ResourceAllowed || ev.Interaction != "delete" || ev.Resource != "Observation/vs-1" || ev.Patient != "p1" {
		t.Errorf("audited as %+v", ev)
	}
	f.up.reset()
}

// TestConditionalWritesMeetTheVersionMatched: the write goes to the
// version the criteria matched. A record changed between the proxy's search
// and the write, so that it matches no more, is not written: checkStored
// refuses another version (a stored read follows), or the server does,
// given the version as If-Match (no stored read: an access that sees
// everything deleting).
func TestConditionalWritesMeetTheVersionMatched(t *testing.T) {
	f := conditionalFixture(t)
	f.up.versions = map[string][]map[string]any{}
	for _, r := range f.up.resources {
		m, _ := r["meta"].(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		m["versionId"], r["meta"] = "1", m
	}
	renamed := func() {
		f.up.mu.Lock()
		f.up.afterSearch = func() {
			f.up.mu.Lock()
			defer f.up.mu.Unlock()
			f.up.afterSearch = nil
			key := "Observation/lab-1"
			f.up.versions[key] = append(f.up.versions[key], f.up.resources[key])
			next := identified(obs("lab-1", "p1", "laboratory"), "Q")
			next["meta"] = map[string]any{"versionId": "2"}
			f.up.resources[key] = next
		}
		f.up.mu.Unlock()
	}
	user := f.token("user/Observation.cruds", nil)
	cleared := f.token("system/Observation.cruds", everyLabel())
	renamed()
	if r := f.do("DELETE", "/Observation?identifier=urn:lab|A", user, ""); r.status != http.StatusPreconditionFailed {
		t.Errorf("a record renamed after it matched, with a stored read: %d %s", r.status, r.raw)
	}
	if got := f.writes(); len(got) != 0 {
		t.Errorf("the upstream received %q", got)
	}
	f.up.mu.Lock()
	f.up.resources["Observation/lab-1"], f.up.versions = identified(obs("lab-1", "p1", "laboratory"), "A"), map[string][]map[string]any{}
	f.up.resources["Observation/lab-1"]["meta"] = map[string]any{"versionId": "1"}
	f.up.mu.Unlock()
	renamed()
	if r := f.do("DELETE", "/Observation?identifier=urn:lab|A", cleared, ""); r.status != http.StatusPreconditionFailed {
		t.Errorf("a record renamed after it matched, without a stored read: %d %s", r.status, r.raw)
	}
	if got := f.writes(); len(got) != 1 || got[0] != `DELETE /Observation/lab-1 W/"1"` {
		t.Errorf("the upstream received %q", got)
	}
	// A client's If-Match must name the version matched.
	if r := f.do("DELETE", "/Observation?identifier=urn:lab|B", cleared, "", "If-Match", `W/"7"`); r.status != http.StatusPreconditionFailed {
		t.Errorf("If-Match naming another version: %d %s", r.status, r.raw)
	}
	if got := f.writes(); len(got) != 0 {
		t.Errorf("the upstream received %q", got)
	}
}

// TestConditionalWritesByLabels: with a clearance short of every label, a
// withheld record matches nothing: a conditional write never touches it,
// and answers as it would for criteria nobody meets.
func TestConditionalWritesByLabels(t *testing.T) {
	f := conditionalFixture(t)
	user := f.token("user/Observation.cruds", nil)
	withheld := f.do("DELETE", "/Observation?_id=psy-1", user, "")
	missing := f.do("DELETE", "/Observation?_id=nope", user, "")
	if withheld.status != 404 || withheld.raw != missing.raw {
		t.Errorf("a withheld match %d %s, none %d %s", withheld.status, withheld.raw, missing.status, missing.raw)
	}
	patch := []string{"Content-Type", "application/json-patch+json"}
	if r := f.do("PATCH", "/Observation?_id=psy-1", user, `[{"op":"remove","path":"/meta"}]`, patch...); r.status != 404 {
		t.Errorf("a patch of a withheld match: %d %s", r.status, r.raw)
	}
	if r := f.do("PUT", "/Observation?_id=psy-1", user, noID(obs("", "p1", "laboratory"))); r.status != 201 {
		t.Errorf("an update of a withheld match: %d %s", r.status, r.raw)
	}
	if r := f.do("POST", "/Observation", user, noID(obs("", "p1", "laboratory")), "If-None-Exist", "_id=psy-1"); r.status != 201 {
		t.Errorf("a create matching a withheld record: %d %s", r.status, r.raw)
	}
	if got := f.writes(); strings.Join(got, "; ") != "POST /Observation; POST /Observation" {
		t.Errorf("the upstream received %q", got)
	}
	// What the clearance releases is matched as it is on its own, pinned.
	if r := f.do("PATCH", "/Observation?identifier=urn:lab|A", user, `[{"op":"replace","path":"/status","value":"amended"}]`, patch...); r.status != 200 {
		t.Errorf("a patch of a visible match: %d %s", r.status, r.raw)
	}
	if got := f.writes(); len(got) != 1 || got[0] != `PATCH /Observation/lab-1 W/"1"` {
		t.Errorf("the upstream received %q", got)
	}
	// With every label cleared, the labels of the match are kept.
	cleared := f.token("user/Observation.cruds", everyLabel())
	if r := f.do("PUT", "/Observation?identifier=urn:lab|C", cleared, noID(obs("", "p1", "laboratory"))); r.status != 403 {
		t.Errorf("labels stripped by a conditional update: %d %s", r.status, r.raw)
	}
	if r := f.do("PUT", "/Observation?identifier=urn:lab|C", cleared, noID(obs("", "p1", "laboratory", "R", "PSY"))); r.status != 200 {
		t.Errorf("a conditional update keeping labels: %d %s", r.status, r.raw)
	}
	if got := f.writes(); len(got) != 1 || got[0] != `PUT /Observation/psy-1 W/"1"` {
		t.Errorf("the upstream received %q", got)
	}
	// Matching none, an update naming an id creates there, where the id is
	// free (FHIR's update-as-create), for an access that sees everything;
	// an id a record has, that the criteria do not match, is a 409.
	if r := f.do("PUT", "/Observation?identifier=urn:lab|Z", cleared, mustJSON(obs("new-9", "p1", "laboratory"))); r.status != 200 {
		t.Errorf("an update matching none, at a free id: %d %s", r.status, r.raw)
	}
	if got := f.writes(); len(got) != 1 || got[0] != "PUT /Observation/new-9" {
		t.Errorf("the upstream received %q", got)
	}
	if r := f.do("PUT", "/Observation?identifier=urn:lab|Z", cleared, mustJSON(obs("lab-2", "p2", "laboratory"))); r.status != http.StatusConflict {
		t.Errorf("an update matching none, at a taken id: %d %s", r.status, r.raw)
	}
	if got := f.writes(); len(got) != 0 {
		t.Errorf("the upstream received %q", got)
	}
	// The matches are counted over every page of the criteria's search, a
	// withheld record on the first not hiding a visible one on the next.
	f.up.pageSize = 1
	if r := f.do("DELETE", "/Observation?identifier=urn:lab|D", user, ""); r.status != http.StatusPreconditionFailed {
		t.Errorf("two matches on two pages: %d %s", r.status, r.raw)
	}
	f.up.resources["Observation/psy-2"] = identified(obs("psy-2", "p1", "laboratory", "R", "PSY"), "E")
	f.up.resources["Observation/vs-2"] = identified(obs("vs-2", "p1", "vital-signs"), "E")
	if r := f.do("DELETE", "/Observation?identifier=urn:lab|E", user, ""); r.status != http.StatusNoContent {
		t.Errorf("a withheld match on the first page, a visible one on the next: %d %s", r.status, r.raw)
	}
	if got := f.writes(); len(got) != 1 || got[0] != `DELETE /Observation/vs-2 W/"1"` {
		t.Errorf("the upstream received %q", got)
	}
	f.up.pageSize = 0
	// Scopes: the write's letter and s (under a constraint:
	// TestConstrainedConditionalWrites).
	for name, scope := range map[string]string{
		"no s": "user/Observation.cud",
		"no u": "user/Observation.rs",
	} {
		f.refused(name, f.do("PUT", "/Observation?identifier=urn:lab|A", f.token(scope, everyLabel()), noID(obs("", "p1", "laboratory"))), 403)
	}
}

// TestConditionalReferences: a reference written as a search
// (Patient?identifier=…) is resolved by the FHIR server over every record
// it holds, so, written by an access that does not see everything, it
// would link the record to one the access may not see (another patient's,
// a withheld one) and tell by the answer (201, or the server's 400 or 412)
// whether such a record exists. It is refused, in a resource (contained
// ones too), a JSON Patch or a FHIRPath Patch, and nothing is forwarded;
// an access that sees everything may write one.
func TestConditionalReferences(t *testing.T) {
	f := newFixture(t)
	patient := f.token("launch/patient patient/Observation.cruds", nil)
	user := f.token("user/Observation.cruds", nil)
	jsonPatch := []string{"Content-Type", "application/json-patch+json"}
	for name, c := range map[string]struct {
		method, target, tok, body string
		hdr                       []string
	}{
		"an encounter by identifier":    {"POST", "/Observation", patient, withMember("encounter", reference("Encounter?identifier=urn:enc|9")), nil},
		"a performer by identifier":     {"POST", "/Observation", user, withMember("performer", []any{reference("Practitioner?identifier=urn:npi|1")}), nil},
		"the subject by identifier":     {"POST", "/Observation", user, withMember("subject", reference("Patient?identifier=urn:mrn|2")), nil},
		"an absolute search":            {"POST", "/Observation", user, withMember("subject", reference(f.up.ts.URL+"/Patient?identifier=urn:mrn|2")), nil},
		"in a contained resource":       {"POST", "/Observation", user, withMember("contained", []any{map[string]any{"resourceType": "Specimen", "id": "s", "subject": reference("Patient?name=Two")}}), nil},
		"in an update":                  {"PUT", "/Observation/lab-1", user, strings.Replace(withMember("encounter", reference("Encounter?status=finished")), `{`, `{"id":"lab-1",`, 1), nil},
		"a patched reference":           {"PATCH", "/Observation/lab-1", user, `[{"op":"replace","path":"/subject/reference","value":"Patient?identifier=urn:mrn|2"}]`, jsonPatch},
		"a patched reference object":    {"PATCH", "/Observation/lab-1", user, `[{"op":"add","path":"/performer","value":[{"reference":"Practitioner?identifier=x"}]}]`, jsonPatch},
		"a FHIRPath patch of reference": {"PATCH", "/Observation/lab-1", user, fhirPathPatchValue("Observation.subject", `"valueReference":{"reference":"Patient?identifier=urn:mrn|2"}`), nil},
		"in a batch": {"POST", "/", user, `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Observation"},"resource":` +
			withMember("performer", []any{reference("Practitioner?identifier=x")}) + `}]}`, nil},
	} {
		f.refused(name, f.do(c.method, c.target, c.tok, c.body, c.hdr...), http.StatusForbidden)
	}
	cleared := f.token("system/Observation.cruds", everyLabel())
	if r := f.do("POST", "/Observation", cleared, withMember("performer", []any{reference("Practitioner?identifier=urn:npi|1")})); r.status != 201 {
		t.Errorf("a conditional reference by an access that sees everything: %d %s", r.status, r.raw)
	}
	f.up.reset()
	// References that are not searches pass.
	if r := f.do("POST", "/Observation", user, withMember("performer", []any{reference("Practitioner/dr"), reference("#x")})); r.status != 201 {
		t.Errorf("plain references: %d %s", r.status, r.raw)
	}
	f.up.reset()
}

// fhirPathPatchValue is a FHIRPath Patch replacing path with a value
// (its value[x] member, as JSON).
func fhirPathPatchValue(path, value string) string {
	return `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},` +
		`{"name":"path","valueString":"` + path + `"},{"name":"value",` + value + `}]}]}`
}

// TestConditionalWritesOfBoundRecords: a conditional write of a Binary or
// a Provenance, judged by the records it is bound to, matches the one the
// token may see as a write to it would (found by probing: with no reader
// for those records, an update by _id of a Binary the token may see
// matched none and created another, and a delete was 404), and never one
// it may not. The criteria's search goes with one page size, the smaller
// (a page of Provenances no larger than the targets the proxy may read).
func TestConditionalWritesOfBoundRecords(t *testing.T) {
	f := newFixture(t)
	f.up.boundRecords()
	tok := f.token("user/Binary.cruds user/Provenance.cruds user/Observation.rs user/Practitioner.rs", nil) // the psychotherapy note withheld
	content := `{"resourceType":"Binary","contentType":"text/plain","data":"aGk=","securityContext":{"reference":"Observation/lab-1"}}`
	for _, c := range []struct {
		method, target, body string
		status               int
		written              string // the write upstream, "" for none
	}{
		{"PUT", "/Binary?_id=b-lab", content, 200, "PUT /Binary/b-lab"},
		{"DELETE", "/Binary?_id=b-lab", "", 204, "DELETE /Binary/b-lab"},
		{"DELETE", "/Provenance?_id=pv-lab", "", 204, "DELETE /Provenance/pv-lab"},
		{"DELETE", "/Binary?_id=b-psy", "", 404, ""},
		{"DELETE", "/Provenance?_id=pv-psy", "", 404, ""},
	} {
		r := f.do(c.method, c.target, tok, c.body)
		var written string
		for _, g := range f.up.requests() {
			if g.Method != http.MethodGet {
				written = g.Method + " " + g.URL.Path
			} else if q := g.URL.Query(); q.Has("_id") && len(q["_count"]) != 1 {
				t.Errorf("%s %s: the criteria went as %s", c.method, c.target, g.URL.RequestURI())
			}
		}
		if r.status != c.status || written != c.written {
			t.Errorf("%s %s: %d %.200s, wrote %q; want %d, %q", c.method, c.target, r.status, r.raw, written, c.status, c.written)
		}
		f.up.reset()
	}
}
