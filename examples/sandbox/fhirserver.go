package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fhirServer is the sandbox's FHIR R4 data server: in memory, over the
// synthetic data set. It sits behind fhirproxy, which enforces the policy;
// it only serves data. It is strict: an unsupported search parameter is an
// error, never silently ignored (a constraint the proxy adds must hold).
// Where apps notice, it behaves as FHIR servers do: versions, deletes and
// patches (versions.go), conditional writes (conditional.go), batches and
// transactions (transaction.go), history, records in part (summary.go),
// bulk export (bulk.go) and terminology (terminology.go).
type fhirServer struct {
	base    string // public FHIR base, for fullUrl and paging links
	mu      sync.RWMutex
	current map[string]resource   // "Type/id" → latest version
	history map[string][]resource // "Type/id" → all versions, oldest first
	order   []string              // "Type/id" of the current records, in insertion order, for stable searches
	changes []change              // every version written (a deletion too), in order: type and system history
	seq     int
	jobs    map[string]*exportJob // bulk exports by id (bulk.go)
	objects *objectStore          // where export files are written, with Config.ExportStorage; nil: on the base
}

func newFHIRServer(base string, d *dataset) *fhirServer {
	s := &fhirServer{base: base, current: map[string]resource{}, history: map[string][]resource{}}
	for _, r := range d.resources {
		key := r["resourceType"].(string) + "/" + r["id"].(string)
		s.current[key] = r
		s.history[key] = []resource{r}
		s.order = append(s.order, key)
		at, _ := time.Parse(time.RFC3339, r["meta"].(map[string]any)["lastUpdated"].(string))
		s.changes = append(s.changes, change{key, 1, at})
	}
	return s
}

func (s *fhirServer) write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_, _ = w.Write(fhirJSON(v))
}

// fhirJSON writes a resource with its resourceType first, as FHIR servers
// do (encoding/json sorts a map's keys): the proxy streams a large Bundle
// only when it knows it is one before its entries arrive. A member that is
// an empty array is left out, as FHIR's JSON has it.
func fhirJSON(v any) []byte {
	res, _ := v.(resource)
	typ, _ := res["resourceType"].(string)
	if typ == "" {
		b, _ := json.Marshal(v)
		return append(b, '\n')
	}
	rest := maps.Clone(res)
	delete(rest, "resourceType")
	for k, v := range rest {
		if list, ok := v.([]any); ok && len(list) == 0 {
			delete(rest, k) // FHIR's JSON has no empty arrays (a Bundle without entries has no entry)
		}
	}
	body, _ := json.Marshal(rest)
	name, _ := json.Marshal(typ)
	out := append([]byte(`{"resourceType":`), name...)
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(append(out, body[1:]...), '\n')
}

func (s *fhirServer) outcome(w http.ResponseWriter, status int, code, msg string) {
	s.write(w, status, resource{"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "error", "code": code, "diagnostics": msg}}})
}

// notModified reports whether a conditional read (FHIR R4's If-None-Match
// with the version's ETag, or If-Modified-Since at or after it was last
// updated) is answered 304: the client's copy stands.
func notModified(r *http.Request, etag, updated string) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return etag != "" && slices.ContainsFunc(strings.Split(inm, ","), func(t string) bool { return strings.TrimSpace(t) == etag || strings.TrimSpace(t) == "*" })
	}
	since, err := http.ParseTime(r.Header.Get("If-Modified-Since"))
	at, err2 := http.ParseTime(updated)
	return err == nil && err2 == nil && !at.After(since)
}

