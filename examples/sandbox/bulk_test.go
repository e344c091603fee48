package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/client"
)

// TestBulkExportThroughTheProxy: the example backend exports its panel
// (Group/grp-panel/$export) through the proxy with smart/client. Each file
// holds exactly what the same token's searches find, so pt-sensitive's HIV
// test (labelled beyond the backend's default clearance) is not in it,
// though the data server wrote it; and nothing of a patient outside the
// panel is.
func TestBulkExportThroughTheProxy(t *testing.T) {
	sb := startSandbox(t)
	job := exampleBackend(t, sb, "system/Patient.rs", "system/Observation.rs", "system/Group.r")
	ctx := context.Background()
	hc := job.Client(ctx)
	export, m, files := exportThrough(t, sb, hc, "/Group/"+PanelGroup+"/$export?_type=Patient,Observation")
	if len(m.Output) != 2 || m.Output[0].Type != "Patient" || m.Output[1].Type != "Observation" || m.Output[1].Count != nil {
		t.Fatalf("manifest %+v", m)
	}
	exported := map[string][]string{} // type → ids, in file order
	for typ, lines := range files {
		for _, res := range lines {
			exported[typ] = append(exported[typ], idOf(res))
		}
	}
	// What the same token finds by searching the panel's patients.
	for typ, query := range map[string]string{"Patient": "_id=" + panel, "Observation": panelSubjects} {
		want, got := searched(t, sb, hc, typ, query), slices.Clone(exported[typ])
		slices.Sort(want)
		slices.Sort(got)
		if len(got) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: exported %v, searched %v", typ, got, want)
		}
	}
	if slices.Contains(exported["Observation"], "pt-sensitive-hiv") {
		t.Error("the HIV test went out in the export")
	}
	sb.fhir.mu.RLock()
	written := 0
	for _, j := range sb.fhir.jobs {
		written += strings.Count(string(j.files["Observation"]), "pt-sensitive-hiv")
	}
	sb.fhir.mu.RUnlock()
	if written != 1 {
		t.Errorf("the data server wrote the HIV test %d times in the export's file (the proxy must be what withholds it)", written)
	}
	if err := export.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	sb.fhir.mu.RLock()
	left := len(sb.fhir.jobs)
	sb.fhir.mu.RUnlock()
	if left != 0 {
		t.Errorf("the cancelled export is still held (%d)", left)
	}
	// A type beyond the scopes is not exported, nor anything for a patient app.
	if _, err := client.StartExport(ctx, hc, sb.FHIRBase+"/$export?_type=Condition"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("an export of a type beyond the scopes: %v", err)
	}
	resp := callWith(t, patientToken(t, sb, "launch/patient patient/*.rs"), "GET", sb.FHIRBase+"/Patient/$export", "", "Prefer", "respond-async")
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("a patient app's export: %d", resp.StatusCode)
	}
}

// TestBulkExportFromObjectStorage: with Config.ExportStorage the data
// server writes its export files to an object store at another address
// and names them by pre-signed URLs, as Azure's FHIR service does; the
// proxy (ExportStorage) reads them there and judges them as any, and its
// links show the client neither the store nor the signatures.
func TestBulkExportFromObjectStorage(t *testing.T) {
	sb := startSandboxWith(t, func(c *Config) { c.ExportStorage = true })
	ctx := context.Background()
	hc := exampleBackend(t, sb, "system/Patient.rs", "system/Observation.rs", "system/Group.r").Client(ctx)
	_, m, files := exportThrough(t, sb, hc, "/Group/"+PanelGroup+"/$export?_type=Patient,Observation")
	if len(m.Output) != 2 || len(files["Patient"]) != 3 || len(files["Observation"]) == 0 {
		t.Fatalf("manifest %+v, %d patients, %d observations", m, len(files["Patient"]), len(files["Observation"]))
	}
	for _, res := range files["Observation"] {
		if idOf(res) == "pt-sensitive-hiv" {
			t.Error("the HIV test went out in the export")
		}
	}
	for _, f := range m.Output {
		if strings.Contains(f.URL, "sig") || strings.Contains(f.URL, strings.TrimPrefix(sb.fhir.objects.url, "http://")) {
			t.Errorf("the client's link shows the store: %s", f.URL)
		}
	}
	// The data server's own manifest names the store, pre-signed.
	sb.fhir.mu.RLock()
	var jobID string
	for id := range sb.fhir.jobs {
		jobID = id
	}
	sb.fhir.mu.RUnlock()
	rec := httptest.NewRecorder()
	sb.fhir.ServeHTTP(rec, httptest.NewRequest("GET", "/$export-poll-status?_jobId="+jobID, nil))
	var own struct{ Output []struct{ URL string } }
	if err := json.Unmarshal(rec.Body.Bytes(), &own); err != nil || len(own.Output) != 2 {
		t.Fatalf("the data server's manifest: %s", rec.Body)
	}
	for _, f := range own.Output {
		if !strings.HasPrefix(f.URL, sb.fhir.objects.prefix()) || !strings.Contains(f.URL, "?sig=") {
			t.Errorf("the data server named %s", f.URL)
		}
		// The store asks for its signature.
		unsigned, _, _ := strings.Cut(f.URL, "?")
		resp, err := http.Get(unsigned)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("the store served %s unsigned: %d", unsigned, resp.StatusCode)
		}
	}
}

