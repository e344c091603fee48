package fhirproxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/scopes"
)

// FuzzExportFile: what an export file's judge lets through is, line for
// line and in order, a line of the file that encoding/json reads as one
// resource of the file's type (by its exact member names) within the
// clearance; and a plain line of that kind is never held back. Under a
// constrained scope (category=laboratory) each line that goes has a
// category coding of that code.
func FuzzExportFile(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"}}` + "\n" +
		`{"resourceType":"Observation","id":"b","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]}}` + "\r\n\n" +
		`{"resourceType":"Condition","id":"c"}` + "\n"))
	f.Add([]byte(`{"resourceType":"Observation","id":"a","ResourceType":"Patient"}`))
	f.Add([]byte(`{"resourceType":"Observation","id":"a","contained":[{"resourceType":"Patient","id":"x","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}]}`))
	f.Add([]byte(`{"resourceType":"Observation","id":"a"}{"resourceType":"Observation","id":"b"}` + "\n"))
	f.Add([]byte(`{"resourceType":"Observation","id":"a","id":"b"}`))
	f.Add([]byte("{\"resourceType\":\"Observation\",\"id\":\"\xff\"}"))
	f.Add([]byte(`{"resourceType":"Observation","id":"a","category":[{"coding":[{"code":"laboratory"}]}]}` + "\n" +
		`{"resourceType":"Observation","id":"b","category":[{"coding":[{"code":"vital-signs"}]}],"Category":[{"coding":[{"code":"laboratory"}]}]}` + "\n"))
	a := testAccess("user/*.rs")
	held := testAccess("user/Observation.rs?category=laboratory")
	lc, ok := searchable(held, "Observation")
	if !ok || lc == nil {
		f.Fatal("the constrained scope does not export Observation")
	}
	held.held, held.constrained = lc, "Observation"
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"request":{"method":"DELETE","url":"Observation/a"}}]}` + "\n" +
		`{"resourceType":"Bundle","entry":[{"request":{"method":"DELETE","url":"Observation/a"},"Request":{"method":"GET","url":"Patient/b"}}]}` + "\n" +
		`{"resourceType":"Bundle","entry":[{"request":{"method":"DELETE","url":"Binary/a"}}]}`))
	all := testAccess("system/Observation.rs")
	all.clearance = consent.Clearance{MaxConfidentiality: consent.VeryRestricted,
		Tags: slices.Concat(consent.SensitiveTags, consent.HighlySensitiveTags, consent.SegmentedTags)}
	if all.unrestricted = all.clearance.Unrestricted(); !all.unrestricted || !all.seesAll() {
		f.Fatal("the clearance of every label is not unrestricted")
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		// A file of deletions: Bundles whose every entry (by exact names)
		// is a DELETE of an Observation.
		var deletions bytes.Buffer
		nf := ndjsonFile{a: all, typ: "Bundle", deleted: true, w: bufio.NewWriter(&deletions), d: disclosure{ev: &audit.Event{}, a: all}}
		_ = nf.run(bytes.NewReader(file), 1<<20)
		for line := range strings.Lines(deletions.String()) {
			var exact map[string]any // member names as they are
			if json.Unmarshal([]byte(line), &exact) != nil || exact["resourceType"] != "Bundle" {
				t.Fatalf("%q went out as deletions", line)
			}
			entries, _ := exact["entry"].([]any)
			if len(entries) == 0 {
				t.Fatalf("%q went out as deletions, with no entry", line)
			}
			for _, e := range entries {
				e, _ := e.(map[string]any)
				req, _ := e["request"].(map[string]any)
				if len(e) != 1 || req["method"] != "DELETE" || !strings.HasPrefix(fmt.Sprint(req["url"]), "Observation/") {
					t.Fatalf("%q went out as deletions", line)
				}
			}
		}
		var onlyLabs bytes.Buffer
		nf = ndjsonFile{a: held, typ: "Observation", w: bufio.NewWriter(&onlyLabs), d: disclosure{ev: &audit.Event{}, a: held}}
		_ = nf.run(bytes.NewReader(file), 1<<20)
		for line := range strings.Lines(onlyLabs.String()) {
			var exact map[string]any // member names as they are
			if json.Unmarshal([]byte(line), &exact) != nil || !strings.Contains(fmt.Sprint(exact["category"]), "laboratory") {
				t.Fatalf("%q went out under category=laboratory", line)
			}
		}
		var out bytes.Buffer
		nf = ndjsonFile{a: a, typ: "Observation", w: bufio.NewWriter(&out), d: disclosure{ev: &audit.Event{}, a: a}}
		err := nf.run(bytes.NewReader(file), 1<<20)
		in := strings.Split(string(file), "\n")
		for i := range in {
			in[i] = strings.TrimSuffix(in[i], "\r")
		}
		next := 0 // the next input line an output line may be
		for line := range strings.Lines(out.String()) {
			line = strings.TrimSuffix(line, "\n")
			for next < len(in) && in[next] != line {
				next++
			}
			if next == len(in) {
				t.Fatalf("%q went out, not a line of the file (in order): %q", line, file)
			}
			next++
			var res map[string]any
			if e := json.Unmarshal([]byte(line), &res); e != nil || res["resourceType"] != "Observation" || !clearedFor(a, res) {
				t.Fatalf("%q went out (%v): not an Observation within the clearance", line, e)
			}
		}
		if err != nil {
			return
		}
		// Read whole, every plain line (no contained resources, whose
		// labels are the container's) that is an Observation within the
		// clearance went out.
		kept := strings.Count(out.String(), "\n")
		want := 0
		for _, line := range in {
			var res map[string]any
			if strings.TrimSpace(line) == "" || json.Unmarshal([]byte(line), &res) != nil {
				continue
			}
			if res["resourceType"] == "Observation" && res["contained"] == nil && clearedFor(a, res) {
				want++
			}
		}
		if kept < want {
			t.Fatalf("%d of %d plain Observations within the clearance went out of %q: %q", kept, want, file, out.String())
		}
	})
}

// exportNDJSON is the 200 resources of the benchmarks' searchset as an
// export file.
func exportNDJSON() []byte {
	var m struct {
		Entry []struct{ Resource json.RawMessage }
	}
	_ = json.Unmarshal(bundle(200), &m)
	var out bytes.Buffer
	for _, e := range m.Entry {
		out.Write(e.Resource)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// BenchmarkExportFile judges an export file line by line, as a download
// through the proxy does (a clinician's clearance: labels judged), writing
// what it keeps; BenchmarkExportFileBaseline is the same file read with
// bufio.Scanner and encoding/json into a minimal struct, each line
// written: the floor it is compared with.
func BenchmarkExportFile(b *testing.B) {
	file := exportNDJSON()
	a := testAccess("user/*.rs")
	w := bufio.NewWriter(io.Discard)
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for b.Loop() {
		nf := ndjsonFile{a: a, typ: "Observation", w: w, d: disclosure{ev: &audit.Event{}, a: a}}
		if err := nf.run(bytes.NewReader(file), 1<<20); err != nil || nf.sent == 0 {
			b.Fatal(err, nf.sent)
		}
	}
}

func BenchmarkExportFileBaseline(b *testing.B) {
	file := exportNDJSON()
	w := bufio.NewWriter(io.Discard)
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for b.Loop() {
		sc := bufio.NewScanner(bytes.NewReader(file))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var v struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
				Subject      struct {
					Reference string `json:"reference"`
				} `json:"subject"`
				Meta struct {
					Security []struct{ System, Code string } `json:"security"`
				} `json:"meta"`
			}
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				b.Fatal(err)
			}
			_, _ = w.Write(sc.Bytes())
			_ = w.WriteByte('\n')
		}
		_ = w.Flush()
	}
}

// TestExportPatientsNamed: a download's audit event names the first
// maxExportPatients patients disclosed, each once, and says when there
// were more.
func TestExportPatientsNamed(t *testing.T) {
	a := testAccess("user/*.rs")
	file := func(patients int) []byte {
		var b bytes.Buffer
		for i := range patients {
			for range 2 { // two records each: a patient is named once
				fmt.Fprintf(&b, `{"resourceType":"Observation","id":"o%d","subject":{"reference":"Patient/p%d"}}`+"\n", i, i)
			}
		}
		return b.Bytes()
	}
	for _, c := range []struct {
		lines  []byte
		named  int
		capped bool
	}{{file(maxExportPatients + 5), maxExportPatients, true}, {file(maxExportPatients), maxExportPatients, false}, {file(3), 3, false}} {
		ev := &audit.Event{}
		nf := ndjsonFile{a: a, typ: "Observation", w: bufio.NewWriter(io.Discard), d: disclosure{ev: ev, a: a, most: maxExportPatients}}
		if err := nf.run(bytes.NewReader(c.lines), 1<<20); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{ev.Patient: true}
		for _, p := range ev.Patients {
			seen[p] = true
		}
		if named := 1 + len(ev.Patients); named != c.named || len(seen) != named || nf.d.capped != c.capped {
			t.Errorf("%d named (%d distinct), capped %v; want %d, %v", named, len(seen), nf.d.capped, c.named, c.capped)
		}
	}
}

// FuzzExportKickOff: a kick-off the proxy accepts goes upstream with only
// the parameters it understands, each re-serialised so that the server
// reads what the proxy judged: types the token exports, and _typeFilter
// queries of such a type whose criteria are search criteria the token may
// use (for a clearance short of every label, none that searches by other
// records), within the constraint of a constrained type's scope; and
// _elements of root elements, with what the proxy judges a line by; and
// named patients (as a POSTed kick-off's) each Patient/id, once, within
// the bound, for a token that may read Patient.
func FuzzExportKickOff(f *testing.F) {
	for _, q := range []string{"_type=Observation&_typeFilter=Observation%3Fcategory%3Dlaboratory",
		"_typeFilter=Observation%3Fcode%3Da%2CPatient%3Fgender%3Dfemale", "_typeFilter=Observation%3Fcategory%3Dlaboratory%252Cvital-signs",
		"_typeFilter=Patient%3F_has%3ACondition%3Asubject%3Acode%3Dx", "_typeFilter=Observation%3Fsubject.name%3Dx",
		"_since=2026-01-01T00:00:00Z&_outputFormat=ndjson", "_typeFilter=Observation%3F_sort%3Ddate",
		"_typeFilter=Observation%3Fsubject%3APatient.name%3Dx", "_typeFilter=Observation%3F_has%3AProvenance%3Atarget%3Aagent%3Dx",
		"_elements=code", "_type=Observation&_elements=Observation.code,status", "_elements=Patient.name",
		"includeAssociatedData=LatestProvenanceResources,_x"} {
		f.Add(q, "")
	}
	tokens := map[string]*access{}
	for _, scope := range []string{"system/Observation.rs system/Patient.rs system/Condition.s", "system/Observation.rs?category=laboratory system/Patient.rs",
		"system/Observation.rs",
		"every label: system/Observation.rs system/Patient.rs system/Condition.s system/Provenance.rs"} {
		a := testAccess(strings.TrimPrefix(scope, "every label: "))
		a.patient = ""
		if strings.HasPrefix(scope, "every label: ") {
			a.clearance = consent.Clearance{MaxConfidentiality: consent.VeryRestricted,
				Tags: slices.Concat(consent.SensitiveTags, consent.HighlySensitiveTags, consent.SegmentedTags)}
			a.unrestricted = a.clearance.Unrestricted()
		}
		tokens[scope] = a
	}
	f.Add("_type=Observation", "Patient/p1\nPatient/p2\nPatient/p1")
	f.Add("", "Patient/p1/_history/2\nGroup/g")
	f.Fuzz(func(t *testing.T, query, patients string) {
		for scope, a := range tokens {
			// patients, one a line, as a POSTed kick-off's patient
			// references; at Patient level when there are any.
			path, named := "/$export", []string(nil)
			if patients != "" {
				path, named = "/Patient/$export", strings.Split(patients, "\n")
			}
			in, err := parsePath("GET", path, query, Limits{})
			in.patients = named
			if err != nil || authorizeExport(&in, a, false, Limits{}) != nil {
				continue
			}
			most := maxKickOffPatients
			if !a.unrestricted {
				most = maxJudgedPatients
			}
			if len(in.patients) > most || named != nil && !a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: "Patient", Perms: scopes.Read}) {
				t.Fatalf("%s: %d patients named, by %s", scope, len(in.patients), a.tok.Scope)
			}
			for i, ref := range in.patients {
				id, ok := strings.CutPrefix(ref, "Patient/")
				if !ok || !validID(id) || slices.Contains(in.patients[:i], ref) {
					t.Fatalf("%s: patients %q sent as %q", scope, named, in.patients)
				}
			}
			again, err := parseQuery(encodeQuery(in.Params), Limits{})
			if err != nil || !slices.Equal(again, in.Params) {
				t.Fatalf("%s: %q does not read back as sent: %v", scope, in.Params, err)
			}
			for _, prm := range in.Params {
				switch prm.Name {
				case "_outputFormat", "_since":
				case "_type":
					for typ := range strings.SplitSeq(prm.Value, ",") {
						if !searches(a, typ) {
							t.Fatalf("%s: %q exports %s", scope, query, typ)
						}
					}
				case "_typeFilter":
					typ, raw, _ := strings.Cut(prm.Value, "?")
					criteria, err := parseQuery(raw, Limits{})
					if err != nil || !searches(a, typ) || len(criteria) == 0 {
						t.Fatalf("%s: %q sent the query %q", scope, query, prm.Value)
					}
					constrained := false
					for _, c := range criteria {
						if !criterion(c.Name) || !a.seesAll() && (searchesOthers(c.Name) || simpleChain(c.Name)) {
							t.Fatalf("%s: %q sent the query %q", scope, query, prm.Value)
						}
						for _, other := range criteriaTypes(c) {
							if !a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: other, Perms: scopes.Search}) {
								t.Fatalf("%s: %q sent the query %q, which searches by %s", scope, query, prm.Value, other)
							}
						}
						constrained = constrained || c == Param{Name: "category", Value: "laboratory"}
					}
					if typ == "Observation" && strings.Contains(scope, "?") && !constrained {
						t.Fatalf("%s: %q sent the query %q, outside the constraint", scope, query, prm.Value)
					}
				case "includeAssociatedData":
					for v := range strings.SplitSeq(prm.Value, ",") {
						if v != "LatestProvenanceResources" && v != "RelevantProvenanceResources" || !searches(a, "Provenance") {
							t.Fatalf("%s: %q sent includeAssociatedData %q", scope, query, prm.Value)
						}
					}
				case "_elements":
					// Each a root element, and what the proxy judges an
					// Observation by kept wherever the list selects from
					// Observations.
					items := strings.Split(prm.Value, ",")
					obs := false
					for _, e := range items {
						typ, name, dotted := strings.Cut(e, ".")
						if !dotted {
							name = typ
						}
						if !rootElement(name) || dotted && !searches(a, typ) {
							t.Fatalf("%s: %q sent _elements %q", scope, query, prm.Value)
						}
						obs = obs || !dotted || typ == "Observation"
					}
					need := []string{"meta", "subject"}
					if strings.Contains(scope, "?") {
						need = append(need, "category")
					}
					for _, n := range need {
						if obs && !slices.Contains(items, n) && !slices.Contains(items, "Observation."+n) {
							t.Fatalf("%s: %q sent _elements %q, without %s", scope, query, prm.Value, n)
						}
					}
				default:
					t.Fatalf("%s: %q sent %s", scope, query, prm.Name)
				}
			}
		}
	})
}
