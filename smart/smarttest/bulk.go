package smarttest

import (
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
// query-constrained scope to the constraint). The export is done at once: its status answers the
// manifest, one NDJSON file a type, through the proxy (which withholds
// smart-1's sensitive record from a clearance that does not release it).
// The data server keeps no jobs: the status URL carries the types.

// exportTypes are the types the fake server exports, in manifest order.
var exportTypes = []string{"Patient", "Observation"}

// bulk answers the export's three steps; it reports whether r was one.
func (data) bulk(w http.ResponseWriter, r *http.Request) bool {
	const base = "http://smarttest-data.invalid"
	switch {
	case r.Method == http.MethodGet && (r.URL.Path == "/$export" || r.URL.Path == "/Patient/$export"):
		if r.Header.Get("Prefer") != "respond-async" {
			outcome(w, http.StatusBadRequest, "invalid", "$export needs Prefer: respond-async")
			return true
		}
		types := exportTypes
		for name, vals := range r.URL.Query() {
			if name != "_type" && name != "_outputFormat" && name != "_since" && name != "_typeFilter" || len(vals) != 1 && name != "_typeFilter" {
				outcome(w, http.StatusBadRequest, "not-supported", "the fake FHIR server does not support "+name)
				return true
			}
		}
		if t := r.URL.Query().Get("_type"); t != "" {
			types = strings.Split(t, ",")
		}
		w.Header().Set("Content-Location", base+"/$export-status?types="+url.QueryEscape(strings.Join(types, ",")))
		w.WriteHeader(http.StatusAccepted)
	case r.URL.Path == "/$export-status" && r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusAccepted)
	case r.URL.Path == "/$export-status":
		output := []any{}
		for _, t := range strings.Split(r.URL.Query().Get("types"), ",") {
			if slices.Contains(exportTypes, t) {
				output = append(output, map[string]any{"type": t, "url": base + "/$export-file/" + t + ".ndjson"})
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
		for _, p := range patients {
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
