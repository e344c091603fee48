package smarttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
)

// The fake FHIR server's data: a few deterministic patients, each with one
// observation, and smart-1 with a sensitive one too. Enough to test an
// app's calls, not a FHIR server.
var patients = []map[string]any{
	{"resourceType": "Patient", "id": "smart-1", "name": []any{map[string]any{"family": "Shaw", "given": []any{"Amy"}}},
		"birthDate": "1987-02-20", "gender": "female"},
	{"resourceType": "Patient", "id": "smart-2", "name": []any{map[string]any{"family": "Nguyen", "given": []any{"Bao"}}},
		"birthDate": "1950-11-02", "gender": "male"},
	{"resourceType": "Patient", "id": "smart-3", "name": []any{map[string]any{"family": "Okafor", "given": []any{"Chidi"}}},
		"birthDate": "2019-06-30", "gender": "male"},
}

// sensitive is smart-1's HIV test, labelled restricted (R) and HIV: the
// proxy withholds it from a grant whose clearance does not release HIV
// (Config.Clearance; by default only normal data), and marks a search
// that lost it REDACTED.
var sensitive = map[string]any{"resourceType": "Observation", "id": "hiv-smart-1", "status": "final",
	"meta": map[string]any{"security": []any{
		map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
		map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}}},
	"category": []any{map[string]any{"coding": []any{map[string]any{
		"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}}}},
	"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "75622-1", "display": "HIV 1 and 2 tests"}}},
	"subject": map[string]any{"reference": "Patient/smart-1"}, "valueString": "negative"}

func observation(patient string) map[string]any {
	return map[string]any{"resourceType": "Observation", "id": "bp-" + patient, "status": "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}},
		"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}}},
		"subject": map[string]any{"reference": "Patient/" + patient}, "valueQuantity": map[string]any{"value": 72, "unit": "/min"}}
}

// data is the fake FHIR server's data store: it answers GET /metadata,
// /{Type}/{id} and /{Type}?patient=…&subject=…&_id=… for Patient and
// Observation (and category=… and code=… for Observation, as tokens:
// code or system|code), and bulk exports of them (bulk.go), to anyone.
// Other parameters it ignores, as a lenient server does. It sits behind the real policy enforcement point
// (fhirproxy.Proxy), which authenticates, authorises, confines and filters
// as it would in front of a hospital's FHIR server, so an app meets here
// the refusals it will meet in production.
type data struct{}

func (d data) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metadata" {
		writeFHIR(w, http.StatusOK, map[string]any{"resourceType": "CapabilityStatement", "status": "active",
			"kind": "instance", "fhirVersion": "4.0.1", "format": []any{"json"},
			"rest": []any{map[string]any{"mode": "server", "resource": []any{
				map[string]any{"type": "Patient", "interaction": []any{map[string]any{"code": "read"}, map[string]any{"code": "search-type"}}},
				map[string]any{"type": "Observation", "interaction": []any{map[string]any{"code": "read"}, map[string]any{"code": "search-type"}}},
			}}}})
		return
	}
	if d.bulk(w, r) {
		return
	}
	if r.Method != http.MethodGet {
		outcome(w, http.StatusMethodNotAllowed, "not-supported", "the fake FHIR server is read-only")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	is := func(param, id string) bool { // an absent parameter matches; a comma ORs values
		for _, v := range q[param] {
			if !slices.ContainsFunc(strings.Split(v, ","), func(v string) bool { return v == id || v == "Patient/"+id }) {
				return false
			}
		}
		return true
	}
	var out []map[string]any
	for _, p := range patients {
		id := p["id"].(string)
		switch parts[0] {
		case "Patient":
			if (len(parts) == 1 || parts[1] == id) && is("_id", id) {
				out = append(out, p)
			}
		case "Observation":
			obs := []map[string]any{observation(id)}
			if id == "smart-1" {
				obs = append(obs, sensitive)
			}
			for _, o := range obs {
				oid := o["id"].(string)
				if (len(parts) == 1 || parts[1] == oid) && is("patient", id) && is("subject", id) && (len(q["_id"]) == 0 || q.Get("_id") == oid) &&
					tokens(q["category"], o["category"]) && tokens(q["code"], o["code"]) {
					out = append(out, o)
				}
			}
		}
	}
	if len(parts) == 2 {
		if len(out) == 0 {
			outcome(w, http.StatusNotFound, "not-found", "no such resource")
			return
		}
		writeFHIR(w, http.StatusOK, out[0])
		return
	}
	entries := make([]any, len(out))
	for i, res := range out {
		entries[i] = map[string]any{"resource": res}
	}
	writeFHIR(w, http.StatusOK, map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(out), "entry": entries})
}

// tokens reports whether a record's CodeableConcept (or list of them)
// meets a token parameter's values: each value (repeated parameters AND)
// a comma-separated list of code or system|code (ORed).
func tokens(values []string, concepts any) bool {
	list, ok := concepts.([]any)
	if !ok {
		list = []any{concepts} // one CodeableConcept (or none)
	}
	var codings []map[string]any
	for _, c := range list {
		c, _ := c.(map[string]any)
		list, _ := c["coding"].([]any)
		for _, coding := range list {
			if coding, ok := coding.(map[string]any); ok {
				codings = append(codings, coding)
			}
		}
	}
	for _, v := range values {
		if !slices.ContainsFunc(strings.Split(v, ","), func(tok string) bool {
			system, code, hasSystem := strings.Cut(tok, "|")
			if !hasSystem {
				code = system
			}
			return slices.ContainsFunc(codings, func(c map[string]any) bool {
				return c["code"] == code && (!hasSystem || c["system"] == system)
			})
		}) {
			return false
		}
	}
	return true
}

// inMemory carries the proxy's requests to a handler without a network.
type inMemory struct{ h http.Handler }

func (t inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

func writeFHIR(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	writeJSON(w, v)
}

// writeJSON writes v as one line of JSON.
func writeJSON(w http.ResponseWriter, v any) { _ = json.NewEncoder(w).Encode(v) }

func outcome(w http.ResponseWriter, status int, code, text string) {
	writeFHIR(w, status, map[string]any{"resourceType": "OperationOutcome",
		"issue": []any{map[string]any{"severity": "error", "code": code, "diagnostics": text}}})
}