// panel is the ids of PanelGroup's members; panelSubjects searches their
// records.
const (
	panel         = "pt-001,pt-002,pt-sensitive"
	panelSubjects = "subject=Patient/pt-001,Patient/pt-002,Patient/pt-sensitive"
)

// exportThrough runs an export (kickOff, on the FHIR base) through the
// proxy with hc and returns it, its manifest and each file's resources by
// type; the status and file links must be the proxy's, and each file must
// hold only its type.
func exportThrough(t *testing.T, sb *Sandbox, hc *http.Client, kickOff string) (*client.Export, *client.Manifest, map[string][]json.RawMessage) {
	t.Helper()
	export, err := client.StartExport(context.Background(), hc, sb.FHIRBase+kickOff)
	if err != nil {
		t.Fatal(err)
	}
	m, files := exportFiles(t, sb, hc, export)
	return export, m, files
}

// exportFiles waits for an export started through the proxy and returns
// its manifest and each file's resources by type, as exportThrough.
func exportFiles(t *testing.T, sb *Sandbox, hc *http.Client, export *client.Export) (*client.Manifest, map[string][]json.RawMessage) {
	t.Helper()
	ctx := context.Background()
	if !strings.HasPrefix(export.Status, sb.FHIRBase+"/$export-poll-status?_job=") {
		t.Fatalf("status URL %s", export.Status)
	}
	m, err := export.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]json.RawMessage{}
	for _, f := range m.Output {
		if !strings.HasPrefix(f.URL, sb.FHIRBase+"/$export-file?_file=") {
			t.Fatalf("file URL %s", f.URL)
		}
		body, err := client.Download(ctx, hc, f)
		if err != nil {
			t.Fatal(err)
		}
		for res, err := range client.Resources(body) {
			if err != nil {
				t.Fatal(err)
			}
			var r struct{ ResourceType string }
			_ = json.Unmarshal(res, &r)
			if r.ResourceType != f.Type {
				t.Errorf("%s in the %s file", r.ResourceType, f.Type)
			}
			files[f.Type] = append(files[f.Type], res)
		}
		body.Close()
	}
	return m, files
}

// idOf is a resource's id.
func idOf(res json.RawMessage) string {
	var r struct{ ID string }
	_ = json.Unmarshal(res, &r)
	return r.ID
}

// searched is the ids of what a search of typ (query, on the FHIR base)
// finds with hc, through the proxy.
func searched(t *testing.T, sb *Sandbox, hc *http.Client, typ, query string) []string {
	t.Helper()
	resp, err := hc.Get(sb.FHIRBase + "/" + typ + "?" + query + "&_count=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		Entry []struct{ Resource json.RawMessage }
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("search %s?%s: %d %v", typ, query, resp.StatusCode, err)
	}
	var ids []string
	for _, e := range b.Entry {
		ids = append(ids, idOf(e.Resource))
	}
	return ids
}

