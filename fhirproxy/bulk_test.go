package fhirproxy_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/smart"
)

// bulkServer is a FHIR server that runs bulk exports (FHIR Bulk Data
// Access) in front of the fixture's upstream, which answers everything
// else (reads of a Group or of a Provenance's targets). Every request it
// gets is recorded with the upstream's.
type bulkServer struct {
	f  *fixture
	ts *httptest.Server

	mu sync.Mutex
	// polls is how many status polls have been answered: the first is
	// 202, in progress.
	polls int
	// kickOff, when set, answers the kick-off in place of a 202 to the
	// status URL.
	kickOff http.HandlerFunc
	// manifest, when set, is the finished manifest (given the server's
	// base); otherwise bulkManifest.
	manifest func(base string) map[string]any
	// files are the export files by path, NDJSON; fileType their
	// Content-Type (application/fhir+ndjson when empty).
	files    map[string]string
	fileType string
}

// ndjson joins resources into NDJSON.
func ndjson(rs ...map[string]any) string {
	var b strings.Builder
	for _, r := range rs {
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func newBulkFixture(t *testing.T) (*fixture, *bulkServer) {
	f := newFixture(t)
	bs := &bulkServer{f: f, files: map[string]string{
		"/files/Patient.ndjson":      ndjson(f.up.resources["Patient/p1"], f.up.resources["Patient/p2"]),
		"/files/the patients.ndjson": ndjson(f.up.resources["Patient/p2"]),
		"/files/deleted.ndjson": ndjson(deletion("Observation/old-1"), deletion("Condition/c9"), deletion("Observation/old-2", "Patient/p9"),
			map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
				"request": map[string]any{"method": "DELETE", "url": "Observation/old-3"}, "resource": obs("old-3", "p1", "laboratory")}}}),
		"/files/Observation.ndjson": ndjson(obs("lab-1", "p1", "laboratory"), obs("vs-1", "p1", "vital-signs"),
			obs("psy-1", "p1", "laboratory", "R", "PSY"), map[string]any{"resourceType": "Condition", "id": "c1", "subject": map[string]any{"reference": "Patient/p1"}},
			obs("lab-2", "p2", "laboratory")),
		"/files/Condition.ndjson":  ndjson(map[string]any{"resourceType": "Condition", "id": "c1", "subject": map[string]any{"reference": "Patient/p1"}}),
		"/files/Provenance.ndjson": ndjson(provenanceOf("prov-a", "Observation/lab-1"), provenanceOf("prov-b", "Observation/psy-1")),
		"/files/errors.ndjson": ndjson(map[string]any{"resourceType": "OperationOutcome",
			"issue": []any{map[string]any{"severity": "error", "code": "processing", "diagnostics": "Encounter export failed"}}}),
	}}
	f.up.mu.Lock()
	f.up.resources["Group/g1"] = map[string]any{"resourceType": "Group", "id": "g1", "type": "person", "actual": true}
	f.up.resources["Group/secret"] = map[string]any{"resourceType": "Group", "id": "secret", "type": "person", "actual": true,
		"meta": map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}}}}
	f.up.mu.Unlock()
	bs.ts = httptest.NewServer(http.HandlerFunc(bs.serve))
	t.Cleanup(bs.ts.Close)
	f.proxy.Upstream, _ = url.Parse(bs.ts.URL + "/base")
	return f, bs
}

// deletion is a line of a file of deleted resources: a transaction
// Bundle of DELETEs.
func deletion(refs ...string) map[string]any {
	var entries []any
	for _, r := range refs {
		entries = append(entries, map[string]any{"request": map[string]any{"method": "DELETE", "url": r}})
	}
	return map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries}
}

// provenanceOf is a Provenance about a record.
func provenanceOf(id, target string) map[string]any {
	return map[string]any{"resourceType": "Provenance", "id": id, "recorded": "2026-11-28T10:00:00Z",
		"target": []any{map[string]any{"reference": target}}, "agent": []any{map[string]any{"who": map[string]any{"reference": "Practitioner/dr"}}}}
}

// bulkManifest is a finished export of Patient, Observation, Condition
// and Provenance, with an error file and a file of deletions.
func bulkManifest(base string) map[string]any {
	file := func(typ, name string, count int) map[string]any {
		return map[string]any{"type": typ, "url": base + "/files/" + name, "count": count}
	}
	return map[string]any{"transactionTime": "2026-11-28T10:00:00Z", "request": base + "/$export?_type=Patient,Observation,Condition",
		"requiresAccessToken": true, "output": []any{file("Patient", "Patient.ndjson", 2), file("Observation", "Observation.ndjson", 5),
			file("Condition", "Condition.ndjson", 1), file("Provenance", "Provenance.ndjson", 2), file("Patient", "the%20patients.ndjson", 1)},
		"error": []any{file("OperationOutcome", "errors.ndjson", 1)}, "deleted": []any{file("Bundle", "deleted.ndjson", 1)},
		"extension": map[string]any{"note": "from " + base}}
}

