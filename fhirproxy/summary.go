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

// linksNotSummary are the root elements, as Type.element, of R4's
// reference search parameters that R4 does not mark as summary elements
// (isSummary, R4 4.0.1's StructureDefinitions; knowledge artifacts'
// relatedArtifact left out, as includeRoots leaves it). An include by one
// of those parameters is judged by a link a summary leaves out
// (DiagnosticReport:result, Encounter:location, Observation:device,
// Patient:general-practitioner): a summary is refused with it where a
// match may be removed, as with _include=*.
var linksNotSummary = map[string]bool{
	"ActivityDefinition.library": true, "AllergyIntolerance.recorder": true, "Appointment.basedOn": true,
	"Appointment.participant": true, "Appointment.reasonReference": true, "Appointment.slot": true,
	"Appointment.supportingInformation": true, "AuditEvent.agent": true, "AuditEvent.entity": true,
	"AuditEvent.source": true, "CarePlan.activity": true, "CarePlan.careTeam": true, "CarePlan.goal": true,
	"CareTeam.participant": true, "ChargeItem.performer": true, "ChargeItem.performingOrganization": true,
	"ChargeItem.requestingOrganization": true, "ChargeItem.service": true, "Claim.careTeam": true,
	"Claim.enterer": true, "Claim.facility": true, "Claim.item": true, "Claim.payee": true,
	"Claim.procedure": true, "ClaimResponse.requestor": true, "ClinicalImpression.finding": true,
	"ClinicalImpression.investigation": true, "ClinicalImpression.previous": true,
	"ClinicalImpression.supportingInfo": true, "Communication.recipient": true, "Communication.sender": true,
	"CommunicationRequest.recipient": true, "CommunicationRequest.subject": true, "Composition.attester": true,
	"Composition.relatesTo": true, "Composition.section": true, "ConceptMap.group": true,
	"Condition.evidence": true, "Contract.authority": true, "Contract.domain": true, "Contract.signer": true,
	"CoverageEligibilityRequest.enterer": true, "CoverageEligibilityRequest.facility": true,
	"CoverageEligibilityRequest.provider": true, "CoverageEligibilityResponse.requestor": true,
	"Device.location": true, "Device.owner": true, "Device.patient": true, "DeviceRequest.insurance": true,
	"DiagnosticReport.basedOn": true, "DiagnosticReport.result": true, "DiagnosticReport.specimen": true,
	"DocumentManifest.recipient": true, "DocumentManifest.related": true,
	"DocumentReference.authenticator": true, "DocumentReference.custodian": true, "Encounter.account": true,
	"Encounter.basedOn": true, "Encounter.location": true, "Encounter.partOf": true,
	"Encounter.serviceProvider": true, "EnrollmentRequest.candidate": true, "EnrollmentResponse.request": true,
	"EpisodeOfCare.careManager": true, "EpisodeOfCare.referralRequest": true,
	"ExplanationOfBenefit.careTeam": true, "ExplanationOfBenefit.claim": true,
	"ExplanationOfBenefit.enterer": true, "ExplanationOfBenefit.facility": true,
	"ExplanationOfBenefit.item": true, "ExplanationOfBenefit.payee": true,
	"ExplanationOfBenefit.procedure": true, "Group.member": true, "GuidanceResponse.subject": true,
	"HealthcareService.coverageArea": true, "HealthcareService.endpoint": true, "Immunization.location": true,
	"Immunization.manufacturer": true, "Immunization.reaction": true, "Immunization.reasonReference": true,
	"ImplementationGuide.definition": true, "InsurancePlan.endpoint": true, "Invoice.account": true,
	"Invoice.issuer": true, "Invoice.participant": true, "List.encounter": true, "List.entry": true,
	"Location.endpoint": true, "Location.partOf": true, "Measure.library": true,
	"MeasureReport.evaluatedResource": true, "Medication.ingredient": true,
	"MedicationAdministration.context": true, "MedicationAdministration.device": true,
	"MedicationAdministration.request": true, "MedicationDispense.authorizingPrescription": true,
	"MedicationDispense.context": true, "MedicationDispense.destination": true,
	"MedicationDispense.performer": true, "MedicationDispense.receiver": true,
	"MedicationDispense.substitution": true, "MedicationKnowledge.ingredient": true,
	"MedicationKnowledge.monograph": true, "MedicationRequest.dispenseRequest": true,
	"MedicationRequest.encounter": true, "MedicationRequest.performer": true,
	"MedicationStatement.informationSource": true, "NutritionOrder.encounter": true, "Observation.device": true,
	"Observation.specimen": true, "OperationDefinition.inputProfile": true,
	"OperationDefinition.outputProfile": true, "Organization.endpoint": true,
	"OrganizationAffiliation.endpoint": true, "OrganizationAffiliation.healthcareService": true,
	"Patient.generalPractitioner": true, "PaymentNotice.provider": true, "PaymentNotice.request": true,
	"PaymentNotice.response": true, "PaymentReconciliation.request": true,
	"PaymentReconciliation.requestor": true, "Person.link": true, "PlanDefinition.action": true,
	"PlanDefinition.library": true, "PractitionerRole.endpoint": true,
	"PractitionerRole.healthcareService": true, "Provenance.agent": true, "Provenance.entity": true,
	"Provenance.location": true, "RequestGroup.action": true, "RequestGroup.author": true,
	"RequestGroup.encounter": true, "RequestGroup.subject": true, "ResearchDefinition.library": true,
	"ResearchElementDefinition.library": true, "SearchParameter.component": true,
	"SearchParameter.derivedFrom": true, "Specimen.collection": true, "Specimen.parent": true,
	"StructureDefinition.snapshot": true, "SupplyDelivery.patient": true, "SupplyDelivery.receiver": true,
	"SupplyDelivery.supplier": true, "SupplyRequest.deliverTo": true, "VisionPrescription.encounter": true,
}

// summaryLeavesOut reports whether _summary=true may leave out the link by
// which an include brings its records: its parameter's root element in the
// type that holds the reference (the match's, or the reverse-included
// record's).
func (sp includeSpec) summaryLeavesOut() bool {
	return slices.ContainsFunc(sp.roots, func(root string) bool { return linksNotSummary[sp.src+"."+root] })
}
