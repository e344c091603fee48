package smart_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/smartkit/smartkit/launch"
	"golang.org/x/oauth2"
)

// browse plays the user's browser: it follows the authorization URL through
// the server's pages, approves, and returns the app's callback query.
func (e *env) browse(authURL, user string) url.Values {
	e.t.Helper()
	resp := e.get(authURL, "")
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("authorize: %d %s", resp.StatusCode, body(resp))
	}
	p := parsePage(e.get(resp.Header.Get("Location"), user))
	if p.req == "" {
		e.t.Fatalf("no consent page: %d %s", p.status, p.body)
	}
	return e.redirectParams(e.approve(p, user), "https://app.example/cb")
}

func (e *env) oauth2Config(scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    "app",
		RedirectURL: "https://app.example/cb",
		Scopes:      scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL: e.issuer + "/authorize", TokenURL: e.issuer + "/token", AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

func TestOAuth2ClientEHRLaunch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	l, err := e.launches.Mint(ctx, launch.Request{ClientID: "app", UserID: "dr-lee", FHIRBase: e.fhir,
		Context: launch.Context{Patient: "123", Encounter: "enc-1", FHIRContext: []launch.ContextItem{{Reference: "ImagingStudy/7"}}}})
	if err != nil {
		t.Fatal(err)
	}
	appURL, _ := l.AppURL("https://app.example/launch")
	// The app reads iss and launch from its launch URL.
	u, _ := url.Parse(appURL)
	iss, launchID := u.Query().Get("iss"), u.Query().Get("launch")

	conf := e.oauth2Config("launch", "openid", "fhirUser", "patient/*.rs", "user/*.rs")
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", iss), oauth2.SetAuthURLParam("launch", launchID))
	q := e.browse(authURL, "dr-lee")
	if q.Get("state") != "state-123" || q.Get("iss") != e.issuer {
		t.Fatalf("callback %v", q)
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("patient") != "123" || tok.Extra("encounter") != "enc-1" {
		t.Fatalf("launch context: patient=%v encounter=%v", tok.Extra("patient"), tok.Extra("encounter"))
	}
	items, _ := tok.Extra("fhirContext").([]any)
	if len(items) != 1 || items[0].(map[string]any)["reference"] != "ImagingStudy/7" {
		t.Fatalf("fhirContext %v", tok.Extra("fhirContext"))
	}
	if v, err := e.verifier().Verify(ctx, tok.AccessToken); err != nil || v.FHIRUser != "Practitioner/9" {
		t.Fatalf("verify: %v %+v", err, v)
	}
}

func TestOAuth2ClientStandaloneWithOIDC(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conf := e.oauth2Config("launch/patient", "openid", "fhirUser", "offline_access", "patient/Observation.rs")
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("s-1", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("aud", e.fhir), oauth2.SetAuthURLParam("nonce", "n-42"))
	q := e.browse(authURL, "patient")
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("patient") != "123" || tok.RefreshToken == "" {
		t.Fatalf("token %+v patient=%v", tok, tok.Extra("patient"))
	}

	// An independent OpenID relying party: discovery, JWKS, signature, iss, aud, exp.
	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "app", Now: e.clock.Now}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	var claims struct {
		FHIRUser string `json:"fhirUser"`
		Nonce    string `json:"nonce"`
	}
	if err := idt.Claims(&claims); err != nil || claims.FHIRUser != "Patient/123" || claims.Nonce != "n-42" || idt.Subject != "patient" {
		t.Fatalf("id_token claims %+v sub=%s err=%v", claims, idt.Subject, err)
	}

	// The oauth2 TokenSource refreshes with rotation.
	tok.Expiry = e.clock.Now().Add(-1)
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	if next.AccessToken == tok.AccessToken || next.RefreshToken == tok.RefreshToken || next.Extra("patient") != "123" {
		t.Fatalf("refreshed token %+v", next)
	}
}
