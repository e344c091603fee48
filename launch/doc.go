// Package launch models SMART launch context and mints the single-use launch
// ids of the EHR launch (SMART App Launch 2.2, "Launch App: EHR Launch").
//
// The host EHR, with a user signed in and a chart open, calls [Service.Mint]
// to bind a fresh launch id to {tenant, client, user, FHIR base, context},
// then opens the app's launch URL with iss and launch ([Launch.AppURL]). When
// the app comes back to the authorization server, [Service.Redeem] consumes
// the id exactly once and checks every binding; any mismatch, expiry or
// reuse looks the same to the caller ([ErrInvalid]), so the endpoint is no
// oracle.
//
//	l, err := svc.Mint(ctx, launch.Request{
//		Tenant: "", ClientID: "growth-chart", UserID: "dr-lee",
//		FHIRBase: "https://ehr.example.org/fhir",
//		Context:  launch.Context{Patient: "123", Encounter: "e1"},
//	})
//	appURL, err := l.AppURL("https://app.example.com/launch")
//
// [Context.Reveal] decides what context a token response may carry given the
// scopes granted: the patient only with "launch" or "launch/patient", the
// encounter only with "launch" or "launch/encounter", fhirContext items by
// their type, and the banner and style hints only in an EHR launch.
//
// # Spec
//
// https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch
// https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
package launch
