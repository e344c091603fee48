package balp

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/r4"
)

// Code systems and profiles.
const (
	DCM             = "http://dicom.nema.org/resources/ontology/DCM"
	AuditEventType  = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	Restful         = "http://hl7.org/fhir/restful-interaction"
	EntityType      = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	ObjectRole      = "http://terminology.hl7.org/CodeSystem/object-role"
	ParticipantType = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	SourceType      = "http://terminology.hl7.org/CodeSystem/security-source-type"
	NetworkType     = "http://hl7.org/fhir/network-type"
	AuthZSubType    = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
	BasicEntityType = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	UserAgentTypes  = "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes"
	ProfileBase     = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
	SmartkitEvent   = "https://smartkit.dev/CodeSystem/audit-event"
)

// Options say who records: the observer (this node) and the server identity.
type Options struct {
	Observer string // source.observer display, e.g. the node's host name
	Server   string // the FHIR base or issuer, as agent[server]
}

func coding(system, code string) map[string]any {
	return map[string]any{"system": system, "code": code}
}

func concept(system, code string) map[string]any {
	return map[string]any{"coding": []any{coding(system, code)}}
}

// shape returns type, subtype, action and profile for an event.
func shape(e audit.Event) (typ, subtype map[string]any, action, profile string) {
	patient := e.Patient != ""
	variant := func(base string) string {
		if patient {
			return "IHE.BasicAudit.Patient" + base
		}
		return "IHE.BasicAudit." + base
	}
	switch e.Type {
	case audit.ResourceAllowed, audit.ResourceRefused:
		typ = coding(AuditEventType, "rest")
		switch e.Interaction {
		case "read", "vread", "history-instance":
			action, profile = "R", variant("Read")
		case "create":
			action, profile = "C", variant("Create")
		case "update", "patch":
			action, profile = "U", variant("Update")
		case "delete":
			action, profile = "D", variant("Delete")
		default:
			action, profile = "E", variant("Query")
		}
		subtype = coding(Restful, restfulCode(e.Interaction))
	case audit.TokenIssued, audit.TokenRefreshed, audit.TokenRefused, audit.CodeIssued:
		typ, action, profile = coding(DCM, "110114"), "E", "IHE.IUA.71"
		subtype = coding("urn:ihe:event-type-code", "ITI-71")
		if e.Type == audit.TokenRefreshed {
			subtype = coding(SmartkitEvent, "token-refresh")
		}
	case audit.AuthorizeAllowed, audit.AuthorizeRefused, audit.ConsentGranted, audit.ConsentRefused:
		typ, action, profile = coding(DCM, "110113"), "E", "IHE.BasicAudit.AuthZconsent"
		subtype = coding(AuthZSubType, "AuthZ-Consent")
	case audit.LaunchMinted:
		typ, action = coding(DCM, "110100"), "E"
		subtype = coding(SmartkitEvent, "ehr-launch")
	default: // security alerts: reuse, replay, revocation, suspension, auth failures, policy changes
		typ, action = coding(DCM, "110113"), "E"
		subtype = coding(SmartkitEvent, strings.ReplaceAll(string(e.Type), ".", "-"))
	}
	return typ, subtype, action, profile
}

// restfulCodes are the codes of R4's restful-interaction code system.
var restfulCodes = []string{"read", "vread", "update", "patch", "delete", "history", "history-instance", "history-type",
	"history-system", "create", "search", "search-type", "search-system", "capabilities", "transaction", "batch", "operation"}

// restfulCode is the restful-interaction code of an event's interaction:
// a compartment search is a search of its type, and a bulk export's status
// and files are steps of the $export operation (the interaction itself
// goes as a second subtype, SmartkitEvent's: extraSubtype). Anything not
// in the code system is a search, as it always was for "".
func restfulCode(interaction string) string {
	switch interaction {
	case "search-compartment", "", "search":
		return "search-type"
	case "export-status", "export-file":
		return "operation"
	}
	if slices.Contains(restfulCodes, interaction) {
		return interaction
	}
	return "search-type"
}

// outcome maps to the AuditEvent outcome codes: 0 success, 4 minor failure
// (a client error), 8 serious failure (a refusal that matters to security).
func outcome(e audit.Event) string {
	switch {
	case e.Outcome != audit.Failure:
		return "0"
	case e.Severity == audit.Security:
		return "8"
	}
	return "4"
}

// subtypes are an event's subtype and, for a resource event whose
// interaction the restful code does not name exactly (a compartment
// search, a bulk export's status or file), smartkit's name for it.
func subtypes(e audit.Event, subtype map[string]any) []any {
	if (e.Type == audit.ResourceAllowed || e.Type == audit.ResourceRefused) && e.Interaction != "" && subtype["code"] != e.Interaction {
		return []any{subtype, coding(SmartkitEvent, e.Interaction)}
	}
	return []any{subtype}
}