func (s *fhirServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(segs) == 1 && segs[0] == "metadata":
		s.write(w, 200, s.capabilities())
	case r.Method == http.MethodGet && len(segs) == 2 && segs[1] == "_history":
		s.changesOf(w, segs[0], r.URL.Query())
	case r.Method == http.MethodGet && len(segs) == 1 && segs[0] == "_history":
		s.changesOf(w, "", r.URL.Query())
	case (r.Method == http.MethodGet || r.Method == http.MethodPost) && len(segs) == 1 && segs[0] == "$export":
		s.export(w, r, "", "")
	case (r.Method == http.MethodGet || r.Method == http.MethodPost) && len(segs) == 2 && segs[0] == "Patient" && segs[1] == "$export":
		s.export(w, r, "Patient", "")
	case (r.Method == http.MethodGet || r.Method == http.MethodPost) && len(segs) == 3 && segs[0] == "Group" && segs[2] == "$export":
		s.export(w, r, "Group", segs[1])
	case (r.Method == http.MethodGet || r.Method == http.MethodDelete) && len(segs) == 1 && segs[0] == "$export-poll-status":
		s.exportStatus(w, r, r.URL.Query())
	case r.Method == http.MethodGet && len(segs) == 3 && segs[0] == "$export-file":
		s.exportFile(w, segs[1], segs[2])
	case r.Method == http.MethodGet && len(segs) == 1: // a type's search, or the system's ([base]?_type=…)
		s.search(w, r, segs[0], r.URL.Query())
	case r.Method == http.MethodPost && len(segs) == 2 && segs[1] == "_search":
		_ = r.ParseForm()
		s.search(w, r, segs[0], r.PostForm)
	case r.Method == http.MethodPost && len(segs) == 1 && segs[0] == "_search":
		_ = r.ParseForm()
		s.search(w, r, "", r.PostForm)
	case r.Method == http.MethodGet && compartment(segs):
		s.search(w, r, segs[2], inCompartment(r.URL.Query(), segs[1]))
	case r.Method == http.MethodPost && len(segs) == 4 && segs[3] == "_search" && compartment(segs[:3]):
		_ = r.ParseForm()
		s.search(w, r, segs[2], inCompartment(r.PostForm, segs[1]))
	case r.Method == http.MethodGet && len(segs) == 3 && segs[0] == "Patient" && segs[2] == "$everything":
		s.everything(w, segs[1], r.URL.Query())
	case r.Method == http.MethodGet && len(segs) == 2 && segs[0] == "Observation" && segs[1] == "$lastn":
		s.lastn(w, r.URL.Query())
	case r.Method == http.MethodGet && len(segs) == 2 && segs[0] == "DocumentReference" && segs[1] == "$docref":
		s.docref(w, r.URL.Query())
	case (r.Method == http.MethodGet || r.Method == http.MethodPost) &&
		(len(segs) == 2 && strings.HasPrefix(segs[1], "$") || len(segs) == 3 && strings.HasPrefix(segs[2], "$")):
		id := ""
		if len(segs) == 3 {
			id = segs[1]
		}
		q := r.URL.Query()
		if r.Method == http.MethodPost {
			if err := parametersInto(q, r.Body); err != nil {
				s.outcome(w, 400, "invalid", err.Error())
				return
			}
		}
		if !s.terminologyOp(w, segs[0], id, segs[len(segs)-1], q) {
			s.outcome(w, 405, "not-supported", "the sandbox FHIR server does not support this operation")
		}
	case r.Method == http.MethodGet && len(segs) == 2:
		s.mu.RLock()
		res, ok := s.current[segs[0]+"/"+segs[1]]
		s.mu.RUnlock()
		if !ok {
			s.missing(w, segs[0]+"/"+segs[1])
			return
		}
		m, _ := res["meta"].(map[string]any)
		etag, updated := "", ""
		if v, ok := m["versionId"].(string); ok {
			etag = `W/"` + v + `"`
			w.Header().Set("ETag", etag) // as FHIR servers send it
		}
		if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["lastUpdated"])); err == nil {
			updated = at.UTC().Format(http.TimeFormat)
			w.Header().Set("Last-Modified", updated)
		}
		if notModified(r, etag, updated) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		s.writePart(w, res, r.URL.Query())
	case r.Method == http.MethodGet && len(segs) == 4 && segs[2] == "_history":
		s.mu.RLock()
		versions := s.history[segs[0]+"/"+segs[1]]
		s.mu.RUnlock()
		v, err := strconv.Atoi(segs[3])
		switch {
		case err != nil || v < 1 || v > len(versions) || segs[3] != strconv.Itoa(v):
			s.outcome(w, 404, "not-found", "no such version")
		case versions[v-1] == nil:
			s.outcome(w, 410, "deleted", "this version is the record's deletion")
		default:
			w.Header().Set("ETag", `W/"`+segs[3]+`"`) // as for a read
			s.writePart(w, versions[v-1], r.URL.Query())
		}
	case r.Method == http.MethodGet && len(segs) == 3 && segs[2] == "_history":
		s.instanceHistory(w, segs[0], segs[1])
	case r.Method == http.MethodPost && len(segs) == 1 && segs[0] == "":
		s.transaction(w, r)
	case r.Method == http.MethodPost && len(segs) == 1:
		s.put(w, r, segs[0], "")
	case (r.Method == http.MethodPut || r.Method == http.MethodPatch || r.Method == http.MethodDelete) && len(segs) == 1 && segs[0] != "" && r.URL.RawQuery != "":
		s.conditional(w, r, segs[0])
	case r.Method == http.MethodPut && len(segs) == 2:
		s.put(w, r, segs[0], segs[1])
	case r.Method == http.MethodPatch && len(segs) == 2:
		s.patch(w, r, segs[0], segs[1])
	case r.Method == http.MethodDelete && len(segs) == 2:
		s.delete(w, r, segs[0], segs[1])
	default:
		s.outcome(w, 405, "not-supported", "the sandbox FHIR server does not support this interaction")
	}
}

// compartment reports whether a path's segments name a patient's
// compartment of a type (Patient/{id}/{type}): not a history or an
// operation.
func compartment(segs []string) bool {
	return len(segs) == 3 && segs[0] == "Patient" && segs[2] != "_history" && !strings.HasPrefix(segs[2], "$")
}

