package fhirproxy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/internal/jsonstrict"
	"github.com/smartkit/smartkit/scopes"
	"github.com/smartkit/smartkit/smart"
)

// testUpstream and testAudience are the bases testAccess's server is
// known by: absolute references on them are local.
const testUpstream, testAudience = "http://up", "https://ehr.example/fhir"

func testAccess(scope string) *access {
	tok := &smart.Token{Scopes: scopes.MustParseSet(scope), Scope: scope, Audience: testAudience}
	if !strings.HasPrefix(scope, "user/") {
		tok.Context.Patient = "p1"
	}
	a := new(access)
	up, _ := url.Parse(testUpstream)
	(&Proxy{Upstream: up}).accessFor(a, tok)
	return a
}

// bundle makes a searchset of n ~1 KB Observations, every seventh for p2.
func bundle(n int) []byte {
	var entries []any
	for i := range n {
		p := "p1"
		if i%7 == 6 {
			p = "p2"
		}
		entries = append(entries, map[string]any{"fullUrl": fmt.Sprint("https://x/Observation/o", i), "resource": map[string]any{
			"resourceType": "Observation", "id": fmt.Sprint("o", i), "status": "final",
			"subject": map[string]any{"reference": "Patient/" + p},
			"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}, "text": strings.Repeat("z", 800)},
			"meta":    map[string]any{"security": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"}}},
		}})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "searchset", "total": n, "entry": entries})
	return b
}

func TestInspectBody(t *testing.T) {
	a := testAccess("patient/Observation.rs")
	out, kept, ref := a.inspectBody(Interaction{Kind: SearchType, Type: "Observation"}, bundle(14))
	if ref != nil || len(kept) != 12 || strings.Contains(string(out), "Patient/p2") || strings.Contains(string(out), `"total"`) {
		t.Fatalf("kept %d, ref %v", len(kept), ref)
	}
	for name, body := range map[string]string{
		"duplicate subject": `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p2"},"subject":{"reference":"Patient/p1"}}`,
		"not JSON":          `<Observation/>`,
		"another patient":   `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p2"}}`,
		"no subject":        `{"resourceType":"Observation","id":"o1"}`,
		"wrong resource":    `{"resourceType":"Observation","id":"o2","subject":{"reference":"Patient/p1"}}`,
		// encoding/json matches member names case-insensitively and lets the
		// last win: it read p1 here, where a client reads subject = p2.
		"case-folded twin": `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p2"},"Subject":{"reference":"Patient/p1"}}`,
		"escaped twin":     `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"\u0073ubject":{"reference":"Patient/p2"}}`,
		"subject as text":  `{"resourceType":"Observation","id":"o1","subject":"Patient/p1"}`,
		"very restricted":  `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"}]}}`,
	} {
		if _, _, ref := a.inspectBody(Interaction{Kind: Read, Type: "Observation", ID: "o1"}, []byte(body)); ref == nil {
			t.Errorf("%s: let through", name)
		}
	}
	// A Bundle that loses entries keeps its other members byte for byte,
	// drops its total, and leaves out an entry array that became empty.
	in := Interaction{Kind: SearchType, Type: "Observation"}
	out, _, ref = a.inspectBody(in, []byte(`{"resourceType":"Bundle", "type":"searchset","total":2,"link":[{"relation":"self","url":"x?a=1"}],`+
		`"entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"}}},{"resource":{"resourceType":"Observation","id":"b","subject":{"reference":"Patient/p2"}}}]}`))
	if want := `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"x?a=1"}],"entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"}}}]}`; ref != nil || string(out) != want {
		t.Errorf("filtered Bundle:\n got %s\nwant %s", out, want)
	}
	out, _, _ = a.inspectBody(in, []byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"b","subject":{"reference":"Patient/p2"}}}],"total":1}`))
	if string(out) != `{"resourceType":"Bundle"}` {
		t.Errorf("emptied Bundle: %s", out)
	}
	clear := testAccess("patient/Observation.rs")
	clear.clearance = consent.Clearance{MaxConfidentiality: consent.VeryRestricted}
	if _, _, ref := clear.inspectBody(Interaction{Kind: Read, Type: "Observation", ID: "o1"},
		[]byte(`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"}]}}`)); ref != nil {
		t.Errorf("a cleared token was refused: %v", ref)
	}
}

// BenchmarkInspectBundle inspects a 200 KB searchset that needs inspection
// and passes untouched (the common case: everything is the patient's).
func BenchmarkInspectBundle(b *testing.B) {
	body := bundle(200)
	var keepAll []byte
	{
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		for _, e := range m["entry"].([]any) {
			e.(map[string]any)["resource"].(map[string]any)["subject"] = map[string]any{"reference": "Patient/p1"}
		}
		keepAll, _ = json.Marshal(m)
	}
	a := testAccess("patient/Observation.rs")
	in := Interaction{Kind: SearchType, Type: "Observation"}
	b.SetBytes(int64(len(keepAll)))
	b.ReportAllocs()
	for b.Loop() {
		if _, kept, ref := a.inspectBody(in, keepAll); ref != nil || len(kept) != 200 {
			b.Fatal(ref)
		}
	}
}

// BenchmarkInspectBundleFiltering is the same Bundle with entries to remove.
func BenchmarkInspectBundleFiltering(b *testing.B) {
	body := bundle(200)
	a := testAccess("patient/Observation.rs")
	in := Interaction{Kind: SearchType, Type: "Observation"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ref := a.inspectBody(in, body); ref != nil {
			b.Fatal(ref)
		}
	}
}

