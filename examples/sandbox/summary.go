package main

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Parts of records. A search may ask for part of each record, as FHIR R4
// defines: _elements (the root elements listed, with resourceType, id and
// the type's mandatory ones) or _summary (count: the total alone; text:
// text, id, meta and the mandatory elements; true: the elements R4 marks
// as summary ones; data: all but text; false: all), and so may a read and
// a vread (but count). A record answered in part is marked SUBSETTED in
// meta.tag. Included records are answered whole.

// mandatory are the root elements each type of the data set must have
// (R4's cardinality 1..): what _summary=text and _elements keep besides.
var mandatory = map[string][]string{
	"Observation": {"status", "code"}, "Condition": {"subject"}, "Encounter": {"status", "class"},
	"MedicationRequest":  {"status", "intent", "medicationCodeableConcept", "medicationReference", "subject"},
	"AllergyIntolerance": {"patient"}, "Appointment": {"status", "participant"}, "DocumentReference": {"status", "content"},
	"Provenance": {"target", "recorded", "agent"}, "Group": {"type", "actual"}, "ValueSet": {"status"},
	"CodeSystem": {"status", "content"},
}

// summaries are the root elements R4 marks as summary elements (isSummary
// in the resource's StructureDefinition) of each type the sandbox serves,
// a choice element by its name and [x]: what _summary=true keeps, with
// resourceType. Some elements an app or a proxy may search or judge by are
// not among them: an Observation's or a Condition's category, an
// Appointment's participants, an Encounter's period.
var summaries = map[string][]string{
	"AllergyIntolerance": {"id", "meta", "implicitRules", "identifier", "clinicalStatus", "verificationStatus", "type",
		"category", "criticality", "code", "patient", "asserter"},
	"Appointment": {"id", "meta", "implicitRules", "identifier", "status", "cancelationReason", "serviceCategory",
		"serviceType", "specialty", "appointmentType", "reasonCode", "start", "end"},
	"Binary": {"id", "meta", "implicitRules", "contentType", "securityContext"},
	"CodeSystem": {"id", "meta", "implicitRules", "url", "identifier", "version", "name", "title", "status", "experimental",
		"date", "publisher", "contact", "useContext", "jurisdiction", "caseSensitive", "valueSet", "hierarchyMeaning",
		"compositional", "versionNeeded", "content", "supplements", "count", "filter", "property"},
	"Condition": {"id", "meta", "implicitRules", "identifier", "clinicalStatus", "verificationStatus", "code", "bodySite",
		"subject", "encounter", "onset[x]", "recordedDate", "recorder", "asserter"},
	"DocumentReference": {"id", "meta", "implicitRules", "masterIdentifier", "identifier", "status", "docStatus", "type",
		"category", "subject", "date", "author", "relatesTo", "description", "securityLabel", "content", "context"},
	"Encounter": {"id", "meta", "implicitRules", "identifier", "status", "class", "type", "serviceType", "subject",
		"episodeOfCare", "participant", "appointment", "reasonCode", "reasonReference", "diagnosis"},
	"Group": {"id", "meta", "implicitRules", "identifier", "active", "type", "actual", "code", "name", "quantity", "managingEntity"},
	"MedicationRequest": {"id", "meta", "implicitRules", "status", "intent", "priority", "doNotPerform", "reported[x]",
		"medication[x]", "subject", "authoredOn", "requester", "performerType", "instantiatesCanonical", "instantiatesUri",
		"basedOn", "groupIdentifier"},
	"Observation": {"id", "meta", "implicitRules", "identifier", "basedOn", "partOf", "status", "code", "subject", "focus",
		"encounter", "effective[x]", "issued", "performer", "value[x]", "hasMember", "derivedFrom", "component"},
	"Patient": {"id", "meta", "implicitRules", "identifier", "active", "name", "telecom", "gender", "birthDate", "deceased[x]",
		"address", "managingOrganization", "link"},
	"Practitioner": {"id", "meta", "implicitRules", "identifier", "active", "name", "telecom", "address", "gender", "birthDate"},
	"Provenance":   {"id", "meta", "implicitRules", "target", "recorded"},
	"ValueSet": {"id", "meta", "implicitRules", "url", "identifier", "version", "name", "title", "status", "experimental",
		"date", "publisher", "contact", "useContext", "jurisdiction", "immutable"},
}

