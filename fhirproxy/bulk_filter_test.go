package fhirproxy_test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
)

// kickedOff sends a kick-off (GET target), which must be accepted, and
// returns its parameters as the server read them.
func kickedOff(t *testing.T, f *fixture, tok, target string) url.Values {
	t.Helper()
	f.up.reset()
	r := f.do("GET", target, tok, "", "Prefer", "respond-async")
	got := f.up.requests()
	if r.status != http.StatusAccepted || len(got) != 1 {
		t.Fatalf("%s: %d %s, upstream %v", target, r.status, r.raw, got)
	}
	return got[0].URL.Query()
}

// TestBulkExportTypeFilter: a client's _typeFilter queries go to the
// server re-serialised, each within the scopes' constraint where the
// token's scope for the type is constrained; a query the token could not
// search by, or one that is not a search of an exported type, is refused
// before anything reaches the server.
func TestBulkExportTypeFilter(t *testing.T) {
	f, _ := newBulkFixture(t)
	async := []string{"Prefer", "respond-async"}
	// kick returns the _type and the _typeFilter queries of a kick-off as
	// the server reads them.
	kick := func(tok, target string) (types string, filters []string) {
		t.Helper()
		q := kickedOff(t, f, tok, target)
		return q.Get("_type"), q["_typeFilter"]
	}
	full := f.token("system/Observation.rs system/Patient.rs", everyLabel())
	for _, c := range []struct {
		name, target, types string
		filters             []string
	}{
		{"one query", "/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?category=laboratory"),
			"Observation", []string{"Observation?category=laboratory"}},
		{"repeated", "/$export?_type=Observation,Patient&_typeFilter=" + url.QueryEscape("Observation?category=laboratory") +
			"&_typeFilter=" + url.QueryEscape("Patient?gender=female"),
			"Observation,Patient", []string{"Observation?category=laboratory", "Patient?gender=female"}},
		{"comma-separated (Bulk Data 1)", "/$export?_type=Observation,Patient&_typeFilter=" +
			url.QueryEscape("Patient?gender=female,Observation?code=http://loinc.org|2339-0"),
			"Observation,Patient", []string{"Observation?code=http%3A%2F%2Floinc.org%7C2339-0", "Patient?gender=female"}}, // by _type's order
		{"an OR list stays one query", "/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?category=laboratory,vital-signs"),
			"Observation", []string{"Observation?category=laboratory%2Cvital-signs"}},
		{"escaped twice, as Bulk Data 2 writes an OR list", "/$export?_type=Observation&_typeFilter=" +
			url.QueryEscape("Observation?category="+url.QueryEscape("laboratory,vital-signs")),
			"Observation", []string{"Observation?category=laboratory%2Cvital-signs"}},
		{"two criteria", "/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?category=laboratory&date=ge2026-01-01"),
			"Observation", []string{"Observation?category=laboratory&date=ge2026-01-01"}},
		{"without _type", "/$export?_typeFilter=" + url.QueryEscape("Observation?status=final"),
			"Observation,Patient", []string{"Observation?status=final"}},
	} {
		types, filters := kick(full, c.target)
		if types != c.types || !slices.Equal(filters, c.filters) {
			t.Errorf("%s: _type %q, _typeFilter %q; want %q, %q", c.name, types, filters, c.types, c.filters)
		}
	}
	// A wildcard scope exports every type without _type: the queries go
	// alone.
	if types, filters := kick(f.token("system/*.rs", everyLabel()), "/$export?_typeFilter="+url.QueryEscape("Condition?clinical-status=active")); types != "" ||
		!slices.Equal(filters, []string{"Condition?clinical-status=active"}) {
		t.Errorf("a wildcard scope: _type %q, _typeFilter %q", types, filters)
	}
	// A search by other records is allowed where the token searches them
	// and sees every record, as in a search.
	if _, filters := kick(f.token("system/Patient.rs system/Condition.s", everyLabel()), "/$export?_type=Patient&_typeFilter="+
		url.QueryEscape("Patient?_has:Condition:subject:code=F11.20")); !slices.Equal(filters, []string{"Patient?_has%3ACondition%3Asubject%3Acode=F11.20"}) {
		t.Errorf("_has with Condition searched: %q", filters)
	}

	// A constrained type: each of the client's queries within each scope's
	// constraint (the server ORs a type's queries, and ANDs a query's
	// criteria); the lines are still held to the constraint at download.
	two := f.token("system/Observation.rs?category=laboratory system/Observation.rs?category=vital-signs system/Patient.rs", nil)
	_, filters := kick(two, "/$export?_type=Observation,Patient&_typeFilter="+url.QueryEscape("Observation?status=final")+
		"&_typeFilter="+url.QueryEscape("Observation?status=amended")+"&_typeFilter="+url.QueryEscape("Patient?gender=male"))
	want := []string{"Observation?status=final&category=laboratory", "Observation?status=final&category=vital-signs",
		"Observation?status=amended&category=laboratory", "Observation?status=amended&category=vital-signs", "Patient?gender=male"}
	if !slices.Equal(filters, want) {
		t.Errorf("constrained: %q, want %q", filters, want)
	}
	// A client's query repeating the constraint's parameter is ANDed with
	// it, and so narrows it only.
	lab := f.token("system/Observation.rs?category=laboratory", nil)
	if _, filters := kick(lab, "/$export?_typeFilter="+url.QueryEscape("Observation?category=vital-signs")); !slices.Equal(filters,
		[]string{"Observation?category=vital-signs&category=laboratory"}) {
		t.Errorf("a constraint's parameter repeated: %q", filters)
	}

	// A POSTed kick-off's _typeFilter values are its query's.
	f.up.reset()
	r := f.do("POST", "/$export", full, `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"},`+
		`{"name":"_typeFilter","valueString":"Observation?category=laboratory"},{"name":"_typeFilter","valueString":"Observation?code=8867-4"}]}`, async...)
	if got := f.up.requests(); r.status != http.StatusAccepted || len(got) != 1 || got[0].Method != http.MethodGet ||
		!slices.Equal(got[0].URL.Query()["_typeFilter"], []string{"Observation?category=laboratory", "Observation?code=8867-4"}) {
		t.Errorf("a POSTed kick-off: %d %s, upstream %v", r.status, r.raw, got)
	}

	partial := f.token("system/Observation.rs system/Patient.rs system/Condition.s", nil) // the default clearance
	noCondition := f.token("system/Observation.rs system/Patient.rs", everyLabel())
	filter := func(types string, queries ...string) string {
		target := "/$export?_type=" + types
		for _, q := range queries {
			target += "&_typeFilter=" + url.QueryEscape(q)
		}
		return target
	}
	many := make([]string, 33)
	for i := range many {
		many[i] = "Observation?code=" + strings.Repeat("1", i+1)
	}
	for _, c := range []struct {
		name, tok, target string
		status            int
	}{
		{"a type _type does not name", full, filter("Observation", "Patient?gender=female"), 400},
		{"a type it may not export", full, "/$export?_typeFilter=" + url.QueryEscape("Condition?code=x"), 403},
		{"a type exported only under a wildcard's constraint, not named", f.token("system/*.rs?category=laboratory system/Patient.rs", nil),
			"/$export?_typeFilter=" + url.QueryEscape("Observation?code=x"), 403},
		{"a type in another case", full, filter("Observation", "observation?code=x"), 400},
		{"not a type", full, filter("Observation", "Observations?code=x"), 400},
		{"no query", full, filter("Observation", "Observation"), 400},
		{"an empty query", full, filter("Observation", "Observation?"), 400},
		{"_sort", full, filter("Observation", "Observation?_sort=date"), 400},
		{"_include", full, filter("Observation", "Observation?_include=Observation:subject"), 400},
		{"_revinclude", full, filter("Patient", "Patient?_revinclude=Observation:subject"), 400},
		{"_elements", full, filter("Observation", "Observation?_elements=id"), 400},
		{"_count", full, filter("Observation", "Observation?_count=10"), 400},
		{"_summary", full, filter("Observation", "Observation?_summary=count"), 400},
		{"_contained", full, filter("Observation", "Observation?_contained=true"), 400},
		{"_type", full, filter("Observation", "Observation?_type=Condition"), 400},
		{"an unknown underscored name", full, filter("Observation", "Observation?_graph=x"), 400},
		{"a parameter name in another case", full, filter("Observation", "Observation?_HAS:Condition:subject:code=x"), 400},
		{"a token in the query", full, filter("Observation", "Observation?access_token=x"), 400},
		{"a semicolon", full, filter("Observation", "Observation?code=a;b"), 400},
		{"a control character", full, filter("Observation", "Observation?code=a\nb"), 400},
		{"a chain, partial clearance", partial, filter("Observation", "Observation?subject:Patient.name=smith"), 403},
		{"an untyped chain, partial clearance", partial, filter("Observation", "Observation?patient.name=smith"), 403},
		{"_has, partial clearance", partial, filter("Patient", "Patient?_has:Condition:subject:code=F11.20"), 403},
		{"_list, partial clearance", partial, filter("Observation", "Observation?_list=l1"), 403},
		{"_filter, partial clearance", partial, filter("Observation", "Observation?_filter=code eq x"), 403},
		{"_has of a type not searched", noCondition, filter("Patient", "Patient?_has:Condition:subject:code=F11.20"), 403},
		{"a chain to a type not searched", f.token("system/Observation.rs", everyLabel()), filter("Observation", "Observation?subject:Patient.name=smith"), 403},
		{"33 queries", full, filter("Observation", many...), 400},
		{"33 queries, 11 within each of 3 constraints", f.token("system/Observation.rs?category=a system/Observation.rs?category=b system/Observation.rs?category=c", nil),
			filter("Observation", many[:11]...), 400},
	} {
		f.up.reset()
		f.refused(c.name, f.do("GET", c.target, c.tok, "", async...), c.status)
	}
}

