package scopes

import (
	"fmt"
	"strings"
)

// A Description says in plain language what one scope lets an app do, for
// consent screens and app listings.
type Description struct {
	Scope      string // the scope token
	Text       string // one sentence, e.g. "Read and search lab results … about the patient in context."
	Data       string // which data, e.g. "observations (vital signs, lab results and other measurements)"
	Who        string // whose data, e.g. "the patient in context"
	Reads      bool   // the scope lets the app read or search data
	Writes     bool   // the scope lets the app create, change or delete data in the record
	Persistent bool   // the scope keeps access after the user leaves (offline_access)
	Future     bool   // the scope reaches kinds of data added in the future (the * type)
	// Reference reports that the data is about no patient: terminology,
	// definitions or directories ([Wording.ReferenceTypes]).
	Reference bool
}

// A SetDescription describes a whole scope set.
type SetDescription struct {
	Items      []Description
	Summary    string // one paragraph for the top of a consent page
	Reads      bool
	Writes     bool
	Persistent bool
}

// Wording holds every phrase [Wording.Describe] uses, so a host can rephrase
// or translate the consent text in one place. Start from [English] and
// change what you need; formats use fmt verbs as documented on each field.
type Wording struct {
	// Verbs for the letters, in cruds order.
	Create, Read, Update, Delete, Search string
	// Who each context reaches.
	Patient, User, System string
	// Types names resource types; a missing type falls back to its FHIR name.
	Types map[string]string
	// AllTypes names the "*" type.
	AllTypes string
	// Values names constraint values (the code after "system|").
	Values map[string]string
	// Resource is the sentence for a resource scope: %[1]s verbs,
	// %[2]s data, %[3]s constraint (may be empty), %[4]s who.
	Resource string
	// ReferenceTypes are the types whose records are about no patient
	// (terminology, definitions, directories): a patient/ scope on one does
	// not reach anyone's health record, and saying "about the patient"
	// would mislead. Their sentence is ReferenceResource, with the verbs
	// of Resource and no who.
	ReferenceTypes map[string]bool
	// ReferenceResource is the sentence for a resource scope on a
	// reference type: %[1]s verbs, %[2]s data, %[3]s constraint.
	ReferenceResource string
	// Constraint introduces a constraint: %s is the list of conditions.
	Constraint string
	// Condition is one name=value condition: %[1]s name, %[2]s value.
	Condition string
	// And and Or join list items.
	And, Or string
	// Sentences for the other kinds; %s is the token or the context type.
	Launch, LaunchContext, LaunchRole, OpenID, FHIRUser, Profile string
	Offline, Online, MessagingUI, MessagingScratchpad, Extension string
	// Summary parts: the opening, and the clauses for reading, writing and
	// persistent access; they are joined with And.
	SummaryStart, SummaryReads, SummaryWrites, SummaryPersistent, SummaryNothing string
	// SummaryReference is the reading clause of a set that reads reference
	// types only.
	SummaryReference string
	// FutureNote is appended to sentences about the "*" type.
	FutureNote string
}

// English returns the default English wording. Each call returns a fresh
// value the caller may change.
func English() *Wording {
	return &Wording{
		Create: "add", Read: "read", Update: "change", Delete: "delete", Search: "search",
		Patient: "the patient in context",
		User:    "any patient you are allowed to see",
		System:  "all patients the app is authorised for, without a user present",
		Types: map[string]string{
			"Patient":             "demographics (name, birth date, contact details)",
			"Observation":         "observations (vital signs, lab results and other measurements)",
			"Condition":           "conditions and diagnoses",
			"MedicationRequest":   "medication orders and prescriptions",
			"MedicationStatement": "medications taken",
			"AllergyIntolerance":  "allergies and intolerances",
			"Immunization":        "immunizations",
			"Procedure":           "procedures",
			"Encounter":           "visits and hospital stays",
			"Appointment":         "appointments",
			"DocumentReference":   "clinical notes and documents",
			"DiagnosticReport":    "diagnostic reports",
			"CarePlan":            "care plans",
			"Practitioner":        "information about clinicians",
			"PractitionerRole":    "clinicians' roles",
			"Organization":        "information about organisations",
			"Coverage":            "insurance coverage",
			"ValueSet":            "code lists",
			"CodeSystem":          "code systems",
			"ConceptMap":          "code mappings",
			"Questionnaire":       "questionnaire forms",
			"Medication":          "medication definitions",
			"Location":            "locations",
			"HealthcareService":   "healthcare services",
		},
		ReferenceTypes: map[string]bool{"ValueSet": true, "CodeSystem": true, "ConceptMap": true, "NamingSystem": true,
			"Questionnaire": true, "StructureDefinition": true, "Library": true, "PlanDefinition": true, "ActivityDefinition": true,
			"Medication": true, "Substance": true, "Practitioner": true, "PractitionerRole": true, "Organization": true,
			"Location": true, "HealthcareService": true, "Endpoint": true},
		ReferenceResource: "%[1]s %[2]s%[3]s (reference data, not a health record).",
		AllTypes:          "all kinds of health data",
		Values: map[string]string{
			"laboratory":     "laboratory results",
			"vital-signs":    "vital signs",
			"social-history": "social history",
			"imaging":        "imaging results",
			"survey":         "questionnaire answers",
			"exam":           "examination findings",
			"final":          "final",
			"active":         "active",
		},
		Resource:            "%[1]s %[2]s%[3]s about %[4]s.",
		Constraint:          " (only %s)",
		Condition:           "%[1]s: %[2]s",
		And:                 "and",
		Or:                  "or",
		Launch:              "Open in the context of the record you are viewing.",
		LaunchContext:       "Know which %s you are working with.",
		LaunchRole:          "Know which %[1]s you are working with, in the role %[2]s.",
		OpenID:              "Confirm who you are.",
		FHIRUser:            "Know your identity in the health record.",
		Profile:             "Know your identity in the health record.",
		Offline:             "Keep access when you are not using the app, until you revoke it.",
		Online:              "Keep access while you remain signed in.",
		MessagingUI:         "Ask the health record to change what it shows.",
		MessagingScratchpad: "Save draft changes in the health record for review.",
		Extension:           "Use a permission defined by this organisation: %s.",
		SummaryStart:        "This app asks to",
		SummaryReads:        "read health data",
		SummaryWrites:       "change the health record",
		SummaryPersistent:   "keep access when you are not using it",
		SummaryNothing:      "use no health data",
		SummaryReference:    "read reference data such as code lists",
		FutureNote:          " This includes kinds of data added in the future.",
	}
}

