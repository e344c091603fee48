package fhirproxy

import (
	"slices"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// projection is the little of a resource the proxy reads: type, id,
// labels, and the references that place it in a patient's compartment.
// It is read in the same pass that proves the JSON strict (decode), with
// member names matched exactly as a FHIR client would match them.
type projection struct {
	ResourceType string
	ID           string
	Meta         struct{ Security []coding }
	Subject      ref
	Patient      ref
	Beneficiary  ref
	// Individual is a ResearchSubject's, Candidate an EnrollmentRequest's:
	// the patient each is about; Actor an AppointmentResponse's, who
	// answers.
	Individual, Candidate, Actor ref
	Participant                  []struct{ Actor ref }
	// SecurityContext is a Binary's: the resource whose access rules it
	// shares (the DocumentReference of a document's content, say).
	SecurityContext ref
	// Target are a Provenance's targets, the records it is about, which
	// it is judged by with patient context (read as references wherever
	// a "target" member is an array of objects).
	Target []ref
	// Inner are the types of the resources a Bundle held as a resource
	// (a document, a collection) carries, at any depth; their labels are
	// in Meta.Security. It is judged by them too.
	Inner []string
}

type coding struct{ System, Code string }

type ref struct{ Reference string }

// parseResource reads one strict JSON resource's projection.
func parseResource(b []byte) (projection, error) {
	var p projection
	s := jsonstrict.NewScanner(b)
	err := p.decode(s, nil, nil)
	if err == nil {
		err = s.End()
	}
	return p, err
}

// decode reads the next value of s, which must be an object (a resource),
// into p; every member is checked, the ones p does not hold are skipped.
// entry, when set, reads the value of a top-level "entry" member; after,
// when set, is called after each member of what may still be a Bundle (no
// other resourceType read yet) with memberName of its name (taken
// before the value is read: a streaming window may move over the name) and
// the offset of its name.
// JSON null counts as absent, as it would for a FHIR client.
func (p *projection) decode(s *jsonstrict.Scanner, entry func() error, after func(name string, start int64) error) error {
	return s.Object(func(name []byte) error {
		start := s.MemberOffset()
		var kind string
		// Spans rebuild a Bundle: once the type is known to be another,
		// they are not needed.
		spans := after != nil && (p.ResourceType == "" || p.ResourceType == "Bundle")
		if spans {
			kind = memberName(name)
		}
		var err error
		switch string(name) {
		case "resourceType":
			var v []byte
			if v, err = s.String(); err == nil {
				p.ResourceType = typeName(v)
			}
		case "id":
			err = readString(s, &p.ID)
		case "meta":
			err = readSecurity(s, &p.Meta.Security)
		case "contained":
			// A contained resource goes wherever its container goes, so
			// the container is judged as carrying its labels too.
			err = readArray(s, func() error { return containedLabels(s, &p.Meta.Security) })
		case "subject":
			err = p.Subject.decode(s)
		case "patient":
			err = p.Patient.decode(s)
		case "beneficiary":
			err = p.Beneficiary.decode(s)
		case "individual":
			err = p.Individual.decodeAny(s)
		case "candidate":
			err = p.Candidate.decodeAny(s)
		case "actor":
			err = p.Actor.decodeAny(s)
		case "securityContext":
			err = p.SecurityContext.decode(s)
		case "target":
			err = readTargets(s, &p.Target)
		case "participant":
			err = readArray(s, func() error {
				var pa struct{ Actor ref }
				err := readObject(s, func(name []byte) error {
					if string(name) == "actor" {
						return pa.Actor.decode(s)
					}
					return s.Skip()
				})
				p.Participant = append(p.Participant, pa)
				return err
			})
		case "entry":
			if entry != nil {
				err = entry()
			} else {
				err = p.inner(s)
			}
		default:
			err = s.Skip()
		}
		if err == nil && spans {
			err = after(kind, start)
		}
		return err
	})
}

// inner reads the entries of a Bundle held as a resource (an entry's
// resource, or a Bundle read as one): the resources they carry go wherever
// it goes, so their types go into p.Inner and their labels into p's. (A
// List's entries, the other top-level entry member, carry none.)
func (p *projection) inner(s *jsonstrict.Scanner) error {
	return readArray(s, func() error {
		return readObject(s, func(name []byte) error {
			if string(name) != "resource" || s.Kind() == 'n' {
				return s.Skip()
			}
			var q projection
			err := q.decode(s, nil, nil)
			p.Inner = append(append(p.Inner, q.ResourceType), q.Inner...)
			p.Meta.Security = append(p.Meta.Security, q.Meta.Security...)
			return err
		})
	})
}

// readSecurity reads the security labels of a meta object into sec.
func readSecurity(s *jsonstrict.Scanner, sec *[]coding) error {
	return readObject(s, func(name []byte) error {
		if string(name) != "security" {
			return s.Skip()
		}
		return readArray(s, func() error {
			var c coding
			err := readObject(s, func(name []byte) error {
				switch string(name) {
				case "system":
					return readString(s, &c.System)
				case "code":
					return readString(s, &c.Code)
				}
				return s.Skip()
			})
			*sec = append(*sec, c)
			return err
		})
	})
}

// containedLabels reads the labels of a contained resource, and of any it
// contains in turn (which FHIR forbids, and a server may still write), into
// sec.
func containedLabels(s *jsonstrict.Scanner, sec *[]coding) error {
	return readObject(s, func(name []byte) error {
		switch string(name) {
		case "meta":
			return readSecurity(s, sec)
		case "contained":
			return readArray(s, func() error { return containedLabels(s, sec) })
		}
		return s.Skip()
	})
}

// decode reads a Reference's reference.
func (r *ref) decode(s *jsonstrict.Scanner) error {
	return readObject(s, func(name []byte) error {
		if string(name) == "reference" {
			return readString(s, &r.Reference)
		}
		return s.Skip()
	})
}

// readTargets reads a "target" member's references: a Provenance's is an
// array of References. Other types' members of the name (a Goal's targets,
// a SearchParameter's type codes) are read as whatever they are, and only
// objects' references kept.
func readTargets(s *jsonstrict.Scanner, dst *[]ref) error {
	if s.Kind() != '[' {
		return s.Skip()
	}
	return s.Array(func() error {
		if s.Kind() != '{' {
			return s.Skip()
		}
		var r ref
		err := r.decode(s)
		*dst = append(*dst, r)
		return err
	})
}

// decodeAny reads a member that is a Reference in the types the
// projection reads it for, and skips it as whatever it is in any other.
func (r *ref) decodeAny(s *jsonstrict.Scanner) error {
	if s.Kind() != '{' {
		return s.Skip()
	}
	return r.decode(s)
}

func readString(s *jsonstrict.Scanner, dst *string) error {
	if s.Kind() == 'n' {
		return s.Skip()
	}
	v, err := s.String()
	*dst = string(v)
	return err
}

func readObject(s *jsonstrict.Scanner, member func([]byte) error) error {
	if s.Kind() == 'n' {
		return s.Skip()
	}
	return s.Object(member)
}

func readArray(s *jsonstrict.Scanner, elem func() error) error {
	if s.Kind() == 'n' {
		return s.Skip()
	}
	return s.Array(elem)
}

// typeName returns a resource type name, shared when it is an R4 type.
func typeName(v []byte) string {
	if t, ok := r4Names[string(v)]; ok {
		return t
	}
	return string(v)
}

const (
	confidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	actCodeSystem         = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
)

// labels returns a resource's confidentiality (the highest it carries, N
// when it carries none) and sensitivity tags. The code systems go by other
// names too, in data written before R4 and by CDA-based systems: their
// FHIR DSTU2 and STU3 URIs and their HL7 OIDs name the same codes, and a
// label under one of them restricts as much (unread, it would admit).
func (p *projection) labels() (consent.Confidentiality, []string) {
	var conf consent.Confidentiality
	var tags []string
	for _, s := range p.Meta.Security {
		switch s.System {
		case confidentialitySystem, "http://hl7.org/fhir/v3/Confidentiality", "urn:oid:2.16.840.1.113883.5.25":
			if c := consent.Confidentiality(s.Code); conf == "" || c.Rank() > conf.Rank() {
				conf = c
			}
		case actCodeSystem, "http://hl7.org/fhir/v3/ActCode", "urn:oid:2.16.840.1.113883.5.4":
			tags = append(tags, s.Code)
		}
	}
	if conf == "" {
		conf = consent.Normal
	}
	return conf, tags
}

// inCompartment reports whether the resource provably belongs to the
// compartment of a's patient: it is the Patient, or one of its reference
// fields names the patient on this server. Absence of a reference never
// admits (fail closed).
func (p *projection) inCompartment(a *access) bool {
	patient := a.patient
	if p.ResourceType == "Patient" {
		return p.ID == patient
	}
	ct, ok := compartment[p.ResourceType]
	if !ok {
		return false
	}
	for _, f := range ct.fields {
		if f == "participant.actor" {
			for _, pa := range p.Participant {
				if refersTo(pa.Actor.Reference, patient, false, a) {
					return true
				}
			}
		} else if r := p.fieldRef(f); r != "" && refersTo(r, patient, false, a) {
			return true
		}
	}
	return false
}

// ownerUnknown reports whether a record of type t answered without its
// patient (or a Binary without its securityContext) may have had one left
// out: the request asked for part of each record (access.subsets), and
// not, by an element selection the proxy widened with what it judges t by,
// for t's (access.ownersAsked). A Device whose patient a summary or a
// selection left out is then no ward's monitor (found by probing: an
// included implant of another patient, its patient left out by
// _elements=status, went to a patient app as a record that names no
// patient), and a Binary without its securityContext is not unbound.
func (a *access) ownerUnknown(t string) bool { return a.subsets && t != a.ownersAsked }

// unowned reports whether a resource is a Device that names no patient
// (a ward's monitor, an app's reader): no patient's, it is read by
// patient/ tokens as a shared record is, named in their writes, and never
// written by them.
func (p *projection) unowned() bool {
	return p.ResourceType == "Device" && p.Patient.Reference == ""
}

// fieldRef is the reference a compartment field (compartmentType.fields)
// holds, or "".
func (p *projection) fieldRef(field string) string {
	switch field {
	case "subject":
		return p.Subject.Reference
	case "patient":
		return p.Patient.Reference
	case "beneficiary":
		return p.Beneficiary.Reference
	case "individual":
		return p.Individual.Reference
	case "candidate":
		return p.Candidate.Reference
	case "actor":
		return p.Actor.Reference
	}
	return ""
}

// verdict decides one resource of a response for an access.
type verdict int

const (
	keep     verdict = iota
	drop             // outside the compartment or the token's types
	withhold         // beyond the clearance
	// needsContext: a Binary with a securityContext, under patient context
	// or a clearance short of every label, is judged by the resource it
	// names, and a Provenance so by its targets (which a read fetches:
	// Proxy.judgeContext). Inside a Bundle a Binary is dropped, and a
	// Provenance kept only if each of its targets is an entry the Bundle
	// keeps (provenanceKept) or, without patient context, a record the
	// proxy reads and judges (access.targets).
	needsContext
)

// bound reports whether a resource is judged by other records
// (needsContext) when the access judges anything (patient context, or
// labels): a Binary by the one its securityContext names, a Provenance by
// its targets (Proxy.judgeContext). A Provenance tells of the records it
// is about (that they exist, who wrote them, when, in what activity), so
// it goes only where they would: one about a record the clearance
// withholds is withheld with it, labelled or not.
func (a *access) bound(p *projection) bool {
	switch p.ResourceType {
	case "Binary":
		return p.SecurityContext.Reference != "" && !a.seesAll()
	case "Provenance":
		return !a.seesAll()
	}
	return false
}

// judgeEntry judges a Bundle entry's resource (res, its JSON) as judge
// does and, where a constrained search may bring entries the server did not
// apply the constraint to (access.unmatched), holds each one whose
// search.mode does not say match to the constraint itself (every one of
// the constrained type, with access.recheck): one of the constrained type
// must match it as the proxy evaluates it (included), and
// one carrying a resource of that type (a Bundle held as a resource:
// projection.Inner) is dropped. (A contained resource is the container's,
// under its type's scopes, as everywhere.)
func (a *access) judgeEntry(e *bundleEntry, res []byte) verdict {
	if a.heldTypes != nil {
		if lc := a.heldTypes[e.res.ResourceType]; lc != nil { // $everything's constrained types
			if !lc.matches(res) {
				return drop
			}
			return a.judgeAs(&e.res, true)
		}
	}
	held := a.recheck || a.unmatched && !e.match
	switch {
	case held && e.res.ResourceType == a.constrained && (a.included == nil || !a.included.matches(res)):
		a.unconstrained = a.unconstrained || a.checked && !e.notMatch
		return drop
	case a.unmatched && !e.match && slices.Contains(e.res.Inner, a.constrained):
		return drop
	}
	return a.judge(&e.res)
}

// judge applies compartment, type and label rules to one resource. A
// Binary bound to its securityContext is in no compartment: its own
// compartment does not count, its labels still do.
func (a *access) judge(p *projection) verdict { return a.judgeAs(p, a.readable(p.ResourceType)) }

// judgeAs is judge, for a resource whose type the access reads or not.
func (a *access) judgeAs(p *projection, readable bool) verdict {
	context := a.bound(p)
	if a.patient != "" && !context && !p.inCompartment(a) && !a.shared(p.ResourceType) && (!p.unowned() || a.ownerUnknown(p.ResourceType)) {
		return drop
	}
	if p.ResourceType == "Binary" && p.SecurityContext.Reference == "" && a.ownerUnknown("Binary") {
		return drop // (bound to a record, perhaps, its securityContext left out)
	}
	if !readable || p.ResourceType == "List" && len(p.Inner) > 0 {
		// (A List's entries name records; one holding a resource is not
		// FHIR, and what it holds would pass as the List's own.)
		return drop
	}
	for _, t := range p.Inner {
		if !a.readable(t) {
			return drop
		}
	}
	conf, tags := p.labels()
	if !a.clearance.Allows(conf, tags) {
		return withhold
	}
	if context {
		return needsContext
	}
	return keep
}
