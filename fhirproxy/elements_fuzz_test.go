package fhirproxy_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzElementsAgree: asking for part of each record (_elements, _summary)
// changes which records a search answers with neither way. The test
// upstream sends only what is asked for, as a strict server does, so an
// element the proxy judges by and does not ask for back is absent: a
// record must then be withheld, never passed (presence, never absence),
// and a record the whole search passes should pass in part too. A read
// likewise: in part, it finds the record the whole read finds, and only
// that one. Binaries, judged by their securityContext, are read by a
// clinician who may not see every record they are bound to.
func FuzzElementsAgree(f *testing.F) {
	for _, s := range []string{"Observation", "Observation?category=laboratory", "Condition", "Patient", "Observation?_include=Observation:subject", "Provenance",
		"Observation/lab-1", "Observation/psy-1", "Observation/lab-2", "Observation/vs-1", "Patient/p2", "Condition/c-1",
		"Observation/lab-1/_history/1", "Observation/lab-1/_history", "Observation?category=vital-signs&category=laboratory",
		"Observation/$lastn?category=laboratory", "Patient/p1/Observation", "Observation?_revinclude=Provenance:target",
		"Binary/b-psy", "Binary/b-lab", "Binary/b-loose", "Binary"} {
		for _, e := range []string{"code", "id", "subject", "meta", "category", "code,subject", "status", "text", "meta.security", "subject.reference", "*"} {
			for which := range uint8(5) {
				f.Add(s, e, which)
			}
		}
		for which := range uint8(20) {
			f.Add(s, "", which) // _summary, by which/5
		}
	}
	fx := newFixture(&testing.T{})
	tokens := endToEndTokens(fx)
	// Binaries, judged by what their securityContext names, for a
	// clinician whose clearance withholds the psychotherapy note.
	fx.up.boundRecords()
	fx.up.mu.Lock()
	fx.up.resources["Binary/b-loose"] = binary("b-loose", "") // bound to nothing
	fx.up.mu.Unlock()
	binaries := fx.token("user/Binary.rs user/Observation.rs", nil)
	summaries := []string{"true", "text", "data", "false"}
	f.Fuzz(func(t *testing.T, search, elements string, which uint8) {
		if !requestTarget(search) || !utf8.ValidString(elements) || strings.Contains(search, "_elements") || strings.Contains(search, "_summary") {
			return
		}
		fx.t = t
		tok := tokens[int(which)%len(tokens)]
		if strings.HasPrefix(search, "Binary") {
			tok = binaries
		}
		whole := fx.do("GET", "/"+search, tok, "")
		read := whole.body["resourceType"] != "Bundle"
		if whole.status != 200 && !(read && whole.status == 404) {
			return
		}
		sep := "?"
		if strings.Contains(search, "?") {
			sep = "&"
		}
		part := "_elements=" + url.QueryEscape(elements)
		if elements == "" {
			part = "_summary=" + summaries[int(which)/5%len(summaries)]
		}
		r := fx.do("GET", "/"+search+sep+part, tok, "")
		// An element asked for by no one (status: neither the client here
		// nor the proxy, which judges by no status) does not come back.
		if unasked := !slices.ContainsFunc(strings.Split(elements, ","), func(e string) bool { return e == "status" || e == "*" }); r.status == 200 && elements != "" && unasked {
			for _, res := range append([]any{r.body}, entryResources(r)...) {
				if m, _ := res.(map[string]any); m != nil && m["resourceType"] != "Bundle" && m["status"] != nil {
					t.Fatalf("%q with %s (token %d): %s/%s came with its status, which nothing asked for", search, part, which%5, m["resourceType"], m["id"])
				}
			}
		}
		if read {
			switch {
			case r.status == 200 && (whole.status != 200 || r.body["resourceType"] != whole.body["resourceType"] || r.body["id"] != whole.body["id"]),
				r.status == 404 && whole.status == 200:
				t.Fatalf("%q with %s (token %d): %d %.200s; the whole read %d %.200s", search, part, which%5, r.status, r.raw, whole.status, whole.raw)
			}
			return
		}
		if r.status != 200 {
			return // refused: nothing shown
		}
		readable(t, fx, tok, whole)
		want, got := entryIDs(whole), entryIDs(r)
		slices.Sort(want)
		slices.Sort(got)
		for _, id := range got {
			if !slices.Contains(want, id) {
				t.Fatalf("%q with %s (token %d): %v, more than the whole records give: %v", search, part, which%5, got, want)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q with %s (token %d): %v, the whole records give %v", search, part, which%5, got, want)
		}
	})
}

// entryResources are the resources of a Bundle's entries.
func entryResources(r result) []any {
	var out []any
	entries, _ := r.body["entry"].([]any)
	for _, e := range entries {
		if res, ok := e.(map[string]any)["resource"]; ok {
			out = append(out, res)
		}
	}
	return out
}
