package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bulk export (FHIR Bulk Data Access), so backend services can try an
// export through fhirproxy before production: GET [base]/$export,
// [base]/Patient/$export and [base]/Group/{id}/$export with Prefer:
// respond-async, each taking _type, _since, _outputFormat, _typeFilter
// (repeated for several queries; a type's queries are ORed, and each is a
// search of the sandbox's parameters), _elements (subsetted as Bulk Data
// has it: see subset) and includeAssociatedData (the Provenances of what
// is exported: see provenances); anything else is 400, as everywhere on this strict
// server. A job is written at
// once, a snapshot of the data as it is at the kick-off, and kept in memory
// until cancelled (DELETE on its status URL); its manifest lists one NDJSON
// file a type, with its count. Like the rest of the server it writes its
// addresses on the public FHIR base (the proxy's), which is where a server
// behind a gateway is told it lives.

// exportJob is one export: its manifest's facts, and its files.
type exportJob struct {
	request string            // the kick-off's URL, on the public base
	time    string            // transactionTime
	types   []string          // the files' types, in the order written
	files   map[string][]byte // type → NDJSON; deletedFile → the deletions'
	counts  map[string]int
	deleted int // deletions listed (with _since)
}

// deletedFile is the name of a job's file of deleted resources.
const deletedFile = "deleted"

// ndjsonFormats are the _outputFormat values the Bulk Data IG names for NDJSON.
var ndjsonFormats = []string{"application/fhir+ndjson", "application/ndjson", "ndjson"}

