package fhirproxy_test

import (
	"iter"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestReadsAgreeWithSearches: for every token and every record, a read,
// a search by _id and a batched read tell the same thing: the record, or
// nothing (a read's 404, no entry, an entry's 404). A record one of them
// shows and another hides would be an oracle, or a leak through the way
// that shows it. A Binary or a Provenance is judged by the records it is
// bound to, read from the upstream, every way (before the seventeenth
// session a batch, and a search of them where labels are judged, left
// them out).
func TestReadsAgreeWithSearches(t *testing.T) {
	f := newFixture(t)
	f.up.mu.Lock()
	f.up.resources["Provenance/prov-lab"] = provenance("prov-lab", "Observation/lab-1")
	f.up.resources["Provenance/prov-psy"] = provenance("prov-psy", "Observation/psy-1")
	f.up.resources["Provenance/prov-dr"] = provenance("prov-dr", "Practitioner/dr") // a shared record's: not a patient's
	f.up.resources["Binary/b1"] = map[string]any{"resourceType": "Binary", "id": "b1", "contentType": "text/plain", "securityContext": map[string]any{"reference": "Patient/p1"}}
	keys := make([]string, 0, len(f.up.resources))
	for k := range f.up.resources {
		keys = append(keys, k)
	}
	f.up.mu.Unlock()
	sort.Strings(keys)
	for grant, tok := range f.grants(
		"launch/patient patient/*.rs",
		"launch/patient patient/Observation.rs patient/Patient.r",
		"launch/patient patient/Observation.rs?category=laboratory patient/Provenance.rs",
		"user/*.rs",
		"user/Observation.rs?category=laboratory user/Patient.rs",
		"system/*.rs",
	) {
		for _, key := range keys {
			typ, id, _ := strings.Cut(key, "/")
			name := grant + " " + key
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
				if found := slices.Contains(entryIDs(search), id); found != shown {
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
			if found := res != nil && res["id"] == id; found != shown || !found && status[:3] != "404" {
				t.Errorf("%s: the read shows it: %v, the batched read: %q %v", name, shown, status, res != nil)
			}
		}
	}
}

// grants yields, for each scope, a token under the default clearance
// and one clearing every label, each with its name.
func (f *fixture) grants(scopes ...string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, scope := range scopes {
			if !yield(scope+" (default)", f.token(scope, nil)) || !yield(scope+" (every label)", f.token(scope, everyLabel())) {
				return
			}
		}
	}
}

// TestHistoryAgreesWithVReads: for every token, the versions an instance
// history shows are exactly those a vread of each version answers:
// records that moved between patients, and labels added and removed
// since, judged alike both ways (each version, and the record as it is
// now).
func TestHistoryAgreesWithVReads(t *testing.T) {
	f := newFixture(t)
	versioned := func(res map[string]any, v string) map[string]any {
		out := maps.Clone(res)
		meta, _ := out["meta"].(map[string]any)
		meta = maps.Clone(meta)
		if meta == nil {
			meta = map[string]any{}
		}
		meta["versionId"] = v
		out["meta"] = meta
		return out
	}
	f.up.mu.Lock()
	f.up.versions = map[string][]map[string]any{
		"Observation/lab-1": {versioned(obs("lab-1", "p2", "laboratory"), "1")},      // moved from p2
		"Observation/psy-1": {versioned(obs("psy-1", "p1", "laboratory"), "1")},      // labelled since
		"Observation/vs-1":  {versioned(obs("vs-1", "p1", "vital-signs", "R"), "1")}, // a label since removed
		"Observation/lab-2": {versioned(obs("lab-2", "p1", "laboratory"), "1")},      // moved to p2
		"Condition/c-1": {versioned(map[string]any{"resourceType": "Condition", "id": "c-1", "subject": map[string]any{"reference": "Patient/p2"}}, "1"),
			{"deleted": true}}, // p2's, deleted, then recreated for p1
	}
	keys := []string{"Observation/lab-1", "Observation/psy-1", "Observation/vs-1", "Observation/lab-2", "Condition/c-1"}
	for _, k := range keys {
		f.up.resources[k] = versioned(f.up.resources[k], strconv.Itoa(len(f.up.versions[k])+1))
	}
	f.up.mu.Unlock()
	for grant, tok := range f.grants(
		"launch/patient patient/*.rs",
		"launch/patient patient/Observation.rs?category=laboratory",
		"user/*.rs",
		"user/Observation.rs?category=laboratory",
	) {
		for _, key := range keys {
			name := grant + " " + key
			history := f.do("GET", "/"+key+"/_history", tok, "")
			shown := map[string]bool{}
			switch history.status {
			case http.StatusOK:
				entries, _ := history.body["entry"].([]any)
				for _, e := range entries {
					res, _ := e.(map[string]any)["resource"].(map[string]any)
					meta, _ := res["meta"].(map[string]any)
					if v, _ := meta["versionId"].(string); v != "" {
						shown[v] = true
					}
				}
			case http.StatusNotFound, http.StatusForbidden:
			default:
				t.Errorf("%s: history %d %.200s", name, history.status, history.raw)
			}
			if len(shown) == 0 && history.status == http.StatusOK {
				t.Errorf("%s: a history of no version: %.200s", name, history.raw)
			}
			f.up.mu.Lock()
			n := len(f.up.versions[key]) + 1
			f.up.mu.Unlock()
			for v := 1; v <= n; v++ {
				vread := f.do("GET", "/"+key+"/_history/"+strconv.Itoa(v), tok, "")
				if got := vread.status == http.StatusOK; got != shown[strconv.Itoa(v)] {
					t.Errorf("%s: version %d: the history shows it: %v, its vread: %d", name, v, shown[strconv.Itoa(v)], vread.status)
				}
			}
		}
	}
	// A server that puts another record in an instance history (its vread
	// of that version would be a 502) is refused whole.
	f.up.mu.Lock()
	f.up.versions["Observation/vs-1"] = append(f.up.versions["Observation/vs-1"], versioned(obs("lab-2", "p2", "laboratory"), "2"))
	f.up.mu.Unlock()
	for _, scope := range []string{"launch/patient patient/*.rs", "user/*.rs"} {
		if r := f.do("GET", "/Observation/vs-1/_history", f.token(scope, nil), ""); r.status != http.StatusBadGateway || strings.Contains(r.raw, "lab-2") {
			t.Errorf("%s: a history holding another record: %d %.300s", scope, r.status, r.raw)
		}
	}
}
