package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
)

// Conditional writes, as FHIR R4 defines them: a create with If-None-Exist
// (none found: created; one: answered with it, 200, nothing created), and
// an update, patch or delete of the record a search finds (PUT, PATCH or
// DELETE Type?criteria): none found, an update creates, a patch is 404 and
// a delete does nothing; one, it is the record written; more than one is
// 412 (the sandbox deletes one record at a time). The criteria are a
// search of the type, with the sandbox's search parameters (others 400).

// resolve finds the record criteria (a query) match, if one does, or
// says why it cannot be resolved (s.mu held).
func (s *fhirServer) resolve(typ, criteria string) (resource, *failure) {
	q, err := url.ParseQuery(criteria)
	if err != nil || len(q) == 0 {
		return nil, &failure{http.StatusBadRequest, "invalid", "the criteria are not a search"}
	}
	match, err := matcher(q)
	if err != nil {
		return nil, &failure{http.StatusBadRequest, "not-supported", err.Error()}
	}
	switch hits := s.matching(typ, match); len(hits) {
	case 0:
		return nil, nil
	case 1:
		return hits[0], nil
	}
	return nil, &failure{http.StatusPreconditionFailed, "multiple-matches", "the criteria match more than one " + typ}
}

// conditional runs a conditional update, patch or delete of typ: as the
// plain one, of the record the query finds.
func (s *fhirServer) conditional(w http.ResponseWriter, r *http.Request, typ string) {
	s.mu.Lock()
	found, f := s.resolve(typ, r.URL.RawQuery)
	s.mu.Unlock()
	// (Resolved, then written under the lock again: another write in
	// between is answered by If-Match, which the proxy sends pinned.)
	var id string
	switch {
	case f != nil:
		s.outcome(w, f.status, f.code, f.msg)
		return
	case found != nil:
		id = found["id"].(string)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent) // nothing to delete
		return
	case r.Method == http.MethodPatch:
		s.outcome(w, http.StatusNotFound, "not-found", "the criteria match no "+typ)
		return
	}
	switch r.Method {
	case http.MethodDelete:
		s.delete(w, r, typ, id)
	case http.MethodPatch:
		s.patch(w, r, typ, id)
	default:
		// An update: of the record found, whose id the body may carry
		// (another is 400); none found, created at the body's id, if it
		// has one and it is free, else at a new one.
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var res resource
		if err != nil || json.Unmarshal(b, &res) != nil || res == nil {
			s.outcome(w, http.StatusBadRequest, "invalid", "the body must be a "+typ)
			return
		}
		bodyID, hasID := res["id"].(string)
		switch {
		case found != nil && hasID && bodyID != id:
			s.outcome(w, http.StatusBadRequest, "invalid", "the body's id is not the record's the criteria match")
			return
		case found == nil && hasID:
			s.mu.RLock()
			_, taken := s.history[typ+"/"+bodyID]
			s.mu.RUnlock()
			if taken {
				s.outcome(w, http.StatusConflict, "conflict", "the criteria match no "+typ+", and "+typ+"/"+bodyID+" is taken")
				return
			}
			id = bodyID
		case found == nil:
			s.mu.Lock()
			id = s.newID(typ)
			s.mu.Unlock()
		}
		res["id"] = id
		r.Body = io.NopCloser(bytes.NewReader(fhirJSON(res)))
		s.put(w, r, typ, id)
	}
}