// BenchmarkBaselineDecodeMinimal is encoding/json decoding the same Bundle
// into a minimal struct: the floor inspection is compared with.
func BenchmarkBaselineDecodeMinimal(b *testing.B) {
	body := bundle(200)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			ResourceType string `json:"resourceType"`
			Entry        []struct {
				Resource struct {
					ResourceType string `json:"resourceType"`
					ID           string `json:"id"`
					Subject      struct {
						Reference string `json:"reference"`
					} `json:"subject"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParsePath: classification never panics, and whatever it accepts
// re-serialises to a request it classifies the same way.
func FuzzParsePath(f *testing.F) {
	for _, s := range [][3]string{{"GET", "/Observation", "patient=p1&_include=Observation:subject"}, {"GET", "/Patient/p1/$everything", ""},
		{"PUT", "/Observation/1", ""}, {"GET", "/Patient/p1/Observation", "code=a%2Cb"}, {"POST", "/", ""}, {"GET", "/Observation/1/_history/2", ""},
		{"GET", "/Patient/../x", ""}, {"DELETE", "/Observation", "identifier=x"}, {"GET", "/Observation/1", "_elements=status"},
		{"GET", "/Appointment", "_elements:exclude=meta&_summary=text"}, {"GET", "/Observation", "_contained=true&_elements=id,meta"},
		{"GET", "/Patient/p1/Observation", "_elements:exclude=meta"}, {"GET", "/Observation", "encounter:Encounter.subject=x"},
		{"GET", "/Patient", "_has:Observation:subject:code=x"}, {"GET", "/Observation", "_summary=count"}, {"GET", "/Binary/b1", "_elements=data"},
		{"DELETE", "/Observation/1", "_cascade=delete"}, {"DELETE", "/Observation", "code=x&_cascade=delete"}, {"POST", "/Observation", "_format=json"},
		{"GET", "/Observation/$lastn", "subject=Patient/p2&_elements=code&max=2"}, {"GET", "/ValueSet/$expand", "url=http://x/vs&filter=a"},
		{"GET", "/CodeSystem/cs/$lookup", "code=a&property=display"}, {"GET", "/Observation/1", "_id=2&_summary=true"},
		{"GET", "/Observation/_history", "_since=2020&_getpages=x"}, {"GET", "/Observation", "_type=Patient&_graph=g"},
		{"GET", "/Observation", "_has:Observation:has-member:_has:Condition:subject:code=x&subject:Patient.name=a&_sort=-patient.birthdate"},
		{"GET", "/Patient/p1/Condition", "_revinclude=Provenance:target&_revinclude=Provenance:target:Condition"},
		{"GET", "/Condition", "_revinclude=Provenance:target:Observation"}, {"GET", "/Condition", "_revinclude=Provenance:targets"},
		{"GET", "/Observation", "patient._has:Observation:subject:_security=PSY"}, {"GET", "/Observation", "encounter._filter=x"},
		{"GET", "/Observation", "encounter.identifier=x&subject:Patient.name=y"}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, method, path, query string) {
		in, err := parsePath(method, path, query, Limits{})
		if err != nil {
			return
		}
		if in.Kind == Operation && method != "GET" && method != "POST" {
			t.Fatalf("%s %s: an operation invoked with %s", method, path, method)
		}
		for _, p := range in.Params { // checkParamNames, criteriaTypes
			base, _, _ := strings.Cut(p.Name, ":")
			types := criteriaTypes(p)
			functional := !slices.ContainsFunc(strings.Split(p.Value, ","), func(v string) bool { return !strings.HasPrefix(v, "$") })
			readsOthers := strings.Contains(p.Name, ".") && !strings.HasPrefix(base, "_") || base == "_has" || base == "_list" && !functional ||
				base == "_filter" || base == "_query" || base == "_sort" && strings.Contains(p.Value, ".")
			if readsOthers && len(types) == 0 {
				t.Fatalf("%s?%s: parameter %s reads other records, and criteriaTypes names none", path, query, p.Name)
			}
			for _, typ := range types {
				if typ != "*" && !knownType(typ) {
					t.Fatalf("%s?%s: criteriaTypes(%s) names %q", path, query, p.Name, typ)
				}
			}
			if (in.Kind == Read || in.Kind == VRead) && base != "_format" && base != "_pretty" && base != "_summary" && base != "_elements" ||
				base == "_type" && (in.Kind == SearchType || in.Kind == SearchCompart) {
				t.Fatalf("%s %s?%s: a %s with parameter %s", method, path, query, in.Kind, p.Name)
			}
		}
		if n, want := encodedLen(in.Params), len(encodeQuery(in.Params)); n != want {
			t.Fatalf("encodedLen %d, encodeQuery's length %d, for %q", n, want, query)
		}
		if !in.forwardable(Limits{}) {
			return // refused before it is forwarded
		}
		again, err := parsePath(method, in.path(), encodeQuery(in.Params), Limits{})
		if err != nil {
			t.Fatalf("%s %s?%s parsed, its re-serialisation %s?%s did not: %v", method, path, query, in.path(), encodeQuery(in.Params), err)
		}
		if again.Kind != in.Kind || again.Type != in.Type || again.ID != in.ID || again.Compartment != in.Compartment ||
			len(again.Params) != len(in.Params) {
			t.Fatalf("%s %s?%s: %+v re-parses as %+v", method, path, query, in, again)
		}
		for _, seg := range strings.Split(strings.TrimPrefix(in.path(), "/"), "/") {
			if seg == "." || seg == ".." || seg == "" && in.path() != "/" {
				t.Fatalf("re-serialised path %q has a dot or empty segment", in.path())
			}
		}
		// A write carries no instruction for the server: a create or an
		// instance write no query but _format, a conditional write no
		// underscored name outside the search criteria.
		for _, prm := range in.Params {
			switch write := in.Kind == Create || in.Kind == Update || in.Kind == Patch || in.Kind == Delete; {
			case prm.Name == "_format", !write:
			case !in.Conditional, !criterion(prm.Name):
				t.Fatalf("%s %s?%s: a write with %s", method, path, query, prm.Name)
			}
		}
		// What a judged answer is judged by is never selected away: an
		// authorised request keeps meta, and a patient/ token's compartment
		// references, in any _elements, and carries no selection the proxy
		// cannot extend. And with labels judged (neither token's clearance
		// releases every label), it searches by nothing the proxy does not
		// judge and counts nothing it withholds.
		for _, scope := range []string{"launch/patient patient/*.cruds", "user/*.cruds"} {
			a, in := testAccess(scope), in
			in.Params = slices.Clone(in.Params)
			if (&Proxy{}).authorize(&in, a) != nil {
				continue
			}
			// A patient/ token's search of a compartment type goes with the
			// compartment parameter, naming the patient only (a search sent
			// as an operation, $lastn, too).
			if c, ok := compartment[in.Type]; ok && a.patient != "" && in.Kind == SearchType && in.unwrap == "" {
				vals := values(in.Params, c.param)
				if len(vals) == 0 {
					t.Fatalf("%s %s?%s: forwarded as %s?%s, without %s", method, path, query, in.path(), encodeQuery(in.Params), c.param)
				}
				for _, v := range vals {
					for _, one := range strings.Split(v, ",") {
						if !refersTo(one, a.patient, true, a) {
							t.Fatalf("%s %s?%s: forwarded with %s=%s", method, path, query, c.param, v)
						}
					}
				}
			}
			for _, prm := range in.Params {
				base, mod, _ := strings.Cut(prm.Name, ":")
				switch {
				case (base == "_elements" || base == "_summary" || base == "_contained" || base == "_containedType") && mod != "",
					base == "_contained" || base == "_containedType", searchesOthers(prm.Name) && !(in.chained && simpleChain(prm.Name)),
					base == "_summary" && prm.Value == "count" && !in.counts, // (counted by the proxy)
					// A patient/ token's only reverse include is US Core's.
					base == "_revinclude" && a.patient != "" && (prm.Name != "_revinclude" ||
						prm.Value != "Provenance:target" && prm.Value != "Provenance:target:"+in.Type):
					t.Fatalf("%s %s?%s with %s: %s=%s was forwarded", method, path, query, scope, prm.Name, prm.Value)
				case in.chained && simpleChain(prm.Name):
					// A chain the proxy resolves: its criteria search by
					// nothing else, and a patient/ token's goes through no
					// patient reference.
					ref, rest, _ := strings.Cut(prm.Name, ".")
					refBase, _, _ := strings.Cut(ref, ":")
					switch restBase, _, _ := strings.Cut(rest, ":"); {
					case restBase == "_has" || restBase == "_filter" || restBase == "_list" || restBase == "_query",
						a.patient != "" && patientParams[refBase]:
						t.Fatalf("%s %s?%s with %s: the chain %s is resolved", method, path, query, scope, prm.Name)
					}
				case base == "_elements":
					els := strings.Split(prm.Value, ",")
					if !slices.Contains(els, "meta") || in.Type == "Binary" && !slices.Contains(els, "securityContext") {
						t.Fatalf("%s %s?%s with %s: _elements=%s lacks meta or a Binary's securityContext", method, path, query, scope, prm.Value)
					}
					if c, ok := compartment[in.Type]; ok && a.patient != "" {
						for _, f := range c.fields {
							if top, _, _ := strings.Cut(f, "."); !slices.Contains(els, top) {
								t.Fatalf("%s %s?%s: _elements=%s lacks %s", method, path, query, prm.Value, top)
							}
						}
					}
				}
			}
		}
	})
}

// p1s reports whether a decoded resource is patient p1's: p1 itself, or a
// compartment type whose reference field names p1 (relatively, or on the
// upstream's base or the token's audience; p1 on another server is
// another patient).
func p1s(res map[string]any) bool {
	names := func(ref any) bool {
		switch ref {
		case "Patient/p1", testUpstream + "/Patient/p1", testAudience + "/Patient/p1":
			return true
		}
		return false
	}
	typ, _ := res["resourceType"].(string)
	if typ == "Patient" {
		return res["id"] == "p1"
	}
	ct, ok := compartment[typ]
	if !ok {
		return false
	}
	for _, f := range ct.fields {
		if f == "participant.actor" {
			ps, _ := res["participant"].([]any)
			for _, p := range ps {
				p, _ := p.(map[string]any)
				if a, _ := p["actor"].(map[string]any); a != nil && names(a["reference"]) {
					return true
				}
			}
			continue
		}
		if r, _ := res[f].(map[string]any); r != nil && names(r["reference"]) {
			return true
		}
	}
	return false
}

// aboutSent reports whether a decoded Provenance is about records in sent
// (by Type/id): it has 1 to 8 targets, each naming one of them, relatively
// or on the upstream's base or the token's audience, a version or not.
func aboutSent(res map[string]any, sent map[string]bool) bool {
	targets, _ := res["target"].([]any)
	if len(targets) == 0 || len(targets) > 8 {
		return false
	}
	for _, t := range targets {
		t, _ := t.(map[string]any)
		ref, _ := t["reference"].(string)
		for _, base := range []string{testUpstream + "/", testAudience + "/"} {
			ref = strings.TrimPrefix(ref, base)
		}
		if segs := strings.Split(ref, "/"); len(segs) == 4 && segs[2] == "_history" {
			ref = segs[0] + "/" + segs[1]
		}
		if !sent[ref] {
			return false
		}
	}
	return true
}

// clearedFor reads a resource's labels with encoding/json, exact member
// names, as a FHIR client does, and reports whether a's clearance allows
// them.
func clearedFor(a *access, res map[string]any) bool {
	meta, _ := res["meta"].(map[string]any)
	labels, _ := meta["security"].([]any)
	for _, l := range labels {
		l, _ := l.(map[string]any)
		code, _ := l["code"].(string)
		switch l["system"] {
		case "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "http://hl7.org/fhir/v3/Confidentiality", "urn:oid:2.16.840.1.113883.5.25":
			if !a.clearance.Allows(consent.Confidentiality(code), nil) {
				return false
			}
		case "http://terminology.hl7.org/CodeSystem/v3-ActCode", "http://hl7.org/fhir/v3/ActCode", "urn:oid:2.16.840.1.113883.5.4":
			if !a.clearance.Allows("", []string{code}) {
				return false
			}
		}
	}
	return true
}

// FuzzInspectBody: the inspector never panics and never lets another
// patient's resource out (a Provenance only with p1's records before it).
func FuzzInspectBody(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`))
	f.Add(bundle(3))
	f.Add(typeFirst(bundle(3)))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"p2"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"404 Not Found"}},{"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}},"response":{"status":"200"}}]}`))
	f.Add([]byte(`{"resourceType":"Observation","id":"o1","Subject":{"reference":"Patient/p1"},"subject":{"reference":"Patient/p2"}}`))
	f.Add([]byte(`{"resourceType":"Bundle","total":2,"entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"}}},{"resource":{"resourceType":"Observation","id":"b","\u0073ubject":{"reference":"Patient/p2"}}}],"link":[]}`))
	f.Add([]byte(`{"resourceType":"Bundle","link":[{"relation":"next","url":"http://up/Observation?ct=2"},{"url":"http://upstream/x"},{"url":"http://up?_getpages=1"}],"entry":[{"fullUrl":"http://up/Observation/o1","resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","total":5,"link":[{"relation":"next","url":"http://up/Observation?ct=2"}],"entry":[{"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","total":2,"entry":[{"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}},"search":{"mode":"match"}},{"resource":{"resourceType":"Practitioner","id":"dr"},"search":{"mode":"include"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","link":[{"url":"http://up/Observation?p=2","relation":"self"},{"url":"http://up/Observation?p=3","relation":"next"},{"relation":"next","url":"http://up/x"}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"http://up/Patient/p1"}}},` +
		`{"resource":{"resourceType":"Observation","id":"b","subject":{"reference":"https://other.example/fhir/Patient/p1"}}},` +
		`{"resource":{"resourceType":"Observation","id":"c","subject":{"reference":"https://ehr.example/fhir/Patient/p1"}}},` +
		`{"resource":{"resourceType":"Observation","id":"d","subject":{"reference":"http://upstream/Patient/p1"}}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"},"category":[{"coding":[{"code":"laboratory"}]}]},"search":{"mode":"include"}},` +
		`{"resource":{"resourceType":"Observation","id":"b","subject":{"reference":"Patient/p1"},"category":[{"coding":[{"code":"vital-signs"}]}]}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"}}},` +
		`{"resource":{"resourceType":"Provenance","id":"pa","target":[{"reference":"Observation/a/_history/2"}]},"search":{"mode":"include"}},` +
		`{"resource":{"resourceType":"Provenance","id":"pb","target":[{"reference":"Observation/a"},{"reference":"Observation/b"}]}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"batch-response","entry":[{"fullUrl":"http://up/Observation/o1","response":{"status":"409 Conflict",` +
		`"location":"Observation/o1/_history/2","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"conflict","diagnostics":"Observation/x"}]}}},` +
		`{"resource":{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"processing","details":{"text":"x"}}]},"search":{"mode":"outcome"}}]}`))
	f.Add([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"Patient/p2"}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},` +
		`"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]}}},` +
		`{"resource":{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/p1"}},"search":{"mode":"include"}},` +
		`{"resource":{"resourceType":"Encounter","id":"e2","subject":{"reference":"Patient/p1"}},"search":{"mode":"include"}}]}`))
	a := testAccess("patient/*.rs")
	a.provenances = true // as a search with _revinclude=Provenance:target
	// Under a constraint whose answer may hold what the server did not
	// match (an include): access.judgeEntry.
	held := testAccess("patient/Patient.rs patient/Observation.rs?category=laboratory")
	held.constrained, held.unmatched = "Observation", true
	held.included, _ = compileConstraint("Observation", held.tok.Scopes.Check(scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Search}))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p2"}}},` +
		`{"resource":{"resourceType":"Observation","id":"b","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]}}},` +
		`{"resource":{"resourceType":"Provenance","id":"pa","target":[{"reference":"http://up/Observation/a"}]}},` +
		`{"resource":{"resourceType":"Provenance","id":"pb","target":[{"reference":"Observation/b"}]}},` +
		`{"resource":{"resourceType":"Provenance","id":"pc","target":[{"reference":"Observation/c"}]}},` +
		`{"resource":{"resourceType":"Observation","id":"c"}}]}`))
	// A clinician (user/, no patient) of the default clearance: labels are
	// judged, and a Provenance goes only after the records it is about
	// (the reads that judge the others are off here: access.targets).
	clinician := testAccess("user/*.rs")
	clinician.provenances = true
	moving := testAccess("patient/*.rs")
	moving.provenances = true
	including := testAccess("patient/*.rs") // a search with _include (includes.go)
	including.includes = true
	moving.relink = &relinker{"http://up", "https://proxy.example/fhir", &Proxy{}}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The next link a chain's search follows is the one encoding/json
		// finds, and nextURL finds one exactly when nextLink says there is.
		var doc struct{ Link json.RawMessage }
		if json.Unmarshal(body, &doc) == nil && doc.Link != nil && jsonstrict.Check(doc.Link) == nil {
			member := append([]byte(`"link":`), doc.Link...)
			next, found := nextURL(member)
			if found != nextLink(member) {
				t.Fatalf("nextURL %v, nextLink %v, for %s", found, nextLink(member), doc.Link)
			}
			var links []map[string]any
			if json.Unmarshal(doc.Link, &links) == nil {
				want, wantFound := "", false
				for _, l := range links {
					if l["relation"] == "next" {
						want, _ = l["url"].(string)
						wantFound = true
						break
					}
				}
				if found != wantFound || next != want {
					t.Fatalf("nextURL %q %v, want %q %v, for %s", next, found, want, wantFound, doc.Link)
				}
			}
		}
		// Moving links changes nothing else, and moves every link and
		// fullUrl on the upstream's base.
		if out, _, ref := moving.inspectBody(Interaction{Kind: SearchType, Type: "Observation"}, body); ref == nil {
			plain, _, _ := a.inspectBody(Interaction{Kind: SearchType, Type: "Observation"}, body)
			var got, want any
			if json.Unmarshal(out, &got) != nil || json.Unmarshal(plain, &want) != nil {
				t.Fatalf("invalid JSON out of %q: %q / %q", body, out, plain)
			}
			rl := moving.relink
			move := func(list, out any, key string) {
				items, _ := list.([]any)
				outs, _ := out.([]any)
				for i, it := range items {
					m, ok := it.(map[string]any)
					u, isString := m[key].(string)
					if !ok || !isString {
						continue
					}
					rest, below := rl.below(u)
					switch {
					case !below:
					case key == "url" && pageLink(rest):
						// A page link comes back signed, naming the same page.
						g, _ := outs[i].(map[string]any)[key].(string)
						tok, ok := strings.CutPrefix(g, rl.to+"?"+pageParam+"=")
						if pg, opened := rl.p.openPage(tok, time.Now()); !ok || !opened || pg.Upstream != rest {
							t.Fatalf("page link %q became %q", u, g)
						}
						m[key] = g
					default:
						m[key] = rl.to + rest
					}
				}
			}
			if doc, ok := want.(map[string]any); ok && doc["resourceType"] == "Bundle" {
				gotDoc, _ := got.(map[string]any)
				move(doc["link"], gotDoc["link"], "url")
				move(doc["entry"], gotDoc["entry"], "fullUrl")
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("moving links turned %q into %q (without: %q)", body, out, plain)
			}
		}
		// A patient's access hears none of the server's words: every
		// OperationOutcome it gets is the proxy's.
		for _, in := range []Interaction{{Kind: SearchType, Type: "Observation"}, {Kind: Batch}} {
			if out, _, ref := moving.inspectBody(in, body); ref == nil {
				var doc any
				_ = json.Unmarshal(out, &doc)
				if words := serverWordsIn(doc); words != "" {
					t.Fatalf("%v: the server's words %s went out of %q: %q", in.Kind, words, body, out)
				}
			}
		}
		// The streamed filter must agree with the whole-body one, also for a
		// search's Bundle written entries first, and for one with includes.
		if bundle, entryFirst := bundleHead(body); bundle || entryFirst {
			for _, acc := range []*access{a, including} {
				whole, _, ref := acc.inspectBody(Interaction{Kind: SearchType, Type: "Observation"}, body)
				streamed, _, err := streamOut(acc, iotest.HalfReader(bytes.NewReader(body)), 1<<20, !bundle)
				if (err == nil) != (ref == nil) {
					t.Fatalf("whole-body %v, streamed %v, for %q", ref, err, body)
				}
				if err == nil && !reflect.DeepEqual(decoded(t, streamed), decoded(t, whole)) {
					t.Fatalf("streamed %s, whole %s", streamed, whole)
				}
			}
		}
		for _, in := range []Interaction{{Kind: SearchType, Type: "Observation"}, {Kind: Batch}, {Kind: HistoryInstance, Type: "Provenance", ID: "pa"}} {
			out, _, ref := clinician.inspectBody(in, body)
			if ref != nil {
				continue
			}
			var doc map[string]any
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatalf("produced invalid JSON %q", out)
			}
			entries, _ := doc["entry"].([]any)
			sent := map[string]bool{}
			for _, e := range entries {
				e, _ := e.(map[string]any)
				res, ok := e["resource"].(map[string]any)
				if !ok || res["resourceType"] == "OperationOutcome" {
					continue
				}
				typ, _ := res["resourceType"].(string)
				id, _ := res["id"].(string)
				if !clearedFor(clinician, res) || typ == "Provenance" && !aboutSent(res, sent) {
					t.Fatalf("a clinician's %v let out %v of %q", in.Kind, res, body)
				}
				sent[typ+"/"+id] = true
			}
			if bundle, entryFirst := bundleHead(body); in.Kind == SearchType && (bundle || entryFirst) {
				streamed, _, err := streamOut(clinician, bytes.NewReader(body), 1<<20, !bundle)
				if err == nil && !reflect.DeepEqual(decoded(t, streamed), decoded(t, out)) {
					t.Fatalf("a clinician's, streamed %s, whole %s", streamed, out)
				}
			}
		}
		// Under the constraint, an Observation the answer does not mark as
		// a match goes out only when its category is laboratory, as
		// encoding/json reads it; the streamed filter agrees.
		search := Interaction{Kind: SearchType, Type: "Observation"}
		if out, _, ref := held.inspectBody(search, body); ref == nil {
			var doc map[string]any // exact member names, as a FHIR client reads them
			_ = json.Unmarshal(out, &doc)
			entries, _ := doc["entry"].([]any)
			for _, e := range entries {
				e, _ := e.(map[string]any)
				res, _ := e["resource"].(map[string]any)
				search, _ := e["search"].(map[string]any)
				if res["resourceType"] == "Observation" && search["mode"] != "match" && !categorised(res, "laboratory") {
					t.Fatalf("an Observation not matched went out outside the constraint: %q", out)
				}
			}
			if bundle, entryFirst := bundleHead(body); bundle || entryFirst {
				streamed, _, err := streamOut(held, bytes.NewReader(body), 1<<20, !bundle)
				if err == nil && !reflect.DeepEqual(decoded(t, streamed), decoded(t, out)) {
					t.Fatalf("under the constraint, streamed %s, whole %s", streamed, out)
				}
			}
		}
		for _, in := range []Interaction{{Kind: Read, Type: "Observation", ID: "o1"}, {Kind: SearchType, Type: "Observation"},
			{Kind: Batch}, {Kind: HistoryInstance, Type: "Observation", ID: "o1"}} {
			out, kept, ref := a.inspectBody(in, body)
			if ref != nil {
				continue
			}
			if in.Kind == HistoryInstance && len(kept) == 0 && bytes.Contains(out, []byte(`"Bundle"`)) {
				t.Fatalf("a history with no visible version went out: %q", out)
			}
			if in.Kind == Batch { // entries stay in place
				var before, after struct{ Entry []json.RawMessage }
				_ = json.Unmarshal(body, &before)
				_ = json.Unmarshal(out, &after)
				if len(after.Entry) != len(before.Entry) {
					t.Fatalf("a batch response of %d entries went out with %d: %q", len(before.Entry), len(after.Entry), out)
				}
			}
			for _, k := range kept {
				if !k.inCompartment(a) && !a.shared(k.ResourceType) && (k.ResourceType != "Provenance" || in.Kind == Read || in.Kind == Batch) {
					// (A Provenance in a Bundle is checked below, against what goes out before it.)
					t.Fatalf("let through %s/%s outside the compartment", k.ResourceType, k.ID)
				}
			}
			// An independent reading of what goes out, with encoding/json
			// and exact member names, as a FHIR client reads it.
			var doc map[string]any
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatalf("produced invalid JSON %q", out)
			}
			if doc["resourceType"] != "Bundle" {
				if doc["resourceType"] != "OperationOutcome" && !p1s(doc) {
					t.Fatalf("let out %q", out)
				}
				continue
			}
			entries, _ := doc["entry"].([]any)
			matches := 0
			sent := map[string]bool{} // p1's records gone out so far, which a Provenance after them may be about
			for _, e := range entries {
				e, _ := e.(map[string]any)
				if res, ok := e["resource"].(map[string]any); ok && res["resourceType"] != "OperationOutcome" && !p1s(res) {
					if rt, _ := res["resourceType"].(string); !a.shared(rt) && !(rt == "Provenance" && aboutSent(res, sent)) {
						t.Fatalf("let out an entry %v of %q", res, body)
					}
				} else if ok && p1s(res) {
					typ, _ := res["resourceType"].(string)
					id, _ := res["id"].(string)
					sent[typ+"/"+id] = true
				}
				if search, _ := e["search"].(map[string]any); search["mode"] != "include" && search["mode"] != "outcome" {
					matches++
				}
			}
			// Labels are judged (the access has the default clearance): a
			// total goes out only for a whole result, counting no more
			// than the matches that go out.
			if total, ok := doc["total"].(float64); ok && in.Kind != Batch {
				links, _ := doc["link"].([]any)
				for _, l := range links {
					if l, _ := l.(map[string]any); l["relation"] == "next" {
						t.Fatalf("a total with a next link went out: %q", out)
					}
				}
				if total > float64(matches) {
					t.Fatalf("a total of %v with %d matches went out: %q", total, matches, out)
				}
			}
		}
	})
}

