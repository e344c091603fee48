package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartkit/smartkit/internal/jsonpatch"
)

// A record's versions. The data server keeps every version of a record
// ("Type/id" → versions, oldest first; version n at n-1), as FHIR servers
// that support vread and history do. A delete adds a version too, nil: the
// record is then gone (a read is 410, a search finds nothing), its earlier
// versions are still read by vread, its history shows the deletion, and an
// update creates it again (201) as the version after. A PATCH takes a JSON
// Patch (RFC 6902), applied to the current version and written as the next
// one, checked as an update is.

// jsonPatchType is the media type of a JSON Patch.
const jsonPatchType = "application/json-patch+json"

// missing answers a read of a record the server does not have: 410 Gone
// when it was deleted, 404 when it never was.
func (s *fhirServer) missing(w http.ResponseWriter, key string) {
	s.mu.RLock()
	f := s.absent(key)
	s.mu.RUnlock()
	s.outcome(w, f.status, f.code, f.msg)
}

// absent is why the server has no record key (s.mu held): 410 when it
// was deleted, 404 when it never was.
func (s *fhirServer) absent(key string) *failure {
	if _, was := s.history[key]; was {
		return &failure{http.StatusGone, "deleted", key + " was deleted"}
	}
	return &failure{http.StatusNotFound, "not-found", "no such resource"}
}

