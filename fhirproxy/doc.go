// Package fhirproxy will be the policy enforcement point in front of any
// FHIR R4 server: it verifies the bearer token with smart.Verifier, parses
// each request once into a FHIR interaction, enforces scopes (through
// scopes.Set.Check, including v2 query constraints), the patient compartment
// and security labels on the way in and out, forwards only what it
// authorised, and audits every access.
//
// Status: not built yet (issue #8). smart.Verifier.Middleware already
// refuses requests without a valid token; it does not enforce scopes.
package fhirproxy