// BenchmarkInspectResource inspects a single ~1 KB Observation read.
func BenchmarkInspectResource(b *testing.B) {
	body, _ := json.Marshal(map[string]any{"resourceType": "Observation", "id": "o1", "status": "final",
		"subject":  map[string]any{"reference": "Patient/p1"},
		"code":     map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}, "text": strings.Repeat("z", 800)},
		"category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}}}}})
	a := testAccess("patient/Observation.rs")
	in := Interaction{Kind: Read, Type: "Observation", ID: "o1"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ref := a.inspectBody(in, body); ref != nil {
			b.Fatal(ref)
		}
	}
}

// TestSegments: paths of any length split as strings.Split would, and the
// long ones are refused, not mis-split.
func TestSegments(t *testing.T) {
	for _, p := range []string{"/a/b/c/d/e/f/g/h", "/Patient/p1/Observation/", "/Observation//1", "/Patient/p1/$everything/x/y/z/w"} {
		if _, err := parsePath("GET", p, "", Limits{}); err == nil {
			t.Errorf("%s parsed", p)
		}
	}
}

// TestPageTokens: a signed page link opens only with the key it was
// signed with (nodes sharing PageKey share links), only until it expires,
// and only for page links at the base.
func TestPageTokens(t *testing.T) {
	now := time.Now()
	ref := pageRef{pageHolder: pageHolder{Grant: "g1", Patient: "p1"}, Type: "Observation", Upstream: "?_getpages=abc", Expires: now.Add(pageTTL).Unix()}
	a, b := &Proxy{PageKey: []byte("shared secret")}, &Proxy{PageKey: []byte("shared secret")}
	tok := a.signPage(ref)
	if got, ok := b.openPage(tok, now); !ok || got != ref {
		t.Errorf("a node with the same key: %v %v", got, ok)
	}
	// What the search was, carried whole.
	held := ref
	held.Held, held.Everything, held.Provenances = true, "p1", true
	if got, ok := a.openPage(a.signPage(held), now); !ok || got != held {
		t.Errorf("a held page: %+v %v", got, ok)
	}
	if _, ok := (&Proxy{}).openPage(tok, now); ok {
		t.Error("opened with another key")
	}
	if _, ok := a.openPage(tok, now.Add(pageTTL+time.Minute)); ok {
		t.Error("opened after it expired")
	}
	ref.Upstream = "/Observation?ct=2" // not a page link at the base
	if _, ok := a.openPage(a.signPage(ref), now); ok {
		t.Error("opened a link that is not at the base")
	}
}

