package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// fhirGet fetches path from the data server and decodes the JSON answer.
func fhirGet(t *testing.T, ts *httptest.Server, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, m
}

func entries(b map[string]any) []map[string]any {
	var out []map[string]any
	es, _ := b["entry"].([]any)
	for _, e := range es {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}

func TestSyntheticDataIsDeterministicAndAwkward(t *testing.T) {
	a, b := generate(50), generate(50)
	if !reflect.DeepEqual(a.resources, b.resources) {
		t.Fatal("two generations of the data set differ")
	}
	byKey := map[string]resource{}
	types := map[string]int{}
	for _, r := range a.resources {
		byKey[r["resourceType"].(string)+"/"+r["id"].(string)] = r
		types[r["resourceType"].(string)]++
		raw, _ := json.Marshal(r["meta"])
		if !strings.Contains(string(raw), `"HTEST"`) {
			t.Fatalf("%s/%s is not labelled as test data", r["resourceType"], r["id"])
		}
	}
	for _, ty := range []string{"Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "AllergyIntolerance",
		"Appointment", "DocumentReference", "Practitioner"} {
		if types[ty] == 0 {
			t.Errorf("no %s in the data set", ty)
		}
	}
	if types["Patient"] < 50 {
		t.Errorf("%d patients", types["Patient"])
	}
	if _, ok := byKey["Patient/pt-deceased"]["deceasedDateTime"]; !ok {
		t.Error("pt-deceased is not deceased")
	}
	if _, ok := byKey["Patient/pt-dup-old"]["link"]; !ok {
		t.Error("pt-dup-old has no Patient.link")
	}
	raw, _ := json.Marshal(byKey["Patient/pt-newborn"]["name"])
	if strings.Contains(string(raw), `"given"`) {
		t.Errorf("the newborn has a given name: %s", raw)
	}
	long := 0
	for _, r := range a.resources {
		if r["resourceType"] == "Encounter" && strings.Contains(mustJSON(r["subject"]), "Patient/pt-long") {
			long++
		}
	}
	if long < 300 {
		t.Errorf("pt-long has %d encounters", long)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestFHIRDataServer(t *testing.T) {
	ts := httptest.NewServer(newFHIRServer("http://fhir.test", generate(50)))
	defer ts.Close()

	if code, cs := fhirGet(t, ts, "/metadata"); code != 200 || cs["resourceType"] != "CapabilityStatement" {
		t.Fatalf("metadata: %d %v", code, cs["resourceType"])
	}
	if code, p := fhirGet(t, ts, "/Patient/pt-001"); code != 200 || p["id"] != "pt-001" {
		t.Fatalf("read: %d %v", code, p)
	}
	// resourceType first, as FHIR servers write it (the proxy streams a
	// large Bundle only when it knows it is one before its entries).
	if resp, err := http.Get(ts.URL + "/Observation?patient=pt-001"); err != nil {
		t.Fatal(err)
	} else {
		head := make([]byte, 25)
		_, _ = io.ReadFull(resp.Body, head)
		resp.Body.Close()
		if string(head) != `{"resourceType":"Bundle",` {
			t.Errorf("a searchset begins %q", head)
		}
	}
	if code, _ := fhirGet(t, ts, "/Patient/nobody"); code != 404 {
		t.Errorf("missing resource: %d", code)
	}
	// Strict: an unsupported parameter is an error, never ignored.
	if code, oo := fhirGet(t, ts, "/Observation?patient=pt-001&frobnicate=1"); code != 400 || oo["resourceType"] != "OperationOutcome" {
		t.Errorf("unsupported parameter: %d %v", code, oo)
	}
	// Search filters, paging links.
	_, b := fhirGet(t, ts, "/Observation?patient=pt-001&category=laboratory&_count=2")
	obs := entries(b)
	if len(obs) != 2 || b["total"].(float64) < 3 {
		t.Fatalf("lab search: %d entries, total %v", len(obs), b["total"])
	}
	for _, o := range obs {
		if !strings.Contains(mustJSON(o["category"]), "laboratory") || !strings.Contains(mustJSON(o["subject"]), "Patient/pt-001") {
			t.Errorf("search returned %s", mustJSON(o))
		}
	}
	next := ""
	for _, l := range b["link"].([]any) {
		if l.(map[string]any)["relation"] == "next" {
			next = l.(map[string]any)["url"].(string)
		}
	}
	if !strings.HasPrefix(next, "http://fhir.test/Observation?") {
		t.Fatalf("no next link: %v", b["link"])
	}
	_, page2 := fhirGet(t, ts, strings.TrimPrefix(next, "http://fhir.test"))
	if p2 := entries(page2); len(p2) == 0 || p2[0]["id"] == obs[0]["id"] {
		t.Errorf("the next page repeats the first")
	}
	// _include brings the referenced patient.
	_, inc := fhirGet(t, ts, "/Encounter?patient=pt-002&_count=1&_include=Encounter:subject")
	var modes []string
	for _, e := range inc["entry"].([]any) {
		modes = append(modes, e.(map[string]any)["search"].(map[string]any)["mode"].(string))
	}
	if !reflect.DeepEqual(modes, []string{"match", "include"}) {
		t.Errorf("_include entries: %v", modes)
	}

	// Create, update, vread and history.
	resp, err := http.Post(ts.URL+"/Observation", "application/fhir+json",
		strings.NewReader(`{"resourceType":"Observation","status":"preliminary","subject":{"reference":"Patient/pt-001"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	id, _ := created["id"].(string)
	if resp.StatusCode != 201 || id == "" || !strings.Contains(resp.Header.Get("Location"), "/Observation/"+id+"/_history/1") {
		t.Fatalf("create: %d %v %s", resp.StatusCode, created, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest(http.MethodPut, ts.URL+"/Observation/"+id,
		strings.NewReader(`{"resourceType":"Observation","id":"`+id+`","status":"final","subject":{"reference":"Patient/pt-001"}}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("update: %d", resp.StatusCode)
	}
	if _, v1 := fhirGet(t, ts, "/Observation/"+id+"/_history/1"); v1["status"] != "preliminary" {
		t.Errorf("vread 1: %v", v1["status"])
	}
	if _, cur := fhirGet(t, ts, "/Observation/"+id); cur["status"] != "final" {
		t.Errorf("current: %v", cur["status"])
	}
	if _, h := fhirGet(t, ts, "/Observation/"+id+"/_history"); len(entries(h)) != 2 {
		t.Errorf("history has %d versions", len(entries(h)))
	}
	// A body that does not match the URL changes nothing.
	req, _ = http.NewRequest(http.MethodPut, ts.URL+"/Observation/"+id, strings.NewReader(`{"resourceType":"Patient","id":"`+id+`"}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, cur := fhirGet(t, ts, "/Observation/"+id); resp.StatusCode != 400 || cur["status"] != "final" {
		t.Errorf("mismatched update: %d, now %v", resp.StatusCode, cur["status"])
	}
	// Version-aware updates, as the proxy sends them: a read's ETag is the
	// version, and an If-Match on any other is refused and changes nothing.
	resp, err = http.Get(ts.URL + "/Observation/" + id)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if etag := resp.Header.Get("ETag"); etag != `W/"2"` {
		t.Errorf("ETag %q, want the version", etag)
	}
	for _, c := range []struct {
		ifMatch string
		want    int
	}{{`W/"1"`, 412}, {`W/"2"`, 200}} {
		ifMatch, want := c.ifMatch, c.want
		req, _ = http.NewRequest(http.MethodPut, ts.URL+"/Observation/"+id,
			strings.NewReader(`{"resourceType":"Observation","id":"`+id+`","status":"amended","subject":{"reference":"Patient/pt-001"}}`))
		req.Header.Set("If-Match", ifMatch)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		_, h := fhirGet(t, ts, "/Observation/"+id+"/_history")
		if resp.StatusCode != want || want == 412 && len(entries(h)) != 2 {
			t.Errorf("If-Match %s: %d, %d versions", ifMatch, resp.StatusCode, len(entries(h)))
		}
	}
}

// TestFHIRDataServerTransactions: the data server runs a transaction all
// or nothing (a stale ifMatch refuses every entry), resolves references to
// its entries' fullUrls, and runs a batch's entries each on its own.
func TestFHIRDataServerTransactions(t *testing.T) {
	s := newFHIRServer("http://fhir.test", generate(50))
	ts := httptest.NewServer(s)
	defer ts.Close()
	post := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(ts.URL+"/", "application/fhir+json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, m
	}
	versions := func() int {
		n := 0
		for _, h := range s.history {
			n += len(h)
		}
		return n
	}
	_, cond := fhirGet(t, ts, "/Condition/pt-001-cond-1")
	delete(cond, "meta")
	entriesOf := func(ifMatch string) string {
		return `[{"fullUrl":"urn:uuid:1","request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/pt-001"}}},
			{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final","hasMember":[{"reference":"urn:uuid:1"}]}},
			{"request":{"method":"PUT","url":"Condition/pt-001-cond-1","ifMatch":"` + ifMatch + `"},"resource":` + mustMarshal(cond) + `},
			{"request":{"method":"GET","url":"Patient/pt-001"}}]`
	}
	before := versions()
	if code, m := post(`{"resourceType":"Bundle","type":"transaction","entry":` + entriesOf(`W/\"7\"`) + `}`); code != 412 || m["resourceType"] != "OperationOutcome" || versions() != before {
		t.Fatalf("a transaction with a stale ifMatch: %d %v, %d versions written", code, m, versions()-before)
	}
	code, m := post(`{"resourceType":"Bundle","type":"transaction","entry":` + entriesOf(`W/\"1\"`) + `}`)
	es, _ := m["entry"].([]any)
	if code != 200 || m["type"] != "transaction-response" || len(es) != 4 || versions() != before+3 {
		t.Fatalf("a transaction: %d %v", code, m)
	}
	loc := func(i int) string {
		l, _, _ := strings.Cut(es[i].(map[string]any)["response"].(map[string]any)["location"].(string), "/_history/")
		return l
	}
	if got := s.current[loc(1)]["hasMember"]; mustMarshal(got) != `[{"reference":"`+loc(0)+`"}]` {
		t.Errorf("the member reference became %v, want %s", got, loc(0))
	}
	if es[3].(map[string]any)["resource"].(map[string]any)["id"] != "pt-001" {
		t.Errorf("the read's entry: %v", es[3])
	}
	// A batch: the stale update fails on its own; the rest is written, and
	// its urn stays as written (a batch's entries do not refer to each other).
	before = versions()
	code, m = post(`{"resourceType":"Bundle","type":"batch","entry":` + entriesOf(`W/\"1\"`) + `}`)
	es, _ = m["entry"].([]any)
	if code != 200 || len(es) != 4 || versions() != before+2 ||
		!strings.HasPrefix(es[2].(map[string]any)["response"].(map[string]any)["status"].(string), "412") {
		t.Fatalf("a batch: %d %v", code, m)
	}
	if got := s.current[loc(1)]["hasMember"]; mustMarshal(got) != `[{"reference":"urn:uuid:1"}]` {
		t.Errorf("in a batch the member reference became %v", got)
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
