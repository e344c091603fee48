package launch_test

import (
	"context"
	"fmt"
	"log"
	"net/url"

	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
)

// An EHR with Dr Lee in the chart of patient 123 launches a registered app.
func ExampleService_Mint() {
	svc := &launch.Service{Store: &launch.Memory{}}
	l, err := svc.Mint(context.Background(), launch.Request{
		ClientID: "growth-chart",
		UserID:   "dr-lee",
		FHIRBase: "https://ehr.example.org/fhir",
		Context:  launch.Context{Patient: "123", Encounter: "e-9"},
	})
	if err != nil {
		log.Fatal(err)
	}
	appURL, err := l.AppURL("https://app.example.com/launch")
	if err != nil {
		log.Fatal(err)
	}
	u, _ := url.Parse(appURL)
	fmt.Println(u.Host, u.Path, u.Query().Get("iss"), len(u.Query().Get("launch")) >= 43)

	// The authorization server redeems it once, for that client and FHIR base.
	got, err := svc.Redeem(context.Background(), launch.Binding{ID: l.ID, ClientID: "growth-chart", FHIRBase: "https://ehr.example.org/fhir"})
	fmt.Println(got.Context.Patient, err)
	_, err = svc.Redeem(context.Background(), launch.Binding{ID: l.ID, ClientID: "growth-chart", FHIRBase: "https://ehr.example.org/fhir"})
	fmt.Println(err)
	// Output:
	// app.example.com /launch https://ehr.example.org/fhir true
	// 123 <nil>
	// launch: invalid launch
}

func ExampleContext_Reveal() {
	c := launch.Context{Patient: "123", Encounter: "e-9"}
	granted := scopes.MustParseSet("launch/patient patient/Observation.rs")
	fmt.Printf("%+v\n", c.Reveal(granted, false))
	// Output: {Patient:123 Encounter: FHIRContext:[] NeedPatientBanner:<nil> Intent: StyleURL: Tenant:}
}
