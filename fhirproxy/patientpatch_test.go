package fhirproxy_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestPatientPatches: a patient app may PATCH its patient's records with a
// JSON Patch. The proxy applies it to the stored version it judged, checks
// the result as an update's content (in the compartment, within the
// clearance, labels and links kept, what it refers to), and sends the
// result as the update, pinned to that version: the FHIR server's reading
// of the patch never matters. A FHIRPath Patch, which the proxy does not
// evaluate, is refused with patient context.
func TestPatientPatches(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.cruds patient/Patient.ru", nil)
	jsonPatch := []string{"Content-Type", "application/json-patch+json"}
	r := f.do("PATCH", "/Observation/lab-1", tok, `[{"op":"test","path":"/status","value":"final"},{"op":"replace","path":"/status","value":"amended"}]`, jsonPatch...)
	if r.status != 200 {
		t.Fatalf("a patch of the patient's record: %d %s", r.status, r.raw)
	}
	sent := map[string]any{}
	if err := json.Unmarshal([]byte(f.up.bodies[len(f.up.bodies)-1]), &sent); err != nil {
		t.Fatal(err)
	}
	if got := f.writes(); len(got) != 1 || got[0] != `PUT /Observation/lab-1 W/"1"` {
		t.Fatalf("the patch went upstream as %q", got)
	}
	want := obs("lab-1", "p1", "laboratory")
	want["status"] = "amended"
	if mustJSON(sent) != mustJSON(want) {
		t.Errorf("the update sent is %s, want %s", mustJSON(sent), mustJSON(want))
	}

	// Refused, nothing written: the result is judged, whatever the patch's
	// operations look like.
	var alike []string
	for _, c := range []struct {
		name, target, patch string
		status              int
	}{
		{"moving the record to another patient", "/Observation/lab-1", `[{"op":"replace","path":"/subject/reference","value":"Patient/p2"}]`, 403},
		{"moving it by a copy", "/Observation/lab-1", `[{"op":"add","path":"/focus","value":[{"reference":"Patient/p2"}]},{"op":"copy","from":"/focus/0","path":"/subject"}]`, 403},
		{"taking it out of the compartment", "/Observation/lab-1", `[{"op":"remove","path":"/subject"}]`, 403},
		{"naming another patient", "/Observation/lab-1", `[{"op":"add","path":"/performer","value":[{"reference":"Patient/p2"}]}]`, 403},
		{"naming a withheld record", "/Observation/lab-1", `[{"op":"add","path":"/hasMember","value":[{"reference":"Observation/psy-1"}]}]`, 403},
		{"naming one by a search", "/Observation/lab-1", `[{"op":"add","path":"/hasMember","value":[{"reference":"Observation?code=x"}]}]`, 403},
		{"labelling it beyond the clearance", "/Observation/lab-1", `[{"op":"add","path":"/meta","value":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}]`, 403},
		{"changing its id", "/Observation/lab-1", `[{"op":"replace","path":"/id","value":"lab-9"}]`, 400},
		{"making it invalid", "/Observation/lab-1", `[{"op":"remove","path":"/status"}]`, 400},
		{"a failed test", "/Observation/lab-1", `[{"op":"test","path":"/status","value":"preliminary"},{"op":"remove","path":"/code"}]`, 422},
		{"a path to nothing", "/Observation/lab-1", `[{"op":"remove","path":"/note/0"}]`, 422},
		{"a link of the patient's record", "/Patient/p1", `[{"op":"add","path":"/link","value":[{"other":{"reference":"Patient/p2"},"type":"seealso"}]}]`, 403},
		{"another patient's record", "/Observation/lab-2", `[{"op":"replace","path":"/status","value":"amended"}]`, 404},
		{"a withheld record", "/Observation/psy-1", `[{"op":"replace","path":"/status","value":"amended"}]`, 404},
		{"a free id", "/Observation/fresh", `[{"op":"replace","path":"/status","value":"amended"}]`, 404},
		{"another Patient", "/Patient/p2", `[{"op":"replace","path":"/active","value":true}]`, 404},
		{"a FHIRPath Patch", "/Observation/lab-1", fhirPathPatch("delete", "Observation.status"), 403},
	} {
		hdr := jsonPatch
		if strings.HasPrefix(c.patch, "{") {
			hdr = nil
		}
		r := f.do("PATCH", c.target, tok, c.patch, hdr...)
		if r.status != c.status || r.body["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		f.onlyReads(c.name)
		if c.status == 404 && strings.HasPrefix(c.target, "/Observation") {
			alike = append(alike, r.raw)
		}
	}
	for _, a := range alike[1:] {
		if a != alike[0] {
			t.Errorf("answers differ: %s and %s", alike[0], a)
		}
	}

	// A label may not be lowered, whatever the clearance.
	cleared := f.token("launch/patient patient/Observation.cruds", everyLabel())
	if r := f.do("PATCH", "/Observation/psy-1", cleared, `[{"op":"remove","path":"/meta"}]`, jsonPatch...); r.status != http.StatusForbidden {
		t.Errorf("a patch removing the labels of the patient's record: %d %s", r.status, r.raw)
	}
	f.onlyReads("a patch removing the labels")
	if r := f.do("PATCH", "/Observation/psy-1", cleared, `[{"op":"replace","path":"/status","value":"amended"}]`, jsonPatch...); r.status != 200 {
		t.Errorf("a patch of a labelled record keeping its labels: %d %s", r.status, r.raw)
	}
	f.up.reset()

	// Batched, the entry goes as the update it makes, pinned.
	binary := `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` +
		base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/status","value":"amended"}]`)) + `"}`
	if r := f.do("POST", "/", tok, bundle("", entry("", "PATCH", "Observation/vs-1", binary))); r.status != 200 {
		t.Fatalf("a batched patch: %d %s", r.status, r.raw)
	}
	e := f.sentEntries()
	if len(e) != 1 || e[0].Request["method"] != "PUT" || e[0].Request["url"] != "Observation/vs-1" || e[0].Request["ifMatch"] != `W/"1"` ||
		e[0].Resource["status"] != "amended" || e[0].Resource["id"] != "vs-1" {
		t.Errorf("the batched patch went upstream as %+v", e)
	}
}
