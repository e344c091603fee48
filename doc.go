// Package smartkit is an embeddable Go SDK that turns an EHR into a governed
// SMART on FHIR app platform. A host (an EHR backend, a hospital integration
// platform, an app vendor's server) imports the packages it needs and mounts
// them on its own mux; nothing here imposes a framework, a database or a UI.
//
// # Packages
//
//   - [github.com/smartkit/smartkit/scopes]: the one scope engine — parse
//     SMART v1 and v2 scopes, canonical form, set algebra, access decisions,
//     plain-language descriptions. Standard library only.
//   - launch: launch context and single-use launch ids for the EHR launch.
//   - consent: organisation policy, remembered grants, revocation, consent text.
//   - audit: the audit event model, sinks, tamper evidence, FHIR AuditEvent.
//   - smart: the authorization server (discovery, authorize, token,
//     introspection, revocation, JWKS) and the Verifier resource servers use;
//     with registry, client, smarttest and sqlstore beneath it.
//   - fhirproxy: the policy enforcement point in front of any FHIR server.
//   - examples: runnable programs, with examples/sandbox as the developer sandbox.
//
// # Assembling a platform
//
// A host mounts the authorization server and the proxy on its own mux,
// supplies its login through an Authenticator, its signing key as a
// crypto.Signer, and a store (memory for tests, SQLite or PostgreSQL through
// smart/sqlstore). Every package declares the small interfaces it consumes
// beside the code that consumes them and ships an in-memory implementation.
//
// The scope engine is shared by every layer:
//
//	set, err := scopes.ParseSet("launch/patient patient/Observation.rs")
//	if err != nil {
//		// invalid_scope, naming each bad token
//	}
//	ok := set.Allows(scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Read})
//
// docs/DESIGN.md in the repository is the map of packages and flows.
package smartkit
