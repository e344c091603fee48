package registry

import (
	"encoding/json"
	"slices"
	"time"
)

// State is where an app is in its governed lifecycle.
type State string

// The lifecycle states (CONSENT-AUDIT-REGISTRY §4.3).
const (
	Draft              State = "draft"               // editable; no tokens anywhere
	SandboxApproved    State = "sandbox_approved"    // tokens in the sandbox only
	ProductionApproved State = "production_approved" // production, limited to the approved scope set
	Suspended          State = "suspended"           // nothing issued; every grant revoked
	Retired            State = "retired"             // as suspended, for good; credentials destroyed
)

// Environment separates sandbox from production: each has its own client
// id and credentials, and a credential of one never works in the other.
type Environment string

// The environments.
const (
	Sandbox    Environment = "sandbox"
	Production Environment = "production"
)

// Category classifies an app for policy and the marketplace. The constants
// are the usual ones; hosts may define their own.
type Category string

// Common categories.
const (
	Operational        Category = "operational"
	ClinicalDecision   Category = "clinical-decision-support"
	PatientEngagement  Category = "patient-engagement"
	Research           Category = "research"
	PatientFacing      Category = "patient-facing"
	ClinicianFacing    Category = "clinician-facing"
	BackendPopulation  Category = "backend-population"
	AdministrativeApps Category = "admin"
)

// RiskTier ranks an app's risk for review and consent policy.
type RiskTier string

// The risk tiers.
const (
	Low      RiskTier = "low"
	Moderate RiskTier = "moderate"
	High     RiskTier = "high"
	Critical RiskTier = "critical"
)

// Metadata is an app's client metadata under RFC 7591 names, plus SMART's
// launch URI and FHIR versions.
type Metadata struct {
	ClientName              string          `json:"client_name,omitempty"`
	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	ClientURI               string          `json:"client_uri,omitempty"`
	LogoURI                 string          `json:"logo_uri,omitempty"`
	TOSURI                  string          `json:"tos_uri,omitempty"`
	PolicyURI               string          `json:"policy_uri,omitempty"`
	Contacts                []string        `json:"contacts,omitempty"`
	SoftwareID              string          `json:"software_id,omitempty"`
	SoftwareVersion         string          `json:"software_version,omitempty"`
	LaunchURI               string          `json:"launch_uri,omitempty"`
	FHIRVersions            []string        `json:"fhir_versions,omitempty"`
}

// sensitiveChange reports whether b changes what a review approved in a:
// redirect URIs, keys, requested scopes, launch URL, auth method or grants.
func (a Metadata) sensitiveChange(b Metadata) bool {
	return !slices.Equal(a.RedirectURIs, b.RedirectURIs) || string(a.JWKS) != string(b.JWKS) || a.JWKSURI != b.JWKSURI ||
		a.Scope != b.Scope || a.LaunchURI != b.LaunchURI || a.TokenEndpointAuthMethod != b.TokenEndpointAuthMethod ||
		!slices.Equal(a.GrantTypes, b.GrantTypes)
}

// A Version is one reviewed shape of an app's metadata.
type Version struct {
	Number     int
	Metadata   Metadata
	Created    time.Time
	Review     *Review   // the review of this version, if any
	ApprovedAt time.Time // zero until approved
}

// A Review is the outcome of a security and content review.
type Review struct {
	At       time.Time
	By       string
	Passed   bool
	Evidence []string // references to the review record, pen-test report, …
	Notes    string
}

// Owner is the organisation responsible for an app.
type Owner struct {
	Name       string `json:"name"`
	Identifier string `json:"identifier,omitempty"`
}

// Contact is a person or desk to reach.
type Contact struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
	URL   string `json:"url,omitempty"`
}

// A Credential is an app's identity in one environment.
type Credential struct {
	ClientID   string
	SecretHash string // smart.HashSecret of the secret, for symmetric clients
	// OldSecretHash stays valid until OldExpires, so a rotation has overlap.
	OldSecretHash string
	OldExpires    time.Time
	ApprovedAt    time.Time
	// RegistrationTokenHash authenticates RFC 7592 management calls.
	RegistrationTokenHash string
}

// A Change is one entry of an app's history.
type Change struct {
	At     time.Time
	By     string
	Kind   string // "created", "transition", "update", "version", "review", "scopes", "dua", "secret"
	From   string
	To     string
	Reason string
}

// An App is the registry's record of one app across environments.
type App struct {
	ID              string // app_id: stable across environments
	Tenant          string
	Owner           Owner
	SupportContact  Contact
	SecurityContact Contact
	Category        Category
	RiskTier        RiskTier
	State           State
	PreviousState   State // the state a suspension can be reversed to
	Environments    map[Environment]*Credential
	// Current is the approved (or, in draft, the working) version; Pending
	// a changed version waiting for review while Current keeps working.
	Current Version
	Pending *Version
	// ApprovedScope is the scope set approved for production, ⊆ requested.
	ApprovedScope      string
	DUA                string // data-use agreement reference
	Created            time.Time
	LastReviewed       time.Time
	RecertificationDue time.Time
	History            []Change
	// Revision increments on every write; stores use it to refuse lost updates.
	Revision int
}

// ClientID returns the app's client id in an environment, or "".
func (a *App) ClientID(env Environment) string {
	if c := a.Environments[env]; c != nil {
		return c.ClientID
	}
	return ""
}

// permits reports whether the state allows tokens in env.
func (s State) permits(env Environment) bool {
	switch s {
	case SandboxApproved:
		return env == Sandbox
	case ProductionApproved:
		return true // production, and its sandbox credentials keep working
	}
	return false
}
