package fhirproxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// compartmentTypes are the Patient compartment's types whose membership
// one reference settles, beyond the first ones the proxy had: the element
// that names the patient and the search parameter that confines a search.
var compartmentTypes = []struct{ typ, field, param string }{
	{"RelatedPerson", "patient", "patient"}, {"AdverseEvent", "subject", "subject"}, {"BodyStructure", "patient", "patient"},
	{"ChargeItem", "subject", "patient"}, {"ClaimResponse", "patient", "patient"}, {"CommunicationRequest", "subject", "patient"},
	{"CoverageEligibilityRequest", "patient", "patient"}, {"CoverageEligibilityResponse", "patient", "patient"},
	{"DetectedIssue", "patient", "patient"}, {"DeviceUseStatement", "subject", "patient"}, {"DocumentManifest", "subject", "patient"},
	{"ImmunizationEvaluation", "patient", "patient"}, {"ImmunizationRecommendation", "patient", "patient"},
	{"Invoice", "subject", "patient"}, {"List", "subject", "patient"}, {"MeasureReport", "subject", "patient"},
	{"MolecularSequence", "patient", "patient"}, {"RequestGroup", "subject", "patient"}, {"SupplyDelivery", "patient", "patient"},
	{"VisionPrescription", "patient", "patient"}, {"ResearchSubject", "individual", "patient"}, {"EnrollmentRequest", "candidate", "patient"},
	{"AppointmentResponse", "actor", "actor"},
}

// TestCompartmentTypes: a patient app reads and searches the patient's
// records of each type placed in the compartment by one reference (US
// Core's RelatedPerson among them), and nobody else's: another patient's
// record answers as a missing one does, a search goes confined to the
// patient (and what an upstream that ignores that sends back is
// filtered), another patient's compartment is refused unforwarded.
func TestCompartmentTypes(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	for _, c := range compartmentTypes {
		for id, patient := range map[string]string{"mine": "p1", "theirs": "p2"} {
			f.up.resources[c.typ+"/"+id] = map[string]any{"resourceType": c.typ, "id": id,
				c.field: map[string]any{"reference": "Patient/" + patient}}
		}
	}
	f.up.misbehave = true // searches ignore the patient parameter: the proxy's filter is what keeps p2's out
	f.up.mu.Unlock()
	tok := f.token("launch/patient patient/*.rs", nil)
	clinician := f.token("user/*.rs", everyLabel())
	for _, c := range compartmentTypes {
		if r := f.do("GET", "/"+c.typ+"/mine", tok, ""); r.status != 200 || r.body["id"] != "mine" {
			t.Errorf("%s/mine: %d %s", c.typ, r.status, r.raw)
		}
		theirs, missing := f.do("GET", "/"+c.typ+"/theirs", tok, ""), f.do("GET", "/"+c.typ+"/nope", tok, "")
		if theirs.status != 404 || theirs.raw != missing.raw {
			t.Errorf("%s/theirs: %d %s, a missing one %d %s", c.typ, theirs.status, theirs.raw, missing.status, missing.raw)
		}
		f.up.reset()
		r := f.do("GET", "/"+c.typ+"?_count=10", tok, "")
		if got := entryIDs(r); r.status != 200 || !slices.Equal(got, []string{"mine"}) {
			t.Errorf("%s search: %d, entries %v", c.typ, r.status, got)
		}
		if got := f.up.requests(); len(got) != 1 || !slices.Equal(got[0].URL.Query()[c.param], []string{"Patient/p1"}) {
			t.Errorf("%s search: forwarded %v, want %s=Patient/p1", c.typ, got, c.param)
		}
		f.up.reset()
		r = f.do("GET", "/"+c.typ+"?"+c.param+"="+url.QueryEscape("Patient/p2"), tok, "")
		f.refused(c.typ+" search naming p2", r, 403)
		if c.field != c.param && c.field != "subject" { // searched by its element's own name too
			f.refused(c.typ+" search naming p2 by "+c.field, f.do("GET", "/"+c.typ+"?"+c.field+"=p2", tok, ""), 403)
			if r := f.do("GET", "/"+c.typ+"?"+c.field+"=p1", tok, ""); r.status != 200 {
				t.Errorf("%s search naming p1 by %s: %d %s", c.typ, c.field, r.status, r.raw)
			}
			f.up.reset()
		}
		r = f.do("GET", "/Patient/p2/"+c.typ, tok, "")
		f.refused(c.typ+" in p2's compartment", r, 403)
		if r := f.do("GET", "/"+c.typ+"/theirs", clinician, ""); r.status != 200 {
			t.Errorf("%s/theirs to a clinician: %d %s", c.typ, r.status, r.raw)
		}
		f.up.reset()
	}
}

