package fhirproxy_test

import (
	"strings"
	"testing"
)

// binary is a Binary bound to context ("" for none).
func binary(id, context string) map[string]any {
	b := map[string]any{"resourceType": "Binary", "id": id, "contentType": "text/plain", "data": "aGVsbG8="}
	if context != "" {
		b["securityContext"] = map[string]any{"reference": context}
	}
	return b
}

// boundRecords adds to the test upstream two Binaries (b-lab, b-psy) and
// two Provenances (pv-lab, pv-psy) bound to the laboratory result lab-1
// and to the psychotherapy note psy-1: what a token whose clearance
// withholds the note may see of each is decided by the record it names.
func (u *upstream) boundRecords() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range []map[string]any{binary("b-lab", "Observation/lab-1"), binary("b-psy", "Observation/psy-1"),
		provenance("pv-lab", "Observation/lab-1"), provenance("pv-psy", "Observation/psy-1")} {
		u.resources[r["resourceType"].(string)+"/"+r["id"].(string)] = r
	}
}

// TestPatientBinaryWrites: a patient app files a document's content as a
// Binary bound (securityContext) to one of its patient's records, and
// replaces or removes only such a Binary. One bound to another patient's
// record, to a shared or withheld one, to another server's or to nothing
// would put content outside the compartment (or take it over), and is
// refused with nothing written.
func TestPatientBinaryWrites(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	for id, ctx := range map[string]string{"mine": "Patient/p1", "mine-lab": "Observation/lab-1", "theirs": "Patient/p2",
		"loose": "", "dr": "Practitioner/dr"} {
		f.up.resources["Binary/"+id] = binary(id, ctx)
	}
	f.up.mu.Unlock()
	app := f.token("launch/patient patient/Binary.cruds patient/Patient.rs patient/Observation.rs patient/Practitioner.rs", nil)
	created := func(ctx string) string { return strings.Replace(mustJSON(binary("", ctx)), `"id":"",`, "", 1) }
	for _, c := range []struct {
		name, method, target, body string
		status                     int
	}{
		{"bound to the patient", "POST", "/Binary", created("Patient/p1"), 201},
		{"bound to the patient's record", "POST", "/Binary", created("Observation/lab-1"), 201},
		{"bound to the patient on the upstream's base", "POST", "/Binary", created(f.up.ts.URL + "/Patient/p1"), 201},
		{"its own replaced", "PUT", "/Binary/mine", mustJSON(binary("mine", "Patient/p1")), 200},
		{"its own rebound to the patient's record", "PUT", "/Binary/mine-lab", mustJSON(binary("mine-lab", "Patient/p1")), 200},
		{"its own removed", "DELETE", "/Binary/mine", "", 204},

		{"bound to another patient", "POST", "/Binary", created("Patient/p2"), 403},
		{"bound to another patient's record", "POST", "/Binary", created("Observation/lab-2"), 403},
		{"bound to a withheld record", "POST", "/Binary", created("Observation/psy-1"), 403},
		{"bound to a shared record", "POST", "/Binary", created("Practitioner/dr"), 403},
		{"bound to a missing record", "POST", "/Binary", created("Observation/nope"), 403},
		{"bound to another server's record", "POST", "/Binary", created("https://other.example/fhir/Patient/p1"), 403},
		{"bound to another Binary", "POST", "/Binary", created("Binary/mine"), 403},
		{"bound to nothing", "POST", "/Binary", created(""), 403},
		{"its own moved to another patient", "PUT", "/Binary/mine", mustJSON(binary("mine", "Patient/p2")), 403},
		{"another patient's taken over", "PUT", "/Binary/theirs", mustJSON(binary("theirs", "Patient/p1")), 404},
		{"an unbound one taken over", "PUT", "/Binary/loose", mustJSON(binary("loose", "Patient/p1")), 404},
		{"a shared record's taken over", "PUT", "/Binary/dr", mustJSON(binary("dr", "Patient/p1")), 404},
		{"one that is not there", "PUT", "/Binary/nope", mustJSON(binary("nope", "Patient/p1")), 404},
		{"another patient's removed", "DELETE", "/Binary/theirs", "", 404},
		{"an unbound one removed", "DELETE", "/Binary/loose", "", 404},
		{"patched", "PATCH", "/Binary/mine", `[{"op":"replace","path":"/contentType","value":"text/html"}]`, 403},
		{"created conditionally", "POST", "/Binary", created("Patient/p1"), 403},
	} {
		hdr := []string{}
		switch {
		case c.method == "PATCH":
			hdr = []string{"Content-Type", "application/json-patch+json"}
		case strings.HasSuffix(c.name, "conditionally"): // Binary is never searched with patient context
			hdr = []string{"If-None-Exist", "_id=x"}
		}
		r := f.do(c.method, c.target, app, c.body, hdr...)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.raw, c.status)
		}
		if c.status >= 400 {
			f.onlyReads(c.name)
		}
		f.up.reset()
	}
	// In a transaction, as on its own; one entry refused refuses all.
	entry := func(ctx string) string {
		return `{"request":{"method":"POST","url":"Binary"},"resource":` + created(ctx) + `}`
	}
	tx := func(entries ...string) string {
		return `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
	}
	if r := f.do("POST", "/", app, tx(entry("Patient/p1"), entry("Observation/lab-1"))); r.status != 200 {
		t.Errorf("a transaction of the patient's Binaries: %d %s", r.status, r.raw)
	}
	f.up.reset()
	if r := f.do("POST", "/", app, tx(entry("Patient/p1"), entry("Patient/p2"))); r.status != 403 {
		t.Errorf("a transaction with another patient's Binary: %d %s", r.status, r.raw)
	}
	f.onlyReads("a transaction with another patient's Binary")
	// A document filed with its content: the Binary bound to the
	// DocumentReference the same transaction creates, by its fullUrl.
	docApp := f.token("launch/patient patient/Binary.cruds patient/DocumentReference.cruds patient/Patient.rs", nil)
	doc := `{"fullUrl":"urn:uuid:doc","request":{"method":"POST","url":"DocumentReference"},"resource":{"resourceType":"DocumentReference",` +
		`"status":"current","subject":{"reference":"Patient/p1"},"content":[{"attachment":{"contentType":"text/plain","url":"urn:uuid:bin"}}]}}`
	bin := func(ctx string) string {
		return `{"fullUrl":"urn:uuid:bin","request":{"method":"POST","url":"Binary"},"resource":` + created(ctx) + `}`
	}
	if r := f.do("POST", "/", docApp, tx(doc, bin("urn:uuid:doc"))); r.status != 200 {
		t.Errorf("a document filed with its content: %d %s", r.status, r.raw)
	}
	f.up.reset()
	for name, ctx := range map[string]string{"a fullUrl the transaction does not write": "urn:uuid:elsewhere", "its own fullUrl": "urn:uuid:bin"} {
		body := tx(doc, bin(ctx))
		if name == "its own fullUrl" { // the Binary alone, bound to itself
			body = tx(bin(ctx))
		}
		if r := f.do("POST", "/", docApp, body); r.status != 403 && r.status != 400 {
			t.Errorf("a Binary bound to %s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads(name)
	}
	// A stored Binary's context is what the server holds: a fullUrl there
	// names no record of this Bundle's, whatever the Bundle's entries are.
	f.up.mu.Lock()
	f.up.resources["Binary/urn-bound"] = binary("urn-bound", "urn:uuid:doc")
	f.up.mu.Unlock()
	takeover := `{"request":{"method":"PUT","url":"Binary/urn-bound"},"resource":` + mustJSON(binary("urn-bound", "Patient/p1")) + `}`
	plainDoc := strings.Replace(doc, `"url":"urn:uuid:bin"`, `"data":"aGk="`, 1)
	if r := f.do("POST", "/", docApp, tx(plainDoc, takeover)); r.status != 404 && r.status != 403 {
		t.Errorf("a stored Binary bound to a fullUrl taken over: %d %s", r.status, r.raw)
	}
	f.onlyReads("a stored Binary bound to a fullUrl taken over")
	// Without the token's read of the context's type, the context is not
	// one it may read.
	blind := f.token("launch/patient patient/Binary.cruds", nil)
	if r := f.do("POST", "/Binary", blind, created("Patient/p1")); r.status != 403 {
		t.Errorf("bound to the patient, without Patient read: %d %s", r.status, r.raw)
	}
	f.onlyReads("without Patient read")
}
