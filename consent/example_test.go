package consent_test

import (
	"fmt"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/scopes"
)

func ExampleEvaluate() {
	policy, err := consent.ParsePolicy([]byte(`{
		"uri": "https://profiles.ihe.net/ITI/PCF/Policy-basic-normal",
		"auto_approve_types": ["Appointment"],
		"forbidden": "patient/*.d user/*.d",
		"categories": {"patient-engagement": {"default": "auto-approve", "max_auto_tier": "moderate"}}
	}`))
	if err != nil {
		panic(err)
	}
	app := consent.App{ClientID: "visits", Category: "patient-engagement", RiskTier: "low",
		Approved: scopes.MustParseSet("launch/patient openid patient/*.rs patient/Appointment.rds")}
	d := consent.Evaluate(policy, consent.Request{App: app, UserID: "pat",
		Requested: scopes.MustParseSet("launch/patient openid patient/Appointment.rds patient/MedicationRequest.rs")}, nil)

	fmt.Println("granted:", d.Granted)
	fmt.Println("ask:    ", d.Ask)
	for _, r := range d.Refused {
		fmt.Println("refused:", r.Scope, "-", r.Reason)
	}
	fmt.Println("clearance:", d.Clearance.MaxConfidentiality, d.Clearance.Allows(consent.Normal, []string{"PSY"}))
	// Output:
	// granted: launch/patient openid
	// ask:     patient/MedicationRequest.rs
	// refused: patient/Appointment.rds - the organisation's policy forbids it
	// clearance: N false
}
