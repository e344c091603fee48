package launch

import (
	"strings"

	"github.com/smartkit/smartkit/scopes"
)

// Context is the launch context an EHR establishes and a token response
// carries (SAL 2.2, "Launch context arrives with your access_token").
type Context struct {
	Patient           string        `json:"patient,omitempty"`             // Patient id (not a reference)
	Encounter         string        `json:"encounter,omitempty"`           // Encounter id
	FHIRContext       []ContextItem `json:"fhirContext,omitempty"`         // other resources in context
	NeedPatientBanner *bool         `json:"need_patient_banner,omitempty"` // EHR launch only
	Intent            string        `json:"intent,omitempty"`              // EHR launch only
	StyleURL          string        `json:"smart_style_url,omitempty"`     // EHR launch only
	Tenant            string        `json:"tenant,omitempty"`              // the launching organisation
}

// A ContextItem is one fhirContext entry in the SAL 2.2 shape: at least one
// of Reference, Canonical or Identifier.
type ContextItem struct {
	Reference  string      `json:"reference,omitempty"`  // relative, e.g. "ImagingStudy/123"
	Canonical  string      `json:"canonical,omitempty"`  // canonical URL, optionally |version
	Identifier *Identifier `json:"identifier,omitempty"` // a FHIR Identifier
	Type       string      `json:"type,omitempty"`       // resource type; recommended with canonical or identifier
	Role       string      `json:"role,omitempty"`       // role URI; absent means "launch"
}

// Identifier is the part of a FHIR Identifier a context item needs.
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

// resourceType returns the item's resource type, from Type or the reference.
func (it ContextItem) resourceType() string {
	if it.Type != "" {
		return it.Type
	}
	if t, _, ok := strings.Cut(it.Reference, "/"); ok {
		return t
	}
	return ""
}

// Valid reports whether the item has the SAL 2.2 shape: at least one of
// reference, canonical or identifier, and no empty role.
func (it ContextItem) Valid() bool {
	return it.Reference != "" || it.Canonical != "" || it.Identifier != nil && it.Identifier.Value != ""
}

// IsZero reports whether c carries no context at all.
func (c Context) IsZero() bool {
	return c.Patient == "" && c.Encounter == "" && len(c.FHIRContext) == 0 &&
		c.NeedPatientBanner == nil && c.Intent == "" && c.StyleURL == "" && c.Tenant == ""
}

// Reveal returns the part of c that a token response may carry when the
// scopes granted are granted. In an EHR launch (ehr true) the "launch" scope
// reveals the patient, the encounter and every fhirContext item; otherwise
// "launch/patient" reveals the patient, "launch/encounter" the encounter and
// "launch/<type>" the items of that type. Any patient/ scope reveals the
// patient too: SAL requires a patient context wherever one is granted. need_patient_banner, intent and
// smart_style_url belong to the EHR launch only (SPEC-NOTES A16). The tenant
// is always revealed. Nothing of a Context the grant does not cover leaks.
func (c Context) Reveal(granted scopes.Set, ehr bool) Context {
	all := ehr && granted.Has("launch")
	out := Context{Tenant: c.Tenant}
	if all || granted.Has("launch/patient") || granted.HasContext(scopes.Patient) {
		out.Patient = c.Patient
	}
	if all || granted.Has("launch/encounter") {
		out.Encounter = c.Encounter
	}
	for _, it := range c.FHIRContext {
		if all || granted.Has("launch/"+strings.ToLower(it.resourceType())) {
			out.FHIRContext = append(out.FHIRContext, it)
		}
	}
	if ehr {
		out.NeedPatientBanner = c.NeedPatientBanner
		out.Intent = c.Intent
		out.StyleURL = c.StyleURL
	}
	return out
}
