package fhirproxy_test

import (
	"net/http"
	"slices"
	"sort"
	"testing"
)

// TestReadsAgreeWithSearches: for every token and every record, a read,
// a search by _id and a batched read tell the same thing: the record, or
// nothing (a read's 404, no entry, an entry's 404). A record one of them
// shows and another hides would be an oracle, or a leak through the way
// that shows it. One exception, which fails closed: a Binary or a
// Provenance is judged by the records it is bound to, which a read on its
// own reads (Proxy.judgeContext) and a batch, or a search of them where
// labels are judged, does not; there they read as missing.
func TestReadsAgreeWithSearches(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	f.up.resources["Provenance/prov-lab"] = provenance("prov-lab", "Observation/lab-1")
	f.up.resources["Provenance/prov-psy"] = provenance("prov-psy", "Observation/psy-1")
	f.up.resources["Binary/b1"] = map[string]any{"resourceType": "Binary", "id": "b1", "contentType": "text/plain", "securityContext": map[string]any{"reference": "Patient/p1"}}
	keys := make([]string, 0, len(f.up.resources))
	for k := range f.up.resources {
		keys = append(keys, k)
	}
	f.up.mu.Unlock()
	sort.Strings(keys)
	for _, scope := range []string{
		"launch/patient patient/*.rs",
		"launch/patient patient/Observation.rs patient/Patient.r",
		"launch/patient patient/Observation.rs?category=laboratory patient/Provenance.rs",
		"user/*.rs",
		"user/Observation.rs?category=laboratory user/Patient.rs",
		"system/*.rs",
	} {
		for _, clearance := range []string{"default", "every label"} {
			tok := f.token(scope, nil)
			if clearance == "every label" {
				tok = f.token(scope, everyLabel())
			}
			for _, key := range keys {
				typ, id, _ := cutKey(key)
				name := scope + " (" + clearance + ") " + key
				read := f.do("GET", "/"+key, tok, "")
				shown := read.status == http.StatusOK
				if !shown && read.status != http.StatusNotFound && read.status != http.StatusForbidden {
					t.Errorf("%s: read %d %.200s", name, read.status, read.raw)
					continue
				}
				if read.status == http.StatusForbidden {
					continue // the type is not the token's: nothing to compare
				}
				if search := f.do("GET", "/"+typ+"?_id="+id, tok, ""); search.status == http.StatusOK {
					if found := slices.Contains(entryIDs(search), id); found && !shown || shown && !found && !bound(typ) {
						t.Errorf("%s: the read shows it: %v, the search by _id: %v", name, shown, found)
					}
				}
				batch := f.do("POST", "/", tok, bundle("batch", entry("", "GET", key, "")))
				if batch.status != http.StatusOK {
					continue // refused whole (a read that must go on its own)
				}
				entries, _ := batch.body["entry"].([]any)
				if len(entries) != 1 {
					t.Errorf("%s: the batch answered %d entries", name, len(entries))
					continue
				}
				e, _ := entries[0].(map[string]any)
				status, _ := e["response"].(map[string]any)["status"].(string)
				res, _ := e["resource"].(map[string]any)
				if found := res != nil && res["id"] == id; found && !shown || shown && !found && !bound(typ) || !found && status[:3] != "404" {
					t.Errorf("%s: the read shows it: %v, the batched read: %q %v", name, shown, status, res != nil)
				}
			}
		}
	}
}

// bound reports whether records of type t are judged by the records they
// are bound to.
func bound(t string) bool { return t == "Binary" || t == "Provenance" }

// cutKey splits "Type/id".
func cutKey(key string) (typ, id string, ok bool) {
	for i := range len(key) {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}
