package fhirproxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
	// (Practitioner/dr, which the test upstream includes with every
	// search, does not: no match refers to it, only Provenances, which are
	// included records themselves, and some of them were left out. Without
	// :iterate, only a match brings an included record: includes.go.)
	for target, want := range map[string][]string{
		"/Observation?_revinclude=Provenance:target":             {"abs", "lab-1", "lab1", "versioned", "vs-1"},
		"/Observation?_revinclude=Provenance:target:Observation": {"abs", "lab-1", "lab1", "versioned", "vs-1"},
		"/Patient?_revinclude=Provenance:target":                 {"p1", "p1"},
		"/Patient/p1/Observation?_revinclude=Provenance:target":  {"abs", "lab-1", "lab1", "versioned", "vs-1"},
		// A shared type's search may ask for them too (US Core asks it of
		// every type), and gets none: they are not about the patient's.
		"/Practitioner?_revinclude=Provenance:target": {"dr"},
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
	// (Writes: TestPatientProvenanceWrites.)
}

// TestPatientProvenanceWrites: a patient app records the provenance of
// its patient's records (a reading it files, say), alone or in the
// transaction that files them, and nothing else: a Provenance about
// another patient's record, a withheld, shared, missing or foreign one,
// about nothing or too much, is refused with nothing written, and a
// patient app never changes or removes a Provenance.
func TestPatientProvenanceWrites(t *testing.T) {
	f := provenanceFixture(t)
	app := f.token("launch/patient patient/Provenance.crud patient/Observation.cru patient/Patient.r patient/Practitioner.r", nil)
	created := func(targets ...string) string {
		p := provenance("x", targets...)
		delete(p, "id")
		p["agent"] = []any{map[string]any{"who": map[string]any{"reference": "Patient/p1"}}}
		return mustJSON(p)
	}
	for _, target := range []string{"Observation/lab-1", "Patient/p1", f.up.ts.URL + "/Observation/lab-1"} {
		if r := f.do("POST", "/Provenance", app, created(target)); r.status != 201 {
			t.Errorf("a Provenance about %s: %d %s", target, r.status, r.raw)
		}
		f.up.reset()
	}
	for name, body := range map[string]string{
		"about another patient's record":   created("Observation/lab-2"),
		"about another patient":            created("Patient/p2"),
		"about both patients' records":     created("Observation/lab-1", "Observation/lab-2"),
		"about a withheld record":          created("Observation/psy-1"),
		"about a shared record":            created("Practitioner/dr"),
		"about a missing record":           created("Observation/nope"),
		"about another server's record":    created("https://other.example/fhir/Observation/lab-1"),
		"about another Provenance":         created("Provenance/lab1"),
		"about too much":                   created(slices.Repeat([]string{"Observation/lab-1"}, 9)...),
		"about a fullUrl outside a Bundle": created("urn:uuid:0c8e7ef4-5c55-4b8a-9d3b-4d2f0e1e2a11"),
	} {
		if r := f.do("POST", "/Provenance", app, body); r.status != 403 {
			t.Errorf("a Provenance %s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	f.refused("a Provenance about nothing (not R4: target is required)", f.do("POST", "/Provenance", app, created()), 400)
	if r := f.do("POST", "/Provenance", f.token("launch/patient patient/Provenance.c", nil), created("Observation/lab-1")); r.status != 403 {
		t.Errorf("a Provenance about a record the token may not read: %d %s", r.status, r.raw)
	}
	f.onlyReads("unreadable target")
	for _, c := range []struct{ method, target, body string }{
		{"PUT", "/Provenance/lab1", mustJSON(provenance("lab1", "Observation/lab-1"))},
		{"DELETE", "/Provenance/lab1", ""},
		{"PATCH", "/Provenance/lab1", `[{"op":"replace","path":"/recorded","value":"2026-11-03T10:00:00Z"}]`},
	} {
		f.refused(c.method+" of a Provenance", f.do(c.method, c.target, app, c.body, "Content-Type", "application/json-patch+json"), 403)
	}

	// In the transaction that files the reading, by its fullUrl.
	reading := `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/p1"}}`
	tx := func(target string) string {
		return bundle("transaction", entry("urn:uuid:0c8e7ef4-5c55-4b8a-9d3b-4d2f0e1e2a11", "POST", "Observation", reading),
			entry("", "POST", "Provenance", created(target)))
	}
	if r := f.do("POST", "/", app, tx("urn:uuid:0c8e7ef4-5c55-4b8a-9d3b-4d2f0e1e2a11")); r.status != 200 {
		t.Errorf("a reading filed with its provenance: %d %s", r.status, r.raw)
	}
	f.up.reset()
	for name, target := range map[string]string{"a fullUrl the Bundle does not write": "urn:uuid:5b1d7f7c-7a55-4a36-8f3a-1f0f2c9b3d22",
		"another patient's record": "Observation/lab-2"} {
		if r := f.do("POST", "/", app, tx(target)); r.status != 403 {
			t.Errorf("a transaction with a Provenance about %s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
}

// TestProvenanceForClinicians: without patient context, a token whose
// clearance is short of every label sees a Provenance only where it may
// see each record the Provenance is about: an unlabelled Provenance about
// a withheld record would tell that the record exists, who wrote it and
// when (a 42 CFR Part 2 program's name, say). A read reads the targets; a
// Bundle keeps one after the records it is about, and otherwise reads
// them, each once. A clearance of every label reads no target.
func TestProvenanceForClinicians(t *testing.T) {
	f := provenanceFixture(t)
	tok := f.token("user/Provenance.rs user/Observation.rs user/Patient.rs user/Practitioner.rs", nil)
	for id, want := range map[string]int{"lab2": 200, "both": 200, "versioned": 200, "p2": 200, "dr": 200,
		"psy": 404, "none": 404, "foreign": 404, "contained": 404, "many": 404, "nope": 404} {
		r := f.do("GET", "/Provenance/"+id, tok, "")
		if r.status != want {
			t.Errorf("Provenance/%s to a clinician: %d, want %d: %s", id, r.status, want, r.raw)
		}
		if want == 404 && (strings.Contains(r.raw, "psy-1") || r.raw != f.do("GET", "/Provenance/nope", tok, "").raw) {
			t.Errorf("Provenance/%s reads unlike a missing one: %s", id, r.raw)
		}
		f.up.reset()
	}
	if f.do("GET", "/Provenance/lab2", tok, ""); len(f.up.requests()) != 2 {
		t.Errorf("a clinician's read: %d upstream requests, want the Provenance and its target", len(f.up.requests()))
	}
	f.up.reset()
	noObs := f.token("user/Provenance.rs user/Patient.rs", nil)
	if r := f.do("GET", "/Provenance/lab1", noObs, ""); r.status != 404 {
		t.Errorf("a Provenance about an Observation, to a token without Observation read: %d", r.status)
	}
	f.up.reset()

	// A search of Provenance: each judged by its targets, each target read
	// once (lab-1 is the target of four), streamed or whole alike.
	want := []string{"abs", "both", "dr", "lab1", "lab2", "p1", "p2", "versioned"}
	for _, streamFrom := range []int64{0, 256} {
		f.proxy.Limits.StreamFrom = streamFrom
		r := f.do("GET", "/Provenance", tok, "")
		if got := entryIDs(r); r.status != 200 || !slices.Equal(got, want) {
			t.Errorf("a clinician's Provenance search (stream from %d): %d, entries %v, want %v", streamFrom, r.status, got, want)
		}
		if !strings.Contains(r.raw, "REDACTED") { // the withheld record's Provenance is withheld with it
			t.Errorf("stream from %d: a Provenance withheld with its record, and no REDACTED mark", streamFrom)
		}
		reads := map[string]int{}
		for _, g := range f.up.requests()[1:] {
			reads[g.URL.Path]++
		}
		if len(f.up.requests()) != 7 || len(reads) != 6 || reads["/Observation/psy-1"] != 1 {
			t.Errorf("stream from %d: %d upstream requests, reads %v; want the search and one read of each of 6 targets", streamFrom, len(f.up.requests()), reads)
		}
		f.up.reset()
	}
	f.proxy.Limits.StreamFrom = 0

	// The records' own search with their Provenances: those about the
	// records the Bundle keeps go without a read; the others are read.
	r := f.do("GET", "/Observation?_revinclude=Provenance:target", tok, "")
	// (Practitioner/dr, included with no match referring to it, does not
	// go: the Provenance about the withheld record, which refers to it, was
	// left out; the Provenance dr about it stays.)
	if got := entryIDs(r); r.status != 200 || !slices.Equal(got, []string{"abs", "both", "dr", "lab-1", "lab-2", "lab1", "lab2", "p1", "p2", "versioned", "vs-1"}) {
		t.Errorf("a clinician's search with _revinclude=Provenance:target: %d, entries %v", r.status, got)
	}
	if strings.Contains(r.raw, "psy-1") || !strings.Contains(r.raw, "REDACTED") {
		t.Errorf("the withheld record's Provenance came along: %s", r.raw)
	}
	for _, g := range f.up.requests()[1:] {
		if strings.HasPrefix(g.URL.Path, "/Observation/lab") {
			t.Errorf("%s read, though the Bundle kept it before its Provenances", g.URL.Path)
		}
	}
	f.up.reset()

	// In a batch, the withheld record's reads as a missing one does.
	batch := bundle("batch", entry("", "GET", "Provenance/psy", ""), entry("", "GET", "Provenance/lab1", ""), entry("", "GET", "Provenance/nope", ""))
	r = f.do("POST", "/", tok, batch)
	var statuses []string
	entries, _ := r.body["entry"].([]any)
	for _, e := range entries {
		resp, _ := e.(map[string]any)["response"].(map[string]any)
		statuses = append(statuses, fmt.Sprint(resp["status"]))
	}
	if r.status != 200 || len(statuses) != 3 || statuses[0] != statuses[2] || !strings.HasPrefix(statuses[0], "404") || !strings.HasPrefix(statuses[1], "200") ||
		strings.Contains(r.raw, "psy-1") {
		t.Errorf("a clinician's batch: %d, statuses %v: %s", r.status, statuses, r.raw)
	}
	f.up.reset()

	// A search of Provenance asks for pages no larger than the targets
	// read for one (50): a larger page would lose the Provenances past
	// them. Not so for a full clearance, which reads none.
	for _, c := range []struct{ target, tok, want string }{
		{"/Provenance", tok, "50"}, {"/Provenance?_count=200", tok, "50"}, {"/Provenance?_count=10", tok, "10"},
		{"/Patient/p1/Provenance", tok, "50"},
		{"/Provenance?_count=200", f.token("user/Provenance.rs", everyLabel()), "200"},
		{"/Observation?_revinclude=Provenance:target", tok, ""},
	} {
		f.do("GET", c.target, c.tok, "")
		if got := f.up.requests(); len(got) == 0 || got[0].URL.Query().Get("_count") != c.want {
			t.Errorf("%s: forwarded with _count %q, want %q", c.target, got[0].URL.Query().Get("_count"), c.want)
		}
		f.up.reset()
	}

	// A selection keeps what a Provenance is judged by.
	if r := f.do("GET", "/Provenance?_elements=recorded", tok, ""); r.status != 200 {
		t.Errorf("_elements: %d", r.status)
	} else if got := f.up.requests()[0].URL.Query().Get("_elements"); got != "recorded,meta,target" {
		t.Errorf("_elements forwarded as %q", got)
	}
	f.up.reset()

	// A write may not name the withheld record's Provenance, nor change it.
	writer := f.token("user/Provenance.rus user/Observation.crs user/Patient.rs user/Practitioner.rs", nil)
	naming := obs("new", "p1", "laboratory")
	delete(naming, "id")
	naming["extension"] = []any{map[string]any{"url": "https://example.org/source", "valueReference": map[string]any{"reference": "Provenance/psy"}}}
	if r := f.do("POST", "/Observation", writer, mustJSON(naming)); r.status != 403 {
		t.Errorf("an Observation naming the withheld record's Provenance: %d %s", r.status, r.raw)
	}
	f.onlyReads("naming it")
	if r := f.do("PUT", "/Provenance/psy", writer, mustJSON(provenance("psy", "Observation/lab-1"))); r.status != 404 {
		t.Errorf("moving the withheld record's Provenance: %d %s", r.status, r.raw)
	}
	f.onlyReads("moving it")

	// A clearance of every label sees every Provenance as it is, and no
	// target is read.
	cleared := f.token("user/Provenance.rs", everyLabel())
	if r := f.do("GET", "/Provenance/psy", cleared, ""); r.status != 200 || len(f.up.requests()) != 1 {
		t.Errorf("a full clearance's read: %d, %d upstream requests", r.status, len(f.up.requests()))
	}
	f.up.reset()
	if r := f.do("GET", "/Provenance", cleared, ""); len(entryIDs(r)) != 13 || len(f.up.requests()) != 1 {
		t.Errorf("a full clearance's search: entries %v, %d upstream requests", entryIDs(r), len(f.up.requests()))
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
			entry(obs("lab-2", "p2", "laboratory")), entry(provenance("p1", "Patient/p1")),
			entry(obs("psy-1", "p1", "laboratory", "R", "PSY")), entry(provenance("psy", "Observation/psy-1"))}})
	}))
	defer everything.Close()
	f.proxy.Upstream, _ = url.Parse(everything.URL)
	tok := f.token("launch/patient patient/*.rs", nil)
	r := f.do("GET", "/Patient/p1/$everything", tok, "")
	if got := entryIDs(r); r.status != 200 || !slices.Equal(got, []string{"lab-1", "lab1", "p1", "p1"}) {
		t.Errorf("$everything: %d, entries %v", r.status, got)
	}
	// A clinician's, without patient context: the Provenances of the
	// records kept, after them; not the withheld record's. (This upstream
	// answers every read with the Bundle, so none goes by a read.)
	clinician := f.token("user/*.rs", nil)
	r = f.do("GET", "/Patient/p1/$everything", clinician, "")
	if got := entryIDs(r); r.status != 200 || !slices.Equal(got, []string{"lab-1", "lab-2", "lab1", "p1", "p1"}) {
		t.Errorf("a clinician's $everything: %d, entries %v", r.status, got)
	}
}

// TestProvenanceTargetReads: the records a response's Provenances have
// the proxy read are bounded (maxTargetReads, 50); a Provenance about a
// record past them is left out, and the Bundle says no total.
func TestProvenanceTargetReads(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	for i := range 60 {
		id := "o" + strconv.Itoa(i)
		f.up.resources["Observation/"+id] = obs(id, "p1", "laboratory")
		f.up.resources["Provenance/"+id] = provenance(id, "Observation/"+id)
	}
	f.up.mu.Unlock()
	tok := f.token("user/Provenance.rs user/Observation.rs", nil)
	r := f.do("GET", "/Provenance", tok, "")
	if n := len(entryIDs(r)); r.status != 200 || n != 50 || len(f.up.requests()) != 51 {
		t.Errorf("60 Provenances about 60 records: %d, %d entries, %d upstream requests; want 50 and 51", r.status, n, len(f.up.requests()))
	}
	if _, ok := r.body["total"]; ok {
		t.Errorf("a Bundle that left Provenances out says a total: %v", r.body["total"])
	}
	// Batched, the searches share the response's reads: two searches of
	// the 60 read 50 records in all.
	f.up.reset()
	r = f.do("POST", "/", tok, bundle("batch", entry("", "GET", "Provenance", ""), entry("", "GET", "Provenance", "")))
	entries, _ := r.body["entry"].([]any)
	kept := 0
	for _, e := range entries {
		nested, _ := e.(map[string]any)["resource"].(map[string]any)
		kept += len(entryIDs(result{body: nested}))
	}
	if r.status != 200 || len(entries) != 2 || kept != 50 || len(f.up.requests()) != 51 {
		t.Errorf("two batched searches of 60 Provenances: %d, %d entries kept, %d upstream requests; want 50 and 51", r.status, kept, len(f.up.requests()))
	}
}

// TestProvenanceTargetReadFails: once a target's read fails (here, an
// upstream that hangs on reads), no more are tried for the response: a
// hung upstream costs one timeout, not one a Provenance, and every
// Provenance left unjudged is left out.
func TestProvenanceTargetReadFails(t *testing.T) {
	f := newFixture(t)
	var reads atomic.Int32
	release := make(chan struct{})
	defer close(release)
	var entries []any
	for i := range 5 {
		id := "o" + strconv.Itoa(i)
		entries = append(entries, map[string]any{"resource": provenance(id, "Observation/"+id), "search": map[string]any{"mode": "match"}})
	}
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/Provenance" {
			f.up.write(w, 200, map[string]any{"resourceType": "Bundle", "type": "searchset", "entry": entries})
			return
		}
		reads.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hanging.Close()
	f.proxy.Upstream, _ = url.Parse(hanging.URL)
	f.proxy.Timeout = 200 * time.Millisecond
	r := f.do("GET", "/Provenance", f.token("user/Provenance.rs user/Observation.rs", nil), "")
	// (One read: the Transport may send it again once, the connection it
	// went on being a reused one that closed before answering.)
	if r.status != 200 || len(entryIDs(r)) != 0 || reads.Load() > 2 {
		t.Errorf("a search whose target reads hang: %d, entries %v, %d reads; want none kept and one read", r.status, entryIDs(r), reads.Load())
	}
}

