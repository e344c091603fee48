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
// an include of the search brings it from a record kept, by the link that
// include's parameter reads (includeSpec): a kept match of an _include's
// type refers to it in the parameter's element, or, for a _revinclude, it
// refers to a kept match so (access.includes; Provenances are held to the
// records they are about anyway: provenanceKept). Another link proves
// nothing: a kept reading's performer does not bring an encounter's
// participant. Presence, never absence: that it shows no
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

// inclusion is what an included record is judged by: whether a record
// has been removed, the search's includes (includeSpecs), the records kept
// so far (Type/id; matches, and includes where the search iterates), and
// the links each makes (by the root element it makes it in), each set
// bounded by maxKeys (past it, links to the records beyond are not seen,
// and an include they alone would justify is dropped).
type inclusion struct {
	specs   []includeSpec
	removed bool
	kept    map[string]bool          // Type/id → true for a match, false for an include
	links   map[string]map[link]bool // target Type/id → the links kept records make to it
}

// A link is a kept record's reference: the record's type, the root
// element it is in, and whether the record is an include (kept where the
// search iterates) rather than a match.
type link struct {
	src, root string
	included  bool
}

// note notes a record kept (a match, or an include where the search
// iterates) or removed (raw, its resource).
func (c *inclusion) note(a *access, p *projection, raw []byte, kept, match bool) {
	if !kept {
		c.removed = true
		return
	}
	if c.kept == nil {
		c.kept, c.links = map[string]bool{}, map[string]map[link]bool{}
	}
	if len(c.kept) < maxKeys {
		c.kept[p.ResourceType+"/"+p.ID] = match
	}
	eachReference(raw, func(root string, v []byte) {
		k, ok := a.localRef(string(v))
		if !ok {
			return
		}
		if c.links[k] == nil && len(c.links) < maxKeys {
			c.links[k] = map[link]bool{}
		}
		if c.links[k] != nil && len(c.links[k]) < maxKeys {
			c.links[k][link{p.ResourceType, root, !match}] = true
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
		c.note(a, &e.res, raw, kept, true)
	case !kept:
		c.note(a, &e.res, raw, false, false)
	case a.iterates:
		c.note(a, &e.res, raw, true, false)
	}
}

// betrays reports whether an included record (raw, its resource) goes
// unjustified: a record has been removed, and no include of the search
// brings it from a record kept, by that include's own link (an
// _include's, from a kept record of its type, in the element its
// parameter reads; a _revinclude's, to a kept record, from the included
// one's). Any other link proves nothing: found by FuzzSearchesAgree, the
// sandbox, once it asked _include:iterate=Encounter:participant, a
// clinician got the practitioner of the encounter only a withheld HIV test
// was drawn at, because a kept reading named that practitioner as its
// performer. An OperationOutcome a server adds to a page (search mode
// outcome) is linked to none, and goes; so does a Provenance a _revinclude
// of Provenances brings, which goes only where each record it is about is
// kept or read (access.provenanceKept).
func (c *inclusion) betrays(a *access, p *projection, raw []byte) bool {
	if !c.removed || p.ResourceType == "OperationOutcome" || p.ResourceType == "Provenance" && a.provenances {
		return false
	}
	key := p.ResourceType + "/" + p.ID
	type ownRef struct{ root, to string }
	var refs []ownRef // the included record's references, read once for every reverse include
	for _, sp := range c.specs {
		switch {
		case sp.target != "" && p.ResourceType != sp.target && !sp.rev, sp.rev && sp.src != "" && p.ResourceType != sp.src:
		case !sp.rev:
			for l := range c.links[key] {
				if (sp.src == "" || l.src == sp.src) && (sp.roots == nil || slices.Contains(sp.roots, l.root)) && (!l.included || sp.iterate) {
					return false
				}
			}
		default:
			if refs == nil {
				refs = []ownRef{}
				eachReference(raw, func(root string, v []byte) {
					if k, ok := a.localRef(string(v)); ok {
						refs = append(refs, ownRef{root, k})
					}
				})
			}
			for _, r := range refs {
				match, kept := c.kept[r.to]
				if kept && (match || sp.iterate) && (sp.roots == nil || slices.Contains(sp.roots, r.root)) &&
					(sp.target == "" || strings.HasPrefix(r.to, sp.target+"/")) {
					return false
				}
			}
		}
	}
	return true
}

// An includeSpec is one _include or _revinclude of a search: the type
// whose records make the link (src; "" for any), the root elements they
// make it in (nil for any: *, or what the proxy cannot read), the type it
// must name (target, "" for any), whether it iterates (applies to what is
// included too), and whether the included record makes the link
// (_revinclude) rather than is its target (_include).
type includeSpec struct {
	src, target string
	roots       []string
	iterate     bool
	rev         bool
}

// includeSpecs compiles a search's _include and _revinclude parameters
// (Type:param, Type:param:Target, Type:*, or *).
func includeSpecs(in *Interaction) []includeSpec {
	var out []includeSpec
	for _, prm := range in.Params {
		name, mod, _ := strings.Cut(prm.Name, ":")
		if name != "_include" && name != "_revinclude" {
			continue
		}
		sp := includeSpec{iterate: mod == "iterate", rev: name == "_revinclude"}
		typ, rest, ok := strings.Cut(prm.Value, ":")
		param, target, _ := strings.Cut(rest, ":")
		if ok && typ != "*" {
			sp.src = typ
		}
		if ok {
			sp.target = target
			if param != "*" && param != "" {
				sp.roots = includeRootsOf(sp.src, param)
			}
		}
		out = append(out, sp)
	}
	return out
}

// eachReference calls each with every reference a resource makes
// (raw, its JSON) and the root element it is in.
func eachReference(raw []byte, each func(root string, v []byte)) {
	_ = walkStrings(raw, true, func(root string, v []byte, reference bool, _, _ int64) {
		if reference {
			each(root, v)
		}
	})
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

// includeRoots are the R4 search parameters of type reference (Type:param)
// whose root element is not the parameter's name in camel case, as R4
// 4.0.1's SearchParameter expressions read (a DocumentReference's
// encounter is in its context; an Encounter's practitioner is a
// participant's individual; a Coverage's patient is its beneficiary; a
// Patient's organization its managingOrganization). Left out: those of
// knowledge artifacts (composed-of, depends-on, derived-from, predecessor,
// successor), which read relatedArtifact's canonical URLs.
var includeRoots = map[string][]string{
	"AdverseEvent:resultingcondition": {"resultingCondition"}, "AdverseEvent:substance": {"suspectEntity"},
	"Appointment:actor": {"participant"}, "Appointment:location": {"participant"},
	"Appointment:patient": {"participant"}, "Appointment:practitioner": {"participant"},
	"Appointment:supporting-info": {"supportingInformation"}, "AppointmentResponse:location": {"actor"},
	"AppointmentResponse:patient": {"actor"}, "AppointmentResponse:practitioner": {"actor"},
	"AuditEvent:patient": {"agent", "entity"}, "Bundle:composition": {"entry"}, "Bundle:message": {"entry"},
	"CapabilityStatement:guide": {"implementationGuide"}, "CapabilityStatement:resource-profile": {"rest"},
	"CapabilityStatement:supported-profile": {"rest"}, "CarePlan:activity-reference": {"activity"},
	"CarePlan:condition": {"addresses"}, "CarePlan:performer": {"activity"},
	"ChargeItem:performer-actor": {"performer"}, "Claim:detail-udi": {"item"}, "Claim:encounter": {"item"},
	"Claim:item-udi": {"item"}, "Claim:procedure-udi": {"procedure"}, "Claim:subdetail-udi": {"item"},
	"ClinicalImpression:finding-ref": {"finding"}, "Composition:entry": {"section"},
	"Composition:related-ref": {"relatesTo"}, "ConceptMap:other": {"group"}, "ConceptMap:source-uri": {"source"},
	"ConceptMap:target-uri": {"target"}, "Condition:evidence-detail": {"evidence"},
	"Consent:actor": {"provision"}, "Consent:consentor": {"performer"}, "Consent:data": {"provision"},
	"Consent:source-reference": {"source"}, "Coverage:patient": {"beneficiary"}, "Device:organization": {"owner"},
	"DeviceDefinition:parent": {"parentDevice"}, "DeviceRequest:device": {"code"},
	"DocumentManifest:item": {"content"}, "DocumentManifest:related-ref": {"related"},
	"DocumentReference:encounter": {"context"}, "DocumentReference:related": {"context"},
	"DocumentReference:relatesto": {"relatesTo"}, "Encounter:practitioner": {"participant"},
	"Endpoint:organization": {"managingOrganization"}, "EnrollmentRequest:patient": {"candidate"},
	"EnrollmentRequest:subject": {"candidate"}, "EpisodeOfCare:condition": {"diagnosis"},
	"EpisodeOfCare:incoming-referral": {"referralRequest"},
	"EpisodeOfCare:organization":      {"managingOrganization"}, "ExplanationOfBenefit:coverage": {"insurance"},
	"ExplanationOfBenefit:detail-udi": {"item"}, "ExplanationOfBenefit:encounter": {"item"},
	"ExplanationOfBenefit:item-udi": {"item"}, "ExplanationOfBenefit:procedure-udi": {"procedure"},
	"ExplanationOfBenefit:subdetail-udi": {"item"}, "HealthcareService:organization": {"providedBy"},
	"ImagingStudy:basedon": {"basedOn"}, "ImagingStudy:endpoint": {"series"},
	"ImagingStudy:performer": {"series"}, "ImmunizationRecommendation:information": {"recommendation"},
	"ImmunizationRecommendation:support": {"recommendation"}, "ImplementationGuide:resource": {"definition"},
	"Linkage:source": {"item"}, "List:item": {"entry"}, "Location:organization": {"managingOrganization"},
	"Location:partof": {"partOf"}, "MedicationDispense:prescription": {"authorizingPrescription"},
	"MedicationDispense:responsibleparty":  {"substitution"},
	"MedicationRequest:intended-dispenser": {"dispenseRequest"},
	"MedicationRequest:intended-performer": {"performer"}, "MedicationStatement:source": {"informationSource"},
	"MessageHeader:receiver": {"destination"}, "MessageHeader:target": {"destination"},
	"NutritionOrder:provider": {"orderer"}, "Organization:partof": {"partOf"},
	"OrganizationAffiliation:primary-organization": {"organization"},
	"OrganizationAffiliation:service":              {"healthcareService"}, "Patient:organization": {"managingOrganization"},
	"Person:organization": {"managingOrganization"}, "Person:patient": {"link"}, "Person:practitioner": {"link"},
	"Person:relatedperson": {"link"}, "PlanDefinition:definition": {"action"},
	"PractitionerRole:service": {"healthcareService"}, "Provenance:patient": {"target"},
	"RequestGroup:participant": {"action"}, "ResearchStudy:partof": {"partOf"},
	"ResearchStudy:principalinvestigator": {"principalInvestigator"}, "ResearchSubject:patient": {"individual"},
	"Specimen:collector": {"collection"}, "StructureDefinition:base": {"baseDefinition"},
	"StructureDefinition:valueset": {"snapshot"}, "Substance:substance-reference": {"ingredient"},
	"SupplyRequest:subject": {"deliverTo"}, "Task:patient": {"for"}, "Task:subject": {"for"},
	"TestReport:testscript": {"testScript"},
}

// includeElements are the elements the search's _include parameters
// follow in its matches (includeSpec.roots), so that with _elements the
// links that bring an included record come with the matches.
func includeElements(specs []includeSpec) []string {
	var out []string
	for _, sp := range specs {
		if !sp.rev {
			out = append(out, sp.roots...)
		}
	}
	return out
}

// includeRootsOf are the root elements a search parameter of typ that
// _include may follow reads (Observation:encounter reads encounter,
// has-member hasMember; patient, subject or patient; medication,
// medicationReference; those of includeRoots). A parameter whose element
// is named otherwise, and is not in includeRoots, is read by its name in
// camel case: its includes are then judged without the link, and dropped
// where a record was removed.
func includeRootsOf(typ, param string) []string {
	if roots, ok := includeRoots[typ+":"+param]; ok {
		return roots
	}
	switch param {
	case "patient":
		return []string{"subject", "patient"}
	case "medication": // medication[x]: the reference is medicationReference
		return []string{"medicationReference"}
	}
	parts := strings.Split(param, "-")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return []string{strings.Join(parts, "")}
}
