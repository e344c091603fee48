// Package smarttest provides a fake EHR for app vendors' tests, in the
// spirit of net/http/httptest: [NewServer] starts, inside the test process,
// the real smartkit authorization server with memory stores and a small FHIR
// data set over a few deterministic patients behind the real policy
// enforcement point (fhirproxy), and closes it with t.Cleanup. An app
// meets in its tests the refusals it will meet in production: another
// patient's record answers 404, a search naming another patient or chaining
// through one 403, and each refusal is in Server.Audit. smart-1 has a
// sensitive record (an HIV test labelled R and HIV), withheld unless
// Config.Clearance releases it, so an app can test how it shows data that
// is withheld.
//
//	ehr := smarttest.NewServer(t, smarttest.Config{Patient: "smart-1", Scopes: "patient/*.rs"})
//	app := &client.Config{ClientID: "my-app", RedirectURL: "https://app.example/cb",
//		Issuers: []string{ehr.FHIRBase}, HTTPClient: ehr.Client(), States: &client.MemoryStates{}}
//	ehr.Register(smarttest.PublicClient("my-app", "https://app.example/cb"))
//	launchURL, _ := ehr.LaunchURL("my-app", "https://app.example/launch")
//	callback, _ := ehr.Authorize(authURL) // logs in and approves, no UI
//
// It launches apps without a user interface (auto-login as Config.User,
// auto-approval of Config.Scopes), mints EHR launches, and can be told to
// behave like a quirky EHR ([Quirks]: absolute fhirUser, trimmed scopes,
// v1 scopes in responses, no patient, a slow or failing token endpoint) so
// apps can test their error handling. [Server.MintToken] signs access
// tokens for resource-server tests. A backend service can run a bulk
// export ($export, then its status and files, all through the proxy).
package smarttest
