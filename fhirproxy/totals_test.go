package fhirproxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
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