func (bs *bulkServer) serve(w http.ResponseWriter, r *http.Request) {
	base := bs.ts.URL + "/base"
	path := strings.TrimPrefix(r.URL.Path, "/base")
	op := path[strings.LastIndexByte(path, '/')+1:]
	if op != "$export" && op != "$export-poll-status" && !strings.HasPrefix(path, "/files/") {
		r.URL.Path = path
		bs.f.up.serve(w, r)
		return
	}
	u := bs.f.up
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.got = append(u.got, r.Clone(r.Context()))
	u.bodies = append(u.bodies, string(body))
	u.mu.Unlock()
	bs.mu.Lock()
	defer bs.mu.Unlock()
	w.Header().Set("Access-Control-Allow-Origin", "*")
	switch {
	case op == "$export" && bs.kickOff != nil:
		bs.kickOff(w, r)
	case op == "$export":
		w.Header().Set("Content-Location", base+"/$export-poll-status?_jobId=j1")
		w.WriteHeader(http.StatusAccepted)
	case op == "$export-poll-status" && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusAccepted)
	case op == "$export-poll-status" && bs.polls == 0:
		bs.polls++
		w.Header().Set("X-Progress", "50% done")
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"`+base+`"}]}`)
	case op == "$export-poll-status":
		m := bulkManifest
		if bs.manifest != nil {
			m = bs.manifest
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Expires", "Sun, 29 Nov 2026 10:00:00 GMT")
		_ = json.NewEncoder(w).Encode(m(base))
	default:
		body, ok := bs.files[path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		ct := bs.fileType
		if ct == "" {
			ct = "application/fhir+ndjson"
		}
		w.Header().Set("Content-Type", ct)
		_, _ = io.WriteString(w, body)
	}
}

// tokenFor mints a system/ token for another client.
func (f *fixture) tokenFor(client, scope string) string {
	f.t.Helper()
	tok, err := f.srv.Mint(context.Background(), "", smart.Grant{ClientID: client, Scope: scope}, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// manifestOf kicks an export off through the proxy with tok and returns
// its finished manifest's output (the status answers at once).
func (bs *bulkServer) manifestOf(t *testing.T, tok, kickOff string) []map[string]any {
	t.Helper()
	f := bs.f
	bs.mu.Lock()
	bs.polls = 1
	bs.mu.Unlock()
	r := f.do("GET", kickOff, tok, "", "Prefer", "respond-async")
	if r.status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %d %s", kickOff, r.status, r.raw)
	}
	r = f.do("GET", f.proxyPath(r.header.Get("Content-Location")), tok, "")
	var m struct{ Output []map[string]any }
	if err := json.Unmarshal([]byte(r.raw), &m); err != nil || r.status != http.StatusOK {
		t.Fatalf("manifest: %d %s", r.status, r.raw)
	}
	return m.Output
}

// download GETs an export file through the proxy and reads it whole: a
// transfer the proxy cuts is an error (from the request, or the read).
func (f *fixture) download(path, tok string) ([]byte, error) {
	req, _ := http.NewRequest("GET", f.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// proxyPath is a link of the proxy's, below its base, as f.do takes it.
func (f *fixture) proxyPath(link string) string {
	f.t.Helper()
	rest, ok := strings.CutPrefix(link, f.base)
	if !ok {
		f.t.Fatalf("%q is not on the proxy's base %s", link, f.base)
	}
	return rest
}

// ids returns the Type/id of each NDJSON line.
func ndjsonIDs(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(body) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, fmt.Sprint(r["resourceType"], "/", r["id"]))
	}
	return out
}

// TestBulkExport is a backend service's export through the proxy: the
// kick-off, the status polled until the manifest, each file, and a
// cancel, each judged for the token that asks.
func TestBulkExport(t *testing.T) {
	f, bs := newBulkFixture(t)
	tok := f.token("system/Patient.rs system/Observation.rs", nil) // default clearance: normal data only
	async := []string{"Prefer", "respond-async"}

	r := f.do("GET", "/$export", tok, "", async...)
	if r.status != http.StatusAccepted {
		t.Fatalf("kick-off: %d %s", r.status, r.raw)
	}
	got := f.up.requests()
	if len(got) != 1 || got[0].URL.Path != "/base/$export" || got[0].URL.RawQuery != "_type=Patient%2CObservation" ||
		got[0].Header.Get("Prefer") != "respond-async" || got[0].Header.Get("Accept") != "application/fhir+json" ||
		got[0].Header.Get("Authorization") != "Bearer upstream-credential" {
		t.Fatalf("kick-off upstream: %v", got)
	}
	status := r.header.Get("Content-Location")
	if !strings.HasPrefix(status, f.base+"/$export-poll-status?_job=") || strings.Contains(status, bs.ts.URL) || r.raw != "" {
		t.Fatalf("kick-off answer: Content-Location %q, body %q", status, r.raw)
	}
	if evs := f.audit.Events(); len(evs) != 1 || evs[0].Interaction != "operation" || !slices.Equal(evs[0].Resources, []string{"Patient", "Observation"}) ||
		evs[0].ClientID != "app" || evs[0].Type != audit.ResourceAllowed {
		t.Errorf("the kick-off's audit event (it names what is exported): %+v", evs)
	}
	f.up.reset()

	// Running: the progress passes in the proxy's words (the server's are
	// free text, words.go), the server's body (naming its base) not at all.
	r = f.do("GET", f.proxyPath(status), tok, "")
	if r.status != http.StatusAccepted || r.header.Get("X-Progress") != "in progress" || r.header.Get("Retry-After") != "1" || r.raw != "" {
		t.Fatalf("poll while running: %d %v %q", r.status, r.header, r.raw)
	}
	// A token that may read every record of every type hears the server.
	g, gs := newBulkFixture(t)
	all := g.token("system/*.rs", everyLabel())
	if r := g.do("GET", g.proxyPath(g.do("GET", "/$export", all, "", async...).header.Get("Content-Location")), all, ""); r.status != http.StatusAccepted ||
		r.header.Get("X-Progress") != "50% done" || gs.polls != 1 {
		t.Errorf("a poll of every record's export: %d %v", r.status, r.header)
	}
	if got := f.up.requests(); len(got) != 1 || got[0].URL.Path != "/base/$export-poll-status" || got[0].URL.RawQuery != "_jobId=j1" {
		t.Fatalf("poll upstream: %v", got)
	}
	// Done: the manifest, rewritten.
	r = f.do("GET", f.proxyPath(status), tok, "")
	if r.status != http.StatusOK || strings.Contains(r.raw, bs.ts.URL) || r.header.Get("Content-Type") != "application/json" ||
		r.header.Get("Expires") == "" {
		t.Fatalf("manifest: %d %v %s", r.status, r.header, r.raw)
	}
	var m struct {
		TransactionTime     string
		Request             string
		RequiresAccessToken bool
		Output, Error       []map[string]any
		Deleted             []any
		Extension           any
	}
	if err := json.Unmarshal([]byte(r.raw), &m); err != nil {
		t.Fatal(err)
	}
	// The request is the client's kick-off, not the server's, which names
	// the types the proxy added.
	if m.TransactionTime != "2026-11-28T10:00:00Z" || m.Request != f.base+"/$export" ||
		!m.RequiresAccessToken || m.Deleted != nil || m.Extension != nil {
		t.Errorf("manifest: %+v", m)
	}
	files := map[string]string{}
	for _, o := range m.Output {
		if _, counted := o["count"]; counted {
			t.Errorf("a count went to a token that does not see every record: %v", o)
		}
		if typ := o["type"].(string); files[typ] == "" { // (the first of Patient's two)
			files[typ] = o["url"].(string)
		}
	}
	if len(m.Output) != 3 || len(files) != 2 || files["Patient"] == "" || files["Observation"] == "" {
		t.Fatalf("manifest output: %v (Condition, which the token may not read, must be left out)", m.Output)
	}
	if len(m.Error) != 1 || m.Error[0]["type"] != "OperationOutcome" {
		t.Fatalf("manifest error: %v", m.Error)
	}
	f.up.reset()

	// Each file, judged line by line.
	r = f.do("GET", f.proxyPath(files["Observation"]), tok, "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/fhir+ndjson" {
		t.Fatalf("file: %d %v %s", r.status, r.header, r.raw)
	}
	if ids := ndjsonIDs(t, r.raw); !slices.Equal(ids, []string{"Observation/lab-1", "Observation/vs-1", "Observation/lab-2"}) {
		t.Errorf("Observation file: %v (psy-1's labels are beyond the clearance; the Condition is not the file's type)", ids)
	}
	if got := f.up.requests(); len(got) != 1 || got[0].URL.Path != "/base/files/Observation.ndjson" || got[0].Header.Get("Accept") != "application/fhir+ndjson" {
		t.Fatalf("file upstream: %v", got)
	}
	r = f.do("GET", f.proxyPath(files["Patient"]), tok, "")
	if ids := ndjsonIDs(t, r.raw); !slices.Equal(ids, []string{"Patient/p1", "Patient/p2"}) {
		t.Errorf("Patient file: %v", ids)
	}
	r = f.do("GET", f.proxyPath(m.Output[len(m.Output)-1]["url"].(string)), tok, "") // its URL escaped: fetched as written
	if ids := ndjsonIDs(t, r.raw); !slices.Equal(ids, []string{"Patient/p2"}) {
		t.Errorf("a file whose URL is escaped: %d %v", r.status, ids)
	}
	// The server's error file, one line, without its words (words.go):
	// this token's clearance is short of every label.
	r = f.do("GET", f.proxyPath(m.Error[0]["url"].(string)), tok, "")
	if strings.Contains(r.raw, "Encounter export failed") || strings.Count(r.raw, `{"severity":"error","code":"processing","diagnostics":"the FHIR server's own words are withheld`) != 1 ||
		r.status != http.StatusOK {
		t.Errorf("error file: %d %s", r.status, r.raw)
	}
	var download *audit.Event // recorded as the file ends, perhaps after the client has read it
	waitFor(t, func() bool {
		for _, e := range f.audit.Events() {
			if e.Interaction == "export-file" && strings.HasPrefix(e.Reason, "export file sent") && e.Resource == "Observation" {
				download = &e
			}
		}
		return download != nil
	})
	if download.Patient != "p1" || !slices.Equal(download.Patients, []string{"p2"}) ||
		download.Reason != "export file sent (3 resources sent, 2 left out)" || download.ClientID != "app" {
		t.Errorf("the download's audit event: %+v", download)
	}

	// The links are the token's: another client, a token with patient
	// context, a token that may no longer read the type, a tampered or
	// misused link are refused, and nothing reaches the server.
	f.up.reset()
	other := f.tokenFor("other-app", "system/Patient.rs system/Observation.rs")
	f.refused("another client", f.do("GET", f.proxyPath(files["Observation"]), other, ""), http.StatusBadRequest)
	f.refused("another client's poll", f.do("GET", f.proxyPath(status), other, ""), http.StatusBadRequest)
	f.refused("fewer scopes", f.do("GET", f.proxyPath(files["Observation"]), f.token("system/Patient.rs", nil), ""), http.StatusForbidden)
	tampered := f.proxyPath(files["Observation"])
	tampered = tampered[:len(tampered)-3] + "AAA"
	f.refused("tampered", f.do("GET", tampered, tok, ""), http.StatusBadRequest)
	asFile := strings.Replace(f.proxyPath(status), "$export-poll-status?_job=", "$export-file?_file=", 1)
	f.refused("a status link as a file's", f.do("GET", asFile, tok, ""), http.StatusBadRequest)
	f.refused("a file link with more", f.do("GET", f.proxyPath(files["Observation"])+"&_type=Condition", tok, ""), http.StatusBadRequest)
	f.refused("POST to a file link", f.do("POST", f.proxyPath(files["Observation"]), tok, "{}"), http.StatusForbidden)
	f.refused("unsigned", f.do("GET", "/$export-poll-status?_jobId=j1", tok, ""), http.StatusBadRequest)

	// Cancelled.
	r = f.do("DELETE", f.proxyPath(status), tok, "")
	if got := f.up.requests(); r.status != http.StatusAccepted || len(got) != 1 || got[0].Method != http.MethodDelete ||
		got[0].URL.RawQuery != "_jobId=j1" {
		t.Errorf("cancel: %d %s, upstream %v", r.status, r.raw, got)
	}
}