// inCompartment is a search of a patient's compartment
// (Patient/{id}/{type}) as the search of its type it is: by the patient,
// ANDed with the rest.
func inCompartment(q url.Values, patient string) url.Values {
	q = maps.Clone(q)
	if q == nil {
		q = url.Values{}
	}
	q.Add("patient", "Patient/"+patient)
	return q
}

// put creates (id "") or updates a resource, keeping its history.
func (s *fhirServer) put(w http.ResponseWriter, r *http.Request, typ, id string) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var res resource
	if err != nil || json.Unmarshal(b, &res) != nil {
		s.outcome(w, 400, "invalid", "the body must be a "+typ)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	update := id != ""
	if crit := r.Header.Get("If-None-Exist"); !update && crit != "" {
		found, f := s.resolve(typ, crit)
		switch {
		case f != nil:
			s.outcome(w, f.status, f.code, f.msg)
			return
		case found != nil: // it exists: nothing is created
			w.Header().Set("Location", s.base+"/"+typ+"/"+found["id"].(string)+"/_history/"+found["meta"].(map[string]any)["versionId"].(string))
			s.write(w, http.StatusOK, found)
			return
		}
	}
	if !update {
		id = s.newID(typ)
	}
	if f := s.check(typ, id, update, res, r.Header.Get("If-Match")); f != nil {
		s.outcome(w, f.status, f.code, f.msg)
		return
	}
	status, version := s.store(typ, id, res)
	s.written(w, r, status, typ, id, version, res)
}

// written answers a write made (typ/id's version): its Location and ETag,
// and the body the client's Prefer asks for, as FHIR has it:
// return=minimal none, return=OperationOutcome an outcome saying what was
// written, and otherwise (return=representation) the resource.
func (s *fhirServer) written(w http.ResponseWriter, r *http.Request, status int, typ, id string, version int, res resource) {
	w.Header().Set("Location", s.base+"/"+typ+"/"+id+"/_history/"+strconv.Itoa(version))
	w.Header().Set("ETag", `W/"`+strconv.Itoa(version)+`"`)
	var ret string
	for _, p := range strings.FieldsFunc(r.Header.Get("Prefer"), func(c rune) bool { return c == ',' || c == ';' }) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "return="); ok {
			ret = v
		}
	}
	switch ret {
	case "minimal":
		w.WriteHeader(status)
	case "OperationOutcome":
		s.write(w, status, resource{"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "information", "code": "informational",
			"diagnostics": typ + "/" + id + " version " + strconv.Itoa(version) + " written"}}})
	default:
		s.write(w, status, res)
	}
}

// failure is a write the server refuses.
type failure struct {
	status    int
	code, msg string
}

// newID is a fresh id for a created resource (s.mu held).
func (s *fhirServer) newID(typ string) string {
	s.seq++
	return fmt.Sprintf("%s-new-%d", strings.ToLower(typ), s.seq)
}

// check reports why res may not be written as typ/id (s.mu held): a body
// of another type, an update's of another id, or an If-Match naming
// another version than the current one (a version-aware write: the proxy
// pins the version it judged). A create's id is the server's.
func (s *fhirServer) check(typ, id string, update bool, res resource, ifMatch string) *failure {
	switch {
	case res["resourceType"] != typ:
		return &failure{400, "invalid", "the body must be a " + typ}
	case update && res["id"] != id:
		return &failure{400, "invalid", "the body's id must match the URL"}
	}
	return s.versionMatches(typ+"/"+id, ifMatch)
}

// versionMatches is nil unless ifMatch is set and names another version
// than the record's current one (s.mu held): a deleted record has none.
func (s *fhirServer) versionMatches(key, ifMatch string) *failure {
	_, exists := s.current[key]
	if ifMatch != "" && (!exists || strings.TrimPrefix(ifMatch, "W/") != `"`+strconv.Itoa(len(s.history[key]))+`"`) {
		return &failure{412, "conflict", "the resource is not at the version If-Match names"}
	}
	return nil
}

