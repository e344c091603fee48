package scopes_test

import (
	"testing"

	"github.com/smartkit/smartkit/scopes"
)

var fuzzSeeds = []string{
	typical,
	"patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C2339-0&category=a+b",
	"user/*.read system/*.* patient/Patient.write launch launch/list?role=https://x.example/r",
	"patient/*.rs?category=laboratory patient/Observation.r?status=final",
	"__x https://ehr.example.org/s profile messaging/ui online_access",
	"patient/Observation.sr launch/Patient", "", "  ", "patient/Observation.rs?a=%zz",
}

// FuzzParseSet checks that parsing never panics, that every accepted set
// round-trips through String, and that the v2 and v1 forms say the same.
func FuzzParseSet(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := scopes.ParseSet(s)
		lenient, lerr := scopes.ParseLenient(s)
		if err == nil {
			if lerr != nil || lenient.String() != set.String() {
				t.Fatalf("strict and lenient disagree on %q: %q vs %q (%v)", s, set, lenient, lerr)
			}
		}
		for _, set := range []scopes.Set{set, lenient} {
			again, err := scopes.ParseSet(set.String())
			if set.Len() > 0 && (err != nil || again.String() != set.String()) {
				t.Fatalf("%q: String %q does not round-trip: %q, %v", s, set, again, err)
			}
			for sc := range set.All() {
				one, err := scopes.Parse(sc.String())
				if err != nil || one.String() != sc.String() || one.Kind() != sc.Kind() || one.Perms() != sc.Perms() {
					t.Fatalf("scope %q does not round-trip: %v", sc, err)
				}
				if v2, err := scopes.Parse(sc.V2().String()); err != nil || v2.Perms() != sc.Perms() {
					t.Fatalf("V2 of %q = %q: %v", sc, sc.V2(), err)
				}
				if v1, ok := sc.V1(); ok && v1.Perms() != sc.Perms() {
					t.Fatalf("V1 of %q = %q changes letters", sc, v1)
				}
			}
			if !set.Equal(set.V2()) || !set.Equal(set.V1()) {
				t.Fatalf("%q: dialect conversion changed meaning", set)
			}
		}
	})
}

// FuzzAlgebra checks the invariants of the set algebra on any two scope
// strings: an intersection is covered by both inputs, a successful narrowing
// never widens, a union covers both, and Check agrees with Covers.
func FuzzAlgebra(f *testing.F) {
	for i, a := range fuzzSeeds {
		f.Add(a, fuzzSeeds[(i+1)%len(fuzzSeeds)])
	}
	f.Fuzz(func(t *testing.T, as, bs string) {
		a, _ := scopes.ParseLenient(as)
		b, _ := scopes.ParseLenient(bs)
		i := a.Intersect(b)
		if !a.CoversAll(i) || !b.CoversAll(i) {
			t.Fatalf("%q ∩ %q = %q is not covered by both", a, b, i)
		}
		if j := b.Intersect(a); !i.Equal(j) {
			t.Fatalf("intersection is not symmetric: %q ∩ %q = %q, reversed %q", a, b, i, j)
		}
		if n, err := a.Narrow(b); err == nil {
			if !a.CoversAll(n) {
				t.Fatalf("narrowing %q to %q widened to %q", a, b, n)
			}
		} else if a.CoversAll(b) {
			t.Fatalf("Narrow(%q, %q) refused a covered request: %v", a, b, err)
		}
		u := a.Union(b)
		if !u.CoversAll(a) || !u.CoversAll(b) {
			t.Fatalf("%q ∪ %q = %q does not cover both", a, b, u)
		}
		for sc := range b.All() {
			if sc.Kind() != scopes.Resource || sc.Constrained() {
				continue
			}
			acc := scopes.Access{Context: sc.Context(), Type: sc.Type(), Perms: sc.Perms()}
			if a.Covers(sc) && !a.Check(acc).Allowed {
				t.Fatalf("%q covers %q but Check refuses %+v", a, sc, acc)
			}
			if a.Allows(acc) && !a.Check(acc).Allowed {
				t.Fatalf("Allows and Check disagree on %q for %+v", a, acc)
			}
		}
	})
}