// TestBulkExportClearance: a token that sees every record gets the
// server's counts and the files of deleted records (those lines whose
// every deletion is of a type it exports); one short of a label gets no
// count, fewer lines, no Provenance about a record it may not see (read to
// judge it), and no deletions, whose records' labels are gone.
func TestBulkExportClearance(t *testing.T) {
	f, _ := newBulkFixture(t)
	for _, c := range []struct {
		name         string
		all          bool
		counted      bool
		lines, provs int
	}{{"every label", true, true, 4, 2}, {"default clearance", false, false, 3, 1}} {
		tok := f.token("system/*.rs", nil)
		if c.all {
			tok = f.token("system/*.rs", everyLabel())
		}
		r := f.do("GET", "/Patient/$export?_outputFormat=ndjson&_since=2026-01-01T00:00:00Z", tok, "", "Prefer", "respond-async")
		if got := f.up.requests(); r.status != http.StatusAccepted || got[len(got)-1].URL.RawQuery != "_outputFormat=application%2Ffhir%2Bndjson&_since=2026-01-01T00%3A00%3A00Z" {
			t.Fatalf("%s: kick-off %d, upstream %v (a wildcard exports every type: no _type added)", c.name, r.status, got)
		}
		status := f.proxyPath(r.header.Get("Content-Location"))
		f.do("GET", status, tok, "")
		r = f.do("GET", status, tok, "")
		var m struct{ Output, Error, Deleted []map[string]any }
		_ = json.Unmarshal([]byte(r.raw), &m)
		if len(m.Output) != 5 || len(m.Deleted) != map[bool]int{true: 1, false: 0}[c.all] || len(m.Error) != map[bool]int{true: 1, false: 2}[c.all] {
			t.Fatalf("%s: manifest %s", c.name, r.raw)
		}
		// The partial clearance is told that deletions are not relayed, in
		// a file of the proxy's own, answered without the server.
		if !c.all {
			notice := m.Error[1]["url"].(string)
			f.up.reset()
			r := f.do("GET", f.proxyPath(notice), tok, "")
			var oo struct {
				ResourceType string
				Issue        []struct{ Severity, Code string }
			}
			if err := json.Unmarshal([]byte(r.raw), &oo); err != nil || r.status != http.StatusOK || oo.ResourceType != "OperationOutcome" ||
				len(oo.Issue) != 1 || oo.Issue[0].Code != "suppressed" || r.header.Get("Content-Type") != "application/fhir+ndjson" ||
				r.header.Get("X-Content-Type-Options") != "nosniff" || strings.Count(r.raw, "\n") != 1 || len(f.up.requests()) != 0 {
				t.Errorf("the notice: %d %v %s, upstream %v", r.status, r.header, r.raw, f.up.requests())
			}
			if evs := f.audit.Events(); evs[len(evs)-1].Reason != "export notice: deletions are not relayed to this token" {
				t.Errorf("the notice's event: %+v", evs[len(evs)-1])
			}
			f.refused("the notice, for another client", f.do("GET", f.proxyPath(notice), f.tokenFor("other", "system/*.rs"), ""), http.StatusBadRequest)
			f.refused("the notice, tampered", f.do("GET", f.proxyPath(notice)+"x", tok, ""), http.StatusBadRequest)
		}
		for _, d := range m.Deleted {
			// Every type exported: the lines but the one carrying a resource.
			if got := f.do("GET", f.proxyPath(d["url"].(string)), tok, "").raw; strings.Count(got, "\n") != 3 || strings.Contains(got, "old-3") || d["type"] != "Bundle" {
				t.Errorf("%s: deletions %s", c.name, got)
			}
			// Observation and Patient only: not the Condition's line either.
			narrow := f.token("system/Observation.rs system/Patient.rs", everyLabel())
			if got := f.do("GET", f.proxyPath(d["url"].(string)), narrow, "").raw; strings.Count(got, "\n") != 2 || strings.Contains(got, "c9") {
				t.Errorf("%s: deletions for Observation and Patient %s", c.name, got)
			}
			f.up.reset()
			f.refused("deletions for a partial clearance", f.do("GET", f.proxyPath(d["url"].(string)), f.token("system/*.rs", nil), ""), http.StatusForbidden)
		}
		for _, o := range m.Output {
			if _, counted := o["count"]; counted != c.counted {
				t.Errorf("%s: %v counted %v", c.name, o, counted)
			}
			switch got := ndjsonIDs(t, f.do("GET", f.proxyPath(o["url"].(string)), tok, "").raw); o["type"] {
			case "Observation":
				if len(got) != c.lines {
					t.Errorf("%s: Observation file %v", c.name, got)
				}
			case "Provenance":
				if len(got) != c.provs || got[0] != "Provenance/prov-a" {
					t.Errorf("%s: Provenance file %v", c.name, got)
				}
			}
		}
	}
}

