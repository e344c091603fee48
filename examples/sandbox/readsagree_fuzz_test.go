package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
)

// FuzzReadsAgree: an app reads one record through the proxy (by read, by
// vread of its first or latest version, by its history, by _id, in a
// batch whole or in part, in part, by _id in a patient's compartment) and gets what the
// data server answers directly where its grant may see the record, and
// otherwise exactly what it gets for a record that does not exist: the
// same status, the same words, the same headers. Whoever reads (the
// grantees: a patient's app of every label or the default clearance, one
// granted its laboratory results only, a clinician, a backend service),
// whatever the record (any of the sandbox's, and ones since labelled,
// unlabelled, moved to another patient, or deleted). A version is the
// grant's when it is and, while the record stands, the record is too (a
// record labelled or moved after it was written is withheld in every
// version).
func FuzzReadsAgree(f *testing.F) {
	sb := startSandbox(f)
	direct := func(method, path, body string) (int, []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		sb.fhir.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	first := func(typ, patient string, n int) resource {
		found, err := sb.fhir.find(typ, map[string][]string{"patient": {"Patient/" + patient}})
		if err != nil || len(found) <= n {
			f.Fatalf("%s of %s: %d found, %v", typ, patient, len(found), err)
		}
		return found[n]
	}
	// Later versions: labelled, unlabelled, moved either way, deleted, and
	// a plain second version.
	rewrite := func(r resource, change func(resource)) string {
		var next resource
		b, _ := json.Marshal(r)
		_ = json.Unmarshal(b, &next)
		change(next)
		b, _ = json.Marshal(next)
		key := r["resourceType"].(string) + "/" + r["id"].(string)
		if code, answer := direct(http.MethodPut, "/"+key, string(b)); code != http.StatusOK {
			f.Fatalf("PUT %s: %d %s", key, code, answer)
		}
		return key
	}
	subject := func(p string) func(resource) {
		return func(r resource) { r["subject"] = map[string]any{"reference": "Patient/" + p} }
	}
	changed := []string{
		rewrite(first("Observation", "pt-001", 0), func(r resource) { r["meta"] = meta("R") }),
		rewrite(sb.fhir.current["Observation/pt-sensitive-hiv"], func(r resource) { delete(r, "meta") }),
		rewrite(first("Observation", "pt-001", 1), subject("pt-002")),
		rewrite(first("Observation", "pt-002", 0), subject("pt-001")),
		rewrite(first("Encounter", "pt-001", 0), func(r resource) { r["status"] = "cancelled" }),
	}
	gone := first("AllergyIntolerance", "pt-001", 0)
	goneKey := "AllergyIntolerance/" + gone["id"].(string)
	if code, answer := direct(http.MethodDelete, "/"+goneKey, ""); code != http.StatusNoContent && code != http.StatusOK {
		f.Fatalf("DELETE %s: %d %s", goneKey, code, answer)
	}
	keys := append(append(changed, goneKey), sb.fhir.order...)

	patients := []string{"pt-001", "pt-002", "pt-sensitive", "pt-long"}
	readers := grantees(f, sb, patients, "rs")
	requests, disclosed := tapDisclosures(sb)
	sees := func(rd grantee, p string, v resource, ask int) bool { return rd.sees(sb, p, v, ask) }

	// (who, patient, record, how): records 0 to 5 are those changed above.
	f.Add(uint8(1), uint8(0), uint16(0), uint8(1)) // labelled since: its first version withheld
	f.Add(uint8(1), uint8(0), uint16(0), uint8(3))
	f.Add(uint8(1), uint8(2), uint16(1), uint8(1)) // unlabelled since: not its first version
	f.Add(uint8(1), uint8(2), uint16(1), uint8(3))
	f.Add(uint8(1), uint8(2), uint16(1), uint8(0))
	f.Add(uint8(0), uint8(0), uint16(2), uint8(3)) // moved away: none of its history
	f.Add(uint8(0), uint8(0), uint16(2), uint8(1))
	f.Add(uint8(0), uint8(1), uint16(2), uint8(3)) // moved here: only what is here
	f.Add(uint8(0), uint8(0), uint16(3), uint8(3))
	f.Add(uint8(0), uint8(1), uint16(3), uint8(1))
	f.Add(uint8(1), uint8(0), uint16(4), uint8(3)) // two versions
	f.Add(uint8(0), uint8(0), uint16(5), uint8(3)) // deleted: its history with the deletion
	f.Add(uint8(0), uint8(1), uint16(5), uint8(3)) // another's deleted: none of it
	f.Add(uint8(3), uint8(0), uint16(5), uint8(2))
	f.Add(uint8(2), uint8(0), uint16(4), uint8(5))
	f.Add(uint8(4), uint8(0), uint16(700), uint8(4))
	f.Add(uint8(0), uint8(1), uint16(45), uint8(2)) // a Provenance of the patient's
	sud := uint16(slices.Index(keys, "Provenance/pt-sensitive-sud-prov"))
	f.Add(uint8(3), uint8(0), sud, uint8(0)) // a Provenance about a record beyond the clearance
	f.Add(uint8(1), uint8(2), sud, uint8(5))
	f.Add(uint8(3), uint8(0), uint16(45), uint8(14)) // a summary (how's fourth bit)
	f.Add(uint8(2), uint8(0), uint16(0), uint8(14))  // a summary, laboratory results only
	f.Add(uint8(1), uint8(0), uint16(45), uint8(22)) // a summary as text, with patient context: refused
	f.Add(uint8(3), uint8(0), uint16(45), uint8(22)) // as text, by a clinician
	f.Add(uint8(1), uint8(0), uint16(45), uint8(30)) // all but the narrative
	f.Add(uint8(1), uint8(0), uint16(45), uint8(8))  // a conditional read, of the version it is
	f.Add(uint8(1), uint8(2), uint16(1), uint8(16))  // of its first version, since unlabelled
	f.Add(uint8(1), uint8(0), uint16(0), uint8(24))  // as of its last update, since labelled: as a missing one
	f.Add(uint8(0), uint8(1), uint16(2), uint8(8))   // moved here
	cond := uint16(slices.Index(keys, "Condition/pt-001-cond-1"))
	f.Add(uint8(3), uint8(0), cond, uint8(13)) // in a batch, as a summary
	f.Add(uint8(3), uint8(0), cond, uint8(21)) // in a batch, as text, by a clinician: refused
	f.Add(uint8(0), uint8(0), cond, uint8(29)) // in a batch, all but the narrative
	f.Fuzz(func(t *testing.T, who, patient uint8, record uint16, how uint8) {
		rd := readers[int(who)%len(readers)]
		p := patients[int(patient)%len(patients)]
		tok := rd.tok[p]
		key := keys[int(record)%len(keys)]
		typ, id, _ := strings.Cut(key, "/")
		sb.fhir.mu.RLock()
		current, standing := sb.fhir.current[key]
		versions := slices.Clone(sb.fhir.history[key])
		sb.fhir.mu.RUnlock()
		// (how's fourth and fifth bits: what a read in part asks.)
		ask, summary := int(how)%8, []string{"", "true", "text", "data"}[how/8%4]
		var conditional []string // a conditional read's header (name, value)
		var rid string           // the last request's X-Request-Id
		visible := func(v resource) bool {
			return v != nil && sees(rd, p, v, ask) && (!standing || sees(rd, p, current, ask))
		}
		through := func(path string) (int, []byte, http.Header) {
			if ref, ok := strings.CutPrefix(path, "batch:"); ok {
				code, b := fhirCall(t, tok, http.MethodPost, sb.FHIRBase, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"`+ref+`"}}]}`)
				var batch struct {
					Entry []struct {
						Resource json.RawMessage
						Response struct {
							Status  string
							Outcome json.RawMessage
						}
					}
				}
				if code != http.StatusOK {
					return code, b, nil // the batch refused whole
				}
				if err := json.Unmarshal(b, &batch); err != nil || len(batch.Entry) != 1 {
					t.Fatalf("the batch reading %s: %d %.300s", ref, code, b)
				}
				e := batch.Entry[0]
				code, _ = strconv.Atoi(strings.Fields(e.Response.Status)[0])
				if code != http.StatusOK {
					return code, e.Response.Outcome, nil
				}
				return code, e.Resource, nil
			}
			rid = "reads-" + strconv.FormatInt(requests.Add(1), 10) // (its audit events: disclosed)
			resp := callWith(t, tok, http.MethodGet, sb.FHIRBase+path, "", append([]string{"X-Request-Id", rid}, conditional...)...)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b, resp.Header
		}
		var path, none string // the record's, and a record's that does not exist
		var shown []resource  // what is the grant's of what is asked
		switch ask {
		case 0: // read: plainly, or (how's fourth and fifth bits) conditionally
			path, none = "/"+key, "/"+typ+"/zz-none"
			if standing && visible(current) {
				shown = []resource{current}
			}
			if standing {
				m, _ := current["meta"].(map[string]any)
				at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(m["lastUpdated"]))
				switch how / 8 % 4 {
				case 1: // the version it is
					conditional = []string{"If-None-Match", `W/"` + fmt.Sprint(m["versionId"]) + `"`}
				case 2: // its first
					conditional = []string{"If-None-Match", `W/"1"`}
				case 3: // as of its last update
					conditional = []string{"If-Modified-Since", at.UTC().Format(http.TimeFormat)}
				}
				// The client's copy stands: 304, or (where the grant may
				// not see it) as for a record that does not exist.
				if v := fmt.Sprint(m["versionId"]); shown != nil && (how/8%4 == 1 || how/8%4 == 3 || how/8%4 == 2 && v == "1") {
					resp := callWith(t, tok, http.MethodGet, sb.FHIRBase+path, "", conditional...)
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusNotModified || len(b) != 0 || resp.Header.Get("ETag") != `W/"`+v+`"` {
						t.Fatalf("%s with %v: %d %v %.300s", path, conditional, resp.StatusCode, resp.Header, b)
					}
					return
				}
			}
		case 1, 2: // vread, of the first version or of the latest
			i := 0
			if ask == 2 {
				i = len(versions) - 1
			}
			v, vid := versions[i], strconv.Itoa(i+1)
			path, none = "/"+key+"/_history/"+vid, "/"+typ+"/zz-none/_history/"+vid
			if visible(v) {
				shown = []resource{v}
			}
		case 3: // history
			path, none = "/"+key+"/_history", "/"+typ+"/zz-none/_history"
			// A deletion is shown in its place where a version is.
			for _, v := range slices.Backward(versions) {
				if v == nil || visible(v) {
					shown = append(shown, v)
				}
			}
			if !slices.ContainsFunc(shown, func(v resource) bool { return v != nil }) {
				shown = nil
			}
		case 4: // by _id
			path, none = "/"+typ+"?_id="+id, "/"+typ+"?_id=zz-none"
			if standing && visible(current) {
				shown = []resource{current}
			}
		case 5: // in a batch: whole, or (how's fourth and fifth bits) as a summary
			path, none = "batch:"+key, "batch:"+typ+"/zz-none"
			if summary != "" {
				path, none = path+"?_summary="+summary, none+"?_summary="+summary
			}
			// (A read under a query constraint is refused in a batch, whatever it reads.)
			if standing && visible(current) && !rd.lab {
				shown = []resource{current}
			}
			if summary == "" || rd.lab {
				break
			}
			fallthrough
		case 6: // in part: its status, or a summary (R4's summary elements, text, or data)
			if ask == 6 {
				part := "?_elements=status"
				if summary != "" {
					part = "?_summary=" + summary
				}
				path, none = "/"+key+part, "/"+typ+"/zz-none"+part
			}
			if standing && visible(current) {
				shown = []resource{current}
			}
			// Refused where the proxy judges by what a summary leaves out:
			// an Observation's category under the laboratory constraint, an
			// Appointment's participants with patient context (with text,
			// any type's patient reference), a Binary's securityContext
			// (refused as a summary may leave it out). (A grant of
			// laboratory results only may read no other type.) Without
			// patient context, the same summaries of a patient's records:
			// the sandbox audits every disclosure, naming its patient
			// (fhirproxy's AuditEveryDisclosure), which a read does not.
			_, placed := compartmentTypes[typ]
			if summary == "true" && (rd.lab && typ == "Observation" || !rd.lab && typ == "Appointment") ||
				summary == "text" && (rd.lab && typ == "Observation" || !rd.lab && placed) ||
				(summary == "true" || summary == "text") && !rd.lab && typ == "Binary" && (rd.patient || !rd.clearance.Unrestricted()) {
				for _, path := range []string{path, none} {
					if code, b, _ := through(path); code != http.StatusBadRequest || !strings.Contains(string(b), "_elements") {
						t.Fatalf("%s: %d %.300s", path, code, b)
					}
				}
				return
			}
		case 7: // by _id, in the patient's compartment
			path, none = "/Patient/"+p+"/"+typ+"?_id="+id, "/Patient/"+p+"/"+typ+"?_id=zz-none"
			// (With patient context, the patient's own Patient is in its
			// compartment, as in R5's CompartmentDefinition; the data
			// server reads R4's, which has not.)
			if standing && visible(current) && (slices.Contains(patientRefs(current), "Patient/"+p) || rd.patient && key == "Patient/"+p) {
				shown = []resource{current}
			}
		}
		code, got, hdr := through(path)
		if ask != 5 {
			// Its audit event names the patients of what it disclosed,
			// in part or whole, and no other but the one the read is
			// about (the patient in context, the compartment's, a
			// Patient's own).
			var about []string
			switch {
			case rd.patient || ask == 7:
				about = []string{p}
			case typ == "Patient":
				about = []string{id}
			}
			var disclosedNow []resource
			if code == http.StatusOK {
				disclosedNow = shown
			}
			named, labels := disclosed(rid)
			if want := sb.fhir.patientsIn(disclosedNow); !isSubset(want, named) || !isSubset(named, append(want, about...)) {
				t.Fatalf("%s: the audit names %v, the answer (%d) discloses %v's records", path, named, code, want)
			}
			if want := labelsIn(disclosedNow); !slices.Equal(labels, want) {
				t.Fatalf("%s: the audit names the labels %v, the answer (%d) discloses records labelled %v", path, labels, code, want)
			}
		}
		if shown == nil {
			// As a record that does not exist, headers and all.
			noCode, no, noHdr := through(none)
			for _, h := range []string{"ETag", "Last-Modified", "Location", "Content-Location", "Content-Type"} {
				if hdr.Get(h) != noHdr.Get(h) {
					t.Fatalf("%s: %s %q; a record that does not exist: %q", path, h, hdr.Get(h), noHdr.Get(h))
				}
			}
			if ask == 4 || ask == 7 || ask == 3 && noCode == http.StatusOK {
				if code != noCode || !slices.Equal(matches(t, got), matches(t, no)) {
					t.Fatalf("%s: %d %.400s; a record that does not exist: %d %.400s", path, code, got, noCode, no)
				}
				return
			}
			if code != noCode || strings.ReplaceAll(string(got), id, "zz-none") != string(no) {
				t.Fatalf("%s (%s): %d %.400s; a record that does not exist: %d %.400s", path, key, code, got, noCode, no)
			}
			return
		}
		if code != http.StatusOK {
			t.Fatalf("%s: %d %.400s; directly the grant's %d versions", path, code, got, len(shown))
		}
		compared := ask
		if ask == 5 && summary != "" {
			compared = 6 // (a batch's read in part, as on its own)
		}
		switch compared {
		case 3, 4, 7:
			var want []string
			for _, v := range shown {
				if v == nil {
					want = append(want, "deleted")
					continue
				}
				want = append(want, v["id"].(string)+"@"+v["meta"].(map[string]any)["versionId"].(string))
			}
			if m := matches(t, got); !slices.Equal(m, want) {
				t.Fatalf("%s: through the proxy %v, the grant's %v", path, m, want)
			}
		case 6:
			var part struct {
				ResourceType, ID, Status string
				Meta                     struct{ Tag []struct{ Code string } }
			}
			if err := json.Unmarshal(got, &part); err != nil || part.ResourceType != typ || part.ID != id || part.Status != fmt.Sprint(cmp.Or(current["status"], "")) ||
				!slices.ContainsFunc(part.Meta.Tag, func(tg struct{ Code string }) bool { return tg.Code == "SUBSETTED" }) {
				t.Fatalf("%s: through the proxy %.400s", path, got)
			}
		default:
			var g, w any
			_ = json.Unmarshal(got, &g)
			b, _ := json.Marshal(shown[0])
			_ = json.Unmarshal(b, &w)
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("%s: through the proxy %.400s, directly %.400s", path, got, b)
			}
		}
	})
}

// matches returns a Bundle's resources, as id@version, in order.
func matches(t *testing.T, b []byte) []string {
	t.Helper()
	var bundle struct {
		Entry []struct {
			Resource struct {
				ID   string
				Meta struct{ VersionID string }
			}
		}
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatalf("%v: %.300s", err, b)
	}
	var out []string
	for _, e := range bundle.Entry {
		if e.Resource.ID == "" {
			out = append(out, "deleted")
			continue
		}
		out = append(out, e.Resource.ID+"@"+e.Resource.Meta.VersionID)
	}
	return out
}

// A grantee is who reads or writes through the proxy in the agreement
// fuzz targets: a patient's app (of every label, of the default clearance,
// or granted laboratory results only by a query-constrained scope), a
// clinician (of the default clearance, or of every label granted
// laboratory results only), a backend service of the default clearance.
type grantee struct {
	tok       map[string]string // by patient (the same for those without patient context)
	clearance consent.Clearance
	patient   bool // acts in the patient's context
	lab       bool // granted laboratory results only
}

// grantees mints the six grantees' tokens, for each of the patients, with
// the permission letters given (rs, cruds).
func grantees(f *testing.F, sb *Sandbox, patients []string, letters string) []grantee {
	mint := func(g smart.Grant) string {
		g.ClientID, g.Audience = ExampleAppID, sb.FHIRBase
		tok, err := sb.Auth.Mint(context.Background(), "", g, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	every := *everyLabel()
	out := []grantee{{clearance: every, patient: true}, {patient: true}, {clearance: every, patient: true, lab: true}, {}, {clearance: every, lab: true}, {}}
	for i := range out {
		out[i].tok = map[string]string{}
	}
	clinician := mint(smart.Grant{UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/*." + letters})
	labClinician := mint(smart.Grant{UserID: "clinician", FHIRUser: "Practitioner/pr-lee", Scope: "user/Observation." + letters + "?category=laboratory", Clearance: &every})
	backend := mint(smart.Grant{Scope: "system/*." + letters})
	for _, p := range patients {
		own := smart.Grant{UserID: "patient", FHIRUser: "Patient/" + p, Scope: "launch/patient patient/*." + letters, Context: launch.Context{Patient: p}}
		out[1].tok[p] = mint(own)
		own.Clearance = &every
		out[0].tok[p] = mint(own)
		own.Scope = "launch/patient patient/Observation." + letters + "?category=laboratory"
		out[2].tok[p] = mint(own)
		out[3].tok[p], out[4].tok[p], out[5].tok[p] = clinician, labClinician, backend
	}
	return out
}

// sharedTypes are the types the sandbox's proxy shares with patient/
// tokens.
var sharedTypes = map[string]bool{"ValueSet": true, "CodeSystem": true, "Practitioner": true, "PractitionerRole": true,
	"Organization": true, "Location": true, "Medication": true, "Substance": true, "HealthcareService": true}

// sees says whether g may see one version v of a record (for patient p),
// reading it as ask does (0 a read, 1 or 2 a vread, 3 its history, 4 a
// search by _id, 5 a read in a batch, 6 a read in part, 7 a search by _id
// in a patient's compartment).
func (g grantee) sees(sb *Sandbox, p string, v resource, ask int) bool {
	typ := v["resourceType"].(string)
	conf, tags := labels(v)
	switch {
	case !g.clearance.Allows(conf, tags):
		return false
	case g.lab && (typ != "Observation" || !slices.Contains(codes(v["category"]), "laboratory")):
		return false
	case typ == "Provenance" && !(g.clearance.Unrestricted() && !g.patient):
		// Seen where the records it is about are, as they are now (with
		// patient context: read, but not searched, nor its history), by
		// those who may not see every record.
		targets := references(v, "target")
		if len(targets) == 0 || len(targets) > 8 || g.patient && (ask == 3 || ask == 4 || ask == 7) {
			return false
		}
		for _, ref := range targets {
			sb.fhir.mu.RLock()
			target, ok := sb.fhir.current[ref]
			sb.fhir.mu.RUnlock()
			if !ok || strings.HasPrefix(ref, "Provenance/") || !g.sees(sb, p, target, 0) {
				return false
			}
		}
		return true
	case !g.patient:
		return true
	case typ == "Patient":
		return v["id"] == p
	case sharedTypes[typ]:
		return true
	case typ == "Group": // in the compartment by a list of members: not read with patient context
		return false
	}
	return slices.Contains(patientRefs(v), "Patient/"+p)
}

// compartmentTypes are the sandbox's types in the Patient compartment, by
// which the proxy judges a patient app's records (its patient reference).
var compartmentTypes = map[string]bool{"Observation": true, "Condition": true, "Encounter": true, "MedicationRequest": true,
	"AllergyIntolerance": true, "DocumentReference": true, "Appointment": true}