// TestBulkExportElements: a client's _elements goes to the server with
// what the proxy reads of each line added (the labels, the references
// naming the patient, a Provenance's target, what a constraint reads), for
// the types the list selects from, as the client wrote its own: unqualified
// for every type, or Type.element for a type it names.
func TestBulkExportElements(t *testing.T) {
	f, bs := newBulkFixture(t)
	async := []string{"Prefer", "respond-async"}
	sent := func(tok, target string) string {
		t.Helper()
		return kickedOff(t, f, tok, target).Get("_elements")
	}
	full := f.token("system/Observation.rs system/Patient.rs system/Provenance.rs", everyLabel())
	for _, c := range []struct{ name, tok, target, want string }{
		{"unqualified", full, "/$export?_type=Observation,Patient&_elements=code,name", "code,name,meta,subject"},
		{"qualified", full, "/$export?_type=Observation,Patient&_elements=Observation.code", "Observation.code,Observation.meta,Observation.subject"},
		{"both", full, "/$export?_type=Observation,Patient&_elements=Patient.name,code", "Patient.name,code,meta,subject,Patient.meta"},
		{"what it has already", full, "/$export?_type=Observation&_elements=subject,meta,code", "subject,meta,code"},
		{"a Provenance's target", full, "/$export?_type=Provenance&_elements=recorded", "recorded,meta,target"},
		{"without _type", full, "/$export?_elements=Observation.code", "Observation.code,Observation.meta,Observation.subject"},
		{"what a constraint reads", f.token("system/Observation.rs?category=laboratory", nil), "/$export?_elements=Observation.code",
			"Observation.code,Observation.meta,Observation.subject,Observation.category"},
	} {
		if got := sent(c.tok, c.target); got != c.want {
			t.Errorf("%s: _elements %q, want %q", c.name, got, c.want)
		}
	}
	// A wildcard scope exports every type: unqualified elements get what
	// any type needs.
	got := strings.Split(sent(f.token("system/*.rs", everyLabel()), "/$export?_elements=id"), ",")
	for _, e := range []string{"id", "meta", "subject", "patient", "participant", "beneficiary", "target", "securityContext"} {
		if !slices.Contains(got, e) {
			t.Errorf("a wildcard's export: _elements %q lacks %s", got, e)
		}
	}
	// The lines are judged as without it.
	lines := 0
	for _, o := range bs.manifestOf(t, full, "/$export?_type=Observation&_elements=code") {
		if o["type"] == "Observation" {
			r := f.do("GET", f.proxyPath(o["url"].(string)), full, "")
			lines = strings.Count(r.raw, "\n")
		}
	}
	if lines != 4 {
		t.Errorf("the Observation file: %d lines, want 4", lines)
	}

	for _, c := range []struct {
		name, target string
		status       int
	}{
		{"a nested element", "/$export?_type=Observation&_elements=Observation.code.coding", 400},
		{"an element by case", "/$export?_type=Observation&_elements=Code", 400},
		{"a type by case", "/$export?_type=Observation&_elements=observation.code", 400},
		{"an empty item", "/$export?_type=Observation&_elements=code,,subject", 400},
		{"empty", "/$export?_type=Observation&_elements=", 400},
		{"a choice written as in a profile", "/$export?_type=Observation&_elements=value[x]", 400},
		{"twice", "/$export?_type=Observation&_elements=code&_elements=status", 400},
		{"a type _type does not name", "/$export?_type=Observation&_elements=Patient.name", 400},
		{"a type it may not export", "/$export?_elements=Condition.code", 403},
	} {
		f.up.reset()
		f.refused(c.name, f.do("GET", c.target, full, "", async...), c.status)
	}
}