// TestBulkExportConstrained: a token whose scope for a type is
// query-constrained (SMART v2) exports the type: the server is asked for
// the matches with _typeFilter, and each line of the file is held to the
// constraint by the proxy, so a server that ignores the filter sends no
// more; the manifest gives no count for the type.
func TestBulkExportConstrained(t *testing.T) {
	f, bs := newBulkFixture(t)
	tok := f.token("system/Observation.rs?category=laboratory system/Patient.rs", everyLabel())
	for _, c := range []struct{ target, query string }{
		{"/$export?_type=Patient,Observation", "_type=Patient%2CObservation&_typeFilter=Observation%3Fcategory%3Dlaboratory"},
		{"/$export", "_type=Observation%2CPatient&_typeFilter=Observation%3Fcategory%3Dlaboratory"},
	} {
		f.up.reset()
		r := f.do("GET", c.target, tok, "", "Prefer", "respond-async")
		if got := f.up.requests(); r.status != http.StatusAccepted || len(got) != 1 || got[0].URL.RawQuery != c.query {
			t.Fatalf("%s: %d %s, upstream %v", c.target, r.status, r.raw, got[0].URL.RawQuery)
		}
		if v := f.up.requests()[0].URL.Query()["_typeFilter"]; len(v) != 1 || v[0] != "Observation?category=laboratory" {
			t.Fatalf("%s: _typeFilter as the server reads it: %q", c.target, v)
		}
	}
	// An OR list stays one query: its comma escaped within the filter, so a
	// server that splits _typeFilter on commas keeps it whole.
	f.up.reset()
	either := f.token("system/Observation.rs?category=laboratory,vital-signs", nil)
	if r := f.do("GET", "/$export", either, "", "Prefer", "respond-async"); r.status != http.StatusAccepted ||
		f.up.requests()[0].URL.Query().Get("_typeFilter") != "Observation?category=laboratory%2Cvital-signs" {
		t.Errorf("an OR list: %d, upstream %s", r.status, f.up.requests()[0].URL.RawQuery)
	}
	var obsFile string
	for _, o := range bs.manifestOf(t, tok, "/$export") {
		_, counted := o["count"]
		switch o["type"] {
		case "Observation":
			obsFile = o["url"].(string)
			if counted {
				t.Errorf("a constrained type counted: %v", o)
			}
		case "Patient":
			if !counted {
				t.Errorf("a full clearance's Patient file not counted: %v", o)
			}
		}
	}
	if ids := ndjsonIDs(t, f.do("GET", f.proxyPath(obsFile), tok, "").raw); !slices.Equal(ids, []string{"Observation/lab-1", "Observation/psy-1", "Observation/lab-2"}) {
		t.Errorf("the constrained Observation file: %v (vs-1 is vital-signs)", ids)
	}
	// The token's scopes at download decide: one that reads Observation
	// outright gets every line.
	f.up.reset()
	if ids := ndjsonIDs(t, f.do("GET", f.proxyPath(obsFile), f.token("system/Observation.rs system/Patient.rs", everyLabel()), "").raw); len(ids) != 4 {
		t.Errorf("an unconstrained token's file: %v", ids)
	}
}

