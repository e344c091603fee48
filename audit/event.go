package audit

import (
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"strings"
	"time"
)

// Type names what happened.
type Type string

// The event types smartkit records.
const (
	LaunchMinted      Type = "launch.minted"
	AuthorizeAllowed  Type = "authorize.allowed"
	AuthorizeRefused  Type = "authorize.refused"
	ConsentGranted    Type = "consent.granted"
	ConsentRefused    Type = "consent.refused"
	ConsentRevoked    Type = "consent.revoked"
	CodeIssued        Type = "code.issued"
	CodeReuse         Type = "code.reuse"
	TokenIssued       Type = "token.issued"
	TokenRefused      Type = "token.refused"
	TokenRefreshed    Type = "token.refreshed"
	RefreshReuse      Type = "refresh.reuse"
	TokenRevoked      Type = "token.revoked"
	GrantRevoked      Type = "grant.revoked"
	Introspection     Type = "token.introspected"
	ClientAuthFailed  Type = "client.auth_failed"
	AssertionReplay   Type = "client.assertion_replay"
	ResourceAllowed   Type = "resource.allowed"
	ResourceRefused   Type = "resource.refused"
	AppTransition     Type = "app.transition"
	PolicyChanged     Type = "policy.changed"
	TokenVerifyFailed Type = "token.verify_failed"
	AuditRead         Type = "audit.read" // someone searched or exported the audit log
)

// Outcome says whether the step succeeded.
type Outcome string

// The outcomes of an event.
const (
	Success Outcome = "success"
	Failure Outcome = "failure"
)

// Severity ranks events for a security team. Attack indicators (code or
// refresh reuse, assertion replay, bad signatures) are Security.
type Severity string

// The severities of an event.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Security Severity = "security"
)

// An Event is one audited step. Only Time, Type and Outcome are always set;
// the rest is filled where it applies. No field may hold a token, code,
// secret, verifier, assertion or launch id.
type Event struct {
	Time     time.Time
	Tenant   string
	Type     Type
	Outcome  Outcome
	Severity Severity
	// Reason is a stable, machine-readable cause of a refusal, such as an
	// OAuth error code with its description.
	Reason string

	ClientID      string
	ClientVersion string
	UserID        string
	FHIRUser      string
	Role          string
	// Patient is the patient in context, or else the first patient whose
	// records the request disclosed or changed; where it disclosed none,
	// the patient the request itself names (a search by patient, a
	// compartment's), if any, so that "who looked for this patient" is
	// answered too.
	Patient string
	// Patients are the other patients whose records the request disclosed
	// or changed (a user/ or system/ search's page can hold many; a write
	// that moves a record, the patient it leaves), in the order first
	// seen; for a bulk export's kick-off that names patients, those after
	// the first. A Query for a patient matches Patient or any of these.
	// Empty is left out of the event's JSON, as Labels is.
	Patients []string `json:",omitempty"`
	Scopes   string   // granted (or requested, on refusal) scopes

	Interaction string // FHIR interaction, e.g. "read", "search"
	Resource    string // FHIR reference, e.g. "Observation/123"
	// Resources are what the entries of a batch or transaction name, in
	// order: Type/id, or the type alone (a create, a search); for a bulk
	// export's kick-off, the types it exports. Empty is left out of the
	// event's JSON, as Labels is.
	Resources []string `json:",omitempty"`

	LaunchRef string // Ref of the launch id, never the id
	GrantID   string
	ConsentID string
	TokenID   string // jti of the access token

	RequestID string
	SourceIP  string
	UserAgent string

	// Labels are the security labels ("system|code") of what the request
	// disclosed, never of what was withheld from it (a withheld record's
	// labels are as sensitive as the record). Empty is left out of the
	// event's JSON, so records written before the field hash as they did.
	Labels []string `json:",omitempty"`
}

// Ref returns a one-way, non-reversible reference to a secret such as a
// launch id, so events can be correlated without storing the secret.
func Ref(secret string) string {
	if secret == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// LogValue renders the event for log/slog, leaving out empty fields.
func (e Event) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Time("time", e.Time),
		slog.String("type", string(e.Type)),
		slog.String("outcome", string(e.Outcome)),
	}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("severity", string(e.Severity))
	add("reason", e.Reason)
	add("tenant", e.Tenant)
	add("client_id", e.ClientID)
	add("client_version", e.ClientVersion)
	add("user", e.UserID)
	add("fhir_user", e.FHIRUser)
	add("role", e.Role)
	add("patient", e.Patient)
	add("patients", strings.Join(e.Patients, " "))
	add("scope", e.Scopes)
	add("interaction", e.Interaction)
	add("resource", e.Resource)
	add("resources", strings.Join(e.Resources, " "))
	add("launch_ref", e.LaunchRef)
	add("grant", e.GrantID)
	add("consent", e.ConsentID)
	add("jti", e.TokenID)
	add("request_id", e.RequestID)
	add("source_ip", e.SourceIP)
	add("user_agent", e.UserAgent)
	add("labels", strings.Join(e.Labels, " "))
	return slog.GroupValue(attrs...)
}
