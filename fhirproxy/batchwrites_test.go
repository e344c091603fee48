package fhirproxy_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/consent"
)

// bundle is a transaction (or, typ given, another type) of the entries.
func bundle(typ string, entries ...string) string {
	if typ == "" {
		typ = "transaction"
	}
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

// entry is a Bundle entry: its fullUrl (none when empty), its request, and
// its resource (none when empty).
func entry(fullURL, method, url, resource string) string {
	e := `{`
	if fullURL != "" {
		e += `"fullUrl":` + mustJSON(fullURL) + `,`
	}
	e += `"request":{"method":"` + method + `","url":"` + url + `"}`
	if resource != "" {
		e += `,"resource":` + resource
	}
	return e + `}`
}

// sentEntry is a Bundle entry as the upstream received it.
type sentEntry struct {
	FullURL  string         `json:"fullUrl"`
	Request  map[string]any `json:"request"`
	Resource map[string]any `json:"resource"`
}

// sentEntries are the entries of the last Bundle the upstream received.
func (f *fixture) sentEntries() []sentEntry {
	f.t.Helper()
	got := f.up.requests()
	if len(got) == 0 || got[len(got)-1].Method != http.MethodPost {
		f.t.Fatalf("the Bundle did not go upstream: %d request(s)", len(got))
	}
	var b struct{ Entry []sentEntry }
	if err := json.Unmarshal([]byte(f.up.bodies[len(f.up.bodies)-1]), &b); err != nil {
		f.t.Fatalf("the Bundle went upstream invalid: %v", err)
	}
	return b.Entry
}

// sentBundle is the requests of the last Bundle the upstream received.
func (f *fixture) sentBundle() []map[string]any {
	f.t.Helper()
	var out []map[string]any
	for _, e := range f.sentEntries() {
		out = append(out, e.Request)
	}
	return out
}

// TestBatchedWritesWithPatientContext: a patient app may create, update
// and delete its patient's records in a batch or transaction, each entry
// checked as it is on its own (the new content, the stored version, what
// it refers to) and pinned to the version judged (ifMatch). Another
// patient's record, a withheld one and a free id are refused alike; a
// urn reference must name a create or update entry of the Bundle, and a
// fullUrl may not alias another record (a server puts the entry's record
// in place of every reference to its fullUrl). Nothing is written when
// one entry is refused.
func TestBatchedWritesWithPatientContext(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.cruds patient/Patient.r", nil)
	created := withMember("status", "final")
	member := withMember("hasMember", []any{reference("urn:uuid:a")})
	r := f.do("POST", "/", tok, bundle("",
		entry("urn:uuid:a", "POST", "Observation", created),
		entry(f.up.ts.URL+"/Observation/lab-1", "PUT", "Observation/lab-1", func() string {
			o := obs("lab-1", "p1", "laboratory")
			o["hasMember"] = []any{reference("urn:uuid:a")}
			return mustJSON(o)
		}()),
		entry("urn:uuid:b", "PUT", "Observation/vs-1", mustJSON(obs("vs-1", "p1", "vital-signs"))),
		entry("", "POST", "Observation", member),
		entry("", "DELETE", "Observation/vs-1", ""),
		entry("", "GET", "Patient/p1", "")))
	if r.status != 200 {
		t.Fatalf("a transaction of the patient's own records: %d %s", r.status, r.raw)
	}
	sent := f.sentBundle()
	if len(sent) != 6 {
		t.Fatalf("sent %v", sent)
	}
	for i, want := range []any{nil, `W/"1"`, `W/"1"`, nil, `W/"1"`, nil} {
		if sent[i]["ifMatch"] != want {
			t.Errorf("entry %d went with ifMatch %v, want %v", i, sent[i]["ifMatch"], want)
		}
	}
	// Its audit events name what each entry names.
	evs := f.audit.Events()
	if ev := evs[len(evs)-1]; ev.Interaction != "batch" || ev.Patient != "p1" ||
		!slices.Equal(ev.Resources, []string{"Observation", "Observation/lab-1", "Observation/vs-1", "Observation", "Observation/vs-1", "Patient/p1"}) {
		t.Errorf("the transaction's audit event: %+v", ev)
	}
	f.up.reset()

	// Refused, with nothing written (the proxy's own reads aside); the
	// answers for another patient's record, a withheld one and a free id
	// are the same.
	other := obs("lab-2", "p1", "laboratory") // lab-2 is p2's
	var same []string
	for _, c := range []struct {
		name, body string
		status     int
		alike      bool
	}{
		{"an update of another patient's record", bundle("", entry("", "PUT", "Observation/lab-2", mustJSON(other))), 403, true},
		{"an update of a withheld record", bundle("", entry("", "PUT", "Observation/psy-1", mustJSON(obs("psy-1", "p1", "laboratory")))), 403, true},
		{"an update of a free id", bundle("", entry("", "PUT", "Observation/fresh", mustJSON(obs("fresh", "p1", "laboratory")))), 403, true},
		{"a delete of another patient's record", bundle("", entry("", "DELETE", "Observation/lab-2", "")), 403, true},
		{"a delete of a withheld record", bundle("", entry("", "DELETE", "Observation/psy-1", "")), 403, true},
		{"a delete of a free id", bundle("", entry("", "DELETE", "Observation/fresh", "")), 403, true},
		{"a create for another patient", bundle("batch", entry("", "POST", "Observation", noID(obs("", "p2", "laboratory")))), 403, false},
		{"a create naming another patient", bundle("", entry("", "POST", "Observation", withMember("performer", []any{reference("Patient/p2")}))), 403, false},
		{"a create naming a withheld record", bundle("", entry("", "POST", "Observation", withMember("hasMember", []any{reference("Observation/psy-1")}))), 403, false},
		{"a create of a Patient", bundle("", entry("", "POST", "Patient", `{"resourceType":"Patient"}`)), 403, false},
		{"a FHIRPath patch", bundle("", entry("", "PATCH", "Observation/lab-1", fhirPathPatch("delete", "Observation.status"))), 403, false},
		{"a JSON Patch moving the record away", bundle("", entry("", "PATCH", "Observation/lab-1", `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"`+
			base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/subject/reference","value":"Patient/p2"}]`))+`"}`)), 403, false},
		{"one good entry, one bad", bundle("", entry("", "POST", "Observation", created), entry("", "PUT", "Observation/lab-2", mustJSON(other))), 403, false},
		{"a urn naming a read's fullUrl", bundle("", entry("urn:uuid:g", "GET", "Observation/psy-1", ""),
			entry("", "POST", "Observation", withMember("hasMember", []any{reference("urn:uuid:g")}))), 400, false},
		{"a urn naming a delete's fullUrl", bundle("", entry("urn:uuid:d", "DELETE", "Observation/vs-1", ""),
			entry("", "POST", "Observation", withMember("hasMember", []any{reference("urn:uuid:d")}))), 400, false},
		{"a urn naming no entry", bundle("", entry("", "POST", "Observation", withMember("hasMember", []any{reference("urn:oid:1.2.3")}))), 400, false},
		{"a fullUrl aliasing the patient", bundle("", entry(f.up.ts.URL+"/Patient/p1", "POST", "Observation", created),
			entry("", "POST", "Observation", created)), 400, false},
		{"a fullUrl aliasing another record", bundle("", entry(f.base+"/Observation/lab-2", "PUT", "Observation/lab-1", mustJSON(obs("lab-1", "p1", "laboratory")))), 400, false},
		{"a relative fullUrl", bundle("", entry("Observation/lab-2", "POST", "Observation", created)), 400, false},
		{"a fullUrl on another server", bundle("", entry("https://other.example/fhir/Patient/p1", "POST", "Observation", created)), 400, false},
		{"a versioned fullUrl", bundle("", entry(f.up.ts.URL+"/Observation/lab-1/_history/1", "PUT", "Observation/lab-1", mustJSON(obs("lab-1", "p1", "laboratory")))), 400, false},
		{"two entries with one fullUrl", bundle("", entry("urn:uuid:a", "POST", "Observation", created), entry("urn:uuid:a", "GET", "Observation/psy-1", "")), 400, false},
	} {
		r := f.do("POST", "/", tok, c.body)
		if r.status != c.status || r.body["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		if evs := f.audit.Events(); len(evs[len(evs)-1].Resources) == 0 {
			t.Errorf("%s: the refusal's audit event names no entry: %+v", c.name, evs[len(evs)-1])
		}
		f.onlyReads(c.name)
		if c.alike {
			same = append(same, strings.ReplaceAll(strings.ReplaceAll(r.raw, "DELETE", "X"), "PUT", "X"))
		}
	}
	for _, a := range same[1:] {
		if a != same[0] {
			t.Errorf("answers differ: %s and %s", same[0], a)
		}
	}

	// A mixed token's entries are each decided in their own context: a
	// record one found fine as user/ is checked again for one written with
	// patient context.
	mixed := f.token("launch/patient patient/Condition.c patient/Observation.r user/Observation.crs", nil)
	cond := `{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"evidence":[{"detail":[{"reference":"Observation/lab-2"}]}]}`
	r = f.do("POST", "/", mixed, bundle("", entry("", "POST", "Observation", withMember("hasMember", []any{reference("Observation/lab-2")})),
		entry("", "POST", "Condition", cond)))
	if r.status != http.StatusForbidden {
		t.Errorf("a patient/ entry naming another patient's record a user/ entry named: %d %s", r.status, r.raw)
	}
	f.onlyReads("a patient/ entry naming another patient's record a user/ entry named")
}

// TestBatchedWritesByLabels: with a clearance short of every label, a
// batched update, patch or delete is checked against the stored version
// as on its own, and pinned; one of a withheld record answers as one of a
// free id does.
func TestBatchedWritesByLabels(t *testing.T) {
	f := newFixture(t)
	user := f.token("user/Observation.cruds user/Practitioner.r", nil)
	patch := `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` +
		base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/status","value":"amended"}]`)) + `"}`
	if r := f.do("POST", "/", user, bundle("batch",
		entry("", "PUT", "Observation/lab-1", mustJSON(obs("lab-1", "p1", "laboratory"))),
		entry("", "PATCH", "Observation/vs-1", patch),
		entry("", "DELETE", "Observation/lab-2", ""))); r.status != 200 {
		t.Fatalf("a batch of records the clearance releases: %d %s", r.status, r.raw)
	}
	for i, e := range f.sentBundle() {
		if e["ifMatch"] != `W/"1"` {
			t.Errorf("entry %d went without the version judged: %v", i, e)
		}
	}
	f.up.reset()
	var answers []string
	for _, c := range []struct{ name, body string }{
		{"update withheld", bundle("", entry("", "PUT", "Observation/psy-1", mustJSON(obs("psy-1", "p1", "laboratory", "R", "PSY"))))},
		{"update free", bundle("", entry("", "PUT", "Observation/fresh", mustJSON(obs("fresh", "p1", "laboratory", "R", "PSY"))))},
		{"patch withheld", bundle("", entry("", "PATCH", "Observation/psy-1", patch))},
		{"patch free", bundle("", entry("", "PATCH", "Observation/fresh", patch))},
		{"delete withheld", bundle("", entry("", "DELETE", "Observation/psy-1", ""))},
		{"delete free", bundle("", entry("", "DELETE", "Observation/fresh", ""))},
	} {
		r := f.do("POST", "/", user, c.body)
		if r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		f.onlyReads(c.name)
		answers = append(answers, r.raw)
	}
	for i := 0; i < len(answers); i += 2 {
		if answers[i] != answers[i+1] {
			t.Errorf("a withheld record and a free id answer differently: %s and %s", answers[i], answers[i+1])
		}
	}

	// A batched patch's references are read from the patch the Binary
	// holds, as they are on its own (TestWritesNameNoWithheldRecord,
	// TestConditionalReferences, TestOddReferences).
	for name, c := range map[string]struct {
		patch  string
		status int
	}{
		"a withheld member":   {`[{"op":"add","path":"/hasMember","value":[{"reference":"Observation/psy-1"}]}]`, http.StatusForbidden},
		"a member by search":  {`[{"op":"add","path":"/hasMember","value":[{"reference":"Observation?code=x"}]}]`, http.StatusForbidden},
		"an odd member":       {`[{"op":"add","path":"/hasMember","value":[{"reference":"Observation/psy-1/"}]}]`, http.StatusBadRequest},
		"a urn naming none":   {`[{"op":"add","path":"/hasMember/0/reference","value":"urn:uuid:0"}]`, http.StatusBadRequest},
		"a withheld as value": {`[{"op":"replace","path":"/hasMember/0/reference","value":"Observation/psy-1"}]`, http.StatusForbidden},
	} {
		binary := `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + base64.StdEncoding.EncodeToString([]byte(c.patch)) + `"}`
		if r := f.do("POST", "/", user, bundle("", entry("", "PATCH", "Observation/lab-1", binary))); r.status != c.status {
			t.Errorf("a batched patch adding %s: %d %s", name, r.status, r.raw)
		}
		f.onlyReads("a batched patch adding " + name)
	}

	// Each record the Bundle's writes refer to is read once (with no
	// patient context, the subject's Patient too), and a Bundle
	// may not make the proxy read more than it allows.
	for i := range 140 {
		id := "dr-" + strconv.Itoa(i)
		f.up.mu.Lock()
		f.up.resources["Practitioner/"+id] = map[string]any{"resourceType": "Practitioner", "id": id}
		f.up.mu.Unlock()
	}
	performers := func(from, to int) string {
		var refs []any
		for i := from; i < to; i++ {
			refs = append(refs, reference("Practitioner/dr-"+strconv.Itoa(i)))
		}
		return withMember("performer", refs)
	}
	var same, distinct []string
	for i := range 5 {
		same = append(same, entry("", "POST", "Observation", performers(0, 28)))
		distinct = append(distinct, entry("", "POST", "Observation", performers(28*i, 28*i+28)))
	}
	if r := f.do("POST", "/", user, bundle("", same...)); r.status != 200 {
		t.Errorf("five creates naming the same 28 records: %d %s", r.status, r.raw)
	}
	if n := len(f.up.requests()); n != 28+2 {
		t.Errorf("five creates naming the same 28 records (and Patient/p1) made %d upstream requests, want 29 reads and the Bundle", n)
	}
	f.up.reset()
	r := f.do("POST", "/", user, bundle("", distinct...))
	if r.status != http.StatusRequestEntityTooLarge || r.body["resourceType"] != "OperationOutcome" {
		t.Errorf("five creates naming 140 records: %d %s", r.status, r.raw)
	}
	if n := len(f.up.requests()); n > 128 {
		t.Errorf("five creates naming 140 records made %d upstream reads", n)
	}
	f.onlyReads("five creates naming 140 records")
}

// TestBatchedConditionalWrites: where answers are judged, a conditional
// write in a batch or transaction is resolved by the proxy as it is on its
// own (TestConditionalWrites), and its entry goes upstream as the plain
// write (or read) it resolved to, pinned to the version matched: the FHIR
// server never matches the criteria. In a transaction, a reference to the
// fullUrl of a create that found its record names that record.
func TestBatchedConditionalWrites(t *testing.T) {
	f := conditionalFixture(t)
	patient := f.token("launch/patient patient/Observation.cruds", nil)
	mine := noID(obs("", "p1", "laboratory"))
	conditional := func(fullURL, method, url, ifNoneExist, resource string) string {
		e := `{`
		if fullURL != "" {
			e += `"fullUrl":"` + fullURL + `",`
		}
		e += `"request":{"method":"` + method + `","url":"` + url + `"`
		if ifNoneExist != "" {
			e += `,"ifNoneExist":"` + ifNoneExist + `"`
		}
		e += `}`
		if resource != "" {
			e += `,"resource":` + resource
		}
		return e + `}`
	}
	var alike []string
	for name, c := range map[string]struct {
		entry  string
		status int
		sent   string // the entry's request as sent: method url ifMatch
		id     string // the id of the resource sent, if any
	}{
		"update matching one":               {conditional("", "PUT", "Observation?identifier=urn:lab|A", "", mine), 200, `PUT Observation/lab-1 W/"1"`, "lab-1"},
		"update matching another patient's": {conditional("", "PUT", "Observation?identifier=urn:lab|B", "", mine), 200, "POST Observation", ""},
		"update matching a withheld record": {conditional("", "PUT", "Observation?identifier=urn:lab|C", "", mine), 200, "POST Observation", ""},
		"update matching none":              {conditional("", "PUT", "Observation?identifier=urn:lab|Z", "", mine), 200, "POST Observation", ""},
		"update matching two":               {conditional("", "PUT", "Observation?identifier=urn:lab|D", "", mine), 412, "", ""},
		"update moving the match away":      {conditional("", "PUT", "Observation?identifier=urn:lab|A", "", noID(obs("", "p2", "laboratory"))), 403, "", ""},
		"delete matching one":               {conditional("", "DELETE", "Observation?identifier=urn:lab|A", "", ""), 200, `DELETE Observation/lab-1 W/"1"`, ""},
		"delete matching another patient's": {conditional("", "DELETE", "Observation?identifier=urn:lab|B", "", ""), 403, "", ""},
		"delete matching a withheld record": {conditional("", "DELETE", "Observation?identifier=urn:lab|C", "", ""), 403, "", ""},
		"delete matching none":              {conditional("", "DELETE", "Observation?identifier=urn:lab|Z", "", ""), 403, "", ""},
		"delete naming another patient":     {conditional("", "DELETE", "Observation?identifier=urn:lab|A&patient=Patient/p2", "", ""), 403, "", ""},
		"create matching one":               {conditional("", "POST", "Observation", "identifier=urn:lab|A", mine), 200, "GET Observation/lab-1", ""},
		"create matching another patient's": {conditional("", "POST", "Observation", "identifier=urn:lab|B", mine), 200, "POST Observation", ""},
		"create matching a withheld record": {conditional("", "POST", "Observation", "identifier=urn:lab|C", mine), 200, "POST Observation", ""},
		"create matching two":               {conditional("", "POST", "Observation", "identifier=urn:lab|D", mine), 412, "", ""},
		"create, criteria that include":     {conditional("", "POST", "Observation", "_id=lab-1&_include=Observation:has-member", mine), 400, "", ""},
	} {
		r := f.do("POST", "/", patient, bundle("transaction", c.entry))
		if r.status != c.status {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
		if c.sent == "" {
			f.onlyReads(name)
			if strings.HasPrefix(name, "delete matching") && c.status == 403 {
				alike = append(alike, r.raw)
			}
			continue
		}
		e := f.sentEntries()
		got := fmt.Sprint(e[0].Request["method"], " ", e[0].Request["url"])
		if m, ok := e[0].Request["ifMatch"]; ok {
			got += fmt.Sprint(" ", m)
		}
		if len(e) != 1 || got != c.sent || e[0].Request["ifNoneExist"] != nil {
			t.Errorf("%s: the entry went upstream as %+v", name, e)
		}
		if id, _ := e[0].Resource["id"].(string); id != c.id || (strings.HasPrefix(c.sent, "GET") || strings.HasPrefix(c.sent, "DELETE")) != (e[0].Resource == nil) {
			t.Errorf("%s: the entry's resource went upstream as %v", name, e[0].Resource)
		}
		f.up.reset()
	}
	for _, a := range alike[1:] {
		if a != alike[0] {
			t.Errorf("a conditional delete answers differently: %s and %s", alike[0], a)
		}
	}

	// In a transaction, a reference to a create that found its record
	// names that record (which is then checked as any reference is); to
	// one that found none, the record it creates.
	member := withMember("hasMember", []any{reference("urn:uuid:c")})
	r := f.do("POST", "/", patient, bundle("transaction",
		conditional("urn:uuid:c", "POST", "Observation", "identifier=urn:lab|A", mine), entry("", "POST", "Observation", member)))
	if r.status != 200 {
		t.Fatalf("a transaction naming a found record by its urn: %d %s", r.status, r.raw)
	}
	e := f.sentEntries()
	if len(e) != 2 || e[0].Request["method"] != "GET" || e[0].FullURL != "urn:uuid:c" || mustJSON(e[1].Resource["hasMember"]) != `[{"reference":"Observation/lab-1"}]` {
		t.Errorf("a transaction naming a found record by its urn went upstream as %+v", e)
	}
	if evs := f.audit.Events(); !slices.Equal(evs[len(evs)-1].Resources, []string{"Observation/lab-1", "Observation"}) {
		t.Errorf("the audit event names %v, not the record the criteria found", evs[len(evs)-1].Resources)
	}
	// The create that found its record answers as FHIR has it: 200, the
	// record's location.
	if got, _ := r.body["entry"].([]any); len(got) != 2 || !strings.Contains(mustJSON(got[0]), `"response":{"location":"Observation/lab-1","status":"200 OK"}`) ||
		!strings.Contains(mustJSON(got[0]), `"id":"lab-1"`) {
		t.Errorf("the answer of a create that found its record: %s", r.raw)
	}
	f.up.reset()
	r = f.do("POST", "/", patient, bundle("transaction",
		conditional("urn:uuid:c", "POST", "Observation", "identifier=urn:lab|C", mine), entry("", "POST", "Observation", member)))
	if e := f.sentEntries(); r.status != 200 || len(e) != 2 || e[0].Request["method"] != "POST" || mustJSON(e[1].Resource["hasMember"]) != `[{"reference":"urn:uuid:c"}]` {
		t.Errorf("a transaction naming a create by its urn: %d, went upstream as %+v", r.status, e)
	}
	f.up.reset()
	// In a batch, whose entries do not refer to each other, the found
	// record's urn names no entry that writes.
	r = f.do("POST", "/", patient, bundle("batch",
		conditional("urn:uuid:c", "POST", "Observation", "identifier=urn:lab|A", mine), entry("", "POST", "Observation", member)))
	if r.status != http.StatusBadRequest {
		t.Errorf("a batch naming a found record by its urn: %d %s", r.status, r.raw)
	}
	f.onlyReads("a batch naming a found record by its urn")

	// Each page of matches the proxy reads counts against the Bundle's
	// reads, beside the stored versions: 60 updates matching lab-1 read 120
	// times, 65 would read 130.
	for n, status := range map[int]int{60: 200, 65: http.StatusRequestEntityTooLarge} {
		var entries []string
		for range n {
			entries = append(entries, conditional("", "PUT", "Observation?identifier=urn:lab|A", "", mine))
		}
		if r := f.do("POST", "/", patient, bundle("batch", entries...)); r.status != status {
			t.Errorf("%d conditional updates: %d %.300s", n, r.status, r.raw)
		}
		if got := len(f.up.requests()); got > 128+1 {
			t.Errorf("%d conditional updates: %d upstream requests", n, got)
		}
		f.up.reset()
	}

	// With a clearance short of every label, a withheld record matches
	// nothing, batched as on its own (TestConditionalWritesByLabels).
	user := f.token("user/Observation.cruds", nil)
	if r := f.do("POST", "/", user, bundle("batch", conditional("", "PUT", "Observation?identifier=urn:lab|C", "", mine))); r.status != 200 ||
		f.sentBundle()[0]["method"] != "POST" {
		t.Errorf("a user's update matching a withheld record: %d %s", r.status, r.raw)
	}
	f.up.reset()
	withheld := f.do("POST", "/", user, bundle("batch", conditional("", "DELETE", "Observation?identifier=urn:lab|C", "", "")))
	f.onlyReads("a user's delete matching a withheld record")
	none := f.do("POST", "/", user, bundle("batch", conditional("", "DELETE", "Observation?identifier=urn:lab|Z", "", "")))
	f.onlyReads("a user's delete matching none")
	if withheld.status != http.StatusForbidden || withheld.raw != none.raw {
		t.Errorf("a user's delete matching a withheld record: %d %s; matching none: %s", withheld.status, withheld.raw, none.raw)
	}
}

// TestBatchedSearchesJudged: a batch's search is answered with one nested
// Bundle, which the proxy took for a Bundle record and answered as a
// missing one (404, found by probing), whatever the token. Each is now
// inspected as that search's own answer, with the access it was authorised
// with: entries the token may not see (a type it may not read, a label
// beyond its clearance) left out one by one, with the REDACTED mark, its
// Provenances kept with the records they are about, and with Base set its
// fullUrls moved and its page links signed, so its next page is followed
// as any. What the proxy would have to add to a judged search (an
// _elements selection's, a chain's resolution) is still refused.
func TestBatchedSearchesJudged(t *testing.T) {
	var received requestLog
	var up *httptest.Server
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.add(r.Method + " " + r.URL.RequestURI())
		w.Header().Set("Content-Type", "application/fhir+json")
		if r.Method == http.MethodGet { // a signed page of the batched search
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":%s}]}`, mustJSON(obs("lab-3", "p1", "laboratory")))
			return
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"batch-response","entry":[{"resource":{"resourceType":"Bundle","type":"searchset",`+
			`"link":[{"relation":"next","url":"%[1]s?_getpages=abc"}],"entry":[{"fullUrl":"%[1]s/Observation/lab-1","resource":%[2]s,"search":{"mode":"match"}},`+
			`{"resource":%[3]s,"search":{"mode":"match"}},{"resource":%[4]s,"search":{"mode":"include"}},{"resource":%[5]s,"search":{"mode":"include"}},`+
			`{"fullUrl":"%[1]s/Patient/p1","resource":{"resourceType":"Patient","id":"p1"},"search":{"mode":"include"}}]},"response":{"status":"200 OK"}}]}`,
			up.URL, mustJSON(obs("lab-1", "p1", "laboratory")), mustJSON(obs("psy-1", "p1", "laboratory", "R", "PSY")),
			mustJSON(provenance("prov-lab", "Observation/lab-1")), mustJSON(provenance("prov-psy", "Observation/psy-1")))
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	judged := f.token("user/Observation.rs user/Provenance.rs", nil)
	// (A search the proxy rewrites: TestBatchedSearchesRewritten.)
	for _, target := range []string{"Observation?patient.name=x", "Observation/_history", "?_type=Observation"} {
		body := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/lab-1"}},{"request":{"method":"GET","url":"` + target + `"}}]}`
		r := f.do("POST", "/", judged, body)
		if got := received.take(); r.status != http.StatusForbidden || len(got) != 0 || !strings.Contains(diagnostics(r), "batch entry 1") {
			t.Errorf("%s in a batch: %d %s, the server got %v", target, r.status, r.raw, got)
		}
	}
	search := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation?patient=p1&_include=Observation:patient&_revinclude=Provenance:target"}}]}`
	// nested is the search's Bundle in a batch response, and its entries' ids.
	nested := func(r result) (map[string]any, []string) {
		entries, _ := r.body["entry"].([]any)
		if len(entries) != 1 {
			return nil, nil
		}
		b, _ := entries[0].(map[string]any)["resource"].(map[string]any)
		return b, entryIDs(result{body: b})
	}
	r := f.do("POST", "/", f.token("user/Observation.rs", everyLabel()), search)
	if b, ids := nested(r); len(received.take()) != 1 || r.status != http.StatusOK || b["type"] != "searchset" || !slices.Equal(ids, []string{"lab-1", "psy-1"}) {
		t.Errorf("every label cleared: %d %.400s", r.status, r.raw) // (the Patient and the Provenances, which it may not read, left out)
	}
	// A clearance short of every label: the psychotherapy record and its
	// Provenance withheld, marked; the laboratory result's Provenance kept.
	// (The withheld record's Provenance is judged by reading it, as the
	// search on its own judges it.)
	r = f.do("POST", "/", judged, search)
	b, ids := nested(r)
	if got := received.take(); len(got) != 2 || got[1] != "GET /Observation/psy-1" || r.status != http.StatusOK || !slices.Equal(ids, []string{"lab-1", "prov-lab"}) ||
		!strings.Contains(mustJSON(b["meta"]), "REDACTED") {
		t.Errorf("the default clearance: %d %v %.400s, the server got %v", r.status, ids, r.raw, got)
	}
	g := newFixture(t) // (Base is read once)
	g.proxy.Upstream, g.proxy.Base = f.proxy.Upstream, g.base
	tok := g.token("user/Observation.rs", everyLabel())
	r = g.do("POST", "/", tok, search)
	b, ids = nested(r)
	next := result{body: b}.next()
	if len(received.take()) != 1 || r.status != http.StatusOK || !slices.Equal(ids, []string{"lab-1", "psy-1"}) || strings.Contains(r.raw, strings.TrimPrefix(up.URL, "http://")) ||
		!strings.HasPrefix(next, g.base+"?_page=") || !strings.Contains(r.raw, `"fullUrl":"`+g.base+`/Observation/lab-1"`) {
		t.Fatalf("every label cleared, with Base: %d %.500s", r.status, r.raw)
	}
	page := g.do("GET", strings.TrimPrefix(next, g.base), tok, "")
	if got := received.take(); page.status != http.StatusOK || !slices.Equal(entryIDs(page), []string{"lab-3"}) || len(got) != 1 || got[0] != "GET /?_getpages=abc" {
		t.Errorf("its next page: %d %v, the server got %v", page.status, entryIDs(page), got)
	}
}

// TestBatchedSearchesRewritten: a search in a batch goes upstream as the
// same search on its own would, with the patient and the constraints the
// proxy adds written into its entry, and its answer is judged alike (found
// by probing: a patient app could batch no search at all, and a token
// under a constrained scope none of the constrained type). The oracle is
// the search sent on its own: the URL the server gets, and the records,
// mark and total the client gets.
func TestBatchedSearchesRewritten(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		scope     string
		clearance *consent.Clearance
		search    string
	}{
		{"launch/patient patient/Observation.rs", nil, "Observation"},
		{"launch/patient patient/Observation.rs", nil, "Observation?category=laboratory&_elements=code"},
		{"launch/patient patient/Observation.rs", everyLabel(), "Patient/p1/Observation"},
		{"launch/patient patient/Observation.rs?category=laboratory", everyLabel(), "Observation"},
		{"launch/patient patient/Observation.rs?category=laboratory", nil, "Observation?_elements=code"}, // what the constraint reads kept, batched or not
		{"user/Observation.rs?category=laboratory", everyLabel(), "Observation?patient=Patient/p1"},
		{"user/Observation.rs user/Provenance.rs", nil, "Observation?patient=Patient/p1&_elements=code"},
		{"system/Observation.rs?category=laboratory", everyLabel(), "Observation?category=laboratory"},
		// A _count over the ceiling is lowered, in a history too (found by
		// fuzzing: batched, it went as written).
		{"user/Observation.rs", everyLabel(), "Observation?patient=Patient/p1&_count=5000"},
		{"user/Observation.rs", everyLabel(), "Observation/_history?_count=5000"},
	}
	for _, c := range cases {
		name := c.scope + " " + c.search
		tok := f.token(c.scope, c.clearance)
		f.up.reset()
		alone := f.do("GET", "/"+c.search, tok, "")
		got := f.up.requests()
		if alone.status != http.StatusOK || len(got) != 1 || len(entryIDs(alone)) == 0 {
			t.Fatalf("%s on its own: %d %.300s", name, alone.status, alone.raw)
		}
		want := strings.TrimPrefix(got[0].URL.RequestURI(), "/")
		f.up.reset()
		// Beside a read, which goes as it came (a read under a constrained
		// scope is not batched: it is a search on its own).
		read := entry("", "GET", "Observation/lab-1", "")
		if strings.Contains(c.scope, "?") {
			read = entry("", "GET", "Observation?code=none", "")
		}
		r := f.do("POST", "/", tok, bundle("batch", read, entry("", "GET", c.search, "")))
		if r.status != http.StatusOK {
			t.Errorf("%s in a batch: %d %.300s", name, r.status, r.raw)
			continue
		}
		if sent := f.sentBundle(); len(sent) != 2 || sent[1]["url"] != want || sent[1]["method"] != "GET" {
			t.Errorf("%s: the server got the entries %v, want the search as %q", name, sent, want)
		}
		entries, _ := r.body["entry"].([]any)
		if len(entries) != 2 {
			t.Errorf("%s: %d entries answered", name, len(entries))
			continue
		}
		nested, _ := entries[1].(map[string]any)["resource"].(map[string]any)
		in := result{body: nested}
		if !slices.Equal(entryIDs(in), entryIDs(alone)) || mustJSON(nested["meta"]) != mustJSON(alone.body["meta"]) || mustJSON(nested["total"]) != mustJSON(alone.body["total"]) {
			t.Errorf("%s: the batched answer %v (meta %v, total %v) is not the search's own %v (meta %v, total %v)", name,
				entryIDs(in), nested["meta"], nested["total"], entryIDs(alone), alone.body["meta"], alone.body["total"])
		}
	}
	// A server that ignores the constraint's parameter (and the patient):
	// on its own the search goes strict; in a batch, which cannot, the
	// proxy holds every match to the constraint itself.
	f.up.misbehave = true
	for _, scope := range []string{"user/Observation.rs?category=laboratory", "launch/patient patient/Observation.rs?category=laboratory"} {
		r := f.do("POST", "/", f.token(scope, everyLabel()), bundle("batch", entry("", "GET", "Observation", "")))
		entries, _ := r.body["entry"].([]any)
		var ids []string
		if len(entries) == 1 {
			nested, _ := entries[0].(map[string]any)["resource"].(map[string]any)
			ids = entryIDs(result{body: nested})
		}
		slices.Sort(ids)
		want := []string{"lab-1", "lab-2", "psy-1"}
		if strings.HasPrefix(scope, "launch/") {
			want = []string{"lab-1", "psy-1"}
		}
		if r.status != http.StatusOK || !slices.Equal(ids, want) {
			t.Errorf("%s, its parameter ignored: %d %v, want %v", scope, r.status, ids, want)
		}
	}
	f.up.misbehave = false
	// What cannot be sent as it would be on its own is refused, and nothing
	// goes upstream.
	for _, c := range []struct{ scope, entry string }{
		{"launch/patient patient/Observation.rs", entry("", "GET", "Observation?patient=p2", "")},
		{"launch/patient patient/Observation.rs", entry("", "GET", "Patient/p2/Observation", "")},
		{"launch/patient patient/Observation.rs", entry("", "GET", "Observation?subject.name=x", "")},
		{"launch/patient patient/Observation.rs", entry("", "GET", "Observation/_history", "")},
		{"launch/patient patient/Observation.rs", `{"request":{"method":"GET","url":"Observation","ifNoneMatch":"W/\"1\""}}`},
		{"user/Observation.rs?date=gt2020-01-01", entry("", "GET", "Observation?patient=p1", "")}, // a constraint the proxy cannot evaluate
		{"user/Observation.rs?category=laboratory", entry("", "GET", "Observation/lab-1", "")},    // a constrained read: a search on its own
		{"user/Observation.rs?category=laboratory", entry("", "GET", "Observation/_history", "")},
		{"user/Observation.rs?category=laboratory", `{"request":{"method":"GET","url":"Observation?patient=p1","ifNoneMatch":"W/\"1\""}}`},
	} {
		f.up.reset()
		f.refused(c.scope+" "+c.entry, f.do("POST", "/", f.token(c.scope, everyLabel()), bundle("batch", c.entry)), 403)
	}
	f.up.reset()
	f.refused("a _count that is no count", f.do("POST", "/", f.token("user/Observation.rs", everyLabel()),
		bundle("batch", entry("", "GET", "Observation?_count=many", ""))), 400)
	// A chain the proxy resolves itself, over what the clearance may see.
	chained := f.token("user/Observation.rs user/Patient.rs", nil)
	if r := f.do("GET", "/Observation?subject:Patient.name=One", chained, ""); r.status != http.StatusOK {
		t.Errorf("the chained search on its own: %d %.300s", r.status, r.raw)
	}
	f.up.reset()
	f.refused("a chain batched", f.do("POST", "/", chained, bundle("batch", entry("", "GET", "Observation?subject:Patient.name=One", ""))), 403)
}

// TestBatchedReadsInPart: a batched read asked for in part goes written
// anew with what the proxy judges by added to its _elements, as on its
// own (found by probing: it was refused as needing constraints), and is
// answered as on its own: the record in part, or the same absence.
func TestBatchedReadsInPart(t *testing.T) {
	f := newFixture(t)
	f.up.boundRecords()
	for _, c := range []struct {
		scope, read, sent, status string
	}{
		{"launch/patient patient/Observation.rs", "Observation/lab-1?_elements=code", "Observation/lab-1?_elements=code%2Cmeta%2Csubject", "200 OK"},
		{"launch/patient patient/Observation.rs", "Observation/lab-2?_elements=code", "Observation/lab-2?_elements=code%2Cmeta%2Csubject", "404 Not Found"},
		{"user/Binary.rs user/Observation.rs", "Binary/b-lab?_elements=contentType", "Binary/b-lab?_elements=contentType%2Cmeta%2CsecurityContext", "200 OK"},
		{"user/Binary.rs user/Observation.rs", "Binary/b-psy?_elements=contentType", "Binary/b-psy?_elements=contentType%2Cmeta%2CsecurityContext", "404 Not Found"},
	} {
		tok := f.token(c.scope, nil)
		alone := f.do("GET", "/"+c.read, tok, "")
		f.up.reset()
		r := f.do("POST", "/", tok, bundle("batch", entry("", "GET", c.read, "")))
		var sent struct {
			Entry []struct{ Request struct{ URL string } }
		}
		if len(f.up.bodies) > 0 {
			_ = json.Unmarshal([]byte(f.up.bodies[0]), &sent)
		}
		entries, _ := r.body["entry"].([]any)
		if r.status != 200 || len(entries) != 1 || len(sent.Entry) != 1 || sent.Entry[0].Request.URL != c.sent {
			t.Errorf("%s batched: %d %.200s, sent %v", c.read, r.status, r.raw, sent)
			continue
		}
		e := entries[0].(map[string]any)
		if status := e["response"].(map[string]any)["status"]; status != c.status {
			t.Errorf("%s batched: %v, want %s", c.read, status, c.status)
		}
		if c.status == "200 OK" && (mustJSON(e["resource"]) != mustJSON(alone.body) || alone.body["status"] != nil) {
			t.Errorf("%s batched: %s; on its own %s", c.read, mustJSON(e["resource"]), alone.raw)
		}
		f.up.reset()
	}
}
