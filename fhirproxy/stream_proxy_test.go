package fhirproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/smart"
)

// bigSearch serves a searchset of n ~1 KB Observations, every seventh for
// p2, written as it goes (no Content-Length), resourceType first as most
// FHIR servers write it, with links and fullUrls on its own base; with
// ?broken=1 the Bundle ends in invalid JSON; with ?sorted=1 its members
// come in name order, entries first (and ?lie=1 then makes its
// resourceType Observation); with ?last=1 it has no next link, with
// ?meta=1 it has a meta labelled HIV, and with ?psy=1 every entry is
// labelled PSY.
func bigSearch(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		base := "http://" + r.Host
		next := fmt.Sprintf(`,"link":[{"relation":"next","url":"%s/Observation?ct=2"}]`, base)
		if r.URL.Query().Has("last") {
			next = ""
		}
		if r.URL.Query().Has("meta") { // the high-water mark of the matches' labels
			next += `,"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]}`
		}
		if r.URL.Query().Has("sorted") {
			fmt.Fprint(w, `{"entry":[`)
		} else {
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","total":%d%s,"entry":[`, n, next)
		}
		for i := range n {
			p := "p1"
			if i%7 == 6 {
				p = "p2"
			}
			if i > 0 {
				fmt.Fprint(w, ",")
			}
			meta := ""
			if r.URL.Query().Has("psy") {
				meta = `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]},`
			}
			fmt.Fprintf(w, `{"fullUrl":"%s/Observation/o%d","resource":{%s"resourceType":"Observation","id":"o%d","subject":{"reference":"Patient/%s"},"code":{"text":%q}}}`, base, i, meta, i, p, strings.Repeat("z", 900))
		}
		switch q := r.URL.Query(); {
		case q.Has("broken"):
			fmt.Fprint(w, `,{"resource":{"resourceType":"Observation","id":"late","subject":{"reference":"Patient/p2"},"subject":{}}}]}`)
		case q.Has("sorted"):
			typ := "Bundle"
			if q.Has("lie") {
				typ = "Observation"
			}
			fmt.Fprintf(w, `]%s,"resourceType":%q,"total":%d,"type":"searchset"}`, next, typ, n)
		default:
			fmt.Fprint(w, `]}`)
		}
	}
}

// streamFixture is the proxy in front of bigSearch(300), streaming Bundles
// over 64 KiB.
func streamFixture(t *testing.T) (*fixture, *httptest.Server) {
	f := newFixture(t)
	up := httptest.NewServer(bigSearch(300))
	t.Cleanup(up.Close)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	f.proxy.Limits.StreamFrom = 64 << 10
	return f, up
}

// TestStreamedLinksMove: a streamed Bundle's links and fullUrls move onto
// the proxy's base like a whole one's.
func TestStreamedLinksMove(t *testing.T) {
	f, up := streamFixture(t)
	f.proxy.Base = f.base
	r := f.do("GET", "/Observation", f.token("launch/patient patient/Observation.rs", nil), "")
	entries, _ := r.body["entry"].([]any)
	if r.status != 200 || len(entries) == 0 || strings.Contains(r.raw, up.URL) || !strings.Contains(r.raw, `"`+f.base+`/Observation?ct=2"`) ||
		!strings.Contains(r.raw, `"fullUrl":"`+f.base+`/Observation/o0"`) {
		t.Errorf("%d, %d entries: %.300s", r.status, len(entries), r.raw)
	}
}

// cutStream GETs target, whose stream the proxy must cut: the client's read
// fails, the body is not JSON and never holds leak, and the cut is audited
// once, as a failure whose reason holds why.
func cutStream(t *testing.T, f *fixture, target, tok, leak, why string) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.base+target, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || json.Valid(b) || strings.Contains(string(b), leak) {
		t.Fatalf("%s: the stream read cleanly (%v) or let %q out", target, err, leak)
	}
	waitFor(t, func() bool { return len(f.audit.Of(audit.ResourceRefused)) == 1 })
	if ev := f.audit.Of(audit.ResourceRefused)[0]; !strings.Contains(ev.Reason, "cut") || !strings.Contains(ev.Reason, why) || ev.Outcome != audit.Failure {
		t.Errorf("%s: the cut stream audited as %+v", target, ev)
	}
}

