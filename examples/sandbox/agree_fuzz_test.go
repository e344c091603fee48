package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
)

// FuzzSearchesAgree: a patient's app searches its records through the
// proxy, page by page through the proxy's links, and gets exactly the
// records, in the order, that the data server finds searching by that
// patient directly, less those its clearance withholds: whatever the type,
// category, code, date (with a prefix), page size, order and element
// selection, with every label or the default clearance (or granted its
// laboratory results only, by a query-constrained scope), searching its
// type (GET, POSTed to _search, or in a batch) or the patient's
// compartment. So does a
// clinician naming the patient. The proxy adds the patient, rewrites the
// query, signs the page links and inspects each page; none of it may
// change what is found. Against the real data server, as FuzzPagesAgree is
// against the test upstream.
func FuzzSearchesAgree(f *testing.F) {
	sb := startSandbox(f)
	every := everyLabel()
	patients := []string{"pt-001", "pt-long", "pt-sensitive", "pt-002"}
	mint := func(g smart.Grant) string {
		g.ClientID, g.Audience = ExampleAppID, sb.FHIRBase
		tok, err := sb.Auth.Mint(context.Background(), "", g, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	// Who searches: the patient's app of every label, of the default
	// clearance, or a clinician of the default clearance naming the patient.
	type searcher struct {
		tok       map[string]string // by patient
		clearance consent.Clearance
		names     bool // names the patient in its search
		lab       bool // granted laboratory results only: patient/Observation.rs?category=laboratory
		wide      bool // searches every patient's records (a clinician)
	}
	searchers := []searcher{{tok: map[string]string{}, clearance: *every}, {tok: map[string]string{}}, {tok: map[string]string{}, names: true},
		{tok: map[string]string{}, clearance: *every, lab: true}, {tok: map[string]string{}, wide: true}, {tok: map[string]string{}, clearance: *every, lab: true, wide: true}}
	clinician := mint(smart.Grant{UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/*.rs"})
	labClinician := mint(smart.Grant{UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/Observation.rs?category=laboratory", Clearance: every})
	for _, p := range patients {
		own := smart.Grant{UserID: "patient", FHIRUser: "Patient/" + p, Scope: "launch/patient patient/*.rs", Context: launch.Context{Patient: p}}
		searchers[1].tok[p] = mint(own)
		own.Clearance = every
		searchers[0].tok[p] = mint(own)
		searchers[2].tok[p] = clinician
		own.Scope = "launch/patient patient/Observation.rs?category=laboratory"
		searchers[3].tok[p] = mint(own)
		searchers[4].tok[p], searchers[5].tok[p] = clinician, labClinician
	}
	types := []string{"Observation", "Encounter", "Condition", "MedicationRequest", "AllergyIntolerance", "DocumentReference", "Appointment"}
	requests, disclosed := tapDisclosures(sb)
	categories := []string{"", "vital-signs", "laboratory", "laboratory,vital-signs", "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}
	codes := []string{"", "8867-4", "2339-0", "http://loinc.org|8867-4", "75622-1"}
	dates := []string{"", "2026", "ge2025-06", "lt2025-12-01", "le2026-01-01", "gt2020"}
	f.Add(uint8(0), uint8(0), uint8(0), uint8(1), uint8(0), uint8(0), uint8(5), false, false)
	f.Add(uint8(0), uint8(1), uint8(0), uint8(0), uint8(0), uint8(2), uint8(7), true, false)
	f.Add(uint8(1), uint8(2), uint8(0), uint8(2), uint8(1), uint8(3), uint8(3), false, true)
	f.Add(uint8(1), uint8(2), uint8(0), uint8(2), uint8(11), uint8(3), uint8(3), false, true)   // a summary (code's fourth bit)
	f.Add(uint8(3), uint8(0), uint8(0), uint8(0), uint8(10), uint8(0), uint8(3), false, true)   // a summary, laboratory results only: refused
	f.Add(uint8(0), uint8(0), uint8(6), uint8(0), uint8(10), uint8(0), uint8(3), false, true)   // a patient's appointments, as a summary: refused
	f.Add(uint8(4), uint8(2), uint8(0), uint8(0), uint8(10), uint8(6), uint8(10), false, true)  // a clinician's summary, with the encounters
	f.Add(uint8(2), uint8(2), uint8(0), uint8(0), uint8(20), uint8(0), uint8(3), false, true)   // a clinician's, as text
	f.Add(uint8(2), uint8(2), uint8(0), uint8(0), uint8(20), uint8(6), uint8(3), false, true)   // as text, with the encounters: refused
	f.Add(uint8(1), uint8(2), uint8(0), uint8(0), uint8(30), uint8(30), uint8(3), false, true)  // all but the narrative, with every reference
	f.Add(uint8(1), uint8(2), uint8(0), uint8(0), uint8(0), uint8(42), uint8(3), false, false)  // the encounters and their practitioners (:iterate): refused
	f.Add(uint8(4), uint8(2), uint8(0), uint8(2), uint8(0), uint8(42), uint8(20), false, false) // the same, a clinician's of every patient
	f.Add(uint8(2), uint8(0), uint8(1), uint8(0), uint8(0), uint8(42), uint8(5), true, false)   // the encounters' practitioners, by a clinician
	f.Add(uint8(2), uint8(2), uint8(0), uint8(0), uint8(0), uint8(42), uint8(2), true, false)   // pt-sensitive's, by a clinician
	f.Add(uint8(2), uint8(2), uint8(2), uint8(0), uint8(0), uint8(42), uint8(5), false, false)  // the conditions with their patient, naming its type
	f.Add(uint8(1), uint8(2), uint8(5), uint8(0), uint8(0), uint8(42), uint8(5), false, false)  // a patient app's documents, so
	f.Add(uint8(2), uint8(0), uint8(0), uint8(1), uint8(0), uint8(0), uint8(245), false, false) // a search of the system, by a clinician
	f.Add(uint8(4), uint8(2), uint8(2), uint8(0), uint8(0), uint8(6), uint8(250), false, false) // every patient's conditions, with their Provenances
	f.Add(uint8(5), uint8(0), uint8(0), uint8(2), uint8(0), uint8(0), uint8(241), false, false) // laboratory results only
	f.Add(uint8(1), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint8(242), false, false) // a patient app: refused
	f.Add(uint8(2), uint8(2), uint8(0), uint8(0), uint8(5), uint8(0), uint8(243), false, false) // chained
	f.Add(uint8(2), uint8(0), uint8(1), uint8(0), uint8(0), uint8(0), uint8(50), true, false)
	f.Add(uint8(1), uint8(2), uint8(0), uint8(2), uint8(4), uint8(0), uint8(1), false, false)
	f.Add(uint8(0), uint8(1), uint8(1), uint8(0), uint8(0), uint8(0), uint8(2), false, false)   // pt-long's encounters, three a page: the 64th page
	f.Add(uint8(1), uint8(0), uint8(0), uint8(1), uint8(0), uint8(0), uint8(64), false, true)   // POSTed
	f.Add(uint8(2), uint8(3), uint8(0), uint8(0), uint8(0), uint8(0), uint8(124), true, false)  // a compartment, by a clinician
	f.Add(uint8(1), uint8(1), uint8(0), uint8(1), uint8(0), uint8(0), uint8(184), false, true)  // batched
	f.Add(uint8(1), uint8(2), uint8(0), uint8(0), uint8(0), uint8(6), uint8(3), false, false)   // with the encounters
	f.Add(uint8(1), uint8(2), uint8(2), uint8(0), uint8(0), uint8(6), uint8(3), false, false)   // with the Provenance
	f.Add(uint8(0), uint8(2), uint8(2), uint8(0), uint8(0), uint8(6), uint8(63), false, true)   // with the Provenance, POSTed, in part
	f.Add(uint8(3), uint8(1), uint8(0), uint8(0), uint8(0), uint8(6), uint8(2), true, false)    // laboratory results only, with the encounters
	f.Add(uint8(4), uint8(0), uint8(0), uint8(2), uint8(1), uint8(0), uint8(5), false, false)   // a clinician's, of every patient's
	f.Add(uint8(0), uint8(0), uint8(0), uint8(0), uint8(5), uint8(1), uint8(3), false, false)   // chained: encounter.date
	f.Add(uint8(1), uint8(2), uint8(0), uint8(0), uint8(6), uint8(0), uint8(2), true, false)    // pt-sensitive's, of the default clearance
	f.Add(uint8(2), uint8(1), uint8(0), uint8(0), uint8(5), uint8(5), uint8(64), false, true)   // pt-long's, by a clinician, POSTed
	f.Add(uint8(4), uint8(0), uint8(2), uint8(0), uint8(0), uint8(6), uint8(70), true, true)    // POSTed, with the Provenance
	f.Add(uint8(5), uint8(0), uint8(0), uint8(0), uint8(0), uint8(7), uint8(190), false, false) // laboratory results only, batched, with the encounters
	f.Add(uint8(2), uint8(2), uint8(1), uint8(0), uint8(0), uint8(18), uint8(5), false, false)  // pt-sensitive's encounters with their readings, by a clinician
	f.Add(uint8(4), uint8(0), uint8(1), uint8(0), uint8(0), uint8(18), uint8(10), true, false)  // every patient's
	f.Add(uint8(1), uint8(0), uint8(1), uint8(0), uint8(0), uint8(18), uint8(5), false, false)  // by a patient app: refused
	f.Add(uint8(1), uint8(2), uint8(0), uint8(0), uint8(0), uint8(30), uint8(3), false, true)   // _include=* in part: refused
	f.Add(uint8(4), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint8(3), false, true)    // every patient's, in part: each named in the audit
	f.Add(uint8(4), uint8(0), uint8(6), uint8(0), uint8(0), uint8(0), uint8(3), false, false)   // every patient's appointments, so
	f.Fuzz(func(t *testing.T, who, patient, typ, category, code, date, count uint8, newest, elements bool) {
		form := int(count) / 60 % 5 // 0: GET Type, 1: POST Type/_search, 2: GET Patient/{id}/Type, 3: batched, 4: GET [base]?_type=Type
		s := searchers[int(who)%len(searchers)]
		p := patients[int(patient)%len(patients)]
		ty := types[int(typ)%len(types)]
		q := url.Values{}
		// An Observation's category; another type's US Core token (a
		// condition's or an allergy's clinical status, an encounter's
		// class, a prescription's intent), or when it was last updated.
		switch c, i := categories[int(category)%len(categories)], int(category)%len(categories); {
		case c != "" && ty == "Observation":
			q.Set("category", c)
		case i > 0 && (ty == "Condition" || ty == "AllergyIntolerance"):
			q.Set("clinical-status", []string{"active", "inactive", "active,resolved", "http://terminology.hl7.org/CodeSystem/condition-clinical|active"}[i-1])
		case i > 0 && ty == "Encounter":
			q.Set("class", []string{"AMB", "IMP", "http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB", "AMB,IMP"}[i-1])
		case i > 0 && ty == "MedicationRequest":
			q.Set("intent", []string{"order", "plan", "order,plan", "proposal"}[i-1])
		case i > 0:
			q.Set("_lastUpdated", []string{"ge2026-01-01", "lt2026", "le2025-12-31", "gt2020"}[i-1])
		}
		if c := codes[int(code)%len(codes)]; c != "" && (ty == "Observation" || ty == "Condition") {
			q.Set("code", c)
		}
		if d := dates[int(date)%len(dates)]; d != "" {
			q.Set("date", d)
		}
		if newest {
			q.Set("_sort", "-date")
		}
		// In part (code's fourth and fifth bits): the status, or R4's
		// summary (true: its summary elements; text: the narrative and
		// mandatory elements; data: all but the narrative).
		summary := ""
		if elements {
			summary = []string{"", "true", "text", "data"}[int(code)/len(codes)/2%4]
			if summary == "" {
				q.Set("_elements", "status")
			} else {
				q.Set("_summary", summary)
			}
		}
		include := int(date)/len(dates)%2 == 1
		variant := int(date) / len(dates) / 2 % 4
		switch {
		case include && ty == "Condition" && variant == 0:
			q.Set("_revinclude", "Provenance:target")
		case include && variant == 2:
			q.Set("_include", "*")
		case include && variant == 3 && ty == "Observation": // the encounters, and theirs
			q.Set("_include", "Observation:encounter")
			q.Set("_include:iterate", "Encounter:participant")
		case include && variant == 3 && ty == "Encounter":
			q.Set("_include:iterate", "Encounter:participant")
		case include && variant == 3: // naming the target's type
			q.Set("_include", ty+":patient:Patient")
		case include && ty == "Observation":
			q.Set("_include", []string{"Observation:encounter", "Observation:patient"}[variant])
		case include && ty == "Encounter" && variant == 1:
			q.Set("_revinclude", "Observation:encounter") // (refused with patient context)
		case include && ty == "Encounter":
			q.Set("_include", "Encounter:participant")
		case include:
			q.Set("_include", ty+":patient")
		}
		if s.wide {
			q.Set("_count", strconv.Itoa(40+int(count)%60*3)) // (every patient's: larger pages)
		} else {
			q.Set("_count", strconv.Itoa(1+int(count)%60))
		}
		// Directly: by the patient (or, for a clinician's search of every
		// patient's, as it is).
		direct := url.Values{}
		for k, v := range q {
			direct[k] = v
		}
		if !s.wide {
			direct.Set("patient", "Patient/"+p)
		} else if form == 2 {
			form = 0 // (no patient's compartment)
		}
		if s.lab {
			if ty != "Observation" {
				return // beyond its scopes
			}
			direct.Add("category", "laboratory") // the constraint, ANDed
		}
		found, err := sb.fhir.find(ty, direct)
		if err != nil {
			t.Fatal(err)
		}
		// A chain (encounter.date), which the proxy resolves over the
		// encounters the searcher may see; the data server runs none.
		chained := int(code)/len(codes)%2 == 1 && ty == "Observation" && !s.lab && !s.wide
		tooMany := false
		if chained {
			d := cmp.Or(dates[int(date)%len(dates)], "ge2025-06")
			q.Set("encounter.date", d)
			of := url.Values{"date": {d}}
			if !s.names { // (a clinician's chain is over every patient's encounters)
				of.Set("patient", "Patient/"+p)
			}
			encounters, err := sb.fhir.find("Encounter", of)
			if err != nil {
				t.Fatal(err)
			}
			var seen []string
			for _, e := range encounters {
				if conf, tags := labels(e); s.clearance.Allows(conf, tags) {
					seen = append(seen, "Encounter/"+e["id"].(string))
				}
			}
			tooMany = len(seen) > 100 // (the proxy's chainLimit: "narrow them")
			found = slices.DeleteFunc(found, func(r resource) bool {
				return !slices.ContainsFunc(references(r, "encounter"), func(ref string) bool { return slices.Contains(seen, ref) })
			})
		}
		var want, wantIncluded []string
		for _, r := range found {
			if conf, tags := labels(r); s.clearance.Allows(conf, tags) {
				want = append(want, r["id"].(string))
				wantIncluded = append(wantIncluded, sb.fhir.includedBy(r, q, s.clearance)...)
			}
		}
		slices.Sort(wantIncluded)
		wantIncluded = slices.Compact(wantIncluded)
		if s.lab {
			wantIncluded = nil // of types beyond its scopes
		}
		if s.names && form != 2 {
			q.Set("patient", p)
		}
		// Through the proxy, page by page.
		var got, gotIncluded []string
		next, body := sb.FHIRBase+"/"+ty+"?"+q.Encode(), ""
		switch form {
		case 1:
			next, body = sb.FHIRBase+"/"+ty+"/_search", q.Encode()
		case 2:
			next = sb.FHIRBase + "/Patient/" + p + "/" + ty + "?" + q.Encode()
		case 3: // its first page the answer of a batch's entry
			entry, _ := json.Marshal(ty + "?" + q.Encode())
			next, body = sb.FHIRBase, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":`+string(entry)+`}}]}`
		case 4: // a search of the system, of the type
			next = sb.FHIRBase + "/?_type=" + ty + "&" + q.Encode()
		}
		for pages := 0; next != ""; pages++ {
			if pages > len(want)+2 {
				t.Fatalf("%s: more pages than records", next)
			}
			method := http.MethodGet
			if body != "" {
				method = http.MethodPost
			}
			contentType := "application/x-www-form-urlencoded"
			if form == 3 {
				contentType = "application/fhir+json"
			}
			rid := "agree-" + strconv.FormatInt(requests.Add(1), 10) // (its audit events: disclosed)
			hdr := []string{"X-Request-Id", rid}
			if body != "" {
				hdr = append(hdr, "Content-Type", contentType)
			}
			resp := callWith(t, s.tok[p], method, next, body, hdr...)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			code := resp.StatusCode
			// Refused where the proxy judges by what the selection leaves
			// out: every reference an _include=* follows, or any an
			// _include follows with text (every searcher here may have
			// matches removed); an Observation's category (no summary
			// element, as an Appointment's participants are not, by which
			// a patient app's are judged); with text, any of them.
			patientApp := !s.names && !s.wide
			partRefused := q.Get("_include") == "*" && elements && summary != "data" ||
				summary == "true" && (s.lab || ty == "Appointment" && (patientApp || q.Has("_include"))) || // (its patient include reads participant, no summary element)
				summary == "text" && (s.lab || patientApp || q.Has("_include") || q.Has("_include:iterate") || q.Has("_revinclude")) ||
				// (The sandbox audits every disclosure, naming its patient:
				// a clinician's search of every patient's records in part
				// must keep each one's patient reference.)
				s.wide && (summary == "text" || summary == "true" && ty == "Appointment")
			if form == 4 && (patientApp || s.lab || chained && !partRefused) {
				// (A search of the system needs s of every type, and is
				// refused with patient context; the proxy resolves no chain
				// in it.)
				if code != http.StatusForbidden || !strings.Contains(string(b), "patient context") && !strings.Contains(string(b), "scopes do not allow") &&
					!strings.Contains(string(b), "search those first") {
					t.Fatalf("a search of the system by a patient app or of laboratory results only: %d %.300s", code, b)
				}
				return
			}
			if q.Get("_revinclude") == "Observation:encounter" && !s.names && !s.wide {
				// US Core's Provenance:target is a patient app's only reverse include.
				if code != http.StatusForbidden && !(form == 3 && strings.Contains(string(b), `"403`)) {
					t.Fatalf("a patient app's _revinclude=Observation:encounter: %d %.300s", code, b)
				}
				return
			}
			if q.Has("_include:iterate") && !s.names && !s.wide && !(s.lab && (summary == "true" || summary == "text")) {
				// (An include of what was included may go beyond the
				// compartment's records: refused with patient context; a
				// summary the constraint cannot be read in is refused first.)
				if code != http.StatusForbidden && !(form == 3 && strings.Contains(string(b), `"403`)) {
					t.Fatalf("a patient app's _include:iterate: %d %.300s", code, b)
				}
				return
			}
			if partRefused {
				if code != http.StatusBadRequest && !(form == 3 && (code == http.StatusOK && strings.Contains(string(b), `"400`) || code == http.StatusBadRequest)) ||
					!strings.Contains(string(b), "_elements") && !strings.Contains(string(b), "whole records") {
					t.Fatalf("%s: %d %.300s", q.Encode(), code, b)
				}
				return
			}
			if chained && form == 3 && body != "" {
				// (Chains are resolved in a search on its own only.)
				if code != http.StatusForbidden || !strings.Contains(string(b), "has chains") {
					t.Fatalf("a batched search with a chain: %d %.300s", code, b)
				}
				return
			}
			if tooMany {
				if code != http.StatusForbidden && !(form == 3 && code == http.StatusOK && strings.Contains(string(b), `"403`)) {
					t.Fatalf("%s: %d %.300s, where the chain matches more than 100 encounters", next, code, b)
				}
				return
			}
			if form == 3 && body != "" {
				var batch struct {
					Entry []struct {
						Resource json.RawMessage
						Response struct{ Status string }
					}
				}
				if err := json.Unmarshal(b, &batch); code != http.StatusOK || err != nil || len(batch.Entry) != 1 || batch.Entry[0].Response.Status != "200 OK" {
					t.Fatalf("the batch: %d %.300s", code, b)
				}
				b = batch.Entry[0].Resource
			}
			body = "" // the next pages are links
			var page struct {
				Total *int
				Link  []struct{ Relation, URL string }
				Entry []struct {
					Resource struct {
						ResourceType string
						ID           string
						Meta         struct{ Tag []struct{ Code string } }
					}
					Search struct{ Mode string }
				}
			}
			if err := json.Unmarshal(b, &page); code != http.StatusOK || err != nil {
				t.Fatalf("%s: %d %.300s", next, code, b)
			}
			switch {
			case page.Total != nil && *page.Total != len(want):
				t.Errorf("%s: total %d, the server finds %d, %d of them withheld", next, *page.Total, len(found), len(found)-len(want))
			// (Under a constraint the search repeats, the proxy holds the
			// matches itself, and a total it cannot vouch for goes.)
			case page.Total == nil && len(want) == len(found) && !s.names && !s.lab && s.clearance.Unrestricted():
				t.Errorf("%s: no total, where nothing is withheld", next)
			}
			// Its audit event names every patient whose records it
			// disclosed (the sandbox audits every disclosure), in part
			// or whole, and no other but the one the search is about.
			var keys []string
			for _, e := range page.Entry {
				keys = append(keys, e.Resource.ResourceType+"/"+e.Resource.ID)
			}
			if form != 3 { // (a batch's entries are audited in the batch's)
				about := ""
				if !s.wide {
					about = p
				}
				named, labels := disclosed(rid)
				if shown := sb.fhir.patientsOf(keys); !isSubset(shown, named) || !isSubset(named, append(shown, about)) {
					t.Errorf("%s: the audit names %v, the page discloses %v's records", next, named, shown)
				}
				if want := labelsIn(sb.fhir.records(keys)); !slices.Equal(labels, want) {
					t.Errorf("%s: the audit names the labels %v, the page discloses records labelled %v", next, labels, want)
				}
			}
			for _, e := range page.Entry {
				if e.Search.Mode != "match" {
					gotIncluded = append(gotIncluded, e.Resource.ResourceType+"/"+e.Resource.ID)
					continue
				}
				got = append(got, e.Resource.ID)
				if elements != slices.ContainsFunc(e.Resource.Meta.Tag, func(tg struct{ Code string }) bool { return tg.Code == "SUBSETTED" }) {
					t.Errorf("%s: %s is subsetted %v", next, e.Resource.ID, !elements)
				}
			}
			next = nextLink(t, sb, page.Link)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s (form %d) for %s: through the proxy %v, directly %v", ty+"?"+q.Encode(), form, p, got, want)
		}
		// Counted (by the server, or by the proxy where a clearance short
		// of every label would have the server count what it withholds):
		// the records found.
		counted := url.Values{}
		for k, v := range q {
			if k != "_elements" && k != "_include" && k != "_revinclude" && k != "_count" && k != "_summary" {
				counted[k] = v
			}
		}
		if elements { // (either way of asking for the total alone)
			counted.Set("_count", "0")
		} else {
			counted.Set("_summary", "count")
		}
		if !s.wide {
			counted.Set("patient", p) // (a compartment's search had it in its path)
		}
		status, b := fhirCall(t, s.tok[p], http.MethodGet, sb.FHIRBase+"/"+ty+"?"+counted.Encode(), "")
		var counts struct{ Total *int }
		if err := json.Unmarshal(b, &counts); status != http.StatusOK || err != nil || counts.Total == nil || *counts.Total != len(want) {
			t.Errorf("%s for %s: %d %.300s, where %d are found", ty+"?"+counted.Encode(), p, status, b, len(want))
		}
		slices.Sort(gotIncluded)
		if gotIncluded = slices.Compact(gotIncluded); !slices.Equal(gotIncluded, wantIncluded) {
			t.Errorf("%s (form %d) for %s: included through the proxy %v, directly %v", ty+"?"+q.Encode(), form, p, gotIncluded, wantIncluded)
		}
	})
}

// includedBy returns what a search q includes with a record r it matches
// (its _include and _include:iterate, and its _revinclude: the records of a type whose
// parameter refers to r), less what the clearance withholds: the records
// as the proxy may send them (a Provenance goes when the records it is
// about may: here, its one target).
func (s *fhirServer) includedBy(r resource, q url.Values, c consent.Clearance) []string {
	var out []string
	key := r["resourceType"].(string) + "/" + r["id"].(string)
	s.mu.RLock()
	defer s.mu.RUnlock()
	// What r refers to by _include or _include:iterate, and what those the
	// clearance allows refer to by _include:iterate, round by round (a
	// record withheld brings nothing on).
	from, incs := []resource{r}, append(slices.Clone(q["_include"]), q["_include:iterate"]...)
	for round := 0; len(from) > 0 && len(incs) > 0 && round < 5; round++ {
		var next []resource
		for _, inc := range incs {
			for _, res := range from {
				for _, ref := range includes(res, inc) {
					if target, ok := s.current[ref]; ok && !slices.Contains(out, ref) {
						if conf, tags := labels(target); c.Allows(conf, tags) {
							out, next = append(out, ref), append(next, target)
						}
					}
				}
			}
		}
		from, incs = next, q["_include:iterate"]
	}
	for _, rev := range q["_revinclude"] {
		src, _, _ := strings.Cut(rev, ":")
		for _, k := range s.order {
			if strings.HasPrefix(k, src+"/") && slices.Contains(includes(s.current[k], rev), key) {
				if conf, tags := labels(s.current[k]); c.Allows(conf, tags) {
					out = append(out, k)
				}
			}
		}
	}
	return out
}

// labels are a record's confidentiality and sensitivity labels as the
// proxy reads them (meta.security, by their code systems).
func labels(r resource) (consent.Confidentiality, []string) {
	var conf consent.Confidentiality
	var tags []string
	m, _ := r["meta"].(map[string]any)
	for _, sec := range asList(m["security"]) {
		c, _ := sec.(map[string]any)
		code, _ := c["code"].(string)
		switch c["system"] {
		case confCode:
			if cc := consent.Confidentiality(code); conf == "" || cc.Rank() > conf.Rank() {
				conf = cc
			}
		case actCode:
			tags = append(tags, code)
		}
	}
	if conf == "" {
		conf = consent.Normal
	}
	return conf, tags
}

// tapDisclosures has the sandbox's proxy tell its audit events as it
// records them, and returns a counter for unique request ids (sent as
// X-Request-Id) and what gives the patients and the security labels
// (system|code) the events of a request name as disclosed, each sorted.
func tapDisclosures(sb *Sandbox) (*atomic.Int64, func(requestID string) (patients, labels []string)) {
	var mu sync.Mutex
	patients, labels := map[string][]string{}, map[string][]string{}
	add := func(to map[string][]string, id string, vs ...string) {
		for _, v := range vs {
			if v != "" && !slices.Contains(to[id], v) {
				to[id] = append(to[id], v)
			}
		}
	}
	tap := func(e audit.Event) {
		mu.Lock()
		defer mu.Unlock()
		add(patients, e.RequestID, e.Patient)
		add(patients, e.RequestID, e.Patients...)
		add(labels, e.RequestID, e.Labels...)
	}
	sb.tap.Store(&tap)
	return new(atomic.Int64), func(id string) ([]string, []string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(slices.Values(patients[id])), slices.Sorted(slices.Values(labels[id]))
	}
}

// labelsIn are the security labels (system|code) of the records rs, once
// each, sorted.
func labelsIn(rs []resource) []string {
	var out []string
	for _, r := range rs {
		m, _ := r["meta"].(map[string]any)
		for _, c := range asList(m["security"]) {
			cm, _ := c.(map[string]any)
			if l := fmt.Sprint(cm["system"]) + "|" + fmt.Sprint(cm["code"]); !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	slices.Sort(out)
	return out
}

// patientsOf are the patients whose records those keys (Type/id) are, as
// stored, sorted: a Patient's own, the patients a record of the
// compartment refers to as its patient, a Provenance's targets' (patientsIn).
func (s *fhirServer) patientsOf(keys []string) []string { return s.patientsIn(s.records(keys)) }

// records are the stored records of those keys (Type/id).
func (s *fhirServer) records(keys []string) []resource {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var rs []resource
	for _, key := range keys {
		if r, ok := s.current[key]; ok {
			rs = append(rs, r)
		}
	}
	return rs
}

// patientsIn are the patients whose records rs are (patientsOf), sorted;
// a nil one (a deletion) is no one's. A Provenance is of its targets'
// patients (as stored now), which the proxy reads to judge it.
func (s *fhirServer) patientsIn(rs []resource) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for _, r := range rs {
		if r == nil {
			continue
		}
		typ, id := fmt.Sprint(r["resourceType"]), fmt.Sprint(r["id"])
		var refs []string
		switch {
		case typ == "Patient":
			refs = []string{"Patient/" + id}
		case typ == "Provenance":
			for _, ref := range references(r, "target") {
				refs = append(refs, ref)
				if target, ok := s.current[ref]; ok && compartmentTypes[fmt.Sprint(target["resourceType"])] {
					refs = append(refs, patientRefs(target)...)
				}
			}
		case compartmentTypes[typ]:
			refs = patientRefs(r)
		}
		for _, ref := range refs {
			if p, ok := strings.CutPrefix(ref, "Patient/"); ok && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

// isSubset reports whether every one of sub is in of.
func isSubset(sub, of []string) bool {
	return !slices.ContainsFunc(sub, func(x string) bool { return !slices.Contains(of, x) })
}
