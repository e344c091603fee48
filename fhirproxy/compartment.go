package fhirproxy

import "strings"

// r4Names are the resource types of FHIR R4 (4.0.1), each mapped to itself so
// a decoded name can share the string. Resource types are
// case-sensitive; anything else in a type position is refused.
var r4Names = func() map[string]string {
	m := map[string]string{}
	for _, t := range strings.Fields(`Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse
	AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan CareTeam CatalogEntry
	ChargeItem ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem Communication CommunicationRequest
	CompartmentDefinition Composition ConceptMap Condition Consent Contract Coverage CoverageEligibilityRequest
	CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement
	DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis Encounter Endpoint EnrollmentRequest
	EnrollmentResponse EpisodeOfCare EventDefinition Evidence EvidenceVariable ExampleScenario ExplanationOfBenefit
	FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy Immunization
	ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan Invoice Library Linkage List
	Location Measure MeasureReport Media Medication MedicationAdministration MedicationDispense MedicationKnowledge
	MedicationRequest MedicationStatement MedicinalProduct MedicinalProductAuthorization MedicinalProductContraindication
	MedicinalProductIndication MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
	MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect MessageDefinition
	MessageHeader MolecularSequence NamingSystem NutritionOrder Observation ObservationDefinition OperationDefinition
	OperationOutcome Organization OrganizationAffiliation Parameters Patient PaymentNotice PaymentReconciliation Person
	PlanDefinition Practitioner PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson
	RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
	RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition StructureDefinition
	StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer SubstanceProtein
	SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification SupplyDelivery SupplyRequest Task
	TerminologyCapabilities TestReport TestScript ValueSet VerificationResult VisionPrescription`) {
		m[t] = t
	}
	return m
}()

func knownType(t string) bool { _, ok := r4Names[t]; return ok }

// compartmentType describes how a resource type belongs to the Patient
// compartment: the search parameter the proxy injects to confine a search,
// and the JSON fields whose references place a resource in it (from the R4
// Patient CompartmentDefinition). Types not listed and not shared are
// refused for patient/ tokens.
type compartmentType struct {
	param  string   // injected search parameter
	fields []string // top-level reference fields; "participant.actor" for Appointment
}