// TestBulkExportPatients: a POSTed kick-off on Patient or a Group may name
// its patients (Bulk Data's patient, a Reference): they go upstream in a
// Parameters body with the other parameters, re-serialised, and the audit
// event names them. For a clearance short of every label each is read
// first, and a withheld one answers exactly as a missing one, with nothing
// sent.
func TestBulkExportPatients(t *testing.T) {
	f, _ := newBulkFixture(t)
	f.up.mu.Lock()
	f.up.resources["Patient/vip"] = map[string]any{"resourceType": "Patient", "id": "vip",
		"meta": map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}}}}
	f.up.mu.Unlock()
	async := []string{"Prefer", "respond-async"}
	body := func(params ...string) string {
		return `{"resourceType":"Parameters","parameter":[` + strings.Join(params, ",") + `]}`
	}
	patient := func(ref string) string { return `{"name":"patient","valueReference":{"reference":"` + ref + `"}}` }
	observations := `{"name":"_type","valueString":"Observation"}`

	full := f.token("system/Patient.rs system/Observation.rs", everyLabel())
	r := f.do("POST", "/Patient/$export", full, body(observations, patient("Patient/p1"), patient("Patient/p2"), patient("Patient/p1")), async...)
	got := f.up.requests()
	if r.status != http.StatusAccepted || len(got) != 1 || got[0].Method != http.MethodPost || got[0].URL.Path != "/base/Patient/$export" ||
		got[0].URL.RawQuery != "" || got[0].Header.Get("Content-Type") != "application/fhir+json" || got[0].Header.Get("Prefer") != "respond-async" {
		t.Fatalf("named patients: %d %s, upstream %v", r.status, r.raw, got)
	}
	want := body(`{"name":"_type","valueString":"Observation"}`, patient("Patient/p1"), patient("Patient/p2"))
	if f.up.bodies[0] != want {
		t.Errorf("the body sent: %s\nwant %s", f.up.bodies[0], want)
	}
	evs := f.audit.Of(audit.ResourceAllowed)
	if ev := evs[len(evs)-1]; ev.Patient != "p1" || !slices.Equal(ev.Patients, []string{"p2"}) || !slices.Equal(ev.Resources, []string{"Observation"}) {
		t.Errorf("the kick-off's event: patient %q, patients %q, resources %q", ev.Patient, ev.Patients, ev.Resources)
	}

	// A clearance short of every label: the patients are read first (one
	// search), and a withheld one reads exactly as a missing one.
	f.up.reset()
	partial := f.token("system/Patient.rs system/Observation.rs system/Group.r", nil)
	r = f.do("POST", "/Group/g1/$export", partial, body(patient("Patient/p1"), patient("Patient/p2"), `{"name":"_since","valueInstant":"2026-01-01T00:00:00Z"}`), async...)
	got = f.up.requests()
	if r.status != http.StatusAccepted || len(got) != 3 || got[0].URL.Path != "/Patient" || got[0].URL.Query().Get("_id") != "p1,p2" ||
		got[1].URL.Path != "/Group/g1" || got[2].Method != http.MethodPost {
		t.Fatalf("a partial clearance's kick-off: %d %s, upstream %v", r.status, r.raw, got)
	}
	if want := body(`{"name":"_since","valueInstant":"2026-01-01T00:00:00Z"}`, `{"name":"_type","valueString":"Patient,Observation"}`,
		patient("Patient/p1"), patient("Patient/p2")); f.up.bodies[2] != want {
		t.Errorf("the body sent: %s\nwant %s", f.up.bodies[2], want)
	}
	answers := map[string]string{}
	for _, ref := range []string{"Patient/vip", "Patient/nobody"} {
		f.up.reset()
		r := f.do("POST", "/Patient/$export", partial, body(patient("Patient/p1"), patient(ref)), async...)
		if got := f.up.requests(); r.status != http.StatusNotFound || len(got) != 1 || got[0].URL.Path != "/Patient" {
			t.Errorf("%s: %d %s, upstream %v", ref, r.status, r.raw, got)
		}
		answers[ref] = r.raw
	}
	if answers["Patient/vip"] != answers["Patient/nobody"] {
		t.Errorf("a withheld patient reads otherwise than a missing one:\n%s\n%s", answers["Patient/vip"], answers["Patient/nobody"])
	}
	// 120 patients are read 50 a search.
	f.up.mu.Lock()
	var named []string
	for i := range 120 {
		id := "q" + strconv.Itoa(i)
		f.up.resources["Patient/"+id] = map[string]any{"resourceType": "Patient", "id": id}
		named = append(named, patient("Patient/"+id))
	}
	f.up.mu.Unlock()
	f.up.reset()
	r = f.do("POST", "/Patient/$export", partial, body(named...), async...)
	if got := f.up.requests(); r.status != http.StatusAccepted || len(got) != 4 || strings.Count(got[2].URL.Query().Get("_id"), ",") != 19 ||
		strings.Count(f.up.bodies[3], `"patient"`) != 120 {
		t.Errorf("120 patients: %d %s, %d upstream requests", r.status, r.raw, len(got))
	}
	// The full clearance reads none: the server answers for them.
	f.up.reset()
	if r := f.do("POST", "/Patient/$export", full, body(patient("Patient/vip")), async...); r.status != http.StatusAccepted || len(f.up.requests()) != 1 {
		t.Errorf("a full clearance: %d %s, upstream %v", r.status, r.raw, f.up.requests())
	}

	many := func(n int) string {
		var ps []string
		for i := range n {
			ps = append(ps, patient("Patient/p"+strconv.Itoa(i)))
		}
		return body(ps...)
	}
	for _, c := range []struct {
		name, tok, target, body string
		status                  int
	}{
		{"at system level", full, "/$export", body(patient("Patient/p1")), 400},
		{"without Patient read", f.token("system/Observation.rs", everyLabel()), "/Patient/$export", body(patient("Patient/p1")), 403},
		{"another type", full, "/Patient/$export", body(patient("Group/g1")), 400},
		{"an absolute reference", full, "/Patient/$export", body(patient("https://elsewhere.example/Patient/p1")), 400},
		{"an id that is not one", full, "/Patient/$export", body(patient("Patient/p1/_history/2")), 400},
		{"a string", full, "/Patient/$export", body(`{"name":"patient","valueString":"Patient/p1"}`), 400},
		{"a Reference with a display", full, "/Patient/$export", body(`{"name":"patient","valueReference":{"reference":"Patient/p1","display":"One"}}`), 400},
		{"a Reference by identifier", full, "/Patient/$export", body(`{"name":"patient","valueReference":{"identifier":{"value":"1"}}}`), 400},
		{"a reference in another case", full, "/Patient/$export", body(`{"name":"patient","valueReference":{"Reference":"Patient/p1"}}`), 400},
		{"another parameter as a Reference", full, "/Patient/$export", body(`{"name":"_type","valueReference":{"reference":"Patient/p1"}}`), 400},
		{"1001 patients", full, "/Patient/$export", many(1001), 400},
		{"201 patients, for a partial clearance", partial, "/Patient/$export", many(201), 400},
	} {
		f.up.reset()
		f.refused(c.name, f.do("POST", c.target, c.tok, c.body, async...), c.status)
	}
	r = f.do("GET", "/Patient/$export?patient=Patient/p1", full, "", async...)
	if !strings.Contains(diagnostics(r), "POSTed") {
		t.Errorf("patient in a GET's query: %s", r.raw)
	}
	f.refused("in a GET's query", r, 400)
	// 1000 patients (far more than a query's parameters) go.
	f.up.reset()
	if r := f.do("POST", "/Patient/$export", full, many(1000), async...); r.status != http.StatusAccepted || strings.Count(f.up.bodies[0], `"patient"`) != 1000 {
		t.Errorf("1000 patients: %d %s", r.status, r.raw)
	}
}