// TestProvenancesOnSignedPages: a later page of a search that asked for
// its matches' Provenances (_revinclude=Provenance:target), continued by a
// signed page link at the server's base (HAPI's), keeps the Provenances of
// the page's kept records as the first page does; it left each out, so a
// US Core app lost the provenance of all but its first page. A Provenance
// about a withheld record or another patient's stays out.
func TestProvenancesOnSignedPages(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		e := func(res map[string]any, mode string) string {
			return `{"resource":` + mustJSON(res) + `,"search":{"mode":"` + mode + `"}}`
		}
		if r.URL.Query().Get("_getpages") == "" {
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"http://%s?_getpages=abc"}],"entry":[%s,%s]}`,
				r.Host, e(obs("lab-1", "p1", "laboratory"), "match"), e(provenance("pv-1", "Observation/lab-1"), "include"))
			return
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","entry":[%s,%s,%s,%s,%s,%s]}`,
			e(obs("lab-3", "p1", "laboratory"), "match"), e(obs("psy-1", "p1", "laboratory", "R", "PSY"), "match"), e(obs("lab-9", "p2", "laboratory"), "match"),
			e(provenance("pv-3", "Observation/lab-3"), "include"), e(provenance("pv-psy", "Observation/psy-1"), "include"), e(provenance("pv-9", "Observation/lab-9"), "include"))
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	f.proxy.Base = f.base
	for _, c := range []struct {
		scope  string
		second []string
	}{
		{"launch/patient patient/Observation.rs patient/Provenance.rs", []string{"lab-3", "pv-3"}},
		{"user/Observation.rs user/Provenance.rs", []string{"lab-3", "lab-9", "pv-3", "pv-9"}},
		// Without the r letter on Provenance none comes, on either page.
		{"launch/patient patient/Observation.rs", []string{"lab-3"}},
	} {
		tok := f.token(c.scope, nil)
		first := f.do("GET", "/Observation?_revinclude=Provenance:target", tok, "")
		next := first.next()
		if first.status != http.StatusOK || !strings.HasPrefix(next, f.base+"?_page=") {
			t.Fatalf("%s: the first page: %d %v, next %q", c.scope, first.status, entryIDs(first), next)
		}
		if page := f.do("GET", strings.TrimPrefix(next, f.base), tok, ""); page.status != http.StatusOK || !slices.Equal(entryIDs(page), c.second) {
			t.Errorf("%s: the next page: %d %v, want %v", c.scope, page.status, entryIDs(page), c.second)
		}
	}
}