// TestStreamedEntriesFirst: a search's Bundle written in name order,
// entries before its resourceType (as some servers write JSON), streams
// too; one that turns out not to be a Bundle is cut; a read answered that
// way is not streamed.
func TestStreamedEntriesFirst(t *testing.T) {
	f, up := streamFixture(t)
	f.proxy.Base = f.base
	tok := f.token("launch/patient patient/Observation.rs", nil)
	r := f.do("GET", "/Observation?sorted=1", tok, "")
	entries, _ := r.body["entry"].([]any)
	if r.status != 200 || r.header.Get("Content-Length") != "" || r.body["resourceType"] != "Bundle" || len(entries) != 300-300/7 ||
		strings.Contains(r.raw, "Patient/p2") || strings.Contains(r.raw, up.URL) || r.body["type"] != "searchset" {
		t.Fatalf("%d (Content-Length %q), %d entries: %.200s", r.status, r.header.Get("Content-Length"), len(entries), r.raw)
	}
	waitFor(t, func() bool { return len(f.audit.Events()) >= 2 })
	if ev := f.audit.Events()[0]; !strings.Contains(ev.Reason, "streamed") {
		t.Fatalf("not streamed: %+v", ev)
	}

	cutStream(t, f, "/Observation?sorted=1&lie=1", tok, "Patient/p2", "not a Bundle")

	for _, read := range []string{"/Observation/o1", "/Observation/o1/_history/1"} { // bigSearch answers anything with its Bundle
		if r := f.do("GET", read, tok, ""); r.status != http.StatusBadGateway || r.header.Get("Content-Length") == "" {
			t.Errorf("%s answered with a Bundle: %d, Content-Length %q", read, r.status, r.header.Get("Content-Length"))
		}
	}
}

