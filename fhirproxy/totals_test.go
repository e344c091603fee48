package fhirproxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestTotalWithIncludesLeftOut: a search's total counts its matches, not
// what it includes. When the proxy leaves out only included entries
// (another patient's record an _include brought, a Provenance it cannot
// judge), every match is still there and the total goes out, whole and
// streamed alike, held to the same test as a judged total: the page is the
// whole result and the total counts no more than the matches sent (a
// server that counts its includes in it fails that). The meta, which may
// carry the left-out entries' labels, does not go. A match left out takes
// the total with it, as before.
func TestTotalWithIncludesLeftOut(t *testing.T) {
	f := newFixture(t)
	var answer map[string]any
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.up.write(w, 200, answer) }))
	defer up.Close()
	f.proxy.Upstream, _ = url.Parse(up.URL)
	match := func(res map[string]any) any {
		return map[string]any{"resource": res, "search": map[string]any{"mode": "match"}}
	}
	include := func(res map[string]any) any {
		return map[string]any{"resource": res, "search": map[string]any{"mode": "include"}}
	}
	p2 := map[string]any{"resourceType": "Patient", "id": "p2"}
	meta := map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}}}
	tokens := map[string]string{"default": f.token("launch/patient patient/*.rs", nil), "full": f.token("launch/patient patient/*.rs", everyLabel())}
	for _, c := range []struct {
		name    string
		total   int
		entries []any
		next    bool
		want    any
	}{
		{"an include left out", 2, []any{match(obs("lab-1", "p1", "laboratory")), match(obs("vs-1", "p1", "vital-signs")), include(p2)}, false, 2.0},
		{"a total counting the includes", 3, []any{match(obs("lab-1", "p1", "laboratory")), match(obs("vs-1", "p1", "vital-signs")), include(p2)}, false, nil},
		{"more pages", 9, []any{match(obs("lab-1", "p1", "laboratory")), match(obs("vs-1", "p1", "vital-signs")), include(p2)}, true, nil},
		{"a match left out", 2, []any{match(obs("lab-1", "p1", "laboratory")), match(obs("lab-2", "p2", "laboratory"))}, false, nil},
		{"a match left out, of a total the rest meets", 1, []any{match(obs("lab-1", "p1", "laboratory")), match(obs("lab-2", "p2", "laboratory"))}, false, nil},
		{"an entry of no search mode left out", 2, []any{match(obs("lab-1", "p1", "laboratory")), map[string]any{"resource": p2}}, false, nil},
	} {
		answer = map[string]any{"resourceType": "Bundle", "type": "searchset", "total": c.total, "entry": c.entries, "meta": meta}
		if c.next {
			answer["link"] = []any{map[string]any{"relation": "next", "url": up.URL + "/Observation?page=2"}}
		}
		for clearance, tok := range tokens {
			for _, streamFrom := range []int64{0, 64} {
				f.proxy.Limits.StreamFrom = streamFrom
				r := f.do("GET", "/Observation?_include=Observation:performer", tok, "")
				if r.status != 200 || r.body["total"] != c.want || r.body["meta"] != nil {
					t.Errorf("%s (%s clearance, stream from %d): %d, total %v, want %v; meta %v", c.name, clearance, streamFrom, r.status, r.body["total"], c.want, r.body["meta"])
				}
			}
		}
	}
}

