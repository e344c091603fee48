package fhirproxy

import (
	"strings"
	"testing"
)

// r4Summary says, for each element the proxy judges records by (of the
// token parameters it evaluates, tokenParams, and of the references that
// place a type in the Patient compartment, compartment), whether R4 4.0.1
// marks it a summary element (isSummary in the resource's
// StructureDefinition), as read from the published definitions.
var r4Summary = map[string]bool{
	"AdverseEvent.subject": true, "AllergyIntolerance.category": true, "AllergyIntolerance.clinicalStatus": true,
	"AllergyIntolerance.criticality": true, "AllergyIntolerance.patient": true, "AllergyIntolerance.type": true,
	"AllergyIntolerance.verificationStatus": true, "Appointment.participant": false,
	"AppointmentResponse.actor": true, "BodyStructure.patient": true, "CarePlan.category": true,
	"CarePlan.intent": true, "CarePlan.status": true, "CarePlan.subject": true, "CareTeam.category": true,
	"CareTeam.status": true, "CareTeam.subject": true, "ChargeItem.subject": true, "Claim.patient": true,
	"ClaimResponse.patient": true, "ClinicalImpression.subject": true, "Communication.category": false,
	"Communication.status": true, "Communication.subject": true, "CommunicationRequest.subject": false,
	"Composition.subject": true, "Condition.category": false, "Condition.clinicalStatus": true,
	"Condition.code": true, "Condition.severity": false, "Condition.subject": true,
	"Condition.verificationStatus": true, "Consent.patient": true, "Coverage.beneficiary": true,
	"Coverage.status": true, "Coverage.type": true, "CoverageEligibilityRequest.patient": true,
	"CoverageEligibilityResponse.patient": true, "DetectedIssue.patient": true, "Device.patient": false,
	"Device.status": true, "Device.type": false, "DeviceRequest.subject": true,
	"DeviceUseStatement.subject": true, "DiagnosticReport.category": true, "DiagnosticReport.code": true,
	"DiagnosticReport.status": true, "DiagnosticReport.subject": true, "DocumentManifest.subject": true,
	"DocumentReference.category": true, "DocumentReference.status": true, "DocumentReference.subject": true,
	"DocumentReference.type": true, "Encounter.class": true, "Encounter.status": true, "Encounter.subject": true,
	"Encounter.type": true, "EnrollmentRequest.candidate": false, "EpisodeOfCare.patient": true,
	"ExplanationOfBenefit.patient": true, "FamilyMemberHistory.patient": true, "Flag.subject": true,
	"Goal.category": true, "Goal.lifecycleStatus": true, "Goal.subject": true, "ImagingStudy.subject": true,
	"Immunization.patient": true, "Immunization.status": true, "Immunization.vaccineCode": true,
	"ImmunizationEvaluation.patient": true, "ImmunizationRecommendation.patient": true, "Invoice.subject": true,
	"List.subject": true, "MeasureReport.subject": true, "Media.subject": true,
	"MedicationAdministration.subject": true, "MedicationDispense.subject": true,
	"MedicationRequest.category": false, "MedicationRequest.intent": true, "MedicationRequest.status": true,
	"MedicationRequest.subject": true, "MedicationStatement.category": true, "MedicationStatement.status": true,
	"MedicationStatement.subject": true, "MolecularSequence.patient": true, "NutritionOrder.patient": true,
	"Observation.category": false, "Observation.code": true, "Observation.status": true,
	"Observation.subject": true, "Procedure.category": true, "Procedure.code": true, "Procedure.status": true,
	"Procedure.subject": true, "QuestionnaireResponse.status": true, "QuestionnaireResponse.subject": true,
	"RelatedPerson.patient": true, "RequestGroup.subject": false, "ResearchSubject.individual": true,
	"RiskAssessment.subject": true, "ServiceRequest.category": true, "ServiceRequest.code": true,
	"ServiceRequest.intent": true, "ServiceRequest.status": true, "ServiceRequest.subject": true,
	"Specimen.status": true, "Specimen.subject": true, "Specimen.type": true, "SupplyDelivery.patient": false,
	"VisionPrescription.patient": true,
}

// TestNotSummary holds notSummary to R4: it lists exactly the elements the
// proxy judges by that R4 does not mark as summary elements. An element
// the proxy comes to judge by (a token parameter or a compartment type
// added) fails it until its flag is read from R4 into r4Summary.
func TestNotSummary(t *testing.T) {
	judged := map[string]bool{}
	for typ, params := range tokenParams {
		for _, path := range params {
			judged[typ+"."+path.members[0]] = true
		}
	}
	for typ, ct := range compartment {
		for _, f := range ct.fields {
			top, _, _ := strings.Cut(f, ".")
			judged[typ+"."+top] = true
		}
	}
	for e := range judged {
		if _, ok := r4Summary[e]; !ok {
			t.Errorf("%s: the proxy judges by it, and whether R4 marks it a summary element is not recorded", e)
		}
	}
	for e, summary := range r4Summary {
		if notSummary[e] == summary {
			t.Errorf("%s: R4's summary element %v, notSummary %v", e, summary, notSummary[e])
		}
	}
	for e := range notSummary {
		if _, ok := r4Summary[e]; !ok {
			t.Errorf("%s: in notSummary, not an element the proxy judges by", e)
		}
	}
}

// TestLinksNotSummary holds the table of reference elements a summary
// leaves out (linksNotSummary) to the recorded flags of the elements the
// proxy judges by (r4Summary), read from R4 apart: a compartment
// reference R4 does not mark as a summary element is in it, one it marks
// is not; and each entry names a type the proxy knows.
func TestLinksNotSummary(t *testing.T) {
	for typ, ct := range compartment {
		for _, f := range ct.fields {
			top, _, _ := strings.Cut(f, ".")
			e := typ + "." + top
			if summary, ok := r4Summary[e]; ok && linksNotSummary[e] == summary {
				t.Errorf("%s: R4's summary element %v, in linksNotSummary %v", e, summary, linksNotSummary[e])
			}
		}
	}
	for e := range linksNotSummary {
		if typ, _, _ := strings.Cut(e, "."); !knownType(typ) {
			t.Errorf("%s: not an R4 type", e)
		}
	}
}