// writePart answers a read or a vread: the record, or the part q asks
// for (_elements, _summary but count).
func (s *fhirServer) writePart(w http.ResponseWriter, res resource, q url.Values) {
	part, bad := readPart(res, q)
	if bad != "" {
		s.outcome(w, http.StatusBadRequest, "not-supported", bad)
		return
	}
	s.write(w, http.StatusOK, part)
}

// readPart is the part of a record a read asks for (q: _elements or
// _summary, or neither), or why it cannot be answered.
func readPart(res resource, q url.Values) (resource, string) {
	part, bad := partsOf(res["resourceType"].(string), q)
	if bad == "" && part.count {
		bad = "_summary=count is for searches"
	}
	if bad != "" {
		return nil, bad
	}
	return part.of(res), ""
}

// parts is what a search asks of each record.
type parts struct {
	count    bool     // _summary=count
	elements []string // the root elements kept (nil: all)
	data     bool     // _summary=data: all but text
}

// partsOf reads _summary and _elements (one of them, once), or says why
// they cannot be answered.
func partsOf(typ string, q url.Values) (parts, string) {
	summary, elements := q["_summary"], q["_elements"]
	switch {
	case len(summary) > 1 || len(elements) > 1:
		return parts{}, "_summary and _elements may each be given once"
	case len(summary) == 1 && len(elements) == 1:
		return parts{}, "_summary and _elements may not be given together"
	case len(elements) == 1:
		keep, ok := elementsFor(typ, strings.Split(elements[0], ","))
		if !ok {
			return parts{}, "_elements lists root elements"
		}
		return parts{elements: keep}, ""
	case len(summary) == 0:
		return parts{}, ""
	}
	switch summary[0] {
	case "count":
		return parts{count: true}, ""
	case "text":
		return parts{elements: append([]string{"resourceType", "id", "meta", "text"}, mandatory[typ]...)}, ""
	case "data":
		return parts{data: true}, ""
	case "false":
		return parts{}, ""
	case "true":
		if summaries[typ] == nil {
			return parts{}, "the sandbox does not know the summary elements of " + typ + ": ask for the elements wanted with _elements"
		}
		return parts{elements: append([]string{"resourceType"}, summaries[typ]...)}, ""
	}
	return parts{}, "_summary is true, text, data, count or false"
}

// elementsFor returns what an _elements list keeps of a record of typ:
// resourceType, id, the type's mandatory elements and the root elements
// it lists for typ (element, or typ.element; another type's are left
// aside), or nil, the whole record, when it lists none for typ. It is not
// ok when it lists a nested element.
func elementsFor(typ string, list []string) (keep []string, ok bool) {
	for _, e := range list {
		if t, name, qualified := strings.Cut(e, "."); qualified && t == typ {
			e = name
		} else if qualified && t != "" && t[0] >= 'A' && t[0] <= 'Z' {
			continue // another type's
		}
		if e == "" || strings.ContainsAny(e, ".[]") {
			return nil, false
		}
		keep = append(keep, e)
	}
	if keep == nil {
		return nil, true
	}
	return append(append([]string{"resourceType", "id"}, mandatory[typ]...), keep...), true
}

// keeps reports whether the part keeps a record's root element k: listed,
// or a choice's (valueQuantity for value[x]).
func (p parts) keeps(k string) bool {
	return slices.ContainsFunc(p.elements, func(e string) bool {
		choice, ok := strings.CutSuffix(e, "[x]")
		return e == k || ok && len(k) > len(choice) && strings.HasPrefix(k, choice) && k[len(choice)] >= 'A' && k[len(choice)] <= 'Z'
	})
}

// of returns the part of a record asked for: itself, or a copy with what
// is kept, marked SUBSETTED.
func (p parts) of(res resource) resource {
	if p.elements == nil && !p.data {
		return res
	}
	out := resource{}
	for k, v := range res {
		if p.data && k != "text" || p.keeps(k) {
			out[k] = v
		}
	}
	meta := map[string]any{}
	if m, ok := out["meta"].(map[string]any); ok {
		maps.Copy(meta, m)
	}
	meta["tag"] = append(slices.Clone(asList(meta["tag"])), map[string]any{
		"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
	out["meta"] = meta
	return out
}
