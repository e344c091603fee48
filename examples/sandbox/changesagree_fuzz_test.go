package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/consent"
)

// FuzzChangesAgree: an app changes one record through the proxy (an
// update, a JSON Patch, a delete, an update moving it to another patient
// or to the patient, labelling or unlabelling it, in a batch, by a
// conditional update, or a create of a new record with If-None-Exist
// naming it)
// and the data
// server's records change exactly as the grant allows: a write the grant
// may make is made, once, as sent; any other changes nothing, and a
// patient's app is told of a record it may not see what it is told of a
// record that does not exist. Whoever writes (the grantees of
// FuzzReadsAgree, with write scopes), whatever the record.
func FuzzChangesAgree(f *testing.F) {
	sb := startSandbox(f)
	patients := []string{"pt-001", "pt-002", "pt-sensitive", "pt-long"}
	writers := grantees(f, sb, patients, "cruds")
	requests, disclosed := tapDisclosures(sb)
	keys := slices.Clone(sb.fhir.order)
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
	}
	own := map[string][]string{} // each patient's records
	for _, p := range patients {
		for _, key := range keys {
			if key == "Patient/"+p || slices.Contains(patientRefs(sb.fhir.current[key]), "Patient/"+p) {
				own[p] = append(own[p], key)
			}
		}
	}
	type snapshot struct {
		current  resource
		standing bool
		history  []resource
		order    []string
		changes  int
	}
	take := func(key string) snapshot {
		sb.fhir.mu.RLock()
		defer sb.fhir.mu.RUnlock()
		cur, ok := sb.fhir.current[key]
		return snapshot{cur, ok, slices.Clone(sb.fhir.history[key]), slices.Clone(sb.fhir.order), len(sb.fhir.changes)}
	}
	restore := func(key string, s snapshot) {
		sb.fhir.mu.Lock()
		defer sb.fhir.mu.Unlock()
		if s.standing {
			sb.fhir.current[key] = s.current
		} else {
			delete(sb.fhir.current, key)
		}
		sb.fhir.history[key], sb.fhir.order, sb.fhir.changes = s.history, s.order, sb.fhir.changes[:s.changes]
	}
	clone := func(r resource) resource {
		var c resource
		b, _ := json.Marshal(r)
		_ = json.Unmarshal(b, &c)
		return c
	}

	// (who, patient, record, how): a record of 1<<15 or more is one of the
	// patient's.
	f.Add(uint8(0), uint8(0), uint16(0), uint8(0))
	f.Add(uint8(0), uint8(0), uint16(1<<15|3), uint8(0))  // a patient's update of its own
	f.Add(uint8(1), uint8(0), uint16(1<<15|5), uint8(1))  // a patch
	f.Add(uint8(1), uint8(0), uint16(1<<15|7), uint8(2))  // a delete
	f.Add(uint8(0), uint8(0), uint16(1<<15|7), uint8(3))  // moved away
	f.Add(uint8(1), uint8(2), uint16(1<<15|1), uint8(4))  // in a batch
	f.Add(uint8(0), uint8(0), uint16(1<<15|9), uint8(5))  // by ?_id=
	f.Add(uint8(1), uint8(0), uint16(1<<15|9), uint8(6))  // labelled beyond its clearance
	f.Add(uint8(2), uint8(0), uint16(1<<15|11), uint8(1)) // laboratory results only
	f.Add(uint8(3), uint8(0), uint16(1<<15|9), uint8(3))  // a clinician moves it
	f.Add(uint8(5), uint8(0), uint16(1<<15|2), uint8(2))  // a backend deletes it
	f.Add(uint8(0), uint8(1), uint16(1<<15|3), uint8(7))  // another patient's, taken over
	hiv := uint16(slices.Index(own["pt-sensitive"], "Observation/pt-sensitive-hiv"))
	f.Add(uint8(1), uint8(2), 1<<15|hiv, uint8(8)) // a record beyond its clearance, unlabelled
	f.Add(uint8(3), uint8(2), 1<<15|hiv, uint8(8))
	f.Add(uint8(0), uint8(2), 1<<15|hiv, uint8(8))
	f.Add(uint8(1), uint8(2), 1<<15|hiv, uint8(9)) // If-None-Exist naming a record beyond its clearance
	f.Add(uint8(0), uint8(0), uint16(1<<15|5), uint8(9))
	f.Add(uint8(0), uint8(0), uint16(1<<15|4), uint8(9)) // naming its own
	f.Add(uint8(1), uint8(1), uint16(1<<15|7), uint8(9)) // naming another patient's
	f.Add(uint8(3), uint8(1), uint16(1<<15|7), uint8(9))
	f.Add(uint8(2), uint8(1), uint16(1<<15|7), uint8(9))
	f.Add(uint8(0), uint8(0), uint16(1<<15|1), uint8(10)) // an update, preferring nothing back
	f.Add(uint8(3), uint8(0), uint16(1<<15|1), uint8(21)) // a patch, preferring the record
	f.Add(uint8(0), uint8(0), uint16(1<<15|2), uint8(26)) // labelled restricted, preferring the record it may not read
	f.Fuzz(func(t *testing.T, who, patient uint8, record uint16, how uint8) {
		w := writers[int(who)%len(writers)]
		p := patients[int(patient)%len(patients)]
		other := patients[(int(patient)+1)%len(patients)]
		tok := w.tok[p]
		key := keys[int(record)%len(keys)]
		op := int(how) % 10
		if record >= 1<<15 { // one of the patient's (to take over, or name in If-None-Exist when odd: another's)
			of := p
			if op == 7 || op == 9 && record%2 == 1 {
				of = other
			}
			key = own[of][int(record&(1<<15-1))%len(own[of])]
		}
		typ, id, _ := strings.Cut(key, "/")
		before := take(key)
		defer restore(key, before)
		if !before.standing {
			t.Fatalf("%s is gone", key)
		}
		cur := before.current
		// The write, and the record it would leave (nil: none, deleted).
		var next resource
		var method, path, body, contentType = http.MethodPut, "/" + key, "", "application/fhir+json"
		var header []string
		language := "en"
		if cur["language"] == "en" {
			language = "fr"
		}
		switch op {
		case 0, 4, 5: // an update; in a batch; by ?_id=
			next = clone(cur)
			next["language"] = language
			if op == 5 {
				path = "/" + typ + "?_id=" + id
			}
		case 1: // a JSON Patch
			next = clone(cur)
			next["language"] = language
			method, contentType = http.MethodPatch, "application/json-patch+json"
			body = `[{"op":"add","path":"/language","value":"` + language + `"}]`
		case 2: // a delete
			method = http.MethodDelete
		case 3, 7: // moved to another patient; taken over, moved to the patient
			to := other
			if op == 7 {
				to = p
			}
			next = clone(cur)
			moved := false
			for _, field := range []string{"subject", "patient"} {
				if m, ok := next[field].(map[string]any); ok && strings.HasPrefix(fmt.Sprint(m["reference"]), "Patient/") && m["reference"] != "Patient/"+to {
					next[field] = map[string]any{"reference": "Patient/" + to}
					moved = true
				}
			}
			if !moved {
				return
			}
		case 8: // unlabelled
			next = clone(cur)
			if m, ok := next["meta"].(map[string]any); ok {
				m["security"] = slices.DeleteFunc(slices.Clone(asList(m["security"])), func(c any) bool {
					sys := c.(map[string]any)["system"]
					return sys == confCode || sys == actCode
				})
			}
		case 9: // a new record of the patient's, created unless a record has the id
			next = fresh(typ, p, w.lab)
			if next == nil {
				return
			}
			method, path, header = http.MethodPost, "/"+typ, []string{"If-None-Exist", "_id=" + id}
		case 6: // labelled restricted
			next = clone(cur)
			m, _ := next["meta"].(map[string]any)
			if m == nil {
				m = map[string]any{}
			}
			m["security"] = append(asList(m["security"]), map[string]any{"system": confCode, "code": "R"})
			next["meta"] = m
		}
		if next != nil && body == "" {
			b, _ := json.Marshal(next)
			body = string(b)
		}
		// (how's tens: what the client prefers back; not in a batch.)
		prefer := []string{"", "return=minimal", "return=representation"}[int(how)/10%3]
		if prefer != "" && op != 4 {
			header = append(header, "Prefer", prefer)
		}
		var rid string // the last request's X-Request-Id
		send := func(method, path, body string) (int, []byte) {
			if op == 4 {
				entry, _ := json.Marshal(map[string]any{"resource": json.RawMessage(body), "request": map[string]any{"method": method, "url": strings.TrimPrefix(path, "/")}})
				rid = "changes-" + strconv.FormatInt(requests.Add(1), 10) // (its audit events)
				resp := callWith(t, tok, http.MethodPost, sb.FHIRBase, `{"resourceType":"Bundle","type":"batch","entry":[`+string(entry)+`]}`,
					"Content-Type", "application/fhir+json", "X-Request-Id", rid)
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				code := resp.StatusCode
				if code != http.StatusOK {
					return code, b // refused whole
				}
				var batch struct {
					Entry []struct {
						Response struct {
							Status  string
							Outcome json.RawMessage
						}
					}
				}
				if err := json.Unmarshal(b, &batch); err != nil || len(batch.Entry) != 1 {
					t.Fatalf("the batch writing %s: %d %.300s", path, code, b)
				}
				code, _ = strconv.Atoi(strings.Fields(batch.Entry[0].Response.Status)[0])
				return code, batch.Entry[0].Response.Outcome
			}
			rid = "changes-" + strconv.FormatInt(requests.Add(1), 10) // (its audit events)
			resp := callWith(t, tok, method, sb.FHIRBase+path, body, append([]string{"Content-Type", contentType, "X-Request-Id", rid}, header...)...)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		code, got := send(method, path, body)
		after := take(key)
		var created []string // (a created record's key is the last, and new)
		for i := len(after.order) - 1; i >= 0 && !known[after.order[i]]; i-- {
			created = append(created, after.order[i])
		}
		defer func() {
			sb.fhir.mu.Lock()
			for _, k := range created {
				delete(sb.fhir.current, k)
				delete(sb.fhir.history, k)
			}
			sb.fhir.mu.Unlock()
		}()
		if op != 9 && len(created) > 0 || len(created) > 1 {
			t.Fatalf("%s %s: created %v", method, path, created)
		}
		// What the grant allows.
		may := w.sees(sb, p, cur, 0) && (next == nil || w.sees(sb, p, next, 0))
		if op == 9 {
			// Created where the grant may create it and sees no record
			// with the id; else answered with that record, if it sees it.
			may = w.sees(sb, p, next, 0) && !(w.lab && typ != "Observation")
			switch seen := w.sees(sb, p, cur, 0); {
			case !may && (len(created) > 0 || code < 400):
				t.Fatalf("POST %s (If-None-Exist: _id=%s) by grantee %d for %s: %d %.300s; created %v", typ, id, int(who)%len(writers), p, code, got, created)
			case may && seen && (code != http.StatusOK || len(created) > 0):
				t.Fatalf("POST %s (If-None-Exist: _id=%s, which it sees) by grantee %d for %s: %d %.300s; created %v", typ, id, int(who)%len(writers), p, code, got, created)
			case may && !seen && (code != http.StatusCreated || len(created) != 1):
				t.Fatalf("POST %s (If-None-Exist: _id=%s, which it may not see) by grantee %d for %s: %d %.300s; created %v", typ, id, int(who)%len(writers), p, code, got, created)
			}
			return
		}
		switch {
		case w.patient && (sharedTypes[typ] || typ == "Provenance"):
			may = false // shared records and provenance are not a patient's to change
		case w.patient && typ == "Patient" && op == 2:
			may = false // nor its own Patient to delete
		case next != nil && lowers(cur, next):
			may = false // no one may lower a record's labels
		}
		changed := len(after.history) != len(before.history)
		{
			// Its audit events name the patients whose records it
			// changes (the stored version's, the new content's), made or
			// refused (in a batch too), and no other but the patient in
			// context.
			var about []string
			if w.patient {
				about = []string{p}
			}
			touched := sb.fhir.patientsIn([]resource{cur, next})
			named, _ := disclosed(rid)
			if code < 300 && !isSubset(touched, named) || !isSubset(named, append(touched, about...)) {
				t.Fatalf("%s %s (%s) by grantee %d for %s: %d; the audit names %v, the write changes %v's records", method, path, key, int(who)%len(writers), p, code, named, touched)
			}
		}
		if !may {
			if code < 400 || changed || !reflect.DeepEqual(after.current, before.current) {
				t.Fatalf("%s %s (%s) by grantee %d for %s: %d %.300s; changed %v", method, path, key, int(who)%len(writers), p, code, got, changed)
			}
			if w.patient && !w.sees(sb, p, cur, 0) && op != 3 && op != 6 && !sharedTypes[typ] {
				// As a record that does not exist.
				none := strings.Replace(path, id, "zz-none", 1)
				noneBody := strings.Replace(body, `"id":"`+id+`"`, `"id":"zz-none"`, 1)
				noCode, no := send(method, none, noneBody)
				if noCode != code || strings.ReplaceAll(string(got), id, "zz-none") != string(no) {
					t.Fatalf("%s %s: %d %.300s; a record that does not exist: %d %.300s", method, path, code, got, noCode, no)
				}
			}
			return
		}
		if op == 2 && code == http.StatusConflict {
			sb.fhir.mu.RLock()
			referred := sb.fhir.deletable(key, "", nil) != nil
			sb.fhir.mu.RUnlock()
			if !referred || changed {
				t.Fatalf("DELETE %s: %d %.300s, though nothing refers to it", key, code, got)
			}
			return
		}
		if code >= 300 || len(after.history) != len(before.history)+1 {
			t.Fatalf("%s %s (%s) by grantee %d for %s: %d %.300s; %d versions written", method, path, key, int(who)%len(writers), p, code, got, len(after.history)-len(before.history))
		}
		if next == nil {
			if after.standing {
				t.Fatalf("DELETE %s: %d, and it stands", key, code)
			}
			return
		}
		// The answer: nothing, where the client prefers it or the grant
		// may not read the record as stored; otherwise the record as
		// stored, at its new version.
		if op != 4 {
			var answer struct {
				ResourceType, ID string
				Meta             struct{ VersionID string }
			}
			readable := w.sees(sb, p, after.current, 0) && !(w.lab && typ != "Observation")
			if prefer == "return=minimal" || !readable {
				if len(got) != 0 {
					t.Fatalf("%s %s (Prefer: %s) by grantee %d for %s: answered %.300s", method, path, prefer, int(who)%len(writers), p, got)
				}
			} else if err := json.Unmarshal(got, &answer); err != nil || answer.ID != id ||
				answer.Meta.VersionID != fmt.Sprint(after.current["meta"].(map[string]any)["versionId"]) {
				t.Fatalf("%s %s (Prefer: %s) by grantee %d for %s: answered %.300s, stored version %v", method, path, prefer, int(who)%len(writers), p, got, after.current["meta"])
			}
		}
		stored := maps.Clone(after.current)
		want := maps.Clone(next)
		delete(stored, "meta")
		delete(want, "meta")
		if g, _ := json.Marshal(stored); string(g) != mustMarshal(want) {
			t.Fatalf("%s %s: stored %s, sent %s", method, path, g, mustMarshal(want))
		}
		if c, tags := labels(after.current); op == 6 && c != consent.Restricted {
			t.Fatalf("%s %s: stored with %s %v", method, path, c, tags)
		}
	})
}

// lowers says whether next has lower labels than r: a lower
// confidentiality, or without one of its sensitivity tags.
func lowers(r, next resource) bool {
	rc, rtags := labels(r)
	nc, ntags := labels(next)
	return nc.Rank() < rc.Rank() || slices.ContainsFunc(rtags, func(t string) bool { return !slices.Contains(ntags, t) })
}

// fresh is a new record of typ for patient p (of the laboratory with lab),
// valid R4, or nil for a type it does not write.
func fresh(typ, p string, lab bool) resource {
	subject := map[string]any{"reference": "Patient/" + p}
	code := map[string]any{"text": "probe"}
	switch typ {
	case "Observation":
		r := resource{"resourceType": typ, "status": "final", "code": code, "subject": subject}
		if lab {
			r["category"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}}}}
		}
		return r
	case "Condition":
		return resource{"resourceType": typ, "code": code, "subject": subject}
	case "AllergyIntolerance":
		return resource{"resourceType": typ, "code": code, "patient": subject}
	case "Encounter":
		return resource{"resourceType": typ, "status": "finished", "class": map[string]any{"system": actCode, "code": "AMB"}, "subject": subject}
	}
	return nil
}