// TestCompartmentTypeWrites: a patient app writes the patient's own
// records of these types, never another patient's, and a record it
// writes names no other patient's (p2's RelatedPerson performing p1's
// Observation, which was taken as a shared record's reference while
// RelatedPerson was outside the compartment).
func TestCompartmentTypeWrites(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	for id, patient := range map[string]string{"mine": "p1", "theirs": "p2"} {
		f.up.resources["RelatedPerson/"+id] = map[string]any{"resourceType": "RelatedPerson", "id": id,
			"patient": map[string]any{"reference": "Patient/" + patient}}
	}
	f.up.mu.Unlock()
	tok := f.token("launch/patient patient/*.cruds", nil)
	bodies := map[string]func(patient string) string{
		"RelatedPerson": func(p string) string {
			return `{"resourceType":"RelatedPerson","patient":{"reference":"Patient/` + p + `"},"name":[{"family":"Kin"}]}`
		},
		"List": func(p string) string {
			return `{"resourceType":"List","status":"current","mode":"working","subject":{"reference":"Patient/` + p + `"}}`
		},
		"AdverseEvent": func(p string) string {
			return `{"resourceType":"AdverseEvent","actuality":"actual","subject":{"reference":"Patient/` + p + `"}}`
		},
		"DetectedIssue": func(p string) string {
			return `{"resourceType":"DetectedIssue","status":"final","patient":{"reference":"Patient/` + p + `"}}`
		},
	}
	for typ, body := range bodies {
		r := f.do("POST", "/"+typ, tok, body("p1"))
		if got := f.up.requests(); r.status != 201 || len(got) != 1 || got[0].Method != "POST" {
			t.Errorf("%s for p1: %d %s, forwarded %v", typ, r.status, r.raw, got)
		}
		f.up.reset()
		f.refused(typ+" for p2", f.do("POST", "/"+typ, tok, body("p2")), 403)
	}
	observation := func(performer string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/p1"},` +
			`"performer":[{"reference":"` + performer + `"}]}`
	}
	r := f.do("POST", "/Observation", tok, observation("RelatedPerson/mine"))
	if r.status != 201 {
		t.Errorf("performed by p1's RelatedPerson: %d %s", r.status, r.raw)
	}
	f.up.reset()
	r = f.do("POST", "/Observation", tok, observation("RelatedPerson/theirs"))
	if r.status != 403 {
		t.Errorf("performed by p2's RelatedPerson: %d %s", r.status, r.raw)
	}
	f.onlyReads("performed by p2's RelatedPerson")
}

