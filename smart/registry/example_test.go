package registry_test

import (
	"context"
	"fmt"
	"log"

	"github.com/smartkit/smartkit/smart/registry"
)

// An owner registers an app; the platform team reviews it, approves it for
// the sandbox, then for production with an approved scope set and a DUA.
func ExampleRegistry() {
	ctx := context.Background()
	reg := &registry.Registry{Store: &registry.Memory{}} // Revokers: the smart.Servers; Audit: your sink
	app, creds, err := reg.Create(ctx, "", registry.NewApp{
		Owner:    registry.Owner{Name: "Growth Inc"},
		Category: registry.ClinicianFacing, RiskTier: registry.Moderate,
		Metadata: registry.Metadata{
			ClientName: "Growth Chart", TokenEndpointAuthMethod: "none",
			RedirectURIs: []string{"https://growth.example/cb"}, LaunchURI: "https://growth.example/launch",
			Scope: "launch openid fhirUser patient/Observation.rs patient/Patient.r",
		},
	}, "owner@growth.example")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(app.State, creds.SandboxClientID != creds.ProductionClientID)

	_, _ = reg.RecordReview(ctx, "", app.ID, registry.Review{Passed: true, Evidence: []string{"SEC-REVIEW-118"}}, "reviewer")
	app, _ = reg.Transition(ctx, "", app.ID, registry.SandboxApproved, "platform-team", "review passed")
	fmt.Println(app.State)

	_, _ = reg.SetApprovedScope(ctx, "", app.ID, "launch openid fhirUser patient/Observation.rs", "platform-team")
	_, _ = reg.SetDUA(ctx, "", app.ID, "DUA-2026-014", "legal")
	app, err = reg.Transition(ctx, "", app.ID, registry.ProductionApproved, "platform-team", "go-live")
	fmt.Println(app.State, err)

	c, _ := reg.Clients(registry.Production).Client(ctx, "", creds.ProductionClientID)
	fmt.Println(c.Scope)
	// Output:
	// draft true
	// sandbox_approved
	// production_approved <nil>
	// launch openid fhirUser patient/Observation.rs
}