// TestBulkExportFiltered: a backend service narrows its export with
// _typeFilter, and one whose scope is query-constrained exports too (the
// proxy asks the data server for the constraint's matches with
// _typeFilter, which the sandbox's server runs): each file holds exactly
// what the same token's search finds.
func TestBulkExportFiltered(t *testing.T) {
	sb := startSandbox(t)
	all := searched(t, sb, exampleBackend(t, sb, "system/Observation.rs").Client(context.Background()), "Observation", panelSubjects)
	for _, c := range []struct {
		name, scope, kickOff, search string
	}{
		{"the client's filter", "system/Observation.rs",
			"/Group/" + PanelGroup + "/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?category=vital-signs"),
			panelSubjects + "&category=vital-signs"},
		{"a constrained scope", "system/Observation.rs?category=laboratory",
			"/Group/" + PanelGroup + "/$export?_type=Observation", panelSubjects + "&category=laboratory"},
		{"both: the filter within the constraint", "system/Observation.rs?category=laboratory,vital-signs",
			"/Group/" + PanelGroup + "/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?category=vital-signs"),
			panelSubjects + "&category=vital-signs"},
	} {
		hc := exampleBackend(t, sb, c.scope, "system/Group.r").Client(context.Background())
		_, _, files := exportThrough(t, sb, hc, c.kickOff)
		var got []string
		for _, res := range files["Observation"] {
			got = append(got, idOf(res))
		}
		want := searched(t, sb, hc, "Observation", c.search)
		slices.Sort(got)
		slices.Sort(want)
		if len(got) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: exported %v, searched %v", c.name, got, want)
		}
		if len(got) >= len(all) {
			t.Errorf("%s: exported %d of the panel's %d Observations", c.name, len(got), len(all))
		}
	}
}

// TestBulkExportElements: an export with _elements=code comes back
// subsetted by the data server, which keeps only what the list names. The
// proxy adds meta and subject to the list, so the HIV test keeps its labels
// and stays out, and each line still names its patient.
func TestBulkExportElements(t *testing.T) {
	sb := startSandbox(t)
	hc := exampleBackend(t, sb, "system/Observation.rs", "system/Group.r").Client(context.Background())
	_, _, files := exportThrough(t, sb, hc, "/Group/"+PanelGroup+"/$export?_type=Observation&_elements=code")
	var got []string
	for _, res := range files["Observation"] {
		var r struct {
			ID      string
			Code    json.RawMessage
			Subject struct{ Reference string }
			Value   json.RawMessage `json:"valueQuantity"`
			Meta    struct{ Tag []struct{ Code string } }
		}
		_ = json.Unmarshal(res, &r)
		if r.Code == nil || r.Subject.Reference == "" || r.Value != nil || len(r.Meta.Tag) == 0 || r.Meta.Tag[len(r.Meta.Tag)-1].Code != "SUBSETTED" {
			t.Errorf("not subsetted to code, subject and meta: %s", res)
		}
		got = append(got, r.ID)
	}
	want := searched(t, sb, hc, "Observation", panelSubjects)
	slices.Sort(got)
	slices.Sort(want)
	if len(got) == 0 || !slices.Equal(got, want) {
		t.Errorf("exported %v, searched %v", got, want)
	}
	sb.fhir.mu.RLock()
	written := 0
	for _, j := range sb.fhir.jobs {
		written += strings.Count(string(j.files["Observation"]), `"id":"pt-sensitive-hiv"`)
	}
	sb.fhir.mu.RUnlock()
	if written != 1 {
		t.Errorf("the data server wrote the HIV test %d times", written)
	}
}

