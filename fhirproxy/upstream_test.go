package fhirproxy_test

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// upstream is an in-process FHIR server that records every request it
// receives, so tests can prove a refusal forwarded nothing.
type upstream struct {
	mu        sync.Mutex
	resources map[string]map[string]any // "Type/id" → resource
	got       []*http.Request
	bodies    []string
	ts        *httptest.Server
	// misbehave makes searches ignore the patient parameter (an upstream bug the proxy must contain).
	misbehave bool
	// forgetful keeps no record of requests (benchmarks: a record growing
	// by the request would make the garbage collector's work grow too).
	forgetful bool
	// pageSize, when set, makes searches page for real: at most that many
	// entries a page (fewer if _count asks), in the order of their keys,
	// with a next link (_offset) while more follow, on nextBase if set.
	pageSize int
	nextBase string
	// getpages, with pageSize, makes the next link HAPI's: at the base,
	// [base]?_getpages=id&_getpagesoffset=n, the search kept under id.
	getpages bool
	kept     map[string]string // _getpages id → the search's path and query
	// includes, when set, are the entries a search with _include or
	// _revinclude appends to each page of its matches, as they are (search
	// mode and all); otherwise an _include brings what the page's matches refer to
	// by its parameter (included), and _graph Practitioner/dr and
	// Patient/p2.
	includes []map[string]any
	// side, when set, labels the goroutines serving requests for the CPU
	// profiler (benchmarks: which proxy's upstream did the work).
	side context.Context
	// versions are the earlier versions of "Type/id", oldest first, for
	// vread and instance history (the current one is in resources); a
	// version {"deleted": true} is a deletion.
	versions map[string][]map[string]any
	// coy makes batch reads of a found resource answer 200 without it (a
	// misbehaving upstream).
	coy bool
	// afterRead, when set, runs after a read of "Type/id" is answered (a
	// change made in the meantime by someone else); set it holding mu.
	afterRead func(key string)
	// afterSearch, when set, runs after a search is answered; set it
	// holding mu.
	afterSearch func()
	// header is added to every response (a misbehaving upstream's headers).
	header http.Header
	// opAnswer, when set, answers every operation but $everything;
	// otherwise $expand gets a ValueSet expansion and the others a
	// Parameters with a result.
	opAnswer map[string]any
	// bundleMeta, when set, is every searchset's meta (servers write the
	// high-water mark of the matches' labels there).
	bundleMeta map[string]any
}

func obs(id, patient, category string, labels ...string) map[string]any {
	r := map[string]any{"resourceType": "Observation", "id": id, "status": "final",
		"subject":  map[string]any{"reference": "Patient/" + patient},
		"category": []any{map[string]any{"coding": []any{map[string]any{"code": category}}}},
		"code":     map[string]any{"text": strings.Repeat("x", 600)}}
	var sec []any
	for _, l := range labels {
		sys := "http://terminology.hl7.org/CodeSystem/v3-ActCode"
		if len(l) == 1 {
			sys = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
		}
		sec = append(sec, map[string]any{"system": sys, "code": l})
	}
	if sec != nil {
		r["meta"] = map[string]any{"security": sec}
	}
	return r
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{resources: map[string]map[string]any{}}
	for _, r := range []map[string]any{
		{"resourceType": "Patient", "id": "p1", "name": []any{map[string]any{"family": "One"}}, "identifier": []any{map[string]any{"system": "urn:mrn", "value": "1"}}},
		{"resourceType": "Patient", "id": "p2", "name": []any{map[string]any{"family": "Two"}}, "identifier": []any{map[string]any{"system": "urn:mrn", "value": "2"}}},
		obs("lab-1", "p1", "laboratory"), obs("vs-1", "p1", "vital-signs"), obs("lab-2", "p2", "laboratory"),
		obs("psy-1", "p1", "laboratory", "R", "PSY"),
		{"resourceType": "Practitioner", "id": "dr", "name": []any{map[string]any{"family": "Lee"}}},
		{"resourceType": "Condition", "id": "c-1", "subject": map[string]any{"reference": "Patient/p1"}},
	} {
		u.resources[r["resourceType"].(string)+"/"+r["id"].(string)] = r
	}
	u.ts = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.ts.Close)
	return u
}

