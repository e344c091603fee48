package fhirproxy

import (
	"bytes"
	"encoding/json"

	"github.com/smartkit/smartkit/internal/jsonstrict"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/smartkit/smartkit/audit"
)

// inspect reads an upstream response the access must be checked against:
// JSON only (anything else cannot be inspected and is refused), bounded in
// size; Bundles lose the entries the access may not see; a single resource
// outside it becomes the 404 a missing one would give.
func (p *Proxy) inspect(resp *http.Response, in Interaction, a *access, ev *audit.Event) (*refusal, error) {
	if !a.inspects(in) || resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		// One answer for "absent" and "not yours": the proxy's, not the upstream's.
		return notFound(), nil
	}
	if resp.StatusCode >= 400 {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			// The upstream refused the proxy's own credential: not the client's business.
			return refuse(http.StatusBadGateway, "transient", "the FHIR server refused the proxy"), nil
		}
		ev.Type, ev.Outcome, ev.Reason = audit.ResourceRefused, audit.Failure, "upstream status "+strconv.Itoa(resp.StatusCode)
		return nil, nil // the upstream's own OperationOutcome about the request
	}
	if !jsonMediaType(resp.Header.Get("Content-Type")) {
		return refuse(http.StatusBadGateway, "not-supported", "the FHIR server answered in a format the proxy cannot inspect"), nil
	}
	if resp.Header.Get("Content-Encoding") != "" {
		return refuse(http.StatusBadGateway, "not-supported", "the FHIR server answered compressed"), nil
	}
	body, err := readBody(resp, p.Limits.resp())
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > p.Limits.resp() {
		return refuse(http.StatusBadGateway, "too-costly", "the response is too large to inspect"), nil
	}
	out, kept, ref := a.inspectBody(in, body)
	if ref != nil && ref.status == http.StatusNotFound && (in.Kind == Create || in.Kind == Update) {
		// The write happened, but the token may not see what was stored
		// (write-only scopes, or labels the server added): answer as for
		// Prefer: return=minimal rather than with a 404 that would lie.
		ev.Reason = "written; the stored resource is not readable with this token: body withheld"
		resp.Body, resp.ContentLength = http.NoBody, 0
		resp.Header.Set("Content-Length", "0")
		resp.Header.Del("Content-Type")
		return nil, nil
	}
	if ref != nil {
		if ref.status == http.StatusNotFound {
			ev.Reason = "outside the grant: answered as not found"
		}
		return ref, nil
	}
	if len(out) != len(body) {
		ev.Reason = "entries withheld from the response"
	}
	if len(kept) > 0 {
		discloses(ev, kept[0], a)
	}
	body = out
	if p.Transform != nil {
		if body, err = p.Transform(resp.Request.Context(), a.tok, in, body); err != nil {
			return nil, err
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("Content-Type", "application/fhir+json")
	return nil, nil
}

// jsonMediaType reports whether a Content-Type is application/fhir+json or
// application/json, with any parameters.
func jsonMediaType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	return strings.EqualFold(mt, "application/fhir+json") || strings.EqualFold(mt, "application/json")
}

// readBody reads at most limit+1 bytes of a response: in one exact
// allocation when the length is declared, growing otherwise.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	n := resp.ContentLength
	if n < 0 || n > limit {
		return io.ReadAll(io.LimitReader(resp.Body, limit+1))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, body); err != nil {
		return nil, err
	}
	return body, nil
}

// discloses notes in the audit event which patient's data went out.
func discloses(ev *audit.Event, pr *projection, a *access) {
	if ev.Patient != "" {
		return
	}
	if pr.ResourceType == "Patient" {
		ev.Patient = pr.ID
		return
	}
	for _, r := range []string{pr.Subject.Reference, pr.Patient.Reference, pr.Beneficiary.Reference} {
		if id, ok := strings.CutPrefix(r, "Patient/"); ok {
			ev.Patient = id
			return
		}
	}
}

