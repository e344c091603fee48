package fhirproxy_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzBatchedSearches: whatever search the proxy lets through in a batch
// is the search it sends on its own, and a batched read answers as the
// read on its own does. The search is sent both ways with the
// same token; where the batch is allowed, the search alone must be too,
// with one search upstream (no chain the proxy resolves with searches of its
// own), that request's URL must be the batched entry's, and the answers
// must hold the same records. A patient app that could get past the
// compartment, or a token past its constraint, in a batch but not on its
// own would break it. Half the runs send it in a transaction, which may
// read too. Binaries and Provenances are read by a clinician who may not
// see every record they are bound to.
func FuzzBatchedSearches(f *testing.F) {
	for _, s := range []string{
		"Observation", "Observation?category=laboratory&_elements=code", "Patient/p1/Observation", "Observation?patient=p2",
		"Observation?subject=Patient/p2", "Observation?subject:Patient=p2", "Patient/p2/Observation", "Observation?patient=p1,p2",
		"Observation?subject.name=One", "Observation?subject:Patient.name=One", "Observation?_include=Observation:subject", "Observation?_revinclude=Provenance:target",
		"Observation?_has:Condition:subject:code=x", "Observation?category=vital-signs", "Observation?category:not=laboratory",
		"Observation?_id=lab-2", "Condition?patient=Patient/p1", "Observation/_search?category=laboratory", "?_type=Observation",
		"Observation?patient=Patient%2Fp2", "Observation?_elements=code&_elements=subject", "Observation?_count=1",
		"Observation/lab-1", "Observation/lab-2", "Observation/psy-1", "Observation/none", "Patient/p1", "Patient/p2",
		"Condition/c-1", "Practitioner/dr", "Observation/lab-1/_history/1", "Observation/lab-1/_history",
		"Binary", "Binary/b-psy", "Binary/b-lab", "Provenance", "Provenance?target=Observation/lab-1", "Provenance/pv-psy",
		"Observation/lab-1?_elements=code", "Observation/psy-1?_elements=code", "Observation/lab-2?_summary=true", "Binary/b-lab?_elements=contentType",
	} {
		for which := range uint8(10) {
			f.Add(s, which)
		}
	}
	fx := newFixture(&testing.T{})
	tokens := endToEndTokens(fx)
	// Binaries and Provenances, judged by the records they are bound to,
	// for a clinician whose clearance withholds the psychotherapy note.
	fx.up.boundRecords()
	bound := fx.token("user/Binary.rs user/Provenance.rs user/Observation.rs", nil)
	f.Fuzz(func(t *testing.T, search string, which uint8) {
		if !requestTarget(search) {
			return // nothing to compare
		}
		fx.t = t
		tok := tokens[int(which)%len(tokens)]
		if strings.HasPrefix(search, "Binary") || strings.HasPrefix(search, "Provenance") {
			tok = bound
		}
		typ := [...]string{"batch", "transaction"}[int(which/5)%2] // a transaction may read too
		u, _ := json.Marshal(search)
		fx.up.reset()
		batched := fx.audited(t, func() result {
			return fx.do("POST", "/", tok, `{"resourceType":"Bundle","type":"`+typ+`","entry":[{"request":{"method":"GET","url":`+string(u)+`}}]}`)
		})
		if batched.status != http.StatusOK {
			return
		}
		var sent struct {
			Entry []struct{ Request struct{ URL string } }
		}
		// The batch first; then, for a Binary or Provenance, reads of the
		// records it is bound to.
		if bodies := fx.up.bodies; len(bodies) == 0 || json.Unmarshal([]byte(bodies[0]), &sent) != nil || len(sent.Entry) != 1 || !onlyReads(fx.up.requests()[1:]) {
			t.Fatalf("%q: the batch went upstream as %v", search, bodies)
		}
		entries, _ := batched.body["entry"].([]any)
		if len(entries) != 1 {
			t.Fatalf("%q: %d entries answered", search, len(entries))
		}
		nested, _ := entries[0].(map[string]any)["resource"].(map[string]any)
		fx.up.reset()
		alone := fx.do("GET", "/"+search, tok, "")
		got := fx.up.requests()
		if nested["resourceType"] != "Bundle" {
			// A read: the entry is what the read on its own answers, the
			// record or the same absence (never one where the other has
			// none).
			status, _ := entries[0].(map[string]any)["response"].(map[string]any)["status"].(string)
			switch {
			case alone.status == http.StatusOK && (!strings.HasPrefix(status, "200") || mustJSON(nested) != mustJSON(alone.body)),
				alone.status == http.StatusNotFound && (!strings.HasPrefix(status, "404") || nested != nil),
				alone.status != http.StatusOK && alone.status != http.StatusNotFound:
				t.Fatalf("%q (token %d): batched %q %.200s, on its own %d %.200s", search, which%5, status, mustJSON(nested), alone.status, alone.raw)
			}
			return
		}
		if alone.status != http.StatusOK || len(got) == 0 || !onlyReads(got[1:]) {
			t.Fatalf("%q (token %d): allowed in a batch (sent as %q), but on its own %d with %d request(s) upstream: %.300s",
				search, which%5, sent.Entry[0].Request.URL, alone.status, len(got), alone.raw)
		}
		// An entry the proxy does not change goes as written, one it does
		// re-encoded: they are compared as the server reads them. (What a
		// constraint reads is added to a batched element selection: the
		// proxy evaluates it on every match there.)
		have, err := url.Parse("/" + sent.Entry[0].Request.URL)
		if err != nil {
			t.Fatalf("%q: batched as %q", search, sent.Entry[0].Request.URL)
		}
		if q := have.Query(); have.Path != got[0].URL.Path || !reflect.DeepEqual(q, got[0].URL.Query()) {
			for i, e := range q["_elements"] {
				q["_elements"][i] = strings.TrimSuffix(e, ",category")
			}
			if have.Path != got[0].URL.Path || !reflect.DeepEqual(q, got[0].URL.Query()) {
				t.Fatalf("%q (token %d): batched as %q, on its own %q", search, which%5, sent.Entry[0].Request.URL, got[0].URL.RequestURI())
			}
		}
		readable(t, fx, tok, result{body: nested})
		if ids := entryIDs(result{body: nested}); !slices.Equal(ids, entryIDs(alone)) {
			t.Fatalf("%q (token %d): batched %v, on its own %v", search, which%5, ids, entryIDs(alone))
		}
	})
}

// onlyReads reports whether requests are all reads by id (GET Type/id, no
// query): the records a Binary or Provenance is bound to, read to judge it;
// not a search (a chain the proxy resolves).
func onlyReads(requests []*http.Request) bool {
	for _, r := range requests {
		if r.Method != http.MethodGet || strings.Count(strings.Trim(r.URL.Path, "/"), "/") != 1 || r.URL.RawQuery != "" {
			return false
		}
	}
	return true
}
