// Package r4 parses FHIR R4 JSON with github.com/google/fhir/go's
// unmarshaller, the project's one check that a resource is valid against
// the R4 base specification: required elements present, no unknown
// elements, codes from their value sets, ids and primitives well formed.
// Errors name the path and the rule, not the content. One unmarshaller is
// built on first use and shared; it is safe for concurrent use.
//
// Its users are the exports that must produce valid R4 (audit/balp,
// consent/fhirconsent) and fhirproxy, which refuses written resources that
// are not.
package r4