// TestBulkExportAssociatedData: includeAssociatedData's two Provenance
// values go to the server for a token that may export Provenance (the
// Provenance files are judged as any); other values do not.
func TestBulkExportAssociatedData(t *testing.T) {
	f, _ := newBulkFixture(t)
	async := []string{"Prefer", "respond-async"}
	tok := f.token("system/Observation.rs system/Provenance.rs", nil)
	for _, c := range []struct{ name, method, target, body string }{
		{"GET", "GET", "/$export?_type=Observation&includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources,LatestProvenanceResources", ""},
		{"POSTed", "POST", "/$export", `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"},` +
			`{"name":"includeAssociatedData","valueCode":"LatestProvenanceResources,RelevantProvenanceResources"}]}`},
	} {
		f.up.reset()
		r := f.do(c.method, c.target, tok, c.body, async...)
		got := f.up.requests()
		if r.status != http.StatusAccepted || len(got) != 1 ||
			got[0].URL.Query().Get("includeAssociatedData") != "LatestProvenanceResources,RelevantProvenanceResources" {
			t.Errorf("%s: %d %s, upstream %v", c.name, r.status, r.raw, got)
		}
	}
	// The Provenances come in files of their own, which an element list
	// subsets too: each keeps its target, which it is judged by.
	if got := kickedOff(t, f, tok, "/$export?_type=Observation&includeAssociatedData=LatestProvenanceResources&_elements=code,Provenance.recorded").
		Get("_elements"); got != "code,Provenance.recorded,meta,subject,target,Provenance.meta,Provenance.target" {
		t.Errorf("_elements with associated data: %q", got)
	}
	for _, c := range []struct {
		name, tok, target string
		status            int
	}{
		{"a value of the server's own", tok, "/$export?includeAssociatedData=_relatedEncounters", 400},
		{"an unknown value", tok, "/$export?includeAssociatedData=AllProvenance", 400},
		{"a value by case", tok, "/$export?includeAssociatedData=latestProvenanceResources", 400},
		{"without Provenance", f.token("system/Observation.rs", nil), "/$export?includeAssociatedData=LatestProvenanceResources", 403},
	} {
		f.up.reset()
		f.refused(c.name, f.do("GET", c.target, c.tok, "", async...), c.status)
	}
}
