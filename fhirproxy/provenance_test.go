package fhirproxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
)

// provenance is a Provenance about targets, recorded by Practitioner/dr.
func provenance(id string, targets ...string) map[string]any {
	refs := []any{}
	for _, t := range targets {
		refs = append(refs, map[string]any{"reference": t})
	}
	p := map[string]any{"resourceType": "Provenance", "id": id, "recorded": "2026-11-02T10:00:00Z",
		"agent": []any{map[string]any{"who": map[string]any{"reference": "Practitioner/dr"}}}}
	if len(refs) > 0 {
		p["target"] = refs
	}
	return p
}

// provenanceFixture is a fixture whose upstream holds Provenances about
// p1's records, p2's, a withheld one, a shared one and odd targets, and
// brings them all, and Practitioner/dr, along with any _revinclude.
func provenanceFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.up.mu.Lock()
	defer f.up.mu.Unlock()
	f.up.includes = nil
	for _, p := range []map[string]any{
		provenance("lab1", "Observation/lab-1"), provenance("abs", f.up.ts.URL+"/Observation/lab-1"),
		provenance("versioned", "Observation/lab-1/_history/1"), provenance("p1", "Patient/p1"),
		provenance("lab2", "Observation/lab-2"), provenance("both", "Observation/lab-1", "Observation/lab-2"),
		provenance("psy", "Observation/psy-1"), provenance("p2", "Patient/p2"), provenance("none"),
		provenance("foreign", "https://other.example/fhir/Observation/lab-1"), provenance("contained", "#x"),
		provenance("many", slices.Repeat([]string{"Observation/lab-1"}, 9)...), provenance("dr", "Practitioner/dr"),
	} {
		f.up.resources["Provenance/"+p["id"].(string)] = p
		f.up.includes = append(f.up.includes, map[string]any{"resource": p, "search": map[string]any{"mode": "include"}})
	}
	f.up.includes = append(f.up.includes, map[string]any{"resource": f.up.resources["Practitioner/dr"], "search": map[string]any{"mode": "include"}})
	return f
}

