package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
)

// patientToken mints an access token of the example app for pt-001.
func patientToken(t *testing.T, sb *Sandbox, scope string) string {
	t.Helper()
	return patientTokenOf(t, sb, "pt-001", scope)
}

// patientTokenOf mints an access token of the example app for a patient.
func patientTokenOf(t *testing.T, sb *Sandbox, patient, scope string) string {
	t.Helper()
	tok, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, UserID: "patient", FHIRUser: "Patient/" + patient,
		Scope: scope, Audience: sb.FHIRBase, Context: launch.Context{Patient: patient}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// transaction posts a transaction Bundle of n entries and returns where
// each landed (Type/id, without the version), or fails the test.
func transaction(t *testing.T, sb *Sandbox, tok, body string, n int) []string {
	t.Helper()
	code, b := fhirCall(t, tok, http.MethodPost, sb.FHIRBase, body)
	var answer struct {
		Entry []struct{ Response struct{ Location string } }
	}
	if err := json.Unmarshal(b, &answer); code != http.StatusOK || err != nil || len(answer.Entry) != n {
		t.Fatalf("the transaction: %d %s", code, b)
	}
	var at []string
	for _, e := range answer.Entry {
		loc, _, _ := strings.Cut(strings.TrimPrefix(e.Response.Location, sb.FHIRBase+"/"), "/_history")
		at = append(at, loc)
	}
	return at
}

// fhirCall sends a request with a bearer token (and a FHIR JSON body,
// when given) and returns the status and the body.
func fhirCall(t *testing.T, tok, method, target, body string) (int, []byte) {
	t.Helper()
	return fhirCallAs(t, tok, method, target, "application/fhir+json", body)
}

// callWith sends a request with the bearer token and the headers given
// (name, value, …) and returns the response, its body unread.
func callWith(t *testing.T, tok, method, target, body string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// fhirCallAs is fhirCall with the body's media type given.
func fhirCallAs(t *testing.T, tok, method, target, contentType, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestProxyInFrontOfTheSandboxData runs attack classes of the security
// baseline's proxy section against the sandbox's own FHIR data server, with
// a patient/ token for pt-001 of the example app.
func TestProxyInFrontOfTheSandboxData(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/*.rs")
	get := func(path string) (int, string) {
		t.Helper()
		code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+path, "")
		return code, string(b)
	}
	refs := func(body string) []string {
		var b struct {
			Entry []struct {
				Resource struct {
					ResourceType string
					ID           string
					Subject      struct{ Reference string }
					Patient      struct{ Reference string }
				}
			}
		}
		_ = json.Unmarshal([]byte(body), &b)
		var out []string
		for _, e := range b.Entry {
			r := e.Resource
			switch {
			case r.ResourceType == "Patient":
				out = append(out, "Patient/"+r.ID)
			case r.Subject.Reference != "":
				out = append(out, r.Subject.Reference)
			case r.Patient.Reference != "":
				out = append(out, r.Patient.Reference)
			}
		}
		return out
	}

	// Reads and searches stay in pt-001's compartment.
	if code, _ := get("/Patient/pt-001"); code != 200 {
		t.Fatalf("own record: %d", code)
	}
	code, body := get("/Observation?_count=200")
	if code != 200 || len(refs(body)) == 0 {
		t.Fatalf("own observations: %d", code)
	}
	for _, r := range refs(body) {
		if r != "Patient/pt-001" {
			t.Fatalf("a search without a patient returned %s", r)
		}
	}
	for _, c := range []struct {
		name, path string
		status     int
	}{
		{"another patient's record", "/Patient/pt-002", 404},
		{"a linked duplicate chart", "/Patient/pt-dup-new", 404},
		{"search naming another patient", "/Observation?patient=pt-002", 403},
		{"repeated patient parameters", "/Observation?patient=pt-001&patient=pt-002", 403},
		{"an OR list", "/Observation?subject=Patient/pt-001,Patient/pt-002", 403},
		{"an absolute reference", "/Observation?subject=" + sb.FHIRBase + "/Patient/pt-002", 403},
		{"a reverse chain", "/Patient?_has:Observation:patient:code=1234", 403},
		{"a chain", "/Observation?subject:Patient.name=Lee", 403},
		{"$everything for another patient", "/Patient/pt-002/$everything", 403},
		{"system history", "/_history", 403},
		// The sandbox's ServeMux cleans dot segments (a redirect the client
		// follows) before the proxy sees them; the cleaned target is then
		// another patient's record. (Mounted bare, the proxy refuses them
		// itself with 400: fhirproxy's tests.)
		{"a dot segment", "/Patient/../Patient/pt-002", 404},
		{"an encoded slash", "/Patient%2Fpt-002", 400},
		{"a lower-case type", "/patient/pt-001", 400},
		{"an iterating include, by its R3 name", "/Observation?_include:recurse=Observation:subject", 403},
		{"a token in the query too", "/Observation?access_token=x", 400},
		{"another server's pt-001", "/Observation?subject=https://other.example/fhir/Patient/pt-001", 403},
	} {
		code, body := get(c.path)
		if code != c.status {
			t.Errorf("%s: %d, want %d: %.200s", c.name, code, c.status, body)
		}
		if !strings.Contains(body, `"OperationOutcome"`) {
			t.Errorf("%s: not an OperationOutcome: %.200s", c.name, body)
		}
	}
	// Includes cannot bring in another patient: encounters of pt-001 with
	// their subject include only pt-001.
	code, body = get("/Encounter?_count=3&_include=Encounter:subject")
	if code != 200 {
		t.Fatalf("include: %d %.300s", code, body)
	}
	for _, r := range refs(body) {
		if r != "Patient/pt-001" {
			t.Fatalf("an include reached %s", r)
		}
	}

	// A write into another patient's compartment is refused and the data
	// server is unchanged.
	wtok := patientToken(t, sb, "launch/patient patient/Observation.c")
	sb.fhir.mu.RLock()
	before := len(sb.fhir.current)
	sb.fhir.mu.RUnlock()
	req, _ := http.NewRequest(http.MethodPost, sb.FHIRBase+"/Observation",
		strings.NewReader(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pt-002"}}`))
	req.Header.Set("Authorization", "Bearer "+wtok)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sb.fhir.mu.RLock()
	after := len(sb.fhir.current)
	sb.fhir.mu.RUnlock()
	if resp.StatusCode != http.StatusForbidden || after != before {
		t.Fatalf("a write for another patient: %d, resources %d -> %d", resp.StatusCode, before, after)
	}
	// The same write for pt-001 goes through.
	req, _ = http.NewRequest(http.MethodPost, sb.FHIRBase+"/Observation",
		strings.NewReader(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pt-001"}}`))
	req.Header.Set("Authorization", "Bearer "+wtok)
	req.Header.Set("Content-Type", "application/fhir+json")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sb.fhir.mu.RLock()
	after = len(sb.fhir.current)
	sb.fhir.mu.RUnlock()
	if resp.StatusCode != http.StatusCreated || after != before+1 {
		t.Fatalf("a write for the patient in context: %d, resources %d -> %d", resp.StatusCode, before, after)
	}
}

// TestPatientLinksThroughTheProxy (D-6): a patient app may update its own
// record, sending back the links as stored, but not add or remove one, in
// front of the sandbox's data server, whose duplicate chart pt-dup-new
// replaces pt-dup-old.
func TestPatientLinksThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, UserID: "patient", FHIRUser: "Patient/pt-dup-new",
		Scope: "launch/patient patient/Patient.rus", Audience: sb.FHIRBase, Context: launch.Context{Patient: "pt-dup-new"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	target := sb.FHIRBase + "/Patient/pt-dup-new"
	code, b := fhirCall(t, tok, http.MethodGet, target, "")
	var rec map[string]any
	if code != 200 || json.Unmarshal(b, &rec) != nil || rec["link"] == nil {
		t.Fatalf("the linked record: %d %s", code, b)
	}
	stored := func() string {
		sb.fhir.mu.RLock()
		defer sb.fhir.mu.RUnlock()
		l, _ := json.Marshal(sb.fhir.current["Patient/pt-dup-new"]["link"])
		return string(l)
	}
	links := stored()
	put := func(r map[string]any) int {
		b, _ := json.Marshal(r)
		code, _ := fhirCall(t, tok, http.MethodPut, target, string(b))
		return code
	}
	edited := func(link any) map[string]any {
		r := map[string]any{}
		for k, v := range rec {
			r[k] = v
		}
		if link == nil {
			delete(r, "link")
		} else {
			r["link"] = link
		}
		return r
	}
	for name, link := range map[string]any{
		"a link removed": nil,
		"a link added":   append(rec["link"].([]any), map[string]any{"other": map[string]any{"reference": "Patient/pt-001"}, "type": "seealso"}),
	} {
		if code := put(edited(link)); code != http.StatusForbidden || stored() != links {
			t.Errorf("%s: %d, links now %s", name, code, stored())
		}
	}
	rec["gender"] = "female"
	if code := put(rec); code != http.StatusOK || stored() != links {
		t.Errorf("the record sent back with its links: %d, links now %s", code, stored())
	}
}

// TestPagingThroughTheProxy: the data server writes its paging links on
// the public base, so a client follows them through the proxy, which
// authorises each page as any search (a link edited to name another patient
// is refused like the search it is).
func TestPagingThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/*.rs")
	get := func(target string) (int, map[string]any) {
		t.Helper()
		code, raw := fhirCall(t, tok, http.MethodGet, target, "")
		var b map[string]any
		_ = json.Unmarshal(raw, &b)
		return code, b
	}
	next := func(b map[string]any) string {
		links, _ := b["link"].([]any)
		for _, l := range links {
			if l := l.(map[string]any); l["relation"] == "next" {
				return l["url"].(string)
			}
		}
		return ""
	}
	code, all := get(sb.FHIRBase + "/Observation?_count=500")
	entries, _ := all["entry"].([]any)
	if code != 200 || len(entries) < 4 {
		t.Fatalf("all of pt-001's observations: %d, %d entries", code, len(entries))
	}
	seen := map[string]bool{}
	pages := 0
	for target := sb.FHIRBase + "/Observation?_count=3"; target != ""; pages++ {
		if !strings.HasPrefix(target, sb.FHIRBase+"/") {
			t.Fatalf("page %d: a link past the proxy: %s", pages, target)
		}
		code, b := get(target)
		if code != 200 {
			t.Fatalf("page %d (%s): %d %v", pages, target, code, b)
		}
		page, _ := b["entry"].([]any)
		for _, e := range page {
			res := e.(map[string]any)["resource"].(map[string]any)
			if ref := res["subject"].(map[string]any)["reference"]; ref != "Patient/pt-001" {
				t.Fatalf("page %d holds %v's observation", pages, ref)
			}
			if id := res["id"].(string); seen[id] {
				t.Fatalf("page %d repeats %s", pages, id)
			} else {
				seen[id] = true
			}
		}
		if pages == 1 {
			edited := strings.Replace(target, "pt-001", "pt-002", 1)
			if code, _ := get(edited); edited == target || code != http.StatusForbidden {
				t.Errorf("a next link edited to name pt-002 (%s): %d", edited, code)
			}
		}
		target = next(b)
	}
	if pages < 2 || len(seen) != len(entries) {
		t.Errorf("%d pages brought %d observations of %d", pages, len(seen), len(entries))
	}
}

// TestProxyWithholdsLabelledRecords runs the security-label attack classes
// against the sandbox's data server, with a clinician's user/ token of the
// default clearance (normal data only): pt-sensitive's labelled records are
// neither read, nor searched by, nor counted, nor written over or deleted.
func TestProxyWithholdsLabelledRecords(t *testing.T) {
	sb := startSandbox(t)
	tok, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, UserID: "clinician",
		FHIRUser: "Practitioner/pr-lee", Scope: "user/*.cruds", Audience: sb.FHIRBase}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		code, raw := fhirCall(t, tok, method, sb.FHIRBase+path, body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return code, out
	}
	stored := func(key string) resource {
		sb.fhir.mu.RLock()
		defer sb.fhir.mu.RUnlock()
		return sb.fhir.current[key]
	}

	if code, _ := do("GET", "/Observation/pt-sensitive-hiv", ""); code != 404 {
		t.Errorf("the HIV-labelled record: %d", code)
	}
	code, b := do("GET", "/Condition?patient=pt-sensitive", "")
	entries, _ := b["entry"].([]any)
	if code != 200 || len(entries) == 0 || b["total"] != nil || !strings.Contains(fmt.Sprint(b["meta"]), "REDACTED") {
		t.Errorf("conditions: %d, %d entries, total %v, meta %v", code, len(entries), b["total"], b["meta"])
	}
	if code, b := do("GET", "/Patient?_has:Observation:subject:code=75622-1", ""); code != 403 || b["resourceType"] != "OperationOutcome" { // who had an HIV test
		t.Errorf("a reverse chain: %d", code)
	}
	// Counted by the proxy: the conditions the search shows, not those withheld.
	if code, b := do("GET", "/Condition?patient=pt-sensitive&_summary=count", ""); code != 200 || b["total"] != float64(len(entries)) {
		t.Errorf("the count of pt-sensitive's conditions: %d %v, where the search shows %d", code, b, len(entries))
	}
	// A chain the proxy resolves itself: the search goes by the patients
	// it may see, and the HIV test stays withheld.
	if code, b := do("GET", "/Observation?subject:Patient.name=Marlow&code=75622-1", ""); code != 200 || strings.Contains(fmt.Sprint(b), "pt-sensitive-hiv") {
		t.Errorf("a chained search: %d %v", code, b)
	}

	// Writes: the labels of a withheld record cannot be stripped, nor the
	// record deleted, and a free id answers alike.
	hiv := stored("Observation/pt-sensitive-hiv")
	stripped := `{"resourceType":"Observation","id":"pt-sensitive-hiv","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pt-sensitive"}}`
	free := `{"resourceType":"Observation","id":"pt-free","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pt-sensitive"}}`
	for _, c := range [][3]string{
		{"PUT", "/Observation/pt-sensitive-hiv", stripped},
		{"DELETE", "/Condition/pt-sensitive-mh", ""},
		{"PUT", "/Observation/pt-free", free},
	} {
		if code, _ := do(c[0], c[1], c[2]); code != 404 {
			t.Errorf("%s %s: %d", c[0], c[1], code)
		}
	}
	if fmt.Sprint(stored("Observation/pt-sensitive-hiv")) != fmt.Sprint(hiv) || stored("Condition/pt-sensitive-mh") == nil || stored("Observation/pt-free") != nil {
		t.Error("the data server changed")
	}
}

// TestUpsertThroughTheProxy: a patient app (a home device's, say) writes
// its readings with conditional updates keyed by its own identifier, so a
// retry never duplicates one: the first creates, the next updates the same
// record. Another patient's reading with the same identifier is no match
// for it: the proxy resolves the criteria over the app's own patient's
// records, and the other record is left as it was. Nor may a reading
// refer to the other patient's (a panel's hasMember).
func TestUpsertThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	mint := func(patient string) string {
		tok, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, UserID: "patient", FHIRUser: "Patient/" + patient,
			Scope: "launch/patient patient/Observation.cruds", Audience: sb.FHIRBase, Context: launch.Context{Patient: patient}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	mine, theirs := mint("pt-001"), mint("pt-long")
	reading := func(patient, id string, bpm int) string {
		b, _ := json.Marshal(map[string]any{"resourceType": "Observation", "status": "final",
			"identifier": []any{map[string]any{"system": "urn:example:device", "value": id}},
			"code":       map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
			"subject":    map[string]any{"reference": "Patient/" + patient}, "valueQuantity": map[string]any{"value": bpm, "unit": "/min"}})
		return string(b)
	}
	upsert := func(tok, patient, id string, bpm int) (int, map[string]any) {
		t.Helper()
		code, b := fhirCall(t, tok, http.MethodPut, sb.FHIRBase+"/Observation?identifier=urn:example:device|"+id, reading(patient, id, bpm))
		var res map[string]any
		_ = json.Unmarshal(b, &res)
		return code, res
	}
	code, first := upsert(mine, "pt-001", "r-1", 61)
	if code != http.StatusCreated {
		t.Fatalf("first upsert: %d %v", code, first)
	}
	code, again := upsert(mine, "pt-001", "r-1", 62)
	if code != http.StatusOK || again["id"] != first["id"] || again["meta"].(map[string]any)["versionId"] != "2" {
		t.Fatalf("second upsert: %d %v (first %v)", code, again, first["id"])
	}
	code, other := upsert(theirs, "pt-long", "r-2", 70)
	if code != http.StatusCreated {
		t.Fatalf("another patient's reading: %d %v", code, other)
	}
	code, same := upsert(mine, "pt-001", "r-2", 80)
	if code != http.StatusCreated || same["id"] == other["id"] {
		t.Errorf("an upsert keyed like another patient's reading: %d %v", code, same)
	}
	sb.fhir.mu.RLock()
	kept := sb.fhir.current["Observation/"+other["id"].(string)]
	sb.fhir.mu.RUnlock()
	if kept["subject"].(map[string]any)["reference"] != "Patient/pt-long" || kept["meta"].(map[string]any)["versionId"] != "1" {
		t.Errorf("the other patient's reading is now %v", kept)
	}
	// A create that names its match creates nothing.
	req, _ := http.NewRequest(http.MethodPost, sb.FHIRBase+"/Observation", strings.NewReader(reading("pt-001", "r-1", 63)))
	req.Header.Set("Authorization", "Bearer "+mine)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("If-None-Exist", "identifier=urn:example:device|r-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var found map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&found)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || found["id"] != first["id"] {
		t.Errorf("a create matching the first reading: %d %v", resp.StatusCode, found["id"])
	}
	// A reading may group the patient's own readings, not another's.
	panel := func(member string) string {
		b, _ := json.Marshal(map[string]any{"resourceType": "Observation", "status": "final",
			"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "85354-9"}}},
			"subject": map[string]any{"reference": "Patient/pt-001"}, "hasMember": []any{map[string]any{"reference": "Observation/" + member}}})
		return string(b)
	}
	if code, b := fhirCall(t, mine, http.MethodPost, sb.FHIRBase+"/Observation", panel(other["id"].(string))); code != http.StatusForbidden {
		t.Errorf("a panel of another patient's reading: %d %s", code, b)
	}
	if code, b := fhirCall(t, mine, http.MethodPost, sb.FHIRBase+"/Observation", panel(first["id"].(string))); code != http.StatusCreated {
		t.Errorf("a panel of its own reading: %d %s", code, b)
	}
}

// TestTransactionThroughTheProxy: a patient app sends its readings as one
// transaction through the proxy to the sandbox's data server: a panel
// created with its member named by urn:uuid, and an update of a reading of
// its own. The server resolves the urn to the member it created, and the
// update goes with the version the proxy judged. An entry naming another
// patient's reading refuses the whole transaction: nothing is written. Sent
// again as a conditional create, the reading finds itself, and a panel
// naming it by its urn names the reading found.
func TestTransactionThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/Observation.cruds")
	record := func(key string) map[string]any {
		sb.fhir.mu.RLock()
		defer sb.fhir.mu.RUnlock()
		b, _ := json.Marshal(sb.fhir.current[key])
		var res map[string]any
		_ = json.Unmarshal(b, &res)
		return res
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	reading := js(map[string]any{"resourceType": "Observation", "status": "final",
		"identifier": []any{map[string]any{"system": "urn:example:device", "value": "hr-1"}},
		"code":       map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
		"subject":    map[string]any{"reference": "Patient/pt-001"}, "valueQuantity": map[string]any{"value": 64, "unit": "/min"}})
	panel := js(map[string]any{"resourceType": "Observation", "status": "final",
		"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "85354-9"}}},
		"subject": map[string]any{"reference": "Patient/pt-001"}, "hasMember": []any{map[string]any{"reference": "urn:uuid:9f1c"}}})
	amended := record("Observation/pt-001-vs-000")
	amended["status"] = "amended"
	delete(amended, "meta")
	other := record("Observation/pt-long-vs-000")
	other["status"] = "amended"
	delete(other, "meta")
	tx := func(entries ...string) string {
		return `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
	}
	own := []string{
		`{"fullUrl":"urn:uuid:9f1c","request":{"method":"POST","url":"Observation"},"resource":` + reading + `}`,
		`{"request":{"method":"POST","url":"Observation"},"resource":` + panel + `}`,
		`{"request":{"method":"PUT","url":"Observation/pt-001-vs-000"},"resource":` + js(amended) + `}`,
	}
	before := storedVersions(sb)
	for name, c := range map[string]struct {
		body   string
		status int
	}{
		"another patient's reading among them": {tx(append(own, `{"request":{"method":"PUT","url":"Observation/pt-long-vs-000"},"resource":`+js(other)+`}`)...), http.StatusForbidden},
		"a member named by a read's fullUrl":   {tx(own[1], `{"fullUrl":"urn:uuid:9f1c","request":{"method":"GET","url":"Observation/pt-long-vs-000"}}`), http.StatusBadRequest},
	} {
		if code, b := fhirCall(t, tok, http.MethodPost, sb.FHIRBase, c.body); code != c.status {
			t.Errorf("%s: %d %s", name, code, b)
		}
		if storedVersions(sb) != before {
			t.Fatalf("%s: something was written", name)
		}
	}
	code, b := fhirCall(t, tok, http.MethodPost, sb.FHIRBase, tx(own...))
	var resp struct {
		Type  string
		Entry []struct {
			Response struct{ Status, Location string }
		}
	}
	if err := json.Unmarshal(b, &resp); err != nil || code != http.StatusOK || resp.Type != "transaction-response" || len(resp.Entry) != 3 {
		t.Fatalf("the patient's own transaction: %d %s", code, b)
	}
	created, _, _ := strings.Cut(resp.Entry[0].Response.Location, "/_history/")
	made, _, _ := strings.Cut(resp.Entry[1].Response.Location, "/_history/")
	if resp.Entry[0].Response.Status != "201 Created" || !strings.HasPrefix(created, "Observation/") {
		t.Fatalf("the reading's entry: %+v", resp.Entry[0])
	}
	if got := record(made)["hasMember"]; js(got) != `[{"reference":"`+created+`"}]` {
		t.Errorf("the panel's member is %v, want %s", got, created)
	}
	if got := record("Observation/pt-001-vs-000"); got["status"] != "amended" || got["meta"].(map[string]any)["versionId"] != "2" {
		t.Errorf("the updated reading: %v", got)
	}
	if storedVersions(sb) != before+3 {
		t.Errorf("%d versions written, want 3", storedVersions(sb)-before)
	}
	// Sent again as a conditional create (If-None-Exist on the device's
	// identifier), the reading finds itself: the proxy resolves it into a
	// read, and the new panel's member is renamed to the reading found.
	before = storedVersions(sb)
	again := `{"fullUrl":"urn:uuid:9f1c","request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:example:device|hr-1"},"resource":` + reading + `}`
	code, b = fhirCall(t, tok, http.MethodPost, sb.FHIRBase, tx(again, own[1]))
	if err := json.Unmarshal(b, &resp); err != nil || code != http.StatusOK || len(resp.Entry) != 2 || storedVersions(sb) != before+1 {
		t.Fatalf("the conditional transaction: %d %s (%d versions written)", code, b, storedVersions(sb)-before)
	}
	made, _, _ = strings.Cut(resp.Entry[1].Response.Location, "/_history/")
	if got := record(made)["hasMember"]; js(got) != `[{"reference":"`+created+`"}]` {
		t.Errorf("the second panel's member is %v, want %s", got, created)
	}
	if e := resp.Entry[0].Response; e.Status != "200 OK" || e.Location != created+"/_history/1" {
		t.Errorf("the conditional create's answer: %+v, want 200 at %s/_history/1", e, created)
	}
}

// TestPatchThroughTheProxy: a patient app's JSON Patch reaches the
// sandbox's data server (which takes no PATCH) as the update it makes: the
// proxy applies it to the version it judged and sends the result, pinned.
// A patch moving the record to another patient writes nothing.
func TestPatchThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/Observation.cruds")
	patch := func(ops string) (int, []byte) {
		t.Helper()
		return fhirCallAs(t, tok, http.MethodPatch, sb.FHIRBase+"/Observation/pt-001-vs-001", "application/json-patch+json", ops)
	}
	current := func() map[string]any {
		sb.fhir.mu.RLock()
		defer sb.fhir.mu.RUnlock()
		return sb.fhir.current["Observation/pt-001-vs-001"]
	}
	if code, b := patch(`[{"op":"replace","path":"/subject/reference","value":"Patient/pt-long"}]`); code != http.StatusForbidden {
		t.Errorf("a patch moving the reading to another patient: %d %s", code, b)
	}
	if v := current()["meta"].(map[string]any)["versionId"]; v != "1" {
		t.Fatalf("the refused patch wrote version %v", v)
	}
	code, b := patch(`[{"op":"test","path":"/status","value":"final"},{"op":"replace","path":"/status","value":"amended"}]`)
	if code != http.StatusOK {
		t.Fatalf("a patch of the patient's reading: %d %s", code, b)
	}
	if got := current(); got["status"] != "amended" || got["meta"].(map[string]any)["versionId"] != "2" || got["subject"].(map[string]any)["reference"] != "Patient/pt-001" {
		t.Errorf("the patched reading is %v", got)
	}
}

// TestConstrainedWritesThroughTheProxy: a device app whose scopes let it
// read and write vital signs only writes a reading the same constrained
// search then finds; a laboratory result it may not write, nor may it
// take over, patch or delete one, and nothing is written.
func TestConstrainedWritesThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	vitals := "category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
	tok := patientToken(t, sb, "launch/patient patient/Observation.rs?"+vitals+" patient/Observation.cud?"+vitals)
	reading := func(category string) string {
		b, _ := json.Marshal(map[string]any{"resourceType": "Observation", "status": "final",
			"category":      []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}}}},
			"code":          map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
			"subject":       map[string]any{"reference": "Patient/pt-001"},
			"valueQuantity": map[string]any{"value": 64, "unit": "/min"}})
		return string(b)
	}
	// The answer is the reading as stored: the proxy sees it match the
	// token's constrained read.
	code, b := fhirCallAs(t, tok, http.MethodPost, sb.FHIRBase+"/Observation", "application/fhir+json", reading("vital-signs"))
	var created struct{ ID string }
	if _ = json.Unmarshal(b, &created); code != http.StatusCreated || created.ID == "" {
		t.Fatalf("a vital sign: %d %s", code, b)
	}
	code, b = fhirCallAs(t, tok, http.MethodGet, sb.FHIRBase+"/Observation?_count=100", "", "")
	if code != http.StatusOK || created.ID == "" || !strings.Contains(string(b), `"id":"`+created.ID+`"`) {
		t.Errorf("the constrained search does not find the reading written (%q): %d", created.ID, code)
	}
	before := storedVersions(sb)
	for _, c := range []struct{ name, method, target, body, contentType string }{
		{"a laboratory result", http.MethodPost, "/Observation", reading("laboratory"), "application/fhir+json"},
		{"moving the reading out of vital signs", http.MethodPut, "/Observation/" + created.ID,
			strings.Replace(reading("laboratory"), `{"resourceType"`, `{"id":"`+created.ID+`","resourceType"`, 1), "application/fhir+json"},
		{"taking over a laboratory result", http.MethodPut, "/Observation/pt-001-lab-000",
			strings.Replace(reading("vital-signs"), `{"resourceType"`, `{"id":"pt-001-lab-000","resourceType"`, 1), "application/fhir+json"},
		{"patching one", http.MethodPatch, "/Observation/pt-001-lab-000", `[{"op":"replace","path":"/status","value":"amended"}]`, "application/json-patch+json"},
		{"deleting one", http.MethodDelete, "/Observation/pt-001-lab-000", "", ""},
	} {
		if code, b := fhirCallAs(t, tok, c.method, sb.FHIRBase+c.target, c.contentType, c.body); code < 400 {
			t.Errorf("%s: %d %s", c.name, code, b)
		}
	}
	if n := storedVersions(sb); n != before {
		t.Errorf("refused writes wrote %d version(s)", n-before)
	}
}

// storedVersions counts the versions the sandbox's FHIR data server holds.
func storedVersions(sb *Sandbox) int { return storedIn(sb.fhir) }

// TestConstrainedIncludesThroughTheProxy: a constrained search may include
// other records; what the server includes is judged by its own scopes.
func TestConstrainedIncludesThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs patient/Encounter.rs")
	code, b := fhirCallAs(t, tok, http.MethodGet, sb.FHIRBase+"/Observation?_include=Observation:encounter&_count=5", "", "")
	var bundle struct {
		Entry []struct {
			Resource struct {
				ResourceType string
				Category     []struct{ Coding []struct{ Code string } }
			}
			Search struct{ Mode string }
		}
	}
	if err := json.Unmarshal(b, &bundle); code != http.StatusOK || err != nil {
		t.Fatalf("a constrained search with an include: %d %s", code, b)
	}
	counts := map[string]int{}
	for _, e := range bundle.Entry {
		counts[e.Resource.ResourceType+" "+e.Search.Mode]++
		if e.Resource.ResourceType == "Observation" && (len(e.Resource.Category) == 0 || e.Resource.Category[0].Coding[0].Code != "vital-signs") {
			t.Errorf("an Observation outside the constraint: %+v", e.Resource)
		}
	}
	if counts["Observation match"] == 0 || counts["Encounter include"] == 0 {
		t.Errorf("the answer held %v", counts)
	}
}

// TestLastNThroughTheProxy: a patient app asks for its latest vital sign of
// each code with Observation/$lastn; the proxy adds the patient, and the
// answer holds exactly the latest of each code the app's own search finds.
func TestLastNThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/Observation.rs")
	type obs struct {
		ID                string
		EffectiveDateTime string
		Subject           struct{ Reference string }
		Code              struct{ Coding []struct{ Code string } }
	}
	read := func(target string) []obs {
		t.Helper()
		code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+target, "")
		var bundle struct{ Entry []struct{ Resource obs } }
		if err := json.Unmarshal(b, &bundle); code != http.StatusOK || err != nil {
			t.Fatalf("%s: %d %s", target, code, b)
		}
		var out []obs
		for _, e := range bundle.Entry {
			out = append(out, e.Resource)
		}
		return out
	}
	latest := map[string]string{} // code → latest date, from the app's own search
	for _, o := range read("/Observation?category=vital-signs&_count=200") {
		if c := o.Code.Coding[0].Code; o.EffectiveDateTime > latest[c] {
			latest[c] = o.EffectiveDateTime
		}
	}
	got := read("/Observation/$lastn?category=vital-signs")
	if len(got) != len(latest) || len(got) == 0 {
		t.Fatalf("$lastn: %d observations, want one for each of %d codes", len(got), len(latest))
	}
	for _, o := range got {
		if o.Subject.Reference != "Patient/pt-001" || o.EffectiveDateTime != latest[o.Code.Coding[0].Code] {
			t.Errorf("$lastn: %s of %s on %s, want the patient's latest (%s)", o.ID, o.Subject.Reference, o.EffectiveDateTime, latest[o.Code.Coding[0].Code])
		}
	}
	if n := len(read("/Observation/$lastn?category=vital-signs&max=2")); n <= len(got) {
		t.Errorf("$lastn with max=2: %d observations, want more than %d", n, len(got))
	}
	if code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/Observation/$lastn?category=vital-signs&patient=pt-002", ""); code != http.StatusForbidden {
		t.Errorf("$lastn of another patient: %d %s", code, b)
	}
}

// TestTerminologyThroughTheProxy: a patient app expands the sandbox's
// value sets, looks codes up and checks them through the proxy; the proxy
// judges the value set first (the patient's clearance is short of every
// label) and the answer after.
func TestTerminologyThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/ValueSet.rs patient/CodeSystem.rs")
	call := func(target string) (int, map[string]any) {
		t.Helper()
		code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+target, "")
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %d %s", target, code, b)
		}
		return code, out
	}
	codes := func(vs map[string]any) []string {
		var out []string
		exp, _ := vs["expansion"].(map[string]any)
		for _, c := range asList(exp["contains"]) {
			out = append(out, c.(map[string]any)["code"].(string))
		}
		return out
	}
	if code, vs := call("/ValueSet/$expand?url=" + url.QueryEscape(sandboxVitalSigns)); code != 200 || len(codes(vs)) != len(vitals) {
		t.Errorf("expand the vital signs: %d %v", code, vs)
	}
	if code, vs := call("/ValueSet/$expand?url=" + url.QueryEscape(sandboxVitalSigns) + "&filter=rate"); code != 200 ||
		!slices.Equal(codes(vs), []string{"8867-4", "9279-1"}) {
		t.Errorf("expand with a filter: %d %v", code, codes(vs))
	}
	if code, vs := call("/ValueSet/observation-category/$expand?count=2&offset=1"); code != 200 || !slices.Equal(codes(vs), []string{"vital-signs", "imaging"}) {
		t.Errorf("expand a code system's every code, a page: %d %v", code, codes(vs))
	}
	if code, p := call("/CodeSystem/$lookup?system=" + url.QueryEscape(loinc) + "&code=8867-4"); code != 200 || !strings.Contains(fmt.Sprint(p), "Heart rate") {
		t.Errorf("lookup: %d %v", code, p)
	}
	for code, want := range map[string]bool{"8867-4": true, "2339-0": false} {
		_, p := call("/ValueSet/$validate-code?url=" + url.QueryEscape(sandboxVitalSigns) + "&system=" + url.QueryEscape(loinc) + "&code=" + code)
		if got := p["parameter"].([]any)[0].(map[string]any)["valueBoolean"]; got != want {
			t.Errorf("validate %s: %v, want %v", code, got, want)
		}
	}
	// A Coding is POSTed in a Parameters body.
	body := `{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"` + sandboxVitalSigns + `"},` +
		`{"name":"coding","valueCoding":{"system":"` + loinc + `","code":"8867-4"}}]}`
	code, b := fhirCallAs(t, tok, http.MethodPost, sb.FHIRBase+"/ValueSet/$validate-code", "application/fhir+json", body)
	if code != 200 || !strings.Contains(string(b), `"valueBoolean":true`) {
		t.Errorf("validate a Coding: %d %s", code, b)
	}
	if code, _ := call("/ValueSet/$expand?url=http://example.org/none"); code != http.StatusNotFound {
		t.Errorf("expand an unknown value set: %d", code)
	}
	if code, _ := call("/ValueSet/$expand?url=" + url.QueryEscape(sandboxVitalSigns) + "&context=Observation.code"); code != http.StatusForbidden {
		t.Errorf("expand with a parameter the proxy does not take: %d", code)
	}
}

// TestDocRefThroughTheProxy: a patient app fetches its documents with US
// Core's DocumentReference/$docref; the proxy adds the patient.
func TestDocRefThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/DocumentReference.rs")
	code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/DocumentReference/$docref?start=2025-01-01&type="+url.QueryEscape(loinc+"|11506-3"), "")
	var bundle struct {
		Entry []struct {
			Resource struct {
				ID      string
				Subject struct{ Reference string }
			}
		}
	}
	if err := json.Unmarshal(b, &bundle); code != http.StatusOK || err != nil || len(bundle.Entry) == 0 {
		t.Fatalf("$docref: %d %s", code, b)
	}
	for _, e := range bundle.Entry {
		if e.Resource.Subject.Reference != "Patient/pt-001" {
			t.Errorf("$docref answered %s of %s", e.Resource.ID, e.Resource.Subject.Reference)
		}
	}
	if code, _ := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/DocumentReference/$docref?start=2099-01-01", ""); code != http.StatusOK {
		t.Errorf("$docref with nothing to find: %d", code)
	}
	if code, _ := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/DocumentReference/$docref?patient=pt-002", ""); code != http.StatusForbidden {
		t.Errorf("$docref of another patient: %d", code)
	}
}

// TestSearchOperationsPostedThroughTheProxy: a patient app POSTs
// $docref, $lastn and $everything with their parameters in a Parameters
// body (as FHIR lets any operation be invoked), and gets what the same GET
// gets: the proxy reads the body into the query, adds the patient, and
// sends the GET. Another patient named in a body is refused.
func TestSearchOperationsPostedThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/DocumentReference.rs patient/Observation.rs patient/Patient.r")
	ids := func(method, target, body string) []string {
		t.Helper()
		code, b := fhirCall(t, tok, method, sb.FHIRBase+target, body)
		var bundle struct {
			Type  string
			Entry []struct {
				Resource struct{ ResourceType, ID string }
			}
		}
		if err := json.Unmarshal(b, &bundle); code != http.StatusOK || err != nil || bundle.Type != "searchset" {
			t.Fatalf("%s %s: %d %.300s", method, target, code, b)
		}
		var out []string
		for _, e := range bundle.Entry {
			out = append(out, e.Resource.ResourceType+"/"+e.Resource.ID)
		}
		slices.Sort(out)
		return out
	}
	params := func(ps ...string) string {
		return `{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`
	}
	for _, c := range []struct{ name, get, post, body string }{
		{"$docref", "/DocumentReference/$docref?start=2025-01-01&type=" + url.QueryEscape(loinc+"|11506-3"), "/DocumentReference/$docref",
			params(`{"name":"start","valueDate":"2025-01-01"}`, `{"name":"type","valueCodeableConcept":{"coding":[{"system":"`+loinc+`","code":"11506-3"}]}}`)},
		{"$lastn", "/Observation/$lastn?category=vital-signs&max=2", "/Observation/$lastn",
			params(`{"name":"category","valueCode":"vital-signs"}`, `{"name":"max","valuePositiveInt":2}`)},
		{"$everything", "/Patient/pt-001/$everything?_type=Observation,DocumentReference", "/Patient/pt-001/$everything",
			params(`{"name":"_type","valueCode":"Observation"}`, `{"name":"_type","valueCode":"DocumentReference"}`)},
	} {
		got, posted := ids(http.MethodGet, c.get, ""), ids(http.MethodPost, c.post, c.body)
		if len(got) == 0 || !slices.Equal(got, posted) {
			t.Errorf("%s: GET %v, POST %v", c.name, got, posted)
		}
	}
	for _, target := range []string{"/DocumentReference/$docref", "/Observation/$lastn"} {
		if code, b := fhirCall(t, tok, http.MethodPost, sb.FHIRBase+target, params(`{"name":"patient","valueId":"pt-002"}`)); code != http.StatusForbidden {
			t.Errorf("%s of another patient, in a body: %d %.300s", target, code, b)
		}
	}
}

// TestCompartmentSearchesThroughTheProxy: a search of a patient's
// compartment, as a GET (Patient/pt-001/Observation) and POSTed to
// _search with a form, answers a clinician and the patient's own app the
// records the search by patient answers, and so does a clinician's batched
// one; another patient's compartment is 403 to the app. (The sandbox's
// server answered none of these forms before.)
func TestCompartmentSearchesThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	app := patientToken(t, sb, "launch/patient patient/Observation.rs")
	clinician, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, UserID: "clinician",
		FHIRUser: "Practitioner/pr-lee", Scope: "user/Observation.rs", Audience: sb.FHIRBase}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(tok, method, target, form string) []string {
		t.Helper()
		code, b := fhirCallAs(t, tok, method, sb.FHIRBase+target, "application/x-www-form-urlencoded", form)
		var bundle struct {
			Type  string
			Entry []struct{ Resource struct{ ID string } }
		}
		if err := json.Unmarshal(b, &bundle); code != http.StatusOK || err != nil || bundle.Type != "searchset" {
			t.Fatalf("%s %s %s: %d %.300s", method, target, form, code, b)
		}
		var out []string
		for _, e := range bundle.Entry {
			out = append(out, e.Resource.ID)
		}
		slices.Sort(out)
		return out
	}
	for name, tok := range map[string]string{"the patient's app": app, "a clinician": clinician} {
		want := ids(tok, http.MethodGet, "/Observation?patient=pt-001&category=vital-signs&_count=200", "")
		if len(want) == 0 {
			t.Fatalf("%s: pt-001 has no vital signs", name)
		}
		for _, c := range []struct{ method, target, form string }{
			{http.MethodGet, "/Patient/pt-001/Observation?category=vital-signs&_count=200", ""},
			{http.MethodPost, "/Patient/pt-001/Observation/_search", "category=vital-signs&_count=200"},
		} {
			if got := ids(tok, c.method, c.target, c.form); !slices.Equal(got, want) {
				t.Errorf("%s: %s %s: %v, the search by patient %v", name, c.method, c.target, got, want)
			}
		}
	}
	if code, b := fhirCallAs(t, app, http.MethodPost, sb.FHIRBase+"/Patient/pt-002/Observation/_search", "application/x-www-form-urlencoded", "category=vital-signs"); code != http.StatusForbidden {
		t.Errorf("another patient's compartment, POSTed: %d %.300s", code, b)
	}
	// Batched, a clinician's compartment search goes as it is, and the
	// sandbox's server answers it in the batch.
	want := ids(clinician, http.MethodGet, "/Observation?patient=pt-001&category=vital-signs&_count=200", "")
	code, b := fhirCall(t, clinician, http.MethodPost, sb.FHIRBase, `{"resourceType":"Bundle","type":"batch","entry":[`+
		`{"request":{"method":"GET","url":"Patient/pt-001/Observation?category=vital-signs&_count=200"}}]}`)
	var batch struct {
		Entry []struct {
			Resource struct {
				Entry []struct{ Resource struct{ ID string } }
			}
			Response struct{ Status string }
		}
	}
	if err := json.Unmarshal(b, &batch); code != http.StatusOK || err != nil || len(batch.Entry) != 1 || !strings.HasPrefix(batch.Entry[0].Response.Status, "200") {
		t.Fatalf("a batched compartment search: %d %.300s", code, b)
	}
	var got []string
	for _, e := range batch.Entry[0].Resource.Entry {
		got = append(got, e.Resource.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("a batched compartment search: %v, the search by patient %v", got, want)
	}
}

// TestConstrainedDocRefThroughTheProxy: a patient app granted only clinical
// notes (US Core's granular scope on DocumentReference.category) runs
// $docref: the sandbox's server takes $docref's own parameters only (400
// for a category), so the constraint does not go, and the proxy holds
// each document to it. Granted another category, the app gets none.
func TestConstrainedDocRefThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	ids := func(scope string) []string {
		t.Helper()
		code, b := fhirCall(t, patientToken(t, sb, "launch/patient patient/DocumentReference.rs?category="+scope), http.MethodGet,
			sb.FHIRBase+"/DocumentReference/$docref?start=2020-01-01", "")
		var bundle struct {
			Entry []struct{ Resource struct{ ID string } }
		}
		if err := json.Unmarshal(b, &bundle); code != http.StatusOK || err != nil {
			t.Fatalf("%s: $docref: %d %s", scope, code, b)
		}
		var out []string
		for _, e := range bundle.Entry {
			out = append(out, e.Resource.ID)
		}
		return out
	}
	if got := ids(docCategory + "|clinical-note"); !slices.Equal(got, []string{"pt-001-note-1"}) {
		t.Errorf("clinical notes: %v", got)
	}
	if got := ids("http://loinc.org|LP29684-5"); len(got) != 0 { // radiology
		t.Errorf("another category: %v", got)
	}
}

// TestProvenanceThroughTheProxy: a patient app fetches the Provenance of
// its patient's records as US Core has it (_revinclude=Provenance:target,
// and a read), through the proxy in front of the sandbox's data server;
// another patient's Provenance reads as missing, and so does one about a
// record the patient's clearance withholds.
func TestProvenanceThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/Condition.rs patient/Provenance.rs")
	type entry struct {
		Resource struct {
			ResourceType, ID string
			Target           []struct{ Reference string }
		}
		Search struct{ Mode string }
	}
	code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/Condition?_revinclude=Provenance:target", "")
	var bundle struct{ Entry []entry }
	if err := json.Unmarshal(b, &bundle); code != http.StatusOK || err != nil {
		t.Fatalf("Condition?_revinclude=Provenance:target: %d %s", code, b)
	}
	var got []string
	for _, e := range bundle.Entry {
		got = append(got, e.Resource.ResourceType+"/"+e.Resource.ID)
		if e.Resource.ResourceType == "Provenance" && (e.Search.Mode != "include" || len(e.Resource.Target) != 1 ||
			e.Resource.Target[0].Reference != "Condition/pt-001-cond-1") {
			t.Errorf("a Provenance about something else: %+v", e)
		}
	}
	if !slices.Equal(got, []string{"Condition/pt-001-cond-1", "Provenance/pt-001-cond-1-prov"}) {
		t.Errorf("Condition?_revinclude=Provenance:target: %v", got)
	}
	for target, want := range map[string]int{
		"/Provenance/pt-001-cond-1-prov":             http.StatusOK,
		"/Provenance/pt-002-cond-1-prov":             http.StatusNotFound,  // pt-002's
		"/Provenance?target=Condition/pt-001-cond-1": http.StatusForbidden, // searches of Provenance itself are not the compartment's
	} {
		if code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+target, ""); code != want {
			t.Errorf("%s: %d %s, want %d", target, code, b, want)
		}
	}
	// pt-sensitive's app, of the default clearance: the Provenance of a
	// withheld record is withheld with it, though it carries no label.
	sensitive, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, UserID: "patient",
		FHIRUser: "Patient/pt-sensitive", Scope: "launch/patient patient/Condition.rs patient/Provenance.rs", Audience: sb.FHIRBase,
		Context: launch.Context{Patient: "pt-sensitive"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]int{"/Provenance/pt-sensitive-cond-1-prov": http.StatusOK, "/Provenance/pt-sensitive-sud-prov": http.StatusNotFound} {
		if code, b := fhirCall(t, sensitive, http.MethodGet, sb.FHIRBase+target, ""); code != want {
			t.Errorf("pt-sensitive's %s: %d %s, want %d", target, code, b, want)
		}
	}
	// A clinician of the default clearance neither: not by a read, nor
	// with the records.
	clinician, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, UserID: "clinician",
		FHIRUser: "Practitioner/pr-lee", Scope: "user/*.rs", Audience: sb.FHIRBase}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]int{"/Provenance/pt-sensitive-cond-1-prov": http.StatusOK, "/Provenance/pt-sensitive-sud-prov": http.StatusNotFound} {
		if code, b := fhirCall(t, clinician, http.MethodGet, sb.FHIRBase+target, ""); code != want {
			t.Errorf("a clinician's %s: %d %s, want %d", target, code, b, want)
		}
	}
	code, b = fhirCall(t, clinician, http.MethodGet, sb.FHIRBase+"/Condition?patient=pt-sensitive&_revinclude=Provenance:target", "")
	if code != http.StatusOK || !bytes.Contains(b, []byte(`"pt-sensitive-cond-1-prov"`)) || bytes.Contains(b, []byte("pt-sensitive-sud")) {
		t.Errorf("a clinician's search with _revinclude=Provenance:target: %d %.2000s", code, b)
	}
}

// TestDocumentFiledThroughTheProxy: a patient app files a document with
// its content in one transaction, through the proxy, on the sandbox's data
// server: the Binary bound (securityContext) to the DocumentReference the
// transaction creates, by its fullUrl, which the server resolves. The app
// reads both back; another patient's app finds the content missing.
func TestDocumentFiledThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	scope := "launch/patient patient/DocumentReference.cruds patient/Binary.cruds patient/Patient.rs"
	tok := patientToken(t, sb, scope)
	body := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:doc","request":{"method":"POST","url":"DocumentReference"},"resource":{"resourceType":"DocumentReference",` +
		`"status":"current","subject":{"reference":"Patient/pt-001"},"content":[{"attachment":{"contentType":"text/plain","url":"urn:uuid:bin"}}]}},` +
		`{"fullUrl":"urn:uuid:bin","request":{"method":"POST","url":"Binary"},"resource":{"resourceType":"Binary","contentType":"text/plain",` +
		`"data":"aGVsbG8=","securityContext":{"reference":"urn:uuid:doc"}}}]}`
	at := transaction(t, sb, tok, body, 2)
	doc, bin := at[0], at[1]
	if !strings.HasPrefix(doc, "DocumentReference/") || !strings.HasPrefix(bin, "Binary/") {
		t.Fatalf("the transaction's locations: %q, %q", doc, bin)
	}
	code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/"+bin, "")
	var stored struct{ SecurityContext struct{ Reference string } }
	if err := json.Unmarshal(b, &stored); code != http.StatusOK || err != nil || !strings.HasPrefix(stored.SecurityContext.Reference, "DocumentReference/") {
		t.Errorf("the content read back: %d %s", code, b)
	}
	other := patientTokenOf(t, sb, "pt-002", scope)
	if code, b := fhirCall(t, other, http.MethodGet, sb.FHIRBase+"/"+bin, ""); code != http.StatusNotFound {
		t.Errorf("another patient's app reads the content: %d %s", code, b)
	}
}

// TestNativeDocumentThroughTheProxy: a patient app stores a PDF as it is
// (its own Content-Type, bound to the patient by X-Security-Context) and
// reads it back as it is (Accept: application/pdf), through the proxy, on
// the sandbox's data server, which holds it as a FHIR Binary; another
// patient's app finds it missing.
func TestNativeDocumentThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	scope := "launch/patient patient/Binary.cruds patient/Patient.rs"
	tok := patientToken(t, sb, scope)
	pdf := "%PDF-1.4\n%\xe2\xe3\xcf\xd3\nbinary \x00 content\n%%EOF"
	resp := callWith(t, tok, http.MethodPost, sb.FHIRBase+"/Binary", pdf, "Content-Type", "application/pdf", "X-Security-Context", "Patient/pt-001")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var created struct{ ID string }
	if err := json.Unmarshal(b, &created); resp.StatusCode != http.StatusCreated || err != nil || created.ID == "" {
		t.Fatalf("the PDF stored: %d %s", resp.StatusCode, b)
	}
	resp = callWith(t, tok, http.MethodGet, sb.FHIRBase+"/Binary/"+created.ID, "", "Accept", "application/pdf")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != pdf || resp.Header.Get("Content-Type") != "application/pdf" ||
		resp.Header.Get("X-Security-Context") != "Patient/pt-001" {
		t.Errorf("the PDF read back: %d %q, headers %v", resp.StatusCode, b, resp.Header)
	}
	other := patientTokenOf(t, sb, "pt-002", scope)
	resp = callWith(t, other, http.MethodGet, sb.FHIRBase+"/Binary/"+created.ID, "", "Accept", "application/pdf")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || strings.Contains(string(b), "PDF") {
		t.Errorf("another patient's app reads the PDF: %d %q", resp.StatusCode, b)
	}
	resp = callWith(t, other, http.MethodPost, sb.FHIRBase+"/Binary", pdf, "Content-Type", "application/pdf", "X-Security-Context", "Patient/pt-001")
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("another patient's app files a PDF in pt-001's chart: %d", resp.StatusCode)
	}
}

// TestReadingFiledWithProvenance: a patient app files a reading and its
// provenance in one transaction, through the proxy, on the sandbox's data
// server: the Provenance about the Observation the transaction creates, by
// its fullUrl, which the server resolves. The app reads the Provenance
// back; another patient's app finds it missing, and cannot file one about
// pt-001's reading.
func TestReadingFiledWithProvenance(t *testing.T) {
	sb := startSandbox(t)
	scope := "launch/patient patient/Observation.cruds patient/Provenance.cr patient/Patient.rs"
	tok := patientToken(t, sb, scope)
	body := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:2f6e1c3a-8d4b-4e0f-9a1c-7b5d3e2f1a00","request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation",` +
		`"status":"final","code":{"text":"heart rate"},"subject":{"reference":"Patient/pt-001"},"valueQuantity":{"value":64,"unit":"/min"}}},` +
		`{"request":{"method":"POST","url":"Provenance"},"resource":{"resourceType":"Provenance","recorded":"2026-11-28T09:00:00Z",` +
		`"target":[{"reference":"urn:uuid:2f6e1c3a-8d4b-4e0f-9a1c-7b5d3e2f1a00"}],"agent":[{"who":{"reference":"Patient/pt-001"}}]}}]}`
	at := transaction(t, sb, tok, body, 2)
	obs, prov := at[0], at[1]
	if !strings.HasPrefix(obs, "Observation/") || !strings.HasPrefix(prov, "Provenance/") {
		t.Fatalf("the transaction's locations: %q, %q", obs, prov)
	}
	code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/"+prov, "")
	var stored struct{ Target []struct{ Reference string } }
	if err := json.Unmarshal(b, &stored); code != http.StatusOK || err != nil || len(stored.Target) != 1 || stored.Target[0].Reference != obs {
		t.Errorf("the Provenance read back: %d %s, want it about %s", code, b, obs)
	}
	other := patientTokenOf(t, sb, "pt-002", scope)
	if code, b := fhirCall(t, other, http.MethodGet, sb.FHIRBase+"/"+prov, ""); code != http.StatusNotFound {
		t.Errorf("another patient's app reads the Provenance: %d %s", code, b)
	}
	theirs := `{"resourceType":"Provenance","recorded":"2026-11-28T09:00:00Z","target":[{"reference":"` + obs + `"}],"agent":[{"who":{"reference":"Patient/pt-002"}}]}`
	if code, b := fhirCall(t, other, http.MethodPost, sb.FHIRBase+"/Provenance", theirs); code != http.StatusForbidden {
		t.Errorf("another patient's app files a Provenance about pt-001's reading: %d %s", code, b)
	}
}

// TestEverythingThroughTheProxy: a patient app granted only its vital
// signs (patient/Observation.rs?category=vital-signs) runs $everything on
// the sandbox: the proxy asks for Observations and keeps only the vital
// signs, exactly what the same token's search finds; another patient's is
// refused.
func TestEverythingThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/Observation.rs?category=vital-signs")
	ids := func(target string) []string {
		resp := callWith(t, tok, "GET", target, "")
		defer resp.Body.Close()
		var b struct {
			Entry []struct {
				Resource struct{ ResourceType, ID string }
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", target, resp.StatusCode, err)
		}
		var out []string
		for _, e := range b.Entry {
			out = append(out, e.Resource.ResourceType+"/"+e.Resource.ID)
		}
		slices.Sort(out)
		return out
	}
	got, want := ids(sb.FHIRBase+"/Patient/pt-001/$everything"), ids(sb.FHIRBase+"/Observation?category=vital-signs&_count=1000")
	if len(got) == 0 || !slices.Equal(got, want) {
		t.Errorf("$everything: %v; the search: %v", got, want)
	}
	resp := callWith(t, tok, "GET", sb.FHIRBase+"/Patient/pt-002/$everything", "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("another patient's $everything: %d", resp.StatusCode)
	}
}

// TestBatchedSearchesThroughTheProxy: a patient app batches its searches
// (each without the patient and the constraint, which the proxy adds),
// and a read, through the proxy in
// front of the sandbox's data server, which answers each with its own
// searchset; each comes back as the same search on its own does: the
// patient's records only, the ones the clearance withholds left out.
func TestBatchedSearchesThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	tok := patientToken(t, sb, "launch/patient patient/Observation.rs?category=vital-signs patient/Condition.rs patient/Patient.r")
	type bundle struct {
		Type  string
		Entry []struct {
			Resource struct {
				ResourceType, ID string
				Subject          struct{ Reference string }
				Type             string
				Entry            []struct {
					Resource struct {
						ResourceType, ID string
						Subject          struct{ Reference string }
					}
				}
			}
			Response struct{ Status string }
		}
	}
	searches := []string{"Observation", "Condition", "Observation?_count=2"}
	var entries []string
	for _, s := range searches {
		entries = append(entries, `{"request":{"method":"GET","url":"`+s+`"}}`)
	}
	entries = append(entries, `{"request":{"method":"GET","url":"Patient/pt-001"}}`)
	code, b := fhirCall(t, tok, http.MethodPost, sb.FHIRBase, `{"resourceType":"Bundle","type":"batch","entry":[`+strings.Join(entries, ",")+`]}`)
	var got bundle
	if err := json.Unmarshal(b, &got); code != http.StatusOK || err != nil || got.Type != "batch-response" || len(got.Entry) != len(searches)+1 {
		t.Fatalf("the batch: %d %.500s", code, b)
	}
	if e := got.Entry[len(searches)]; e.Resource.ResourceType != "Patient" || e.Resource.ID != "pt-001" {
		t.Errorf("the read beside the searches: %+v", e)
	}
	for i, s := range searches {
		code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/"+s, "")
		var alone bundle
		if err := json.Unmarshal(b, &alone); code != http.StatusOK || err != nil {
			t.Fatalf("%s on its own: %d %.300s", s, code, b)
		}
		var want, have []string
		for _, e := range alone.Entry {
			want = append(want, e.Resource.ResourceType+"/"+e.Resource.ID)
		}
		nested := got.Entry[i].Resource
		for _, e := range nested.Entry {
			have = append(have, e.Resource.ResourceType+"/"+e.Resource.ID)
			if e.Resource.Subject.Reference != "Patient/pt-001" {
				t.Errorf("%s batched: another patient's record %s/%s", s, e.Resource.ResourceType, e.Resource.ID)
			}
		}
		if nested.Type != "searchset" || len(have) == 0 || !slices.Equal(have, want) {
			t.Errorf("%s batched: %s %v, on its own %v", s, nested.Type, have, want)
		}
	}
	// Another patient's records, named in the batch, are refused whole.
	code, b = fhirCall(t, tok, http.MethodPost, sb.FHIRBase, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?patient=pt-002"}}]}`)
	if code != http.StatusForbidden || !strings.Contains(string(b), "OperationOutcome") {
		t.Errorf("another patient's search batched: %d %.300s", code, b)
	}
}

// TestEverythingAgreesWithSearches: a patient app's $everything, through
// the proxy in front of the sandbox's data server, answers exactly the
// records its searches of each type answer for the patient, for scopes
// narrow and wide, constrained, under the default clearance (which
// withholds the sensitive ones) and every label: $everything is no way
// around a scope or a label, and loses nothing the searches show.
func TestEverythingAgreesWithSearches(t *testing.T) {
	sb := startSandbox(t)
	// records is every record of the searchset at target and its pages.
	records := func(tok, target string) (map[string]bool, int) {
		t.Helper()
		out := map[string]bool{}
		for pages := 0; target != ""; pages++ {
			if pages > 50 {
				t.Fatalf("%s: more than 50 pages", target)
			}
			code, b := fhirCall(t, tok, http.MethodGet, target, "")
			if code != http.StatusOK {
				return nil, code
			}
			var page struct {
				Link  []struct{ Relation, URL string }
				Entry []struct {
					Resource struct{ ResourceType, ID string }
				}
			}
			if err := json.Unmarshal(b, &page); err != nil {
				t.Fatalf("%s: %v", target, err)
			}
			for _, e := range page.Entry {
				out[e.Resource.ResourceType+"/"+e.Resource.ID] = true
			}
			target = ""
			for _, l := range page.Link {
				if l.Relation == "next" {
					target = l.URL
				}
			}
		}
		return out, http.StatusOK
	}
	for _, scope := range []string{
		"launch/patient patient/*.rs",
		"launch/patient patient/Observation.rs patient/Patient.rs",
		"launch/patient patient/Observation.rs?category=laboratory patient/Condition.rs patient/Patient.rs",
		"launch/patient patient/Condition.rs patient/DocumentReference.rs?category=" + docCategory + "|clinical-note",
	} {
		tok := patientToken(t, sb, scope)
		everything, code := records(tok, sb.FHIRBase+"/Patient/pt-001/$everything")
		if code != http.StatusOK {
			t.Errorf("%s: $everything %d", scope, code)
			continue
		}
		// The types the patient has records of, from the widest token.
		all, _ := records(patientToken(t, sb, "launch/patient patient/*.rs"), sb.FHIRBase+"/Patient/pt-001/$everything")
		types := map[string]bool{}
		for key := range all {
			typ, _, _ := strings.Cut(key, "/")
			types[typ] = true
		}
		searched := map[string]bool{}
		for typ := range types {
			target := sb.FHIRBase + "/" + typ + "?patient=pt-001"
			if typ == "Patient" {
				target = sb.FHIRBase + "/Patient?_id=pt-001"
			}
			found, code := records(tok, target)
			if code != http.StatusOK && code != http.StatusForbidden {
				t.Errorf("%s: %s: %d", scope, target, code)
			}
			maps.Copy(searched, found)
		}
		var only, missing []string
		for key := range everything {
			if !searched[key] {
				only = append(only, key)
			}
		}
		for key := range searched {
			if !everything[key] {
				missing = append(missing, key)
			}
		}
		t.Logf("%s: %d records", scope, len(everything))
		slices.Sort(only)
		slices.Sort(missing)
		if len(everything) == 0 || len(only) > 0 || len(missing) > 0 {
			t.Errorf("%s: $everything has %d records; %v only there, %v only in the searches", scope, len(everything), only, missing)
		}
		// Narrowed by _type, it answers that type's part of the whole.
		for typ := range types {
			part, code := records(tok, sb.FHIRBase+"/Patient/pt-001/$everything?_type="+typ)
			want := map[string]bool{}
			for key := range everything {
				if strings.HasPrefix(key, typ+"/") {
					want[key] = true
				}
			}
			if code == http.StatusForbidden && len(want) == 0 {
				continue // a type the token may not read: refused, and none of it in the whole
			}
			if code != http.StatusOK || !maps.Equal(part, want) {
				t.Errorf("%s: $everything?_type=%s: %d %v, the whole's %v", scope, typ, code, slices.Sorted(maps.Keys(part)), slices.Sorted(maps.Keys(want)))
			}
		}
	}
}

// TestDeletesAndPatchesThroughTheProxy: the data server deletes and
// patches as FHIR servers do, and through the proxy a clinician's app does
// both; a patient's app deletes and patches its patient's records, alone
// and in a batch (each delete pinned to the version the proxy judged), and
// nothing of another patient's; a deleted record then reads as a missing
// one, and its history shows the deletion.
func TestDeletesAndPatchesThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	clinician, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, UserID: "clinician",
		FHIRUser: "Practitioner/pr-lee", Scope: "user/Observation.cruds", Audience: sb.FHIRBase}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	app := patientToken(t, sb, "launch/patient patient/*.cruds")
	const patchType = "application/json-patch+json"
	amend := `[{"op":"test","path":"/status","value":"final"},{"op":"replace","path":"/status","value":"amended"}]`
	stored := func(key string) (resource, int) {
		sb.fhir.mu.RLock()
		defer sb.fhir.mu.RUnlock()
		return sb.fhir.current[key], len(sb.fhir.history[key])
	}
	for _, c := range []struct{ who, tok, owner string }{{"a clinician", clinician, "pt-002"}, {"the patient's app", app, "pt-001"}} {
		patched, deleted := "Observation/"+c.owner+"-vs-000", "Observation/"+c.owner+"-vs-001"
		if code, b := fhirCallAs(t, c.tok, http.MethodPatch, sb.FHIRBase+"/"+patched, patchType, amend); code != http.StatusOK {
			t.Errorf("%s: the patch: %d %s", c.who, code, b)
		}
		if res, n := stored(patched); res["status"] != "amended" || n != 2 {
			t.Errorf("%s: the patched reading is %v (%d versions)", c.who, res, n)
		}
		if code, b := fhirCall(t, c.tok, http.MethodDelete, sb.FHIRBase+"/"+deleted, ""); code != http.StatusNoContent {
			t.Errorf("%s: the delete: %d %s", c.who, code, b)
		}
		if res, n := stored(deleted); res != nil || n != 2 {
			t.Errorf("%s: the deleted reading is %v (%d versions)", c.who, res, n)
		}
		// Read as a missing record is; its first version and its history
		// are still there.
		gone, _ := fhirCall(t, c.tok, http.MethodGet, sb.FHIRBase+"/"+deleted, "")
		absent, _ := fhirCall(t, c.tok, http.MethodGet, sb.FHIRBase+"/Observation/nope", "")
		if gone != http.StatusNotFound || absent != http.StatusNotFound {
			t.Errorf("%s: a read of the deleted reading: %d, of a missing one: %d", c.who, gone, absent)
		}
		if code, _ := fhirCall(t, c.tok, http.MethodGet, sb.FHIRBase+"/"+deleted+"/_history/1", ""); code != http.StatusOK {
			t.Errorf("%s: its first version: %d", c.who, code)
		}
		code, b := fhirCall(t, c.tok, http.MethodGet, sb.FHIRBase+"/"+deleted+"/_history", "")
		var hist struct {
			Entry []struct {
				Resource *struct{ ID string }
				Request  struct{ Method string }
			}
		}
		if err := json.Unmarshal(b, &hist); code != http.StatusOK || err != nil || len(hist.Entry) != 2 ||
			hist.Entry[0].Request.Method != http.MethodDelete || hist.Entry[0].Resource != nil || hist.Entry[1].Resource == nil {
			t.Errorf("%s: its history: %d %.400s", c.who, code, b)
		}
	}
	// Another patient's records: refused as missing ones are, unchanged.
	for _, target := range []string{"Observation/pt-002-vs-002", "Observation/nope"} {
		for _, method := range []string{http.MethodDelete, http.MethodPatch} {
			if code, b := fhirCallAs(t, app, method, sb.FHIRBase+"/"+target, patchType, map[string]string{http.MethodPatch: amend}[method]); code != http.StatusNotFound {
				t.Errorf("the patient's app: %s %s: %d %s", method, target, code, b)
			}
		}
	}
	if res, n := stored("Observation/pt-002-vs-002"); res == nil || res["status"] != "final" || n != 1 {
		t.Errorf("another patient's reading is now %v (%d versions)", res, n)
	}
	// A batch of the patient's own: a delete and a patch, as a Binary.
	entry := func(method, url, resource string) string {
		return `{"request":{"method":"` + method + `","url":"` + url + `"}` + resource + `}`
	}
	binary := `,"resource":{"resourceType":"Binary","contentType":"` + patchType + `","data":"` + base64.StdEncoding.EncodeToString([]byte(amend)) + `"}`
	code, b := fhirCall(t, app, http.MethodPost, sb.FHIRBase, `{"resourceType":"Bundle","type":"batch","entry":[`+
		entry("DELETE", "Observation/pt-001-vs-002", "")+`,`+entry("PATCH", "Observation/pt-001-vs-003", binary)+`]}`)
	var answer struct {
		Entry []struct{ Response struct{ Status string } }
	}
	if err := json.Unmarshal(b, &answer); code != http.StatusOK || err != nil || len(answer.Entry) != 2 ||
		answer.Entry[0].Response.Status != "204 No Content" || answer.Entry[1].Response.Status != "200 OK" {
		t.Fatalf("the batch: %d %s", code, b)
	}
	if res, _ := stored("Observation/pt-001-vs-002"); res != nil {
		t.Error("the batch did not delete the reading")
	}
	if res, _ := stored("Observation/pt-001-vs-003"); res["status"] != "amended" {
		t.Errorf("the batch's patch: %v", res)
	}
	// One of another patient's in the batch: nothing is done.
	code, _ = fhirCall(t, app, http.MethodPost, sb.FHIRBase, `{"resourceType":"Bundle","type":"batch","entry":[`+
		entry("DELETE", "Observation/pt-001-vs-004", "")+`,`+entry("DELETE", "Observation/pt-002-vs-004", "")+`]}`)
	if res, _ := stored("Observation/pt-001-vs-004"); code < 400 || res == nil {
		t.Errorf("a batch deleting another patient's reading: %d, the patient's own deleted: %v", code, res == nil)
	}
}

// TestRefusedDeleteTellsNothingWithheld: the data server refuses to
// delete a record others refer to, naming the first it finds, as HAPI
// does. Through the proxy, a patient's app deleting its own encounter,
// which its patient's HIV test (labelled, withheld by the default
// clearance) refers to, is refused without the server's words: before,
// they told the app of the test and its id. The audit event keeps them.
func TestRefusedDeleteTellsNothingWithheld(t *testing.T) {
	sb := startSandbox(t)
	app := patientTokenOf(t, sb, "pt-sensitive", "launch/patient patient/*.cruds")
	// The visit's vital sign goes first; then the test is what refers to it.
	if code, b := fhirCall(t, app, http.MethodDelete, sb.FHIRBase+"/Observation/pt-sensitive-vs-001", ""); code != http.StatusNoContent {
		t.Fatalf("the vital sign: %d %s", code, b)
	}
	code, b := fhirCall(t, app, http.MethodDelete, sb.FHIRBase+"/Encounter/pt-sensitive-enc-001", "")
	if code != http.StatusConflict || strings.Contains(string(b), "hiv") || !strings.Contains(string(b), `"code":"conflict"`) {
		t.Errorf("the encounter: %d %s", code, b)
	}
	sb.fhir.mu.RLock()
	_, kept := sb.fhir.current["Encounter/pt-sensitive-enc-001"]
	sb.fhir.mu.RUnlock()
	if !kept {
		t.Error("the encounter was deleted")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		p, err := sb.AuditLog.Query(context.Background(), audit.Query{Patient: "pt-sensitive", Outcome: audit.Failure, Limit: 10})
		if err == nil && slices.ContainsFunc(p.Records, func(r audit.Record) bool { return strings.Contains(r.Event.Reason, "Observation/pt-sensitive-hiv") }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal naming the referrer in the audit log: %v %v", p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHistoryThroughTheProxy: a backend service that sees every label
// follows what changed (a type's history, the system's, _since an instant)
// through the proxy, deletions included, page by page; a token whose
// clearance is short of every label, and a patient's app, may not (an
// earlier version of a record labelled since would pass).
func TestHistoryThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	every := everyLabel()
	mint := func(g smart.Grant) string {
		t.Helper()
		g.ClientID, g.Audience = BackendID, sb.FHIRBase
		tok, err := sb.Auth.Mint(context.Background(), "", g, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sync := mint(smart.Grant{Scope: "system/Observation.rs", Clearance: every})
	all := mint(smart.Grant{Scope: "system/*.rs", Clearance: every})
	since := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	clinician := mint(smart.Grant{UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/*.cruds"})
	if code, b := fhirCallAs(t, clinician, http.MethodPatch, sb.FHIRBase+"/Observation/pt-002-vs-000", "application/json-patch+json",
		`[{"op":"replace","path":"/status","value":"amended"}]`); code != http.StatusOK {
		t.Fatalf("the patch: %d %s", code, b)
	}
	if code, b := fhirCall(t, clinician, http.MethodDelete, sb.FHIRBase+"/Observation/pt-002-vs-001", ""); code != http.StatusNoContent {
		t.Fatalf("the delete: %d %s", code, b)
	}
	type page struct {
		Type  string
		Total int
		Link  []struct{ Relation, URL string }
		Entry []struct {
			FullURL  string
			Resource *struct{ ID string }
			Request  struct{ Method, URL string }
		}
	}
	get := func(tok, target string) (int, page) {
		t.Helper()
		code, b := fhirCall(t, tok, http.MethodGet, target, "")
		var p page
		if code == http.StatusOK && (json.Unmarshal(b, &p) != nil || p.Type != "history") {
			t.Fatalf("%s: %s", target, b)
		}
		return code, p
	}
	// Page by page, one change a page, through the proxy's links.
	var changes []string
	target := sb.FHIRBase + "/Observation/_history?_since=" + since + "&_count=1"
	for target != "" {
		code, p := get(sync, target)
		if code != http.StatusOK || len(p.Entry) != 1 {
			t.Fatalf("%s: %d %+v", target, code, p)
		}
		e := p.Entry[0]
		changes = append(changes, e.Request.Method+" "+strings.TrimPrefix(e.FullURL, sb.FHIRBase+"/")+fmt.Sprint(" ", e.Resource != nil))
		if len(changes) > 5 {
			t.Fatalf("more changes than were made: %q", changes)
		}
		target = nextLink(t, sb, p.Link)
	}
	if want := []string{"DELETE Observation/pt-002-vs-001 false", "PUT Observation/pt-002-vs-000 true"}; !reflect.DeepEqual(changes, want) {
		t.Errorf("what changed: %q, want %q", changes, want)
	}
	if code, p := get(all, sb.FHIRBase+"/_history?_since="+since); code != http.StatusOK || p.Total != 2 || len(p.Entry) != 2 {
		t.Errorf("the system's history: %d %+v", code, p)
	}
	for name, tok := range map[string]string{"a clinician of the default clearance": clinician,
		"the patient's app": patientToken(t, sb, "launch/patient patient/*.rs")} {
		for _, target := range []string{"/Observation/_history", "/_history"} {
			if code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+target+"?_since="+since, ""); code != http.StatusForbidden {
				t.Errorf("%s: %s: %d %s", name, target, code, b)
			}
		}
	}
}

// TestPartsThroughTheProxy: records asked for in part (_elements) come
// back in part through the proxy, and what the clearance withholds stays
// withheld although its labels were not asked for (the proxy asks for meta
// too); a backend of every label counts with _summary=count.
func TestPartsThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	clinician, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, UserID: "clinician",
		FHIRUser: "Practitioner/pr-lee", Scope: "user/*.rs", Audience: sb.FHIRBase}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	every := everyLabel()
	backend, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: BackendID, Scope: "system/Observation.rs", Clearance: every, Audience: sb.FHIRBase}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	app := patientTokenOf(t, sb, "pt-sensitive", "launch/patient patient/*.rs")
	type bundle struct {
		Total int
		Entry []struct{ Resource map[string]any }
	}
	search := func(tok, target string) bundle {
		t.Helper()
		code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+target, "")
		var out bundle
		if err := json.Unmarshal(b, &out); code != http.StatusOK || err != nil {
			t.Fatalf("%s: %d %.300s", target, code, b)
		}
		return out
	}
	for name, tok := range map[string]string{"a clinician": clinician, "the patient's app": app} {
		whole := search(tok, "/Observation?patient=pt-sensitive&_count=200")
		part := search(tok, "/Observation?patient=pt-sensitive&_count=200&_elements=code")
		if len(part.Entry) != len(whole.Entry) || len(whole.Entry) == 0 {
			t.Errorf("%s: %d records in part, %d whole", name, len(part.Entry), len(whole.Entry))
		}
		for _, e := range part.Entry {
			r := e.Resource
			if r["id"] == "pt-sensitive-hiv" || r["code"] == nil || r["valueQuantity"] != nil || !strings.Contains(mustMarshal(r["meta"]), "SUBSETTED") {
				t.Errorf("%s: %v", name, r)
			}
		}
		code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/Observation/pt-sensitive-vs-000?_elements=code", "")
		if code != http.StatusOK || strings.Contains(string(b), "valueQuantity") || !strings.Contains(string(b), "SUBSETTED") {
			t.Errorf("%s: a read in part: %d %.300s", name, code, b)
		}
		if code, _ := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/Observation/pt-sensitive-hiv?_elements=code", ""); code != http.StatusNotFound {
			t.Errorf("%s: the HIV test read in part: %d", name, code)
		}
	}
	all := search(backend, "/Observation?patient=pt-sensitive&_count=200")
	if n := search(backend, "/Observation?patient=pt-sensitive&_summary=count"); n.Total != all.Total || n.Entry != nil || !slices.ContainsFunc(all.Entry, func(e struct{ Resource map[string]any }) bool { return e.Resource["id"] == "pt-sensitive-hiv" }) {
		t.Errorf("the backend's count: %d, its search: %d", n.Total, all.Total)
	}
}

// TestConditionalWritesThroughTheProxy: conditional creates, updates and
// deletes through the proxy against a server that implements them. On
// their own the proxy resolves them, over what the token may see, and
// writes the record found: a backend of every label, a patient's app and a
// clinician each create once, then find and update their record, then
// delete it. Batched, a backend's go to the data server as sent, which
// resolves them alike.
func TestConditionalWritesThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	every := everyLabel()
	mint := func(g smart.Grant) string {
		t.Helper()
		g.Audience = sb.FHIRBase
		tok, err := sb.Auth.Mint(context.Background(), "", g, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, c := range []struct{ who, tok, id string }{
		{"a backend of every label", mint(smart.Grant{ClientID: BackendID, Scope: "system/*.cruds", Clearance: every}), "b1"},
		{"the patient's app", patientToken(t, sb, "launch/patient patient/*.cruds"), "a1"},
		{"a clinician", mint(smart.Grant{ClientID: ExampleAppID, UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/*.cruds"}), "c1"},
	} {
		reading := func(status string) string {
			return `{"resourceType":"Observation","status":"` + status + `","code":{"text":"x"},"identifier":[{"system":"urn:dev","value":"` + c.id +
				`"}],"subject":{"reference":"Patient/pt-001"}}`
		}
		criteria := "identifier=urn:dev|" + c.id
		write := func(method, target, body, ifNoneExist string) (int, string) {
			t.Helper()
			hdr := []string{"Content-Type", "application/fhir+json"}
			if ifNoneExist != "" {
				hdr = append(hdr, "If-None-Exist", ifNoneExist)
			}
			resp := callWith(t, c.tok, method, sb.FHIRBase+target, body, hdr...)
			defer resp.Body.Close()
			var res struct{ ID, Status string }
			_ = json.NewDecoder(resp.Body).Decode(&res)
			return resp.StatusCode, res.ID + " " + res.Status
		}
		code, first := write(http.MethodPost, "/Observation", reading("final"), criteria)
		id, _, _ := strings.Cut(first, " ")
		if code != http.StatusCreated || id == "" {
			t.Errorf("%s: the create: %d %q", c.who, code, first)
		}
		for _, s := range []struct {
			name, method, target, body, ifNoneExist string
			want                                    int
			answer                                  string
		}{
			{"the same create, found", http.MethodPost, "/Observation", reading("final"), criteria, http.StatusOK, id + " final"},
			{"an update of it", http.MethodPut, "/Observation?" + criteria, reading("amended"), "", http.StatusOK, id + " amended"},
		} {
			if code, answer := write(s.method, s.target, s.body, s.ifNoneExist); code != s.want || answer != s.answer {
				t.Errorf("%s: %s: %d %q, want %d %q", c.who, s.name, code, answer, s.want, s.answer)
			}
		}
		if code, _ := write(http.MethodDelete, "/Observation?"+criteria, "", ""); code != http.StatusNoContent {
			t.Errorf("%s: the delete: %d", c.who, code)
		}
		sb.fhir.mu.RLock()
		res, versions := sb.fhir.current["Observation/"+id], len(sb.fhir.history["Observation/"+id])
		sb.fhir.mu.RUnlock()
		if id == "" || res != nil || versions != 3 {
			t.Errorf("%s: Observation/%s is %v, in %d versions", c.who, id, res, versions)
		}
	}
	backend := mint(smart.Grant{ClientID: BackendID, Scope: "system/*.cruds", Clearance: every})
	reading := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"identifier":[{"system":"urn:dev","value":"b2"}],"subject":{"reference":"Patient/pt-001"}}`
	batch := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:dev|b2"},"resource":` +
		reading + `},{"request":{"method":"DELETE","url":"Observation?identifier=urn:dev|none"}}]}`
	var statuses []string
	for range 2 {
		code, b := fhirCall(t, backend, http.MethodPost, sb.FHIRBase, batch)
		var answer struct {
			Entry []struct{ Response struct{ Status string } }
		}
		if err := json.Unmarshal(b, &answer); code != http.StatusOK || err != nil || len(answer.Entry) != 2 {
			t.Fatalf("the backend's transaction: %d %s", code, b)
		}
		statuses = append(statuses, answer.Entry[0].Response.Status, answer.Entry[1].Response.Status)
	}
	if want := []string{"201 Created", "204 No Content", "200 OK", "204 No Content"}; !slices.Equal(statuses, want) {
		t.Errorf("the backend's transactions: %q, want %q", statuses, want)
	}
}

// everyLabel is a clearance that withholds no label.
func everyLabel() *consent.Clearance {
	return &consent.Clearance{MaxConfidentiality: consent.VeryRestricted,
		Tags: append(append(slices.Clone(consent.SensitiveTags), consent.HighlySensitiveTags...), consent.SegmentedTags...)}
}

// nextLink returns a page's next link, which must be on the proxy's base
// (a search of the system's is the base and its query), or "".
func nextLink(t testing.TB, sb *Sandbox, links []struct{ Relation, URL string }) string {
	t.Helper()
	for _, l := range links {
		if l.Relation == "next" {
			if !strings.HasPrefix(l.URL, sb.FHIRBase+"/") && !strings.HasPrefix(l.URL, sb.FHIRBase+"?") {
				t.Fatalf("a next link off the proxy: %s", l.URL)
			}
			return l.URL
		}
	}
	return ""
}

// TestPreferReturnThroughTheProxy: the data server answers a write as the
// client's Prefer asks (return=minimal: no body; return=OperationOutcome:
// an outcome; otherwise the record), as FHIR servers do, and through the
// proxy a patient's app and a clinician get each: the proxy answered a
// bodyless 201 with 502, for a record it had let be written.
func TestPreferReturnThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	patient := patientToken(t, sb, "launch/patient patient/Observation.cruds")
	clinician, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, Audience: sb.FHIRBase, UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/Observation.cruds"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"a reading"},"subject":{"reference":"Patient/pt-001"}}`
	for _, tok := range []string{patient, clinician} {
		for prefer, want := range map[string]string{"return=minimal": "", "return=OperationOutcome": `"OperationOutcome"`, "return=representation": `"Observation"`, "": `"Observation"`} {
			resp := callWith(t, tok, http.MethodPost, sb.FHIRBase+"/Observation", obs, "Content-Type", "application/fhir+json", "Prefer", prefer)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, sb.FHIRBase+"/Observation/") || want == "" && len(b) != 0 || want != "" && !strings.Contains(string(b), `"resourceType":`+want) {
				t.Errorf("Prefer %q: %d %s, Location %q", prefer, resp.StatusCode, b, loc)
			}
		}
	}
}

// TestIncludesOfWithheldThroughTheProxy: pt-sensitive's app, and a
// clinician, of the default clearance, search its laboratory results with
// the patient and the encounters included, in either order: the encounter
// only the withheld HIV test refers to never comes. With the patient
// first, it came, because it refers to the patient other results brought:
// an included record justified another (fixed in includes.go).
func TestIncludesOfWithheldThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	clinician, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, Audience: sb.FHIRBase, UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/*.rs"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{patientTokenOf(t, sb, "pt-sensitive", "launch/patient patient/*.rs"), clinician} {
		for _, q := range []string{"_include=Observation:patient&_include=Observation:encounter", "_include=Observation:encounter&_include=Observation:patient", "_include=*"} {
			code, b := fhirCall(t, tok, http.MethodGet, sb.FHIRBase+"/Observation?patient=pt-sensitive&category=laboratory&"+q, "")
			if code != http.StatusOK || !strings.Contains(string(b), `"Patient"`) || strings.Contains(string(b), "pt-sensitive-enc-001") || strings.Contains(string(b), "pt-sensitive-hiv") {
				t.Errorf("%s: %d %.400s", q, code, b)
			}
		}
	}
}

// TestSummariesThroughTheProxy: the data server answers _summary=true with
// R4's summary elements, and the proxy passes it where what it judges by
// is among them: a patient app's conditions and a clinician's results
// come as summaries, the records a whole search finds. Where it is not, the
// summary is refused, not answered empty: a patient app granted
// laboratory results only (an Observation's category is no summary
// element) and a patient app's appointments (nor are an Appointment's
// participants, which place it in the compartment). A clinician's summary
// with the encounters included never brings the one only a withheld HIV
// test refers to, and _summary=text, which leaves out every reference, is
// refused with includes, and (the sandbox auditing every disclosure by
// patient) where the request does not name the patient.
func TestSummariesThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	clinician, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: ExampleAppID, Audience: sb.FHIRBase, UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/*.rs"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(b []byte) []string {
		var bundle struct {
			Entry []struct {
				Resource struct {
					ID   string
					Meta struct{ Tag []struct{ Code string } }
				}
			}
		}
		_ = json.Unmarshal(b, &bundle)
		var out []string
		for _, e := range bundle.Entry {
			out = append(out, e.Resource.ID+fmt.Sprint(slices.ContainsFunc(e.Resource.Meta.Tag, func(tg struct{ Code string }) bool { return tg.Code == "SUBSETTED" })))
		}
		return out
	}
	patient := patientToken(t, sb, "launch/patient patient/*.rs")
	for _, c := range []struct{ tok, search string }{
		{patient, "/Condition?_count=50"},
		{clinician, "/Observation?patient=pt-sensitive&_count=50"},
		{clinician, "/Appointment?patient=pt-001"},
	} {
		code, whole := fhirCall(t, c.tok, http.MethodGet, sb.FHIRBase+c.search, "")
		sCode, summary := fhirCall(t, c.tok, http.MethodGet, sb.FHIRBase+c.search+"&_summary=true", "")
		want := ids(whole)
		for i := range want {
			want[i] = strings.TrimSuffix(want[i], "false") + "true"
		}
		if code != http.StatusOK || sCode != http.StatusOK || len(want) == 0 || !slices.Equal(ids(summary), want) || strings.Contains(string(summary), `"category"`) {
			t.Errorf("%s as a summary: %d %v, the whole search %d %v", c.search, sCode, ids(summary), code, want)
		}
	}
	for _, c := range []struct{ tok, path string }{
		{patientToken(t, sb, "launch/patient patient/Observation.rs?category=laboratory"), "/Observation?_summary=true"},
		{patientToken(t, sb, "launch/patient patient/Observation.rs?category=laboratory"), "/Observation/pt-001-lab-000?_summary=true"},
		{patient, "/Appointment?_summary=true"},
		{clinician, "/Observation?patient=pt-sensitive&category=laboratory&_summary=text&_include=Observation:encounter"},
		// The sandbox audits every disclosure by patient: a summary that
		// leaves out whose records they are goes only where the request
		// names the patient.
		{clinician, "/Observation?category=laboratory&_summary=text"},
		{clinician, "/Observation/pt-001-lab-000?_summary=text"},
		{clinician, "/Appointment?_summary=true"},
	} {
		if code, b := fhirCall(t, c.tok, http.MethodGet, sb.FHIRBase+c.path, ""); code != http.StatusBadRequest || !strings.Contains(string(b), "_elements") {
			t.Errorf("%s: %d %.300s", c.path, code, b)
		}
	}
	if code, b := fhirCall(t, clinician, http.MethodGet, sb.FHIRBase+"/Observation?patient=pt-001&category=laboratory&_summary=text", ""); code != http.StatusOK || !strings.Contains(string(b), "pt-001-lab-000") {
		t.Errorf("a clinician's text summary of one patient's results: %d %.300s", code, b)
	}
	// (Of pt-sensitive's laboratory results, only the withheld HIV test
	// refers to an encounter; of its vital signs, each does.)
	code, b := fhirCall(t, clinician, http.MethodGet, sb.FHIRBase+"/Observation?patient=pt-sensitive&category=laboratory&_summary=true&_include=Observation:encounter", "")
	if code != http.StatusOK || !strings.Contains(string(b), "pt-sensitive-lab-000") || strings.Contains(string(b), "pt-sensitive-enc-001") || strings.Contains(string(b), "pt-sensitive-hiv") {
		t.Errorf("a clinician's summary of results with the encounters: %d %.400s", code, b)
	}
	code, b = fhirCall(t, clinician, http.MethodGet, sb.FHIRBase+"/Observation?patient=pt-sensitive&category=vital-signs&_summary=true&_include=Observation:encounter", "")
	if code != http.StatusOK || !strings.Contains(string(b), "pt-sensitive-enc-001") {
		t.Errorf("a clinician's summary of vital signs with the encounters: %d %.400s", code, b)
	}
}
