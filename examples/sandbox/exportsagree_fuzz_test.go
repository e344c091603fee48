package main

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/client"
)

// FuzzExportsAgree: a backend service's bulk export through the proxy
// holds, type by type and in order, exactly the records the data server
// exports for the same kick-off that the grant may see, or is refused
// where the kick-off asks for a type beyond its scopes. Whatever the level
// (system, every patient, the panel Group), the types (_type), the filter
// (_typeFilter), the Provenances of what is exported
// (includeAssociatedData), part of each line (_elements) and the grant (every type of the default clearance or of
// every label; laboratory results and patients only, of every label; three
// types of the default clearance).
func FuzzExportsAgree(f *testing.F) {
	sb := startSandbox(f)
	mint := func(scope string, clearance *consent.Clearance) string {
		tok, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: BackendID, Audience: sb.FHIRBase, Scope: scope, Clearance: clearance}, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	every := everyLabel()
	type exporter struct {
		tok       string
		types     []string // the types its scopes name; nil: every type
		lab       bool     // Observations of the laboratory only
		clearance consent.Clearance
	}
	exporters := []exporter{
		{tok: mint("system/*.rs", nil)},
		{tok: mint("system/*.rs", every), clearance: *every},
		{tok: mint("system/Observation.rs?category=laboratory system/Patient.rs", every), types: []string{"Observation", "Patient"}, lab: true, clearance: *every},
		{tok: mint("system/Observation.rs system/Condition.rs system/Patient.rs", nil), types: []string{"Observation", "Condition", "Patient"}},
	}
	requests, disclosed := tapDisclosures(sb)
	levels := []string{"/$export", "/Patient/$export", "/Group/" + PanelGroup + "/$export"}
	allTypes := []string{"Patient", "Observation", "Condition", "Encounter", "Provenance", "AllergyIntolerance", "Group", "Practitioner"}
	filters := []string{"", "Observation?category=laboratory", "Observation?category=vital-signs", "Condition?code=66214007", "Observation?code=75622-1"}
	// direct runs a kick-off on the data server itself and returns its
	// files' ids by type, in order.
	direct := func(t *testing.T, path string) map[string][]string {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Prefer", "respond-async")
		sb.fhir.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("directly %s: %d %s", path, rec.Code, rec.Body)
		}
		_, jobID, _ := strings.Cut(rec.Header().Get("Content-Location"), "_jobId=")
		sb.fhir.mu.Lock()
		job := sb.fhir.jobs[jobID]
		delete(sb.fhir.jobs, jobID)
		sb.fhir.mu.Unlock()
		out := map[string][]string{}
		for typ, b := range job.files {
			for line := range strings.Lines(string(b)) {
				var r resource
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatal(err)
				}
				out[typ] = append(out[typ], r["id"].(string))
			}
		}
		return out
	}
	f.Add(uint8(0), uint8(0), uint8(0), uint8(0))
	f.Add(uint8(0), uint8(2), uint8(3), uint8(0))
	f.Add(uint8(1), uint8(1), uint8(0xff), uint8(1))
	f.Add(uint8(2), uint8(0), uint8(3), uint8(0))
	f.Add(uint8(2), uint8(2), uint8(0), uint8(4))
	f.Add(uint8(3), uint8(1), uint8(0), uint8(3))
	f.Add(uint8(3), uint8(2), uint8(4|8), uint8(0))
	f.Add(uint8(0), uint8(2), uint8(16|4), uint8(3)) // the Provenances, of the default clearance
	f.Add(uint8(0), uint8(2), uint8(4), uint8(5))    // the panel's conditions with their Provenances
	f.Add(uint8(1), uint8(0), uint8(0), uint8(6))    // every record's, of every label
	f.Add(uint8(0), uint8(1), uint8(2|4), uint8(8))
	f.Add(uint8(0), uint8(2), uint8(0), uint8(10))    // each line's status
	f.Add(uint8(2), uint8(1), uint8(2|1), uint8(21))  // an Observation's code, laboratory results only
	f.Add(uint8(3), uint8(0), uint8(4), uint8(20))    // an Observation's code, of conditions: refused
	f.Add(uint8(0), uint8(2), uint8(16|2), uint8(15)) // each line's status, with the Provenances
	f.Fuzz(func(t *testing.T, who, level, typeMask, filter uint8) {
		e := exporters[int(who)%len(exporters)]
		q := url.Values{}
		types := typesOf(typeMask, allTypes)
		if len(types) > 0 {
			q.Set("_type", strings.Join(types, ","))
		}
		if fl := filters[int(filter)%len(filters)]; fl != "" {
			q.Set("_typeFilter", fl)
		}
		associated := int(filter)/len(filters)%2 == 1
		if associated {
			q.Set("includeAssociatedData", "LatestProvenanceResources")
		}
		// Part of each line: the status of every type, or an Observation's
		// code (Bulk Data's _elements), which must not change what lines go.
		elements := []string{"", "status", "Observation.code"}[int(filter)/len(filters)/2%3]
		if elements != "" {
			q.Set("_elements", elements)
		}
		path := levels[int(level)%len(levels)]
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		want := direct(t, path)
		// Beyond its scopes: a type it names, a filter's, the Group's it
		// exports.
		beyond := slices.ContainsFunc(types, func(typ string) bool { return e.types != nil && !slices.Contains(e.types, typ) }) ||
			strings.HasPrefix(path, "/Group/") && e.types != nil && !slices.Contains(e.types, "Group") ||
			associated && e.types != nil && !slices.Contains(e.types, "Provenance") ||
			elements == "Observation.code" && len(types) > 0 && !slices.Contains(types, "Observation")
		if fl := q.Get("_typeFilter"); fl != "" {
			// (A filter of a type _type does not name is refused too.)
			typ, _, _ := strings.Cut(fl, "?")
			beyond = beyond || e.types != nil && !slices.Contains(e.types, typ) || len(types) > 0 && !slices.Contains(types, typ)
		}

		// (Each file's download with a request id, its audit events
		// found by.)
		var downloads []string
		hc := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			if strings.Contains(r.URL.Path, "$export-file") {
				rid := "exports-" + strconv.FormatInt(requests.Add(1), 10)
				r.Header.Set("X-Request-Id", rid)
				downloads = append(downloads, rid)
			}
			return bearer(e.tok).RoundTrip(r)
		})}
		export, err := client.StartExport(context.Background(), hc, sb.FHIRBase+path)
		if beyond {
			if err == nil {
				t.Fatalf("%s by exporter %d: started, beyond its scopes", path, int(who)%len(exporters))
			}
			return
		}
		if err != nil {
			t.Fatalf("%s by exporter %d: %v", path, int(who)%len(exporters), err)
		}
		_, files := exportFiles(t, sb, hc, export)
		got := map[string][]string{}
		var keys []string
		for typ, lines := range files {
			for _, res := range lines {
				got[typ] = append(got[typ], idOf(res))
				// (A Provenance counts for its targets' patients: the
				// proxy reads them, to judge it or, for a grant that sees
				// every record, for the audit the sandbox keeps of every
				// disclosure.)
				keys = append(keys, typ+"/"+idOf(res))
			}
		}
		// The downloads' audit events name the patients whose records
		// their lines disclosed, and no other.
		// (A download's closing event may be recorded just after its
		// last byte is read: looked for a while.)
		shown := sb.fhir.patientsOf(keys)
		var named []string
		for try := 0; try == 0 || !slices.Equal(named, shown) && try < 100; try++ {
			if try > 0 {
				time.Sleep(5 * time.Millisecond)
			}
			named = nil
			for _, rid := range downloads {
				ps, _ := disclosed(rid)
				named = append(named, ps...)
			}
			slices.Sort(named)
			named = slices.Compact(named)
		}
		if !slices.Equal(named, shown) {
			unnamed := slices.DeleteFunc(slices.Clone(shown), func(p string) bool { return slices.Contains(named, p) })
			extra := slices.DeleteFunc(slices.Clone(named), func(p string) bool { return slices.Contains(shown, p) })
			t.Fatalf("%s by exporter %d: the downloads' audit leaves out %v, and names %v besides, of the %d patients whose records their lines disclose", path, int(who)%len(exporters), head(unnamed), head(extra), len(shown))
		}
		every := slices.Sorted(maps.Keys(want))
		for typ := range got {
			if !slices.Contains(every, typ) {
				every = append(every, typ)
			}
		}
		for _, typ := range every {
			var kept []string
			g := grantee{clearance: e.clearance, lab: e.lab && typ == "Observation"}
			for _, id := range want[typ] {
				sb.fhir.mu.RLock()
				r := sb.fhir.current[typ+"/"+id]
				sb.fhir.mu.RUnlock()
				if (e.types == nil || slices.Contains(e.types, typ)) && g.sees(sb, "", r, 4) {
					kept = append(kept, id)
				}
			}
			if !slices.Equal(got[typ], kept) {
				t.Fatalf("%s by exporter %d: %s exported %d %v, the grant's of the server's %d: %d %v", path, int(who)%len(exporters), typ, len(got[typ]), head(got[typ]), len(want[typ]), len(kept), head(kept))
			}
		}
	})
}

// head is the first few of a list, for a message.
func head(ids []string) []string { return ids[:min(len(ids), 6)] }

// typesOf is the types of all that mask's bits pick (bit i, all[i]).
func typesOf(mask uint8, all []string) []string {
	var out []string
	for i, typ := range all {
		if mask&(1<<i) != 0 {
			out = append(out, typ)
		}
	}
	return out
}

// roundTripper is an http.RoundTripper of a function.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
