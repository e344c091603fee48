package fhirproxy_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPatientWrites holds the proxy's core write invariant over fuzzed
// resources, end to end: whatever a patient app (patient context p1)
// creates, updates, writes in a transaction (beside an entry naming it by
// its fullUrl) or sets by a JSON Patch of a stored record, and whatever
// the proxy lets through, no reference in what reaches the FHIR server
// names another patient, a record of another patient's (Patient/p2,
// Observation/lab-2, Binary/b2) or one withheld for its labels
// (Observation/psy-1), in any form the server reads (relative, versioned,
// absolute on its base, escaped); no attachment names one; no
// reference that may be to a patient carries p2's record number; and no
// reference names p2's encounter (Encounter/e2) by its visit number; and
// a Binary it writes (a fifth form: the extension's reference as its
// securityContext) is bound to one of p1's records, and a Provenance it
// creates (a sixth: about what the extension and the performer name) is
// about p1's records only. The
// forwarded body is read with encoding/json, independently of the
// proxy's own reading of it.
func FuzzPatientWrites(f *testing.F) {
	// The fuzzed values go into a resource's references, a contained
	// document's attachment and the subject's identifier, as written
	// (escapes, or JSON of their own, included). Each seed but the first
	// two has one value the proxy must refuse, so that the fuzzer starts
	// at the boundary.
	for form := range uint8(6) { // create, update, transaction, JSON Patch, a Binary bound to the extension's reference, a Provenance
		f.Add("Patient/p1", "Practitioner/dr", "Binary/b1", "Binary/b1", "1", "V1", form)
		f.Add("Patient\\/p1", "Patient/p1", "Observation/vs-1", "https://docs.example.org/1", "1", "V1", form)
		f.Add("Patient/p1", "Patient/p2", "Binary/b1", "Binary/b1", "1", "V1", form)
		f.Add("Patient/p1", "Practitioner/dr", "Binary/b2", "Binary/b1", "1", "V1", form)
		f.Add("Patient/p1", "Practitioner/dr", "Observation/lab-2/_history/1", "Binary/b1", "1", "V1", form)
		f.Add("Patient/p1", "Practitioner/dr", "Binary/b1", "Binary/b2", "1", "V1", form)
		f.Add("Patient/p1", "Practitioner/dr", "Binary/b1", "Binary/b1", "2", "V1", form)
		f.Add("Patient/p1", "Practitioner/dr", "Observation/psy-1", "Binary/b1", "1", "V1", form)
		f.Add("Patient/p1", "Practitioner/dr", "Binary/b1", "Binary/b1", "1", "V2", form)
		f.Add("Patient/p1", "Practitioner/dr", "Practitioner/dr", "Binary/b1", "1", "V1", form)
	}
	fx := newFixture(&testing.T{})
	fx.up.mu.Lock()
	fx.up.resources["Binary/b1"] = map[string]any{"resourceType": "Binary", "id": "b1", "contentType": "text/plain", "securityContext": map[string]any{"reference": "Patient/p1"}}
	fx.up.resources["Binary/b2"] = map[string]any{"resourceType": "Binary", "id": "b2", "contentType": "text/plain", "securityContext": map[string]any{"reference": "Patient/p2"}}
	for _, e := range [...][2]string{{"e1", "p1"}, {"e2", "p2"}} {
		fx.up.resources["Encounter/"+e[0]] = map[string]any{"resourceType": "Encounter", "id": e[0], "status": "finished", "class": map[string]any{"code": "AMB"},
			"subject": map[string]any{"reference": "Patient/" + e[1]}, "identifier": []any{map[string]any{"system": "urn:visit", "value": "V" + e[0][1:]}}}
	}
	fx.up.mu.Unlock()
	tok := fx.token("launch/patient patient/Observation.cruds patient/DocumentReference.cruds patient/Binary.crs patient/Provenance.c patient/Patient.rs patient/Encounter.rs patient/Practitioner.rs", nil)
	// p1's records: what a Binary a patient app writes may be bound to.
	p1s := map[string]bool{"Patient/p1": true, "Observation/lab-1": true, "Observation/vs-1": true, "Encounter/e1": true}
	// p2's records, and p1's record the token's clearance withholds
	// (labelled R and PSY).
	others := map[string]bool{"Patient/p2": true, "Observation/lab-2": true, "Binary/b2": true, "Observation/psy-1": true, "Encounter/e2": true}
	f.Fuzz(func(t *testing.T, subject, performer, extension, attachment, mrn, visit string, form uint8) {
		fx.t = t
		fx.up.reset()
		subjectJSON := `{"reference":"` + subject + `","identifier":{"system":"urn:mrn","value":"` + mrn + `"}}`
		encounterJSON := `{"type":"Encounter","identifier":{"system":"urn:visit","value":"` + visit + `"}}`
		performerJSON := `[{"reference":"` + performer + `"}]`
		extensionJSON := `[{"url":"http://example.org/x","valueReference":{"reference":"` + extension + `"}}]`
		containedJSON := `[{"resourceType":"DocumentReference","id":"d","status":"current","content":[{"attachment":{"contentType":"text/plain","url":"` + attachment + `"}}]}]`
		resource := func(id string) string {
			return `{"resourceType":"Observation",` + id + `"status":"final","code":{"text":"x"},"subject":` + subjectJSON +
				`,"encounter":` + encounterJSON + `,"performer":` + performerJSON + `,"extension":` + extensionJSON + `,"contained":` + containedJSON + `,"derivedFrom":[{"reference":"#d"}]}`
		}
		method, target, body, hdr := http.MethodPost, "/Observation", resource(""), []string(nil)
		switch form % 6 {
		case 1:
			method, target, body = http.MethodPut, "/Observation/lab-1", resource(`"id":"lab-1",`)
		case 2: // the resource, and another naming it by its fullUrl
			body = `{"resourceType":"Bundle","type":"transaction","entry":[` +
				`{"fullUrl":"urn:uuid:8c3f1a52-0b7e-4d51-9a55-2f0e4c1d7a01","request":{"method":"POST","url":"Observation"},"resource":` + resource("") + `},` +
				`{"request":{"method":"PUT","url":"Observation/lab-1"},"resource":{"resourceType":"Observation","id":"lab-1","status":"final","code":{"text":"y"},` +
				`"subject":{"reference":"Patient/p1"},"hasMember":[{"reference":"urn:uuid:8c3f1a52-0b7e-4d51-9a55-2f0e4c1d7a01"}]}}]}`
			target = "/"
		case 3: // the same content, set by a patch of the stored record
			method, target, hdr = http.MethodPatch, "/Observation/lab-1", []string{"Content-Type", "application/json-patch+json"}
			body = `[{"op":"replace","path":"/subject","value":` + subjectJSON + `},{"op":"add","path":"/encounter","value":` + encounterJSON +
				`},{"op":"add","path":"/performer","value":` + performerJSON +
				`},{"op":"add","path":"/extension","value":` + extensionJSON + `},{"op":"add","path":"/contained","value":` + containedJSON +
				`},{"op":"add","path":"/derivedFrom","value":[{"reference":"#d"}]}]`
		case 4: // a document's content, bound to what the extension names
			target = "/Binary"
			body = `{"resourceType":"Binary","contentType":"text/plain","data":"aGk=","securityContext":{"reference":"` + extension + `"}}`
		case 5: // a provenance, about what the extension and the performer name
			target = "/Provenance"
			body = `{"resourceType":"Provenance","recorded":"2026-11-02T10:00:00Z","target":[{"reference":"` + extension + `"},{"reference":"` + performer +
				`"}],"agent":[{"who":{"reference":"` + subject + `"}}]}`
		}
		r := fx.do(method, target, tok, body, hdr...)
		for i, g := range fx.up.requests() {
			if g.Method == http.MethodGet {
				continue
			}
			fx.up.mu.Lock()
			sent := fx.up.bodies[i]
			fx.up.mu.Unlock()
			var doc any
			if err := json.Unmarshal([]byte(sent), &doc); err != nil {
				t.Fatalf("forwarded a body encoding/json cannot read (%d): %q", r.status, sent)
			}
			p1sRecord := func(ref string) bool {
				ref = strings.TrimPrefix(strings.TrimPrefix(ref, fx.up.ts.URL+"/"), fx.base+"/")
				typ, rest, ok := strings.Cut(ref, "/")
				return ok && p1s[typ+"/"+strings.Split(rest, "/")[0]]
			}
			switch m, _ := doc.(map[string]any); m["resourceType"] {
			case "Binary":
				ctx, _ := m["securityContext"].(map[string]any)
				if ref, _ := ctx["reference"].(string); !p1sRecord(ref) {
					t.Fatalf("a Binary bound to %q went upstream (%d): %q", ref, r.status, body)
				}
			case "Provenance":
				targets, _ := m["target"].([]any)
				for _, tg := range targets {
					tg, _ := tg.(map[string]any)
					if ref, _ := tg["reference"].(string); !p1sRecord(ref) {
						t.Fatalf("a Provenance about %q went upstream (%d): %q", ref, r.status, body)
					}
				}
			}
			names := func(v string) bool {
				v = strings.TrimPrefix(strings.TrimPrefix(v, fx.up.ts.URL+"/"), fx.base+"/")
				if typ, rest, ok := strings.Cut(v, "/"); ok {
					id, _, _ := strings.Cut(rest, "/")
					return others[typ+"/"+id]
				}
				return false
			}
			eachObject(doc, func(o map[string]any) {
				if ref, _ := o["reference"].(string); names(ref) {
					t.Fatalf("a write naming %s went upstream (%d): %q", ref, r.status, body)
				}
				if u, _ := o["url"].(string); names(u) && (o["contentType"] != nil || o["data"] != nil || o["size"] != nil) {
					t.Fatalf("an attachment naming %s went upstream (%d): %q", u, r.status, body)
				}
				id, _ := o["identifier"].(map[string]any)
				ref, _ := o["reference"].(string)
				typ, _ := o["type"].(string)
				if id != nil && id["system"] == "urn:mrn" && id["value"] == "2" && (typ == "" || typ == "Patient") &&
					(ref == "" || strings.HasPrefix(ref, "Patient/") || strings.Contains(ref, "://")) {
					t.Fatalf("a reference carrying p2's record number went upstream (%d): %q", r.status, body)
				}
				if id != nil && id["system"] == "urn:visit" && id["value"] == "V2" {
					t.Fatalf("a reference by p2's visit number went upstream (%d): %q", r.status, body)
				}
			})
		}
	})
}

