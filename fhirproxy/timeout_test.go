package fhirproxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
)

// TestUpstreamTimeout: an upstream that does not begin its answer, or
// stalls in its body, gets a 504 after Proxy.Timeout (audited); one that
// keeps sending, however slowly, is not cut off.
func TestUpstreamTimeout(t *testing.T) {
	body := `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"trickle",` +
		`"subject":{"reference":"Patient/p1"},"status":"final","category":[{"coding":[{"code":"laboratory"}]}]}}]}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wait := func(d time.Duration) {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		switch r.URL.Query().Get("_id") {
		case "silent": // never begins
			wait(5 * time.Second)
		case "stall": // begins, then stops
			w.WriteHeader(200)
			_, _ = w.Write([]byte(body[:20]))
			w.(http.Flusher).Flush()
			wait(5 * time.Second)
		case "trickle": // slow, never idle for long
			w.WriteHeader(200)
			for i := 0; i < len(body); i += 20 {
				_, _ = w.Write([]byte(body[i:min(i+20, len(body))]))
				w.(http.Flusher).Flush()
				wait(120 * time.Millisecond)
			}
		}
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	f.proxy.Timeout = 600 * time.Millisecond
	tok := f.token("launch/patient patient/Observation.rs?category=laboratory", nil) // reads go out as _id searches

	for _, id := range []string{"silent", "stall"} {
		start := time.Now()
		r := f.do("GET", "/Observation/"+id, tok, "")
		if took := time.Since(start); r.status != 504 || took > 2*time.Second || !strings.Contains(r.raw, `"timeout"`) {
			t.Errorf("%s: %d after %v: %s", id, r.status, took, r.raw)
		}
	}
	if n := len(f.audit.Of(audit.ResourceRefused)); n != 2 {
		t.Errorf("%d timeouts audited, want 2", n)
	}
	start := time.Now()
	if r := f.do("GET", "/Observation/trickle", tok, ""); r.status != 200 || r.body["id"] != "trickle" || time.Since(start) < f.proxy.Timeout {
		t.Errorf("a slow but steady answer: %d after %v: %s", r.status, time.Since(start), r.raw)
	}
}