// entryResource extracts the resource Type/id from a searchset Bundle.
func entryResource(bundle []byte, typ, id string) ([]byte, error) {
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		return nil, err
	}
	for _, e := range b.Entry {
		var pr projection
		if json.Unmarshal(e.Resource, &pr) == nil && pr.ResourceType == typ && pr.ID == id {
			return e.Resource, nil
		}
	}
	return nil, io.EOF
}

// capabilities passes the CapabilityStatement through with the SMART
// security service and oauth-uris extension added (SAL: the deprecated but
// still common discovery path).
func (p *Proxy) capabilities(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.Limits.resp()))
	resp.Body.Close()
	if err != nil {
		return err
	}
	var cs map[string]any
	if err := json.Unmarshal(body, &cs); err != nil || cs["resourceType"] != "CapabilityStatement" {
		return refuse(http.StatusBadGateway, "invalid", "the FHIR server's CapabilityStatement is unreadable")
	}
	var ext []any
	for name, u := range map[string]string{"authorize": p.AuthorizeURL, "token": p.TokenURL, "revoke": p.RevokeURL, "introspect": p.IntrospectURL} {
		if u != "" {
			ext = append(ext, map[string]any{"url": name, "valueUri": u})
		}
	}
	security := map[string]any{
		"service": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}}}},
		"extension": []any{map[string]any{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": ext}},
	}
	rest, _ := cs["rest"].([]any)
	if len(rest) == 0 {
		rest = []any{map[string]any{"mode": "server"}}
	}
	for _, r := range rest {
		if m, ok := r.(map[string]any); ok {
			m["security"] = security
		}
	}
	cs["rest"] = rest
	out, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Set("Content-Type", "application/fhir+json")
	resp.Header.Set("Access-Control-Allow-Origin", "*")
	return nil
}

// view is one decoding pass over a response: the top-level projection and,
// for a Bundle, each entry's.
type view struct {
	projection
	Entry []struct {
		Resource *projection `json:"resource"`
	} `json:"entry"`
}

// inspectBody decides a response body for the access. It checks the JSON
// strictly once, decodes a minimal projection once, and rebuilds a Bundle
// only when it must remove entries. It returns the body to send and what
// it lets through, or a refusal.
func (a *access) inspectBody(in Interaction, body []byte) ([]byte, []*projection, *refusal) {
	invalid := refuse(http.StatusBadGateway, "invalid", "the FHIR server answered with invalid or ambiguous JSON")
	if jsonstrict.Check(body) != nil {
		return nil, nil, invalid
	}
	var v view
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, nil, invalid
	}
	switch {
	case v.ResourceType == "Bundle":
		var kept []*projection
		all := true
		for _, e := range v.Entry {
			if e.Resource == nil || e.Resource.ResourceType == "OperationOutcome" {
				continue
			}
			if a.judge(e.Resource) == keep {
				kept = append(kept, e.Resource)
			} else {
				all = false
			}
		}
		out := body
		if !all {
			var top map[string]json.RawMessage
			if err := json.Unmarshal(body, &top); err != nil {
				return nil, nil, invalid
			}
			var err error
			if out, _, kept, err = a.filterBundle(body, top); err != nil {
				return nil, nil, invalid
			}
		}
		if in.unwrap == "" {
			return out, kept, nil
		}
		for _, k := range kept { // a constrained read: exactly the one resource, or absent
			if k.ResourceType == in.Type && k.ID == in.unwrap {
				one, err := entryResource(out, in.Type, in.unwrap)
				if err != nil {
					return nil, nil, notFound()
				}
				return one, []*projection{k}, nil
			}
		}
		return nil, nil, notFound()
	case in.unwrap != "":
		return nil, nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered a search with something else")
	case v.ResourceType == "OperationOutcome":
		return body, nil, nil
	}
	pr := &v.projection
	if in.ID != "" && in.Kind != Operation && (pr.ResourceType != in.Type || pr.ID != in.ID) {
		return nil, nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered with another resource")
	}
	if a.judge(pr) != keep {
		return nil, nil, notFound()
	}
	return body, []*projection{pr}, nil
}
