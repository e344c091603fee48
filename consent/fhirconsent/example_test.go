package fhirconsent_test

import (
	"fmt"
	"time"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/consent/fhirconsent"
)

// Export turns a consent grant into an R4 Consent and returns it typed as
// well: a permit for the app, by client id, over the data classes its
// scopes name, with a deny for each sensitivity label the grant does not
// release. Here a patient let a growth-chart app read vital signs and
// released mental-health records to it, and nothing else that is labelled.
func ExampleExport() {
	g := consent.Grant{
		ID: "g-1", ClientID: "growth-chart", AppName: "Growth Chart", UserID: "u-42", Patient: "pt-001",
		Scope:     "launch/patient patient/Observation.rs patient/Patient.r",
		Clearance: consent.Clearance{MaxConfidentiality: consent.Restricted, Tags: []string{"PSY"}},
		Status:    consent.Active,
		Created:   time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC),
		Expires:   time.Date(2027, 11, 28, 9, 30, 0, 0, time.UTC),
	}
	_, c, err := fhirconsent.Export(g, fhirconsent.Options{Issuer: "https://ehr.example/auth"})
	if err != nil {
		fmt.Println(err)
		return
	}
	p := c.GetProvision()
	fmt.Println(c.GetStatus().GetValue(), c.GetPatient().GetPatientId().GetValue())
	fmt.Println(p.GetType().GetValue(), p.GetActor()[0].GetReference().GetIdentifier().GetValue().GetValue())
	for _, cl := range p.GetClassValue() {
		fmt.Println("class", cl.GetCode().GetValue())
	}
	denied := 0
	for _, d := range p.GetProvision() {
		for _, l := range d.GetSecurityLabel() {
			if l.GetCode().GetValue() == "PSY" {
				fmt.Println("PSY denied")
			}
			denied++
		}
	}
	fmt.Println(denied, "labels denied, PSY released")
	// Output:
	// ACTIVE pt-001
	// PERMIT growth-chart
	// class Observation
	// class Patient
	// 16 labels denied, PSY released
}