// etag is the version tag of the current version of "Type/id".
func (u *upstream) etag(key string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return `W/"` + strconv.Itoa(len(u.versions[key])+1) + `"`
}

func (u *upstream) reset() {
	u.mu.Lock()
	u.got, u.bodies = nil, nil
	u.mu.Unlock()
}

func (u *upstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.got...)
}

func (u *upstream) write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	if u.side != nil {
		pprof.SetGoroutineLabels(u.side)
	}
	// A permissive upstream CORS policy the proxy must not pass on.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "public, max-age=3600") // and a caching policy the proxy must replace
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	if !u.forgetful {
		u.got = append(u.got, r.Clone(r.Context()))
		u.bodies = append(u.bodies, string(b))
	}
	u.mu.Unlock()
	for k, v := range u.header {
		w.Header()[k] = v
	}
	u.answer(w, r, b)
}

// answer answers a request as the server does, unrecorded: on its own
// (serve), or a batch's entry.
func (u *upstream) answer(w http.ResponseWriter, r *http.Request, b []byte) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	notFound := map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "error", "code": "not-found"}}}
	if id := r.URL.Query().Get("_getpages"); r.Method == http.MethodGet && segs[0] == "" && id != "" { // a page of a kept search
		u.mu.Lock()
		search, ok := u.kept[id]
		u.mu.Unlock()
		if !ok {
			u.write(w, 410, notFound)
			return
		}
		get := httptest.NewRequest(http.MethodGet, search+"&_offset="+r.URL.Query().Get("_getpagesoffset"), nil)
		u.answer(w, get, nil)
		return
	}
	if r.Method == http.MethodPost && segs[len(segs)-1] == "_search" { // of a type, a compartment or the system: answered as the GET it is
		get := httptest.NewRequest(http.MethodGet, "/"+strings.Join(segs[:len(segs)-1], "/")+"?"+string(b), nil)
		if r.URL.RawQuery != "" {
			get.URL.RawQuery = r.URL.RawQuery + "&" + string(b)
		}
		u.answer(w, get, nil)
		return
	}
	switch {
	case r.Method == http.MethodGet && len(segs) >= 3 && segs[2] == "_history":
		u.mu.Lock()
		key := segs[0] + "/" + segs[1]
		cur, ok := u.resources[key]
		all := append(slices.Clone(u.versions[key]), cur)
		u.mu.Unlock()
		if !ok {
			u.write(w, 404, notFound)
			return
		}
		if len(segs) == 4 {
			v, err := strconv.Atoi(segs[3])
			switch {
			case err != nil || v < 1 || v > len(all):
				u.write(w, 404, notFound)
			case all[v-1]["deleted"] == true:
				u.write(w, 410, notFound)
			default:
				u.write(w, 200, selected(all[v-1], r.URL.Query()))
			}
			return
		}
		var entries []any
		for i := len(all) - 1; i >= 0; i-- { // newest first
			if all[i]["deleted"] == true { // a deletion: request and response, no resource
				entries = append(entries, map[string]any{"fullUrl": u.ts.URL + "/" + key,
					"request": map[string]any{"method": "DELETE", "url": key}, "response": map[string]any{"status": "204"}})
				continue
			}
			entries = append(entries, map[string]any{"fullUrl": u.ts.URL + "/" + key, "resource": selected(all[i], r.URL.Query())})
		}
		u.write(w, 200, map[string]any{"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries})
	case r.Method == http.MethodGet && len(segs) == 2 && segs[1] == "_history": // type history: every version of every record
		var entries []any
		u.mu.Lock()
		for key, cur := range u.resources {
			if strings.HasPrefix(key, segs[0]+"/") {
				for _, v := range append(slices.Clone(u.versions[key]), cur) {
					if v["deleted"] != true {
						entries = append(entries, map[string]any{"fullUrl": u.ts.URL + "/" + key, "resource": v})
					}
				}
			}
		}
		u.mu.Unlock()
		u.write(w, 200, map[string]any{"resourceType": "Bundle", "type": "history", "entry": entries})
	case segs[0] == "metadata":
		op := func(name string) map[string]any {
			return map[string]any{"name": name, "definition": "http://hl7.org/fhir/OperationDefinition/" + name}
		}
		u.write(w, 200, map[string]any{"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
			"implementation": map[string]any{"description": "test server", "url": u.ts.URL},
			"format":         []any{"xml", "json"}, "patchFormat": []any{"application/json-patch+json", "application/xml-patch+xml"},
			"messaging": []any{map[string]any{"endpoint": []any{map[string]any{"protocol": map[string]any{"code": "http"}, "address": u.ts.URL + "/messages"}}}},
			"rest": []any{map[string]any{"mode": "server",
				"operation": []any{op("export"), op("graphql")},
				"resource": []any{
					map[string]any{"type": "Patient", "operation": []any{op("everything"), op("match")}},
					map[string]any{"type": "Observation", "operation": []any{op("lastn")}, "interaction": []any{map[string]any{"code": "read"}},
						"conditionalDelete": "multiple", "conditionalUpdate": true},
					map[string]any{"type": "ValueSet", "operation": []any{op("expand"), op("validate-code"), op("invalidate")}},
					map[string]any{"type": "ImaginaryType"},
				}}}})
	case strings.HasPrefix(segs[len(segs)-1], "$") && segs[len(segs)-1] != "$everything" && !searchOps[segs[len(segs)-1]]:
		u.mu.Lock()
		answer := u.opAnswer
		_, found := u.resources[strings.Join(segs[:min(2, len(segs))], "/")]
		u.mu.Unlock()
		switch {
		case len(segs) == 3 && !found:
			u.write(w, 404, notFound)
			return
		case answer != nil:
		case segs[len(segs)-1] == "$expand":
			answer = map[string]any{"resourceType": "ValueSet", "status": "active", "expansion": map[string]any{
				"timestamp": "2026-11-28T00:00:00Z", "contains": []any{map[string]any{"system": "http://example.org/cs", "code": "red"}}}}
		default:
			answer = map[string]any{"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "result", "valueBoolean": true}}}
		}
		u.write(w, 200, answer)
	case r.Method == http.MethodGet && len(segs) == 2 && !searchOps[segs[1]]:
		u.mu.Lock()
		res, ok := u.resources[segs[0]+"/"+segs[1]]
		etag := `W/"` + strconv.Itoa(len(u.versions[segs[0]+"/"+segs[1]])+1) + `"`
		u.mu.Unlock()
		if !ok {
			u.write(w, 404, notFound)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", "Mon, 02 Nov 2026 10:00:00 GMT")
		if r.Header.Get("If-None-Match") == etag { // a conditional read, as servers answer it
			w.WriteHeader(http.StatusNotModified)
			return
		}
		u.write(w, 200, selected(res, r.URL.Query())) // a read in part, as a strict server answers it
		u.mu.Lock()
		after := u.afterRead
		u.mu.Unlock()
		if after != nil {
			after(segs[0] + "/" + segs[1])
		}
	case r.Method == http.MethodGet && (len(segs) == 1 || len(segs) == 3 || len(segs) == 2 && searchOps[segs[1]]):
		typ := segs[len(segs)-1]
		if searchOps[typ] { // as a search of the type ($lastn: each a latest, this upstream keeping one version)
			typ = segs[0]
		}
		q := r.URL.Query()
		types := []string{typ}
		if typ == "" { // a search of the system: of the types _type lists, or of every type
			types = strings.Split(q.Get("_type"), ",")
		}
		var entries []any
		u.mu.Lock()
		for key, res := range u.resources {
			if t, _, _ := strings.Cut(key, "/"); types[0] != "" && !slices.Contains(types, t) {
				continue
			}
			if !u.misbehave {
				if !u.namesSubject(res, q) {
					continue
				}
				if len(segs) == 3 && segs[0] == "Patient" && !u.namesSubject(res, url.Values{"patient": {segs[1]}}) { // a compartment search
					continue
				}
				if v := q.Get("_id"); v != "" && !slices.Contains(strings.Split(v, ","), res["id"].(string)) {
					continue
				}
				if v := q.Get("category"); v != "" && !strings.Contains(mustJSON(res["category"]), `"`+v+`"`) {
					continue
				}
				if v := q.Get("code"); v != "" && !strings.Contains(mustJSON(res["code"]), `"code":"`+v+`"`) {
					continue
				}
				if v := q.Get("url"); v != "" && res["url"] != v {
					continue
				}
				if v := q.Get("identifier"); v != "" && !hasIdentifier(res, v) {
					continue
				}
			}
			entries = append(entries, map[string]any{"fullUrl": u.ts.URL + "/" + key, "resource": selected(res, q), "search": map[string]any{"mode": "match"}})
		}
		if u.pageSize > 0 {
			slices.SortFunc(entries, func(a, b any) int {
				return strings.Compare(mustJSON(a.(map[string]any)["fullUrl"]), mustJSON(b.(map[string]any)["fullUrl"]))
			})
		}
		if q.Get("_graph") != "" { // R5's inclusion by GraphDefinition, as a server may have it
			entries = append(entries, map[string]any{"resource": u.resources["Practitioner/dr"], "search": map[string]any{"mode": "include"}},
				map[string]any{"resource": u.resources["Patient/p2"], "search": map[string]any{"mode": "include"}})
		}
		u.mu.Unlock()
		if q.Get("_summary") == "count" { // the count of every match, and no entries
			u.write(w, 200, map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(entries)})
			return
		}
		// Paging links on the upstream's own base, as FHIR servers write them:
		// asked for a page (a _count under 100), it says more follow.
		links := []any{map[string]any{"relation": "self", "url": u.ts.URL + r.URL.RequestURI()}}
		total := len(entries)
		switch n, err := strconv.Atoi(q.Get("_count")); {
		case u.pageSize > 0:
			size := u.pageSize
			if err == nil && n < size {
				size = n
			}
			offset, _ := strconv.Atoi(q.Get("_offset"))
			entries = entries[min(offset, len(entries)):]
			if len(entries) > size {
				entries = entries[:size]
				base := cmp.Or(u.nextBase, u.ts.URL)
				if u.getpages {
					q.Del("_offset")
					u.mu.Lock()
					id := strconv.Itoa(len(u.kept))
					if u.kept == nil {
						u.kept = map[string]string{}
					}
					u.kept[id] = r.URL.Path + "?" + q.Encode()
					u.mu.Unlock()
					links = append(links, map[string]any{"relation": "next", "url": base + "?_getpages=" + id + "&_getpagesoffset=" + strconv.Itoa(offset+size)})
				} else {
					q.Set("_offset", strconv.Itoa(offset+size))
					links = append(links, map[string]any{"relation": "next", "url": base + r.URL.Path + "?" + q.Encode()})
				}
			}
		case err == nil && n < 100 && !q.Has("ct"): // (page 2 is the last)
			links = append(links, map[string]any{"relation": "next", "url": u.ts.URL + r.URL.RequestURI() + "&ct=page-2"})
		}
		switch {
		case u.includes != nil && (q.Get("_include") != "" || q.Get("_revinclude") != ""):
			for _, e := range u.includes { // on each page
				entries = append(entries, e)
			}
		case q.Has("_include"):
			entries = append(entries, u.included(entries, q["_include"])...)
		}
		bundle := map[string]any{"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries}
		if u.bundleMeta != nil {
			bundle["meta"] = u.bundleMeta
		}
		u.write(w, 200, bundle)
		u.mu.Lock()
		after := u.afterSearch
		u.mu.Unlock()
		if after != nil {
			after()
		}
	case r.Method == http.MethodPost && len(segs) == 1 && segs[0] != "":
		var res map[string]any
		_ = json.Unmarshal(b, &res)
		res["id"] = "new-1"
		w.Header().Set("Location", u.ts.URL+"/"+segs[0]+"/new-1/_history/1")
		u.write(w, 201, res)
	case r.Method != http.MethodGet && r.Method != http.MethodPost && len(segs) == 2 && r.Header.Get("If-Match") != "" &&
		r.Header.Get("If-Match") != u.etag(segs[0]+"/"+segs[1]):
		u.write(w, http.StatusPreconditionFailed, map[string]any{"resourceType": "OperationOutcome",
			"issue": []any{map[string]any{"severity": "error", "code": "conflict", "diagnostics": "version conflict"}}})
	case r.Method == http.MethodPut:
		var res map[string]any
		_ = json.Unmarshal(b, &res)
		u.write(w, 200, res)
	case r.Method == http.MethodDelete:
		w.WriteHeader(204)
	case r.Method == http.MethodPatch && len(segs) == 2: // answered with the record as stored: the patch is not applied
		u.mu.Lock()
		res, ok := u.resources[segs[0]+"/"+segs[1]]
		u.mu.Unlock()
		if !ok {
			u.write(w, 404, notFound)
			return
		}
		u.write(w, 200, res)
	case r.Method == http.MethodPost: // a batch: reads answered, anything else accepted
		var in struct {
			Entry []struct {
				Request struct{ Method, URL, IfNoneMatch string }
			}
		}
		_ = json.Unmarshal(b, &in)
		var out []any
		for _, e := range in.Entry {
			if path, _, _ := strings.Cut(e.Request.URL, "?"); e.Request.Method == http.MethodGet && (strings.Count(path, "/") != 1 || strings.Contains(path, "/_")) {
				// A search (of a type, or a compartment) or a history,
				// answered as on its own, its Bundle in the entry.
				rec := httptest.NewRecorder()
				u.answer(rec, httptest.NewRequest(http.MethodGet, "/"+e.Request.URL, nil), nil)
				var bundle map[string]any
				_ = json.Unmarshal(rec.Body.Bytes(), &bundle)
				out = append(out, map[string]any{"resource": bundle, "response": map[string]any{"status": strconv.Itoa(rec.Code)}})
				continue
			}
			path, query, _ := strings.Cut(e.Request.URL, "?") // a read, in part where it asks
			u.mu.Lock()
			res, ok := u.resources[path]
			u.mu.Unlock()
			if q, _ := url.ParseQuery(query); ok {
				res = selected(res, q)
			}
			switch {
			case e.Request.Method != http.MethodGet:
				out = append(out, map[string]any{"response": map[string]any{"status": "201 Created"}})
			case ok && e.Request.IfNoneMatch == `W/"`+strconv.Itoa(len(u.versions[path])+1)+`"`:
				out = append(out, map[string]any{"response": map[string]any{"status": "304 Not Modified"}})
			case ok && u.coy:
				out = append(out, map[string]any{"response": map[string]any{"status": "200 OK"}})
			case ok:
				out = append(out, map[string]any{"resource": res, "response": map[string]any{"status": "200 OK"}})
			default: // the server's own words, which the proxy replaces with its own
				out = append(out, map[string]any{"response": map[string]any{"status": "404 Not Found", "outcome": map[string]any{
					"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "error", "code": "not-found",
						"diagnostics": "HAPI-2001: Resource " + e.Request.URL + " is not known"}}}}})
			}
		}
		u.write(w, 200, map[string]any{"resourceType": "Bundle", "type": "batch-response", "entry": out})
	default:
		u.write(w, 404, notFound)
	}
}

// namesSubject reports whether a record's subject is one that each of the
// query's patient and subject parameters names (patient, subject, with
// :Patient or not): an id, Patient/id or an absolute URL ending in it, OR
// lists of those, as a server reads them.
func (u *upstream) namesSubject(res map[string]any, q url.Values) bool {
	subj, _ := res["subject"].(map[string]any)
	ref, _ := subj["reference"].(string)
	for _, name := range []string{"patient", "patient:Patient", "subject", "subject:Patient"} {
		for _, v := range q[name] {
			named := false
			for one := range strings.SplitSeq(v, ",") {
				switch i := strings.LastIndex(one, "Patient/"); {
				case i >= 0:
					one = one[i:]
				case !strings.Contains(one, "/"):
					one = "Patient/" + one
				}
				named = named || one == ref
			}
			if !named {
				return false
			}
		}
	}
	return true
}

// summaryElements are the summary elements (Σ) of the types the test
// upstream holds, as R4 marks them, beside id and meta: not an
// Observation's category, a Condition's category or severity, a
// Provenance's agents, a Device's patient.
var summaryElements = map[string][]string{
	"Observation":  {"identifier", "basedOn", "partOf", "status", "code", "subject", "focus", "encounter", "effectiveDateTime", "issued", "performer", "valueQuantity", "hasMember", "derivedFrom", "component"},
	"Patient":      {"identifier", "active", "name", "telecom", "gender", "birthDate", "address", "managingOrganization", "link"},
	"Condition":    {"identifier", "clinicalStatus", "verificationStatus", "code", "bodySite", "subject", "encounter", "onsetDateTime", "recordedDate", "recorder", "asserter"},
	"Practitioner": {"identifier", "active", "name", "telecom", "address", "gender", "birthDate"},
	"Provenance":   {"target", "recorded"},
	"Device":       {"udiCarrier", "status", "safety"},
	"Appointment":  {"identifier", "status", "serviceType", "start", "end"},
}

// included are the records a page's matches refer to by the elements the
// _include values name (Type:param, camelCase; patient: subject or
// patient; *: every reference), each once, as servers include them.
func (u *upstream) included(page []any, includes []string) []any {
	u.mu.Lock()
	defer u.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range page {
		seen[strings.TrimPrefix(e.(map[string]any)["fullUrl"].(string), u.ts.URL+"/")] = true
	}
	var out []any
	for _, e := range page {
		res := u.resources[strings.TrimPrefix(e.(map[string]any)["fullUrl"].(string), u.ts.URL+"/")]
		for _, inc := range includes {
			typ, param, _ := strings.Cut(inc, ":")
			param, _, _ = strings.Cut(param, ":")
			if inc != "*" && typ != "*" && typ != res["resourceType"] {
				continue // (another type's)
			}
			var elements []any
			switch param {
			case "*":
				elements = []any{res}
			case "patient":
				elements = []any{res["subject"], res["patient"]}
			default:
				parts := strings.Split(param, "-")
				for i := 1; i < len(parts); i++ {
					parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
				}
				elements = []any{res[strings.Join(parts, "")]}
			}
			for _, ref := range references(elements) {
				if r, ok := u.resources[ref]; ok && !seen[ref] {
					seen[ref] = true
					out = append(out, map[string]any{"fullUrl": u.ts.URL + "/" + ref, "resource": r, "search": map[string]any{"mode": "include"}})
				}
			}
		}
	}
	return out
}

// references are the references (the values of members named reference)
// in v, at any depth.
func references(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "reference" {
				out = append(out, s)
			} else {
				out = append(out, references(x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, references(x)...)
		}
	}
	return out
}

// selected is a search's match as the test upstream sends it: whole, or
// the elements _elements names, or the summary _summary asks for, beside
// resourceType and id (meta only when asked for or in a summary, as a
// strict server has it).
func selected(res map[string]any, q url.Values) map[string]any {
	var keep []string
	switch summary := q.Get("_summary"); {
	case q.Has("_elements"):
		for _, v := range q["_elements"] {
			keep = append(keep, strings.Split(v, ",")...)
		}
	case summary == "true":
		keep = append(slices.Clone(summaryElements[res["resourceType"].(string)]), "meta")
	case summary == "text":
		keep = []string{"text", "meta", "status", "code"} // (Observation's mandatory elements)
	case summary == "data":
		out := maps.Clone(res)
		delete(out, "text")
		return out
	default:
		return res
	}
	out := map[string]any{"resourceType": res["resourceType"], "id": res["id"]}
	for _, k := range keep {
		if v, ok := res[k]; ok {
			out[k] = v
		}
	}
	return out
}

// hasIdentifier reports whether a resource has an identifier matching a
// token search's value: system|value, |value (no system), or value.
func hasIdentifier(res map[string]any, v string) bool {
	ids, _ := res["identifier"].([]any)
	for _, x := range ids {
		id, _ := x.(map[string]any)
		sys, _ := id["system"].(string)
		val, _ := id["value"].(string)
		if want, ok := strings.CutPrefix(v, sys+"|"); ok && want == val || !strings.Contains(v, "|") && v == val {
			return true
		}
	}
	return false
}

// searchOps are the operations the test upstream answers as a search of
// their type.
var searchOps = map[string]bool{"$lastn": true, "$docref": true}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
