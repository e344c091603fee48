package smart_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/launch"
)

// TestRedirectLookAlikes: an unregistered redirect URI gets an error page,
// never a redirect (SECURITY-BASELINE §2).
func TestRedirectLookAlikes(t *testing.T) {
	e := newEnv(t)
	for _, r := range []string{
		"", "https://app.example/cb/", "https://app.example/cb2", "https://app.example/c", "https://APP.example/cb",
		"https://app.example/CB", "https://app.example:443/cb", "http://app.example/cb", "https://user@app.example/cb",
		"https://app.example/cb#x", "https://app.example/cb?x=1", "https://app.example/%63b", "https://app.example.evil/cb",
		"https://evil.example/?https://app.example/cb", "http://127.0.0.1:8080/native/cb/", "http://localhost:8080/native/cb",
		"http://127.0.0.1:9/native/cbx", "http://[::1]:8080/native/cb",
	} {
		params, _ := e.authzParams("launch/patient patient/*.rs")
		params.Set("redirect_uri", r)
		resp := e.get(e.issuer+"/authorize?"+params.Encode(), "")
		b := body(resp)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(b, "redirect_uri") {
			t.Errorf("redirect_uri %q: status %d, Location %q", r, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if n := e.events(audit.AuthorizeRefused); n != 18 {
		t.Errorf("%d refusals audited, want 18", n)
	}
	// The loopback registration may vary its port (RFC 8252 §7.3).
	params, _ := e.authzParams("launch/patient patient/*.rs")
	params.Set("redirect_uri", "http://127.0.0.1:51234/native/cb")
	if resp := e.get(e.issuer+"/authorize?"+params.Encode(), ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("loopback port variation refused: %d", resp.StatusCode)
	}
}

func TestUnknownClient(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"", "nobody"} {
		params, _ := e.authzParams("openid")
		params.Set("client_id", id)
		resp := e.get(e.issuer+"/authorize?"+params.Encode(), "")
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("client %q: %d %q", id, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// TestAuthorizeErrors: once the client and redirect are trusted, errors go
// back to the app with state and iss (RFC 6749 §4.1.2.1, RFC 9207).
func TestAuthorizeErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		mutate func(url.Values)
		code   string
	}{
		{"token response type", func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
		{"hybrid response type", func(v url.Values) { v.Set("response_type", "code id_token") }, "unsupported_response_type"},
		{"no state", func(v url.Values) { v.Del("state") }, "invalid_request"},
		{"no PKCE", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"no PKCE method", func(v url.Values) { v.Del("code_challenge_method") }, "invalid_request"},
		{"short challenge", func(v url.Values) { v.Set("code_challenge", "abc") }, "invalid_request"},
		{"no aud", func(v url.Values) { v.Del("aud") }, "invalid_request"},
		{"foreign aud", func(v url.Values) { v.Set("aud", "https://evil.example/fhir") }, "invalid_request"},
		{"aud prefix", func(v url.Values) { v.Set("aud", e.fhir+"x") }, "invalid_request"},
		{"aud sub-path", func(v url.Values) { v.Set("aud", e.fhir+"/Patient") }, "invalid_request"},
		{"aud of another tenant", func(v url.Values) { v.Set("aud", e.ts.URL+"/t2/fhir") }, "invalid_request"},
		{"aud and resource differ", func(v url.Values) { v.Set("resource", "https://evil.example/fhir") }, "invalid_request"},
		{"no scope", func(v url.Values) { v.Del("scope") }, "invalid_request"},
		{"nothing allowed", func(v url.Values) { v.Set("scope", "system/*.cruds") }, "invalid_scope"},
		{"launch scope without launch", func(v url.Values) { v.Set("scope", "launch patient/*.rs") }, "invalid_request"},
		{"launch without launch scope", func(v url.Values) { v.Set("launch", "x") }, "invalid_request"},
		{"unknown launch", func(v url.Values) { v.Set("launch", strings.Repeat("A", 43)); v.Set("scope", "launch patient/*.rs") }, "invalid_request"},
		// Refused, not ignored: the client would get an answer to a request it did not make.
		{"request object", func(v url.Values) { v.Set("request", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6InVzZXIvKi5jcnVkcyJ9.") }, "request_not_supported"},
		{"empty request object", func(v url.Values) { v.Set("request", "") }, "request_not_supported"},
		{"request_uri", func(v url.Values) { v.Set("request_uri", "urn:ietf:params:oauth:request_uri:abc") }, "request_uri_not_supported"},
		{"fragment response mode", func(v url.Values) { v.Set("response_mode", "fragment") }, "invalid_request"},
		{"form_post response mode", func(v url.Values) { v.Set("response_mode", "form_post") }, "invalid_request"},
		{"JARM response mode", func(v url.Values) { v.Set("response_mode", "query.jwt") }, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params, _ := e.authzParams("launch/patient patient/*.rs")
			tc.mutate(params)
			q := e.redirectParams(e.get(e.issuer+"/authorize?"+params.Encode(), ""), "https://app.example/cb")
			if q.Get("error") != tc.code || q.Get("iss") != e.issuer || q.Get("state") != params.Get("state") || q.Get("code") != "" {
				t.Fatalf("redirect %v, want error %s with state and iss", q, tc.code)
			}
		})
	}
}

// TestQueryResponseMode: asking for the one response mode the server uses
// is not an error.
func TestQueryResponseMode(t *testing.T) {
	e := newEnv(t)
	params, _ := e.authzParams("launch/patient patient/*.rs")
	params.Set("response_mode", "query")
	if p := parsePage(e.start(params, "patient")); p.status != http.StatusOK || p.req == "" {
		t.Fatalf("response_mode=query: %d %.300s", p.status, p.body)
	}
}

func TestDuplicateParameter(t *testing.T) {
	e := newEnv(t)
	params, _ := e.authzParams("launch/patient patient/*.rs")
	resp := e.get(e.issuer+"/authorize?"+params.Encode()+"&scope=user/*.cruds", "")
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("duplicated scope: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestStateEchoedExactly(t *testing.T) {
	e := newEnv(t)
	params, _ := e.authzParams("launch/patient patient/*.rs")
	state := `a b+c&d=é<script>"`
	params.Set("state", state)
	p := parsePage(e.start(params, "patient"))
	q := e.redirectParams(e.approve(p, "patient"), "https://app.example/cb")
	if q.Get("state") != state {
		t.Fatalf("state %q, want %q", q.Get("state"), state)
	}
}

func TestAuthorizePost(t *testing.T) {
	e := newEnv(t)
	params, _ := e.authzParams("launch/patient patient/*.rs")
	resp := e.post(e.issuer+"/authorize", params, "")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/authorize/continue?req=") {
		t.Fatalf("POST authorize: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestInvalidScopesDropped(t *testing.T) {
	e := newEnv(t)
	params, verifier := e.authzParams("launch/patient patient/Observation.sr patient/Patient.rs")
	p := parsePage(e.start(params, "patient"))
	q := e.redirectParams(e.approve(p, "patient"), "https://app.example/cb")
	_, m := e.exchange(q.Get("code"), verifier)
	if m["scope"] != "launch/patient patient/Patient.rs" {
		t.Fatalf("granted %v", m["scope"])
	}
	ev := e.audit.Of(audit.CodeIssued)
	if len(ev) != 1 || !strings.Contains(ev[0].Reason, "patient/Observation.sr") {
		t.Fatalf("the dropped scope is not in the audit trail: %+v", ev)
	}
}

func TestEHRLaunch(t *testing.T) {
	e := newEnv(t)
	yes := true
	mint := func(client, user string) launch.Launch {
		l, err := e.launches.Mint(context.Background(), launch.Request{ClientID: client, UserID: user, FHIRBase: e.fhir,
			Context: launch.Context{Patient: "123", Encounter: "e1", NeedPatientBanner: &yes, Intent: "summary"}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	run := func(l launch.Launch, user string) url.Values {
		params, verifier := e.authzParams("launch patient/*.rs openid fhirUser")
		params.Set("launch", l.ID)
		resp := e.start(params, user)
		if resp.StatusCode == http.StatusSeeOther {
			return e.redirectParams(resp, "https://app.example/cb")
		}
		p := parsePage(resp)
		q := e.redirectParams(e.approve(p, user), "https://app.example/cb")
		_, m := e.exchange(q.Get("code"), verifier)
		out := url.Values{}
		for k, v := range m {
			if s, ok := v.(string); ok {
				out.Set(k, s)
			}
		}
		if m["need_patient_banner"] != true {
			t.Errorf("need_patient_banner = %v", m["need_patient_banner"])
		}
		return out
	}
	l := mint("app", "dr-lee")
	if m := run(l, "dr-lee"); m.Get("patient") != "123" || m.Get("encounter") != "e1" || m.Get("intent") != "summary" {
		t.Fatalf("EHR launch context: %v", m)
	}
	if q := run(l, "dr-lee"); q.Get("error") != "invalid_request" {
		t.Errorf("launch reused: %v", q)
	}
	if q := run(mint("other", "dr-lee"), "dr-lee"); q.Get("error") != "invalid_request" {
		t.Errorf("launch of another client: %v", q)
	}
	if q := run(mint("app", "dr-kim"), "dr-lee"); q.Get("error") != "access_denied" {
		t.Errorf("launch of another user: %v", q)
	}
	expired := mint("app", "dr-lee")
	e.clock.Add(launch.DefaultTTL)
	if q := run(expired, "dr-lee"); q.Get("error") != "invalid_request" {
		t.Errorf("expired launch: %v", q)
	}
}

func TestConsentDoubleSubmitAndCSRF(t *testing.T) {
	e := newEnv(t)
	params, _ := e.authzParams("launch/patient patient/*.rs")
	p := parsePage(e.start(params, "patient"))
	bad := p
	bad.csrf = strings.Repeat("x", len(p.csrf))
	if resp := e.approve(bad, "patient"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong csrf: %d", resp.StatusCode)
	}
	p2 := parsePage(e.start(params, "patient"))
	if resp := e.approve(p2, "dr-lee"); resp.StatusCode == http.StatusSeeOther && strings.Contains(resp.Header.Get("Location"), "code=") {
		t.Fatal("another user's session approved the consent")
	}
	p3 := parsePage(e.start(params, "patient"))
	first := e.approve(p3, "patient")
	if first.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d", first.StatusCode)
	}
	second := e.approve(p3, "patient")
	if second.StatusCode == http.StatusSeeOther {
		t.Fatalf("replayed consent redirected to %s", second.Header.Get("Location"))
	}
	if n := e.events(audit.CodeIssued); n != 1 {
		t.Fatalf("%d codes issued, want 1", n)
	}
}

func TestPageSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	params, _ := e.authzParams("launch/patient patient/*.rs")
	p := parsePage(e.start(params, "patient"))
	csp := p.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self' https://app.example", "style-src 'self'", "script-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	// The only script is the server's own, by address, with no body.
	scripts := regexp.MustCompile(`<script[^>]*>[^<]*</script>`).FindAllString(p.body, -1)
	if strings.Contains(csp, "unsafe-inline") || strings.Count(p.body, "<script") != 1 || len(scripts) != 1 ||
		scripts[0] != `<script src="`+e.issuer+`/assets/smart.js"></script>` || strings.Contains(p.body, "style=") {
		t.Errorf("inline script or style on the consent page: %q", scripts)
	}
	js := e.get(e.issuer+"/assets/smart.js", "")
	if src := body(js); js.StatusCode != http.StatusOK || js.Header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
		js.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(src, `addEventListener("submit"`) {
		t.Errorf("smart.js: %d %v", js.StatusCode, js.Header)
	}
	if p.header.Get("X-Frame-Options") != "DENY" || p.header.Get("Cache-Control") != "no-store" || p.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", p.header)
	}
	if !strings.Contains(p.body, "For this visit only: about 15 minutes.") {
		t.Error("the consent page does not say how long access lasts")
	}
	// Framed by the EHR on the same origin (the sandbox): both headers say
	// so; framed by others, only frame-ancestors can name them.
	for _, c := range []struct {
		ancestors []string
		xfo, csp  string
	}{{[]string{"'self'"}, "SAMEORIGIN", "frame-ancestors 'self'"}, {[]string{"https://ehr.example"}, "", "frame-ancestors https://ehr.example"}} {
		e.srv.FrameAncestors = c.ancestors
		params, _ := e.authzParams("launch/patient patient/*.rs")
		p := parsePage(e.start(params, "patient"))
		if p.header.Get("X-Frame-Options") != c.xfo || !strings.Contains(p.header.Get("Content-Security-Policy"), c.csp) {
			t.Errorf("FrameAncestors %v: X-Frame-Options %q, CSP %q", c.ancestors, p.header.Get("X-Frame-Options"), p.header.Get("Content-Security-Policy"))
		}
	}
	if !strings.Contains(p.body, "Growth &lt;Chart&gt;") || strings.Contains(p.body, "Growth <Chart>") {
		t.Error("client metadata is not HTML-escaped")
	}
}

func TestLoginRequired(t *testing.T) {
	e := newEnv(t)
	params, _ := e.authzParams("launch/patient patient/*.rs")
	if resp := e.start(params, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without login: %d, want the Authenticator's own response", resp.StatusCode)
	}
}