// TestBulkExportPatients: the backend exports two of its panel's patients
// with a POSTed kick-off (client.PostExport). The proxy reads the patients
// first (the backend's clearance is short of every label) and sends the
// kick-off on as a POST naming them, which the data server runs; a patient
// outside the panel is the server's 400, one it does not hold the proxy's
// 404.
func TestBulkExportPatients(t *testing.T) {
	sb := startSandbox(t)
	hc := exampleBackend(t, sb, "system/Patient.rs", "system/Observation.rs", "system/Group.r").Client(context.Background())
	ctx := context.Background()
	group := sb.FHIRBase + "/Group/" + PanelGroup + "/$export"
	export, err := client.PostExport(ctx, hc, group, client.ExportParams{Types: []string{"Observation"}, Patients: []string{"Patient/pt-001", "Patient/pt-002"}})
	if err != nil {
		t.Fatal(err)
	}
	m, files := exportFiles(t, sb, hc, export)
	var got []string
	for _, res := range files["Observation"] {
		got = append(got, idOf(res))
	}
	if len(m.Output) != 1 {
		t.Errorf("manifest %+v", m)
	}
	want := searched(t, sb, hc, "Observation", "subject=Patient/pt-001,Patient/pt-002")
	slices.Sort(got)
	slices.Sort(want)
	if len(got) == 0 || !slices.Equal(got, want) {
		t.Errorf("exported %v, searched %v", got, want)
	}
	var ee *client.ExportError
	if _, err := client.PostExport(ctx, hc, group, client.ExportParams{Patients: []string{"Patient/pt-003"}}); !errors.As(err, &ee) || ee.Status != http.StatusBadRequest {
		t.Errorf("a patient outside the panel: %v", err)
	}
	if _, err := client.PostExport(ctx, hc, group, client.ExportParams{Patients: []string{"Patient/nobody"}}); !errors.As(err, &ee) || ee.Status != http.StatusNotFound {
		t.Errorf("a patient the server does not hold: %v", err)
	}
}

// TestBulkExportSinceNotice: the backend's incremental export (with
// _since) lists, among its errors, the proxy's notice that deletions are
// not relayed to its clearance, which it downloads as any file.
func TestBulkExportSinceNotice(t *testing.T) {
	sb := startSandbox(t)
	hc := exampleBackend(t, sb, "system/Observation.rs", "system/Group.r").Client(context.Background())
	_, m, _ := exportThrough(t, sb, hc, "/Group/"+PanelGroup+"/$export?_type=Observation&_since=2000-01-01T00:00:00Z")
	if len(m.Error) != 1 || m.Error[0].Type != "OperationOutcome" {
		t.Fatalf("manifest errors %+v", m.Error)
	}
	body, err := client.Download(context.Background(), hc, m.Error[0])
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	var issues []string
	for res, err := range client.Resources(body) {
		if err != nil {
			t.Fatal(err)
		}
		var oo struct {
			Issue []struct{ Code, Diagnostics string }
		}
		_ = json.Unmarshal(res, &oo)
		for _, i := range oo.Issue {
			issues = append(issues, i.Code)
		}
	}
	if !slices.Equal(issues, []string{"suppressed"}) {
		t.Errorf("the notice's issues: %v", issues)
	}
}