// TestBulkExportProvenanceReads: a Provenance file is judged by reading
// the records its Provenances are about, each once, and far more of them
// than a page's (maxTargetReads, 50): an export file holds every
// Provenance of the type.
func TestBulkExportProvenanceReads(t *testing.T) {
	f, bs := newBulkFixture(t)
	var provs []map[string]any
	f.up.mu.Lock()
	for i := range 120 {
		id := "many-" + strconv.Itoa(i)
		f.up.resources["Observation/"+id] = obs(id, "p1", "laboratory")
		provs = append(provs, provenanceOf("pv-"+strconv.Itoa(i), "Observation/"+id), provenanceOf("pw-"+strconv.Itoa(i), "Observation/"+id))
	}
	f.up.mu.Unlock()
	provs = append(provs, provenanceOf("pv-psy", "Observation/psy-1"))
	bs.mu.Lock()
	bs.files["/files/Provenance.ndjson"] = ndjson(provs...)
	bs.mu.Unlock()
	tok := f.token("system/Observation.rs system/Provenance.rs", nil)
	var file string
	for _, o := range bs.manifestOf(t, tok, "/$export?_type=Provenance") {
		if o["type"] == "Provenance" {
			file = o["url"].(string)
		}
	}
	f.up.reset()
	got := ndjsonIDs(t, f.do("GET", f.proxyPath(file), tok, "").raw)
	if len(got) != 240 || slices.Contains(got, "Provenance/pv-psy") {
		t.Errorf("%d Provenances went, want the 240 about records the token may see", len(got))
	}
	if reads := len(f.up.requests()) - 1; reads != 121 {
		t.Errorf("%d records read, want each of the 121 once", reads)
	}
}

