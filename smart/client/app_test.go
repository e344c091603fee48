package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/client"
	"github.com/smartkit/smartkit/smart/smarttest"
)

// app is a minimal SMART web app under test: /launch and /callback, with
// the session it got kept for inspection.
type app struct {
	t       *testing.T
	ehr     *smarttest.Server
	cfg     *client.Config
	srv     *httptest.Server
	browser *http.Client
	session *client.Session
	err     error
}

func newApp(t *testing.T, ehr *smarttest.Server, scopes ...string) *app {
	t.Helper()
	a := &app{t: t, ehr: ehr}
	mux := http.NewServeMux()
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	a.cfg = &client.Config{
		ClientID: "growth", RedirectURL: a.srv.URL + "/callback", Scopes: scopes,
		Issuers: []string{ehr.FHIRBase}, HTTPClient: ehr.Client(),
		States: &client.CookieStore{Key: make([]byte, 32), Insecure: true},
	}
	mux.HandleFunc("/launch", a.cfg.HandleLaunch)
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		a.session, a.err = a.cfg.Callback(w, r)
		if a.err != nil {
			http.Error(w, "launch failed", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther) // drop the code from the URL
	})
	if err := ehr.Register(smarttest.PublicClient("growth", a.cfg.RedirectURL)); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	a.browser = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return a
}

// launch runs a launch from the app's launch URL (EHR launch when it
// carries a launch id) through the fake EHR to the app's callback.
func (a *app) launch(launchURL string) (*client.Session, error) {
	a.t.Helper()
	resp, err := a.browser.Get(launchURL)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, errors.New("launch answered " + resp.Status)
	}
	cb, err := a.ehr.Authorize(resp.Header.Get("Location"))
	if err != nil {
		a.t.Fatal(err)
	}
	a.session, a.err = nil, nil
	resp, err = a.browser.Get(cb)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return a.session, a.err
}

func (a *app) ehrLaunch() (*client.Session, error) {
	u, err := a.ehr.LaunchURL("growth", a.srv.URL+"/launch")
	if err != nil {
		a.t.Fatal(err)
	}
	return a.launch(u)
}

func (a *app) standalone() (*client.Session, error) {
	return a.launch(a.srv.URL + "/launch?iss=" + url.QueryEscape(a.ehr.FHIRBase))
}

func getJSON(t *testing.T, hc *http.Client, u string) (int, map[string]any) {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestEHRLaunch(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{Encounter: "enc-7"})
	a := newApp(t, ehr, "openid", "fhirUser", "patient/*.rs", "offline_access")
	s, err := a.ehrLaunch()
	if err != nil {
		t.Fatal(err)
	}
	if s.Context.Patient != "smart-1" || s.Context.Encounter != "enc-7" || s.FHIRUserRef() != "Practitioner/dr-smart" || len(s.Missing) != 0 {
		t.Fatalf("session %+v missing=%v", s.Context, s.Missing)
	}
	if !s.Granted.Has("launch") || s.IDToken == nil || s.IDToken.Subject != "dr-smart" {
		t.Fatalf("granted %q id_token %+v", s.Granted, s.IDToken)
	}
	hc := s.Client(context.Background())
	if code, m := getJSON(t, hc, ehr.FHIRBase+"/Patient/smart-1"); code != 200 || m["id"] != "smart-1" {
		t.Fatalf("FHIR read: %d %v", code, m)
	}
	if code, _ := getJSON(t, hc, ehr.FHIRBase+"/Patient/smart-2"); code != 404 {
		t.Fatalf("another patient: %d, want 404", code)
	}
}

func TestStandaloneLaunch(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{Patient: "smart-3"})
	a := newApp(t, ehr, "launch/patient", "openid", "fhirUser", "patient/Observation.rs")
	s, err := a.standalone()
	if err != nil {
		t.Fatal(err)
	}
	if s.Context.Patient != "smart-3" || s.Granted.Has("launch") {
		t.Fatalf("standalone session %+v granted %q", s.Context, s.Granted)
	}
	code, m := getJSON(t, s.Client(context.Background()), ehr.FHIRBase+"/Observation?patient=smart-3")
	if code != 200 || m["total"].(float64) != 1 {
		t.Fatalf("search: %d %v", code, m)
	}
}