// bearer sends every request with one access token.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// TestBulkExportDeletions: an incremental export (_since) lists the
// records deleted since, as the Bulk Data IG has it, in a file of
// transaction Bundles of DELETEs: through the proxy to a backend that sees
// every record, the panel's reading a clinician deleted, and nothing
// deleted before _since or of a type not exported; to one of the default
// clearance, no such file (a deleted record's labels are gone with it),
// and the proxy's notice instead.
func TestBulkExportDeletions(t *testing.T) {
	sb := startSandbox(t)
	every := everyLabel()
	ctx := context.Background()
	mint := func(g smart.Grant) string {
		t.Helper()
		g.Audience = sb.FHIRBase
		tok, err := sb.Auth.Mint(ctx, "", g, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	clinician := mint(smart.Grant{ClientID: ExampleAppID, UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/*.cruds"})
	del := func(target string) {
		t.Helper()
		if code, b := fhirCall(t, clinician, http.MethodDelete, sb.FHIRBase+"/"+target, ""); code != http.StatusNoContent {
			t.Fatalf("%s: %d %s", target, code, b)
		}
	}
	del("Observation/pt-002-vs-000") // before _since
	time.Sleep(1100 * time.Millisecond)
	since := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	del("Observation/pt-001-vs-001")       // the panel's, of a type exported
	del("Observation/pt-003-vs-001")       // not the panel's
	del("AllergyIntolerance/pt-001-alg-1") // the panel's, of a type not exported
	kickOff := "/Group/" + PanelGroup + "/$export?_type=Observation&_since=" + since
	hc := &http.Client{Transport: bearer(mint(smart.Grant{ClientID: BackendID, Scope: "system/*.rs", Clearance: every}))}
	_, m, files := exportThrough(t, sb, hc, kickOff)
	if len(m.Deleted) != 1 || len(m.Error) != 0 || len(files["Observation"]) != 0 {
		t.Fatalf("the manifest: %+v, %d records", m, len(files["Observation"]))
	}
	body, err := client.Download(ctx, hc, m.Deleted[0])
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for res, err := range client.Resources(body) {
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Type  string
			Entry []struct{ Request struct{ Method, URL string } }
		}
		if err := json.Unmarshal(res, &b); err != nil || b.Type != "transaction" {
			t.Fatalf("a line of the deletions: %s", res)
		}
		for _, e := range b.Entry {
			deleted = append(deleted, e.Request.Method+" "+e.Request.URL)
		}
	}
	body.Close()
	if want := []string{"DELETE Observation/pt-001-vs-001"}; !slices.Equal(deleted, want) {
		t.Errorf("deleted %q, want %q", deleted, want)
	}
	// The example backend, of the default clearance: no deletions, a notice.
	_, m, _ = exportThrough(t, sb, exampleBackend(t, sb, "system/Observation.rs", "system/Group.r").Client(ctx), kickOff)
	if len(m.Deleted) != 0 || len(m.Error) != 1 {
		t.Errorf("the default clearance's manifest: %+v", m)
	}
}

// TestBulkExportProvenances: includeAssociatedData exports the Provenances
// of what is exported, in a Provenance file of their own, as the Bulk Data
// IG has it: directly, the panel's conditions' Provenances, that of
// pt-sensitive's substance-use condition too; through the proxy, to a
// backend of the default clearance, not that one, whose condition the
// clearance withholds. Before, the data server refused the parameter.
func TestBulkExportProvenances(t *testing.T) {
	sb := startSandbox(t)
	ts := httptest.NewServer(sb.fhir)
	defer ts.Close()
	kickOff := "/Group/" + PanelGroup + "/$export?_type=Condition&includeAssociatedData=LatestProvenanceResources"
	code, _, hdr := send(t, ts, http.MethodGet, kickOff, "", "", "Prefer", "respond-async")
	if code != http.StatusAccepted {
		t.Fatalf("directly: %d", code)
	}
	_, jobID, _ := strings.Cut(hdr.Get("Content-Location"), "_jobId=")
	sb.fhir.mu.RLock()
	direct := string(sb.fhir.jobs[jobID].files["Provenance"])
	sb.fhir.mu.RUnlock()
	for _, id := range []string{"pt-001-cond-1-prov", "pt-002-cond-1-prov", "pt-sensitive-sud-prov"} {
		if !strings.Contains(direct, `"id":"`+id+`"`) {
			t.Errorf("directly, %s is not in the Provenance file: %.300s", id, direct)
		}
	}
	if strings.Contains(direct, "pt-003") {
		t.Errorf("directly, a Provenance of a record not exported: %.300s", direct)
	}
	if code, _, _ := send(t, ts, http.MethodGet, "/$export?includeAssociatedData=Everything", "", "", "Prefer", "respond-async"); code != http.StatusBadRequest {
		t.Errorf("another value: %d", code)
	}
	tok, err := sb.Auth.Mint(context.Background(), "", smart.Grant{ClientID: BackendID, Audience: sb.FHIRBase, Scope: "system/Condition.rs system/Provenance.rs system/Group.r"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, _, files := exportThrough(t, sb, &http.Client{Transport: bearer(tok)}, kickOff)
	var ids []string
	for _, res := range files["Provenance"] {
		ids = append(ids, idOf(res))
	}
	if !slices.Contains(ids, "pt-001-cond-1-prov") || slices.Contains(ids, "pt-sensitive-sud-prov") {
		t.Errorf("through the proxy, the Provenances %v", ids)
	}
}
