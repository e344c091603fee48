package smarttest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Bulk export (FHIR Bulk Data Access), so a backend service can test its
// export against the fake EHR: GET [base]/$export or [base]/Patient/$export
// with Prefer: respond-async and, if it likes, _type (Patient,
// Observation), _since and _typeFilter (taken and ignored, as a server may:
// the proxy still holds each line of a type exported under a
// query-constrained scope to the constraint). A kick-off on Patient may be
// POSTed with its parameters in a Parameters body, naming patients
// (valueReference Patient/id), whose records alone are exported; one the
// server does not hold is 400. The export is done at once: its status answers the
// manifest, one NDJSON file a type, through the proxy (which withholds
// smart-1's sensitive record from a clearance that does not release it).
// The data server keeps no jobs: the status URL carries the types.

// postedKickOff reads a POSTed kick-off's Parameters body: the parameters
// a GET's query would carry, and the ids of the patients it names, each of
// whom the server must hold.
func postedKickOff(r *http.Request) (url.Values, []string, error) {
	var body struct {
		ResourceType string
		Parameter    []struct {
			Name                      string
			ValueString, ValueInstant *string
			ValueReference            *struct{ Reference string }
		}
	}
	if json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body) != nil || body.ResourceType != "Parameters" {
		return nil, nil, errors.New("a POSTed kick-off's body is a Parameters resource")
	}
	q, named := url.Values{}, []string{}
	for _, p := range body.Parameter {
		switch {
		case p.Name == "patient" && p.ValueReference != nil:
			id, ok := strings.CutPrefix(p.ValueReference.Reference, "Patient/")
			if !ok || !slices.ContainsFunc(patients, func(p map[string]any) bool { return p["id"] == id }) {
				return nil, nil, errors.New("the fake FHIR server holds no " + p.ValueReference.Reference)
			}
			named = append(named, id)
		case p.ValueString != nil:
			q.Add(p.Name, *p.ValueString)
		case p.ValueInstant != nil:
			q.Add(p.Name, *p.ValueInstant)
		default:
			return nil, nil, errors.New("parameter " + p.Name + " has no value the fake FHIR server takes")
		}
	}
	return q, named, nil
}

// exportTypes are the types the fake server exports, in manifest order.
var exportTypes = []string{"Patient", "Observation"}

// bulk answers the export's three steps; it reports whether r was one.
func (data) bulk(w http.ResponseWriter, r *http.Request) bool {
	const base = "http://smarttest-data.invalid"
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodPost && r.URL.Path == "/Patient/$export") &&
		(r.URL.Path == "/$export" || r.URL.Path == "/Patient/$export"):
		if r.Header.Get("Prefer") != "respond-async" {
			outcome(w, http.StatusBadRequest, "invalid", "$export needs Prefer: respond-async")
			return true
		}
		q, named, err := r.URL.Query(), []string(nil), error(nil)
		if r.Method == http.MethodPost {
			q, named, err = postedKickOff(r)
		}
		if err != nil {
			outcome(w, http.StatusBadRequest, "invalid", err.Error())
			return true
		}
		types := exportTypes
		for name, vals := range q {
			if name != "_type" && name != "_outputFormat" && name != "_since" && name != "_typeFilter" || len(vals) != 1 && name != "_typeFilter" {
				outcome(w, http.StatusBadRequest, "not-supported", "the fake FHIR server does not support "+name)
				return true
			}
		}
		if t := q.Get("_type"); t != "" {
			types = strings.Split(t, ",")
		}
		status := url.Values{"types": {strings.Join(types, ",")}}
		if named != nil {
			status.Set("patients", strings.Join(named, ","))
		}
		w.Header().Set("Content-Location", base+"/$export-status?"+status.Encode())
		w.WriteHeader(http.StatusAccepted)
	case r.URL.Path == "/$export-status" && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusAccepted)
	case r.URL.Path == "/$export-status":
		output := []any{}
		for _, t := range strings.Split(r.URL.Query().Get("types"), ",") {
			if slices.Contains(exportTypes, t) {
				file := base + "/$export-file/" + t + ".ndjson"
				if named := r.URL.Query().Get("patients"); named != "" {
					file += "?patients=" + url.QueryEscape(named)
				}
				output = append(output, map[string]any{"type": t, "url": file})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, map[string]any{"transactionTime": "2026-01-01T00:00:00Z", "request": base + "/$export",
			"requiresAccessToken": true, "output": output, "error": []any{}})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/$export-file/"):
		typ, _ := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/$export-file/"), ".ndjson")
		if !slices.Contains(exportTypes, typ) {
			outcome(w, http.StatusNotFound, "not-found", "no such export file")
			return true
		}
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		named := r.URL.Query().Get("patients")
		for _, p := range patients {
			if named != "" && !slices.Contains(strings.Split(named, ","), p["id"].(string)) {
				continue
			}
			res := p
			if typ == "Observation" {
				res = observation(p["id"].(string))
			}
			writeJSON(w, res)
			if typ == "Observation" && p["id"] == "smart-1" {
				writeJSON(w, sensitive)
			}
		}
	default:
		return false
	}
	return true
}
