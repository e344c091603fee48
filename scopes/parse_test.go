package scopes_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/smartkit/smartkit/scopes"
)

func TestParseSetReportsEveryInvalidToken(t *testing.T) {
	in := "openid  patient/Observation.sr launch patient/Observation.rs?category= fhiruser"
	set, err := scopes.ParseSet(in)
	if set.Len() != 0 {
		t.Errorf("strict ParseSet returned %d scopes alongside an error", set.Len())
	}
	var se *scopes.SetError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a *SetError", err)
	}
	if !errors.Is(err, scopes.ErrMalformed) {
		t.Errorf("errors.Is(err, ErrMalformed) = false")
	}
	type row struct {
		Scope  string
		Index  int
		Offset int
		Reason scopes.Reason
	}
	var got []row
	for _, e := range se.Errs {
		got = append(got, row{e.Scope, e.Index, e.Offset, e.Reason})
	}
	want := []row{
		{"patient/Observation.sr", 1, 8, scopes.ReasonPermissions},
		{"patient/Observation.rs?category=", 3, 38, scopes.ReasonEmptyValue},
		{"fhiruser", 4, 71, scopes.ReasonUnknown},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	for _, w := range want {
		if in[w.Offset:w.Offset+len(w.Scope)] != w.Scope {
			t.Errorf("offset %d does not point at %q", w.Offset, w.Scope)
		}
	}
}

func TestParseLenientDropsAndSays(t *testing.T) {
	set, err := scopes.ParseLenient("launch patient/Observation.dus patient/Patient.rs")
	if got, want := set.String(), "launch patient/Patient.rs"; got != want {
		t.Errorf("kept %q, want %q", got, want)
	}
	var se *scopes.SetError
	if !errors.As(err, &se) || len(se.Errs) != 1 || se.Errs[0].Scope != "patient/Observation.dus" {
		t.Errorf("lenient error = %v, want one naming patient/Observation.dus", err)
	}
	if set, err := scopes.ParseLenient(""); err != nil || set.Len() != 0 {
		t.Errorf("ParseLenient(\"\") = %v, %v; want empty, nil", set, err)
	}
	if _, err := scopes.ParseSet(""); !errors.Is(err, scopes.ErrMalformed) {
		t.Errorf("ParseSet(\"\") error = %v, want ErrMalformed", err)
	}
}

func TestParseSetDeduplicatesAndCanonicalises(t *testing.T) {
	set := scopes.MustParseSet("  openid patient/Patient.r openid   patient/Patient.r launch ")
	if got, want := set.String(), "openid patient/Patient.r launch"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	many := strings.Repeat("openid ", 100) + "launch"
	if got := scopes.MustParseSet(many).String(); got != "openid launch" {
		t.Errorf("de-duplication of a long string gave %q", got)
	}
}

func TestLimits(t *testing.T) {
	huge := strings.Repeat("a", 1<<20)
	if _, err := scopes.ParseSet(huge); !errors.Is(err, scopes.ErrTooLong) || !errors.Is(err, scopes.ErrMalformed) {
		t.Errorf("1 MiB scope: error %v, want ErrTooLong matching ErrMalformed", err)
	}
	if _, err := scopes.ParseLenient(huge); !errors.Is(err, scopes.ErrTooLong) {
		t.Errorf("lenient 1 MiB scope: error %v, want ErrTooLong", err)
	}
	p := &scopes.Parser{MaxScopes: 3}
	if _, err := p.ParseSet("openid fhirUser launch offline_access"); !errors.Is(err, scopes.ErrTooMany) {
		t.Errorf("4 scopes with MaxScopes 3: %v, want ErrTooMany", err)
	}
	if _, err := p.ParseSet("openid fhirUser launch"); err != nil {
		t.Errorf("3 scopes with MaxScopes 3: %v", err)
	}
	allocs := testing.AllocsPerRun(10, func() { _, _ = scopes.ParseSet(huge) })
	if allocs > 1 {
		t.Errorf("refusing an over-long string allocated %v times", allocs)
	}
}

func TestCharacters(t *testing.T) {
	for _, in := range []string{
		"launch\topenid", "openid\n", "patient/Observation.rs?code=caf\xc3\xa9",
		"patient/Observation.rs?code=\xff", "__a\"b", `__a\b`, "launch\x00",
	} {
		if _, err := scopes.ParseSet(in); !errors.Is(err, scopes.ErrMalformed) {
			t.Errorf("ParseSet(%q) error = %v, want ErrMalformed", in, err)
		}
	}
}

