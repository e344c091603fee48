package fhirproxy

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// FuzzOperationBody: parseOperationBody never panics, and a body it accepts
// is strict JSON, a Parameters whose every parameter is one the operation
// takes, carrying nothing the proxy did not read: no resource, part or
// extension at any depth, no member but resourceType and parameter.
func FuzzOperationBody(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Parameters","parameter":[{"name":"url","valueUri":"http://x"},{"name":"coding","valueCoding":{"code":"a"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"codeableConcept","valueCodeableConcept":{"coding":[{"system":"s","code":"a"}],"text":"t"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"valueSet","resource":{"resourceType":"ValueSet"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"count","valueInteger":10},{"name":"activeOnly","valueBoolean":true}]}`,
		`{"resourceType":"Parameters","id":"x"}`, `{"resourceType":"Parameters","parameter":[{"name":"x","part":[]}]}`, `[]`, `{}`,
		`{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/a"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/a","Reference":"Patient/b"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/a","display":"A"}}]}`,
	} {
		f.Add(s)
	}
	op := operations["ValueSet/$validate-code"]
	op.references = exportBody.references // patient, a Reference: read by its reference alone
	f.Fuzz(func(t *testing.T, body string) {
		params, ref := parseOperationBody(op, "application/fhir+json", []byte(body))
		if ref != nil {
			return
		}
		if jsonstrict.Check([]byte(body)) != nil {
			t.Fatalf("accepted a body that is not strict JSON: %q", body)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(body), &doc); err != nil || doc["resourceType"] != "Parameters" {
			t.Fatalf("accepted a body that is not a Parameters: %q", body)
		}
		for k := range doc {
			if k != "resourceType" && k != "parameter" {
				t.Fatalf("accepted a Parameters with %s: %q", k, body)
			}
		}
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, m := range v {
					if k == "resource" || k == "part" || k == "extension" || k == "id" {
						t.Fatalf("accepted a body with %s inside: %q", k, body)
					}
					walk(m)
				}
			case []any:
				for _, m := range v {
					walk(m)
				}
			}
		}
		walk(doc)
		items, _ := doc["parameter"].([]any)
		if len(items) != len(params) {
			t.Fatalf("%d parameters in the body, %d read: %q", len(items), len(params), body)
		}
		for i, it := range items {
			m, _ := it.(map[string]any)
			if m["name"] != params[i].Name {
				t.Fatalf("parameter %d named %q, read as %q: %q", i, m["name"], params[i].Name, body)
			}
			if slices.Contains(op.complex, params[i].Name) && params[i].Value != "" {
				t.Fatalf("complex parameter %q read with a value", params[i].Name)
			}
			if slices.Contains(op.references, params[i].Name) {
				ref, _ := m["valueReference"].(map[string]any)
				if len(m) != 2 || len(ref) != 1 || ref["reference"] != params[i].Value || params[i].Value == "" {
					t.Fatalf("parameter %q read as %q from %v: %q", params[i].Name, params[i].Value, m, body)
				}
			}
		}
	})
}
