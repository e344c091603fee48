// Package scopes is smartkit's one scope engine: it parses SMART on FHIR
// scopes, holds them in canonical form, does the set algebra a server needs,
// decides whether a FHIR interaction is allowed, and explains scopes in plain
// language. The authorization server, consent, introspection, the FHIR proxy
// and the client all use it, so they cannot disagree about what a scope means.
//
// It reads every scope family of SMART App Launch 2.2: v2 resource scopes
// ("patient/Observation.rs?category=laboratory"), v1 resource scopes
// ("user/*.read"), launch and launch-context scopes ("launch",
// "launch/patient", "launch/list?role=…"), identity ("openid", "fhirUser",
// legacy "profile"), refresh ("offline_access", "online_access"), SMART Web
// Messaging groups, and host extensions ("__name" or an absolute URI).
//
//	set, err := scopes.ParseSet(tok.Scope)
//	if err != nil {
//		// err lists every invalid token with its position (*SetError)
//	}
//	d := set.Check(scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Search})
//	if d.Constrained() {
//		// results must match one of d.Constraints()
//	}
//
// # Grammar
//
// Parsing is strict where SMART is ambiguous, choosing the reading that never
// widens access (see SPEC-NOTES in the design documents): letters must be a
// non-empty subset of "cruds" in that order ("patient/Observation.sr" is
// invalid, not reinterpreted); query constraints need at least one
// name=value pair with a non-empty name and value, are split at the first
// "=", and are percent-decoded exactly once like a FHIR search URL; v1
// suffixes take no constraint; tokens are case-sensitive and limited to the
// RFC 6749 §3.3 character set. [ParseSet] fails on any invalid token and
// reports all of them; [ParseLenient] drops them and says which. Limits
// ([Parser.MaxLen], [Parser.MaxScopes]) are checked before anything else.
//
// # Canonical form and dialects
//
// A [Scope] prints as the text it was parsed from, so Parse(s.String())
// round-trips. [Scope.V2] rewrites v1 scopes (read → rs, write → cud, * →
// cruds) and [Scope.V1] rewrites back where that is exact, so a server can
// answer a v1 client in v1. A [Set] de-duplicates and joins with single spaces.
//
// # Set algebra
//
// [Set.Covers] and [Set.Equal] treat scopes as a union of permissions
// ("X.rs" equals "X.r X.s"); an unconstrained scope covers a constrained one,
// and a constrained scope covers another only if its pairs are among the
// other's. [Set.Intersect] computes requested ∩ client-allowed ∩
// user-approved, and [Set.Narrow] checks a refresh request, naming the first
// scope that would widen the grant.
//
// # Access decisions
//
// [Set.Check] decides one FHIR interaction without allocating. When only
// query-constrained scopes allow it, the Decision says so and yields those
// constraints, so the proxy can filter results. [Set.Allows] is the
// fail-closed shorthand that refuses anything constrained.
//
// # Plain language
//
// [Describe] and [DescribeSet] explain scopes for consent screens. All
// wording lives in a [Wording] value; [English] returns the default for a
// host to rephrase or translate.
//
// # Spec
//
// https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
package scopes