// resource builds the AuditEvent of one record.
func resource(r audit.Record, o Options) map[string]any {
	e := r.Event
	typ, subtype, action, profile := shape(e)
	t := e.Time
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	ae := map[string]any{
		"resourceType": "AuditEvent",
		"type":         typ,
		"subtype":      subtypes(e, subtype),
		"action":       action,
		"recorded":     t.UTC().Format(time.RFC3339Nano),
		"outcome":      outcome(e),
		"source": map[string]any{
			"observer": map[string]any{"display": o.Observer},
			"type":     []any{coding(SourceType, "4")},
		},
	}
	if r.Seq > 0 {
		ae["id"] = fmt.Sprintf("%s-%d", safeID(e.Tenant), r.Seq)
	}
	if profile != "" {
		ae["meta"] = map[string]any{"profile": []any{ProfileBase + profile}}
	}
	if e.Reason != "" {
		ae["outcomeDesc"] = e.Reason
	}
	agents := []any{}
	if e.ClientID != "" {
		client := map[string]any{
			"type":      concept(DCM, "110150"),
			"who":       map[string]any{"identifier": map[string]any{"value": e.ClientID}},
			"requestor": e.UserID == "",
		}
		if e.SourceIP != "" {
			client["network"] = map[string]any{"address": e.SourceIP, "type": "2"}
		}
		agents = append(agents, client)
	}
	if e.UserID != "" {
		user := map[string]any{
			"type":      concept(ParticipantType, "IRCP"),
			"who":       map[string]any{"identifier": map[string]any{"value": e.UserID}},
			"requestor": true,
		}
		if e.FHIRUser != "" {
			user["altId"] = e.FHIRUser
		}
		if e.TokenID != "" {
			user["policy"] = []any{"urn:ietf:params:oauth:jti:" + e.TokenID} // BALP OAuth Minimal
		}
		agents = append(agents, user)
	}
	if o.Server != "" {
		agents = append(agents, map[string]any{
			"type":      concept(UserAgentTypes, "AuthzOauthService"),
			"who":       map[string]any{"display": o.Server},
			"requestor": false,
		})
	}
	if len(agents) == 0 {
		agents = append(agents, map[string]any{"who": map[string]any{"display": "smartkit"}, "requestor": false})
	}
	ae["agent"] = agents
	var entities []any
	for _, p := range append([]string{e.Patient}, e.Patients...) {
		if p == "" {
			continue
		}
		entities = append(entities, map[string]any{
			"what": map[string]any{"reference": "Patient/" + p},
			"type": coding(EntityType, "1"), "role": coding(ObjectRole, "1"),
		})
	}
	if e.Resource != "" || len(e.Labels) > 0 {
		// The data disclosed, with the security labels of what went out.
		data := map[string]any{"type": coding(EntityType, "2"), "role": coding(ObjectRole, "4")}
		if e.Resource != "" {
			data["what"] = what(e.Resource)
		}
		if len(e.Labels) > 0 {
			var labels []any
			for _, l := range e.Labels {
				label := map[string]any{"code": l}
				if system, code, ok := strings.Cut(l, "|"); ok && system != "" {
					label = map[string]any{"system": system, "code": code}
				}
				labels = append(labels, label)
			}
			data["securityLabel"] = labels
		}
		entities = append(entities, data)
	}
	for _, r := range e.Resources { // a batch's entries: each a domain resource the request named
		entities = append(entities, map[string]any{"what": what(r), "type": coding(EntityType, "2"), "role": coding(ObjectRole, "4")})
	}
	if e.ConsentID != "" {
		entities = append(entities, map[string]any{
			"what": map[string]any{"reference": "Consent/" + safeID(e.ConsentID)},
			"type": coding("http://hl7.org/fhir/resource-types", "Consent"),
		})
	}
	if e.RequestID != "" {
		entities = append(entities, map[string]any{
			"what": map[string]any{"identifier": map[string]any{"value": e.RequestID}},
			"type": coding(BasicEntityType, "XrequestId"),
		})
	}
	if e.Scopes != "" || e.GrantID != "" {
		var detail []any
		if e.Scopes != "" {
			detail = append(detail, map[string]any{"type": "scope", "valueString": e.Scopes})
		}
		if e.GrantID != "" {
			detail = append(detail, map[string]any{"type": "grant", "valueString": e.GrantID})
		}
		entities = append(entities, map[string]any{
			"type": coding(EntityType, "2"), "role": coding(ObjectRole, "13"), "detail": detail,
		})
	}
	if len(entities) > 0 {
		ae["entity"] = entities
	}
	return ae
}

// safeID makes a string usable as a FHIR id ([A-Za-z0-9\-\.]{1,64}).
func safeID(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	out := b.String()
	if out == "" {
		out = "default"
	}
	if len(out) > 64 {
		out = out[:64]
	}
	return out
}

// Export returns one record as R4 AuditEvent JSON, validated.
func Export(r audit.Record, o Options) ([]byte, error) {
	b, err := json.Marshal(resource(r, o))
	if err != nil {
		return nil, err
	}
	return b, Validate(b)
}

// Bundle returns a query result as an R4 searchset Bundle of AuditEvents,
// validated.
func Bundle(records []audit.Record, o Options) ([]byte, error) {
	entries := make([]any, 0, len(records))
	for _, r := range records {
		entries = append(entries, map[string]any{"resource": resource(r, o)})
	}
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(records), "entry": entries})
	if err != nil {
		return nil, err
	}
	return b, Validate(b)
}

// Validate parses R4 JSON with google/fhir/go and reports why it is not valid FHIR.
func Validate(b []byte) error {
	if _, err := r4.Parse(b); err != nil {
		return fmt.Errorf("balp: invalid R4 resource: %w", err)
	}
	return nil
}

// what is the Reference an entity names a resource by: Type/id as a
// reference, a type alone (a search's, a create's) as the Reference's type.
func what(r string) map[string]any {
	if !strings.Contains(r, "/") {
		return map[string]any{"type": r}
	}
	return map[string]any{"reference": r}
}
