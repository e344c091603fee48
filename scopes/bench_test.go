package scopes_test

import (
	"strings"
	"testing"

	"github.com/smartkit/smartkit/scopes"
)

// typical is the 8-scope string of a common patient-facing app (issue #2).
const typical = "launch/patient openid fhirUser offline_access patient/Patient.rs " +
	"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory " +
	"patient/Condition.read user/*.cruds"

func BenchmarkParseSet(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scopes.ParseSet(typical); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseBaselineFields is the floor any parser pays: splitting the
// same string into tokens with strings.Fields, validating nothing.
func BenchmarkParseBaselineFields(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if len(strings.Fields(typical)) != 8 {
			b.Fatal("bad split")
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	set := scopes.MustParseSet(typical)
	a := scopes.Access{Context: scopes.Patient, Type: "Condition", Perms: scopes.Search}
	b.ReportAllocs()
	for b.Loop() {
		if !set.Check(a).Allowed {
			b.Fatal("refused")
		}
	}
}

func BenchmarkAllows(b *testing.B) {
	set := scopes.MustParseSet(typical)
	a := scopes.Access{Context: scopes.User, Type: "Encounter", Perms: scopes.Update}
	b.ReportAllocs()
	for b.Loop() {
		if !set.Allows(a) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCheckConstrained(b *testing.B) {
	set := scopes.MustParseSet(typical)
	a := scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read}
	b.ReportAllocs()
	for b.Loop() {
		if !set.Check(a).Constrained() {
			b.Fatal("not constrained")
		}
	}
}

func BenchmarkIntersect(b *testing.B) {
	req := scopes.MustParseSet(typical)
	allowed := scopes.MustParseSet("launch/patient openid fhirUser offline_access patient/*.rs")
	b.ReportAllocs()
	for b.Loop() {
		_ = req.Intersect(allowed)
	}
}
