package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonpatch"
)

// bundleEntry is what the sandbox server reads of a batch or transaction
// entry.
type bundleEntry struct {
	FullURL  string   `json:"fullUrl"`
	Resource resource `json:"resource"`
	Request  struct {
		Method      string `json:"method"`
		URL         string `json:"url"`
		IfMatch     string `json:"ifMatch"`
		IfNoneExist string `json:"ifNoneExist"`
	} `json:"request"`
}

// transaction runs a batch or transaction Bundle POSTed to the base: its
// creates, updates and patches (a Binary holding a JSON Patch), deletes
// (each version-aware with request.ifMatch), reads, and searches of a type
// or of a patient's compartment (each answered with its searchset Bundle
// as the entry's resource). A transaction is all or nothing: every write
// is checked before any is made, it may act on a record once, and a
// reference to a create or update entry's fullUrl becomes the record that
// entry writes. A batch's entries each stand alone. Deletes are made
// first, then the other writes, then reads, as FHIR orders a transaction.
func (s *fhirServer) transaction(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	var bundle struct {
		ResourceType string        `json:"resourceType"`
		Type         string        `json:"type"`
		Entry        []bundleEntry `json:"entry"`
	}
	if err != nil || json.Unmarshal(b, &bundle) != nil || bundle.ResourceType != "Bundle" || bundle.Type != "batch" && bundle.Type != "transaction" {
		s.outcome(w, 400, "invalid", "POST to the base takes a batch or transaction Bundle")
		return
	}
	tx := bundle.Type == "transaction"
	s.mu.Lock()
	type plan struct {
		typ, id       string
		write, update bool
		search        bool   // a search of typ, with query
		compartment   string // the patient whose compartment the search is of
		query         string
		del           bool            // a delete (write too)
		noop          bool            // a conditional delete that found nothing (del too)
		patch         jsonpatch.Patch // a patch's (update too), applied to the current version
		fail          *failure
	}
	plans := make([]plan, len(bundle.Entry))
	names := map[string]string{} // a write entry's fullUrl → the Type/id it writes
	for i, e := range bundle.Entry {
		path, query, _ := strings.Cut(e.Request.URL, "?")
		segs := strings.Split(path, "/")
		p := &plans[i]
		// A conditional write is the plain one of the record its criteria
		// find (conditional.go); a conditional create that finds one is
		// answered with it, as a read.
		method := e.Request.Method
		switch {
		case query != "" && len(segs) == 1 && segs[0] != "" && (method == http.MethodPut || method == http.MethodPatch || method == http.MethodDelete):
			found, f := s.resolve(segs[0], query)
			switch {
			case f != nil:
				p.fail = f
			case found != nil:
				segs, query = []string{segs[0], found["id"].(string)}, ""
			case method == http.MethodDelete:
				p.typ, p.write, p.del, p.noop = segs[0], true, true, true
			case method == http.MethodPatch:
				p.fail = &failure{http.StatusNotFound, "not-found", "the criteria match no " + segs[0]}
			default: // an update creating: at the body's id, if free, else a new one
				id, _ := e.Resource["id"].(string)
				if _, taken := s.history[segs[0]+"/"+id]; id == "" || taken {
					id = s.newID(segs[0])
				}
				if e.Resource != nil {
					e.Resource["id"] = id
				}
				segs, query = []string{segs[0], id}, ""
			}
			if p.fail != nil || p.noop {
				continue
			}
		case method == http.MethodPost && e.Request.IfNoneExist != "" && len(segs) == 1 && query == "":
			found, f := s.resolve(segs[0], e.Request.IfNoneExist)
			switch {
			case f != nil:
				p.fail = f
				continue
			case found != nil:
				p.typ, p.id = segs[0], found["id"].(string)
				if e.FullURL != "" {
					names[e.FullURL] = p.typ + "/" + p.id
				}
				continue
			}
		}
		switch {
		case e.Request.Method == http.MethodGet && len(segs) == 1 && segs[0] != "":
			p.typ, p.search, p.query = segs[0], true, query
		case e.Request.Method == http.MethodGet && compartment(segs):
			p.typ, p.search, p.query, p.compartment = segs[2], true, query, segs[1] // a patient's compartment
		case e.Request.Method == http.MethodGet && len(segs) == 2 && query != "":
			p.typ, p.id, p.query = segs[0], segs[1], query // a read in part (_elements, _summary), as on its own
		case query != "" || segs[0] == "":
			p.fail = &failure{400, "not-supported", "the sandbox FHIR server takes reads and writes by id, and searches of a type or a patient's compartment, in a Bundle"}
		case e.Request.Method == http.MethodPost && len(segs) == 1:
			p.typ, p.id, p.write = segs[0], s.newID(segs[0]), true
		case e.Request.Method == http.MethodPut && len(segs) == 2:
			p.typ, p.id, p.write, p.update = segs[0], segs[1], true, true
		case e.Request.Method == http.MethodPatch && len(segs) == 2:
			p.typ, p.id, p.write, p.update = segs[0], segs[1], true, true
			p.patch, p.fail = entryPatch(e.Resource)
		case e.Request.Method == http.MethodDelete && len(segs) == 2:
			p.typ, p.id, p.write, p.del = segs[0], segs[1], true, true
		case e.Request.Method == http.MethodGet && len(segs) == 2:
			p.typ, p.id = segs[0], segs[1]
		default:
			p.fail = &failure{405, "not-supported", "the sandbox FHIR server takes creates, updates, patches, deletes, reads and searches in a Bundle"}
		}
		if p.write && !p.del && p.patch == nil && e.FullURL != "" {
			names[e.FullURL] = p.typ + "/" + p.id
		}
	}
	going, acted := map[string]bool{}, map[string]bool{} // records a transaction deletes; acts on
	for i, p := range plans {
		key := p.typ + "/" + p.id
		switch {
		case !p.write || p.fail != nil || p.noop:
		case tx && acted[key]:
			plans[i].fail = &failure{400, "invalid", key + " is acted on twice: a transaction may act on a record once"}
		case p.del:
			going[key] = true
		}
		acted[key] = acted[key] || p.write && (p.update || p.del) // a create's id is new
	}
	for i, e := range bundle.Entry {
		p := &plans[i]
		switch {
		case !p.write || p.fail != nil || p.noop:
			continue
		case p.del && tx:
			p.fail = s.deletable(p.typ+"/"+p.id, e.Request.IfMatch, going)
			continue
		case p.del: // checked as it is made (below): a batch's entries each stand alone
			continue
		case p.patch != nil:
			bundle.Entry[i].Resource, p.fail = s.patched(p.typ, p.id, p.patch, e.Request.IfMatch)
			continue
		}
		if tx {
			resolve(e.Resource, names)
		}
		if e.Resource == nil {
			p.fail = &failure{400, "invalid", "a write entry needs its resource"}
		} else {
			p.fail = s.check(p.typ, p.id, p.update, e.Resource, e.Request.IfMatch)
		}
	}
	if tx { // what the transaction writes may not refer to what it deletes
		for i, p := range plans {
			for gone := range going {
				if path := s.refersTo(bundle.Entry[i].Resource, gone); p.fail == nil && p.write && !p.del && path != "" {
					plans[i].fail = &failure{409, "conflict", gone + " is deleted by the transaction and referred to by what it writes (" + path + ")"}
				}
			}
		}
	}
	if tx {
		for i, p := range plans {
			if p.fail != nil {
				s.mu.Unlock()
				s.outcome(w, p.fail.status, p.fail.code, "entry "+strconv.Itoa(i)+": "+p.fail.msg)
				return
			}
		}
	}
	out := make([]any, len(plans))
	for pass := range 3 { // deletes, the other writes, reads
		for i, p := range plans {
			if p.del && !tx && p.fail == nil && !p.noop && pass == 0 {
				p.fail = s.deletable(p.typ+"/"+p.id, bundle.Entry[i].Request.IfMatch, nil)
			}
			switch {
			case p.del != (pass == 0), p.write != (pass < 2), p.search: // (searches are run last, below)
			case p.fail != nil:
				out[i] = map[string]any{"response": map[string]any{"status": strconv.Itoa(p.fail.status) + " " + http.StatusText(p.fail.status),
					"outcome": resource{"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "error", "code": p.fail.code, "diagnostics": p.fail.msg}}}}}
			case p.del:
				if !p.noop {
					s.erase(p.typ + "/" + p.id)
				}
				out[i] = map[string]any{"response": map[string]any{"status": "204 No Content"}}
			case p.write:
				status, version := s.store(p.typ, p.id, bundle.Entry[i].Resource)
				out[i] = map[string]any{"response": map[string]any{"status": strconv.Itoa(status) + " " + http.StatusText(status),
					"location": p.typ + "/" + p.id + "/_history/" + strconv.Itoa(version), "etag": `W/"` + strconv.Itoa(version) + `"`}}
			default:
				if res, ok := s.current[p.typ+"/"+p.id]; ok {
					if p.query != "" {
						out[i] = batchReadPart(res, p.query)
						continue
					}
					out[i] = map[string]any{"resource": res, "response": map[string]any{"status": "200 OK"}}
				} else {
					out[i] = map[string]any{"response": map[string]any{"status": "404 Not Found"}}
				}
			}
		}
	}
	s.mu.Unlock()
	for i, p := range plans {
		if !p.search {
			continue
		}
		// Answered as on its own (find takes the lock itself).
		q, err := url.ParseQuery(p.query)
		rec := &answer{header: http.Header{}, code: http.StatusOK}
		if err != nil {
			s.outcome(rec, 400, "invalid", "the entry's query is not understood")
		} else {
			if p.compartment != "" {
				q = inCompartment(q, p.compartment)
			}
			s.search(rec, r, p.typ, q)
		}
		var got resource
		_ = json.Unmarshal(rec.body.Bytes(), &got)
		status := strconv.Itoa(rec.code) + " " + http.StatusText(rec.code)
		if rec.code == http.StatusOK {
			out[i] = map[string]any{"resource": got, "response": map[string]any{"status": status}}
		} else {
			out[i] = map[string]any{"response": map[string]any{"status": status, "outcome": got}}
		}
	}
	s.write(w, 200, resource{"resourceType": "Bundle", "type": bundle.Type + "-response", "entry": out})
}

// answer is an http.ResponseWriter that keeps what is written: a
// search's answer, which goes in a batch entry.
type answer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (a *answer) Header() http.Header         { return a.header }
func (a *answer) Write(b []byte) (int, error) { return a.body.Write(b) }
func (a *answer) WriteHeader(code int)        { a.code = code }

// resolve replaces, at any depth of v, each reference to one of names'
// fullUrls with the record that entry writes.
func resolve(v any, names map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if ref, ok := x.(string); ok && k == "reference" && names[ref] != "" {
				t[k] = names[ref]
			} else {
				resolve(x, names)
			}
		}
	case []any:
		for _, x := range t {
			resolve(x, names)
		}
	}
}

// batchReadPart is a batch's read in part (its query: _elements or
// _summary), as a read of its own answers it (readPart), or the entry's
// refusal.
func batchReadPart(res resource, query string) map[string]any {
	q, err := url.ParseQuery(query)
	var part resource
	bad := "the entry's query is not understood"
	if err == nil {
		part, bad = readPart(res, q)
	}
	for k := range q {
		if k != "_elements" && k != "_summary" && bad == "" {
			bad = "a read takes _elements or _summary; " + k + " is for searches"
		}
	}
	if bad != "" {
		return map[string]any{"response": map[string]any{"status": "400 Bad Request",
			"outcome": resource{"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "error", "code": "not-supported", "diagnostics": bad}}}}}
	}
	return map[string]any{"resource": part, "response": map[string]any{"status": "200 OK"}}
}
