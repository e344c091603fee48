package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
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
		var got []byte
		p, err := Parse([]byte(c.patch))
		if err == nil {
			got, err = p.Apply([]byte(c.doc))
		}
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

// FuzzApply: for any document and any text Parse reads as a JSON Patch,
// applying it never panics, never changes the document given, and gives
// one JSON value; a patch of tests alone gives the document back, as
// encoding/json reads it.
func FuzzApply(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"b":"c"}],"d":{"e":null}}`), []byte(`[{"op":"move","from":"/a/1","path":"/d/e"},{"op":"copy","from":"/d","path":"/a/-"}]`))
	f.Add([]byte(`[1,2]`), []byte(`[{"op":"replace","path":"","value":{}},{"op":"add","path":"/~0","value":0}]`))
	f.Add([]byte(`{"a":1}`), []byte(`[{"op":"test","path":"/a","value":1.0}]`))
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		p, err := Parse(patch)
		if err != nil {
			return
		}
		before := bytes.Clone(doc)
		got, err := p.Apply(doc)
		if !bytes.Equal(doc, before) {
			t.Fatalf("applying %q changed the document given", patch)
		}
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

// TestParse: what Parse reads, and the texts it refuses: anything another
// reader of the same text could take for another patch.
func TestParse(t *testing.T) {
	got, err := Parse([]byte(` [ {"path":"/a/b~1c","op":"add","value": {"x" : [1, 2.50]} ,"extra":{"y":1}},
		{"op":"move","from":"/a","path":"/b"}, {"op":"remove","path":"","value":1} ] `))
	want := Patch{{Op: "add", Path: "/a/b~1c", Value: []byte(`{"x" : [1, 2.50]}`)}, {Op: "move", Path: "/b", From: "/a"}, {Op: "remove", Path: ""}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("Parse: %v, %v", got, err)
	}
	for i := range want {
		if got[i].Op != want[i].Op || got[i].Path != want[i].Path || got[i].From != want[i].From || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Errorf("operation %d: %+v (value %s), want %+v (value %s)", i, got[i], got[i].Value, want[i], want[i].Value)
		}
	}
	if p, err := Parse([]byte(`[]`)); err != nil || p == nil || len(p) != 0 {
		t.Errorf("the empty patch: %v, %v", p, err)
	}
	for _, bad := range []string{
		``, `{}`, `null`, `[null]`, `[1]`, `[[]]`, `[{}]`, `[]x`, `[] []`, `[{"op":"add","path":"/a","value":1}`,
		`[{"path":"/a","value":1}]`,                                      // no op
		`[{"op":"add","value":1}]`,                                       // no path
		`[{"op":"add","path":null,"value":1}]`,                           // a path that is not a string
		`[{"op":"add","path":"a","value":1}]`,                            // not a pointer
		`[{"op":"add","path":"/a~2","value":1}]`,                         // a bad escape
		`[{"op":"add","path":"/a~","value":1}]`,                          // a bad escape
		`[{"op":"add","path":"/a"}]`,                                     // add without a value
		`[{"op":"replace","path":"/a"}]`,                                 // replace without a value
		`[{"op":"test","path":"/a"}]`,                                    // test without a value
		`[{"op":"move","path":"/a"}]`,                                    // move without a from
		`[{"op":"copy","path":"/a","value":1}]`,                          // copy without a from
		`[{"op":"copy","path":"/a","from":"b"}]`,                         // a from that is not a pointer
		`[{"op":"merge","path":"/a","value":1}]`,                         // an op RFC 6902 does not define
		`[{"op":"Add","path":"/a","value":1}]`,                           // ops are case-sensitive
		`[{"op":"add","path":"/a","value":1,"Value":2}]`,                 // names equal under case folding
		`[{"op":"add","path":"/a","value":1,"path":"/b"}]`,               // a name twice
		`[{"op":"add","path":"/a","value":{"k":1,"K":2}}]`,               // inside a value too
		`[{"op":"add","path":"/\ud800","value":1}]`,                      // a lone surrogate
		"[{\"op\":\"add\",\"path\":\"/a\",\"value\":\"\xff\"}]",          // invalid UTF-8
		`[{"op":"add","path":"/a","value":1}, {"op":"add","path":"/a"}]`, // one bad operation of two
	} {
		if p, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s) = %+v", bad, p)
		} else if !errors.Is(err, ErrNotPatch) {
			t.Errorf("Parse(%s): %v, not ErrNotPatch", bad, err)
		}
	}
}

// TestApplyLeavesTheDocument: a patch that fails part way changes nothing
// of the document it was given, nor does one that succeeds.
func TestApplyLeavesTheDocument(t *testing.T) {
	doc := []byte(`{"a":[1,2],"b":{"c":true}}`)
	before := bytes.Clone(doc)
	for _, patch := range []string{
		`[{"op":"remove","path":"/a/0"},{"op":"add","path":"/b/d","value":1}]`,
		`[{"op":"remove","path":"/a/0"},{"op":"test","path":"/b/c","value":false}]`,
	} {
		p, err := Parse([]byte(patch))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = p.Apply(doc)
		if !bytes.Equal(doc, before) {
			t.Fatalf("%s changed the document to %s", patch, doc)
		}
	}
	if _, err := (Patch{}).Apply([]byte(`{"a":1} {"b":2}`)); err == nil {
		t.Error("two documents were patched as one")
	}
}