// TestListEntries: a List's entries name records and hold none; they are
// not a Bundle's. A List with entries was answered 502 ("entries outside a
// Bundle") wherever its answer is read: a read, a version, a write's
// answer, for any token whose answers are judged. A List is judged as one
// resource (its patient, its labels); what it names stays unread, as any
// reference does. A List answered for a List request is still held to
// being one: a Bundle there is the proxy's 502, not judged as a List.
func TestListEntries(t *testing.T) {
	f := newFixture(t)
	list := func(id, patient string, labels ...string) map[string]any {
		l := map[string]any{"resourceType": "List", "id": id, "status": "current", "mode": "working",
			"subject": map[string]any{"reference": "Patient/" + patient},
			"entry":   []any{map[string]any{"item": map[string]any{"reference": "Observation/lab-1"}, "flag": map[string]any{"text": "new"}}}}
		if labels != nil {
			l["meta"] = obs("x", "p1", "", labels...)["meta"]
		}
		return l
	}
	f.up.mu.Lock()
	f.up.resources["List/mine"], f.up.resources["List/theirs"], f.up.resources["List/psy"] = list("mine", "p1"), list("theirs", "p2"), list("psy", "p1", "R", "PSY")
	f.up.mu.Unlock()
	patient := f.token("launch/patient patient/List.cruds patient/Observation.rs", nil)
	clinician := f.token("user/List.cruds", nil) // the default clearance: answers are judged
	for _, c := range []struct {
		name, method, target, tok, body string
		status                          int
	}{
		{"a patient app's read", "GET", "/List/mine", patient, "", 200},
		{"a patient app's vread", "GET", "/List/mine/_history/1", patient, "", 200},
		{"a clinician's read", "GET", "/List/theirs", clinician, "", 200},
		{"a patient app's update", "PUT", "/List/mine", patient, mustJSON(list("mine", "p1")), 200},
		{"a patient app's create", "POST", "/List", patient, strings.Replace(mustJSON(list("", "p1")), `"id":"",`, "", 1), 201},
		{"another patient's", "GET", "/List/theirs", patient, "", 404},
		{"one beyond the clearance", "GET", "/List/psy", clinician, "", 404},
	} {
		r := f.do(c.method, c.target, c.tok, c.body)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.raw, c.status)
		} else if c.status < 300 && (r.body["resourceType"] != "List" || len(r.body["entry"].([]any)) != 1) {
			t.Errorf("%s: %s", c.name, r.raw)
		}
		f.up.reset()
	}
	// A List whose entries hold resources is not FHIR: what it holds
	// would pass as the List's own, read or searched.
	f.up.mu.Lock()
	holding := list("holding", "p1")
	holding["entry"] = []any{map[string]any{"item": map[string]any{"reference": "Observation/lab-2"}, "resource": obs("lab-2", "p2", "laboratory")}}
	f.up.resources["List/holding"] = holding
	f.up.mu.Unlock()
	if r := f.do("GET", "/List/holding", patient, ""); r.status != 404 {
		t.Errorf("a List holding p2's record: %d %s", r.status, r.raw)
	}
	if r := f.do("GET", "/List?_id=holding", patient, ""); r.status != 200 || strings.Contains(r.raw, "lab-2") {
		t.Errorf("a List holding p2's record, searched: %d %s", r.status, r.raw)
	}
	// A Bundle answering a List request is not a List: judged as one, p2's
	// records would pass inside its entries.
	f.up.mu.Lock()
	f.up.resources["List/odd"] = map[string]any{"resourceType": "Bundle", "id": "odd", "type": "searchset",
		"entry": []any{map[string]any{"resource": obs("lab-2", "p2", "laboratory")}}}
	f.up.mu.Unlock()
	if r := f.do("GET", "/List/odd", clinician, ""); r.status != 502 || strings.Contains(r.raw, "lab-2") {
		t.Errorf("a Bundle for a List: %d %s", r.status, r.raw)
	}
	// And a write's answer: an upstream answering a List's create with a
	// searchset of another patient's records.
	odd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.up.write(w, 201, map[string]any{"resourceType": "Bundle", "type": "searchset",
			"entry": []any{map[string]any{"resource": obs("lab-2", "p2", "laboratory")}}})
	}))
	defer odd.Close()
	f.proxy.Upstream, _ = url.Parse(odd.URL)
	created := `{"resourceType":"List","status":"current","mode":"working","title":"to review"}`
	if r := f.do("POST", "/List", clinician, created); r.status != 502 || strings.Contains(r.raw, "lab-2") {
		t.Errorf("a Bundle for a List's create: %d %s", r.status, r.raw)
	}
}