var compartment = map[string]compartmentType{
	"Observation": {"patient", []string{"subject"}}, "Condition": {"patient", []string{"subject"}},
	"Encounter": {"patient", []string{"subject"}}, "MedicationRequest": {"patient", []string{"subject"}},
	"MedicationStatement": {"patient", []string{"subject"}}, "MedicationAdministration": {"patient", []string{"subject"}},
	"MedicationDispense": {"patient", []string{"subject"}}, "AllergyIntolerance": {"patient", []string{"patient"}},
	"Procedure": {"patient", []string{"subject"}}, "Immunization": {"patient", []string{"patient"}},
	"DiagnosticReport": {"patient", []string{"subject"}}, "DocumentReference": {"patient", []string{"subject"}},
	"CarePlan": {"patient", []string{"subject"}}, "CareTeam": {"patient", []string{"subject"}},
	"Goal": {"patient", []string{"subject"}}, "ServiceRequest": {"patient", []string{"subject"}},
	"Appointment": {"patient", []string{"participant.actor"}}, "Coverage": {"beneficiary", []string{"beneficiary"}},
	"Claim": {"patient", []string{"patient"}}, "ExplanationOfBenefit": {"patient", []string{"patient"}},
	"FamilyMemberHistory": {"patient", []string{"patient"}}, "QuestionnaireResponse": {"patient", []string{"subject"}},
	"Specimen": {"patient", []string{"subject"}}, "Communication": {"patient", []string{"subject"}},
	"Consent": {"patient", []string{"patient"}}, "Flag": {"patient", []string{"subject"}},
	"RiskAssessment": {"patient", []string{"subject"}}, "NutritionOrder": {"patient", []string{"patient"}},
	"ImagingStudy": {"patient", []string{"subject"}}, "Composition": {"patient", []string{"subject"}},
	"Media": {"patient", []string{"subject"}}, "DeviceRequest": {"patient", []string{"subject"}},
	"EpisodeOfCare": {"patient", []string{"patient"}}, "ClinicalImpression": {"patient", []string{"subject"}},
	// The CompartmentDefinition's other types whose membership one
	// reference to the patient settles (each the element its patient
	// search parameter reads; AdverseEvent has none, and is searched by
	// subject). Left out: those placed by a list of references (Account's
	// subject, Group's members, Provenance's targets, Schedule's actors),
	// by a nested element (Person's links, AuditEvent's agents and
	// entities), or by two references, or a reference of a record a patient
	// rarely writes (Basic's subject and author, SupplyRequest's
	// requester). An AppointmentResponse is the patient's when its actor
	// is: the patient's answer to an appointment (a patient scheduling app
	// accepts or declines with one), not a practitioner's.
	//
	// Device is not in the CompartmentDefinition, but US Core's implantable
	// devices are the patient's, found by Device?patient: a Device whose
	// patient is the patient is in the compartment, and one that names no
	// patient (a ward's monitor) is no patient's, and read as a shared
	// record is (projection.unowned).
	"Device":        {"patient", []string{"patient"}},
	"RelatedPerson": {"patient", []string{"patient"}}, "AdverseEvent": {"subject", []string{"subject"}},
	"BodyStructure": {"patient", []string{"patient"}}, "ChargeItem": {"patient", []string{"subject"}},
	"ClaimResponse": {"patient", []string{"patient"}}, "CommunicationRequest": {"patient", []string{"subject"}},
	"CoverageEligibilityRequest": {"patient", []string{"patient"}}, "CoverageEligibilityResponse": {"patient", []string{"patient"}},
	"DetectedIssue": {"patient", []string{"patient"}}, "DeviceUseStatement": {"patient", []string{"subject"}},
	"DocumentManifest": {"patient", []string{"subject"}}, "ImmunizationEvaluation": {"patient", []string{"patient"}},
	"ImmunizationRecommendation": {"patient", []string{"patient"}}, "Invoice": {"patient", []string{"subject"}},
	"List": {"patient", []string{"subject"}}, "MeasureReport": {"patient", []string{"subject"}},
	"MolecularSequence": {"patient", []string{"patient"}}, "RequestGroup": {"patient", []string{"subject"}},
	"SupplyDelivery": {"patient", []string{"patient"}}, "VisionPrescription": {"patient", []string{"patient"}},
	"ResearchSubject": {"patient", []string{"individual"}}, "EnrollmentRequest": {"patient", []string{"candidate"}},
	"AppointmentResponse": {"actor", []string{"actor"}},
}

// DefaultSharedTypes are types outside any patient's compartment that a
// patient/ token may read (and search) when its scopes name them
// (decision D-7): who treats the patient, where, and with what.
var DefaultSharedTypes = []string{"Practitioner", "PractitionerRole", "Organization", "Location", "Medication", "Substance", "HealthcareService"}

// patientParams are search parameters (before any ":modifier") that can
// name a patient; on a patient/ token each value must be the context patient.
var patientParams = map[string]bool{"patient": true, "subject": true, "beneficiary": true, "actor": true, "performer": true,
	"requester": true, "author": true, "recorder": true, "asserter": true, "participant": true, "_id": true, "link": true,
	"policy-holder": true, "subscriber": true, "focus": true, "sender": true, "recipient": true,
	"individual": true, "candidate": true}

// refersTo reports whether a reference value names Patient/id on this
// FHIR server: "id" (for patient-typed parameters), "Patient/id", or an
// absolute URL on one of the bases this server is known by (access.local).
// The same id on another server is another patient.
func refersTo(v, id string, bareAllowed bool, a *access) bool {
	switch {
	case v == "Patient/"+id:
		return true
	case bareAllowed && v == id:
		return true
	case strings.Contains(v, "://"):
		rest, ok := a.local(v)
		return ok && rest == "/Patient/"+id
	}
	return false
}
