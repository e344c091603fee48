package fhirproxy_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestIncludesOfRemovedMatches: a record the server includes because of
// a match the proxy removed does not go, unless a record kept is linked to
// it too: the encounter a withheld test was drawn at, the report that
// lists only a withheld test, would tell of the test. Whole and streamed,
// with and without an element selection (which then carries the element
// the _include follows), for a patient app and a clinician of the default
// clearance. Found with the sandbox's FuzzSearchesAgree.
func TestIncludesOfRemovedMatches(t *testing.T) {
	f := newFixture(t)
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	encounter := func(id string) map[string]any {
		return map[string]any{"resourceType": "Encounter", "id": id, "status": "finished", "subject": ref("Patient/p1")}
	}
	f.up.mu.Lock()
	f.up.resources["Observation/lab-1"]["encounter"] = ref("Encounter/e-lab") // kept
	f.up.resources["Observation/psy-1"]["encounter"] = ref("Encounter/e-psy") // withheld: R, PSY
	f.up.resources["Observation/vs-1"]["encounter"] = ref("Encounter/e-both")
	f.up.resources["Observation/psy-1"]["hasMember"] = []any{ref("Encounter/e-both")}
	f.up.mu.Unlock()
	include := func(res map[string]any) map[string]any {
		return map[string]any{"resource": res, "search": map[string]any{"mode": "include"}}
	}
	report := func(id string, results ...string) map[string]any {
		r := map[string]any{"resourceType": "DiagnosticReport", "id": id, "status": "final", "code": map[string]any{"text": "panel"}, "subject": ref("Patient/p1")}
		var rs []any
		for _, x := range results {
			rs = append(rs, ref(x))
		}
		r["result"] = rs
		return r
	}
	f.up.includes = []map[string]any{
		// The patient, which every match refers to, kept first: an include
		// is not justified by another include (e-psy refers to it), only by
		// a match, without :iterate (found by FuzzSearchesAgree: a
		// clinician's _include=* got the encounter a withheld test was
		// drawn at).
		include(f.up.resources["Patient/p1"]),
		include(encounter("e-lab")),                                         // brought by lab-1: goes
		include(encounter("e-psy")),                                         // brought by psy-1 alone: does not
		include(encounter("e-both")),                                        // brought by vs-1 and psy-1: goes
		include(report("r-psy", "Observation/psy-1")),                       // lists psy-1 alone: does not
		include(report("r-both", "Observation/psy-1", "Observation/lab-1")), // lists lab-1 too: goes
		// Linked to no record kept: does not go, since a match removed
		// may lack the link that brought it (answered in part, as a
		// summary: found by probing the sandbox).
		include(encounter("e-none")),
	}
	// A patient app may not ask for the reports (a _revinclude but of
	// Provenance), and gets none: each include is justified by the link
	// its own parameter reads, from a record kept.
	for _, c := range []struct {
		tok, includes string
		want          []string
	}{
		{f.token("launch/patient patient/*.rs", nil), "_include=Observation:encounter&_include=Observation:patient&patient=p1",
			[]string{"e-both", "e-lab", "lab-1", "p1", "vs-1"}},
		{f.token("user/*.rs", nil), "_include=Observation:encounter&_include=Observation:patient&_revinclude=DiagnosticReport:result&patient=p1",
			[]string{"e-both", "e-lab", "lab-1", "p1", "r-both", "vs-1"}},
	} {
		tok, want := c.tok, c.want
		for _, streamed := range []bool{false, true} {
			f.proxy.Limits.StreamFrom = 0
			if streamed {
				f.proxy.Limits.StreamFrom = 1 << 10
			}
			for _, query := range []string{c.includes, c.includes + "&_elements=code"} {
				r := f.do("GET", "/Observation?"+query, tok, "")
				if got := entryIDs(r); r.status != 200 || !slices.Equal(got, want) {
					t.Errorf("%s (streamed %v): %d %v, want %v", query, streamed, r.status, got, want)
				}
				if sent := f.up.requests(); len(sent) != 1 {
					t.Fatalf("%s: %d requests upstream", query, len(sent))
				} else if q, _ := url.ParseQuery(sent[0].URL.RawQuery); q.Get("_elements") != "" && !slices.Contains(strings.Split(q.Get("_elements"), ","), "encounter") {
					t.Errorf("%s: the element the _include follows was not asked for: %s", query, q.Get("_elements"))
				}
				f.up.reset()
			}
		}
	}
}

// TestIncludeEverythingInPart: _include=* follows every reference, which
// no element list names, so with _elements a match would come without the
// links that tell an included record brought by a removed match: refused
// (400) where matches may be removed, nothing sent; whole records, or a
// token that sees every record, go. Found by FuzzSearchesAgree (the
// sandbox): pt-sensitive's app got the encounter its withheld HIV test
// was drawn at.
func TestIncludeEverythingInPart(t *testing.T) {
	f := newFixture(t)
	patient := f.token("launch/patient patient/*.rs", nil)
	for _, target := range []string{"/Observation?_include=*&_elements=status", "/Observation?_include=Observation:*&_elements=status",
		"/Patient/p1/Observation?_elements=status&_include=*"} {
		f.refused(target, f.do("GET", target, patient, ""), http.StatusBadRequest)
	}
	f.refused("a clinician's", f.do("GET", "/Observation?_include=*&_elements=code", f.token("user/*.rs", nil), ""), http.StatusBadRequest)
	for tok, target := range map[string]string{
		patient:                            "/Observation?_include=*",
		f.token("user/*.rs", everyLabel()): "/Observation?_include=*&_elements=status",
	} {
		f.up.reset()
		if r := f.do("GET", target, tok, ""); r.status != http.StatusOK || len(f.up.requests()) == 0 {
			t.Errorf("%s: %d %s", target, r.status, r.raw)
		}
	}
}