// TestDevices: US Core's implantable devices are the patient's (Device is
// not in the CompartmentDefinition): a patient app reads and searches its
// patient's devices, never another patient's, and reads a device that
// names no patient (a ward's monitor) as a shared record. Its writes may
// name either, never another patient's, and may change only the patient's
// own devices.
func TestDevices(t *testing.T) {
	f := newFixture(t)
	device := func(id, patient string) map[string]any {
		d := map[string]any{"resourceType": "Device", "id": id, "status": "active"}
		if patient != "" {
			d["patient"] = map[string]any{"reference": "Patient/" + patient}
		}
		return d
	}
	f.up.mu.Lock()
	f.up.resources["Device/implant-1"], f.up.resources["Device/implant-2"], f.up.resources["Device/monitor"] =
		device("implant-1", "p1"), device("implant-2", "p2"), device("monitor", "")
	f.up.misbehave = true // searches ignore the patient parameter
	f.up.mu.Unlock()
	tok := f.token("launch/patient patient/Device.cruds patient/Observation.cruds", nil)
	missing := f.do("GET", "/Device/nope", tok, "")
	for id, want := range map[string]int{"implant-1": 200, "monitor": 200, "implant-2": 404} {
		if r := f.do("GET", "/Device/"+id, tok, ""); r.status != want || want == 404 && r.raw != missing.raw {
			t.Errorf("Device/%s: %d %s", id, r.status, r.raw)
		}
	}
	f.up.reset()
	r := f.do("GET", "/Device?status=active", tok, "")
	if got := f.up.requests(); len(got) != 1 || got[0].URL.Query().Get("patient") != "Patient/p1" {
		t.Errorf("Device search: forwarded %v", got)
	}
	if got := entryIDs(r); r.status != 200 || slices.Contains(got, "implant-2") || !slices.Contains(got, "implant-1") {
		t.Errorf("Device search: %d %v", r.status, got)
	}
	f.up.reset()
	observation := func(device string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/p1"},"device":{"reference":"` + device + `"}}`
	}
	for _, c := range []struct {
		name, method, target, body string
		status                     int
	}{
		{"an Observation by the patient's implant", "POST", "/Observation", observation("Device/implant-1"), 201},
		{"an Observation by a ward's monitor", "POST", "/Observation", observation("Device/monitor"), 201},
		{"an Observation by another patient's implant", "POST", "/Observation", observation("Device/implant-2"), 403},
		{"the patient's device", "POST", "/Device", mustJSON(device("", "p1")), 201},
		{"another patient's device", "POST", "/Device", mustJSON(device("", "p2")), 403},
		{"no patient's device", "POST", "/Device", mustJSON(device("", "")), 403},
		{"the ward's monitor changed", "PUT", "/Device/monitor", mustJSON(device("monitor", "")), 403},
		{"the ward's monitor taken", "PUT", "/Device/monitor", mustJSON(device("monitor", "p1")), 404},
		{"another patient's implant taken", "PUT", "/Device/implant-2", mustJSON(device("implant-2", "p1")), 404},
	} {
		body := strings.Replace(c.body, `"id":"",`, "", 1)
		r := f.do(c.method, c.target, tok, body)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.raw, c.status)
		}
		if c.status >= 400 {
			f.onlyReads(c.name)
		}
		f.up.reset()
	}
}