// TestProvenance: a patient app reads the Provenance of its patient's
// records, as US Core has apps do (a read, and _revinclude=Provenance:target
// on a search), and no other: a Provenance is in no compartment, and is
// judged by its targets, each of which must be a record the token may see
// (read from the FHIR server for a read; among the entries the Bundle
// keeps for a search). Another patient's, one about a withheld record, one
// about nothing or about another server's records answer as a missing one
// does.
func TestProvenance(t *testing.T) {
	f := provenanceFixture(t)
	tok := f.token("launch/patient patient/Observation.rs patient/Provenance.rs patient/Patient.rs patient/Practitioner.rs", nil)
	missing := f.do("GET", "/Provenance/nope", tok, "")
	if missing.status != 404 {
		t.Fatalf("a missing Provenance: %d %s", missing.status, missing.raw)
	}
	for id, want := range map[string]bool{"lab1": true, "abs": true, "versioned": true, "p1": true,
		"lab2": false, "both": false, "psy": false, "p2": false, "none": false, "foreign": false, "contained": false, "many": false,
		"dr": false} { // a shared record's (the token may read Practitioner): not the patient's
		r := f.do("GET", "/Provenance/"+id, tok, "")
		switch {
		case want && (r.status != 200 || r.body["id"] != id):
			t.Errorf("Provenance/%s: %d %s", id, r.status, r.raw)
		case !want && (r.status != 404 || r.raw != missing.raw):
			t.Errorf("Provenance/%s: %d %s, want the missing one's answer", id, r.status, r.raw)
		}
		f.onlyReads("Provenance/" + id)
	}
	if r := f.do("GET", "/Provenance/lab1/_history/1", tok, ""); r.status != 200 {
		t.Errorf("a version of Provenance/lab1: %d %s", r.status, r.raw)
	}
	if r := f.do("GET", "/Provenance/lab2/_history/1", tok, ""); r.status != 404 {
		t.Errorf("a version of Provenance/lab2: %d %s", r.status, r.raw)
	}
	// Its targets must be readable with the token.
	noObs := f.token("launch/patient patient/Provenance.rs", nil)
	if r := f.do("GET", "/Provenance/lab1", noObs, ""); r.status != 404 {
		t.Errorf("Provenance/lab1 without Observation read: %d %s", r.status, r.raw)
	}
	f.up.reset()

	// With a search, each Provenance comes with the records it is about.
	// (Practitioner/dr comes along too, a shared record the token may
	// read; a Provenance about it does not: it is not the patient's.)
	for target, want := range map[string][]string{
		"/Observation?_revinclude=Provenance:target":             {"abs", "dr", "lab-1", "lab1", "versioned", "vs-1"},
		"/Observation?_revinclude=Provenance:target:Observation": {"abs", "dr", "lab-1", "lab1", "versioned", "vs-1"},
		"/Patient?_revinclude=Provenance:target":                 {"dr", "p1", "p1"},
		"/Patient/p1/Observation?_revinclude=Provenance:target":  {"abs", "dr", "lab-1", "lab1", "versioned", "vs-1"},
		// A shared type's search may ask for them too (US Core asks it of
		// every type), and gets none: they are not about the patient's.
		"/Practitioner?_revinclude=Provenance:target": {"dr", "dr"},
	} {
		r := f.do("GET", target, tok, "")
		if got := entryIDs(r); r.status != 200 || !slices.Equal(got, want) {
			t.Errorf("%s: %d, entries %v, want %v", target, r.status, got, want)
		}
		u, _ := url.Parse(target)
		if got := f.up.requests(); len(got) != 1 || !slices.Equal(got[0].URL.Query()["_revinclude"], u.Query()["_revinclude"]) {
			t.Errorf("%s: forwarded %v", target, got)
		}
		f.up.reset()
	}
	// Nothing else rides along: other reverse includes, iterating ones,
	// a type the search is not of, searches of Provenance itself, writes.
	for _, target := range []string{
		"/Observation?_revinclude=Provenance:entity", "/Observation?_revinclude=Observation:has-member",
		"/Observation?_revinclude:iterate=Provenance:target", "/Observation?_revinclude=Provenance:target:Condition",
		"/Provenance?target=Observation/lab-1", "/Provenance/lab1/_history",
	} {
		f.refused(target, f.do("GET", target, tok, ""), 403)
	}
	f.refused("a Provenance written", f.do("POST", "/Provenance", f.token("launch/patient patient/*.cruds", nil),
		mustJSON(provenance("", "Observation/lab-1"))), 403)
}

// TestProvenanceForClinicians: without patient context a Provenance is
// judged as any record is, by its type and labels; its targets are not
// read.
func TestProvenanceForClinicians(t *testing.T) {
	f := provenanceFixture(t)
	tok := f.token("user/Provenance.rs user/Observation.rs", nil)
	if r := f.do("GET", "/Provenance/lab2", tok, ""); r.status != 200 {
		t.Errorf("Provenance/lab2 to a clinician: %d %s", r.status, r.raw)
	}
	if got := f.up.requests(); len(got) != 1 {
		t.Errorf("a clinician's read: %d upstream requests", len(got))
	}
}

// TestEverythingKeepsProvenance: a patient's $everything brings the
// Provenances of the patient's records with them, and no other.
func TestEverythingKeepsProvenance(t *testing.T) {
	f := newFixture(t)
	everything := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entry := func(res map[string]any) map[string]any { return map[string]any{"resource": res} }
		f.up.write(w, 200, map[string]any{"resourceType": "Bundle", "type": "searchset", "entry": []any{
			entry(map[string]any{"resourceType": "Patient", "id": "p1"}), entry(obs("lab-1", "p1", "laboratory")),
			entry(provenance("lab1", "Observation/lab-1")), entry(provenance("lab2", "Observation/lab-2")),
			entry(obs("lab-2", "p2", "laboratory")), entry(provenance("p1", "Patient/p1"))}})
	}))
	defer everything.Close()
	f.proxy.Upstream, _ = url.Parse(everything.URL)
	tok := f.token("launch/patient patient/*.rs", nil)
	r := f.do("GET", "/Patient/p1/$everything", tok, "")
	if got := entryIDs(r); r.status != 200 || !slices.Equal(got, []string{"lab-1", "lab1", "p1", "p1"}) {
		t.Errorf("$everything: %d, entries %v", r.status, got)
	}
}
