package scopes_test

import (
	"testing"

	"github.com/smartkit/smartkit/scopes"
)

func TestCheck(t *testing.T) {
	lab := []scopes.Param{{Name: "category", Value: "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}}
	tests := []struct {
		name        string
		set         string
		access      scopes.Access
		allowed     bool
		constraints []string
	}{
		{"read with rs", "patient/Observation.rs",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read}, true, nil},
		{"search with v1 read", "patient/Observation.read",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Search}, true, nil},
		{"read with search only", "patient/Observation.s",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read}, false, nil},
		{"write does not read", "patient/Observation.write",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read}, false, nil},
		{"wildcard type", "user/*.cruds",
			scopes.Access{Context: scopes.User, Type: "Condition", Perms: scopes.Delete}, true, nil},
		{"other context", "user/*.cruds",
			scopes.Access{Context: scopes.Patient, Type: "Condition", Perms: scopes.Read}, false, nil},
		{"system search needs wildcard", "patient/Observation.rs",
			scopes.Access{Context: scopes.Patient, Type: "*", Perms: scopes.Search}, false, nil},
		{"system search with wildcard", "patient/*.s",
			scopes.Access{Context: scopes.Patient, Type: "*", Perms: scopes.Search}, true, nil},
		{"union supplies letters", "patient/Observation.u patient/Observation.s",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Update | scopes.Search}, true, nil},
		{"no letters", "patient/*.cruds",
			scopes.Access{Context: scopes.Patient, Type: "Observation"}, false, nil},
		{"no context", "patient/*.cruds",
			scopes.Access{Type: "Observation", Perms: scopes.Read}, false, nil},
		{"constrained read", "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read}, true,
			[]string{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}},
		{"constrained search carrying the constraint", "patient/Observation.rs?category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Search, Params: lab}, true, nil},
		{"constrained search without it", "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Search}, true,
			[]string{"patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs"}},
		{"OR list does not satisfy", "patient/Observation.rs?category=laboratory",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Search,
				Params: []scopes.Param{{Name: "category", Value: "laboratory,vital-signs"}}}, true,
			[]string{"patient/Observation.rs?category=laboratory"}},
		{"unconstrained wins", "patient/Observation.rs?category=laboratory patient/*.r",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read}, true, nil},
		{"constrained write", "patient/Observation.c?category=survey",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Create}, true,
			[]string{"patient/Observation.c?category=survey"}},
		{"search params do not satisfy a write", "patient/Observation.cs?category=survey",
			scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Create | scopes.Search,
				Params: []scopes.Param{{Name: "category", Value: "survey"}}}, true,
			[]string{"patient/Observation.cs?category=survey"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := scopes.MustParseSet(tc.set)
			d := set.Check(tc.access)
			if d.Allowed != tc.allowed {
				t.Fatalf("Allowed = %v, want %v", d.Allowed, tc.allowed)
			}
			var got []string
			for sc := range d.Constraints() {
				got = append(got, sc.String())
			}
			if len(got) != len(tc.constraints) {
				t.Fatalf("constraints = %q, want %q", got, tc.constraints)
			}
			for i := range got {
				if got[i] != tc.constraints[i] {
					t.Errorf("constraint %d = %q, want %q", i, got[i], tc.constraints[i])
				}
			}
			if d.Constrained() != (len(tc.constraints) > 0) {
				t.Errorf("Constrained() = %v", d.Constrained())
			}
			if want := tc.allowed && len(tc.constraints) == 0; set.Allows(tc.access) != want {
				t.Errorf("Allows = %v, want %v (fail closed on constraints)", !want, want)
			}
		})
	}
}

// TestCarried: a search allowed outright only because it carries a
// constrained scope's pairs says so (Decision.Carried), whatever the order
// of the scopes; one that scopes without a constraint allow does not, nor
// does any access that is not a pure search.
func TestCarried(t *testing.T) {
	lab := []scopes.Param{{Name: "category", Value: "laboratory"}}
	search := scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Search, Params: lab}
	for _, tc := range []struct {
		set     string
		access  scopes.Access
		carried bool
	}{
		{"patient/Observation.rs?category=laboratory", search, true},
		{"patient/Observation.r patient/Observation.s?category=laboratory", search, true},
		{"patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs", search, true},
		{"patient/Observation.rs?category=laboratory patient/Observation.rs", search, false},
		{"patient/Observation.rs patient/Observation.rs?category=laboratory", search, false},
		{"patient/*.s patient/Observation.rs?category=laboratory", search, false},
		{"patient/Observation.rs?category=vital-signs", search, false},
		{"patient/Observation.rs?category=laboratory", scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Search}, false},
		{"patient/Observation.rs?category=laboratory", scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read, Params: lab}, false},
		{"patient/Observation.us?category=laboratory", scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Update | scopes.Search, Params: lab}, false},
	} {
		d := scopes.MustParseSet(tc.set).Check(tc.access)
		if d.Carried() != tc.carried || tc.carried && (!d.Allowed || d.Constrained()) {
			t.Errorf("%s, %v: allowed %v, constrained %v, carried %v; want carried %v", tc.set, tc.access.Perms, d.Allowed, d.Constrained(), d.Carried(), tc.carried)
		}
	}
}

func TestCheckBeyond64Scopes(t *testing.T) {
	var toks []scopes.Scope
	for i := range 70 {
		sc, err := scopes.Parse("patient/Observation.r?code=" + string(rune('A'+i%26)) + string(rune('a'+i/26)))
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, sc)
	}
	set := scopes.NewSet(toks...)
	d := set.Check(scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read})
	n := 0
	for range d.Constraints() {
		n++
	}
	if !d.Allowed || n != 70 {
		t.Errorf("allowed=%v constraints=%d, want true, 70", d.Allowed, n)
	}
}

func TestCheckDoesNotAllocate(t *testing.T) {
	set := scopes.MustParseSet(typical)
	a := scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read}
	if n := testing.AllocsPerRun(100, func() { _ = set.Check(a) }); n != 0 {
		t.Errorf("Check allocated %v times", n)
	}
}