// TestExportLinks: an export link opens only with the key it was sealed
// with, unaltered, for its use, until it expires; it carries the user's
// subject as audit.Ref; a file in object storage opens only while
// ExportStorage names it.
func TestExportLinks(t *testing.T) {
	now := time.Now()
	ref := exportRef{Use: "file", Client: "c1", Subject: audit.Ref("u1"), Type: "Observation", Upstream: "/files/o.ndjson", Expires: now.Add(exportTTL).Unix()}
	a, b := &Proxy{PageKey: []byte("shared secret")}, &Proxy{PageKey: []byte("shared secret")}
	tok := a.signExport(ref)
	if got, ok := b.openExport(tok, "file", now); !ok || got != ref {
		t.Errorf("a node with the same key: %+v %v", got, ok)
	}
	if tok == a.signExport(ref) {
		t.Error("two seals of one link are alike (no fresh nonce)")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for i := range raw {
		altered := slices.Clone(raw)
		altered[i] ^= 1
		if _, ok := a.openExport(base64.RawURLEncoding.EncodeToString(altered), "file", now); ok {
			t.Fatalf("opened with byte %d altered", i)
		}
	}
	for name, open := range map[string]func() bool{
		"another key":   func() bool { _, ok := (&Proxy{PageKey: []byte("other")}).openExport(tok, "file", now); return ok },
		"another use":   func() bool { _, ok := a.openExport(tok, "job", now); return ok },
		"expired":       func() bool { _, ok := a.openExport(tok, "file", now.Add(exportTTL+time.Minute)); return ok },
		"a page link's": func() bool { _, ok := a.openPage(tok, now); return ok },
		"truncated":     func() bool { _, ok := a.openExport(tok[:20], "file", now); return ok },
	} {
		if open() {
			t.Errorf("opened: %s", name)
		}
	}
	stored := ref
	stored.Upstream = "https://acct.blob.example/exports/o.ndjson?sig=x"
	tok = a.signExport(stored)
	if _, ok := a.openExport(tok, "file", now); ok {
		t.Error("a file in storage opened without ExportStorage")
	}
	a.ExportStorage = []string{"https://acct.blob.example/exports/"}
	if got, ok := a.openExport(tok, "file", now); !ok || got != stored {
		t.Errorf("a file in storage: %+v %v", got, ok)
	}
	stored.Use = "job" // a status is followed on the server's base only
	if _, ok := a.openExport(a.signExport(stored), "job", now); ok {
		t.Error("a status in storage opened")
	}
}

func TestResourceRef(t *testing.T) {
	for _, c := range []struct {
		in         Interaction
		path, want string
	}{
		{Interaction{Kind: Read, Type: "Observation", ID: "o1"}, "/Observation/o1", "Observation/o1"},
		{Interaction{Kind: VRead, Type: "Observation", ID: "o1"}, "/Observation/o1/_history/2", "Observation/o1"},
		{Interaction{Kind: Read, Type: "Observation", ID: "o1"}, "/Observation/o2", "Observation/o1"},
		{Interaction{Kind: Read, Type: "Observation", ID: "o1"}, "/Patient/o1xx", "Observation/o1"},
		{Interaction{Kind: SearchType, Type: "Observation"}, "/Observation", "Observation"},
		{Interaction{Kind: SearchSystem}, "/", ""},
	} {
		if got := resourceRef(&c.in, c.path); got != c.want {
			t.Errorf("resourceRef(%+v, %q) = %q, want %q", c.in, c.path, got, c.want)
		}
	}
}

// TestAnswerShapes: an answer must have the shape its interaction calls
// for; entries outside a Bundle are never passed unjudged.
func TestAnswerShapes(t *testing.T) {
	a := testAccess("patient/Observation.rs patient/Bundle.rs")
	p2 := `{"resource":{"resourceType":"Observation","id":"x","subject":{"reference":"Patient/p2"}}}`
	read := Interaction{Kind: Read, Type: "Observation", ID: "o1"}
	search := Interaction{Kind: SearchType, Type: "Observation"}
	for name, c := range map[string]struct {
		in   Interaction
		body string
	}{
		"entries in an OperationOutcome": {read, `{"resourceType":"OperationOutcome","issue":[],"entry":[` + p2 + `]}`},
		"entries in a resource":          {read, `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"entry":[` + p2 + `]}`},
		"a read answered with a Bundle":  {read, `{"resourceType":"Bundle","type":"searchset","entry":[]}`},
		"a search answered otherwise":    {search, `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`},
		"a history answered otherwise":   {Interaction{Kind: HistoryType, Type: "Observation"}, `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`},
		"an instance history otherwise":  {Interaction{Kind: HistoryInstance, Type: "Observation", ID: "o1"}, `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`},
	} {
		out, _, ref := a.inspectBody(c.in, []byte(c.body))
		if ref == nil || ref.status != 502 {
			t.Errorf("%s: passed as %s", name, out)
		}
	}
	// What is allowed: an OperationOutcome to a search, and a Bundle read
	// as itself (a document, a collection): one resource, judged with what
	// it holds and never cut, whole when all of it may be seen and the 404
	// of a missing one otherwise.
	if _, _, ref := a.inspectBody(search, []byte(`{"resourceType":"OperationOutcome","issue":[]}`)); ref != nil {
		t.Errorf("an OperationOutcome to a search: %v", ref)
	}
	readBundle := Interaction{Kind: Read, Type: "Bundle", ID: "b1"}
	doc := `{"resourceType":"Bundle","id":"b1","type":"collection","entry":[` + p2 + `]}`
	psy := `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]},`
	for name, c := range map[string]struct {
		a     *access
		body  string
		whole bool
	}{
		"everything readable":              {testAccess("user/*.rs"), doc, true},
		"a labelled resource inside":       {testAccess("user/*.rs"), strings.Replace(doc, `{"resourceType":"Observation",`, `{`+psy+`"resourceType":"Observation",`, 1), false},
		"labelled two Bundles deep":        {testAccess("user/*.rs"), strings.Replace(doc, p2, `{"resource":{"resourceType":"Bundle","type":"collection","entry":[{"resource":{`+psy+`"resourceType":"Condition","id":"c"}}]}}`, 1), false},
		"a type the token may not read":    {testAccess("user/Bundle.rs"), doc, false},
		"patient context (no compartment)": {a, doc, false},
	} {
		out, _, ref := c.a.inspectBody(readBundle, []byte(c.body))
		if c.whole && (ref != nil || string(out) != c.body) || !c.whole && (ref == nil || ref.status != 404) {
			t.Errorf("a Bundle read as itself, %s: %v %s", name, ref, out)
		}
	}
}

// TestNoMatchIsAnID: the reference a chain that reaches nothing is sent as
// is a FHIR id (base64url's '_' is not), so a strict server answers it
// with an empty Bundle, not a 400.
func TestNoMatchIsAnID(t *testing.T) {
	for range 200 {
		if id := noMatch(); !validID(id) {
			t.Fatalf("%q is not a FHIR id", id)
		}
	}
}

// FuzzReadPatch checks the JSON Patch reader against encoding/json: it
// never panics, accepts only what encoding/json reads as an array of
// operations with a known op, a JSON Pointer path and the from or value
// the op requires, and says a patch
// spares the labels only when no changing operation's path (or a move's
// from), decoded independently, is the root or below meta or contained.
func FuzzReadPatch(f *testing.F) {
	for _, s := range []string{
		`[{"op":"replace","path":"/status","value":"amended"}]`,
		`[{"op":"remove","path":"/\u006deta/security/1"}]`,
		`[{"op":"replace","path":"","value":{}}]`,
		`[{"op":"move","from":"/meta","path":"/extension"}]`,
		`[{"op":"copy","from":"/code","path":"/contained/0"}]`,
		`[{"op":"test","path":"/meta/versionId","value":"1"}]`,
		`[{"op":"add","path":"/m~0eta","value":1},{"op":"add","path":"/a~1b","value":2}]`,
		`[{"op":"remove","path":"/status","PATH":"/meta"}]`,
		`{"resourceType":"Parameters"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		spared, ref := readPatch(jsonPatchType, body)
		if ref != nil {
			return
		}
		var ops []map[string]any
		if err := json.Unmarshal(body, &ops); err != nil {
			t.Fatalf("accepted what encoding/json does not read as operations: %v", err)
		}
		touches := func(p string) bool {
			if p == "" {
				return true
			}
			seg := strings.SplitN(p, "/", 3)[1]
			seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
			return seg == "meta" || seg == "contained"
		}
		spares := true
		for _, op := range ops {
			path, ok := op["path"].(string)
			if !ok || path != "" && path[0] != '/' {
				t.Fatalf("accepted an operation without a pointer path: %v", op)
			}
			from, hasFrom := op["from"].(string)
			_, hasValue := op["value"]
			switch op["op"] {
			case "test":
			case "add", "remove", "replace", "copy":
				spares = spares && !touches(path)
			case "move":
				spares = spares && !touches(path) && !touches(from)
			default:
				t.Fatalf("accepted an unknown op: %v", op)
			}
			switch op["op"] {
			case "copy", "move":
				if !hasFrom {
					t.Fatalf("accepted a %v without from: %v", op["op"], op)
				}
			case "add", "replace", "test":
				if !hasValue {
					t.Fatalf("accepted a %v without value: %v", op["op"], op)
				}
			}
		}
		if spared != spares {
			t.Fatalf("sparesLabels %v; an independent reading says %v", spared, spares)
		}
	})
}

// FuzzRefersByCriteria checks the conditional reference finder against an
// independent reading with encoding/json: it never panics, reads only
// strict JSON, and finds one exactly when some member named reference has
// a string value with a '?' (or, in a patch, any string reads as a search
// of a resource type).
func FuzzRefersByCriteria(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Observation","subject":{"reference":"Patient?identifier=a|b"}}`,
		`{"resourceType":"Observation","performer":[{"reference":"Practitioner/1"}],"contained":[{"x":{"reference":"#a?"}}]}`,
		`[{"op":"replace","path":"/subject/reference","value":"http://x/fhir/Patient?name=a"}]`,
		`{"reference":["Patient?x"],"reference2":"Patient?y"}`,
		`"Patient?x"`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, patch bool) {
		found, err := refersByCriteria(body, patch)
		if err != nil {
			return
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // 1E700 is JSON, though no float64
		if !json.Valid(body) || dec.Decode(&v) != nil {
			t.Fatalf("read what encoding/json does not: %q", body)
		}
		var walk func(v any, reference bool) bool
		walk = func(v any, reference bool) bool {
			switch x := v.(type) {
			case map[string]any:
				for k, e := range x {
					if walk(e, k == "reference") {
						return true
					}
				}
			case []any:
				for _, e := range x {
					if walk(e, false) {
						return true
					}
				}
			case string:
				typ, _, ok := strings.Cut(x, "?")
				typ = typ[strings.LastIndex(typ, "/")+1:]
				return reference && ok || patch && ok && knownType(typ)
			}
			return false
		}
		if want := walk(v, false); found != want {
			t.Fatalf("found %v; an independent reading says %v: %q", found, want, body)
		}
	})
}

// TestLabelsTakeTheHighest: a resource's confidentiality is the highest of
// the ones it carries, an explicit N included (an N then an L was read as
// L), and N when it carries none.
func TestLabelsTakeTheHighest(t *testing.T) {
	conf := func(codes ...string) consent.Confidentiality {
		var p projection
		for _, c := range codes {
			p.Meta.Security = append(p.Meta.Security, coding{System: confidentialitySystem, Code: c})
		}
		c, _ := p.labels()
		return c
	}
	for want, codes := range map[consent.Confidentiality][]string{
		consent.Normal: {"N", "L"}, consent.Restricted: {"L", "R"}, consent.VeryRestricted: {"V", "N"},
		consent.LowConf: {"L"}, "X": {"R", "X"},
	} {
		if got := conf(codes...); got != want {
			t.Errorf("%v: %s, want %s", codes, got, want)
		}
	}
	if got := conf(); got != consent.Normal {
		t.Errorf("no label: %s", got)
	}
}

// FuzzBatchPins: for any Bundle checkBatch reads, writing an ifMatch into
// each entry's request object (withEdits, at the offsets the parse noted),
// and every third entry anew (withEdits, over the entry's offsets), gives
// valid strict JSON whose entries are the same but for what was written.
func FuzzBatchPins(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"a/1"}}, {"fullUrl":"urn:uuid:1","request":{"method":"PUT","url":"b?c=d","ifNoneExist":"x"},"resource":{"resourceType":"b"}} ,{"request":{"method":"DELETE","url":"c/2"}},{"request":{"url":"d","method":"POST"},"resource":{}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"PUT","url":"Observation/1"},"resource":{"resourceType":"Observation","id":"1"}}]}`))
	f.Add([]byte(`{"entry":[{"request" : {"url":"a","method":"GET"}},{"resource":{},"request":{ "method":"DELETE","url":"b"}}],"type":"transaction","resourceType":"Bundle"}`))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"request":null},{"request":{}},{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := parseBatch(body, 100)
		if err != nil {
			return
		}
		var pins []entryPin
		var edits []bundleEdit
		rebuilt := map[int]bool{}
		for i, e := range b.Entry {
			switch {
			case i%3 == 2: // every third entry written anew
				edits = append(edits, bundleEdit{from: e.start, to: e.end, text: fmt.Appendf(nil, `{"request":{"method":"GET","url":"Observation/%d"}}`, i)})
				rebuilt[i] = true
			case e.requestAt > 0 && body[e.requestAt] == '{' && e.Method != "": // a request object with a member
				pins = append(pins, entryPin{at: e.requestAt, etag: fmt.Sprintf(`W/"%d"`, i)})
			}
		}
		out := withEdits(body, pins, edits)
		if err := jsonstrict.Check(out); err != nil {
			t.Fatalf("withEdits made invalid JSON of %q: %q (%v)", body, out, err)
		}
		var before, after struct {
			Entry []struct{ Request map[string]any }
		}
		if json.Unmarshal(body, &before) != nil || json.Unmarshal(out, &after) != nil || len(before.Entry) != len(after.Entry) {
			t.Fatalf("entries differ: %q and %q", body, out)
		}
		pinned := 0
		for i := range before.Entry {
			want := before.Entry[i].Request
			if rebuilt[i] {
				want = map[string]any{"method": "GET", "url": fmt.Sprintf("Observation/%d", i)}
			} else if pinned < len(pins) && b.Entry[i].requestAt == pins[pinned].at {
				want = maps.Clone(want)
				want["ifMatch"] = pins[pinned].etag
				pinned++
			}
			if !reflect.DeepEqual(after.Entry[i].Request, want) {
				t.Fatalf("entry %d: %v, want %v (%q)", i, after.Entry[i].Request, want, out)
			}
		}
	})
}

// FuzzRenameReferences: renameReferences gives valid JSON that
// encoding/json reads as the input with every reference member naming the
// urn renamed, and nothing else changed; it leaves alone what names none.
func FuzzRenameReferences(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Observation","hasMember":[{"reference":"urn:uuid:a"},{"reference":"urn:uuid:b"}]}`,
		`{"contained":[{"subject":{"reference" : "urn:uuid:\u0061"}}],"note":"urn:uuid:a","reference":"urn:uuid:a"}`,
		`{"reference":{"reference":"urn:uuid:a"}}`,
		`["urn:uuid:a",{"reference":["urn:uuid:a"]}]`,
	} {
		f.Add([]byte(s))
	}
	names := map[string]string{"urn:uuid:a": "Observation/1"}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := renameReferences(body, names)
		if err != nil {
			return
		}
		if out == nil {
			out = body // it names none
		}
		if !json.Valid(out) { // its member names are the input's: as strict as the Scanner that read them
			t.Fatalf("made invalid JSON of %q: %q", body, out)
		}
		var want, got any
		dec := func(b []byte, v *any) {
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber()
			if err := d.Decode(v); err != nil {
				t.Fatalf("encoding/json does not read %q: %v", b, err)
			}
		}
		dec(body, &want)
		dec(out, &got)
		var rename func(v any, reference bool) any
		rename = func(v any, reference bool) any {
			switch x := v.(type) {
			case map[string]any:
				for k, e := range x {
					x[k] = rename(e, k == "reference")
				}
			case []any:
				for i, e := range x {
					x[i] = rename(e, false)
				}
			case string:
				if n, ok := names[x]; ok && reference {
					return n
				}
			}
			return v
		}
		if want = rename(want, false); !reflect.DeepEqual(got, want) {
			t.Fatalf("renamed %q into %q", body, out)
		}
	})
}

