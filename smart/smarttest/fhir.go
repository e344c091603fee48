package smarttest

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/smartkit/smartkit/scopes"
	"github.com/smartkit/smartkit/smart"
)

// The fake FHIR server's data: a few deterministic patients, each with one
// observation. Enough to test an app's calls, not a FHIR server.
var patients = []map[string]any{
	{"resourceType": "Patient", "id": "smart-1", "name": []any{map[string]any{"family": "Shaw", "given": []any{"Amy"}}},
		"birthDate": "1987-02-20", "gender": "female"},
	{"resourceType": "Patient", "id": "smart-2", "name": []any{map[string]any{"family": "Nguyen", "given": []any{"Bao"}}},
		"birthDate": "1950-11-02", "gender": "male"},
	{"resourceType": "Patient", "id": "smart-3", "name": []any{map[string]any{"family": "Okafor", "given": []any{"Chidi"}}},
		"birthDate": "2019-06-30", "gender": "male"},
}

func observation(patient string) map[string]any {
	return map[string]any{"resourceType": "Observation", "id": "bp-" + patient, "status": "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}},
		"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}}},
		"subject": map[string]any{"reference": "Patient/" + patient}, "valueQuantity": map[string]any{"value": 72, "unit": "/min"}}
}

// fhirServer answers GET /metadata, /Patient/{id}, /Patient and
// /Observation?patient=… for tokens whose scopes allow it, confining
// patient-context tokens to their patient.
type fhirServer struct {
	v *smart.Verifier
	s *Server
}

func newFHIR(v *smart.Verifier, s *Server) http.Handler { return &fhirServer{v: v, s: s} }

func (f *fhirServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metadata" {
		writeFHIR(w, http.StatusOK, map[string]any{"resourceType": "CapabilityStatement", "status": "active",
			"kind": "instance", "fhirVersion": "4.0.1", "format": []any{"json"}})
		return
	}
	if r.Method != http.MethodGet {
		outcome(w, http.StatusMethodNotAllowed, "not-supported", "the fake FHIR server is read-only")
		return
	}
	f.v.Middleware(http.HandlerFunc(f.serve)).ServeHTTP(w, r)
}

func (f *fhirServer) serve(w http.ResponseWriter, r *http.Request) {
	tok, _ := smart.TokenFrom(r.Context())
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	typ := parts[0]
	perm := scopes.Search
	if len(parts) == 2 {
		perm = scopes.Read
	}
	ctx, compartment := scopes.User, ""
	switch {
	case tok.Scopes.HasContext(scopes.Patient) && tok.Context.Patient != "":
		ctx, compartment = scopes.Patient, tok.Context.Patient
	case tok.Scopes.HasContext(scopes.System):
		ctx = scopes.System
	}
	if !tok.Scopes.Allows(scopes.Access{Context: ctx, Type: typ, Perms: perm}) {
		outcome(w, http.StatusForbidden, "forbidden", "the token's scopes do not allow this")
		return
	}
	var out []map[string]any
	for _, p := range patients {
		id := p["id"].(string)
		if compartment != "" && id != compartment {
			continue
		}
		switch typ {
		case "Patient":
			if len(parts) == 1 || parts[1] == id {
				out = append(out, p)
			}
		case "Observation":
			if want := r.URL.Query().Get("patient"); want == "" || want == id || want == "Patient/"+id {
				if len(parts) == 1 || parts[1] == "bp-"+id {
					out = append(out, observation(id))
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

func writeFHIR(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func outcome(w http.ResponseWriter, status int, code, text string) {
	writeFHIR(w, status, map[string]any{"resourceType": "OperationOutcome",
		"issue": []any{map[string]any{"severity": "error", "code": code, "diagnostics": text}}})
}