// store writes res as typ/id's next version (s.mu held, check passed) and
// returns the status it answers (201 for the first version) and the version.
func (s *fhirServer) store(typ, id string, res resource) (status, version int) {
	key := typ + "/" + id
	version, status = len(s.history[key])+1, 200
	if _, ok := s.current[key]; !ok { // new, or deleted before: created again
		status = 201
		s.order = append(s.order, key)
	}
	res["id"] = id
	m, _ := res["meta"].(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	now := time.Now().UTC().Truncate(time.Second) // as lastUpdated says it, which _since is compared with
	m["versionId"], m["lastUpdated"] = strconv.Itoa(version), now.Format(time.RFC3339)
	res["meta"] = m
	s.changes = append(s.changes, change{key, version, now})
	s.current[key] = res
	s.history[key] = append(s.history[key], res)
	return status, version
}

// includes returns what _include=inc (Type:param, or Type:param:Target;
// *, every reference) brings with a record res: the references of the
// element the search parameter reads, of the target type if one is named;
// nothing for a record of another type. The sandbox's parameters: patient
// (subject or patient, to a Patient), participant (an Encounter's
// participants, their individual), actor (an Appointment's participants,
// their actor), medication (medicationReference), and any other by the
// element of its name (encounter, subject, performer, target, …).
func includes(res resource, inc string) []string {
	typ, rest, _ := strings.Cut(inc, ":")
	param, target, _ := strings.Cut(rest, ":")
	if inc != "*" && typ != res["resourceType"] {
		return nil
	}
	var refs []string
	switch param {
	case "patient":
		refs = slices.DeleteFunc(append(references(res, "subject"), references(res, "patient")...), func(r string) bool { return !strings.HasPrefix(r, "Patient/") })
	case "participant":
		refs = references(res, "participant.individual")
	case "actor":
		refs = references(res, "participant.actor")
	case "medication":
		refs = references(res, "medicationReference")
	case "":
		if inc == "*" {
			refs = allReferences(res)
		}
	default:
		refs = references(res, param)
	}
	if target != "" {
		refs = slices.DeleteFunc(refs, func(r string) bool { return !strings.HasPrefix(r, target+"/") })
	}
	return slices.DeleteFunc(refs, func(r string) bool { return r == "" })
}

// allReferences returns every reference a value makes, at any depth.
func allReferences(v any) []string {
	var out []string
	switch t := v.(type) {
	case map[string]any:
		if ref, ok := t["reference"].(string); ok {
			out = append(out, ref)
		}
		for _, k := range slices.Sorted(maps.Keys(t)) {
			out = append(out, allReferences(t[k])...)
		}
	case []any:
		for _, x := range t {
			out = append(out, allReferences(x)...)
		}
	}
	return out
}

// references returns the references a resource makes, by path name.
func references(res resource, path string) []string {
	get := func(v any) string {
		if m, ok := v.(map[string]any); ok {
			s, _ := m["reference"].(string)
			return s
		}
		return ""
	}
	switch path {
	case "participant.actor":
		var out []string
		for _, p := range asList(res["participant"]) {
			if m, ok := p.(map[string]any); ok {
				out = append(out, get(m["actor"]))
			}
		}
		return out
	case "participant.individual":
		var out []string
		for _, p := range asList(res["participant"]) {
			if m, ok := p.(map[string]any); ok {
				out = append(out, get(m["individual"]))
			}
		}
		return out
	}
	var out []string
	for _, v := range asList(res[path]) {
		out = append(out, get(v))
	}
	return out
}

func asList(v any) []any {
	switch t := v.(type) {
	case nil:
		return nil
	case []any:
		return t
	}
	return []any{v}
}

// patientOf returns the references that place a resource with a patient.
func patientRefs(res resource) []string {
	out := append(references(res, "subject"), references(res, "patient")...)
	return append(out, references(res, "participant.actor")...)
}

// codes returns system|code and code for every coding of a concept field.
func codes(v any) []string {
	var out []string
	for _, c := range asList(v) {
		m, _ := c.(map[string]any)
		for _, cd := range asList(m["coding"]) {
			cm, _ := cd.(map[string]any)
			code, _ := cm["code"].(string)
			sys, _ := cm["system"].(string)
			out = append(out, code, sys+"|"+code)
		}
	}
	return out
}

func dateOf(res resource) string {
	for _, k := range []string{"effectiveDateTime", "date", "authoredOn", "recordedDate", "start", "birthDate"} {
		if s, ok := res[k].(string); ok {
			return s
		}
	}
	if p, ok := res["period"].(map[string]any); ok {
		s, _ := p["start"].(string)
		return s
	}
	return ""
}

// matchDate applies a FHIR date prefix (eq, ge, le, gt, lt) by string
// comparison of ISO dates, which is exact for the dates the sandbox holds.
func matchDate(have, want string) bool {
	if have == "" {
		return false
	}
	op := "eq"
	if len(want) > 2 && strings.Contains("eqgeltgtle", want[:2]) && want[0] >= 'a' {
		op, want = want[:2], want[2:]
	}
	have = have[:min(len(have), len(want))]
	switch op {
	case "ge":
		return have >= want
	case "le":
		return have <= want
	case "gt":
		return have > want
	case "lt":
		return have < want
	}
	return have == want
}

// searchParams are the parameters a search may have: filters (US Core's
// clinical-status, verification-status, class, intent, gender, birthdate,
// family, given, onset-date, authoredon, lifecycle-status, specialty, the
// address's city, state and postal code, and _lastUpdated among them,
// since apps send them), and those that shape
// the answer (_total and _pretty are taken and change nothing: every
// search counts its matches, and the JSON is compact).
var searchParams = map[string]bool{"_id": true, "patient": true, "subject": true, "category": true, "code": true, "status": true, "url": true, "type": true,
	"date": true, "encounter": true, "_count": true, "_offset": true, "_include": true, "_revinclude": true, "identifier": true, "name": true, "beneficiary": true,
	"_format": true, "_sort": true, "_summary": true, "_elements": true, "_total": true, "_pretty": true,
	"clinical-status": true, "verification-status": true, "intent": true, "class": true, "gender": true, "birthdate": true,
	"_lastUpdated": true, "family": true, "given": true, "onset-date": true, "authoredon": true, "lifecycle-status": true,
	"specialty": true, "address-city": true, "address-state": true, "address-postalcode": true, "_type": true}

// find returns the current resources of typ that match the search q, in
// the order they were stored (or latest first, with _sort=-date).
func (s *fhirServer) find(typ string, q url.Values) ([]resource, error) {
	match, err := matcher(q)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	hits := s.matching(typ, match)
	s.mu.RUnlock()
	if q.Get("_sort") == "-date" {
		sort.SliceStable(hits, func(i, j int) bool { return dateOf(hits[i]) > dateOf(hits[j]) })
	}
	return hits, nil
}

// paged cuts a list of total results as the query asks (_count, 50 unless
// given, at most 200; _offset) and returns the page's bounds and its links
// on at: self, and next (the query with the next _offset) when more follow.
// _count=0 asks for the total alone, as FHIR has it: no entry, no next.
func paged(q url.Values, total int, at string) (from, to int, links []any) {
	count, err := strconv.Atoi(q.Get("_count"))
	if count < 0 || count > 200 || err != nil {
		count = 50
	}
	offset, _ := strconv.Atoi(q.Get("_offset"))
	offset = max(offset, 0)
	from, to = min(offset, total), min(offset+count, total)
	if count == 0 {
		return from, from, []any{map[string]any{"relation": "self", "url": at + "?" + q.Encode()}}
	}
	self := maps.Clone(q)
	if self == nil {
		self = url.Values{}
	}
	links = []any{map[string]any{"relation": "self", "url": at + "?" + self.Encode()}}
	if offset+count < total {
		self.Set("_offset", strconv.Itoa(offset+count))
		self.Set("_count", strconv.Itoa(count))
		links = append(links, map[string]any{"relation": "next", "url": at + "?" + self.Encode()})
	}
	return from, to, links
}

// matching returns the current resources of typ that match, in the order
// they were stored (s.mu held).
func (s *fhirServer) matching(typ string, match func(resource) bool) []resource {
	var hits []resource
	for _, key := range s.order {
		if (typ == "" || strings.HasPrefix(key, typ+"/")) && match(s.current[key]) {
			hits = append(hits, s.current[key])
		}
	}
	return hits
}

// matcher returns what a resource must meet to match the search q: each
// parameter (ANDed; a comma ORs a parameter's values) of searchParams.
func matcher(q url.Values) (func(resource) bool, error) {
	for name := range q {
		base, mod, _ := strings.Cut(name, ":")
		if !searchParams[base] || mod != "" && !(base == "subject" && mod == "Patient") && !(base == "_include" && mod == "iterate") {
			return nil, errors.New("search parameter " + name + " is not supported by the sandbox")
		}
	}
	return func(res resource) bool {
		for name, vals := range q {
			base, _, _ := strings.Cut(name, ":")
			for _, v := range vals {
				alts := strings.Split(v, ",")
				ok := false
				for _, want := range alts {
					switch base {
					case "_id":
						ok = ok || res["id"] == want
					case "_type":
						ok = ok || res["resourceType"] == want
					case "patient", "subject", "beneficiary":
						ref := want
						if !strings.Contains(ref, "/") {
							ref = "Patient/" + ref
						}
						if i := strings.Index(ref, "/Patient/"); i >= 0 {
							ref = ref[i+1:]
						}
						ok = ok || slices.Contains(patientRefs(res), ref)
					case "encounter":
						ref := want
						if !strings.Contains(ref, "/") {
							ref = "Encounter/" + ref
						}
						ok = ok || slices.Contains(references(res, "encounter"), ref)
					case "category":
						ok = ok || slices.Contains(codes(res["category"]), want)
					case "code":
						ok = ok || slices.Contains(codes(res["code"]), want) || slices.Contains(codes(res["medicationCodeableConcept"]), want)
					case "status":
						ok = ok || res["status"] == want
					case "clinical-status":
						ok = ok || slices.Contains(codes(res["clinicalStatus"]), want)
					case "verification-status":
						ok = ok || slices.Contains(codes(res["verificationStatus"]), want)
					case "intent", "gender":
						ok = ok || res[base] == want
					case "class": // a Coding
						ok = ok || slices.Contains(codes(map[string]any{"coding": res["class"]}), want)
					case "birthdate":
						b, _ := res["birthDate"].(string)
						ok = ok || matchDate(b, want)
					case "_lastUpdated":
						m, _ := res["meta"].(map[string]any)
						at, _ := m["lastUpdated"].(string)
						ok = ok || matchDate(at, want)
					case "url":
						ok = ok || res["url"] == want
					case "type":
						ok = ok || slices.Contains(codes(res["type"]), want)
					case "date":
						ok = ok || matchDate(dateOf(res), want)
					case "identifier":
						for _, id := range asList(res["identifier"]) {
							m, _ := id.(map[string]any)
							ok = ok || m["value"] == want || fmt.Sprint(m["system"], "|", m["value"]) == want
						}
					case "name", "family", "given":
						ok = ok || strings.Contains(strings.ToLower(fmt.Sprint(res["name"])), strings.ToLower(want))
					case "onset-date", "authoredon":
						d, _ := res[map[string]string{"onset-date": "onsetDateTime", "authoredon": "authoredOn"}[base]].(string)
						ok = ok || matchDate(d, want)
					case "lifecycle-status":
						ok = ok || res["lifecycleStatus"] == want
					case "specialty":
						ok = ok || slices.Contains(codes(res["specialty"]), want)
					case "address-city", "address-state", "address-postalcode":
						for _, a := range asList(res["address"]) {
							m, _ := a.(map[string]any)
							ok = ok || strings.EqualFold(fmt.Sprint(m[map[string]string{"address-city": "city", "address-state": "state", "address-postalcode": "postalCode"}[base]]), want)
						}
					default: // _count, _offset, _include, _revinclude, _format, _sort, _summary, _elements, _total, _pretty are not filters
						ok = true
					}
				}
				if !ok {
					return false
				}
			}
		}
		return true
	}, nil
}

// everything answers Patient/{id}/$everything: the patient and every
// record that names it, in the order stored, of the types _type names (all
// when it names none), updated at or after _since if given; a patient it
// does not hold is 404. It takes _type, _since and _count (a page it does
// not cut: the sandbox's patients are small).
func (s *fhirServer) everything(w http.ResponseWriter, id string, q url.Values) {
	var types []string
	var since time.Time
	for name, vals := range q {
		switch {
		case name == "_type" && len(vals) == 1:
			types = strings.Split(vals[0], ",")
		case name == "_since" && len(vals) == 1:
			var err error
			if since, err = time.Parse(time.RFC3339Nano, vals[0]); err != nil {
				s.outcome(w, 400, "invalid", "_since must be an instant")
				return
			}
		case name == "_count":
		default:
			s.outcome(w, 400, "not-supported", "the sandbox's $everything does not take "+name)
			return
		}
	}
	s.mu.RLock()
	if _, ok := s.current["Patient/"+id]; !ok {
		s.mu.RUnlock()
		s.outcome(w, 404, "not-found", "no such Patient")
		return
	}
	var out []resource
	for _, key := range s.order {
		res, ok := s.current[key]
		typ, _, _ := strings.Cut(key, "/")
		if !ok || len(types) > 0 && !slices.Contains(types, typ) || !updatedSince(res, since) {
			continue
		}
		if key == "Patient/"+id || slices.Contains(patientRefs(res), "Patient/"+id) {
			out = append(out, res)
		}
	}
	s.mu.RUnlock()
	s.bundle(w, "searchset", out, nil)
}

// docref answers US Core's DocumentReference/$docref: the patient's
// documents, dated within start and end, of a type, as a searchset. The
// sandbox generates none on demand (on-demand and profile are accepted and
// change nothing).
func (s *fhirServer) docref(w http.ResponseWriter, q url.Values) {
	search := url.Values{}
	for name, vals := range q {
		switch name {
		case "patient", "type":
			search[name] = vals
		case "start":
			search.Add("date", "ge"+q.Get(name))
		case "end":
			search.Add("date", "le"+q.Get(name))
		case "on-demand", "profile", "_format":
		default:
			s.outcome(w, 400, "not-supported", "$docref takes patient, start, end, type, on-demand and profile, not "+name)
			return
		}
	}
	if search.Get("patient") == "" {
		s.outcome(w, 400, "required", "$docref needs a patient")
		return
	}
	hits, err := s.find("DocumentReference", search)
	if err != nil {
		s.outcome(w, 400, "not-supported", err.Error())
		return
	}
	self := map[string]any{"relation": "self", "url": s.base + "/DocumentReference/$docref?" + q.Encode()}
	s.bundleWith(w, hits, nil, len(hits), []any{self})
}

// lastn answers Observation/$lastn: of the observations the search q
// finds, the max (default 1) latest of each code, as a searchset.
func (s *fhirServer) lastn(w http.ResponseWriter, q url.Values) {
	max := 1
	if v := q.Get("max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.outcome(w, 400, "invalid", "max is a positive integer")
			return
		}
		max = n
	}
	q.Del("max")
	q.Set("_sort", "-date")
	hits, err := s.find("Observation", q)
	if err != nil {
		s.outcome(w, 400, "not-supported", err.Error())
		return
	}
	seen := map[string]int{}
	var latest []resource
	for _, res := range hits {
		key := strings.Join(codes(res["code"]), "|")
		if seen[key] < max {
			seen[key]++
			latest = append(latest, res)
		}
	}
	self := map[string]any{"relation": "self", "url": s.base + "/Observation/$lastn?" + q.Encode()}
	s.bundleWith(w, latest, nil, len(latest), []any{self})
}

