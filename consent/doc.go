// Package consent will decide what an authorization may grant: organisation
// policy (default scope bundles per app category, risk and sensitivity
// tiers, scopes no app may have), remembered per-person grants with expiry,
// a connected-apps view with revocation, a sensitivity clearance that travels
// with the grant to the proxy, and FHIR Consent export.
//
// Status: not built yet (issue #6). Until it is, smart.Server's default
// policy grants requested ∩ client-allowed after the user approves on the
// consent page, and smart.ConsentPolicy is the interface this package will
// implement.
package consent
