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
// and a record the whole search passes should pass in part too.
func FuzzElementsAgree(f *testing.F) {
	for _, s := range []string{"Observation", "Observation?category=laboratory", "Condition", "Patient", "Observation?_include=Observation:subject", "Provenance"} {
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
	summaries := []string{"true", "text", "data", "false"}
	f.Fuzz(func(t *testing.T, search, elements string, which uint8) {
		if !requestTarget(search) || !utf8.ValidString(elements) || strings.Contains(search, "_elements") || strings.Contains(search, "_summary") {
			return
		}
		fx.t = t
		tok := tokens[int(which)%len(tokens)]
		whole := fx.do("GET", "/"+search, tok, "")
		if whole.status != 200 || whole.body["resourceType"] != "Bundle" {
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
