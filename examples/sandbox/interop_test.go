package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/smartkit/smartkit/smart/registry"
)

// fhirclientJS is the official SMART JavaScript client's browser build,
// fetched by .ci/run (npm pack fhirclient@2.6.3) into testdata.
const fhirclientJS = "testdata/fhirclient/package/build/fhir-client.js"

// The app pages are the fhirclient documentation's minimal app: launch.html
// calls FHIR.oauth2.authorize, index.html FHIR.oauth2.ready and reads the
// patient through the proxy.
const (
	launchHTML = `<!doctype html><meta charset="utf-8"><script src="/fhir-client.js"></script>
<script>FHIR.oauth2.authorize({clientId: "CLIENT", scope: "launch launch/patient openid fhirUser patient/Patient.r patient/Observation.rs", redirectUri: "index.html"});</script>`
	indexHTML = `<!doctype html><meta charset="utf-8"><body><p id="status">loading</p><script src="/fhir-client.js"></script>
<script>
const show = (id, v) => { const p = document.createElement("p"); p.id = id; p.textContent = v; document.body.appendChild(p); };
FHIR.oauth2.ready()
  .then(client => Promise.all([client.patient.read(), client.request("Observation?patient=" + client.patient.id + "&_count=5"), client]))
  .then(([patient, bundle, client]) => {
    const n = patient.name[0];
    show("name", (n.given || []).join(" ") + " " + n.family);
    show("observations", String((bundle.entry || []).length));
    show("fhir-user", client.getFhirUser() || "");
    document.getElementById("status").textContent = "done";
  })
  .catch(e => { document.getElementById("status").textContent = "error: " + e; });
</script>`
)

// TestOfficialJavaScriptClient launches an app built on fhirclient (the
// official SMART JavaScript library) from the EHR in headless Chromium:
// discovery, authorization with PKCE, the token request and the FHIR reads
// all cross origins, so CORS on the token endpoint and the proxy is tested
// as a browser enforces it.
func TestOfficialJavaScriptClient(t *testing.T) {
	exe := chromium()
	if exe == "" {
		t.Skip("no Chromium installed (apt-get install chromium; .ci/run installs it)")
	}
	js, err := os.ReadFile(fhirclientJS)
	if err != nil {
		t.Skipf("fhirclient is not fetched (%v); run: cd examples/sandbox/testdata && mkdir -p fhirclient && cd fhirclient && npm pack fhirclient@2.6.3 && tar xzf fhirclient-2.6.3.tgz (.ci/run does)", err)
	}
	sb := startSandbox(t)
	ctx := context.Background()

	var clientID string
	appSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fhir-client.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(js)
		case "/launch.html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(strings.Replace(launchHTML, "CLIENT", clientID, 1)))
		case "/index.html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(indexHTML))
		default:
			http.NotFound(w, r)
		}
	}))
	defer appSrv.Close()

	// Register the app the way a vendor would, as a public client.
	_, creds, err := sb.Registry.Create(ctx, "", registry.NewApp{Owner: registry.Owner{Name: "test"}, Category: registry.ClinicianFacing,
		RiskTier: registry.Low, Metadata: registry.Metadata{ClientName: "fhirclient app", TokenEndpointAuthMethod: "none",
			RedirectURIs: []string{appSrv.URL + "/index.html"}, LaunchURI: appSrv.URL + "/launch.html",
			Scope: "launch launch/patient openid fhirUser patient/Patient.r patient/Observation.rs"},
		Sandbox: &registry.SandboxApproval{Reason: "fhirclient check"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	clientID = creds.SandboxClientID

	bctx := headless(t, exe)

	launchURL := sb.URL + "/ehr/launch?" + url.Values{"client_id": {clientID}, "patient": {"pt-unicode"}}.Encode()
	err = chromedp.Do(bctx,
		chromedp.Navigate(launchURL),
		chromedp.WaitVisible(`input[name="username"]`),
		chromedp.SendKeys(`input[name="username"]`, "clinician"),
		chromedp.SendKeys(`input[name="password"]`, "pw"),
		chromedp.Submit(`input[name="password"]`),
	)
	if err != nil {
		t.Fatalf("signing in: %v", err)
	}
	// Approve consent once, then wait for the app to finish.
	const state = `(() => {
		const approve = document.getElementById('approve');
		if (approve) { if (!window.approved) { window.approved = true; approve.click(); } return 'consent'; }
		const s = document.getElementById('status');
		return s ? s.textContent : 'elsewhere: ' + location.href;
	})()`
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = chromedp.Run(bctx, chromedp.Evaluate[string](state)); err != nil {
			continue // mid-navigation
		}
		if got == "done" || strings.HasPrefix(got, "error") {
			break
		}
	}
	if got != "done" {
		page, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`location.href + "\n" + document.documentElement.outerHTML`))
		t.Fatalf("the fhirclient app ended in %q:\n%s", got, page)
	}
	name, _ := chromedp.Run(bctx, chromedp.Text(`#name`))
	obs, _ := chromedp.Run(bctx, chromedp.Text(`#observations`))
	fhirUser, _ := chromedp.Run(bctx, chromedp.Text(`#fhir-user`))
	if name != "Zoë Ødegård-Nguyễn" || obs == "0" || fhirUser != "Practitioner/pr-lee" {
		t.Fatalf("fhirclient read name %q, %s observations, fhirUser %q", name, obs, fhirUser)
	}
}

