package fhirproxy_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzConditionalWritesAgree: an update, patch or delete whose criteria
// name a record by _id (PUT Observation?_id=lab-1) is the same write as
// the one to that record (PUT Observation/lab-1), for a record that
// exists: the proxy allows both or neither, and sends the same write
// upstream (method, path, If-Match, content). A record the token may not
// see is, for the conditional write, no match: it is never written, nor
// refused in a way that tells it exists. A check made on one form and not
// the other would break it. Binaries and Provenances, judged by the records
// they are bound to, are written by a clinician who may not see every one.
func FuzzConditionalWritesAgree(f *testing.F) {
	for _, id := range []string{"lab-1", "lab-2", "psy-1", "vs-1", "Binary/b-lab", "Binary/b-psy", "Provenance/pv-lab", "Provenance/pv-psy"} {
		for _, c := range [][2]string{{"Patient/p1", "laboratory"}, {"Patient/p2", "laboratory"}, {"Patient/p1", "vital-signs"},
			{"Observation/lab-1", "laboratory"}, {"Observation/psy-1", "laboratory"}} {
			for form := range uint8(9) {
				f.Add(id, c[0], c[1], form)
			}
		}
	}
	fx := newFixture(&testing.T{})
	tokens := []string{
		fx.token("launch/patient patient/Observation.cruds", nil),
		fx.token("user/Observation.cruds", nil), // short of the labels
		fx.token("launch/patient patient/Observation.cruds?category=laboratory", everyLabel()),
	}
	// Binaries and Provenances, judged by the records they are bound to,
	// for a clinician whose clearance withholds the psychotherapy note.
	fx.up.boundRecords()
	bound := fx.token("user/Binary.cruds user/Provenance.cruds user/Observation.rs user/Practitioner.rs", nil)
	existing := map[string]bool{"lab-1": true, "lab-2": true, "psy-1": true, "vs-1": true,
		"Binary/b-lab": true, "Binary/b-psy": true, "Provenance/pv-lab": true, "Provenance/pv-psy": true}
	f.Fuzz(func(t *testing.T, id, subject, category string, form uint8) {
		if !existing[id] {
			return
		}
		typ := "Observation"
		if t, rest, ok := strings.Cut(id, "/"); ok {
			typ, id = t, rest
		}
		for _, v := range []string{subject, category} {
			if !utf8.ValidString(v) || strings.ContainsAny(v, "\"\\") || hasControlByte(v) {
				return // each goes into JSON as written
			}
		}
		fx.t = t
		tok := tokens[int(form/3)%len(tokens)]
		method, content, contentType := http.MethodPut, "", "application/fhir+json"
		switch {
		case typ != "Observation":
			// Bound to subject: a Binary by its securityContext, a
			// Provenance by its target.
			tok = bound
			bind := `"securityContext":{"reference":"` + subject + `"}`
			if typ == "Provenance" {
				bind = `"recorded":"2026-11-02T10:00:00Z","agent":[{"who":{"reference":"Practitioner/dr"}}],"target":[{"reference":"` + subject + `"}]`
			}
			switch form % 3 {
			case 0:
				content = `{"resourceType":"` + typ + `","id":"` + id + `",` + bind
				if typ == "Binary" {
					content += `,"contentType":"text/plain","data":"aGk="`
				}
				content += "}"
			case 1:
				method, contentType = http.MethodPatch, "application/json-patch+json"
				content = `[{"op":"replace","path":"/securityContext","value":{"reference":"` + subject + `"}}]`
				if typ == "Provenance" {
					content = `[{"op":"replace","path":"/target","value":[{"reference":"` + subject + `"}]}]`
				}
			case 2:
				method = http.MethodDelete
			}
		case form%3 == 0:
			content = `{"resourceType":"Observation","id":"` + id + `","status":"final","category":[{"coding":[{"code":"` + category + `"}]}],` +
				`"code":{"text":"x"},"subject":{"reference":"` + subject + `"}}`
		case form%3 == 1:
			method, contentType = http.MethodPatch, "application/json-patch+json"
			content = `[{"op":"replace","path":"/category","value":[{"coding":[{"code":"` + category + `"}]}]},` +
				`{"op":"replace","path":"/subject","value":{"reference":"` + subject + `"}}]`
		default:
			method = http.MethodDelete
		}
		// written is the write the upstream received last, if any: its
		// method, path, If-Match and content.
		written := func() []any {
			fx.up.mu.Lock()
			defer fx.up.mu.Unlock()
			for i := len(fx.up.got) - 1; i >= 0; i-- {
				if r := fx.up.got[i]; r.Method != http.MethodGet {
					var doc any
					_ = json.Unmarshal([]byte(fx.up.bodies[i]), &doc)
					return []any{r.Method, r.URL.Path, r.Header.Get("If-Match"), doc}
				}
			}
			return nil
		}
		hdr := []string{}
		if content != "" {
			hdr = []string{"Content-Type", contentType}
		}
		fx.up.reset()
		plain := fx.audited(t, func() result { return fx.do(method, "/"+typ+"/"+id, tok, content, hdr...) })
		plainSent := written()
		fx.up.reset()
		cond := fx.audited(t, func() result { return fx.do(method, "/"+typ+"?_id="+id, tok, content, hdr...) })
		condSent := written()
		name := method + " " + id
		if plain.status/100 == 2 {
			if cond.status/100 != 2 || !reflect.DeepEqual(plainSent, condSent) {
				t.Fatalf("%s (token %d): on the record %d, sent %v; by its _id %d %.200s, sent %v", name, form/3%3, plain.status, plainSent, cond.status, cond.raw, condSent)
			}
			return
		}
		// The plain write is refused: the conditional one does not write
		// the record either (a create of a new one is what no match calls
		// for), and is refused too unless it creates.
		if condSent != nil && condSent[1] == "/"+typ+"/"+id {
			t.Fatalf("%s (token %d): refused on the record (%d), written by its _id: %v", name, form/3%3, plain.status, condSent)
		}
		if cond.status/100 == 2 && !(condSent != nil && condSent[0] == http.MethodPost && condSent[1] == "/"+typ) {
			t.Fatalf("%s (token %d): refused on the record (%d %.200s), by its _id %d %.200s", name, form/3%3, plain.status, plain.raw, cond.status, cond.raw)
		}
	})
}