// categorised reports whether a resource, as encoding/json reads it, has a
// category coding with the code.
func categorised(res map[string]any, code string) bool {
	cats, _ := res["category"].([]any)
	for _, c := range cats {
		cm, _ := c.(map[string]any)
		codings, _ := cm["coding"].([]any)
		for _, cd := range codings {
			if m, _ := cd.(map[string]any); m["code"] == code {
				return true
			}
		}
	}
	return false
}

// TestTokenEscape: a logical reference's identifier is searched as FHIR
// escapes a token's parts, so that a | or , in a system or value is not
// read as the separator or a list (checkLogicalRecords).
func TestTokenEscape(t *testing.T) {
	for in, want := range map[string]string{
		"urn:visit": "urn:visit", `a|b`: `a\|b`, `a,b`: `a\,b`, `$x`: `\$x`, `a\b`: `a\\b`, `\|`: `\\\|`,
	} {
		if got := tokenEscape(in); got != want {
			t.Errorf("tokenEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzInStorage: what inStorage lets the proxy fetch stays under the
// prefix however a storage service reads it: an http(s) URL on the
// prefix's host whose path, unescaped and cleaned of dot segments, is
// still below the prefix's, with no escaped slash or backslash that a
// service could take for a separator.
func FuzzInStorage(f *testing.F) {
	for _, s := range []string{"https://acct.blob.example/exports/job/o.ndjson?sig=x", "https://acct.blob.example/exports/../o",
		"https://acct.blob.example/exports/%2e%2e/o", "https://acct.blob.example/exports/a%2fb", "https://acct.blob.example/exports-x/o",
		"https://acct.blob.example/exports/", "https://acct.blob.example/exports/a#f", "http://acct.blob.example/exports/o",
		"https://acct.blob.example/exports/a/./b", "https://acct.blob.example/exports/a\\..\\b", "https://acct.blob.example@evil/exports/o",
		"https://acct.blob.example/exports//", "https://acct.blob.example/exports/job/"} { // (found by .ci/run's 5 s)
		f.Add(s)
	}
	p := &Proxy{ExportStorage: []string{"https://acct.blob.example/exports"}}
	f.Fuzz(func(t *testing.T, u string) {
		if !p.inStorage(u) {
			return
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "https" || pu.Host != "acct.blob.example" || pu.User != nil || pu.Fragment != "" {
			t.Fatalf("%q let through: %v", u, pu)
		}
		unescaped, err := url.PathUnescape(pu.EscapedPath())
		if err != nil || strings.Contains(unescaped, "\\") || !strings.HasPrefix(path.Clean(unescaped), "/exports/") {
			t.Fatalf("%q let through: its path reads as %q", u, unescaped)
		}
		for i, seg := range strings.Split(unescaped, "/") {
			if seg == "." || seg == ".." || i > 0 && seg == "" { // (an empty one: // collapses, and a trailing / names a directory)
				t.Fatalf("%q let through: its path reads as %q", u, unescaped)
			}
		}
		for seg := range strings.SplitSeq(pu.EscapedPath(), "/") {
			if s, _ := url.PathUnescape(seg); strings.Contains(s, "/") {
				t.Fatalf("%q let through: segment %q holds a slash", u, seg)
			}
		}
	})
}

// serverWordsIn returns, JSON encoded, the first OperationOutcome in v (an
// answer decoded: itself, an entry's resource or response outcome, at any
// depth of Bundles) that is not wholly the proxy's: anything but severity
// and code in its issues, besides the proxy's own diagnostics; or "".
func serverWordsIn(v any) string {
	m, _ := v.(map[string]any)
	switch m["resourceType"] {
	case "OperationOutcome":
		issues, _ := m["issue"].([]any)
		for _, is := range issues {
			is, _ := is.(map[string]any)
			for k, x := range is {
				if k != "severity" && k != "code" && !(k == "diagnostics" && (x == wordsWithheld || x == "resource not found")) {
					b, _ := json.Marshal(m)
					return string(b)
				}
			}
		}
		if len(m) != 2 || len(issues) == 0 {
			b, _ := json.Marshal(m)
			return string(b)
		}
	case "Bundle":
		entries, _ := m["entry"].([]any)
		for _, e := range entries {
			e, _ := e.(map[string]any)
			resp, _ := e["response"].(map[string]any)
			for _, x := range []any{e["resource"], resp["outcome"]} {
				if w := serverWordsIn(x); w != "" {
					return w
				}
			}
		}
	}
	return ""
}

// TestIncludeElements: the elements an element selection must keep for
// the links the search's _include parameters follow (includes.go).
func TestIncludeElements(t *testing.T) {
	for _, c := range []struct {
		params []Param
		want   []string
	}{
		{[]Param{{Name: "_include", Value: "Observation:encounter"}}, []string{"encounter"}},
		{[]Param{{Name: "_include:iterate", Value: "Observation:has-member"}}, []string{"hasMember"}},
		{[]Param{{Name: "_include", Value: "Observation:patient"}}, []string{"subject", "patient"}},
		{[]Param{{Name: "_include", Value: "Observation:subject:Patient"}}, []string{"subject"}},
		{[]Param{{Name: "_include", Value: "MedicationRequest:medication"}}, []string{"medicationReference"}},
		{[]Param{{Name: "_include", Value: "Encounter:service-provider"}, {Name: "_count", Value: "2"}}, []string{"serviceProvider"}},
		{[]Param{{Name: "_include", Value: "*"}, {Name: "_revinclude", Value: "Provenance:target"}}, nil},
		// Elements not named as their parameters are (includeRoots).
		{[]Param{{Name: "_include", Value: "DocumentReference:encounter"}}, []string{"context"}},
		{[]Param{{Name: "_include", Value: "Encounter:practitioner:Practitioner"}}, []string{"participant"}},
		{[]Param{{Name: "_include", Value: "Appointment:patient"}}, []string{"participant"}},
		{[]Param{{Name: "_include", Value: "MedicationRequest:intended-dispenser"}}, []string{"dispenseRequest"}},
		{[]Param{{Name: "_include", Value: "Patient:organization"}}, []string{"managingOrganization"}},
		{[]Param{{Name: "_include", Value: "Coverage:patient"}}, []string{"beneficiary"}},
		{[]Param{{Name: "_include", Value: "Task:patient"}}, []string{"for"}},
		{[]Param{{Name: "_include", Value: "AuditEvent:patient"}}, []string{"agent", "entity"}},
	} {
		if got := includeElements(includeSpecs(&Interaction{Params: c.params})); !slices.Equal(got, c.want) {
			t.Errorf("%v: %v, want %v", c.params, got, c.want)
		}
	}
}
