// Package fhirconsent exports consent grants as FHIR R4 Consent resources
// (CONSENT-AUDIT-REGISTRY §1.2): status active or inactive, scope
// patient-privacy, category LOINC 59284-0, the patient, the user as
// performer, the organisation policy, and a root permit provision for the
// app (information recipient, by client id) covering the granted data
// classes and actions, with one nested deny provision per sensitivity label
// the grant does not release. Every resource is parsed back with
// github.com/google/fhir/go's R4 unmarshaller, so what is exported is valid
// FHIR. It lives apart from package consent so that users of consent do
// not compile protobuf FHIR.
package fhirconsent
