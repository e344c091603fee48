package fhirproxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/internal/jsonstrict"
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
	f.Add("category", "a", `{"category":[[{"coding":[{"code":"a"}]}]]}`)
	f.Add("category", "|a,http://x|", `{"category":{"coding":[{"system":"http://x","code":"b"},{"code":"a","system":null}]}}`)
	f.Fuzz(func(t *testing.T, name, value, resource string) {
		tt, ok := compileTest("Observation", scopes.Param{Name: name, Value: value})
		if !ok {
			return
		}
		lc := &localConstraint{alts: [][]tokenTest{{tt}}}
		matched := lc.matches([]byte(resource))
		if name == "category" && jsonstrict.Check([]byte(resource)) == nil {
			// An independent reading of R4's token match on a repeating
			// CodeableConcept, over what encoding/json decodes.
			var doc map[string]any
			if json.Unmarshal([]byte(resource), &doc) == nil {
				if want := categoryMatches(doc, value); want != matched {
					t.Fatalf("category=%s on %s: matched %v, want %v", value, resource, matched, want)
				}
			}
		}
		if !matched {
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

// categoryMatches is R4's token match of a category search value (its
// comma-separated tokens ORed) against a resource's category codings.
func categoryMatches(doc map[string]any, value string) bool {
	cats, _ := doc["category"].([]any)
	if c, ok := doc["category"].(map[string]any); ok {
		cats = []any{c}
	}
	for _, token := range strings.Split(value, ",") {
		system, code, qualified := strings.Cut(token, "|")
		if !qualified {
			system, code = "", token
		}
		for _, c := range cats {
			cm, _ := c.(map[string]any)
			codings, _ := cm["coding"].([]any)
			for _, cd := range codings {
				m, _ := cd.(map[string]any)
				sys, hasSys := m["system"].(string)
				_, anySys := m["system"]
				cc, _ := m["code"].(string)
				switch {
				case !qualified && cc == code,
					qualified && system == "" && !anySys && cc == code,
					qualified && system != "" && code == "" && hasSys && sys == system,
					qualified && system != "" && code != "" && hasSys && sys == system && cc == code:
					return true
				}
			}
		}
	}
	return false
}
