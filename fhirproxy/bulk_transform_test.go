package fhirproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/smart"
)

// TestBulkExportTransform: the host's Transform (a research app's
// de-identification, say) runs on each resource an export file keeps, as
// it does on any answer that carries resources, after the proxy's own
// judgement; what it makes goes as one compact line. Before, a bulk export
// sent its files untransformed, around the host's redaction. A Transform
// that fails, or makes other than one JSON resource, cuts the download,
// audited with why; an error file's OperationOutcomes carry no resources
// and are not given to it.
func TestBulkExportTransform(t *testing.T) {
	f, bs := newBulkFixture(t)
	var seen []fhirproxy.Kind
	fail := ""
	f.proxy.Transform = func(_ context.Context, _ *smart.Token, in fhirproxy.Interaction, body []byte) ([]byte, error) {
		if in.Kind != fhirproxy.ExportFile {
			return body, nil
		}
		seen = append(seen, in.Kind)
		var res map[string]any
		if err := json.Unmarshal(body, &res); err != nil {
			return nil, err
		}
		switch {
		case fail == "error" && res["id"] == "lab-2":
			return nil, errors.New("the de-identification service is down")
		case fail == "two" && res["id"] == "lab-2":
			return []byte(`{"resourceType":"Observation"}{"resourceType":"Observation"}`), nil
		case fail == "duplicate" && res["id"] == "lab-2": // read one way by the proxy, another by a client
			return []byte(`{"resourceType":"Observation","id":"anon-lab-2","id":"lab-2"}`), nil
		}
		delete(res, "subject")
		res["id"] = "anon-" + res["id"].(string)
		return json.MarshalIndent(res, "", "  ") // on several lines: the proxy compacts it
	}
	tok := f.token("system/Observation.rs", nil)
	bs.mu.Lock()
	bs.polls = 1
	bs.mu.Unlock()
	kickOff := f.do("GET", "/$export?_type=Observation", tok, "", "Prefer", "respond-async")
	var m struct{ Output, Error []struct{ Type, URL string } }
	if err := json.Unmarshal([]byte(f.do("GET", f.proxyPath(kickOff.header.Get("Content-Location")), tok, "").raw), &m); err != nil || len(m.Error) != 1 {
		t.Fatalf("manifest: %v %+v", err, m)
	}
	var file string
	for _, o := range m.Output {
		if o.Type == "Observation" {
			file = f.proxyPath(o.URL)
		}
	}
	r := f.do("GET", file, tok, "")
	lines := strings.Split(strings.TrimSuffix(r.raw, "\n"), "\n")
	if ids := ndjsonIDs(t, r.raw); r.status != http.StatusOK || !slices.Equal(ids, []string{"Observation/anon-lab-1", "Observation/anon-vs-1", "Observation/anon-lab-2"}) ||
		len(lines) != 3 || strings.Contains(r.raw, "subject") || len(seen) != 3 {
		t.Errorf("the file: %d %v, %d lines, Transform saw %d: %s", r.status, ids, len(lines), len(seen), r.raw)
	}
	// The error file is the server's own, without its words (behind a
	// Transform, no token hears them: TestServerWordsBehindTransform).
	seen = nil
	if r := f.do("GET", f.proxyPath(m.Error[0].URL), tok, ""); r.status != http.StatusOK || strings.Contains(r.raw, "Encounter export failed") ||
		!strings.Contains(r.raw, `"code":"processing"`) || len(seen) != 0 {
		t.Errorf("the error file: %d %s, Transform saw %d", r.status, r.raw, len(seen))
	}
	for _, c := range []struct{ fail, reason string }{
		{"error", "export file cut: the host's Transform failed on a resource (2 resources judged to go before it, 2 left out)"},
		{"two", "export file cut: the host's Transform failed on a resource (2 resources judged to go before it, 2 left out)"},
		{"duplicate", "export file cut: the host's Transform failed on a resource (2 resources judged to go before it, 2 left out)"},
	} {
		fail = c.fail
		f.audit.Reset()
		body, err := f.download(file, tok)
		if err == nil || strings.Contains(string(body), "lab-2") {
			t.Errorf("%s: read %q, %v; want a failed transfer", c.fail, body, err)
		}
		waitFor(t, func() bool { return len(f.audit.Of(audit.ResourceRefused)) > 0 })
		for _, ev := range f.audit.Of(audit.ResourceRefused) {
			if ev.Reason != c.reason {
				t.Errorf("%s: the cut audited as %q", c.fail, ev.Reason)
			}
		}
	}
}