func TestQueryDecoding(t *testing.T) {
	tests := []struct {
		in   string
		want []scopes.Param
		err  scopes.Reason
	}{
		{in: "patient/Observation.rs?code=a+b", want: []scopes.Param{{"code", "a b"}}},
		{in: "patient/Observation.rs?code=a%2Bb", want: []scopes.Param{{"code", "a+b"}}},
		{in: "patient/Observation.rs?code=a=b", want: []scopes.Param{{"code", "a=b"}}},
		{in: "patient/Observation.rs?category=a&category=b", want: []scopes.Param{{"category", "a"}, {"category", "b"}}},
		{in: "patient/Observation.rs?code=caf%C3%A9", want: []scopes.Param{{"code", "café"}}},
		{in: "patient/Observation.rs?code=%zz", err: scopes.ReasonEscape},
		{in: "patient/Observation.rs?code=%4", err: scopes.ReasonEscape},
		{in: "patient/Observation.rs?code=%ff", err: scopes.ReasonEscape},
		{in: "patient/Observation.rs?=x", err: scopes.ReasonEmptyName},
		{in: "patient/Observation.rs?a=1&&b=2", err: scopes.ReasonEmptyQuery},
		{in: "patient/Observation.rs?a=1?b=2", err: scopes.ReasonQuerySyntax},
		{in: "patient/Observation.rs?a=1#b", err: scopes.ReasonQuerySyntax},
		{in: "launch/list?role=a&x=b", err: scopes.ReasonLaunchRole},
		{in: "launch/list?kind=a", err: scopes.ReasonLaunchRole},
		{in: "launch/patient/x", err: scopes.ReasonLaunchType},
	}
	for _, tc := range tests {
		sc, err := scopes.Parse(tc.in)
		if tc.err != "" {
			var se *scopes.ScopeError
			if !errors.As(err, &se) || se.Reason != tc.err {
				t.Errorf("Parse(%q) error = %v, want reason %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, sc.Constraint()); diff != "" {
			t.Errorf("Parse(%q) constraint (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestConstraintIsACopy(t *testing.T) {
	sc, _ := scopes.Parse("patient/Observation.rs?category=laboratory")
	c := sc.Constraint()
	c[0].Value = "anything"
	if sc.Constraint()[0].Value != "laboratory" {
		t.Fatal("changing the returned constraint changed the scope")
	}
}

func TestCustom(t *testing.T) {
	p := &scopes.Parser{Custom: func(tok string) bool { return tok == "ehr.reports" }}
	set, err := p.ParseSet("openid ehr.reports")
	if err != nil {
		t.Fatal(err)
	}
	if set.At(1).Kind() != scopes.Custom {
		t.Errorf("kind = %v, want custom", set.At(1).Kind())
	}
	if _, err := p.ParseSet("ehr.other"); err == nil {
		t.Error("a token the hook refuses was accepted")
	}
	if _, err := scopes.ParseSet("ehr.reports"); err == nil {
		t.Error("the zero Parser accepted an unknown bare token")
	}
}

func TestDialects(t *testing.T) {
	tests := []struct{ in, v2, v1 string }{
		{"patient/Observation.read", "patient/Observation.rs", "patient/Observation.read"},
		{"patient/Observation.rs", "patient/Observation.rs", "patient/Observation.read"},
		{"user/*.cud", "user/*.cud", "user/*.write"},
		{"system/*.cruds", "system/*.cruds", "system/*.*"},
		{"patient/Observation.r", "patient/Observation.r", ""},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory", ""},
		{"openid", "openid", "openid"},
	}
	for _, tc := range tests {
		sc, err := scopes.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := sc.V2().String(); got != tc.v2 {
			t.Errorf("%s.V2() = %q, want %q", tc.in, got, tc.v2)
		}
		v1, ok := sc.V1()
		if ok != (tc.v1 != "") || ok && v1.String() != tc.v1 {
			t.Errorf("%s.V1() = %q, %v; want %q", tc.in, v1, ok, tc.v1)
		}
	}
	set := scopes.MustParseSet("patient/Observation.read patient/Observation.rs launch")
	if got, want := set.V2().String(), "patient/Observation.rs launch"; got != want {
		t.Errorf("Set.V2() = %q, want %q", got, want)
	}
	if got, want := scopes.MustParseSet("patient/Observation.rs patient/Condition.r").V1().String(),
		"patient/Observation.read patient/Condition.r"; got != want {
		t.Errorf("Set.V1() = %q, want %q", got, want)
	}
}

func TestNewResource(t *testing.T) {
	if got := scopes.NewResource(scopes.User, "Observation", scopes.Read|scopes.Search).String(); got != "user/Observation.rs" {
		t.Errorf("NewResource = %q", got)
	}
	for _, bad := range []scopes.Scope{
		scopes.NewResource(scopes.NoContext, "Observation", scopes.Read),
		scopes.NewResource(scopes.User, "observation", scopes.Read),
		scopes.NewResource(scopes.User, "Observation", 0),
		scopes.NewResource(scopes.User, "Observation", 1<<6),
	} {
		if !bad.IsZero() {
			t.Errorf("NewResource accepted invalid input: %q", bad)
		}
	}
}

func TestPermsString(t *testing.T) {
	for p := scopes.Perms(1); p <= scopes.All; p++ {
		s := p.String()
		sc, err := scopes.Parse("user/X" + "x." + s)
		if err != nil || sc.Perms() != p {
			t.Errorf("Perms(%d).String() = %q does not parse back: %v", p, s, err)
		}
	}
}
