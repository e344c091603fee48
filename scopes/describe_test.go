package scopes_test

import (
	"strings"
	"testing"

	"github.com/smartkit/smartkit/scopes"
)

func TestDescribe(t *testing.T) {
	tests := []struct {
		scope                             string
		reads, writes, persistent, future bool
		contains                          []string
	}{
		{"patient/Observation.rs", true, false, false, false, []string{"Read and search", "observations", "the patient in context"}},
		{"user/Condition.cud", false, true, false, false, []string{"Add, change and delete", "conditions", "any patient you are allowed to see"}},
		{"system/*.read", true, false, false, true, []string{"all kinds of health data", "without a user", "added in the future"}},
		{"patient/Observation.rs?category=vital-signs,laboratory", true, false, false, false, []string{"only category: vital signs or laboratory results"}},
		{"patient/Binary.r", true, false, false, false, []string{"Binary records"}},
		{"offline_access", false, false, true, false, []string{"until you revoke it"}},
		{"online_access", false, false, false, false, []string{"while you remain signed in"}},
		{"launch/encounter", false, false, false, false, []string{"which encounter"}},
		{"launch/list?role=https://example.org/med-list-at-home", false, false, false, false, []string{"which list", "https://example.org/med-list-at-home"}},
		{"openid", false, false, false, false, []string{"who you are"}},
		{"fhirUser", false, false, false, false, []string{"identity"}},
		{"__profilePhoto.manage", false, false, false, false, []string{"__profilePhoto.manage"}},
		{"messaging/ui", false, false, false, false, []string{"change what it shows"}},
		{"patient/ValueSet.rs", true, false, false, false, []string{"Read and search code lists (reference data, not a health record)."}},
		{"user/Practitioner.r", true, false, false, false, []string{"Read information about clinicians (reference data"}},
	}
	for _, tc := range tests {
		sc, err := scopes.Parse(tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		d := scopes.Describe(sc)
		if d.Reads != tc.reads || d.Writes != tc.writes || d.Persistent != tc.persistent || d.Future != tc.future {
			t.Errorf("%s: flags %+v", tc.scope, d)
		}
		if d.Reference != (tc.scope == "patient/ValueSet.rs" || tc.scope == "user/Practitioner.r") ||
			d.Reference && (d.Who != "" || strings.Contains(d.Text, "patient")) {
			t.Errorf("%s: Reference %v, who %q: %s", tc.scope, d.Reference, d.Who, d.Text)
		}
		for _, want := range tc.contains {
			if !strings.Contains(d.Text, want) {
				t.Errorf("%s: %q lacks %q", tc.scope, d.Text, want)
			}
		}
		if d.Scope != tc.scope {
			t.Errorf("%s: Scope = %q", tc.scope, d.Scope)
		}
	}
}

func TestDescribeSetSummary(t *testing.T) {
	for in, want := range map[string]string{
		"openid fhirUser":   "This app asks to use no health data.",
		"patient/Patient.r": "This app asks to read health data.",
		"patient/Patient.r patient/Observation.c offline_access": "This app asks to read health data, change the health record and keep access when you are not using it.",
		"patient/ValueSet.rs patient/CodeSystem.r":               "This app asks to read reference data such as code lists.",
		"patient/ValueSet.rs patient/Observation.r":              "This app asks to read health data.",
	} {
		if got := scopes.DescribeSet(scopes.MustParseSet(in)).Summary; got != want {
			t.Errorf("%s: summary %q, want %q", in, got, want)
		}
	}
}

func TestEnglishIsFresh(t *testing.T) {
	w := scopes.English()
	w.Types["Observation"] = "changed"
	sc, _ := scopes.Parse("patient/Observation.r")
	if strings.Contains(scopes.Describe(sc).Text, "changed") {
		t.Fatal("changing one English() value changed the default wording")
	}
}
