package smart

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/scopes"
)

// A User is the person signed in at the EHR, as the host's login reports it.
type User struct {
	ID       string // stable id in the host's identity system
	FHIRUser string // FHIR reference, e.g. "Practitioner/123", "Patient/9"; "" if none
	Name     string // shown on the pages
	// Role is the user's relation to the data for consent policy:
	// "clinician", "patient", "related-person", "admin"; "" if unknown.
	Role string
	// PatientID is set when the user is a patient (or acts for exactly one):
	// a standalone launch then has this patient in context without a picker.
	PatientID string
	// Session identifies the host's sign-in session the user is in
	// (opaque; "" when the host keeps none). Grants of online_access are
	// bound to it: see Server.Sessions.
	Session string
}

// Sessions tells whether a user's sign-in session at the host is still
// active. With it, an online_access refresh token works only while the
// session the user authorized the app in is (SMART: "while the end-user
// remains online"); once it has ended, the grant is revoked.
type Sessions interface {
	SessionActive(ctx context.Context, userID, session string) (bool, error)
}

// SessionsFunc adapts a function to Sessions.
type SessionsFunc func(ctx context.Context, userID, session string) (bool, error)

// SessionActive calls f.
func (f SessionsFunc) SessionActive(ctx context.Context, userID, session string) (bool, error) {
	return f(ctx, userID, session)
}

// LogValue keeps logs to the user's id.
func (u User) LogValue() slog.Value { return slog.StringValue(u.ID) }

// Authenticator is the host's login. Authenticate returns the signed-in
// user, or, when nobody is signed in, writes a response itself (a login page,
// or a redirect to one that returns to the request, which is always a GET)
// and returns false. Return to r.RequestURI: when the Server is mounted with
// http.StripPrefix, r.URL.Path has lost the prefix.
type Authenticator interface {
	Authenticate(w http.ResponseWriter, r *http.Request) (User, bool)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(w http.ResponseWriter, r *http.Request) (User, bool)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(w http.ResponseWriter, r *http.Request) (User, bool) {
	return f(w, r)
}

// A ConsentRequest is what the server asks the consent layer about.
type ConsentRequest struct {
	Tenant    string
	Client    *Client
	User      User
	Patient   string     // patient in context, if any
	Requested scopes.Set // what the app asked for, after parsing
	Allowed   scopes.Set // Requested ∩ what the client may have
	EHRLaunch bool
}

// A ConsentDecision says what may be granted and whether a person must decide.
type ConsentDecision struct {
	// Grantable is the most that may be granted; the user can only narrow it.
	Grantable scopes.Set
	// Ask reports whether the consent page must be shown.
	Ask bool
	// Deny refuses the request outright (access_denied), with Reason for the audit trail.
	Deny   bool
	Reason string
	// Refused lists scopes the policy refused, with why, for the audit trail.
	Refused []consent.Refusal
	// Clearance is what the grant may see of labelled data; it is carried in
	// the access token to the proxy. Nil means normal data only.
	Clearance *consent.Clearance
}

// ConsentPolicy decides what an authorization may grant. The consent
// package implements it with organisation policy and remembered grants.
type ConsentPolicy interface {
	Decide(ctx context.Context, r ConsentRequest) (ConsentDecision, error)
}

// A PatientChoice is one patient the standalone-launch picker offers.
type PatientChoice struct {
	ID        string
	Name      string
	BirthDate string
}

// PatientPicker is the host's patient search for standalone launches. The
// server re-checks every choice with Allowed, so a forged form cannot pick a
// patient the user may not see.
type PatientPicker interface {
	Search(ctx context.Context, tenant string, u User, query string) ([]PatientChoice, error)
	Allowed(ctx context.Context, tenant string, u User, patientID string) (bool, error)
}