// TestOpenIDConnectRelyingParty signs in through the sandbox with standard
// Go OpenID Connect and OAuth 2.0 libraries (github.com/coreos/go-oidc,
// golang.org/x/oauth2) and no smartkit code on the app side: RFC 7591
// registration, OIDC discovery at the issuer, the code flow with PKCE and a
// nonce, and the id_token verified against the published keys.
func TestOpenIDConnectRelyingParty(t *testing.T) {
	sb := startSandbox(t)
	ctx := context.Background()
	const redirect = "http://127.0.0.1:9/oidc/callback"

	reg := `{"client_name":"OIDC RP","redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"client_secret_basic",` +
		`"grant_types":["authorization_code"],"response_types":["code"],"scope":"openid fhirUser launch/patient patient/Patient.r"}`
	resp, err := http.Post(sb.URL+"/dev/register", "application/json", strings.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	var creds struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	err = json.NewDecoder(resp.Body).Decode(&creds)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || err != nil || creds.ClientSecret == "" {
		t.Fatalf("registration: %d %v %+v", resp.StatusCode, err, creds)
	}

	provider, err := oidc.NewProvider(ctx, sb.Issuer)
	if err != nil {
		t.Fatalf("OIDC discovery at %s: %v", sb.Issuer, err)
	}
	conf := &oauth2.Config{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret, Endpoint: provider.Endpoint(),
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "fhirUser", "launch/patient", "patient/Patient.r"}}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1"),
		oauth2.SetAuthURLParam("aud", sb.FHIRBase))

	b := newBrowser(t, sb, "patient")
	b.stop = redirect
	final, _ := b.visit(authURL)
	back, err := url.Parse(final)
	if err != nil || back.Query().Get("state") != "st-1" || back.Query().Get("code") == "" {
		t.Fatalf("the authorization ended at %s", final)
	}
	if back.Query().Get("iss") != sb.Issuer {
		t.Errorf("the response's iss is %q, want %q (RFC 9207)", back.Query().Get("iss"), sb.Issuer)
	}
	tok, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: creds.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	var claims struct {
		FHIRUser string `json:"fhirUser"`
	}
	if err := idt.Claims(&claims); err != nil || idt.Nonce != "n-1" || claims.FHIRUser != "Patient/"+DemoPatient {
		t.Fatalf("id_token claims: nonce %q fhirUser %q %v", idt.Nonce, claims.FHIRUser, err)
	}
	if p, _ := tok.Extra("patient").(string); p != DemoPatient {
		t.Errorf("token response patient %q, want %q", p, DemoPatient)
	}
}
