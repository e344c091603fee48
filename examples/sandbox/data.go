package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Synthetic data: deterministic (a fixed seed), Synthea-shaped R4, every
// resource labelled HTEST (test data). Besides ordinary patients it holds
// the cases that break real apps (CONSENT-AUDIT-REGISTRY §5).

const (
	mrnSystem   = "urn:oid:2.16.840.1.113883.3.smartkit.sandbox.mrn"
	loinc       = "http://loinc.org"
	snomed      = "http://snomed.info/sct"
	rxnorm      = "http://www.nlm.nih.gov/research/umls/rxnorm"
	obsCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	docCategory = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
	actCode     = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	confCode    = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
)

type resource = map[string]any

func coding(system, code, display string) map[string]any {
	return map[string]any{"system": system, "code": code, "display": display}
}

func concept(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{coding(system, code, display)}, "text": display}
}

// meta labels a resource as test data, plus any sensitivity labels.
func meta(labels ...string) map[string]any {
	sec := []any{coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST", "test health data")}
	for _, l := range labels {
		if len(l) == 1 {
			sec = append(sec, coding(confCode, l, ""))
		} else {
			sec = append(sec, coding(actCode, l, ""))
		}
	}
	return map[string]any{"versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z", "security": sec}
}

// DemoPatient is the synthetic patient the demo "patient" user owns.
const DemoPatient = "pt-001"

// PanelGroup is the synthetic Group of patients a backend service may
// export (Group/{id}/$export).
const PanelGroup = "grp-panel"

type dataset struct {
	resources []resource
	patients  []resource
}

var (
	given   = []string{"Amy", "Bao", "Chidi", "Dolores", "Emeka", "Fatima", "Gustav", "Hana", "Ines", "Jun", "Kwame", "Lena", "Mateo", "Noor", "Olu", "Priya"}
	family  = []string{"Shaw", "Nguyen", "Okafor", "García", "Müller", "Kowalski", "Haddad", "Tanaka", "Ivanova", "Ødegaard", "Silva", "Brown"}
	vitals  = [][3]string{{"8867-4", "Heart rate", "/min"}, {"9279-1", "Respiratory rate", "/min"}, {"8310-5", "Body temperature", "Cel"}, {"29463-7", "Body weight", "kg"}}
	labs    = [][3]string{{"2339-0", "Glucose [Mass/volume] in Blood", "mg/dL"}, {"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"}, {"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL"}}
	conds   = [][2]string{{"44054006", "Diabetes mellitus type 2"}, {"38341003", "Hypertensive disorder"}, {"195967001", "Asthma"}, {"55822004", "Hyperlipidemia"}}
	meds    = [][2]string{{"860975", "metformin 500 MG Oral Tablet"}, {"314076", "lisinopril 10 MG Oral Tablet"}, {"895994", "albuterol 0.09 MG/ACTUAT Inhaler"}}
	allergy = [][2]string{{"91936005", "Allergy to penicillin"}, {"300913006", "Shellfish allergy"}}
)

// provenance is a US Core Provenance: the practitioner authored the
// target record at recorded.
func provenance(id, target, practitioner string, recorded time.Time, labels ...string) resource {
	return resource{"resourceType": "Provenance", "id": id, "meta": meta(labels...),
		"target": []any{map[string]any{"reference": target}}, "recorded": recorded.Format(time.RFC3339),
		"agent": []any{map[string]any{"type": concept("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author", "Author"),
			"who": map[string]any{"reference": "Practitioner/" + practitioner}}}}
}

// generate builds the data set: n ordinary patients plus the awkward ones.
func generate(n int) *dataset {
	r := rand.New(rand.NewPCG(2026, 11))
	d := &dataset{}
	base := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	add := func(res resource) { d.resources = append(d.resources, res) }
	practitioners := []string{"pr-lee", "pr-kim", "pr-osei"}
	for i, id := range practitioners {
		add(resource{"resourceType": "Practitioner", "id": id, "meta": meta(), "active": true,
			"name": []any{map[string]any{"family": []string{"Lee", "Kim", "Osei"}[i], "given": []any{[]string{"Jordan", "Min", "Ama"}[i]}, "prefix": []any{"Dr."}}}})
	}
	patient := func(id, gv, fam, birth, gender string) resource {
		p := resource{"resourceType": "Patient", "id": id, "meta": meta(), "active": true, "gender": gender, "birthDate": birth,
			"identifier": []any{map[string]any{"type": concept("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"),
				"system": mrnSystem, "value": strings.ToUpper(id)}},
			"name": []any{map[string]any{"use": "official", "family": fam, "given": []any{gv}}}}
		d.patients = append(d.patients, p)
		add(p)
		return p
	}
	clinical := func(pid string, k int, labels ...string) {
		subject := map[string]any{"reference": "Patient/" + pid}
		for e := 0; e < k; e++ {
			day := base.AddDate(0, 0, -30*e-r.IntN(20))
			eid := fmt.Sprintf("%s-enc-%03d", pid, e)
			add(resource{"resourceType": "Encounter", "id": eid, "meta": meta(labels...), "status": "finished",
				"class": coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"), "subject": subject,
				"participant": []any{map[string]any{"individual": map[string]any{"reference": "Practitioner/" + practitioners[e%3]}}},
				"period":      map[string]any{"start": day.Format(time.RFC3339), "end": day.Add(30 * time.Minute).Format(time.RFC3339)}})
			v := vitals[e%len(vitals)]
			add(resource{"resourceType": "Observation", "id": fmt.Sprintf("%s-vs-%03d", pid, e), "meta": meta(labels...), "status": "final",
				"category": []any{concept(obsCategory, "vital-signs", "Vital Signs")}, "code": concept(loinc, v[0], v[1]), "subject": subject,
				"encounter": map[string]any{"reference": "Encounter/" + eid}, "effectiveDateTime": day.Format(time.RFC3339),
				"valueQuantity": map[string]any{"value": 60 + r.IntN(40), "unit": v[2], "system": "http://unitsofmeasure.org", "code": v[2]}})
			if e%2 == 0 {
				l := labs[e/2%len(labs)]
				add(resource{"resourceType": "Observation", "id": fmt.Sprintf("%s-lab-%03d", pid, e), "meta": meta(labels...), "status": "final",
					"category": []any{concept(obsCategory, "laboratory", "Laboratory")}, "code": concept(loinc, l[0], l[1]), "subject": subject,
					"effectiveDateTime": day.Format(time.RFC3339), "performer": []any{map[string]any{"reference": "Practitioner/" + practitioners[e%3]}},
					"valueQuantity": map[string]any{"value": 80 + r.IntN(100), "unit": l[2]}})
			}
		}
		c := conds[r.IntN(len(conds))]
		add(resource{"resourceType": "Condition", "id": pid + "-cond-1", "meta": meta(labels...), "subject": subject,
			"clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
			"category":       []any{concept("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")},
			"code":           concept(snomed, c[0], c[1]), "recordedDate": base.AddDate(-1, 0, 0).Format("2006-01-02")})
		add(provenance(pid+"-cond-1-prov", "Condition/"+pid+"-cond-1", practitioners[0], base.AddDate(-1, 0, 0), labels...))
		m := meds[r.IntN(len(meds))]
		add(resource{"resourceType": "MedicationRequest", "id": pid + "-med-1", "meta": meta(labels...), "status": "active", "intent": "order",
			"subject": subject, "medicationCodeableConcept": concept(rxnorm, m[0], m[1]), "authoredOn": base.AddDate(0, -2, 0).Format("2006-01-02"),
			"requester": map[string]any{"reference": "Practitioner/" + practitioners[0]}})
		if r.IntN(2) == 0 {
			a := allergy[r.IntN(len(allergy))]
			add(resource{"resourceType": "AllergyIntolerance", "id": pid + "-alg-1", "meta": meta(labels...), "patient": subject,
				"clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
				"code":           concept(snomed, a[0], a[1])})
		}
		add(resource{"resourceType": "Appointment", "id": pid + "-appt-1", "meta": meta(), "status": "booked",
			"start": base.AddDate(0, 1, r.IntN(20)).Format(time.RFC3339), "end": base.AddDate(0, 1, 0).Add(time.Hour).Format(time.RFC3339),
			"participant": []any{map[string]any{"actor": subject, "status": "accepted"},
				map[string]any{"actor": map[string]any{"reference": "Practitioner/" + practitioners[1]}, "status": "accepted"}}})
		add(resource{"resourceType": "DocumentReference", "id": pid + "-note-1", "meta": meta(labels...), "status": "current", "subject": subject,
			"type": concept(loinc, "11506-3", "Progress note"), "category": []any{concept(docCategory, "clinical-note", "Clinical Note")}, "date": base.AddDate(0, 0, -3).Format(time.RFC3339),
			"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "data": "UGF0aWVudCBkb2luZyB3ZWxsLg=="}}}})
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("pt-%03d", i)
		birth := time.Date(1940+r.IntN(70), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
		patient(id, given[r.IntN(len(given))], family[r.IntN(len(family))], birth, []string{"female", "male"}[r.IntN(2)])
		clinical(id, 3+r.IntN(4))
	}
	// Missing demographics.
	p := patient("pt-nodemo", "", "", "", "unknown")
	delete(p, "birthDate")
	p["name"] = []any{map[string]any{"extension": []any{map[string]any{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}}}}
	clinical("pt-nodemo", 1)
	// A duplicate chart: the old one replaced by the new.
	old := patient("pt-dup-old", "Rosa", "Delgado", "1961-04-02", "female")
	old["active"] = false
	old["link"] = []any{map[string]any{"other": map[string]any{"reference": "Patient/pt-dup-new"}, "type": "replaced-by"}}
	neu := patient("pt-dup-new", "Rosa", "Delgado", "1961-04-02", "female")
	neu["link"] = []any{map[string]any{"other": map[string]any{"reference": "Patient/pt-dup-old"}, "type": "replaces"}}
	clinical("pt-dup-new", 2)
	patient("pt-dup-typo", "Rosa", "Delgadoo", "1961-04-02", "female") // unlinked near-duplicate
	// A very long history (paging).
	patient("pt-long", "Walter", "Hofmann", "1938-07-19", "male")
	clinical("pt-long", 300)
	// Deceased.
	dec := patient("pt-deceased", "Agnes", "Whitfield", "1930-02-11", "female")
	dec["deceasedDateTime"] = "2025-12-24T03:00:00Z"
	clinical("pt-deceased", 2)
	// A newborn without a given name.
	nb := patient("pt-newborn", "", "Baby Boy Okonkwo", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).Format("2006-01-02"), "male")
	nb["name"] = []any{map[string]any{"use": "temp", "family": "Baby Boy Okonkwo"}}
	// Non-ASCII names.
	patient("pt-unicode", "Zoë", "Ødegård-Nguyễn", "1999-09-09", "female")
	clinical("pt-unicode", 2)
	// Sensitive records the consent clearance must withhold.
	patient("pt-sensitive", "Casey", "Marlow", "1985-05-05", "other")
	clinical("pt-sensitive", 2)
	subj := map[string]any{"reference": "Patient/pt-sensitive"}
	add(resource{"resourceType": "Condition", "id": "pt-sensitive-sud", "meta": meta("R", "SUD", "42CFRPart2", "NORDSCLCD"), "subject": subj,
		"code": concept(snomed, "66214007", "Substance abuse")})
	add(resource{"resourceType": "Observation", "id": "pt-sensitive-hiv", "meta": meta("R", "HIV"), "status": "final", "subject": subj,
		"encounter": map[string]any{"reference": "Encounter/pt-sensitive-enc-001"}, // drawn at a visit the patient's app sees
		"category":  []any{concept(obsCategory, "laboratory", "Laboratory")}, "code": concept(loinc, "75622-1", "HIV 1 and 2 tests")})
	add(resource{"resourceType": "DocumentReference", "id": "pt-sensitive-psy", "meta": meta("R", "PSY", "PSYTHPN"), "status": "current", "subject": subj,
		"type": concept(loinc, "11488-4", "Consult note"), "category": []any{concept(docCategory, "clinical-note", "Clinical Note")}, "content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "data": "cHN5Y2hvdGhlcmFweQ=="}}}})
	add(resource{"resourceType": "Condition", "id": "pt-sensitive-mh", "meta": meta("R", "MH"), "subject": subj, "code": concept(snomed, "35489007", "Depressive disorder")})
	// Unlabelled, about a record that is: the proxy judges a Provenance by
	// its targets, so neither pt-sensitive's app nor a clinician of the
	// default clearance sees it.
	add(provenance("pt-sensitive-sud-prov", "Condition/pt-sensitive-sud", practitioners[2], base.AddDate(0, -1, 0)))
	// A panel of patients, for a Group-level bulk export (a population
	// health service's): two ordinary patients and pt-sensitive, whose
	// labelled records an export leaves out for a default clearance.
	member := func(id string) any { return map[string]any{"entity": map[string]any{"reference": "Patient/" + id}} }
	add(resource{"resourceType": "Group", "id": PanelGroup, "meta": meta(), "type": "person", "actual": true,
		"name": "Dr. Lee's panel", "quantity": 3, "member": []any{member("pt-001"), member("pt-002"), member("pt-sensitive")}})
	for _, t := range terminology() {
		add(t)
	}
	return d
}
