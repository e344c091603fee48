package fhirproxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/smart"
)

// TestServerWordsWithheld: the FHIR server's words name records (HAPI
// refuses a delete with the id and type of a record that refers to the
// one deleted), so an OperationOutcome it writes reaches a token that may
// not read every record of every type without them: each issue's
// severity and code, and the proxy's own sentence. Found with the
// sandbox's data server, which refuses a delete as HAPI does: a patient
// app deleting its reading was told of a record its clearance withholds.
// Every place the server writes one: an error's answer, a delete's
// answer (an error, or a success's body), a batch entry's outcome (refused
// or written), a search's outcome entry (whole or streamed), a write's
// answer. A token that may read everything hears the words as written.
func TestServerWordsWithheld(t *testing.T) {
	// The words name psy-1, which the patient's clearance withholds.
	words := func(severity, code, text string) string {
		return `{"resourceType":"OperationOutcome","issue":[{"severity":"` + severity + `","code":"` + code + `","diagnostics":"` + text +
			`","details":{"text":"see Observation/psy-1"},"expression":["Observation.hasMember"]}]}`
	}
	conflict := words("error", "conflict", "Unable to delete Observation/lab-1: resource Observation/psy-1 refers to it in path Observation.hasMember")
	deletedOK := words("information", "informational", "Successfully deleted 1 resource(s); Observation/psy-1 refers to none")
	created := words("information", "informational", "Successfully created Observation/new-1, like Observation/psy-1")
	searchNote := words("warning", "processing", "Observation/psy-1 was left out")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		switch {
		case r.Method == http.MethodGet && (r.URL.Path == "/Observation/lab-1" || r.URL.Path == "/Observation/vs-1"):
			w.Header().Set("ETag", `W/"1"`)
			id := strings.TrimPrefix(r.URL.Path, "/Observation/")
			_, _ = io.WriteString(w, mustJSON(obs(id, "p1", "laboratory")))
		case r.Method == http.MethodGet && r.URL.Path == "/Observation/lab-9":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, conflict)
		case r.Method == http.MethodGet && r.URL.Path == "/Patient/p1":
			_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"p1"}`)
		case r.Method == http.MethodDelete && r.URL.Path == "/Observation/lab-1":
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, conflict)
		case r.Method == http.MethodDelete && r.URL.Path == "/Observation/vs-1":
			_, _ = io.WriteString(w, deletedOK)
		case r.Method == http.MethodPost && r.URL.Path == "/Observation":
			w.Header().Set("Location", "Observation/new-1/_history/1")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, created)
		case r.Method == http.MethodGet && r.URL.Path == "/Observation":
			_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":`+mustJSON(obs("lab-1", "p1", "laboratory"))+
				`,"search":{"mode":"match"}},{"resource":`+searchNote+`,"search":{"mode":"outcome"}}]}`)
		case r.Method == http.MethodPost && r.URL.Path == "/":
			_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"409 Conflict","outcome":`+conflict+
				`}},{"response":{"status":"201 Created","location":"Observation/new-1/_history/1","outcome":`+created+`}}]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
		}
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	reading := mustJSON(map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"},
		"category": []any{map[string]any{"coding": []any{map[string]any{"code": "laboratory"}}}}, "subject": map[string]any{"reference": "Patient/p1"}})
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"Observation/lab-1"}},` +
		`{"request":{"method":"POST","url":"Observation"},"resource":` + reading + `}]}`
	type call struct {
		name, method, target, body string
		status                     int
		answers                    []string // the OperationOutcomes of the answer, as the server wrote them, in order
	}
	calls := []call{
		{"a delete refused", http.MethodDelete, "/Observation/lab-1", "", 409, []string{conflict}},
		{"a read refused", http.MethodGet, "/Observation/lab-9", "", 400, []string{conflict}},
		{"a delete done", http.MethodDelete, "/Observation/vs-1", "", 200, []string{deletedOK}},
		{"a create", http.MethodPost, "/Observation", reading, 201, []string{created}},
		{"a search", http.MethodGet, "/Observation?code=x&_include=Observation:has-member", "", 200, []string{searchNote}},
		{"a batch", http.MethodPost, "", batch, 200, []string{conflict, created}},
	}
	for _, tc := range []struct {
		who   string
		tok   string
		hears bool
	}{
		{"a patient app", f.token("launch/patient patient/Observation.cruds", nil), false},
		{"a patient app of every label", f.token("launch/patient patient/*.cruds", everyLabel()), false},
		{"a user of some labels", f.token("user/*.cruds", nil), false},
		{"a backend of one type", f.token("system/Observation.cruds", everyLabel()), false},
		{"a backend of a constraint", f.token("system/*.cruds?category=laboratory", everyLabel()), false},
		{"a backend of every record", f.token("system/*.cruds", everyLabel()), true},
	} {
		for _, streamed := range []bool{false, true} {
			f.proxy.Limits.StreamFrom = 0
			if streamed {
				f.proxy.Limits.StreamFrom = 64 // the search's Bundle is filtered as it streams
			}
			for _, c := range calls {
				if c.name == "a read refused" && strings.Contains(tc.who, "constraint") {
					continue // (read as a search by _id, with the constraint)
				}
				f.audit.Reset()
				r := f.do(c.method, c.target, tc.tok, c.body, "Prefer", "return=OperationOutcome")
				name := tc.who + ": " + c.name
				if r.status != c.status {
					t.Errorf("%s: %d %.300s", name, r.status, r.raw)
					continue
				}
				got := outcomesIn(r)
				if c.name == "a delete done" && !tc.hears {
					// A success's body goes: the status says it.
					if r.raw != "" {
						t.Errorf("%s: the server's answer went: %s", name, r.raw)
					}
					continue
				}
				if len(got) != len(c.answers) {
					t.Errorf("%s: %d OperationOutcomes in %.400s", name, len(got), r.raw)
					continue
				}
				for i, oo := range got {
					switch {
					case tc.hears && mustJSON(oo) != mustJSON(decode(c.answers[i])):
						t.Errorf("%s: the server's words did not go as written: %s", name, mustJSON(oo))
					case !tc.hears && strings.Contains(mustJSON(oo), "psy-1"):
						t.Errorf("%s: the server's words went: %s", name, mustJSON(oo))
					case !tc.hears:
						want := decode(c.answers[i])["issue"].([]any)[0].(map[string]any)
						is := oo["issue"].([]any)[0].(map[string]any)
						if len(is) != 3 || is["severity"] != want["severity"] || is["code"] != want["code"] || !strings.Contains(is["diagnostics"].(string), "withheld") {
							t.Errorf("%s: the issue is %v, want %v's severity and code, withheld", name, is, want)
						}
					}
				}
				// The refusal's event keeps the server's words, for the operators.
				if evs := f.audit.Events(); c.status >= 400 && !tc.hears && (len(evs) == 0 ||
					evs[len(evs)-1].Outcome != audit.Failure || !strings.Contains(evs[len(evs)-1].Reason, "Observation/psy-1 refers to it")) {
					t.Errorf("%s: the audit: %+v", name, evs)
				}
			}
		}
	}
}

// TestServerWordsBehindTransform: a host that reshapes answers for some
// apps (Proxy.Transform: de-identification, usually for research apps of
// every label) has no app hear the server's words, which name patients in
// free text the reshaping never sees.
func TestServerWordsBehindTransform(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"no Patient with MRN 1234 (Jane Roe)"}]}`)
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	research := f.token("system/*.rs", everyLabel())
	if r := f.do(http.MethodGet, "/Observation/lab-1", research, ""); r.status != http.StatusBadRequest || !strings.Contains(r.raw, "Jane Roe") {
		t.Fatalf("without a Transform: %d %s", r.status, r.raw)
	}
	f.proxy.Transform = func(_ context.Context, _ *smart.Token, _ fhirproxy.Interaction, body []byte) ([]byte, error) {
		return body, nil
	}
	if r := f.do(http.MethodGet, "/Observation/lab-1", research, ""); r.status != http.StatusBadRequest || strings.Contains(r.raw, "Jane Roe") {
		t.Errorf("behind a Transform: %d %s", r.status, r.raw)
	}
}