func (s *fhirServer) search(w http.ResponseWriter, r *http.Request, typ string, q url.Values) {
	hits, err := s.find(typ, q)
	if err != nil {
		s.outcome(w, 400, "not-supported", err.Error())
		return
	}
	// (A search of the system, typ "", answers each record in the part
	// asked of its type.)
	partOf := func(t string) (parts, string) { return partsOf(cmp.Or(typ, t), q) }
	part, bad := partOf("Patient")
	for _, res := range hits {
		if bad == "" && typ == "" {
			_, bad = partOf(res["resourceType"].(string))
		}
	}
	if bad != "" {
		s.outcome(w, 400, "not-supported", bad)
		return
	}
	total := len(hits)
	if part.count {
		s.write(w, 200, resource{"resourceType": "Bundle", "type": "searchset", "total": total})
		return
	}
	at := s.base + "/" + typ
	if typ == "" {
		at = s.base
	}
	from, to, links := paged(q, total, at)
	page := hits[from:to]
	var included []resource
	onPage := map[string]bool{} // the page's records, by Type/id
	for _, res := range page {
		onPage[res["resourceType"].(string)+"/"+res["id"].(string)] = true
	}
	seen := maps.Clone(onPage) // each record once: the page's, and those included
	// What the matches refer to (_include, and _include:iterate); then, round
	// by round, what the records included refer to by _include:iterate, as
	// R4 has it, until a round brings nothing new (or after 4).
	brought, incs := page, append(slices.Clone(q["_include"]), q["_include:iterate"]...)
	for round := 0; len(brought) > 0 && len(incs) > 0 && round < 5; round++ {
		var next []resource
		for _, inc := range incs {
			for _, res := range brought {
				for _, ref := range includes(res, inc) {
					s.mu.RLock()
					if target, ok := s.current[ref]; ok && !seen[ref] {
						next = append(next, target)
						seen[ref] = true
					}
					s.mu.RUnlock()
				}
			}
		}
		included, brought, incs = append(included, next...), next, q["_include:iterate"]
	}
	for _, rev := range q["_revinclude"] {
		// The records of the type named whose parameter refers to one of
		// the page's (US Core's Provenance:target, the Provenances about
		// them; Observation:encounter, the readings of an encounter).
		src, _, _ := strings.Cut(rev, ":")
		if rev == "*" || src == "" || !strings.Contains(rev, ":") {
			s.outcome(w, 400, "not-supported", "the sandbox's _revinclude names a type and a parameter")
			return
		}
		s.mu.RLock()
		for _, key := range s.order {
			if !strings.HasPrefix(key, src+"/") || seen[key] {
				continue
			}
			if slices.ContainsFunc(includes(s.current[key], rev), func(ref string) bool { return onPage[ref] }) {
				included = append(included, s.current[key])
				seen[key] = true
			}
		}
		s.mu.RUnlock()
	}
	if part.elements != nil || part.data { // (after the includes, which follow the whole records)
		page = slices.Clone(page)
		for i, res := range page {
			p, _ := partOf(res["resourceType"].(string))
			page[i] = p.of(res)
		}
	}
	s.bundleWith(w, page, included, total, links)
}

