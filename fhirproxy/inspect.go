package fhirproxy

import (
	"encoding/json"

	"github.com/smartkit/smartkit/consent"
)

// projection is the little of a resource the proxy reads: type, id,
// labels, and the references that place it in a patient's compartment.
type projection struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		Security []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"security"`
	} `json:"meta"`
	Subject     ref `json:"subject"`
	Patient     ref `json:"patient"`
	Beneficiary ref `json:"beneficiary"`
	Participant []struct {
		Actor ref `json:"actor"`
	} `json:"participant"`
}

type ref struct {
	Reference string `json:"reference"`
}

const (
	confidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	actCodeSystem         = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
)

// labels returns a resource's confidentiality (N when absent) and sensitivity tags.
func (p *projection) labels() (consent.Confidentiality, []string) {
	conf := consent.Normal
	var tags []string
	for _, s := range p.Meta.Security {
		switch s.System {
		case confidentialitySystem:
			c := consent.Confidentiality(s.Code)
			if c.Rank() > conf.Rank() || conf == consent.Normal {
				conf = c
			}
		case actCodeSystem:
			tags = append(tags, s.Code)
		}
	}
	return conf, tags
}

// inCompartment reports whether the resource provably belongs to the
// patient's compartment: it is the Patient, or one of its reference fields
// names the patient. Absence of a reference never admits (fail closed).
func (p *projection) inCompartment(patient string) bool {
	if p.ResourceType == "Patient" {
		return p.ID == patient
	}
	ct, ok := compartment[p.ResourceType]
	if !ok {
		return false
	}
	for _, f := range ct.fields {
		switch f {
		case "subject":
			if refersTo(p.Subject.Reference, patient, false) {
				return true
			}
		case "patient":
			if refersTo(p.Patient.Reference, patient, false) {
				return true
			}
		case "beneficiary":
			if refersTo(p.Beneficiary.Reference, patient, false) {
				return true
			}
		case "participant.actor":
			for _, pa := range p.Participant {
				if refersTo(pa.Actor.Reference, patient, false) {
					return true
				}
			}
		}
	}
	return false
}

// verdict decides one resource of a response for an access.
type verdict int

const (
	keep     verdict = iota
	drop             // outside the compartment or the token's types
	withhold         // beyond the clearance
)

// judge applies compartment, type and label rules to one resource.
func (a *access) judge(p *projection) verdict {
	if a.patient != "" && !p.inCompartment(a.patient) && !a.shared(p.ResourceType) {
		return drop
	}
	if !a.readable(p.ResourceType) {
		return drop
	}
	conf, tags := p.labels()
	if !a.clearance.Allows(conf, tags) {
		return withhold
	}
	return keep
}

// filterBundle removes the entries the access may not see from a Bundle and
// returns the new body, whether anything was removed, and what was kept
// (for the audit trail). The Bundle's other members pass through as they
// were; a total that would count removed entries is dropped, and the
// Bundle is labelled REDACTED when something was withheld for its labels.
func (a *access) filterBundle(body []byte, top map[string]json.RawMessage) ([]byte, bool, []*projection, error) {
	var entries []json.RawMessage
	if raw, ok := top["entry"]; ok {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, false, nil, err
		}
	}
	kept := entries[:0]
	var seen []*projection
	removed, withheld := false, false
	for _, e := range entries {
		var entry struct {
			Resource json.RawMessage `json:"resource"`
		}
		if err := json.Unmarshal(e, &entry); err != nil {
			return nil, false, nil, err
		}
		if len(entry.Resource) == 0 { // a batch response entry without a resource
			kept = append(kept, e)
			continue
		}
		var p projection
		if err := json.Unmarshal(entry.Resource, &p); err != nil {
			return nil, false, nil, err
		}
		if p.ResourceType == "OperationOutcome" {
			kept = append(kept, e)
			continue
		}
		switch a.judge(&p) {
		case keep:
			kept = append(kept, e)
			seen = append(seen, &p)
		case withhold:
			removed, withheld = true, true
		default:
			removed = true
		}
	}
	if !removed {
		return body, false, seen, nil
	}
	delete(top, "total")
	if len(kept) > 0 {
		raw, err := json.Marshal(kept)
		if err != nil {
			return nil, false, nil, err
		}
		top["entry"] = raw
	} else {
		delete(top, "entry")
	}
	if withheld {
		top["meta"] = json.RawMessage(`{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"REDACTED"}]}`)
	}
	out, err := json.Marshal(top)
	return out, true, seen, err
}
