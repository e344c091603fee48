package fhirconsent

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/consent_go_proto"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/internal/r4"
	"github.com/smartkit/smartkit/scopes"
)

// Code systems used in the export.
const (
	ActCode         = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	ActReason       = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	ConsentAction   = "http://terminology.hl7.org/CodeSystem/consentaction"
	ConsentScope    = "http://terminology.hl7.org/CodeSystem/consentscope"
	ParticipantType = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	ResourceTypes   = "http://hl7.org/fhir/resource-types"
)

// Options shape the export.
type Options struct {
	// Issuer qualifies client ids: the actor identifier system is Issuer +
	// "/client_id".
	Issuer string
	// Custodian is the organisation reference ("Organization/…"); "" omits it.
	Custodian string
	// Test marks the resource as test data (meta.security HTEST), as the
	// sandbox does for everything it makes.
	Test bool
}

// Export returns the Consent of a grant as R4 JSON and as the validated proto.
func Export(g consent.Grant, o Options) ([]byte, *cpb.Consent, error) {
	b, err := json.Marshal(resource(g, o))
	if err != nil {
		return nil, nil, err
	}
	pb, err := Validate(b)
	if err != nil {
		return nil, nil, err
	}
	return b, pb, nil
}

// Validate parses R4 Consent JSON with google/fhir/go and returns it typed.
func Validate(b []byte) (*cpb.Consent, error) {
	cr, err := r4.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("fhirconsent: invalid R4 Consent: %w", err)
	}
	c := cr.GetConsent()
	if c == nil {
		return nil, fmt.Errorf("fhirconsent: not a Consent resource")
	}
	return c, nil
}

func coding(system, code string) map[string]any {
	return map[string]any{"system": system, "code": code}
}

func concept(system, code string) map[string]any {
	return map[string]any{"coding": []any{coding(system, code)}}
}

func instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func resource(g consent.Grant, o Options) map[string]any {
	status := "active"
	if g.Status != consent.Active {
		status = "inactive"
	}
	set, _ := scopes.ParseLenient(g.Scope)
	actions := []any{concept(ConsentAction, "access")}
	var classes []any
	types := map[string]bool{}
	writes := false
	for sc := range set.All() {
		if sc.Kind() != scopes.Resource {
			continue
		}
		writes = writes || sc.Perms()&(scopes.Create|scopes.Update|scopes.Delete) != 0
		if sc.Type() != "*" && !types[sc.Type()] {
			types[sc.Type()] = true
			classes = append(classes, coding(ResourceTypes, sc.Type()))
		}
	}
	if writes {
		actions = append(actions, concept(ConsentAction, "correct"))
	}
	provision := map[string]any{
		"type": "permit",
		"actor": []any{map[string]any{
			"role":      concept(ParticipantType, "IRCP"),
			"reference": map[string]any{"identifier": map[string]any{"system": o.Issuer + "/client_id", "value": g.ClientID}, "display": g.AppName},
		}},
		"action": actions,
	}
	if !g.Created.IsZero() {
		period := map[string]any{"start": instant(g.Created)}
		end := g.Expires
		if g.Status != consent.Active && !g.RevokedAt.IsZero() {
			end = g.RevokedAt
		}
		if !end.IsZero() {
			period["end"] = instant(end)
		}
		provision["period"] = period
	}
	if len(classes) > 0 {
		provision["class"] = classes
	}
	var denies []any
	for _, tags := range [][]string{consent.SensitiveTags, consent.HighlySensitiveTags, consent.SegmentedTags} {
		for _, tag := range tags {
			if !slices.Contains(g.Clearance.Tags, tag) {
				denies = append(denies, map[string]any{"type": "deny", "securityLabel": []any{coding(ActCode, tag)}})
			}
		}
	}
	if len(denies) > 0 {
		provision["provision"] = denies
	}
	r := map[string]any{
		"resourceType": "Consent",
		"id":           g.ID,
		"status":       status,
		"scope":        concept(ConsentScope, "patient-privacy"),
		"category":     []any{concept("http://loinc.org", "59284-0")},
		"policyRule":   concept(ActCode, "OPTIN"),
		"provision":    provision,
	}
	if g.Patient != "" {
		r["patient"] = map[string]any{"reference": "Patient/" + g.Patient}
	}
	if !g.Created.IsZero() {
		r["dateTime"] = instant(g.Created)
	}
	if g.UserID != "" {
		r["performer"] = []any{map[string]any{"identifier": map[string]any{"system": o.Issuer + "/user", "value": g.UserID}}}
	}
	if o.Custodian != "" {
		r["organization"] = []any{map[string]any{"reference": o.Custodian}}
	}
	if g.PolicyURI != "" {
		r["policy"] = []any{map[string]any{"uri": g.PolicyURI}}
	}
	if o.Test {
		r["meta"] = map[string]any{"security": []any{coding(ActReason, "HTEST")}}
	}
	return r
}
