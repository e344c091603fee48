package fhirproxy_test

import (
	"net/url"
	"regexp"
	"slices"
	"testing"
)

// FuzzPatientForms: a search names a patient in many forms that mean the
// same (patient=p1, patient=Patient/p1, subject:Patient=p1, the patient's
// absolute URL on the FHIR server or on the proxy, a compartment search),
// and the proxy must treat them alike: allow or refuse each as it does
// patient=p1, and answer with the same records. A form one check reads and
// another does not would break it (a patient app's search naming another
// patient in a form the proxy misses, say).
func FuzzPatientForms(f *testing.F) {
	for _, who := range []string{"p1", "p2", "p1,p2", "p3", "Group/g1"} {
		for _, q := range []string{"", "category=laboratory", "_include=Observation:subject", "code=x", "_elements=code", "_count=1"} {
			for which := range uint8(5) {
				f.Add(who, q, which)
			}
		}
	}
	fx := newFixture(&testing.T{})
	tokens := endToEndTokens(fx)
	forms := []func(id string) string{
		func(id string) string { return "Observation?patient=Patient/" + id },
		func(id string) string { return "Observation?subject=Patient/" + id },
		func(id string) string { return "Observation?subject:Patient=" + id },
		func(id string) string { return "Observation?patient:Patient=" + id },
		func(id string) string { return "Observation?patient=" + url.QueryEscape(fx.up.ts.URL+"/Patient/"+id) },
		func(id string) string { return "Observation?subject=" + url.QueryEscape(fx.base+"/Patient/"+id) },
		func(id string) string { return "Patient/" + id + "/Observation?" },
	}
	f.Fuzz(func(t *testing.T, id, query string, which uint8) {
		// One id, as FHIR writes them (a list is a different search in
		// every form but the first, and a compartment names one; a dot
		// segment is no path).
		if !fhirID.MatchString(id) || id == "." || id == ".." || !requestTarget("Observation?patient="+id+"&"+query) {
			return
		}
		if query != "" {
			query = "&" + query
		}
		fx.t = t
		tok := tokens[int(which)%len(tokens)]
		first := fx.do("GET", "/Observation?patient="+id+query, tok, "")
		for _, form := range forms {
			target := form(id) + query
			r := fx.audited(t, func() result { return fx.do("GET", "/"+target, tok, "") })
			if (r.status == 200) != (first.status == 200) {
				t.Fatalf("%q (token %d): patient=%s is %d %.200s; %s is %d %.200s", query, which%5, id, first.status, first.raw, target, r.status, r.raw)
			}
			if r.status == 200 && !slices.Equal(entryIDs(r), entryIDs(first)) {
				t.Fatalf("%q (token %d): patient=%s answered %v; %s %v", query, which%5, id, entryIDs(first), target, entryIDs(r))
			}
		}
	})
}

// fhirID is a FHIR id (R4: 1 to 64 letters, digits, '-' and '.').
var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