func TestRefreshAndRetry(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	a := newApp(t, ehr, "launch/patient", "offline_access", "patient/*.rs")
	s, err := a.standalone()
	if err != nil {
		t.Fatal(err)
	}
	first := *s.Token
	// Expiry close: the client refreshes before use, and the refresh token rotates.
	s.Token.Expiry = time.Now().Add(10 * time.Second)
	hc := s.Client(context.Background())
	if code, _ := getJSON(t, hc, ehr.FHIRBase+"/Patient/smart-1"); code != 200 {
		t.Fatalf("after refresh: %d", code)
	}
	if s.Token.AccessToken == first.AccessToken || s.Token.RefreshToken == first.RefreshToken || s.Token.RefreshToken == "" {
		t.Fatal("the token was not refreshed and rotated")
	}
	// The server revokes the access token: a 401 triggers one refresh and a retry.
	resp, err := http.PostForm(ehr.Issuer+"/revoke", url.Values{"token": {s.Token.AccessToken}, "client_id": {"growth"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", err, resp)
	}
	revoked := s.Token.AccessToken
	if code, _ := getJSON(t, hc, ehr.FHIRBase+"/Patient/smart-1"); code != 200 || s.Token.AccessToken == revoked {
		t.Fatalf("retry after 401: %d", code)
	}
}

func TestQuirkyEHRs(t *testing.T) {
	t.Run("absolute fhirUser", func(t *testing.T) {
		ehr := smarttest.NewServer(t, smarttest.Config{Quirks: smarttest.Quirks{AbsoluteFHIRUser: true}})
		s, err := newApp(t, ehr, "openid", "fhirUser", "launch/patient", "patient/*.rs").standalone()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s.FHIRUser, "http") || s.FHIRUserRef() != "Practitioner/dr-smart" {
			t.Fatalf("fhirUser %q ref %q", s.FHIRUser, s.FHIRUserRef())
		}
	})
	t.Run("trimmed scopes", func(t *testing.T) {
		ehr := smarttest.NewServer(t, smarttest.Config{Quirks: smarttest.Quirks{TrimScopes: []string{"patient/Observation.rs"}}})
		s, err := newApp(t, ehr, "launch/patient", "patient/Patient.rs", "patient/Observation.rs").standalone()
		if err != nil {
			t.Fatal(err)
		}
		if s.Denied().String() != "patient/Observation.rs" {
			t.Fatalf("denied %q", s.Denied())
		}
	})
	t.Run("v1 scopes for a v2 request", func(t *testing.T) {
		ehr := smarttest.NewServer(t, smarttest.Config{Quirks: smarttest.Quirks{V1Scopes: true}})
		s, err := newApp(t, ehr, "launch/patient", "patient/Patient.rs").standalone()
		if err != nil {
			t.Fatal(err)
		}
		if !s.Granted.Has("patient/Patient.read") || s.Denied().Len() != 0 {
			t.Fatalf("granted %q denied %q", s.Granted, s.Denied())
		}
	})
	t.Run("no patient", func(t *testing.T) {
		ehr := smarttest.NewServer(t, smarttest.Config{Quirks: smarttest.Quirks{NoPatient: true}})
		s, err := newApp(t, ehr, "launch/patient", "patient/*.rs", "openid").standalone()
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Missing) != 1 || s.Missing[0] != "patient" || s.Context.Patient != "" {
			t.Fatalf("missing %v context %+v", s.Missing, s.Context)
		}
	})
	t.Run("failing token endpoint", func(t *testing.T) {
		ehr := smarttest.NewServer(t, smarttest.Config{Quirks: smarttest.Quirks{TokenFailure: 503}})
		if _, err := newApp(t, ehr, "launch/patient", "patient/*.rs").standalone(); err == nil {
			t.Fatal("a failing token endpoint produced a session")
		}
	})
	t.Run("slow token endpoint", func(t *testing.T) {
		ehr := smarttest.NewServer(t, smarttest.Config{Quirks: smarttest.Quirks{TokenDelay: time.Second}})
		a := newApp(t, ehr, "launch/patient", "patient/*.rs")
		a.cfg.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond}
		if _, err := a.standalone(); err == nil {
			t.Fatal("a token endpoint slower than the client's timeout produced a session")
		}
	})
}

func TestCallbackRefusals(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	a := newApp(t, ehr, "launch/patient", "patient/*.rs")
	resp, _ := a.browser.Get(a.srv.URL + "/launch?iss=" + url.QueryEscape(ehr.FHIRBase))
	cb, err := ehr.Authorize(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	call := func(u string) error {
		a.session, a.err = nil, nil
		r, err := a.browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return a.err
	}
	q := smarttest.URLValues(cb)
	mixed := strings.Replace(cb, "iss="+url.QueryEscape(q.Get("iss")), "iss="+url.QueryEscape("https://evil.example"), 1)
	if err := call(mixed); !errors.Is(err, client.ErrMixUp) {
		t.Fatalf("mix-up: %v", err)
	}
	// The state was consumed by the refused attempt: the genuine callback is now refused too.
	if err := call(cb); !errors.Is(err, client.ErrState) {
		t.Fatalf("state reuse: %v", err)
	}
	if err := call(a.srv.URL + "/callback?state=forged&code=x"); !errors.Is(err, client.ErrState) {
		t.Fatalf("forged state: %v", err)
	}
	// A launch from an EHR the app does not trust never leaves the app.
	resp, _ = a.browser.Get(a.srv.URL + "/launch?iss=" + url.QueryEscape("https://evil.example/fhir") + "&launch=x")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("untrusted iss: %d", resp.StatusCode)
	}
}