// TestStreamedBundle: a Bundle over Limits.StreamFrom is filtered as it
// streams: chunked, without another patient's entries or the total, audited
// before it starts and again for what it withheld; a Bundle that turns
// invalid is cut off, and the client's read fails.
func TestStreamedBundle(t *testing.T) {
	f, _ := streamFixture(t)
	tok := f.token("launch/patient patient/Observation.rs", nil)

	r := f.do("GET", "/Observation", tok, "")
	if r.status != 200 || r.header.Get("Content-Length") != "" {
		t.Fatalf("status %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
	}
	entries, _ := r.body["entry"].([]any)
	if len(entries) != 300-300/7 || strings.Contains(r.raw, "Patient/p2") || r.body["total"] != nil || r.body["resourceType"] != "Bundle" {
		t.Fatalf("%d entries, total %v, p2 present: %v", len(entries), r.body["total"], strings.Contains(r.raw, "Patient/p2"))
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("security headers missing on a streamed response")
	}
	waitFor(t, func() bool { return len(f.audit.Events()) >= 2 })
	evs := f.audit.Events()
	if evs[0].Type != audit.ResourceAllowed || !strings.Contains(evs[0].Reason, "streamed") ||
		evs[1].Type != audit.ResourceAllowed || !strings.Contains(evs[1].Reason, "withheld") || evs[1].Patient != "p1" {
		t.Fatalf("audit: %+v", evs)
	}

	// A Bundle that turns out invalid after entries went out.
	cutStream(t, f, "/Observation?broken=1", tok, "late", "invalid or ambiguous JSON")

	// If the request cannot be audited it is refused, and the trail says
	// nothing was sent.
	f.proxy.Audit = failStreamStart{f.audit}
	if r := f.do("GET", "/Observation", tok, ""); r.status != 500 {
		t.Errorf("unaudited stream: %d", r.status)
	}
	waitFor(t, func() bool {
		for _, e := range f.audit.Events() {
			if strings.Contains(e.Reason, "refused before anything was sent") {
				return true
			}
		}
		return false
	})
	f.proxy.Audit = f.audit

	// With a Transform the body is needed whole: not streamed.
	f.proxy.Transform = func(_ context.Context, _ *smart.Token, _ fhirproxy.Interaction, body []byte) ([]byte, error) {
		return body, nil
	}
	if r := f.do("GET", "/Observation", tok, ""); r.status != 200 || r.header.Get("Content-Length") == "" || strings.Contains(r.raw, "Patient/p2") {
		t.Errorf("with a Transform: %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// failStreamStart fails to record the event that starts a streamed
// response, and records the rest.
type failStreamStart struct{ next audit.Sink }

func (s failStreamStart) Record(ctx context.Context, e audit.Event) error {
	if strings.HasPrefix(e.Reason, "Bundle streamed") {
		return errors.New("audit store down")
	}
	return s.next.Record(ctx, e)
}

// TestAuditFailureWithholds: when the audit sink fails, nothing is
// answered but a 500: not the resource read, not a refusal's reason.
func TestAuditFailureWithholds(t *testing.T) {
	f := newFixture(t)
	tok := f.token("launch/patient patient/Observation.rs", nil)
	f.proxy.Audit = downSink{}
	for name, r := range map[string]result{
		"read":     f.do("GET", "/Observation/lab-1", tok, ""),
		"refusal":  f.do("GET", "/Observation/lab-2", tok, ""),
		"no token": f.do("GET", "/Observation/lab-1", "", ""),
	} {
		if r.status != 500 || strings.Contains(r.raw, "lab-") || !strings.Contains(r.raw, "could not be audited") {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	// A write is audited before it is forwarded: with the sink down it is
	// not made (found: it was made, then its answer withheld, unaudited).
	f.up.reset()
	user := f.token("user/Observation.cruds", everyLabel())
	for name, r := range map[string]result{
		"create": f.do("POST", "/Observation", user, mustJSON(obs("", "p1", "laboratory"))),
		"update": f.do("PUT", "/Observation/lab-1", user, mustJSON(obs("lab-1", "p1", "laboratory"))),
		"delete": f.do("DELETE", "/Observation/lab-1", user, ""),
		"batch":  f.do("POST", "/", user, `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"Observation/lab-1"}}]}`),
	} {
		if r.status != 500 || !strings.Contains(r.raw, "could not be audited") {
			t.Errorf("%s with the audit sink down: %d %s", name, r.status, r.raw)
		}
	}
	for _, g := range f.up.requests() {
		if g.Method != http.MethodGet {
			t.Errorf("with the audit sink down, a %s %s reached the upstream", g.Method, g.URL)
		}
	}
	// With the sink up, a write leaves two events: before and after.
	f.proxy.Audit = f.audit
	f.audit.Reset()
	if r := f.do("DELETE", "/Observation/lab-1", user, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	if evs := f.audit.Events(); len(evs) != 2 || !strings.Contains(evs[0].Reason, "forwarded") || evs[1].Outcome != audit.Success {
		t.Errorf("a write's events: %+v", evs)
	}
}

type downSink struct{}

func (downSink) Record(context.Context, audit.Event) error { return errors.New("audit store down") }

// TestUninspectedWhenProven: with no patient context, a clearance that
// allows every label and an answer that can hold only the authorised type,
// the request proves all the response could break, and the answer passes
// as from a plain reverse proxy (here, one with a duplicate member that
// inspection would refuse); anything less is inspected.
func TestUninspectedWhenProven(t *testing.T) {
	const odd = `{"resourceType":"Observation","id":"o1","status":"final","status":"amended"}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		if strings.HasSuffix(r.URL.Path, "/Observation") {
			fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":`+odd+`}],"entry":[]}`)
			return
		}
		fmt.Fprint(w, odd)
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	full := everyLabel()
	system := f.token("system/Observation.rs", full)
	for target, want := range map[string]int{
		"/Observation/o1":                                   200, // proven: passes untouched
		"/Observation/o1/_history":                          200,
		"/Observation?code=x":                               200,
		"/Observation?code=x&_include=Observation:subject":  502, // includes may bring other types
		"/Observation?code=x&_revinclude=Provenance:target": 502,
	} {
		if r := f.do("GET", target, system, ""); r.status != want {
			t.Errorf("full clearance, %s: %d, want %d: %s", target, r.status, want, r.raw)
		}
	}
	if r := f.do("GET", "/Observation/o1", system, ""); r.raw != odd {
		t.Errorf("an uninspected answer changed: %s", r.raw)
	}
	capped := f.token("system/Observation.rs", &consent.Clearance{MaxConfidentiality: consent.Restricted, Tags: full.Tags})
	patient := f.token("launch/patient patient/Observation.rs", full)
	for name, tok := range map[string]string{"capped clearance": capped, "patient context": patient, "no clearance": f.token("system/Observation.rs", nil)} {
		if r := f.do("GET", "/Observation/o1", tok, ""); r.status != 502 && r.status != 404 {
			t.Errorf("%s: %d, want the answer inspected (and refused)", name, r.status)
		}
	}
}

// TestStreamedTotal: a streamed Bundle's total goes out, with a clearance
// short of every label, only when nothing was withheld and the page holds
// the whole result, in either member order (TestLabelInference has the
// whole-body cases).
func TestStreamedTotal(t *testing.T) {
	f, _ := streamFixture(t)
	user := f.token("user/Observation.rs", nil)
	for target, want := range map[string]any{
		"/Observation":                 nil, // a next page, which may withhold
		"/Observation?sorted=1":        nil,
		"/Observation?last=1":          300.0,
		"/Observation?sorted=1&last=1": 300.0,
	} {
		r := f.do("GET", target, user, "")
		entries, _ := r.body["entry"].([]any)
		if r.status != 200 || len(entries) != 300 || r.body["total"] != want || r.header.Get("Content-Length") != "" {
			t.Errorf("%s: %d, %d entries, total %v, want %v", target, r.status, len(entries), r.body["total"], want)
		}
	}
	patient := f.token("launch/patient patient/Observation.rs", nil)
	if r := f.do("GET", "/Observation?last=1", patient, ""); r.status != 200 || r.body["total"] != nil {
		t.Errorf("a total counting another patient's entries: %d, %v", r.status, r.body["total"])
	}
	// The Bundle's meta goes on the same terms.
	for target, want := range map[string]bool{"/Observation?meta=1": false, "/Observation?meta=1&sorted=1": false,
		"/Observation?meta=1&last=1": true, "/Observation?meta=1&last=1&sorted=1": true} {
		r := f.do("GET", target, user, "")
		if r.status != 200 || strings.Contains(r.raw, `"HIV"`) != want || r.header.Get("Content-Length") != "" {
			t.Errorf("%s: %d, meta passed %v, want %v", target, r.status, !want, want)
		}
	}
	if r := f.do("GET", "/Observation?meta=1&last=1", patient, ""); r.status != 200 || strings.Contains(r.raw, `"HIV"`) {
		t.Errorf("a meta with the labels of another patient's entries: %d", r.status)
	}
}

// TestStreamedLabelsAudited: a streamed Bundle is audited before its
// entries are read; when labelled entries went out, a second event lists
// their labels.
func TestStreamedLabelsAudited(t *testing.T) {
	f, _ := streamFixture(t)
	psy := f.token("user/Observation.rs", &consent.Clearance{MaxConfidentiality: consent.Normal, Tags: []string{"PSY"}})
	before := len(f.audit.Events())
	if r := f.do("GET", "/Observation?psy=1", psy, ""); r.status != 200 || !strings.Contains(r.raw, "o299") {
		t.Fatalf("%d", r.status)
	}
	waitFor(t, func() bool { return len(f.audit.Events()) >= before+2 })
	evs := f.audit.Events()
	if got := evs[len(evs)-1].Labels; len(got) != 1 || got[0] != "http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY" || evs[len(evs)-2].Labels != nil {
		t.Errorf("labels audited: %v, then %v", evs[len(evs)-2].Labels, got)
	}
	// Unlabelled entries, nothing withheld: the second event names the
	// patients whose records went out, and lists no labels.
	before = len(f.audit.Events())
	f.do("GET", "/Observation?last=1", psy, "")
	waitFor(t, func() bool { return len(f.audit.Events()) >= before+2 })
	time.Sleep(50 * time.Millisecond)
	evs = f.audit.Events()[before:]
	if last := evs[len(evs)-1]; len(evs) != 2 || evs[0].Patient != "" || last.Labels != nil ||
		last.Patient != "p1" || !slices.Equal(last.Patients, []string{"p2"}) {
		t.Errorf("an unlabelled stream's events: %+v", evs)
	}
}
