package fhirproxy_test

import (
	"slices"
	"testing"

	"github.com/smartkit/smartkit/consent"
)

// FuzzGrantsMonotone: a wider grant never sees less. For pairs of tokens
// where the second may do everything the first may (a constraint lifted,
// more types, every label cleared), a search or read the first is
// answered is answered to the second too, with every record the first
// got. A rule
// that a wider grant trips over (a constrained type judged differently
// once another scope allows it, say) would break it.
func FuzzGrantsMonotone(f *testing.F) {
	for _, s := range []string{
		"Observation", "Observation?category=laboratory", "Observation?category=vital-signs", "Observation?_include=Observation:subject",
		"Observation?patient=Patient/p1", "Patient/p1/Observation", "Observation?_elements=code", "Condition", "Patient",
		"Observation?_revinclude=Provenance:target", "Observation?subject:Patient.name=One", "Observation?_id=lab-1,psy-1,lab-2",
		"Observation/lab-1", "Observation/psy-1", "Observation/vs-1", "Observation/lab-2", "Patient/p1", "Condition/c-1",
	} {
		for pair := range uint8(7) {
			f.Add(s, pair)
		}
	}
	fx := newFixture(&testing.T{})
	tok := func(scope string, c *consent.Clearance) string { return fx.token(scope, c) }
	pairs := [][2]string{
		{tok("launch/patient patient/Observation.rs?category=laboratory", nil), tok("launch/patient patient/Observation.rs", nil)},
		{tok("launch/patient patient/Observation.rs", nil), tok("launch/patient patient/Observation.rs", everyLabel())},
		{tok("launch/patient patient/Observation.rs", nil), tok("launch/patient patient/Observation.rs patient/Patient.rs patient/Provenance.rs patient/Condition.rs", nil)},
		{tok("launch/patient patient/Observation.rs?category=laboratory patient/Patient.rs", everyLabel()), tok("launch/patient patient/*.rs", everyLabel())},
		{tok("user/Observation.rs?category=laboratory", nil), tok("user/Observation.rs", nil)},
		{tok("user/Observation.rs", nil), tok("user/*.rs", nil)},
		{tok("user/Observation.rs?category=laboratory user/Patient.rs", nil), tok("user/*.rs", everyLabel())},
	}
	f.Fuzz(func(t *testing.T, search string, pair uint8) {
		if !requestTarget(search) {
			return
		}
		fx.t = t
		p := pairs[int(pair)%len(pairs)]
		narrow := fx.do("GET", "/"+search, p[0], "")
		if narrow.status != 200 {
			return
		}
		wide := fx.do("GET", "/"+search, p[1], "")
		if wide.status != 200 {
			t.Fatalf("%q (pair %d): the narrower grant is answered, the wider %d %.200s", search, pair%7, wide.status, wide.raw)
		}
		if narrow.body["resourceType"] != "Bundle" { // a read: the same record
			if wide.body["resourceType"] != narrow.body["resourceType"] || wide.body["id"] != narrow.body["id"] {
				t.Fatalf("%q (pair %d): the narrower grant reads %v/%v, the wider %v/%v", search, pair%7,
					narrow.body["resourceType"], narrow.body["id"], wide.body["resourceType"], wide.body["id"])
			}
			return
		}
		have := entryIDs(wide)
		for _, id := range entryIDs(narrow) {
			if !slices.Contains(have, id) {
				t.Fatalf("%q (pair %d): the narrower grant sees %v, the wider %v", search, pair%7, entryIDs(narrow), have)
			}
		}
	})
}
