package fhirproxy

import (
	"slices"
	"strings"
)

// Included records. A search's _include and _revinclude bring records the
// server includes because of its matches. Each is judged on its own; but
// one the server included because of a match the proxy removed (withheld,
// or outside a constraint) tells, by being there, what that match refers
// to, or what refers to it. Found with the sandbox's FuzzSearchesAgree:
// pt-sensitive's app searching its laboratory results one a page with
// _include=Observation:encounter got, on the page whose only match was the
// HIV test its clearance withholds, the encounter the test was drawn at.
//
// So where a record has been removed, an included record goes only when
// it is linked to a record kept: a kept record refers to it, or it refers
// to one (access.includes; Provenances are held to the records they are
// about anyway: provenanceKept). Presence, never absence: that it shows no
// link to a removed match proves nothing, since a match answered in part
// may lack the link that brought the record (found by probing the
// sandbox: with _summary=text, a clinician got the encounter only a
// withheld HIV test refers to, the test's reference to it left out). A
// record kept is a match; an included record counts as one only where the
// search iterates (:iterate), since otherwise only a match brings an
// include; an included record left out counts as removed. The links are
// read from the records as answered: with _elements, the proxy asks for
// the elements an _include follows too (includeElements), or a match kept
// would come without the link that brought the record; a summary, which
// leaves links out, is refused with includes where records may be removed
// (but _summary=true with named includes, whose links R4 may mark as
// summary elements). Servers write a page's matches before what they
// include; an include written before the match that brought it is judged
// by what was read until then, in a whole Bundle as in a streamed one,
// which agree.

// inclusion is what an included record is judged by: the records kept so
// far and what they refer to (local Type/id), and the records removed,
// each set bounded by maxKeys (past it, an include's links to the records
// beyond are not seen, and it is dropped).
type inclusion struct {
	kept, keptRefs, gone map[string]bool
}

// note notes a record kept or removed (raw, its resource).
func (c *inclusion) note(a *access, p *projection, raw []byte, kept bool) {
	if c.kept == nil {
		c.kept, c.keptRefs, c.gone = map[string]bool{}, map[string]bool{}, map[string]bool{}
	}
	if !kept {
		if len(c.gone) < maxKeys {
			c.gone[p.ResourceType+"/"+p.ID] = true
		}
		return
	}
	if len(c.kept) < maxKeys {
		c.kept[p.ResourceType+"/"+p.ID] = true
	}
	_ = eachString(raw, func(v []byte, reference bool, _, _ int64) {
		if k, ok := a.localRef(string(v)); reference && ok && len(c.keptRefs) < maxKeys {
			c.keptRefs[k] = true
		}
	})
}

// noteEntry notes an entry as judged (kept or not): a match kept or
// removed; an included record that does not go, as removed (what is linked
// to it alone goes neither: an include of an include, with :iterate); and
// an included record that goes, as kept only where the search iterates.
// Otherwise an include kept is no record that justifies another: an
// encounter the withheld HIV test refers to, itself referring to the
// patient some kept match brought, went (found by FuzzSearchesAgree, the
// sandbox: a clinician's _include=* got the encounter the withheld test
// was drawn at).
func (c *inclusion) noteEntry(a *access, e *bundleEntry, raw []byte, kept bool) {
	switch {
	case !e.notMatch:
		c.note(a, &e.res, raw, kept)
	case !kept:
		c.note(a, &e.res, raw, false)
	case a.iterates:
		c.note(a, &e.res, raw, true)
	}
}

// betrays reports whether an included record (raw, its resource) goes
// unjustified: a record has been removed, and it is linked to no record
// kept. An OperationOutcome a server adds to a page (search mode outcome)
// is linked to none, and goes; so does a Provenance a _revinclude of
// Provenances brings, which goes only where each record it is about is
// kept or read (access.provenanceKept).
func (c *inclusion) betrays(a *access, p *projection, raw []byte) bool {
	if len(c.gone) == 0 || p.ResourceType == "OperationOutcome" || p.ResourceType == "Provenance" && a.provenances {
		return false
	}
	kept := c.keptRefs[p.ResourceType+"/"+p.ID]
	_ = eachString(raw, func(v []byte, reference bool, _, _ int64) {
		if k, ok := a.localRef(string(v)); reference && ok {
			kept = kept || c.kept[k]
		}
	})
	return !kept
}

// includesEverything reports whether a search asks _include=* (every
// reference of its matches), with any modifier or target type.
func includesEverything(in *Interaction) bool {
	return slices.ContainsFunc(in.Params, func(prm Param) bool {
		_, param, _ := strings.Cut(prm.Value, ":")
		return strings.HasPrefix(prm.Name, "_include") && (prm.Value == "*" || strings.HasPrefix(prm.Value, "*:") || param == "*" || strings.HasPrefix(param, "*:"))
	})
}

// asksIncludes reports whether a search may ask for included records: a
// parameter named _include or _revinclude, with any modifier, or any name
// that begins so (an unknown one a server may read as one).
func asksIncludes(in *Interaction) bool {
	for _, prm := range in.Params {
		if strings.HasPrefix(prm.Name, "_include") || strings.HasPrefix(prm.Name, "_revinclude") {
			return true
		}
	}
	return false
}

// includeRoots are the R4 search parameters (Type:param) that _include
// may follow whose root element is not the parameter's name in camel case
// (a DocumentReference's encounter is in its context; an Encounter's
// practitioner is a participant's individual).
var includeRoots = map[string]string{
	"DocumentReference:encounter": "context", "DocumentReference:related": "context",
	"Encounter:practitioner": "participant", "Appointment:actor": "participant", "Appointment:practitioner": "participant",
	"Appointment:patient": "participant", "Appointment:location": "participant", "AppointmentResponse:practitioner": "actor",
	"AppointmentResponse:patient": "actor", "AppointmentResponse:location": "actor",
	"MedicationRequest:intended-performer": "performer", "MedicationRequest:intended-dispenser": "dispenseRequest",
	"Condition:evidence-detail": "evidence", "CarePlan:activity-reference": "activity", "CarePlan:performer": "activity",
	"CarePlan:condition": "addresses",
}

// includeElements are the elements the search's _include parameters
// follow in its matches (Observation:encounter follows encounter,
// has-member hasMember; patient, subject or patient; medication,
// medicationReference; the root elements of includeRoots), so that with
// _elements the links that bring an included record come with the
// matches. A parameter whose element is named otherwise, and is not in
// includeRoots, is not followed: its includes are then judged without the
// link.
func includeElements(in *Interaction) []string {
	var out []string
	for _, prm := range in.Params {
		if name, _, _ := strings.Cut(prm.Name, ":"); name != "_include" {
			continue
		}
		typ, param, _ := strings.Cut(prm.Value, ":")
		param, _, _ = strings.Cut(param, ":")
		if param == "" || param == "*" {
			continue
		}
		if root, ok := includeRoots[typ+":"+param]; ok {
			out = append(out, root)
			continue
		}
		switch param {
		case "patient":
			out = append(out, "subject", "patient")
			continue
		case "medication": // medication[x]: the reference is medicationReference
			out = append(out, "medicationReference")
			continue
		}
		parts := strings.Split(param, "-")
		for i := 1; i < len(parts); i++ {
			if parts[i] != "" {
				parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
			}
		}
		out = append(out, strings.Join(parts, ""))
	}
	return out
}