func TestSeveralLaunchesAtOnce(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	a := newApp(t, ehr, "launch/patient", "patient/*.rs")
	var authURLs []string
	for range 3 {
		resp, _ := a.browser.Get(a.srv.URL + "/launch?iss=" + url.QueryEscape(ehr.FHIRBase))
		authURLs = append(authURLs, resp.Header.Get("Location"))
	}
	for i := len(authURLs) - 1; i >= 0; i-- {
		cb, err := ehr.Authorize(authURLs[i])
		if err != nil {
			t.Fatal(err)
		}
		a.session, a.err = nil, nil
		r, _ := a.browser.Get(cb)
		r.Body.Close()
		if a.err != nil || a.session == nil {
			t.Fatalf("launch %d: %v", i, a.err)
		}
	}
}

// nightly registers a backend client "nightly" with the EHR (client
// credentials, private_key_jwt with an ES384 key "job-1", system/*.rs) and
// returns its key.
func nightly(t *testing.T, ehr *smarttest.Server) *ecdsa.PrivateKey {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "job-1", Algorithm: "ES384"}}})
	if err := ehr.Register(smart.Client{ID: "nightly", TokenEndpointAuthMethod: smart.AuthPrivateKeyJWT, JWKS: jwks,
		GrantTypes: []string{smart.GrantClientCredentials}, Scope: "system/*.rs"}); err != nil {
		t.Fatal(err)
	}
	return key
}

func TestBackend(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	key := nightly(t, ehr)
	b := &client.Backend{ClientID: "nightly", FHIRBase: ehr.FHIRBase, Key: key, KeyID: "job-1",
		Scopes: []string{"system/Patient.rs"}, HTTPClient: ehr.Client()}
	ctx := context.Background()
	t1, err := b.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t2, _ := b.Token(ctx)
	if t1.AccessToken != t2.AccessToken || t1.Extra("scope") != "system/Patient.rs" {
		t.Fatalf("token not cached or wrong scope: %v", t1.Extra("scope"))
	}
	if code, m := getJSON(t, b.Client(ctx), ehr.FHIRBase+"/Patient"); code != 200 || m["total"].(float64) != 3 {
		t.Fatalf("backend search: %d %v", code, m)
	}
	bad := &client.Backend{ClientID: "nightly", FHIRBase: ehr.FHIRBase, Key: key, KeyID: "other-kid",
		Scopes: []string{"system/Patient.rs"}, HTTPClient: ehr.Client()}
	if _, err := bad.Token(ctx); err == nil {
		t.Fatal("an assertion with an unregistered kid got a token")
	}
}

func TestDiscoveryRefusals(t *testing.T) {
	for name, doc := range map[string]string{
		"no S256":      `{"authorization_endpoint":"https://a/authorize","token_endpoint":"https://a/token","code_challenge_methods_supported":["plain"]}`,
		"relative":     `{"authorization_endpoint":"/authorize","token_endpoint":"/token","code_challenge_methods_supported":["S256"]}`,
		"not JSON":     `<html>`,
		"no endpoints": `{"code_challenge_methods_supported":["S256"]}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(doc)) }))
		c := &client.Config{ClientID: "x", Issuers: []string{srv.URL}}
		if _, err := c.Discover(context.Background(), srv.URL); !errors.Is(err, client.ErrDiscovery) {
			t.Errorf("%s: %v", name, err)
		}
		srv.Close()
	}
	c := &client.Config{ClientID: "x", Issuers: []string{"https://ehr.example/fhir"}}
	if _, err := c.Discover(context.Background(), "https://evil.example/fhir"); !errors.Is(err, client.ErrIssuer) {
		t.Errorf("untrusted: %v", err)
	}
}

func TestWebMessaging(t *testing.T) {
	wm := client.WebMessaging{Handle: "h1", Origin: "https://ehr.example"}
	if wm.Accept("https://ehr.example", client.Envelope{MessagingHandle: "h1", MessageID: "1"}) != nil {
		t.Fatal("a good message was refused")
	}
	if wm.Accept("https://evil.example", client.Envelope{MessagingHandle: "h1"}) == nil ||
		wm.Accept("https://ehr.example", client.Envelope{MessagingHandle: "h2"}) == nil {
		t.Fatal("a message from another origin or with another handle was accepted")
	}
	h := http.Header{}
	client.SecurityHeaders(h, "https://ehr.example")
	if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors https://ehr.example") || h.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("headers %v", h)
	}
}