// Describe describes one scope in the default English wording.
func Describe(s Scope) Description { return English().Describe(s) }

// DescribeSet describes a scope set in the default English wording.
func DescribeSet(set Set) SetDescription { return English().DescribeSet(set) }

// Describe describes one scope.
func (w *Wording) Describe(s Scope) Description {
	d := Description{Scope: s.text}
	switch s.kind {
	case Resource:
		d.Reads = s.perms&(Read|Search) != 0
		d.Writes = s.perms&(Create|Update|Delete) != 0
		d.Future = s.typ == "*"
		d.Data = w.typeName(s.typ)
		d.Reference = w.ReferenceTypes[s.typ]
		if d.Reference {
			d.Text = capitalise(fmt.Sprintf(w.ReferenceResource, w.verbs(s.perms), d.Data, w.constraint(s.params)))
			break
		}
		d.Who = w.who(s.context)
		d.Text = capitalise(fmt.Sprintf(w.Resource, w.verbs(s.perms), d.Data, w.constraint(s.params), d.Who))
		if d.Future {
			d.Text += w.FutureNote
		}
	case Launch:
		d.Text = w.Launch
	case LaunchContext:
		if role := s.Role(); role != "" {
			d.Text = fmt.Sprintf(w.LaunchRole, s.typ, role)
		} else {
			d.Text = fmt.Sprintf(w.LaunchContext, s.typ)
		}
	case Identity:
		switch s.text {
		case "openid":
			d.Text = w.OpenID
		case "fhirUser":
			d.Text = w.FHIRUser
		default:
			d.Text = w.Profile
		}
	case Refresh:
		d.Persistent = s.text == "offline_access"
		if d.Persistent {
			d.Text = w.Offline
		} else {
			d.Text = w.Online
		}
	case Messaging:
		if s.text == "messaging/ui" {
			d.Text = w.MessagingUI
		} else {
			d.Text = w.MessagingScratchpad
		}
	case Extension, Custom:
		d.Text = fmt.Sprintf(w.Extension, s.text)
	}
	return d
}

// DescribeSet describes every scope of a set and summarises them.
func (w *Wording) DescribeSet(set Set) SetDescription {
	sd := SetDescription{Items: make([]Description, 0, len(set.s))}
	health := false // reads of someone's health record
	for _, sc := range set.s {
		d := w.Describe(sc)
		health = health || d.Reads && !d.Reference
		sd.Reads = sd.Reads || d.Reads
		sd.Writes = sd.Writes || d.Writes
		sd.Persistent = sd.Persistent || d.Persistent
		sd.Items = append(sd.Items, d)
	}
	var clauses []string
	switch {
	case health:
		clauses = append(clauses, w.SummaryReads)
	case sd.Reads:
		clauses = append(clauses, w.SummaryReference)
	}
	if sd.Writes {
		clauses = append(clauses, w.SummaryWrites)
	}
	if sd.Persistent {
		clauses = append(clauses, w.SummaryPersistent)
	}
	if len(clauses) == 0 {
		clauses = append(clauses, w.SummaryNothing)
	}
	sd.Summary = w.SummaryStart + " " + w.list(clauses, w.And) + "."
	return sd
}

func (w *Wording) typeName(t string) string {
	if t == "*" {
		return w.AllTypes
	}
	if name, ok := w.Types[t]; ok {
		return name
	}
	return t + " records"
}

func (w *Wording) who(c Context) string {
	switch c {
	case Patient:
		return w.Patient
	case User:
		return w.User
	}
	return w.System
}

func (w *Wording) verbs(p Perms) string {
	var vs []string
	for i, v := range [...]string{w.Read, w.Search, w.Create, w.Update, w.Delete} {
		if p.Has([...]Perms{Read, Search, Create, Update, Delete}[i]) {
			vs = append(vs, v)
		}
	}
	return w.list(vs, w.And)
}

func (w *Wording) constraint(params []Param) string {
	if len(params) == 0 {
		return ""
	}
	conds := make([]string, len(params))
	for i, p := range params {
		vals := strings.Split(p.Value, ",")
		for j, v := range vals {
			vals[j] = w.value(v)
		}
		conds[i] = fmt.Sprintf(w.Condition, p.Name, w.list(vals, w.Or))
	}
	return fmt.Sprintf(w.Constraint, w.list(conds, w.And))
}

// value names a constraint value: the code of a system|code token, named by
// Values when known.
func (w *Wording) value(v string) string {
	if i := strings.LastIndexByte(v, '|'); i >= 0 && i < len(v)-1 {
		v = v[i+1:]
	}
	if name, ok := w.Values[v]; ok {
		return name
	}
	return v
}

func (w *Wording) list(items []string, conj string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	case 2:
		return items[0] + " " + conj + " " + items[1]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}

func capitalise(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