// delete deletes a record (DELETE Type/id), version-aware with If-Match:
// 204 No Content, also when there is nothing to delete (FHIR's delete is
// idempotent). A record other records refer to is not deleted (409), as
// FHIR servers that keep referential integrity refuse it (HAPI's default):
// those go first.
func (s *fhirServer) delete(w http.ResponseWriter, r *http.Request, typ, id string) {
	key := typ + "/" + id
	s.mu.Lock()
	f := s.deletable(key, r.Header.Get("If-Match"), nil)
	if f == nil {
		s.erase(key)
	}
	s.mu.Unlock()
	if f != nil {
		s.outcome(w, f.status, f.code, f.msg)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deletable reports why key may not be deleted (s.mu held): If-Match
// naming another version, or a record that stays (one not in going, the
// records deleted with it) referring to it.
func (s *fhirServer) deletable(key, ifMatch string, going map[string]bool) *failure {
	if f := s.versionMatches(key, ifMatch); f != nil {
		return f
	}
	if _, ok := s.current[key]; !ok {
		return nil // nothing to delete
	}
	for _, other := range s.order {
		if other == key || going[other] {
			continue
		}
		if path := s.refersTo(s.current[other], key); path != "" {
			return &failure{http.StatusConflict, "conflict", key + " is referred to by " + other + " (" + path + "): that goes first"}
		}
	}
	return nil
}

// erase deletes key's record, if there is one, as its next version (s.mu
// held, deletable passed).
func (s *fhirServer) erase(key string) {
	if _, ok := s.current[key]; !ok {
		return
	}
	delete(s.current, key)
	s.history[key] = append(s.history[key], nil)
	s.changes = append(s.changes, change{key, len(s.history[key]), time.Now().UTC().Truncate(time.Second)})
	if i := slices.Index(s.order, key); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
}

// refersTo returns the path of an element of v that refers to key
// (Type/id: relative, absolute on the server's base, or to one of its
// versions), or "".
func (s *fhirServer) refersTo(v any, key string) string {
	switch t := v.(type) {
	case map[string]any:
		if ref, ok := t["reference"].(string); ok {
			ref = strings.TrimPrefix(ref, s.base+"/")
			if ref == key || strings.HasPrefix(ref, key+"/_history/") {
				return "reference"
			}
		}
		for name, x := range t {
			if path := s.refersTo(x, key); path != "" {
				return strings.TrimSuffix(name+"."+path, ".reference")
			}
		}
	case []any:
		for _, x := range t {
			if path := s.refersTo(x, key); path != "" {
				return path
			}
		}
	}
	return ""
}

// patch applies a JSON Patch to a record (PATCH Type/id), version-aware
// with If-Match: the record as patched is its next version, checked as an
// update (same type and id). A patch that cannot be applied (a failed
// test, a path to nothing) is 422 and changes nothing. A FHIRPath Patch
// (a Parameters resource) is not supported: 415.
func (s *fhirServer) patch(w http.ResponseWriter, r *http.Request, typ, id string) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != jsonPatchType {
		s.outcome(w, http.StatusUnsupportedMediaType, "not-supported", "the sandbox FHIR server takes a JSON Patch ("+jsonPatchType+")")
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	ops, perr := jsonpatch.Parse(b)
	if err != nil || perr != nil {
		s.outcome(w, http.StatusBadRequest, "invalid", "the body must be one JSON Patch")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, f := s.patched(typ, id, ops, r.Header.Get("If-Match"))
	if f != nil {
		s.outcome(w, f.status, f.code, f.msg)
		return
	}
	status, version := s.store(typ, id, res)
	s.written(w, r, status, typ, id, version, res)
}

// patched returns the record typ/id as ops leave its current version, or
// why it cannot be written (s.mu held).
func (s *fhirServer) patched(typ, id string, ops jsonpatch.Patch, ifMatch string) (resource, *failure) {
	key := typ + "/" + id
	cur, ok := s.current[key]
	if !ok {
		return nil, s.absent(key)
	}
	doc, _ := json.Marshal(cur)
	out, err := ops.Apply(doc)
	if err != nil {
		return nil, &failure{http.StatusUnprocessableEntity, "processing", "the patch cannot be applied: " + strings.TrimPrefix(err.Error(), "jsonpatch: ")}
	}
	var res resource
	if json.Unmarshal(out, &res) != nil || res == nil {
		return nil, &failure{http.StatusUnprocessableEntity, "processing", "the patch leaves no resource"}
	}
	if f := s.check(typ, id, true, res, ifMatch); f != nil {
		return nil, f
	}
	return res, nil
}

// entryPatch reads a batch or transaction entry's patch: a Binary whose
// data is a JSON Patch (FHIR R4's form for a JSON Patch in a Bundle).
func entryPatch(res resource) (jsonpatch.Patch, *failure) {
	bad := &failure{http.StatusBadRequest, "invalid", "a batched patch is a Binary holding a JSON Patch (" + jsonPatchType + ")"}
	data, _ := res["data"].(string)
	ct, _ := res["contentType"].(string)
	if mt, _, _ := mime.ParseMediaType(ct); res["resourceType"] != "Binary" || mt != jsonPatchType {
		return nil, bad
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, bad
	}
	ops, err := jsonpatch.Parse(b)
	if err != nil {
		return nil, bad
	}
	return ops, nil
}

// instanceHistory answers a record's history (GET Type/id/_history):
// every version, newest first, each with the request that wrote it (a
// create, an update, a deletion) and its response.
func (s *fhirServer) instanceHistory(w http.ResponseWriter, typ, id string) {
	key := typ + "/" + id
	s.mu.RLock()
	versions := slices.Clone(s.history[key])
	s.mu.RUnlock()
	if len(versions) == 0 {
		s.outcome(w, http.StatusNotFound, "not-found", "no such resource")
		return
	}
	entries := make([]any, 0, len(versions))
	for v := len(versions); v >= 1; v-- {
		entries = append(entries, s.versionEntry(key, versions, v))
	}
	s.write(w, http.StatusOK, resource{"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries})
}

// versionEntry is a history entry: version v (1-based) of the record key,
// of its versions, with the request that wrote it and its response.
func (s *fhirServer) versionEntry(key string, versions []resource, v int) map[string]any {
	typ, _, _ := strings.Cut(key, "/")
	res, etag := versions[v-1], `W/"`+strconv.Itoa(v)+`"`
	e := map[string]any{"fullUrl": s.base + "/" + key}
	switch {
	case res == nil:
		e["request"] = map[string]any{"method": http.MethodDelete, "url": key}
		e["response"] = map[string]any{"status": "204 No Content", "etag": etag}
	case v == 1: // created (an update creating a record at an id the client chose is shown as a create too)
		e["resource"] = res
		e["request"] = map[string]any{"method": http.MethodPost, "url": typ}
		e["response"] = map[string]any{"status": "201 Created", "etag": etag}
	case versions[v-2] == nil: // created again, by an update
		e["resource"] = res
		e["request"] = map[string]any{"method": http.MethodPut, "url": key}
		e["response"] = map[string]any{"status": "201 Created", "etag": etag}
	default:
		e["resource"] = res
		e["request"] = map[string]any{"method": http.MethodPut, "url": key}
		e["response"] = map[string]any{"status": "200 OK", "etag": etag}
	}
	return e
}

// change is one version written: of which record, which version, when.
type change struct {
	key     string
	version int
	at      time.Time
}

// changesOf answers the history of a type (GET Type/_history), or of every
// type (typ "", GET _history): every version written, newest first, each
// entry as in a record's history, a deletion included, paged as searches
// are (_count, at most 200, and _offset in the next link). _since keeps
// what was written at or after an instant; any other parameter is 400.
func (s *fhirServer) changesOf(w http.ResponseWriter, typ string, q url.Values) {
	var since time.Time
	for name, vals := range q {
		var err error
		switch {
		case name == "_since" && len(vals) == 1:
			since, err = time.Parse(time.RFC3339Nano, vals[0])
		case name == "_count" || name == "_offset":
		default:
			err = errors.New("history takes _since, _count and _offset")
		}
		if err != nil {
			s.outcome(w, http.StatusBadRequest, "invalid", "the sandbox's "+err.Error())
			return
		}
	}
	s.mu.RLock()
	var hits []change
	for i := len(s.changes) - 1; i >= 0; i-- {
		c := s.changes[i]
		if (typ == "" || strings.HasPrefix(c.key, typ+"/")) && !c.at.Before(since) {
			hits = append(hits, c)
		}
	}
	at := s.base + "/_history"
	if typ != "" {
		at = s.base + "/" + typ + "/_history"
	}
	total := len(hits)
	from, to, links := paged(q, total, at)
	entries := make([]any, 0, to-from)
	for _, c := range hits[from:to] {
		entries = append(entries, s.versionEntry(c.key, s.history[c.key], c.version))
	}
	s.mu.RUnlock()
	s.write(w, http.StatusOK, resource{"resourceType": "Bundle", "type": "history", "total": total, "link": links, "entry": entries})
}
