// Package balp exports audit events as FHIR R4 AuditEvent resources shaped
// by IHE Basic Audit Log Patterns (BALP): the RESTful interaction profiles
// and their patient variants, the OAuth access-token overlay (the token's
// jti as agent policy, never the token), the token-issue pattern (ITI-71)
// and the authorization/consent decision pattern. Every resource is parsed
// back with github.com/google/fhir/go's R4 unmarshaller, single events and
// Bundles alike. It lives apart from package audit so that audit users do
// not compile protobuf FHIR.
package balp
