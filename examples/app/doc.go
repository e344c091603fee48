// Package app is the example SMART app, built on smart/client: it supports
// the EHR launch and the standalone launch, shows a patient banner when the
// EHR asks for one, lists the patient's recent observations, and explains
// what it cannot show when context or a scope is missing. The sandbox runs it
// at /app/ and registers it as "example-app"; vendors can copy it.
//
// Mount it under its base path next to (or apart from) the EHR, with the
// EHR's origin allowed to frame it:
//
//	a := &app.App{Base: "/app", EHROrigins: []string{"https://ehr.example"}, Client: &client.Config{
//		ClientID: "example-app", RedirectURL: "https://apps.example/app/callback",
//		Issuers: []string{"https://ehr.example/fhir"}, Scopes: []string{"openid", "fhirUser", "launch/patient", "patient/Patient.r"},
//		States: &client.CookieStore{Key: key}}}
//	mux.Handle("/app/", a)
//
// Tokens stay on the server (the browser holds only a random session id),
// the authorization code leaves the URL at once, and every page carries the
// CSP of client.SecurityHeaders.
package app
