package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// bulkServer runs one export: status polls answer 202 (the first with
// Retry-After: 0, the next with none) until the third, which answers the
// manifest.
type bulkServer struct {
	mu    sync.Mutex
	polls int
	got   []string // method, path and the headers that matter, a request each
}

func (b *bulkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, r.Method+" "+r.URL.RequestURI()+" prefer="+r.Header.Get("Prefer")+" accept="+r.Header.Get("Accept"))
	base := "http://" + r.Host
	switch {
	case r.URL.Path == "/fhir/$export" && r.URL.Query().Get("_type") == "Forbidden":
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden","diagnostics":"not yours"}]}`)
	case r.URL.Path == "/fhir/$export":
		w.Header().Set("Content-Location", base+"/fhir/status/1")
		w.WriteHeader(http.StatusAccepted)
	case r.URL.Path == "/fhir/status/1" && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusAccepted)
	case r.URL.Path == "/fhir/status/1" && b.polls < 2:
		b.polls++
		if b.polls == 1 {
			w.Header().Set("Retry-After", "0")
		}
		w.Header().Set("X-Progress", strings.Repeat("*", b.polls))
		w.WriteHeader(http.StatusAccepted)
	case r.URL.Path == "/fhir/status/1":
		_, _ = io.WriteString(w, `{"transactionTime":"2026-11-28T10:00:00Z","request":"`+base+`/fhir/$export","requiresAccessToken":true,`+
			`"output":[{"type":"Patient","url":"`+base+`/fhir/files/p.ndjson","count":2},{"type":"Observation","url":"`+base+`/fhir/files/o.ndjson"}],`+
			`"error":[],"deleted":[{"type":"Bundle","url":"`+base+`/fhir/files/d.ndjson"}]}`)
	case r.URL.Path == "/fhir/status/2":
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"export failed"}]}`)
	case r.URL.Path == "/fhir/files/p.ndjson":
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"a"}`+"\n\n"+`{"resourceType":"Patient","id":"b"}`+"\r\n")
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func TestExport(t *testing.T) {
	b := &bulkServer{}
	ts := httptest.NewServer(b)
	defer ts.Close()
	ctx := context.Background()
	exp, err := StartExport(ctx, ts.Client(), ts.URL+"/fhir/$export?_type=Patient,Observation")
	if err != nil || exp.Status != ts.URL+"/fhir/status/1" {
		t.Fatalf("StartExport: %+v, %v", exp, err)
	}
	exp.MinPoll = time.Millisecond
	m, err := exp.Wait(ctx)
	if err != nil || len(m.Output) != 2 || *m.Output[0].Count != 2 || m.Output[1].Count != nil || !m.RequiresAccessToken ||
		m.TransactionTime != "2026-11-28T10:00:00Z" || exp.Progress != "**" || len(m.Deleted) != 1 || m.Deleted[0].Type != "Bundle" {
		t.Fatalf("Wait: %+v, %v (progress %q)", m, err, exp.Progress)
	}
	rc, err := Download(ctx, ts.Client(), m.Output[0])
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for res, err := range Resources(rc) {
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ ID string }
		_ = json.Unmarshal(res, &r)
		ids = append(ids, r.ID)
	}
	rc.Close()
	if strings.Join(ids, ",") != "a,b" {
		t.Errorf("resources: %v", ids)
	}
	if err := exp.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET /fhir/$export?_type=Patient,Observation prefer=respond-async accept=application/fhir+json",
		"GET /fhir/status/1 prefer= accept=application/json",
		"GET /fhir/status/1 prefer= accept=application/json",
		"GET /fhir/status/1 prefer= accept=application/json",
		"GET /fhir/files/p.ndjson prefer= accept=application/fhir+ndjson",
		"DELETE /fhir/status/1 prefer= accept=",
	}
	if strings.Join(b.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the server got\n%s\nwant\n%s", strings.Join(b.got, "\n"), strings.Join(want, "\n"))
	}
}

func TestExportFailures(t *testing.T) {
	ts := httptest.NewServer(&bulkServer{polls: 2})
	defer ts.Close()
	ctx := context.Background()
	var ee *ExportError
	if _, err := StartExport(ctx, ts.Client(), ts.URL+"/fhir/$export?_type=Forbidden"); !errors.As(err, &ee) || ee.Status != 403 || ee.Diagnostics != "not yours" {
		t.Errorf("a refused kick-off: %v", err)
	}
	failed := &Export{Status: ts.URL + "/fhir/status/2", hc: ts.Client()}
	if _, err := failed.Wait(ctx); !errors.As(err, &ee) || ee.Status != 500 || !strings.Contains(err.Error(), "export failed") {
		t.Errorf("a failed export: %v", err)
	}
	if _, err := Download(ctx, ts.Client(), ExportFile{URL: ts.URL + "/fhir/files/gone.ndjson"}); !errors.As(err, &ee) || ee.Status != 404 {
		t.Errorf("a missing file: %v", err)
	}
	// Waiting ends with its context.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer slow.Close()
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := (&Export{Status: slow.URL, hc: slow.Client()}).Wait(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a wait past its context: %v", err)
	}
}