// TestIncludesByTheirOwnLinks: once a match is removed, an included record
// goes only where an include of the search brings it from a record kept,
// by the link that include's parameter reads: not by any other link. The
// encounter a withheld note was written at names a kept reading as its
// reason, and the practitioner of that encounter performed a kept
// reading; neither goes with the encounters and their participants asked
// for, while the kept reading's own encounter and its practitioner do.
// Found by the sandbox's FuzzSearchesAgree: a clinician's
// _include:iterate=Encounter:participant got the practitioner of the
// encounter only a withheld HIV test was drawn at.
func TestIncludesByTheirOwnLinks(t *testing.T) {
	f := newFixture(t)
	ref := func(r string) []any { return []any{map[string]any{"reference": r}} }
	encounter := func(id, practitioner string) map[string]any {
		return map[string]any{"resourceType": "Encounter", "id": id, "status": "finished", "subject": ref("Patient/p1")[0],
			"participant": []any{map[string]any{"individual": ref("Practitioner/" + practitioner)[0]}}}
	}
	practitioner := func(id string) map[string]any {
		return map[string]any{"resourceType": "Practitioner", "id": id, "name": []any{map[string]any{"family": id}}}
	}
	f.up.mu.Lock()
	f.up.resources["Observation/lab-1"]["encounter"] = ref("Encounter/e-lab")[0]
	f.up.resources["Observation/lab-1"]["performer"] = ref("Practitioner/pr-kim")
	f.up.resources["Observation/psy-1"]["encounter"] = ref("Encounter/e-psy")[0] // withheld: R, PSY
	psyEncounter := encounter("e-psy", "pr-kim")
	psyEncounter["reasonReference"] = ref("Observation/lab-1")
	f.up.mu.Unlock()
	include := func(res map[string]any) map[string]any {
		return map[string]any{"resource": res, "search": map[string]any{"mode": "include"}}
	}
	// A report of the withheld note, which names the kept reading as what
	// it was based on (not as a result).
	report := map[string]any{"resourceType": "DiagnosticReport", "id": "r-psy", "status": "final", "code": map[string]any{"text": "note"},
		"subject": ref("Patient/p1")[0], "result": ref("Observation/psy-1"), "basedOn": ref("Observation/lab-1")}
	f.up.includes = []map[string]any{include(encounter("e-lab", "pr-lee")), include(psyEncounter), include(practitioner("pr-lee")),
		include(practitioner("pr-kim")), include(report)}
	tok := f.token("user/*.rs", nil)
	for _, streamed := range []bool{false, true} {
		f.proxy.Limits.StreamFrom = 0
		if streamed {
			f.proxy.Limits.StreamFrom = 1 << 10
		}
		r := f.do("GET", "/Observation?patient=p1&_include=Observation:encounter&_include:iterate=Encounter:participant", tok, "")
		if got := entryIDs(r); r.status != 200 || !slices.Equal(got, []string{"e-lab", "lab-1", "pr-lee", "vs-1"}) {
			t.Errorf("streamed %v: %d %v", streamed, r.status, got)
		}
		f.up.reset()
		// Without :iterate, an included encounter brings nothing: its
		// practitioner does not go.
		for _, q := range []string{"_include=Encounter:participant", "_include=Encounter:participant&_include:iterate=Observation:has-member&_revinclude=DiagnosticReport:result"} {
			r = f.do("GET", "/Observation?patient=p1&_include=Observation:encounter&"+q, tok, "")
			if got := entryIDs(r); r.status != 200 || !slices.Equal(got, []string{"e-lab", "lab-1", "vs-1"}) {
				t.Errorf("streamed %v, %s: %d %v", streamed, q, r.status, got)
			}
			f.up.reset()
		}
	}
}

// TestIncludeValuesChecked: an _include or _revinclude names * or
// Type:param[:Target] with R4's types, or the search is 400 and nothing
// goes upstream: a server that read a misspelt type loosely would include
// what the proxy, which judges includes by their type and parameter,
// cannot justify (found by FuzzPagesAgree: Observat^on:subject brought the
// patient on a page by itself, and not on a page with a withheld match).
func TestIncludeValuesChecked(t *testing.T) {
	f := newFixture(t)
	tok := f.token("user/*.rs", nil)
	for _, q := range []string{"_include=Observat%5Eon:subject", "_include=Observation", "_include=Observation:", "_include=observation:subject",
		"_include=Observation:subject:Pat", "_include:iterate=Observation:subject:Patient:x", "_revinclude=Provenanc:target", "_revinclude=**"} {
		f.refused(q, f.do("GET", "/Observation?"+q, tok, ""), http.StatusBadRequest)
	}
	for _, q := range []string{"_include=*", "_include=Observation:*", "_include=*:subject", "_include=Observation:subject:Patient", "_revinclude=Provenance:target"} {
		if r := f.do("GET", "/Observation?patient=p1&"+q, tok, ""); r.status != http.StatusOK {
			t.Errorf("%s: %d %s", q, r.status, r.raw)
		}
		f.up.reset()
	}
}
