package balp_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/audit/balp"
)

// Export turns one audit record into a BALP AuditEvent: here a patient
// app's read of an Observation, which takes the patient variant of the
// RESTful read profile, names the app and the user as agents and the
// patient and the record as entities, and carries the token's jti (never
// the token) as the user's policy.
func ExampleExport() {
	rec := audit.Link(nil, audit.Event{
		Time: time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC), Type: audit.ResourceAllowed, Outcome: audit.Success,
		ClientID: "growth-chart", UserID: "u-42", Patient: "pt-001", Scopes: "launch/patient patient/Observation.rs",
		Interaction: "read", Resource: "Observation/obs-7", TokenID: "jti-9f2c",
	})
	b, err := balp.Export(rec, balp.Options{Observer: "fhir-proxy-1", Server: "https://ehr.example/fhir"})
	if err != nil {
		fmt.Println(err)
		return
	}
	var ev struct {
		Meta    struct{ Profile []string }
		Subtype []struct{ Code string }
		Action  string
		Outcome string
		Agent   []struct {
			Who    struct{ Identifier struct{ Value string } }
			Policy []string
		}
		Entity []struct {
			What struct{ Reference string }
		}
	}
	_ = json.Unmarshal(b, &ev)
	fmt.Println(ev.Meta.Profile[0])
	fmt.Println(ev.Subtype[0].Code, ev.Action, ev.Outcome)
	for _, a := range ev.Agent {
		if a.Who.Identifier.Value != "" {
			fmt.Println("agent", a.Who.Identifier.Value, a.Policy)
		}
	}
	for _, e := range ev.Entity {
		if e.What.Reference != "" {
			fmt.Println("entity", e.What.Reference)
		}
	}
	// Output:
	// https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead
	// read R 0
	// agent growth-chart []
	// agent u-42 [urn:ietf:params:oauth:jti:jti-9f2c]
	// entity Patient/pt-001
	// entity Observation/obs-7
}
