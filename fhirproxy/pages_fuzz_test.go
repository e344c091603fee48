package fhirproxy_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzPagesAgree: a search answered page by page, its next links followed
// through the proxy, gives the records the same search answered on one
// page gives. Both paging styles are tried: links that carry the search's
// parameters (re-authorised as a search), and HAPI's links at the base
// that carry none (signed by the proxy, pageRef). A later page that lost
// what the first one held (a constraint, a patient, what the search asked
// for), or let through what it would not, breaks it.
func FuzzPagesAgree(f *testing.F) {
	for _, s := range []string{
		"Observation", "Observation?category=laboratory", "Observation?category=laboratory&category=vital-signs",
		"Observation?_include=Observation:subject", "Observation?category=laboratory&_include=Observation:subject",
		"Observation?patient=Patient/p1", "Patient/p1/Observation", "Observation?_elements=code", "Condition",
		"Observation?_revinclude=Provenance:target", "Patient", "Observation?_sort=_id", "Observation?subject:Patient.name=One",
	} {
		for which := range uint8(10) {
			f.Add(s, which)
		}
	}
	fx := newFixture(&testing.T{})
	fx.proxy.Base = fx.base // (read once, before the first request)
	tokens := endToEndTokens(fx)
	f.Fuzz(func(t *testing.T, search string, which uint8) {
		if !requestTarget(search) || strings.Contains(search, "_count") || strings.Contains(search, "_offset") || strings.Contains(search, "_getpages") {
			return // not one request target, or one that pages itself
		}
		fx.t = t
		tok := tokens[int(which)%len(tokens)]
		fx.up.mu.Lock()
		fx.up.pageSize, fx.up.getpages = 0, false
		fx.up.mu.Unlock()
		whole := fx.do("GET", "/"+search, tok, "")
		if whole.status != 200 || whole.body["resourceType"] != "Bundle" || whole.next() != "" {
			return // refused, or not a search: nothing to page
		}
		want := entryIDs(whole)
		fx.up.mu.Lock()
		fx.up.pageSize, fx.up.getpages = 1, which/5%2 == 1
		fx.up.mu.Unlock()
		defer func() {
			fx.up.mu.Lock()
			fx.up.pageSize, fx.up.getpages = 0, false
			fx.up.mu.Unlock()
		}()
		var got []string
		next := "/" + search
		for pages := 0; next != ""; pages++ {
			if pages > 12 {
				t.Fatalf("%q (token %d): more than 12 pages", search, which%5)
			}
			r := fx.audited(t, func() result { return fx.do("GET", next, tok, "") })
			if r.status != 200 {
				t.Fatalf("%q (token %d, getpages %v): page %d (%s): %d %.300s", search, which%5, which/5%2 == 1, pages, next, r.status, r.raw)
			}
			got = append(got, entryIDs(r)...)
			readable(t, fx, tok, r)
			if n := r.next(); n != "" && !strings.HasPrefix(n, fx.base) {
				t.Fatalf("%q: a next link off the proxy's base: %s", search, n)
			}
			next = strings.TrimPrefix(r.next(), fx.base)
		}
		// (A record included on several pages is included on one.)
		got, want = slices.Compact(slices.Sorted(slices.Values(got))), slices.Compact(slices.Sorted(slices.Values(want)))
		if !slices.Equal(got, want) {
			t.Fatalf("%q (token %d, getpages %v): page by page %v, on one page %v", search, which%5, which/5%2 == 1, got, want)
		}
	})
}

// readable asserts that every record an answer shows, a read of it shows
// too, to the same token: no search, include or page is a way to a record
// the token may not read (a search's REDACTED mark and totals aside).
func readable(t *testing.T, fx *fixture, tok string, r result) {
	t.Helper()
	entries, _ := r.body["entry"].([]any)
	for _, e := range entries {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		typ, _ := res["resourceType"].(string)
		id, _ := res["id"].(string)
		if typ == "" || id == "" || typ == "OperationOutcome" {
			continue
		}
		if read := fx.do("GET", "/"+typ+"/"+url.PathEscape(id), tok, ""); read.status != 200 {
			t.Fatalf("%s/%s is in an answer, but its read is %d: %.200s", typ, id, read.status, read.raw)
		}
	}
}