// kickOffBody reads a POSTed kick-off's Parameters body into the
// parameters a GET's query would carry, and the patients it names (each a
// valueReference; Bulk Data takes them only so).
func kickOffBody(w http.ResponseWriter, r *http.Request) (url.Values, []string, error) {
	var body struct {
		ResourceType string
		Parameter    []struct {
			Name                      string
			ValueString, ValueInstant *string
			ValueReference            *struct{ Reference string }
		}
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || body.ResourceType != "Parameters" {
		return nil, nil, errors.New("a POSTed kick-off's body is a Parameters resource")
	}
	q, patients := url.Values{}, []string{}
	for _, p := range body.Parameter {
		switch {
		case p.Name == "patient" && p.ValueReference != nil:
			patients = append(patients, p.ValueReference.Reference)
		case p.ValueString != nil:
			q.Add(p.Name, *p.ValueString)
		case p.ValueInstant != nil:
			q.Add(p.Name, *p.ValueInstant)
		default:
			return nil, nil, errors.New("parameter " + p.Name + " has no value the sandbox takes")
		}
	}
	return q, patients, nil
}

// export starts a job: at system level (level ""), for every patient
// ("Patient") or for the members of Group id; a POSTed kick-off
// (kickOffBody) may name patients, whose records alone are exported, each
// of whom must be held (and in the Group).
func (s *fhirServer) export(w http.ResponseWriter, r *http.Request, level, id string) {
	if !slices.ContainsFunc(strings.Split(r.Header.Get("Prefer"), ","), func(p string) bool { return strings.TrimSpace(p) == "respond-async" }) {
		s.outcome(w, 400, "invalid", "$export needs Prefer: respond-async")
		return
	}
	q := r.URL.Query()
	var named []string // "Patient/id"
	if r.Method == http.MethodPost {
		var err error
		if len(q) > 0 {
			err = errors.New("a POSTed kick-off's parameters are in its body")
		} else {
			q, named, err = kickOffBody(w, r)
		}
		if err == nil && len(named) > 0 && level == "" {
			err = errors.New("patient is not taken at system level")
		}
		if err != nil {
			s.outcome(w, 400, "invalid", err.Error())
			return
		}
	}
	var types []string
	var since time.Time
	filters := map[string][]func(resource) bool{} // a type's _typeFilter queries
	var elements []string
	provenances := false // includeAssociatedData
	for name, vals := range q {
		switch {
		case name == "_typeFilter":
			for _, v := range vals {
				typ, query, _ := strings.Cut(v, "?")
				crit, err := url.ParseQuery(query)
				var match func(resource) bool
				if err == nil {
					match, err = matcher(crit)
				}
				for c := range crit {
					if strings.HasPrefix(c, "_") && c != "_id" {
						err = errors.New(c + " is not a search criterion")
					}
				}
				if err != nil || typ == "" || len(crit) == 0 {
					s.outcome(w, 400, "invalid", "_typeFilter "+strconv.Quote(v)+" is not a search the sandbox runs")
					return
				}
				filters[typ] = append(filters[typ], match)
			}
		case len(vals) != 1:
			s.outcome(w, 400, "invalid", name+" is given more than once")
			return
		case name == "_type":
			types = strings.Split(vals[0], ",")
		case name == "_since":
			var err error
			if since, err = time.Parse(time.RFC3339Nano, vals[0]); err != nil {
				s.outcome(w, 400, "invalid", "_since must be an instant")
				return
			}
		case name == "_outputFormat" && slices.Contains(ndjsonFormats, vals[0]):
		case name == "_elements":
			elements = strings.Split(vals[0], ",")
		case name == "includeAssociatedData":
			for v := range strings.SplitSeq(vals[0], ",") {
				if v != "LatestProvenanceResources" && v != "RelevantProvenanceResources" {
					s.outcome(w, 400, "not-supported", "includeAssociatedData takes LatestProvenanceResources and RelevantProvenanceResources, not "+v)
					return
				}
			}
			provenances = true
		default:
			s.outcome(w, 400, "not-supported", "the sandbox FHIR server does not support $export's "+name+"="+vals[0])
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var members map[string]bool // a Group's: "Patient/id"
	if level == "Group" {
		g, ok := s.current["Group/"+id]
		if !ok {
			s.outcome(w, 404, "not-found", "no such Group")
			return
		}
		members = map[string]bool{}
		for _, m := range asList(g["member"]) {
			if e, ok := m.(map[string]any)["entity"].(map[string]any); ok {
				ref, _ := e["reference"].(string)
				members[ref] = true
			}
		}
	}
	if len(named) > 0 {
		for _, ref := range named {
			if _, ok := s.current[ref]; !ok || !strings.HasPrefix(ref, "Patient/") || members != nil && !members[ref] {
				s.outcome(w, 400, "invalid", "patient "+ref+" is not held here"+map[bool]string{true: ", or not in the Group"}[members != nil])
				return
			}
		}
		members = map[string]bool{}
		for _, ref := range named {
			members[ref] = true
		}
	}
	job := &exportJob{request: s.base + r.URL.RequestURI(), time: time.Now().UTC().Format(time.RFC3339),
		files: map[string][]byte{}, counts: map[string]int{}}
	exported := map[string]bool{} // "Type/id" of what the job writes
	for _, key := range s.order {
		res, ok := s.current[key]
		typ, _, _ := strings.Cut(key, "/")
		if !ok || len(types) > 0 && !slices.Contains(types, typ) || !updatedSince(res, since) ||
			filters[typ] != nil && !slices.ContainsFunc(filters[typ], func(match func(resource) bool) bool { return match(res) }) {
			continue
		}
		if level != "" { // a patient's records: the patient, and what names one
			patients := patientRefs(res)
			if typ == "Patient" {
				patients = append(patients, key)
			}
			if len(patients) == 0 || members != nil && !slices.ContainsFunc(patients, func(p string) bool { return members[p] }) {
				continue
			}
		}
		if job.files[typ] == nil {
			job.types = append(job.types, typ)
		}
		job.files[typ] = append(job.files[typ], fhirJSON(subset(res, typ, elements))...)
		job.counts[typ]++
		exported[key] = true
	}
	if provenances {
		job.provenances(s, elements, exported)
	}
	if !since.IsZero() {
		job.deletions(s, since, types, members, level != "")
	}
	jobID := rand.Text()
	if s.jobs == nil {
		s.jobs = map[string]*exportJob{}
	}
	s.jobs[jobID] = job
	w.Header().Set("Content-Location", s.base+"/$export-poll-status?_jobId="+jobID)
	w.WriteHeader(http.StatusAccepted)
}

// subset keeps, of a resource of type typ, what the _elements list keeps
// of it (elementsFor: the root elements it names for the type, with
// resourceType, id and the type's mandatory ones), marked SUBSETTED, as
// Bulk Data and FHIR search have it; the whole resource when the list
// names none for the type. Nothing else is kept: not meta's labels, unless
// meta is listed (which the proxy sees to).
func subset(res resource, typ string, elements []string) resource {
	if keep, ok := elementsFor(typ, elements); ok && keep != nil {
		return parts{elements: keep}.of(res)
	}
	return res
}

// provenances adds to the job, for includeAssociatedData, the Provenances
// about the records it exports (exported, by Type/id: a target of each
// among them), in a Provenance file of their own, after any the job
// exports as a type. The sandbox holds at most one a record, so the latest
// (Latest) and the relevant (Relevant) ones are the same. (s.mu held.)
func (j *exportJob) provenances(s *fhirServer, elements []string, exported map[string]bool) {
	for _, key := range s.order {
		res := s.current[key]
		if !strings.HasPrefix(key, "Provenance/") || exported[key] ||
			!slices.ContainsFunc(references(res, "target"), func(t string) bool { return exported[t] }) {
			continue
		}
		if j.files["Provenance"] == nil {
			j.types = append(j.types, "Provenance")
		}
		j.files["Provenance"] = append(j.files["Provenance"], fhirJSON(subset(res, "Provenance", elements))...)
		j.counts["Provenance"]++
		exported[key] = true
	}
}

// deletions writes the job's file of deleted resources (s.mu held): the
// records of the types exported (all, when types is empty) deleted at or
// after since and not created again, each a line of its own, a transaction
// Bundle of one DELETE, as the Bulk Data IG has it. At patient and Group
// level, those whose last version named one of the patients exported (any
// patient, at patient level without members).
func (j *exportJob) deletions(s *fhirServer, since time.Time, types []string, members map[string]bool, patients bool) {
	listed := map[string]bool{}
	for _, c := range s.changes {
		typ, _, _ := strings.Cut(c.key, "/")
		versions := s.history[c.key]
		if c.at.Before(since) || versions[c.version-1] != nil || c.version < 2 || s.current[c.key] != nil || listed[c.key] ||
			len(types) > 0 && !slices.Contains(types, typ) {
			continue
		}
		listed[c.key] = true
		if patients {
			named := patientRefs(versions[c.version-2])
			if typ == "Patient" {
				named = append(named, c.key)
			}
			if len(named) == 0 || members != nil && !slices.ContainsFunc(named, func(p string) bool { return members[p] }) {
				continue
			}
		}
		line, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction",
			"entry": []any{map[string]any{"request": map[string]any{"method": "DELETE", "url": c.key}}}})
		j.files[deletedFile] = append(append(j.files[deletedFile], line...), '\n')
		j.deleted++
	}
}

// updatedSince reports whether a resource was last updated at or after
// since (always, for the zero time).
func updatedSince(res resource, since time.Time) bool {
	if since.IsZero() {
		return true
	}
	m, _ := res["meta"].(map[string]any)
	v, _ := m["lastUpdated"].(string)
	t, err := time.Parse(time.RFC3339Nano, v)
	return err == nil && !t.Before(since)
}

// exportStatus answers a job's status (its manifest: the job is done at
// once), or cancels it.
func (s *fhirServer) exportStatus(w http.ResponseWriter, r *http.Request, q url.Values) {
	jobID := q.Get("_jobId")
	s.mu.Lock()
	defer s.mu.Unlock()
	job, ok := s.jobs[jobID]
	switch {
	case !ok || len(q) != 1:
		s.outcome(w, 404, "not-found", "no such export")
	case r.Method == http.MethodDelete:
		delete(s.jobs, jobID)
		w.WriteHeader(http.StatusAccepted)
	default:
		output := []any{}
		for _, typ := range job.types {
			file := s.base + "/$export-file/" + jobID + "/" + typ + ".ndjson"
			if s.objects != nil { // in the object store, by a pre-signed URL
				file = s.objects.fileURL(jobID, typ)
			}
			output = append(output, map[string]any{"type": typ, "count": job.counts[typ], "url": file})
		}
		deleted := []any{}
		if job.deleted > 0 {
			file := s.base + "/$export-file/" + jobID + "/" + deletedFile + ".ndjson"
			if s.objects != nil {
				file = s.objects.fileURL(jobID, deletedFile)
			}
			deleted = append(deleted, map[string]any{"type": "Bundle", "count": job.deleted, "url": file})
		}
		b, _ := json.Marshal(map[string]any{"transactionTime": job.time, "request": job.request, "requiresAccessToken": s.objects == nil,
			"output": output, "error": []any{}, "deleted": deleted})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Expires", time.Now().Add(24*time.Hour).UTC().Format(http.TimeFormat))
		_, _ = w.Write(b)
	}
}

// exportFile answers one of a job's files.
func (s *fhirServer) exportFile(w http.ResponseWriter, jobID, name string) {
	typ, ok := strings.CutSuffix(name, ".ndjson")
	s.mu.RLock()
	job := s.jobs[jobID]
	var body []byte
	if job != nil {
		body = job.files[typ]
	}
	s.mu.RUnlock()
	if !ok || body == nil {
		s.outcome(w, 404, "not-found", "no such export file")
		return
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}