// eachObject calls fn with every JSON object in v, at any depth.
func eachObject(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(v)
		for _, e := range v {
			eachObject(e, fn)
		}
	case []any:
		for _, e := range v {
			eachObject(e, fn)
		}
	}
}

// FuzzWritesAgree: a write in a transaction or a batch is decided as the
// same write on its own, and what goes upstream is the same content: a
// create, an update, a Binary bound to a record, a Provenance about one,
// by a patient app, a clinician short of every label and a constrained
// writer. A check one way runs and the other skips would break it.
func FuzzWritesAgree(f *testing.F) {
	for _, refs := range [][3]string{
		{"Patient/p1", "Practitioner/dr", "Observation/lab-1"}, {"Patient/p2", "Practitioner/dr", "Observation/lab-1"},
		{"Patient/p1", "Patient/p2", "Observation/vs-1"}, {"Patient/p1", "Practitioner/dr", "Observation/psy-1"},
		{"Patient/p1", "Practitioner/dr", "Observation/lab-2"}, {"Patient/p1", "Practitioner/dr", "Binary/b2"},
		{"Patient/p1", "Practitioner/dr", "Observation/lab-1/_history/1"}, {"Patient/p1", "Observation/lab-2", "Encounter/e1"},
	} {
		for form := range uint8(12) {
			f.Add(refs[0], refs[1], refs[2], "laboratory", form)
		}
	}
	fx := newFixture(&testing.T{})
	fx.up.mu.Lock()
	fx.up.resources["Binary/b2"] = map[string]any{"resourceType": "Binary", "id": "b2", "contentType": "text/plain", "securityContext": map[string]any{"reference": "Patient/p2"}}
	fx.up.resources["Encounter/e1"] = map[string]any{"resourceType": "Encounter", "id": "e1", "status": "finished", "class": map[string]any{"code": "AMB"}, "subject": map[string]any{"reference": "Patient/p1"}}
	fx.up.mu.Unlock()
	tokens := []string{
		fx.token("launch/patient patient/Observation.cruds patient/Binary.crs patient/Provenance.c patient/Patient.rs patient/Encounter.rs patient/Practitioner.rs", nil),
		fx.token("user/Observation.cruds user/Binary.crs user/Provenance.crs user/Patient.rs user/Encounter.rs user/Practitioner.rs", nil),
		fx.token("launch/patient patient/Observation.cu?category=laboratory patient/Observation.rs patient/Patient.rs patient/Practitioner.rs", everyLabel()),
	}
	f.Fuzz(func(t *testing.T, subject, performer, other, category string, form uint8) {
		for _, v := range []string{subject, performer, other, category} {
			if !utf8.ValidString(v) || strings.ContainsAny(v, "\"\\") || hasControlByte(v) {
				return // each goes into JSON as written
			}
		}
		fx.t = t
		tok := tokens[int(form/4)%len(tokens)]
		obsJSON := func(id string) string {
			return `{"resourceType":"Observation",` + id + `"status":"final","category":[{"coding":[{"code":"` + category + `"}]}],"code":{"text":"x"},` +
				`"subject":{"reference":"` + subject + `"},"performer":[{"reference":"` + performer + `"}],"derivedFrom":[{"reference":"` + other + `"}]}`
		}
		method, url, body := http.MethodPost, "Observation", obsJSON("")
		switch form % 4 {
		case 1:
			method, url, body = http.MethodPut, "Observation/lab-1", obsJSON(`"id":"lab-1",`)
		case 2:
			url, body = "Binary", `{"resourceType":"Binary","contentType":"text/plain","data":"aGk=","securityContext":{"reference":"`+other+`"}}`
		case 3:
			url, body = "Provenance", `{"resourceType":"Provenance","recorded":"2026-11-02T10:00:00Z","target":[{"reference":"`+other+
				`"}],"agent":[{"who":{"reference":"`+performer+`"}}]}`
		}
		// sent is the content of the last write the upstream received: a
		// body on its own, a Bundle's one entry's resource.
		sent := func(bundled bool) any {
			fx.up.mu.Lock()
			defer fx.up.mu.Unlock()
			for i := len(fx.up.got) - 1; i >= 0; i-- {
				if fx.up.got[i].Method == http.MethodGet {
					continue
				}
				var doc map[string]any
				_ = json.Unmarshal([]byte(fx.up.bodies[i]), &doc)
				if bundled {
					entries, _ := doc["entry"].([]any)
					if len(entries) != 1 {
						return nil
					}
					return entries[0].(map[string]any)["resource"]
				}
				return doc
			}
			return nil
		}
		fx.up.reset()
		alone := fx.do(method, "/"+url, tok, body)
		aloneSent := sent(false)
		if method == http.MethodPut && (form/4%3 != 1 || !strings.Contains(diagnostics(alone), "not valid FHIR R4")) {
			// The same content made by a JSON Patch of the stored record: the
			// same decision, and where the proxy applies patches (patient
			// context, a constrained scope) the same content upstream. (A
			// patch it does not apply, a clinician's, it does not validate
			// either: the server does.)
			patch := `[{"op":"replace","path":"/category","value":[{"coding":[{"code":"` + category + `"}]}]},{"op":"replace","path":"/code","value":{"text":"x"}},` +
				`{"op":"replace","path":"/subject","value":{"reference":"` + subject + `"}},{"op":"add","path":"/performer","value":[{"reference":"` + performer + `"}]},` +
				`{"op":"add","path":"/derivedFrom","value":[{"reference":"` + other + `"}]}]`
			fx.up.reset()
			r := fx.do(http.MethodPatch, "/"+url, tok, patch, "Content-Type", "application/json-patch+json")
			if r.status/100 == 2 != (alone.status/100 == 2) {
				t.Fatalf("PATCH %s (token %d): %d %.200s; the PUT of its result %d %.200s", url, form/4%3, r.status, r.raw, alone.status, alone.raw)
			}
			if got := sent(false); r.status/100 == 2 && form/4%3 != 1 && !reflect.DeepEqual(got, aloneSent) {
				t.Fatalf("PATCH %s (token %d): %v went upstream; for the PUT of its result %v", url, form/4%3, got, aloneSent)
			}
		}
		for _, typ := range []string{"transaction", "batch"} {
			fx.up.reset()
			r := fx.do("POST", "/", tok, bundle(typ, entry("", method, url, body)))
			entries, _ := r.body["entry"].([]any)
			status := ""
			if len(entries) == 1 {
				status, _ = entries[0].(map[string]any)["response"].(map[string]any)["status"].(string)
			}
			allowed := r.status == http.StatusOK && strings.HasPrefix(status, "2")
			if allowed != (alone.status/100 == 2) {
				t.Fatalf("%s %s (token %d): on its own %d %.200s; in a %s %d %q %.200s", method, url, form/4%3, alone.status, alone.raw, typ, r.status, status, r.raw)
			}
			if got := sent(true); allowed && !reflect.DeepEqual(got, aloneSent) {
				t.Fatalf("%s %s (token %d): on its own %v went upstream; in a %s %v", method, url, form/4%3, aloneSent, typ, got)
			}
		}
		if method != http.MethodPost || url != "Observation" || strings.ContainsRune(other, 0x7f) { // (DEL: no header value)
			return
		}
		// A conditional create, its criteria naming a record by id (one the
		// token may see, another patient's, a withheld one, none): on its
		// own with If-None-Exist, and in a transaction with ifNoneExist,
		// alike. The proxy resolves it where answers are judged.
		criteria := "_id=" + other[strings.LastIndexByte(other, '/')+1:]
		fx.up.reset()
		alone = fx.do(method, "/"+url, tok, body, "If-None-Exist", criteria)
		fx.up.reset()
		e := `{"request":{"method":"POST","url":"Observation","ifNoneExist":` + mustJSON(criteria) + `},"resource":` + body + `}`
		r := fx.do("POST", "/", tok, bundle("transaction", e))
		entries, _ := r.body["entry"].([]any)
		status := ""
		if len(entries) == 1 {
			status, _ = entries[0].(map[string]any)["response"].(map[string]any)["status"].(string)
		}
		// (Under a constrained scope a Bundle refuses it, and says to send
		// it on its own, where its criteria's search can go under the
		// constraint: that difference is the documented one.)
		onItsOwn := r.status == http.StatusForbidden && strings.Contains(diagnostics(r), "send it on its own")
		if allowed := r.status == http.StatusOK && strings.HasPrefix(status, "2"); allowed != (alone.status/100 == 2) && !(alone.status/100 == 2 && onItsOwn) {
			t.Fatalf("a create if none exist with %s (token %d): on its own %d %.200s; in a transaction %d %q %.200s",
				criteria, form/4%3, alone.status, alone.raw, r.status, status, r.raw)
		}
	})
}

// hasControlByte reports whether s holds a byte below 0x20.
func hasControlByte(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}