// TestCountedByTheProxy: _summary=count (or _count=0, the total alone) for a token whose clearance is
// short of every label is answered by the proxy, which runs the search
// (confined and constrained as authorised, without _summary) and counts
// the matches the token may see: the server's count would take in what
// the clearance withholds. A search of one type only, or of a patient's
// compartment of one (a batch entry, $lastn are refused), at most countLimit
// matches; a token that sees every label gets the server's count.
func TestCountedByTheProxy(t *testing.T) {
	f := newFixture(t)
	user := f.token("user/*.rs", nil)
	patient := f.token("launch/patient patient/*.rs", nil)
	for _, c := range []struct {
		name, target, tok string
		total             float64
		upstream          string
	}{
		{"a clinician's", "/Observation?_summary=count", user, 3, "_count=101"}, // psy-1 withheld
		{"by category", "/Observation?category=laboratory&_summary=count", user, 2, "category=laboratory&_count=101"},
		{"a patient app's", "/Observation?_summary=count", patient, 2, "patient=Patient%2Fp1&_count=101"},
		{"in the compartment", "/Patient/p1/Observation?_summary=count&_count=1", patient, 2, "patient=Patient%2Fp1&_count=101"},
		{"none", "/Observation?_summary=count&category=exam", patient, 0, "category=exam&patient=Patient%2Fp1&_count=101"},
		{"by _count=0", "/Observation?_count=0", user, 3, "_count=101"},
		{"a patient app's, by _count=0", "/Observation?category=laboratory&_count=0", patient, 1, "category=laboratory&patient=Patient%2Fp1&_count=101"},
		// A clinician's compartment search, at its path (it was refused:
		// found by FuzzPatientForms, as patient=p1 was counted).
		{"a clinician's compartment search", "/Patient/p1/Observation?_summary=count", user, 2, "/Patient/p1/Observation?_count=101"},
		{"a clinician's compartment search, by _count=0", "/Patient/p1/Observation?_count=0", user, 2, "/Patient/p1/Observation?_count=101"},
	} {
		f.up.reset()
		r := f.do("GET", c.target, c.tok, "")
		got := f.up.requests()
		if r.status != 200 || r.body["resourceType"] != "Bundle" || r.body["type"] != "searchset" || r.body["total"] != c.total || r.body["entry"] != nil {
			t.Errorf("%s: %d %s, want a total of %v", c.name, r.status, r.raw, c.total)
		}
		path, query, found := strings.Cut(c.upstream, "?")
		if !found {
			path, query = "/Observation", c.upstream
		}
		if len(got) != 1 || got[0].URL.Path != path || got[0].URL.RawQuery != query {
			t.Errorf("%s: upstream %v, want %s?%s", c.name, got, path, query)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Content-Type") != "application/fhir+json" {
			t.Errorf("%s: headers %v", c.name, r.header)
		}
	}
	if evs := f.audit.Events(); evs[len(evs)-1].Reason != "counted by the proxy: the matches the token may see" || evs[len(evs)-1].Outcome != "success" {
		t.Errorf("the audit event: %+v", evs[len(evs)-1])
	}
	f.up.reset()
	f.refused("$lastn", f.do("GET", "/Observation/$lastn?_summary=count", user, ""), http.StatusForbidden)
	f.refused("in a batch", f.do("POST", "/", user, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?_summary=count"}}]}`), http.StatusForbidden)
	f.refused("_count=0 in a batch", f.do("POST", "/", user, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?_count=0"}}]}`), http.StatusForbidden)
	// Every label cleared: the server counts.
	if r := f.do("GET", "/Observation?_summary=count", f.token("user/*.rs", everyLabel()), ""); r.status != 200 || r.body["total"] != float64(4) {
		t.Errorf("every label: %d %s", r.status, r.raw)
	}
	if got := f.up.requests(); len(got) != 1 || got[0].URL.RawQuery != "_summary=count" {
		t.Errorf("every label: upstream %v", got)
	}
	// More than countLimit visible matches: refused, for its cost.
	f.up.mu.Lock()
	for i := range 1000 {
		id := "many-" + strconv.Itoa(i)
		f.up.resources["Observation/"+id] = obs(id, "p2", "laboratory")
	}
	f.up.mu.Unlock()
	f.up.reset()
	if r := f.do("GET", "/Observation?_summary=count", user, ""); r.status != http.StatusForbidden || !strings.Contains(diagnostics(r), "narrow") {
		t.Errorf("1003 matches: %d %s", r.status, r.raw)
	}
}
