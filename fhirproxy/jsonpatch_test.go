package fhirproxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestApplyJSONPatch: the operations of RFC 6902 as its Appendix A
// describes them, and the errors it requires.
func TestApplyJSONPatch(t *testing.T) {
	for _, c := range []struct {
		name, doc, patch, want string // want "" is an error
	}{
		{"add a member", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux"}]`, `{"baz":"qux","foo":"bar"}`},
		{"add an element", `{"foo":["bar","baz"]}`, `[{"op":"add","path":"/foo/1","value":"qux"}]`, `{"foo":["bar","qux","baz"]}`},
		{"add at the end", `{"foo":["bar"]}`, `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`, `{"foo":["bar",["abc","def"]]}`},
		{"add past the end", `{"foo":["bar"]}`, `[{"op":"add","path":"/foo/2","value":1}]`, ""},
		{"add over a member", `{"foo":1}`, `[{"op":"add","path":"/foo","value":2}]`, `{"foo":2}`},
		{"add a nested member", `{"foo":"bar"}`, `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`, `{"child":{"grandchild":{}},"foo":"bar"}`},
		{"add to a missing parent", `{"foo":"bar"}`, `[{"op":"add","path":"/baz/bat","value":"qux"}]`, ""},
		{"add the whole document", `{"foo":"bar"}`, `[{"op":"add","path":"","value":[1]}]`, `[1]`},
		{"remove a member", `{"baz":"qux","foo":"bar"}`, `[{"op":"remove","path":"/baz"}]`, `{"foo":"bar"}`},
		{"remove an element", `{"foo":["bar","qux","baz"]}`, `[{"op":"remove","path":"/foo/1"}]`, `{"foo":["bar","baz"]}`},
		{"remove what is not there", `{"foo":"bar"}`, `[{"op":"remove","path":"/baz"}]`, ""},
		{"remove with a leading zero", `{"foo":["a","b"]}`, `[{"op":"remove","path":"/foo/01"}]`, ""},
		{"replace a member", `{"baz":"qux","foo":"bar"}`, `[{"op":"replace","path":"/baz","value":"boo"}]`, `{"baz":"boo","foo":"bar"}`},
		{"replace an element", `{"a":[1,2,3]}`, `[{"op":"replace","path":"/a/1","value":9}]`, `{"a":[1,9,3]}`},
		{"replace what is not there", `{"foo":"bar"}`, `[{"op":"replace","path":"/baz","value":1}]`, ""},
		{"move a member", `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`, `[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`,
			`{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`},
		{"move an element", `{"foo":["all","grass","cows","eat"]}`, `[{"op":"move","from":"/foo/1","path":"/foo/3"}]`, `{"foo":["all","cows","eat","grass"]}`},
		{"move into itself", `{"a":{"b":1}}`, `[{"op":"move","from":"/a","path":"/a/c"}]`, ""},
		{"copy apart", `{"a":{"b":1}}`, `[{"op":"copy","from":"/a","path":"/c"},{"op":"add","path":"/c/b","value":2}]`, `{"a":{"b":1},"c":{"b":2}}`},
		{"test success", `{"baz":"qux","foo":["a",2,"c"]}`, `[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]`, `{"baz":"qux","foo":["a",2,"c"]}`},
		{"test failure", `{"baz":"qux"}`, `[{"op":"test","path":"/baz","value":"bar"}]`, ""},
		{"test of a string and a number", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":"10"}]`, ""},
		{"escapes", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":10},{"op":"remove","path":"/~1"}]`, `{"~1":10}`},
		{"numbers by value", `{"n":1.0}`, `[{"op":"test","path":"/n","value":1}]`, `{"n":1.0}`},
		{"numbers by value, exponents", `{"n":1.50,"z":-0.0e7}`, `[{"op":"test","path":"/n","value":0.15E+1},{"op":"test","path":"/n","value":150e-2},{"op":"test","path":"/z","value":0}]`, `{"n":1.50,"z":-0.0e7}`},
		{"numbers that differ", `{"n":1.5}`, `[{"op":"test","path":"/n","value":1.05}]`, ""},
		{"numbers of any size", `{"n":1e1000000,"m":1e100000000}`, `[{"op":"test","path":"/n","value":10e999999},{"op":"test","path":"/n","value":1E+1000000},{"op":"test","path":"/m","value":0.1e100000001}]`, `{"m":1e100000000,"n":1e1000000}`},
		{"signs", `{"n":-1}`, `[{"op":"test","path":"/n","value":1}]`, ""},
		{"objects in any order", `{"o":{"a":1,"b":2}}`, `[{"op":"test","path":"/o","value":{"b":2,"a":1}}]`, `{"o":{"a":1,"b":2}}`},
		{"numbers as written", `{"n":12345678901234567890.5e2}`, `[{"op":"add","path":"/m","value":1E700}]`, `{"m":1E700,"n":12345678901234567890.5e2}`},
		{"markup unescaped", `{"div":"<b>&</b>"}`, `[]`, `{"div":"<b>&</b>"}`},
		{"none applied when one fails", `{"a":1}`, `[{"op":"remove","path":"/a"},{"op":"test","path":"/a","value":1}]`, ""},
		{"too many operations", `{"a":[]}`, `[` + strings.Repeat(`{"op":"add","path":"/a/0","value":1},`, 1000) + `{"op":"remove","path":"/a/0"}]`, ""},
		{"copies that double the document", `{"a":[1,2]}`, `[` + strings.Repeat(`{"op":"copy","from":"/a","path":"/a/-"},`, 40) + `{"op":"test","path":"/a/0","value":1}]`, ""},
	} {
		got, err := applyJSONPatch([]byte(c.doc), []byte(c.patch))
		switch {
		case c.want == "" && err == nil:
			t.Errorf("%s: applied, to %s", c.name, got)
		case c.want != "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && !bytes.Equal(got, []byte(c.want)):
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// FuzzApplyJSONPatch: for any document and any patch the proxy reads as
// a JSON Patch, applying it never panics and gives one JSON value; a patch
// of tests alone gives the document back, as encoding/json reads it.
func FuzzApplyJSONPatch(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"b":"c"}],"d":{"e":null}}`), []byte(`[{"op":"move","from":"/a/1","path":"/d/e"},{"op":"copy","from":"/d","path":"/a/-"}]`))
	f.Add([]byte(`[1,2]`), []byte(`[{"op":"replace","path":"","value":{}},{"op":"add","path":"/~0","value":0}]`))
	f.Add([]byte(`{"a":1}`), []byte(`[{"op":"test","path":"/a","value":1.0}]`))
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		if _, err := jsonPatchSpares(patch); err != nil {
			return // not a patch the proxy takes
		}
		got, err := applyJSONPatch(doc, patch)
		if err != nil {
			return
		}
		if !json.Valid(got) {
			t.Fatalf("%q patched by %q: %q", doc, patch, got)
		}
		var ops []struct{ Op string }
		_ = json.Unmarshal(patch, &ops)
		for _, op := range ops {
			if op.Op != "test" {
				return
			}
		}
		want, _ := decodeJSON(doc)
		have, _ := decodeJSON(got)
		if !jsonEqual(want, have) {
			t.Fatalf("tests alone changed %q into %q", doc, got)
		}
	})
}
