package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzEverythingAgrees: Patient/{id}/$everything through the proxy, page
// by page, holds exactly the records, in order, that the data server's
// $everything answers (with the same _type) that the grant may see, or is
// refused where the grant may not ask: a patient's app asking for another
// patient's (answered as for a patient that does not exist), a _type
// beyond its scopes, a grant without read of Patient outside a patient's
// context. Whoever asks (the grantees of FuzzReadsAgree), whatever the
// patient and the types.
func FuzzEverythingAgrees(f *testing.F) {
	sb := startSandbox(f)
	patients := []string{"pt-001", "pt-002", "pt-sensitive", "pt-long"}
	askers := grantees(f, sb, patients, "rs")
	requests, disclosed := tapDisclosures(sb)
	// call GETs a page through the proxy, with a request id its audit
	// events are found by.
	call := func(t *testing.T, tok, target string) (int, []byte, string) {
		rid := "everything-" + strconv.FormatInt(requests.Add(1), 10)
		resp := callWith(t, tok, http.MethodGet, target, "", "X-Request-Id", rid)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b, rid
	}
	types := []string{"Patient", "Observation", "Condition", "Encounter", "AllergyIntolerance", "MedicationRequest", "Provenance", "Appointment"}
	direct := func(t *testing.T, path string) []resource {
		rec := httptest.NewRecorder()
		sb.fhir.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var b struct{ Entry []struct{ Resource resource } }
		if err := json.Unmarshal(rec.Body.Bytes(), &b); rec.Code != http.StatusOK || err != nil {
			t.Fatalf("directly %s: %d %s", path, rec.Code, rec.Body)
		}
		var out []resource
		for _, e := range b.Entry {
			out = append(out, e.Resource)
		}
		return out
	}
	f.Add(uint8(0), uint8(0), uint8(0), false)
	f.Add(uint8(1), uint8(2), uint8(0), false) // pt-sensitive's, of the default clearance
	f.Add(uint8(1), uint8(2), uint8(2|64), false)
	f.Add(uint8(0), uint8(0), uint8(0), true) // another patient's
	f.Add(uint8(2), uint8(0), uint8(0), false)
	f.Add(uint8(2), uint8(0), uint8(2), false)
	f.Add(uint8(3), uint8(2), uint8(0), false)
	f.Add(uint8(4), uint8(0), uint8(2), false)
	f.Add(uint8(5), uint8(3), uint8(1|4), false)
	f.Fuzz(func(t *testing.T, who, patient, typeMask uint8, another bool) {
		g := askers[int(who)%len(askers)]
		p := patients[int(patient)%len(patients)]
		of := p
		if another {
			of = patients[(int(patient)+1)%len(patients)]
		}
		q := url.Values{}
		asked := typesOf(typeMask, types)
		if len(asked) > 0 {
			q.Set("_type", strings.Join(asked, ","))
		}
		path := "/Patient/" + of + "/$everything"
		none := "/Patient/zz-none/$everything"
		if len(q) > 0 {
			path += "?" + q.Encode()
			none += "?" + q.Encode()
		}
		// What the grant may not ask.
		refused := g.patient && another || // another patient's
			g.lab && slices.ContainsFunc(asked, func(typ string) bool { return typ != "Observation" }) || // a type beyond its scopes
			g.lab && !g.patient // no read of Patient
		tok := g.tok[p]
		code, body, rid := call(t, tok, sb.FHIRBase+path)
		if refused {
			noCode, no := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+none, "")
			switch {
			case code < 400:
				t.Fatalf("%s by grantee %d for %s: %d, where the grant may not ask", path, int(who)%len(askers), p, code)
			case g.patient && another && (code != noCode || strings.ReplaceAll(string(body), of, "zz-none") != string(no)):
				t.Fatalf("%s by grantee %d for %s: %d %.300s; for a patient that does not exist: %d %.300s", path, int(who)%len(askers), p, code, body, noCode, no)
			}
			return
		}
		var want []string
		for _, r := range direct(t, path) {
			if g.sees(sb, p, r, 4) {
				want = append(want, r["resourceType"].(string)+"/"+r["id"].(string))
			}
		}
		var got []string
		for pages := 0; ; pages++ {
			var page struct {
				Link  []struct{ Relation, URL string }
				Entry []struct {
					Resource struct{ ResourceType, ID string }
				}
			}
			if err := json.Unmarshal(body, &page); code != http.StatusOK || err != nil || pages > len(want)+2 {
				t.Fatalf("%s by grantee %d for %s (page %d): %d %.300s", path, int(who)%len(askers), p, pages, code, body)
			}
			var keys []string
			for _, e := range page.Entry {
				keys = append(keys, e.Resource.ResourceType+"/"+e.Resource.ID)
			}
			got = append(got, keys...)
			// Its audit event names the patients whose records it
			// disclosed, and no other but the one asked about.
			named, labels := disclosed(rid)
			if shown := sb.fhir.patientsOf(keys); !isSubset(shown, named) || !isSubset(named, append(shown, of)) {
				t.Fatalf("%s by grantee %d for %s (page %d): the audit names %v, the page discloses %v's records", path, int(who)%len(askers), p, pages, named, shown)
			}
			if want := labelsIn(sb.fhir.records(keys)); !slices.Equal(labels, want) {
				t.Fatalf("%s by grantee %d for %s (page %d): the audit names the labels %v, the page discloses records labelled %v", path, int(who)%len(askers), p, pages, labels, want)
			}
			next := nextLink(t, sb, page.Link)
			if next == "" {
				break
			}
			code, body, rid = call(t, tok, next)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s by grantee %d for %s: through the proxy %d %v, the grant's of the server's %d %v", path, int(who)%len(askers), p, len(got), head(got), len(want), head(want))
		}
	})
}