// TestAppointmentResponses: a patient scheduling app answers its patient's
// appointments (an AppointmentResponse is the patient's when its actor is
// the patient), and reads the answers the patient gave; not another
// patient's, not an answer to another patient's appointment, not one in a
// practitioner's name.
func TestAppointmentResponses(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	for id, patient := range map[string]string{"a1": "p1", "a2": "p2"} {
		f.up.resources["Appointment/"+id] = map[string]any{"resourceType": "Appointment", "id": id, "status": "proposed",
			"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patient}, "status": "needs-action"},
				map[string]any{"actor": map[string]any{"reference": "Practitioner/dr"}, "status": "accepted"}}}
	}
	for id, actor := range map[string]string{"mine": "Patient/p1", "theirs": "Patient/p2", "dr": "Practitioner/dr"} {
		f.up.resources["AppointmentResponse/"+id] = map[string]any{"resourceType": "AppointmentResponse", "id": id,
			"appointment": map[string]any{"reference": "Appointment/a1"}, "actor": map[string]any{"reference": actor}, "participantStatus": "accepted"}
	}
	f.up.mu.Unlock()
	tok := f.token("launch/patient patient/Appointment.rs patient/AppointmentResponse.cruds patient/Practitioner.rs", nil)
	answer := func(appointment, actor string) string {
		return `{"resourceType":"AppointmentResponse","appointment":{"reference":"` + appointment + `"},"actor":{"reference":"` + actor +
			`"},"participantStatus":"accepted"}`
	}
	if r := f.do("POST", "/AppointmentResponse", tok, answer("Appointment/a1", "Patient/p1")); r.status != 201 {
		t.Errorf("the patient accepts its appointment: %d %s", r.status, r.raw)
	}
	f.up.reset()
	for name, body := range map[string]string{
		"in another patient's name":        answer("Appointment/a1", "Patient/p2"),
		"to another patient's appointment": answer("Appointment/a2", "Patient/p1"),
		"in the practitioner's name":       answer("Appointment/a1", "Practitioner/dr"),
	} {
		if r := f.do("POST", "/AppointmentResponse", tok, body); r.status != 403 {
			t.Errorf("an answer %s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name) // (the appointment named is read to judge it)
	}
	for id, want := range map[string]int{"mine": 200, "theirs": 404, "dr": 404} {
		if r := f.do("GET", "/AppointmentResponse/"+id, tok, ""); r.status != want {
			t.Errorf("AppointmentResponse/%s: %d, want %d", id, r.status, want)
		}
	}
}

// TestCompartmentParameterOnce: a patient app's search is confined by its
// patient, added once: a search that already carries exactly that
// parameter (the next page of one, whose link a server that pages by
// offset writes with the query it was sent) goes as it came, where each
// page had one patient parameter more than the last until the proxy
// refused one as having too many (found by the sandbox's
// FuzzSearchesAgree). Another form of the same patient still gets the
// proxy's own beside it.
func TestCompartmentParameterOnce(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/*.rs", nil)
	for _, c := range []struct{ target, upstream string }{
		{"/Observation?patient=Patient/p1&_count=2", "patient=Patient%2Fp1&_count=2"},
		{"/Observation?patient=Patient/p1&patient=Patient/p1", "patient=Patient%2Fp1&patient=Patient%2Fp1"},
		{"/Observation?patient=p1", "patient=p1&patient=Patient%2Fp1"},
		{"/Observation?subject=Patient/p1", "subject=Patient%2Fp1&patient=Patient%2Fp1"},
		{"/Patient?_id=p1", "_id=p1"},
		{"/Patient?_id=p1&_id=p1", "_id=p1&_id=p1"},
	} {
		r := f.do("GET", c.target, tok, "")
		got := f.up.requests()
		if r.status != 200 || len(got) != 1 || got[0].URL.RawQuery != c.upstream {
			var q []string
			for _, g := range got {
				q = append(q, g.URL.RawQuery)
			}
			t.Errorf("%s: %d, upstream %q, want %q", c.target, r.status, q, c.upstream)
		}
		f.up.reset()
	}
}

// TestCompartmentSearchOfSharedType: a patient app searching a shared type
// in its compartment (Patient/p1/Practitioner) is told the type is in no
// patient's compartment. Searched as the type, the proxy would answer
// another search: every Practitioner where the server finds none. Found by
// FuzzReadsAgree (the sandbox). The patient's own Patient is in its
// compartment; so are the compartment's types.
func TestCompartmentSearchOfSharedType(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/*.rs", nil)
	for _, target := range []string{"/Patient/p1/Practitioner", "/Patient/p1/Practitioner?_id=pr1", "/Patient/p1/Organization/_search", "/Patient/p1/Medication?code=1"} {
		method := "GET"
		if strings.HasSuffix(target, "_search") {
			method = "POST"
		}
		r := f.do(method, target, tok, "", "Content-Type", "application/x-www-form-urlencoded")
		f.refused(target, r, http.StatusBadRequest)
	}
	for target, upstream := range map[string]string{
		"/Patient/p1/Observation": "/Observation?patient=Patient%2Fp1",
		"/Patient/p1/Patient":     "/Patient?_id=p1",
		"/Practitioner?_id=pr1":   "/Practitioner?_id=pr1",
	} {
		r := f.do("GET", target, tok, "")
		got := f.up.requests()
		if r.status != http.StatusOK || len(got) != 1 || got[0].URL.Path+"?"+got[0].URL.RawQuery != upstream {
			t.Errorf("%s: %d %s, upstream %v, want %s", target, r.status, r.raw, got, upstream)
		}
		f.up.reset()
	}
}