// TestServerWordsInCodes: an issue's severity and code pass only as codes
// of their value sets: words written there become error and processing.
func TestServerWordsInCodes(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"psy-1","code":"psy-1 exists"},{"severity":"warning","code":"psy-1"},{"severity":"fatal","code":"too-costly"}]}`)
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	r := f.do(http.MethodGet, "/Observation/lab-1", f.token("launch/patient patient/Observation.rs", nil), "")
	want := `{"issue":[{"code":"processing","diagnostics":"the FHIR server's own words are withheld from this token: they can name records it may not see","severity":"error"},` +
		`{"code":"processing","severity":"warning"},{"code":"too-costly","severity":"fatal"}],"resourceType":"OperationOutcome"}`
	if r.status != http.StatusBadRequest || mustJSON(r.body) != want {
		t.Errorf("%d %s, want %s", r.status, mustJSON(r.body), want)
	}
}

// outcomesIn are the OperationOutcomes of an answer: itself, its entries'
// resources and its entries' response outcomes, in order, nested
// Bundles' included.
func outcomesIn(r result) []map[string]any {
	var out []map[string]any
	var walk func(v any)
	walk = func(v any) {
		m, _ := v.(map[string]any)
		switch m["resourceType"] {
		case "OperationOutcome":
			out = append(out, m)
		case "Bundle":
			entries, _ := m["entry"].([]any)
			for _, e := range entries {
				e, _ := e.(map[string]any)
				walk(e["resource"])
				resp, _ := e["response"].(map[string]any)
				walk(resp["outcome"])
			}
		}
	}
	walk(r.body)
	return out
}

// decode decodes a JSON object.
func decode(s string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		panic(err)
	}
	return m
}
