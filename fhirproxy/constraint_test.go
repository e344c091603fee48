package fhirproxy

import (
	"encoding/json"
	"testing"

	"github.com/smartkit/smartkit/scopes"
)

// FuzzWriteConstraint: compiling a constraint's value and matching a
// resource against it never panics, and a match is never made up: the
// resource holds, as a string, the code (or, for system|, the system) of
// one of the value's tokens.
func FuzzWriteConstraint(f *testing.F) {
	f.Add("category", "vital-signs", `{"resourceType":"Observation","category":[{"coding":[{"code":"vital-signs"}]}]}`)
	f.Add("category", "http://x|vital-signs,|lab", `{"category":[{"coding":[{"system":"http://x","code":"vital-signs"},{"code":"lab"}]}]}`)
	f.Add("status", "final", `{"status":"final"}`)
	f.Add("_tag", "http://x|", `{"meta":{"tag":[{"system":"http://x","code":"a"}]}}`)
	f.Add("category", "a,b", `{"category":[[{"coding":{"code":"a"}}]]}`)
	f.Fuzz(func(t *testing.T, name, value, resource string) {
		tt, ok := compileTest("Observation", scopes.Param{Name: name, Value: value})
		if !ok {
			return
		}
		lc := &localConstraint{alts: [][]tokenTest{{tt}}}
		if !lc.matches([]byte(resource)) {
			return
		}
		var v any
		if json.Unmarshal([]byte(resource), &v) != nil {
			t.Fatalf("%q matched JSON that does not decode", resource)
		}
		strs := map[string]bool{}
		var walk func(any)
		walk = func(x any) {
			switch x := x.(type) {
			case string:
				strs[x] = true
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		walk(v)
		for _, tv := range tt.values {
			if tv.code != "" && strs[tv.code] || tv.code == "" && strs[tv.system] {
				return
			}
		}
		t.Fatalf("%s=%s matched %s, which holds none of its codes", name, value, resource)
	})
}