func (s *fhirServer) entry(res resource, mode string) map[string]any {
	return map[string]any{"fullUrl": s.base + "/" + res["resourceType"].(string) + "/" + res["id"].(string),
		"resource": res, "search": map[string]any{"mode": mode}}
}

func (s *fhirServer) bundleWith(w http.ResponseWriter, page, included []resource, total int, links []any) {
	entries := make([]any, 0, len(page)+len(included))
	for _, res := range page {
		entries = append(entries, s.entry(res, "match"))
	}
	seen := map[string]bool{}
	for _, res := range included {
		key := res["resourceType"].(string) + "/" + res["id"].(string)
		if !seen[key] {
			seen[key] = true
			entries = append(entries, s.entry(res, "include"))
		}
	}
	s.write(w, 200, resource{"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries,
		"meta": map[string]any{"security": []any{coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST", "test health data")}}})
}

func (s *fhirServer) bundle(w http.ResponseWriter, typ string, list []resource, _ []any) {
	entries := make([]any, 0, len(list))
	for _, res := range list {
		entries = append(entries, map[string]any{"resource": res})
	}
	s.write(w, 200, resource{"resourceType": "Bundle", "type": typ, "total": len(list), "entry": entries})
}

// typeSearchParams are the search parameters the data server takes of
// each type it serves beside _id and _lastUpdated (name: FHIR type), as
// its CapabilityStatement lists them.
var typeSearchParams = map[string]map[string]string{
	"Patient": {"identifier": "token", "name": "string", "family": "string", "given": "string", "gender": "token", "birthdate": "date",
		"address-city": "string", "address-state": "string", "address-postalcode": "string"},
	"Practitioner": {"identifier": "token", "name": "string", "family": "string", "given": "string"},
	"Encounter":    {"patient": "reference", "subject": "reference", "date": "date", "status": "token", "class": "token", "type": "token"},
	"Observation": {"patient": "reference", "subject": "reference", "category": "token", "code": "token", "date": "date",
		"status": "token", "encounter": "reference"},
	"Condition": {"patient": "reference", "subject": "reference", "category": "token", "code": "token", "clinical-status": "token",
		"verification-status": "token", "onset-date": "date"},
	"MedicationRequest": {"patient": "reference", "subject": "reference", "status": "token", "intent": "token", "code": "token",
		"authoredon": "date"},
	"AllergyIntolerance": {"patient": "reference", "clinical-status": "token", "verification-status": "token", "code": "token"},
	"Appointment":        {"patient": "reference", "date": "date", "status": "token"},
	"DocumentReference": {"patient": "reference", "subject": "reference", "category": "token", "type": "token", "date": "date",
		"status": "token", "encounter": "reference"},
}

func (s *fhirServer) capabilities() resource {
	var types []any
	for _, t := range []string{"Patient", "Practitioner", "Encounter", "Observation", "Condition", "MedicationRequest", "AllergyIntolerance", "Appointment", "DocumentReference"} {
		params := []any{map[string]any{"name": "_id", "type": "token"}, map[string]any{"name": "_lastUpdated", "type": "date"}}
		for _, name := range slices.Sorted(maps.Keys(typeSearchParams[t])) {
			params = append(params, map[string]any{"name": name, "type": typeSearchParams[t][name]})
		}
		rt := map[string]any{"type": t, "interaction": []any{
			map[string]any{"code": "read"}, map[string]any{"code": "vread"}, map[string]any{"code": "search-type"},
			map[string]any{"code": "create"}, map[string]any{"code": "update"}, map[string]any{"code": "patch"},
			map[string]any{"code": "delete"}, map[string]any{"code": "history-instance"}, map[string]any{"code": "history-type"}},
			"versioning": "versioned-update", "updateCreate": true, "conditionalCreate": true, "conditionalUpdate": true,
			"conditionalRead": "full-support", "conditionalDelete": "single", "searchInclude": []any{"*"},
			"searchRevInclude": []any{"Provenance:target"}, "searchParam": params}
		if typeSearchParams[t]["patient"] != "" {
			rt["searchInclude"] = []any{"*", t + ":patient"}
		}
		switch t {
		case "Observation":
			rt["operation"] = []any{map[string]any{"name": "lastn", "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn"}}
		case "Patient":
			rt["operation"] = []any{map[string]any{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
				map[string]any{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}}
		case "DocumentReference":
			rt["operation"] = []any{map[string]any{"name": "docref", "definition": "http://hl7.org/fhir/us/core/OperationDefinition/docref"}}
		}
		types = append(types, rt)
	}
	op := func(name, def string) map[string]any {
		return map[string]any{"name": name, "definition": "http://hl7.org/fhir/OperationDefinition/" + def}
	}
	types = append(types,
		map[string]any{"type": "Provenance", "interaction": []any{map[string]any{"code": "read"}, map[string]any{"code": "vread"}}},
		map[string]any{"type": "ValueSet", "interaction": []any{map[string]any{"code": "read"}, map[string]any{"code": "search-type"}},
			"operation": []any{op("expand", "ValueSet-expand"), op("validate-code", "ValueSet-validate-code")}},
		map[string]any{"type": "CodeSystem", "interaction": []any{map[string]any{"code": "read"}, map[string]any{"code": "search-type"}},
			"operation": []any{op("lookup", "CodeSystem-lookup")}})
	return resource{"resourceType": "CapabilityStatement", "status": "active", "date": "2026-11-27", "kind": "instance",
		"fhirVersion": "4.0.1", "format": []any{"json"}, "patchFormat": []any{jsonPatchType}, "software": map[string]any{"name": "smartkit sandbox FHIR server"},
		"rest": []any{map[string]any{"mode": "server", "resource": types,
			"operation": []any{map[string]any{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}},
			"interaction": []any{map[string]any{"code": "transaction"}, map[string]any{"code": "batch"}, map[string]any{"code": "history-system"},
				map[string]any{"code": "search-system"}}}}}
}
