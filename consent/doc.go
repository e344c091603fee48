// Package consent decides what an authorization may grant, asks people only
// what they must decide, remembers their answers, and lets them (or an
// administrator) revoke them at once.
//
// A [Policy] is the organisation's: default scope bundles and decisions per
// app category, risk-tier rules (high-risk apps need an administrator for
// writes; critical ones for everything), which data needs a person's
// explicit approval (medications, diagnoses, notes) and which may be
// auto-approved (appointments), scopes no app may have, and the sensitivity
// clearance a grant carries to the proxy: sensitive records (mental health,
// substance use under 42 CFR Part 2, HIV, reproductive and sexual health)
// are never released unless the policy says so. Organisation denials always
// win over a person's consent.
//
// [Evaluate] is pure and fast: requested ∩ app-approved ∩ policy, with every
// refused scope and its reason, what a person must decide, whether an
// administrator must review first, and the clearance:
//
//	d := consent.Evaluate(policy, consent.Request{App: app, User: user, Requested: set}, remembered)
//	// d.Granted (no question needed), d.Ask (the person decides), d.Refused, d.AdminReview, d.Clearance
//
// [Service] plugs the policy into the authorization server
// (smart.ConsentPolicy), remembers approvals per app, user and patient until
// they expire, lists a user's connected apps, and revokes grants: the
// token families issued under a revoked consent stop working at once.
// consent/fhirconsent exports grants as FHIR R4 Consent resources.
//
// Evaluation order (pinned by tests): the app's approved scopes; scopes the
// policy forbids; the category's decision and bundle; per scope, the data's
// sensitivity and writes; the risk tier; then what a live remembered grant
// already covers.
package consent
