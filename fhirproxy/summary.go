package fhirproxy

import (
	"net/http"
	"slices"
)

// Summaries. A read or a search may ask for a summary of each record
// (_summary): text keeps a record's narrative, id, meta and mandatory
// elements; true keeps the elements R4 marks as summary elements. Where the
// proxy judges a record by an element a summary leaves out, an absent
// element must never read as allowed, and a record judged without it must
// not silently vanish either: the summary is refused there, as what the
// client can ask instead, _elements, keeps what the proxy judges by
// (judgedParams, keepConstraintElements, includeElements).
//
// Found with the sandbox's data server once it answered _summary=true as
// R4 has it: a patient app granted laboratory results only
// (patient/Observation.rs?category=laboratory) got an empty Bundle for
// Observation?_summary=true, since an Observation's category is no
// summary element and every match was withheld as not matching; so did
// its Appointment?_summary=true, since an Appointment's participants are
// none either. And a Device whose patient a summary leaves out reads as
// one that names no patient, which a patient app may read as a shared
// record (projection.unowned): another patient's implant.

// notSummary are the elements the proxy judges by, as Type.element, that
// R4 does not mark as summary elements (isSummary in the resource's
// StructureDefinition, R4 4.0.1): of the token parameters it evaluates
// (tokenParams; meta, which holds _tag and _security, is a summary
// element of every type) and of the references that place a type in the
// Patient compartment (compartment). The others of those are summary
// elements; TestNotSummary holds both tables to this one.
var notSummary = map[string]bool{
	"Observation.category": true, "Condition.category": true, "Condition.severity": true,
	"MedicationRequest.category": true, "Communication.category": true, "Device.type": true,
	"Appointment.participant": true, "Device.patient": true, "CommunicationRequest.subject": true,
	"RequestGroup.subject": true, "SupplyDelivery.patient": true, "EnrollmentRequest.candidate": true,
}

// summaryLeavesOut reports whether the summary a request asks for may
// leave out one of the root elements of typ given: _summary=text may leave
// out any (but the mandatory ones, which the proxy does not rely on);
// _summary=true those of notSummary.
func summaryLeavesOut(in *Interaction, typ string, elements []string) bool {
	for _, prm := range in.Params {
		switch {
		case prm.Name != "_summary":
		case prm.Value == "text":
			return true
		case prm.Value == "true" && slices.ContainsFunc(elements, func(e string) bool { return notSummary[typ+"."+e] }):
			return true
		}
	}
	return false
}

// summaryText reports whether a request asks for _summary=text.
func summaryText(in *Interaction) bool {
	return slices.ContainsFunc(in.Params, func(prm Param) bool { return prm.Name == "_summary" && prm.Value == "text" })
}

// constraintUnread reports whether the summary a request asks for may
// leave out what the constraint lc, which the proxy evaluates on the
// answer, reads (every record would be withheld as not matching); it is
// then refused (constraintUnreadRefusal).
func constraintUnread(in *Interaction, lc *localConstraint) bool {
	return lc != nil && summaryLeavesOut(in, in.Type, lc.elements())
}

// unreadConstraint refuses a summary that leaves out what the scope's
// constraint reads (constraintUnread).
func unreadConstraint() *refusal {
	return refuse(http.StatusBadRequest, "not-supported", "the summary asked for leaves out what the scope's constraint reads, which the proxy checks here; use _elements")
}