// TestBulkExportPosted: a kick-off POSTed with a Parameters body (Bulk
// Data allows one) is checked as a GET's query and goes upstream as that
// GET; a body the proxy does not read strictly is refused.
func TestBulkExportPosted(t *testing.T) {
	f, _ := newBulkFixture(t)
	tok := f.token("system/Patient.rs system/Observation.rs", nil)
	post := func(body string, hdr ...string) result {
		return f.do("POST", "/$export", tok, body, append([]string{"Prefer", "respond-async"}, hdr...)...)
	}
	r := post(`{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"},` +
		`{"name":"_since","valueInstant":"2026-01-01T00:00:00Z"},{"name":"_outputFormat","valueString":"application/fhir+ndjson"}]}`)
	got := f.up.requests()
	if r.status != http.StatusAccepted || len(got) != 1 || got[0].Method != http.MethodGet || got[0].URL.Path != "/base/$export" ||
		got[0].URL.RawQuery != "_outputFormat=application%2Ffhir%2Bndjson&_since=2026-01-01T00%3A00%3A00Z&_type=Observation" ||
		got[0].Header.Get("Content-Type") != "" || f.up.bodies[0] != "" {
		t.Fatalf("a POSTed kick-off: %d %s, upstream %v", r.status, r.raw, got)
	}
	f.up.reset()
	for name, c := range map[string]struct {
		body   string
		status int
	}{
		"a type not allowed":                  {`{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Condition"}]}`, 403},
		"a patient":                           {`{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/p1"}}]}`, 400},
		"associated data, without Provenance": {`{"resourceType":"Parameters","parameter":[{"name":"includeAssociatedData","valueCode":"LatestProvenanceResources"}]}`, 403},
		"a _typeFilter's type not named":      {`{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"},{"name":"_typeFilter","valueString":"Patient?gender=female"}]}`, 400},
		"not Parameters":                      {`{"resourceType":"Bundle"}`, 400},
		"another member":                      {`{"resourceType":"Parameters","id":"x","parameter":[]}`, 400},
		"a duplicate member":                  {`{"resourceType":"Parameters","parameter":[],"parameter":[{"name":"_type","valueString":"Condition"}]}`, 400},
		"_since twice":                        {`{"resourceType":"Parameters","parameter":[{"name":"_since","valueInstant":"2026-01-01T00:00:00Z"},{"name":"_since","valueInstant":"2025-01-01T00:00:00Z"}]}`, 400},
		"no body (no JSON)":                   {"", 415},
	} {
		hdr := []string{}
		if c.body == "" {
			hdr = []string{"Content-Type", ""}
		}
		f.refused(name, post(c.body, hdr...), c.status)
	}
	f.refused("POSTed without Prefer", f.do("POST", "/$export", tok, `{"resourceType":"Parameters","parameter":[]}`), http.StatusBadRequest)
}