func TestResources(t *testing.T) {
	count := func(r io.Reader) (n int, err error) {
		for _, e := range Resources(r) {
			if e != nil {
				return n, e
			}
			n++
		}
		return n, nil
	}
	if n, err := count(strings.NewReader("{\"a\":1}\n{\"a\":\n{\"b\":2}\n")); n != 1 || err == nil {
		t.Errorf("a broken line: %d, %v", n, err)
	}
	cut := iotest.TimeoutReader(strings.NewReader(strings.Repeat("{\"a\":1}\n", 10)))
	if _, err := count(io.MultiReader(strings.NewReader("{\"a\":1}\n"), cut)); err == nil {
		t.Error("a transfer cut short read as whole")
	}
	if n, err := count(strings.NewReader("{\"a\":1}\n\n   \n[1]")); n != 2 || err != nil {
		t.Errorf("blank lines: %d, %v", n, err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"0": 0, "7": 7 * time.Second, "Sat, 28 Nov 2026 10:00:30 GMT": 30 * time.Second,
		"Sat, 28 Nov 2026 09:00:00 GMT": 0} {
		if got, ok := retryAfter(v, now); !ok || got != want {
			t.Errorf("%q: %v %v, want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-1", "soon"} {
		if _, ok := retryAfter(v, now); ok {
			t.Errorf("%q read as a wait", v)
		}
	}
}

// TestPostExport: a POSTed kick-off carries its parameters in a Parameters
// body, in Bulk Data's value types, and leaves out what is not set.
func TestPostExport(t *testing.T) {
	var method, path, contentType, prefer, body string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		method, path, contentType, prefer, body = r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), r.Header.Get("Prefer"), string(b)
		if strings.Contains(body, "Group/") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"not a patient"}]}`)
			return
		}
		w.Header().Set("Content-Location", "http://"+r.Host+"/fhir/status/1")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer ts.Close()
	ctx := context.Background()
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	export, err := PostExport(ctx, ts.Client(), ts.URL+"/fhir/Group/g1/$export", ExportParams{Types: []string{"Patient", "Observation"}, Since: since,
		TypeFilters: []string{"Observation?category=laboratory", "Observation?code=8867-4"}, Elements: []string{"code", "Patient.name"},
		IncludeAssociatedData: []string{"LatestProvenanceResources"}, Patients: []string{"Patient/p1", "Patient/p2"}})
	if err != nil || export.Status != ts.URL+"/fhir/status/1" {
		t.Fatalf("%+v, %v", export, err)
	}
	want := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient,Observation"},` +
		`{"name":"_since","valueInstant":"2026-01-02T02:04:05Z"},{"name":"_typeFilter","valueString":"Observation?category=laboratory"},` +
		`{"name":"_typeFilter","valueString":"Observation?code=8867-4"},{"name":"_elements","valueString":"code,Patient.name"},` +
		`{"name":"includeAssociatedData","valueCode":"LatestProvenanceResources"},` +
		`{"name":"patient","valueReference":{"reference":"Patient/p1"}},{"name":"patient","valueReference":{"reference":"Patient/p2"}}]}`
	if method != http.MethodPost || path != "/fhir/Group/g1/$export" || contentType != "application/fhir+json" || prefer != "respond-async" || body != want {
		t.Errorf("%s %s (%s, Prefer %s):\n%s\nwant\n%s", method, path, contentType, prefer, body, want)
	}
	if _, err := PostExport(ctx, ts.Client(), ts.URL+"/fhir/Patient/$export", ExportParams{}); err != nil ||
		body != `{"resourceType":"Parameters","parameter":[]}` {
		t.Errorf("no parameters: %s, %v", body, err)
	}
	var ee *ExportError
	if _, err := PostExport(ctx, ts.Client(), ts.URL+"/fhir/Patient/$export", ExportParams{Patients: []string{"Group/g1"}}); !errors.As(err, &ee) ||
		ee.Status != http.StatusBadRequest || ee.Diagnostics != "not a patient" {
		t.Errorf("a refusal: %v", err)
	}
}
