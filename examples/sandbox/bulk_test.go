package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

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
	export, err := client.StartExport(ctx, hc, sb.FHIRBase+"/Group/"+PanelGroup+"/$export?_type=Patient,Observation")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(export.Status, sb.FHIRBase+"/$export-poll-status?_job=") {
		t.Fatalf("status URL %s", export.Status)
	}
	m, err := export.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Output) != 2 || m.Output[0].Type != "Patient" || m.Output[1].Type != "Observation" || m.Output[1].Count != nil {
		t.Fatalf("manifest %+v", m)
	}
	exported := map[string][]string{} // type → ids, in file order
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
			var r struct{ ResourceType, ID string }
			_ = json.Unmarshal(res, &r)
			if r.ResourceType != f.Type {
				t.Errorf("%s in the %s file", r.ResourceType, f.Type)
			}
			exported[f.Type] = append(exported[f.Type], r.ID)
		}
		body.Close()
	}
	// What the same token finds by searching the panel's patients.
	panel := "pt-001,pt-002,pt-sensitive"
	searched := func(typ, query string) []string {
		resp, err := hc.Get(sb.FHIRBase + "/" + typ + "?" + query + "&_count=1000")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct {
			Entry []struct{ Resource struct{ ID string } }
		}
		_ = json.NewDecoder(resp.Body).Decode(&b)
		var ids []string
		for _, e := range b.Entry {
			ids = append(ids, e.Resource.ID)
		}
		return ids
	}
	for typ, query := range map[string]string{"Patient": "_id=" + panel, "Observation": "subject=" + strings.ReplaceAll("Patient/"+panel, ",", ",Patient/")} {
		want, got := searched(typ, query), slices.Clone(exported[typ])
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