// TestBulkExportRefused: kick-offs the proxy refuses, before anything
// reaches the server.
func TestBulkExportRefused(t *testing.T) {
	f, _ := newBulkFixture(t)
	tok := f.token("system/Patient.rs system/Observation.rs", nil)
	async := []string{"Prefer", "respond-async"}
	for _, c := range []struct {
		name, method, target string
		tok                  string
		hdr                  []string
		status               int
	}{
		{"no Prefer", "GET", "/$export", tok, nil, 400},
		{"Prefer of another kind", "GET", "/$export", tok, []string{"Prefer", "return=minimal"}, 400},
		{"a type not allowed", "GET", "/$export?_type=Patient,Condition", tok, async, 403},
		{"a type by case", "GET", "/$export?_type=observation", tok, async, 400},
		{"an empty type", "GET", "/$export?_type=Patient,", tok, async, 400},
		{"a _typeFilter's result parameter", "GET", "/$export?_type=Observation&_typeFilter=Observation%3F_sort%3Ddate", tok, async, 400},
		{"_elements not of root elements", "GET", "/$export?_elements=Observation.code.coding", tok, async, 400},
		{"patient", "GET", "/Patient/$export?patient=Patient/p1", tok, async, 400},
		{"another format", "GET", "/$export?_outputFormat=application/fhir%2Bjson", tok, async, 400},
		{"a bad _since", "GET", "/$export?_since=yesterday", tok, async, 400},
		{"_since twice", "GET", "/$export?_since=2026-01-01T00:00:00Z&_since=2025-01-01T00:00:00Z", tok, async, 400},
		{"a type's export", "GET", "/Observation/$export", tok, async, 403},
		{"a Patient's", "GET", "/Patient/p1/$export", tok, async, 403},
		{"patient context", "GET", "/$export", f.token("launch/patient patient/*.rs", nil), async, 403},
		{"a constraint the proxy cannot evaluate", "GET", "/$export?_type=Observation", f.token("system/Observation.rs?date=gt2020-01-01", nil), async, 403},
		{"a _typeFilter of a type it may not export", "GET", "/$export?_typeFilter=Condition%3Fcode%3Dx", f.token("system/Observation.rs?category=laboratory", nil), async, 403},
		{"no type exportable", "GET", "/$export", f.token("system/Observation.r system/Patient.s", nil), async, 403},
		{"a Group without Group read", "GET", "/Group/g1/$export", tok, async, 403},
		{"no token", "GET", "/$export", "", async, 401},
		{"a user/ token (Proxy.UserExports off)", "GET", "/$export?_type=Observation", f.token("user/Observation.rs", nil), async, 403},
	} {
		f.refused(c.name, f.do(c.method, c.target, c.tok, "", c.hdr...), c.status)
	}
	// A Group the clearance withholds reads as a missing one, and is not
	// exported; one it allows is.
	grouped := f.token("system/Group.r system/Patient.rs", nil)
	r := f.do("GET", "/Group/secret/$export", grouped, "", async...)
	if got := f.up.requests(); r.status != http.StatusNotFound || len(got) != 1 || got[0].URL.Path != "/Group/secret" {
		t.Errorf("a withheld Group: %d %s, upstream %v", r.status, r.raw, got)
	}
	f.up.reset()
	if r := f.do("GET", "/Group/g1/$export", grouped, "", async...); r.status != http.StatusAccepted {
		t.Errorf("a Group: %d %s", r.status, r.raw)
	}
	// A host may let user/ tokens export too.
	f.proxy.UserExports = true
	r = f.do("GET", "/$export?_type=Observation", f.token("user/Observation.rs", nil), "", async...)
	if r.status != http.StatusAccepted {
		t.Errorf("a user/ token with UserExports: %d %s", r.status, r.raw)
	}
	// Its status link shows nothing it carries (sealed): not the user's
	// id, which logs would keep, nor the server's paths.
	link, _ := url.Parse(r.header.Get("Content-Location"))
	raw, err := base64.RawURLEncoding.DecodeString(link.Query().Get("_job"))
	for _, shown := range []string{`"u1"`, audit.Ref("u1"), "Subject", "poll-status", "_jobId"} {
		if err != nil || strings.Contains(string(raw), shown) || strings.Contains(link.RawQuery, shown) {
			t.Errorf("a user's status link shows %q: %s (%v)", shown, link, err)
		}
	}
}

// TestBulkExportOnTheProxysBase: a FHIR server told the proxy's address
// as its own (as HAPI's server_address is set behind a gateway) writes
// its status and file URLs there; the proxy follows them on the server.
func TestBulkExportOnTheProxysBase(t *testing.T) {
	f, bs := newBulkFixture(t)
	tok := f.token("system/Observation.rs", nil)
	bs.mu.Lock()
	bs.kickOff = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Location", f.base+"/$export-poll-status?_jobId=j2")
		w.WriteHeader(http.StatusAccepted)
	}
	bs.polls = 1
	bs.manifest = func(string) map[string]any { return bulkManifest(f.base) }
	bs.mu.Unlock()
	r := f.do("GET", "/$export?_type=Observation", tok, "", "Prefer", "respond-async")
	status := f.proxyPath(r.header.Get("Content-Location"))
	r = f.do("GET", status, tok, "")
	var m struct {
		Request string
		Output  []map[string]string
	}
	if err := json.Unmarshal([]byte(r.raw), &m); err != nil || len(m.Output) != 1 || m.Request != f.base+"/$export?_type=Observation" {
		t.Fatalf("manifest: %d %s", r.status, r.raw)
	}
	r = f.do("GET", f.proxyPath(m.Output[0]["url"]), tok, "")
	if ids := ndjsonIDs(t, r.raw); len(ids) != 3 {
		t.Errorf("file: %v", ids)
	}
	got := f.up.requests()
	var paths []string
	for _, g := range got {
		paths = append(paths, g.URL.Path+"?"+g.URL.RawQuery)
	}
	if !slices.Equal(paths, []string{"/base/$export?_type=Observation", "/base/$export-poll-status?_jobId=j2", "/base/files/Observation.ndjson?"}) {
		t.Errorf("the server got %v", paths)
	}
}

