package jsonstrict

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var good = []string{
	`{}`, `[]`, `0`, `-1.5e+3`, `"x"`, `null`, `{"a":1,"b":[true,false,null,{"a":2}]}`,
	`{"aud":"x","\u0061ub":"y"}`, `"\ud83d\ude00"`, `{"k":"é"}`, " \n{ \"a\" : [ 1 , 2 ] } ",
}

var bad = []string{
	``, `{`, `{"a":1,"a":2}`, `{"aud":"x","\u0061ud":"y"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `"\x"`,
	"\"\xff\"", "\"a\x01\"", `"\ud83d"`, `{"a" 1}`, `{} {}`, `tru`, `{"a":{"b":1,"b":2}}`,
	strings.Repeat("[", 65) + strings.Repeat("]", 65),
}

func TestCheck(t *testing.T) {
	for _, s := range good {
		if err := Check([]byte(s)); err != nil {
			t.Errorf("Check(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := Check([]byte(s)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, want ErrInvalid", s, err)
		}
	}
	var many strings.Builder
	many.WriteString("{")
	for i := range 40 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"k` + strings.Repeat("x", i) + `":1`)
	}
	many.WriteString(`,"kxxxxx":2}`)
	if err := Check([]byte(many.String())); err == nil {
		t.Error("a duplicate past the small-object path was accepted")
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":[1,"b",{"c":null}]}`, `"\u00e9"`, `{"a":1,"a":2}`, `[1e5,-0.1]`, `{"a":[{"b":[1,2]},3],"a":0}`, `{"k":[[],[]],"K":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Check(b)
		if serr := checkStream(string(b)); (serr == nil) != (err == nil) {
			t.Fatalf("Check and the streaming Scanner disagree on %q: %v / %v", b, err, serr)
		}
		if werr := walkReleasing(string(b)); (werr == nil) != (err == nil) {
			t.Fatalf("Check and a releasing walk disagree on %q: %v / %v", b, err, werr)
		}
		if err == nil {
			var v any
			_ = json.Unmarshal(b, &v)
			if twin := foldedTwin(v); twin != "" {
				t.Fatalf("Check accepted %q with case-folded twins %s", b, twin)
			}
		}
		if err == nil && !json.Valid(b) {
			t.Fatalf("Check accepted %q, which is not valid JSON", b)
		}
		if err != nil && json.Valid(b) && !strings.Contains(err.Error(), "duplicate") && !strings.Contains(err.Error(), "deep") && !strings.Contains(err.Error(), "surrogate") && !strings.Contains(err.Error(), "UTF-8") {
			t.Fatalf("Check refused valid JSON %q: %v", b, err)
		}
	})
}

var claims = []byte(`{"iss":"https://ehr.example.org/auth","sub":"dr-lee","aud":"https://ehr.example.org/fhir","client_id":"growth-chart","scope":"launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs","jti":"q8C0nRr1hXv6bH1p8Jm0GCuQyXH4lB1pX0bqg2k9d9Q","iat":1767268800,"exp":1767269700,"grant":"3Jf0ZPp6z2mX1oQy1vPqkTz2m8mYBv4m1bJ3xq5FzWc","patient":"123","fhirUser":"Practitioner/9"}`)

func BenchmarkCheckClaims(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(claims); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanClaims is the same text through the Scanner, which matches
// names exactly: the cost of Check's case-folded duplicate check.
func BenchmarkScanClaims(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s := NewScanner(claims)
		if err := s.Skip(); err != nil {
			b.Fatal(err)
		}
	}
}

// foldedTwin finds two member names of one object that encoding/json would
// match to the same field.
func foldedTwin(v any) string {
	switch v := v.(type) {
	case map[string]any:
		var names []string
		for k, e := range v {
			for _, n := range names {
				if strings.EqualFold(n, k) {
					return n + "/" + k
				}
			}
			names = append(names, k)
			if t := foldedTwin(e); t != "" {
				return t
			}
		}
	case []any:
		for _, e := range v {
			if t := foldedTwin(e); t != "" {
				return t
			}
		}
	}
	return ""
}
