// Package client is the app side of SMART on FHIR for app vendors: the EHR
// launch and the standalone launch, the callback, refresh, FHIR calls, and
// backend services. It is built on golang.org/x/oauth2 and returns its
// types, so the rest of the Go OAuth ecosystem keeps working.
//
//	app := &client.Config{
//		ClientID:    "growth-chart",
//		RedirectURL: "https://growth.example/callback",
//		Scopes:      []string{"openid", "fhirUser", "launch/patient", "patient/Observation.rs"},
//		Issuers:     []string{"https://ehr.example.org/fhir"}, // the EHRs you registered with
//	}
//	mux.HandleFunc("/launch", app.HandleLaunch) // EHR launch: ?iss=…&launch=…
//	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
//		s, err := app.Callback(w, r) // state, iss (RFC 9207), code + PKCE, id_token
//		if err != nil { ... }
//		fhir := s.Client(r.Context()) // Bearer token, refresh, one retry on 401
//		_ = s.Context.Patient        // launch context; s.Missing says what did not come
//	})
//
// What it does for you: discovery (refusing servers without PKCE S256),
// PKCE, aud, state and nonce; per-launch state in sealed cookies
// ([CookieStore]) or on the server ([MemoryStates]), so several launches can
// run at once; mix-up defence by iss; id_token verification against the
// server's JWKS; an allow-list of EHRs ([Config.Issuers]) so a forged launch
// cannot send users elsewhere; the token only with requests for the FHIR
// server it is for, and token requests that follow no redirect, so no
// credential reaches another host; discovery and the JWKS taken only from
// the origin they were asked of (a redirect elsewhere is an error). It
// tolerates real EHRs without loosening
// security: fhirUser absolute or relative ([Session.FHIRUserRef]), scopes
// trimmed ([Session.Denied]), v1 scopes for v2 requests, 2.0-style
// fhirContext strings, and missing context ([Session.Missing]).
//
// [Backend] is a SMART Backend Services client: RS384 or ES384 assertions
// over any crypto.Signer, tokens cached until shortly before expiry. With
// its http.Client, [StartExport] runs a bulk export (Bulk Data $export):
// [Export.Wait] polls as the server asks, and [Download] and [Resources]
// read each NDJSON file.
//
// [SecurityHeaders] and [WebMessaging] help apps embedded in an EHR.
//
// The fake EHR in smart/smarttest lets you test all of this inside go test.
//
// # Spec
//
// https://hl7.org/fhir/smart-app-launch/app-launch.html
// https://hl7.org/fhir/smart-app-launch/backend-services.html
package client
