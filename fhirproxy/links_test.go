package fhirproxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestEntryLocationsMoved: with Base set, an entry's response.location
// (a batch or transaction response's, whatever its place in the entry) is
// moved onto the proxy's base as its fullUrl is, also where the entry
// keeps only its response (a write whose result the access may not see):
// before, the server's own address went out in it.
func TestEntryLocationsMoved(t *testing.T) {
	var up *httptest.Server
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		if r.Method == http.MethodGet { // the proxy's own reads, of what a write refers to
			fmt.Fprint(w, mustJSON(map[string]any{"resourceType": "Patient", "id": "p1"}))
			return
		}
		written := obs("n1", "p1", "laboratory", "R", "PSY") // labelled by the server as it stores it
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[`+
			`{"fullUrl":"%[1]s/Observation/n1","resource":%[2]s,"response":{"status":"201 Created","location":"%[1]s/Observation/n1/_history/1","etag":"W/\"1\""}},`+
			`{"response":{"location":"%[1]s/Observation/n2/_history/1","status":"201 Created"},"fullUrl":"%[1]s/Observation/n2"}]}`, up.URL, mustJSON(written))
	}))
	defer up.Close()
	create := `{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}}`
	body := `{"resourceType":"Bundle","type":"transaction","entry":[` + create + `,` + create + `]}`
	for _, c := range []struct {
		name  string
		scope string
		every bool
		kept  bool // the first entry's resource goes
	}{
		{"every label cleared", "system/Observation.cruds system/Patient.r", true, true},
		{"the default clearance", "user/Observation.cruds user/Patient.r", false, false},
	} {
		f := newFixture(t)
		f.proxy.Upstream, _ = url.Parse(up.URL)
		f.proxy.Base = f.base
		tok := f.token(c.scope, nil)
		if c.every {
			tok = f.token(c.scope, everyLabel())
		}
		r := f.do("POST", "/", tok, body)
		if r.status != http.StatusOK || strings.Contains(r.raw, strings.TrimPrefix(up.URL, "http://")) {
			t.Errorf("%s: %d, the server's address in %s", c.name, r.status, r.raw)
			continue
		}
		var got struct {
			Entry []struct {
				FullURL  string `json:"fullUrl"`
				Resource json.RawMessage
				Response struct{ Status, Location string }
			}
		}
		_ = json.Unmarshal([]byte(r.raw), &got)
		if len(got.Entry) != 2 {
			t.Fatalf("%s: %s", c.name, r.raw)
		}
		for i, want := range []string{"n1", "n2"} {
			if loc := got.Entry[i].Response.Location; loc != f.base+"/Observation/"+want+"/_history/1" {
				t.Errorf("%s: entry %d's location %q", c.name, i, loc)
			}
		}
		if kept := len(got.Entry[0].Resource) > 0; kept != c.kept {
			t.Errorf("%s: the labelled record kept %v: %s", c.name, kept, r.raw)
		}
	}
}
