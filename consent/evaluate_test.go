package consent_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/scopes"
)

var now = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func policy() *consent.Policy {
	return &consent.Policy{
		URI:              consent.PolicyBasicNormal,
		AutoApproveTypes: []string{"Appointment", "Practitioner"},
		Forbidden:        "system/*.cud user/*.d patient/*.d",
		Categories: map[string]consent.CategoryRule{
			"patient-engagement": {Default: consent.AutoApprove, MaxAutoTier: "moderate",
				Bundle: "launch/patient openid fhirUser offline_access patient/*.rs patient/Observation.c"},
			"research": {Default: consent.Refuse},
		},
		ReleasedTags: []string{"SEX"},
	}
}

func app(category, tier, approved string) consent.App {
	return consent.App{ClientID: "app-1", Category: category, RiskTier: tier, Approved: scopes.MustParseSet(approved)}
}

func TestEvaluate(t *testing.T) {
	full := "launch launch/patient openid fhirUser offline_access patient/*.cruds user/*.cruds"
	tests := []struct {
		name        string
		app         consent.App
		requested   string
		remembered  *consent.Grant
		granted     string
		ask         string
		refused     []string
		adminReview bool
	}{
		{name: "auto-approve low-sensitivity reads only",
			app: app("patient-engagement", "low", full), requested: "launch/patient openid patient/Appointment.rs patient/MedicationRequest.rs",
			granted: "launch/patient openid patient/Appointment.rs", ask: "patient/MedicationRequest.rs"},
		{name: "auto-approval needs a low enough tier",
			app: app("patient-engagement", "high", full), requested: "launch/patient patient/Appointment.rs",
			ask: "launch/patient patient/Appointment.rs"},
		{name: "a category without a rule asks",
			app: app("clinician-facing", "low", full), requested: "launch patient/Appointment.rs",
			ask: "launch patient/Appointment.rs"},
		{name: "category bundle bounds the request",
			app: app("patient-engagement", "low", full), requested: "patient/Observation.rs patient/Condition.cu",
			ask: "patient/Observation.rs", refused: []string{"patient/Condition.cu"}},
		{name: "category that may not access data",
			app: app("research", "low", full), requested: "patient/Observation.rs",
			refused: []string{"patient/Observation.rs"}},
		{name: "not approved for the app",
			app: app("clinician-facing", "low", "launch patient/Observation.rs"), requested: "launch patient/Observation.rs patient/Condition.rs",
			ask: "launch patient/Observation.rs", refused: []string{"patient/Condition.rs"}},
		{name: "organisation denial wins, even over a remembered grant",
			app: app("clinician-facing", "low", full), requested: "patient/Observation.rds",
			remembered: &consent.Grant{ID: "g1", Status: consent.Active, Scope: "patient/Observation.rds"},
			refused:    []string{"patient/Observation.rds"}},
		{name: "high-risk writes need an administrator",
			app: app("clinician-facing", "high", full), requested: "user/Observation.cu",
			ask: "user/Observation.cu", adminReview: true},
		{name: "high-risk reads do not",
			app: app("clinician-facing", "high", full), requested: "user/Observation.rs",
			ask: "user/Observation.rs"},
		{name: "critical apps need an administrator for everything",
			app: app("clinician-facing", "critical", full), requested: "user/Observation.rs",
			ask: "user/Observation.rs", adminReview: true},
		{name: "wildcards and offline access always ask",
			app: app("patient-engagement", "low", full), requested: "patient/*.rs offline_access",
			ask: "patient/*.rs offline_access"},
		{name: "a remembered grant answers what it covers",
			app: app("clinician-facing", "low", full), requested: "launch patient/Observation.r patient/Condition.rs",
			remembered: &consent.Grant{ID: "g1", Status: consent.Active, Scope: "launch patient/Observation.rs", Expires: now.Add(time.Hour)},
			granted:    "launch patient/Observation.r", ask: "patient/Condition.rs"},
		{name: "an expired remembered grant answers nothing",
			app: app("clinician-facing", "low", full), requested: "patient/Observation.rs",
			remembered: &consent.Grant{ID: "g1", Status: consent.Active, Scope: "patient/Observation.rs", Expires: now.Add(-time.Hour)},
			ask:        "patient/Observation.rs"},
		{name: "a revoked grant answers nothing",
			app: app("clinician-facing", "low", full), requested: "patient/Observation.rs",
			remembered: &consent.Grant{ID: "g1", Status: consent.Inactive, Scope: "patient/Observation.rs"},
			ask:        "patient/Observation.rs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := consent.Evaluate(policy(), consent.Request{App: tc.app, UserID: "u", Requested: scopes.MustParseSet(tc.requested), Now: now}, tc.remembered)
			var refused []string
			for _, r := range d.Refused {
				if r.Reason == "" {
					t.Errorf("refusal of %s without a reason", r.Scope)
				}
				refused = append(refused, r.Scope)
			}
			got := []any{d.Granted.String(), d.Ask.String(), refused, d.AdminReview}
			want := []any{tc.granted, tc.ask, tc.refused, tc.adminReview}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestClearance(t *testing.T) {
	p := policy()
	p.Categories["patient-engagement"] = consent.CategoryRule{ReleasedTags: []string{"PREGNANT"}}
	d := consent.Evaluate(p, consent.Request{App: app("patient-engagement", "low", "patient/*.rs"), Requested: scopes.MustParseSet("patient/*.rs"), Now: now}, nil)
	c := d.Clearance
	tests := []struct {
		conf consent.Confidentiality
		tags []string
		want bool
	}{
		{"", nil, true},
		{consent.Normal, []string{"HTEST"}, true},
		{consent.Restricted, nil, false},
		{consent.VeryRestricted, nil, false},
		{consent.Normal, []string{"SEX"}, true},
		{consent.Normal, []string{"PREGNANT"}, true},
		{consent.Normal, []string{"PSY"}, false},
		{consent.Normal, []string{"SUD", "42CFRPart2"}, false},
		{consent.Normal, []string{"HIV"}, false},
	}
	for _, tc := range tests {
		if got := c.Allows(tc.conf, tc.tags); got != tc.want {
			t.Errorf("Allows(%s, %v) = %v, want %v", tc.conf, tc.tags, got, tc.want)
		}
	}
}

// TestUnrestricted: a clearance is unrestricted exactly when it allows
// every confidentiality and every listed tag.
func TestUnrestricted(t *testing.T) {
	all := append(append(slices.Clone(consent.SensitiveTags), consent.HighlySensitiveTags...), consent.SegmentedTags...)
	full := consent.Clearance{MaxConfidentiality: consent.VeryRestricted, Tags: all}
	if !full.Unrestricted() {
		t.Fatal("the full clearance is not unrestricted")
	}
	for _, conf := range []consent.Confidentiality{"", consent.Unrestricted, consent.Normal, consent.Restricted, consent.VeryRestricted} {
		if !full.Allows(conf, all) {
			t.Errorf("an unrestricted clearance refused %s %v", conf, all)
		}
	}
	for i := range all {
		less := consent.Clearance{MaxConfidentiality: consent.VeryRestricted, Tags: slices.Delete(slices.Clone(all), i, i+1)}
		if less.Unrestricted() || less.Allows(consent.Normal, all[i:i+1]) {
			t.Errorf("without %s: unrestricted %v", all[i], less.Unrestricted())
		}
	}
	if (consent.Clearance{MaxConfidentiality: consent.Restricted, Tags: all}).Unrestricted() || (consent.Clearance{}).Unrestricted() {
		t.Error("a capped clearance is unrestricted")
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := consent.ParsePolicy([]byte(`{"uri":"` + consent.PolicyAllNormal + `","auto_approve_types":["Appointment"],
		"categories":{"patient-engagement":{"default":"auto-approve","bundle":"patient/*.rs"}},"forbidden":"system/*.cud"}`))
	if err != nil || p.Categories["patient-engagement"].Default != consent.AutoApprove {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{`{"forbidden":"patient/Observation.sr"}`, `{"categories":{"x":{"default":"maybe"}}}`,
		`{"max_confidentiality":"Q"}`, `{"admin_all_from":"extreme"}`, `not json`} {
		if _, err := consent.ParsePolicy([]byte(bad)); err == nil {
			t.Errorf("ParsePolicy(%s) accepted", bad)
		}
	}
}
