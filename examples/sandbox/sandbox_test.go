package main

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/smart/client"
)

func startSandbox(t testing.TB) *Sandbox {
	t.Helper()
	return startSandboxWith(t, func(*Config) {})
}

// startSandboxWith is startSandbox with the Config changed first.
func startSandboxWith(t testing.TB, change func(*Config)) *Sandbox {
	t.Helper()
	began := time.Now()
	cfg := Config{Addr: "127.0.0.1:0", Data: t.TempDir(), DemoPassword: "pw", Patients: 50}
	change(&cfg)
	sb, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sandbox ready in %v", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() { _ = sb.Close() })
	return sb
}

// browser follows the sandbox's pages the way a person would, using only
// the documented form conventions.
type browser struct {
	t    *testing.T
	sb   *Sandbox
	hc   *http.Client
	user string
	stop string // a URL prefix at which following stops
}

func newBrowser(t *testing.T, sb *Sandbox, user string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, sb: sb, user: user,
		hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var (
	fieldRe = regexp.MustCompile(`name="(req|csrf|return)" value="([^"]*)"`)
	boxRe   = regexp.MustCompile(`name="(scope_\d+)"`)
)

// visit goes to u and follows redirects, logins, pickers and consent pages
// until a page that is none of them (or the stop prefix); it returns the
// final URL and body.
func (b *browser) visit(u string) (string, string) {
	b.t.Helper()
	method, form := http.MethodGet, url.Values(nil)
	for range 20 {
		if b.stop != "" && strings.HasPrefix(u, b.stop) {
			return u, ""
		}
		var resp *http.Response
		var err error
		if method == http.MethodPost {
			resp, err = b.hc.PostForm(u, form)
		} else {
			resp, err = b.hc.Get(u)
		}
		if err != nil {
			b.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(body)
		method, form = http.MethodGet, nil
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			next, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
			u = next.String()
		case strings.Contains(page, `name="password"`):
			m := fieldRe.FindStringSubmatch(page)
			method, u = http.MethodPost, b.sb.URL+"/login"
			form = url.Values{"username": {b.user}, "password": {"pw"}, "return": {html.UnescapeString(m[2])}}
		case strings.Contains(page, `name="decision"`):
			method, u, form = http.MethodPost, b.sb.Issuer+"/authorize/consent", url.Values{"decision": {"approve"}}
			for _, m := range fieldRe.FindAllStringSubmatch(page, -1) {
				form.Set(m[1], html.UnescapeString(m[2]))
			}
			for _, m := range boxRe.FindAllStringSubmatch(page, -1) {
				form.Set(m[1], "on")
			}
		default:
			if resp.StatusCode != 200 {
				b.t.Fatalf("%s answered %d: %s", u, resp.StatusCode, page)
			}
			return u, page
		}
	}
	b.t.Fatal("too many steps")
	return "", ""
}

func TestStandaloneLaunchOfTheExampleApp(t *testing.T) {
	sb := startSandbox(t)
	b := newBrowser(t, sb, "patient")
	final, page := b.visit(sb.URL + "/app/launch?iss=" + url.QueryEscape(sb.FHIRBase))
	if !strings.HasSuffix(final, "/app/") || !strings.Contains(page, `id="patient-name"`) || !strings.Contains(page, "(pt-001)") {
		t.Fatalf("the app did not show the patient (%s):\n%s", final, page)
	}
	if !strings.Contains(page, "<td>") || strings.Contains(page, "obs-error") {
		t.Fatalf("the app could not read observations through the proxy:\n%s", page)
	}
}

func TestEHRLaunchOfTheExampleApp(t *testing.T) {
	sb := startSandbox(t)
	b := newBrowser(t, sb, "clinician")
	launchURL := sb.URL + "/ehr/launch?" + url.Values{"client_id": {ExampleAppID}, "launch_uri": {sb.URL + "/app/launch"}, "patient": {"pt-unicode"}}.Encode()
	_, page := b.visit(launchURL)
	if !strings.Contains(page, "Zoë Ødegård-Nguyễn") {
		t.Fatalf("the app did not show the launched patient:\n%s", page)
	}
	// Sensitive records stay withheld from the app.
	_, page = b.visit(sb.URL + "/ehr/launch?" + url.Values{"client_id": {ExampleAppID}, "patient": {"pt-sensitive"}}.Encode())
	if !strings.Contains(page, "Casey Marlow") || strings.Contains(page, "HIV") {
		t.Fatalf("the sensitive chart:\n%s", page)
	}
	// The EHR shell frames the app through the same launch.
	_, chart := b.visit(sb.URL + "/ehr/patient/pt-002?app=" + ExampleAppID)
	if !strings.Contains(chart, `<iframe id="app-frame"`) || !strings.Contains(chart, "/ehr/launch?") {
		t.Fatalf("chart:\n%s", chart)
	}
}

func TestLaunchRefreshRevokeAndAudit(t *testing.T) {
	sb := startSandbox(t)
	ctx := context.Background()
	s, _ := standaloneLaunch(t, sb, "launch/patient", "openid", "fhirUser", "offline_access", "patient/Observation.rs", "patient/Patient.r")
	if s.Context.Patient != "pt-001" || s.IDToken == nil || s.Token.RefreshToken == "" {
		t.Fatalf("session %+v", s.Context)
	}
	hc := s.Client(ctx)
	get := func(path string) int {
		resp, err := hc.Get(sb.FHIRBase + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/Observation?patient=pt-001"); c != 200 {
		t.Fatalf("search: %d", c)
	}
	if c := get("/Observation?patient=pt-002"); c != 403 {
		t.Fatalf("another patient's search: %d", c)
	}
	first := s.Token.RefreshToken
	s.Token.Expiry = time.Now().Add(5 * time.Second)
	if c := get("/Patient/pt-001"); c != 200 || s.Token.RefreshToken == first {
		t.Fatalf("refresh: %d rotated=%v", c, s.Token.RefreshToken != first)
	}
	grants, _ := sb.Consent.ConnectedApps(ctx, "", "patient")
	if len(grants) != 1 {
		t.Fatalf("connected apps: %+v", grants)
	}
	if err := sb.Consent.Revoke(ctx, "", grants[0].ID, "patient", "test"); err != nil {
		t.Fatal(err)
	}
	if c := get("/Patient/pt-001"); c == 200 {
		t.Fatal("the app still reads after the consent was revoked")
	}
	want := []audit.Type{audit.ConsentGranted, audit.CodeIssued, audit.TokenIssued, audit.TokenRefreshed, audit.ResourceAllowed,
		audit.ResourceRefused, audit.ConsentRevoked, audit.GrantRevoked}
	deadline := time.Now().Add(3 * time.Second)
	for _, ty := range want {
		for {
			p, err := sb.AuditLog.Query(ctx, audit.Query{Types: []audit.Type{ty}, Limit: 1})
			if err == nil && len(p.Records) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s event in the audit log", ty)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	rs, _ := sb.AuditLog.Records(ctx, "", 0, 0)
	if err := audit.VerifyChain(rs, "", 0); err != nil || len(rs) < 10 {
		t.Fatalf("audit chain of %d records: %v", len(rs), err)
	}
}

// TestOnlineAccessEndsAtSignOut: an app granted online_access refreshes
// while the user stays signed in to the sandbox, and not after sign-out.
func TestOnlineAccessEndsAtSignOut(t *testing.T) {
	sb := startSandbox(t)
	ctx := context.Background()
	s, b := standaloneLaunch(t, sb, "launch/patient", "online_access", "patient/Patient.r")
	if s.Token.RefreshToken == "" {
		t.Fatal("no refresh token for online_access")
	}
	hc := s.Client(ctx)
	get := func() int {
		s.Token.Expiry = time.Now().Add(5 * time.Second) // due for refresh
		resp, err := hc.Get(sb.FHIRBase + "/Patient/pt-001")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(); c != 200 {
		t.Fatalf("refresh while signed in: %d", c)
	}
	// A GET (a link, or another site's navigation) signs no one out.
	if resp, err := b.hc.Get(sb.URL + "/logout"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-out page: %v", err)
	} else {
		resp.Body.Close()
	}
	if c := get(); c != 200 {
		t.Fatalf("refresh after only visiting the sign-out page: %d", c)
	}
	resp, err := b.hc.PostForm(sb.URL+"/logout", nil) // not visit, which would sign in again
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %v", err)
	}
	resp.Body.Close()
	if c := get(); c == 200 {
		t.Fatal("online_access refreshed after the user signed out")
	}
}

// standaloneLaunch runs the example app's standalone launch with scopes
// as the patient, through the browser it returns (signed in), and returns
// the app's session.
func standaloneLaunch(t *testing.T, sb *Sandbox, scopes ...string) (*client.Session, *browser) {
	t.Helper()
	app := &client.Config{ClientID: ExampleAppID, RedirectURL: sb.URL + "/app/callback", Issuers: []string{sb.FHIRBase},
		Scopes: scopes, States: &client.MemoryStates{}}
	authURL, err := app.Begin(httptest.NewRecorder(), httptest.NewRequest("GET", "/app/launch", nil), sb.FHIRBase, "")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, sb, "patient")
	b.stop = sb.URL + "/app/callback"
	callback, _ := b.visit(authURL)
	s, err := app.Callback(httptest.NewRecorder(), httptest.NewRequest("GET", callback, nil))
	if err != nil {
		t.Fatalf("callback %s: %v", callback, err)
	}
	return s, b
}

func TestLoginConventions(t *testing.T) {
	sb := startSandbox(t)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := hc.PostForm(sb.URL+"/login", url.Values{"username": {"clinician"}, "password": {"wrong"}, "return": {"/ehr/"}})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), `name="password"`) || !strings.Contains(string(body), "login-error") {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	resp, _ = hc.PostForm(sb.URL+"/login", url.Values{"username": {"clinician"}, "password": {"pw"}, "return": {"https://evil.example/"}})
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/ehr/" {
		t.Fatalf("open redirect after login: %q", loc)
	}
	// Dynamic registration is open in the sandbox and advertised in discovery.
	resp, _ = http.Get(sb.FHIRBase + "/.well-known/smart-configuration")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"registration_endpoint":"`+sb.URL+`/dev/register"`) {
		t.Fatalf("discovery lacks the registration endpoint: %s", body)
	}
	reg := `{"client_name":"My app","redirect_uris":["http://127.0.0.1:9999/cb"],"token_endpoint_auth_method":"none","scope":"launch/patient patient/*.rs"}`
	resp, _ = http.Post(sb.URL+"/dev/register", "application/json", strings.NewReader(reg))
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.Contains(string(body), `"lifecycle_state":"sandbox_approved"`) {
		t.Fatalf("registration: %d %s", resp.StatusCode, body)
	}
}

// exampleBackend is the sandbox's example backend service, with its key
// from the data directory, asking for scopes.
func exampleBackend(t *testing.T, sb *Sandbox, scopes ...string) *client.Backend {
	t.Helper()
	key, err := loadBackendKey(sb.cfg.Data + "/backend-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return &client.Backend{ClientID: BackendID, FHIRBase: sb.FHIRBase, Key: key, KeyID: BackendKeyID, Scopes: scopes}
}

func TestBackendJobAgainstTheSandbox(t *testing.T) {
	sb := startSandbox(t)
	job := exampleBackend(t, sb, "system/Patient.rs", "system/Condition.rs")
	tok, err := job.Token(context.Background())
	if err != nil || tok.Extra("scope") != "system/Patient.rs" {
		t.Fatalf("token %v: %v (system/Condition.rs is not pre-authorised)", tok, err)
	}
	resp, err := job.Client(context.Background()).Get(sb.FHIRBase + "/Condition?_id=pt-sensitive-sud")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("a backend read beyond its scopes: %d", resp.StatusCode)
	}
	resp, _ = job.Client(context.Background()).Get(sb.FHIRBase + "/Patient?_count=5")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"Patient"`) {
		t.Fatalf("backend search: %d %s", resp.StatusCode, body)
	}
}
