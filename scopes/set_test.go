package scopes_test

import (
	"errors"
	"testing"

	"github.com/smartkit/smartkit/scopes"
)

func TestCovers(t *testing.T) {
	tests := []struct {
		set, scope string
		want       bool
	}{
		{"patient/Observation.rs", "patient/Observation.r", true},
		{"patient/Observation.r patient/Observation.s", "patient/Observation.rs", true},
		{"patient/Observation.read", "patient/Observation.rs", true},
		{"patient/Observation.rs", "patient/Observation.read", true},
		{"patient/*.rs", "patient/Observation.rs", true},
		{"patient/*.rs", "patient/Observation.rs?category=laboratory", true},
		{"patient/Observation.rs", "patient/Observation.rs?category=laboratory", true},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs", false},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.r?category=laboratory&status=final", true},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs", false},
		{"patient/Observation.rs?code=http%3A%2F%2Floinc.org%7C1", "patient/Observation.rs?code=http://loinc.org|1", true},
		{"patient/Observation.rs", "patient/Observation.rud", false},
		{"patient/Observation.rs", "user/Observation.rs", false},
		{"patient/Observation.rs", "patient/*.rs", false},
		{"user/*.cruds", "patient/Observation.r", false},
		{"patient/Observation.write", "patient/Observation.r", false},
		{"launch/patient openid", "openid", true},
		{"launch/patient", "launch/encounter", false},
		{"launch/list", "launch/list?role=https://example.org/x", false},
	}
	for _, tc := range tests {
		set := scopes.MustParseSet(tc.set)
		sc, err := scopes.Parse(tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		if got := set.Covers(sc); got != tc.want {
			t.Errorf("{%s}.Covers(%s) = %v, want %v", tc.set, tc.scope, got, tc.want)
		}
	}
	if scopes.MustParseSet("user/*.cruds").Covers(scopes.Scope{}) {
		t.Error("a set covers the zero Scope")
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"patient/Observation.read", "patient/Observation.rs", true},
		{"user/Encounter.r user/Encounter.s", "user/Encounter.rs", true},
		{"openid launch", "launch openid", true},
		{"patient/*.rs", "patient/Observation.rs", false},
		{"patient/Observation.rs", "patient/Observation.rs openid", false},
	}
	for _, tc := range tests {
		if got := scopes.MustParseSet(tc.a).Equal(scopes.MustParseSet(tc.b)); got != tc.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestIntersect(t *testing.T) {
	tests := []struct{ a, b, want string }{
		// requested ∩ client-allowed, in the requester's words
		{"launch openid patient/Observation.rs", "patient/*.rs openid", "openid patient/Observation.rs"},
		{"patient/*.rs", "patient/Observation.rs patient/Condition.read", "patient/Observation.rs patient/Condition.read"},
		{"patient/Observation.cruds", "patient/Observation.rs", "patient/Observation.rs"},
		{"patient/Observation.*", "patient/Observation.rs", "patient/Observation.read"},
		{"patient/Observation.*", "patient/Observation.r", "patient/Observation.r"},
		{"patient/Observation.rs", "patient/Observation.read", "patient/Observation.rs"},
		{"patient/Observation.rs", "user/Observation.rs", ""},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs", "patient/Observation.rs?category=laboratory"},
		{"patient/Observation.rs", "patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory"},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.r?status=final", "patient/Observation.r?category=laboratory&status=final"},
		{"patient/*.rs?category=laboratory", "patient/Observation.rs", "patient/Observation.rs?category=laboratory"},
		{"patient/Observation.rs", "patient/*.rs?category=laboratory", "patient/Observation.rs?category=laboratory"},
		{"patient/Observation.rs?category=laboratory", "patient/Condition.rs?category=x", ""},
	}
	for _, tc := range tests {
		a, b := scopes.MustParseSet(tc.a), scopes.MustParseSet(tc.b)
		got := a.Intersect(b)
		if got.String() != tc.want {
			t.Errorf("{%s} ∩ {%s} = %q, want %q", tc.a, tc.b, got, tc.want)
		}
		if !a.CoversAll(got) || !b.CoversAll(got) {
			t.Errorf("{%s} ∩ {%s} = %q is not covered by both", tc.a, tc.b, got)
		}
	}
}

func TestNarrow(t *testing.T) {
	granted := scopes.MustParseSet("launch/patient openid fhirUser offline_access patient/Observation.rs patient/Condition.read")
	ok, err := granted.Narrow(scopes.MustParseSet("patient/Observation.r offline_access"))
	if err != nil || ok.String() != "patient/Observation.r offline_access" {
		t.Errorf("narrowing: %q, %v", ok, err)
	}
	same, err := granted.Narrow(scopes.Set{})
	if err != nil || !same.Equal(granted) {
		t.Errorf("empty request should keep the grant: %q, %v", same, err)
	}
	_, err = granted.Narrow(scopes.MustParseSet("patient/Observation.r patient/*.cruds"))
	var we *scopes.WidenError
	if !errors.As(err, &we) || we.Scope.String() != "patient/*.cruds" || !errors.Is(err, scopes.ErrWidens) {
		t.Errorf("widening error = %v, want a WidenError naming patient/*.cruds", err)
	}
	if _, err := granted.Narrow(scopes.MustParseSet("launch")); err == nil {
		t.Error("adding launch to a grant was not refused")
	}
}

func TestUnionAndFilter(t *testing.T) {
	a := scopes.MustParseSet("openid patient/Patient.r")
	b := scopes.MustParseSet("patient/Patient.r launch")
	if got := a.Union(b).String(); got != "openid patient/Patient.r launch" {
		t.Errorf("Union = %q", got)
	}
	res := a.Union(b).Filter(func(s scopes.Scope) bool { return s.Kind() == scopes.Resource })
	if res.String() != "patient/Patient.r" {
		t.Errorf("Filter = %q", res)
	}
}

func TestQueries(t *testing.T) {
	set := scopes.MustParseSet("launch/patient patient/Observation.read offline_access")
	if !set.Has("offline_access") || set.Has("online_access") {
		t.Error("Has is wrong")
	}
	if !set.HasKind(scopes.LaunchContext) || set.HasKind(scopes.Identity) {
		t.Error("HasKind is wrong")
	}
	if !set.HasContext(scopes.Patient) || set.HasContext(scopes.User) {
		t.Error("HasContext is wrong")
	}
	if set.Version() != scopes.V1 || scopes.MustParseSet("profile openid").Version() != scopes.V2 {
		t.Error("Version is wrong")
	}
	var n int
	for range set.All() {
		n++
	}
	if n != 3 || len(set.Scopes()) != 3 {
		t.Errorf("All/Scopes gave %d", n)
	}
}
