package scopes_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/smartkit/smartkit/scopes"
)

// vector is one row of a scope conformance table (SMART-DIGEST §1.14).
type vector struct {
	Input        string          `json:"input"`
	Valid        bool            `json:"valid"`
	Version      string          `json:"version"`
	Context      *string         `json:"context"`
	Resource     *string         `json:"resource"`
	Permissions  *string         `json:"permissions"`
	Query        json.RawMessage `json:"query"`
	V2Equivalent *string         `json:"v2_equivalent"`
	Kind         string          `json:"kind"`
	Tokens       []string        `json:"tokens"`
	Note         string          `json:"note"`
}

// vectorFiles returns the tables to run: the copy in testdata, the shared
// design copy when this checkout sits beside it, and every path listed in
// SMARTKIT_SCOPE_VECTORS (colon-separated).
func vectorFiles(t *testing.T) []string {
	files := []string{filepath.Join("testdata", "scope-vectors.json")}
	shared := filepath.Join("..", "..", "shared", "spec", "scope-vectors.json")
	if a, err := os.ReadFile(shared); err == nil {
		if b, _ := os.ReadFile(files[0]); !bytes.Equal(a, b) {
			files = append(files, shared)
		}
	}
	for p := range strings.SplitSeq(os.Getenv("SMARTKIT_SCOPE_VECTORS"), ":") {
		if p != "" {
			files = append(files, p)
		}
	}
	return files
}

func TestVectors(t *testing.T) {
	for _, file := range vectorFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("reading vectors: %v", err)
		}
		var vs []vector
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(vs) == 0 {
			t.Fatalf("%s: no vectors", file)
		}
		t.Logf("%s: %d vectors", file, len(vs))
		for i, v := range vs {
			t.Run(filepath.Base(file)+"/"+strings.ReplaceAll(v.Input, "/", "∕"), func(t *testing.T) {
				switch v.Kind {
				case "scope-string":
					checkString(t, v)
				case "uri-representation":
					checkURI(t, v)
				default:
					checkToken(t, v)
				}
				if t.Failed() {
					t.Logf("vector %d: %s", i, v.Note)
				}
			})
		}
	}
}

func checkToken(t *testing.T, v vector) {
	sc, err := scopes.Parse(v.Input)
	if (err == nil) != v.Valid {
		t.Fatalf("Parse(%q) error = %v, want valid=%v", v.Input, err, v.Valid)
	}
	if !v.Valid {
		var se *scopes.ScopeError
		if !errorsAs(err, &se) || se.Reason == "" {
			t.Errorf("Parse(%q) error %v is not a *ScopeError with a reason", v.Input, err)
		}
		return
	}
	got := map[string]any{
		"version": sc.Version().String(),
		"kind":    sc.Kind().String(),
		"v2":      sc.V2().String(),
		"query":   queryOf(sc),
	}
	want := map[string]any{
		"version": v.Version,
		"kind":    v.Kind,
		"v2":      deref(v.V2Equivalent),
		"query":   decodeQuery(t, v.Query),
	}
	if v.Kind == "unknown" {
		want["kind"] = got["kind"]
	}
	if sc.Kind() == scopes.Resource {
		got["context"], got["resource"], got["perms"] = sc.Context().String(), sc.Type(), sc.Perms().String()
		want["context"], want["resource"], want["perms"] = deref(v.Context), deref(v.Resource), deref(v.Permissions)
	} else if v.Context != nil || v.Resource != nil || v.Permissions != nil {
		t.Errorf("vector gives resource fields, parsed as %v", sc.Kind())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse(%q) mismatch (-want +got):\n%s", v.Input, diff)
	}
	if sc.String() != v.Input {
		t.Errorf("String() = %q, want the input back", sc.String())
	}
	again, err := scopes.Parse(sc.V2().String())
	if err != nil || again.String() != sc.V2().String() {
		t.Errorf("V2 form %q does not round-trip: %v", sc.V2(), err)
	}
}

func checkString(t *testing.T, v vector) {
	set, err := scopes.ParseSet(v.Input)
	if (err == nil) != v.Valid {
		t.Fatalf("ParseSet(%q) error = %v, want valid=%v", v.Input, err, v.Valid)
	}
	if !v.Valid {
		return
	}
	if got := set.V2().String(); got != deref(v.V2Equivalent) {
		t.Errorf("V2().String() = %q, want %q", got, deref(v.V2Equivalent))
	}
	if diff := cmp.Diff(v.Tokens, strings.Fields(v.Input)); v.Tokens != nil && diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
	if got := set.Version().String(); got != v.Version {
		t.Errorf("Version() = %s, want %s", got, v.Version)
	}
}

func checkURI(t *testing.T, v vector) {
	if _, err := scopes.Parse(v.Input); err == nil && !v.Valid {
		t.Errorf("Parse(%q) accepted a URI representation", v.Input)
	}
	tok, ok := scopes.FromURI(v.Input)
	if !ok {
		t.Fatalf("FromURI(%q) not recognised", v.Input)
	}
	got, err := scopes.Parse(tok)
	if err != nil {
		t.Fatalf("FromURI(%q) = %q, which does not parse: %v", v.Input, tok, err)
	}
	want, err := scopes.Parse(deref(v.V2Equivalent))
	if err != nil {
		t.Fatalf("v2_equivalent %q does not parse: %v", deref(v.V2Equivalent), err)
	}
	if got.V2().String() != want.V2().String() {
		t.Errorf("FromURI(%q) = %q, want %q", v.Input, got.V2(), want.V2())
	}
	if u := got.URI(); u != v.Input && got.V2().URI() != v.Input {
		t.Errorf("URI() = %q, want %q", u, v.Input)
	}
}

// queryOf renders a scope's constraint or role the way the vectors do:
// name → value, or name → [values] when the name repeats.
func queryOf(sc scopes.Scope) map[string]any {
	var params []scopes.Param
	if role := sc.Role(); role != "" {
		params = []scopes.Param{{Name: "role", Value: role}}
	} else {
		params = sc.Constraint()
	}
	if len(params) == 0 {
		return nil
	}
	out := map[string]any{}
	for _, p := range params {
		switch prev := out[p.Name].(type) {
		case nil:
			out[p.Name] = p.Value
		case string:
			out[p.Name] = []any{prev, p.Value}
		case []any:
			out[p.Name] = append(prev, p.Value)
		}
	}
	return out
}

func decodeQuery(t *testing.T, raw json.RawMessage) map[string]any {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("query %s: %v", raw, err)
	}
	return m
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