// TestBulkExportUpstream: a server whose export the proxy cannot follow
// or judge is refused (502), and a file that stops being NDJSON is cut.
func TestBulkExportUpstream(t *testing.T) {
	f, bs := newBulkFixture(t)
	tok := f.token("system/Patient.rs system/Observation.rs", nil)
	async := []string{"Prefer", "respond-async"}
	kick := func(name string, h http.HandlerFunc) {
		bs.mu.Lock()
		bs.kickOff = h
		bs.mu.Unlock()
		if r := f.do("GET", "/$export", tok, "", async...); r.status != http.StatusBadGateway || r.header.Get("Content-Location") != "" {
			t.Errorf("%s: %d %v %s", name, r.status, r.header, r.raw)
		}
	}
	kick("a status on a base that only begins like the proxy's", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Location", f.base+"x/$export-poll-status?_jobId=j1")
		w.WriteHeader(http.StatusAccepted)
	})
	kick("a status elsewhere", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Location", "http://elsewhere.invalid/status/1")
		w.WriteHeader(http.StatusAccepted)
	})
	kick("no status", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	kick("answered at once", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		_, _ = io.WriteString(w, ndjson(f.up.resources["Patient/p2"]))
	})
	bs.mu.Lock()
	bs.kickOff = nil
	bs.polls = 1
	bs.mu.Unlock()
	status := f.proxyPath(f.do("GET", "/$export", tok, "", async...).header.Get("Content-Location"))
	manifest := func(name string, m func(base string) map[string]any) {
		bs.mu.Lock()
		bs.manifest = m
		bs.mu.Unlock()
		if r := f.do("GET", status, tok, ""); r.status != http.StatusBadGateway || strings.Contains(r.raw, "files/") {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	manifest("a file elsewhere", func(base string) map[string]any {
		m := bulkManifest(base)
		m["output"] = append(m["output"].([]any), map[string]any{"type": "Observation", "url": "https://bucket.invalid/o.ndjson"})
		return m
	})
	manifest("an unknown type", func(base string) map[string]any {
		m := bulkManifest(base)
		m["output"] = []any{map[string]any{"type": "observation", "url": base + "/files/Observation.ndjson"}}
		return m
	})
	manifest("not a manifest", func(string) map[string]any { return map[string]any{"resourceType": "Bundle"} })
	// A request elsewhere (the server's internal address) does not go out:
	// the manifest names the kick-off on the proxy's base.
	bs.mu.Lock()
	bs.manifest = func(base string) map[string]any {
		m := bulkManifest(base)
		m["request"] = "http://fhir.internal.invalid:8080/fhir/$export?_type=Patient"
		return m
	}
	bs.mu.Unlock()
	if r := f.do("GET", status, tok, ""); r.status != http.StatusOK || r.body["request"] != f.base+"/$export" || strings.Contains(r.raw, "internal") {
		t.Errorf("a request elsewhere: %d %s", r.status, r.raw)
	}
	bs.mu.Lock()
	bs.manifest = nil
	bs.mu.Unlock()
	var m struct{ Output []map[string]string }
	_ = json.Unmarshal([]byte(f.do("GET", status, tok, "").raw), &m)
	obsFile := ""
	for _, o := range m.Output {
		if o["type"] == "Observation" {
			obsFile = f.proxyPath(o["url"])
		}
	}
	bs.mu.Lock()
	bs.fileType = "application/fhir+json"
	bs.mu.Unlock()
	if r := f.do("GET", obsFile, tok, ""); r.status != http.StatusBadGateway || strings.Contains(r.raw, "lab-1") {
		t.Errorf("a file in another format: %d %s", r.status, r.raw)
	}
	bs.mu.Lock()
	bs.fileType = ""
	bs.files["/files/Observation.ndjson"] = ndjson(obs("lab-1", "p1", "laboratory")) + `{"resourceType":"Observation","id":"x"` + "\n" + ndjson(obs("lab-2", "p2", "laboratory"))
	bs.mu.Unlock()
	f.audit.Reset()
	// The transfer fails, before the status (the client's Transport may
	// then send the request again, on a reused connection, to the same
	// end) or after it; nothing after the broken line goes, and each cut
	// is audited with why.
	body, err := f.download(obsFile, tok)
	if err == nil || strings.Contains(string(body), "lab-2") {
		t.Errorf("a file with a broken line: read %q, %v; want a failed transfer, nothing after the line", body, err)
	}
	waitFor(t, func() bool { return len(f.audit.Of(audit.ResourceRefused)) > 0 })
	for _, ev := range f.audit.Of(audit.ResourceRefused) {
		if ev.Outcome != audit.Failure || ev.Reason != "export file cut: the FHIR server sent a line that is not one JSON resource (1 resources judged to go before it, 0 left out)" {
			t.Errorf("the cut audited as %+v", ev)
		}
	}
}
