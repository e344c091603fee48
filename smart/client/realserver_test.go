package client_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/client"
)

// TestAgainstRealServer runs a standalone launch against a plain
// smart.Server with its own consent page, as a browser would.
func TestAgainstRealServer(t *testing.T) {
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	defer ts.Close()
	keys, _ := smart.GenerateKeys()
	ks, _ := smart.NewKeySet(keys)
	clients := &smart.MemoryClients{}
	srv := &smart.Server{BaseURL: ts.URL + "/auth", Tenants: []smart.Tenant{{FHIRBases: []string{ts.URL + "/fhir"}}},
		Clients: clients, Store: &smart.MemoryStore{}, Keys: ks, Audit: &audit.Memory{},
		Authenticator: smart.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (smart.User, bool) {
			return smart.User{ID: "pat", FHIRUser: "Patient/77", PatientID: "77"}, true
		})}
	mux.Handle("/auth/", http.StripPrefix("/auth", srv))
	mux.Handle("/fhir/.well-known/smart-configuration", srv.SMARTConfigurationHandler(""))

	var session *client.Session
	var cbErr error
	app := &client.Config{ClientID: "pp", RedirectURL: ts.URL + "/app/cb", Issuers: []string{ts.URL + "/fhir"},
		Scopes: []string{"launch/patient", "openid", "fhirUser", "offline_access", "patient/Observation.rs"},
		States: &client.CookieStore{Key: make([]byte, 32), Insecure: true}}
	mux.HandleFunc("/app/launch", app.HandleLaunch)
	mux.HandleFunc("/app/cb", func(w http.ResponseWriter, r *http.Request) { session, cbErr = app.Callback(w, r) })
	if err := clients.Add("", smart.Client{ID: "pp", TokenEndpointAuthMethod: smart.AuthNone, RedirectURIs: []string{app.RedirectURL},
		Scope: "launch/patient openid fhirUser offline_access patient/*.rs"}); err != nil {
		t.Fatal(err)
	}

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := ts.URL + "/app/launch?iss=" + url.QueryEscape(ts.URL+"/fhir")
	var page string
	for range 4 { // app → authorize → continue → consent page
		resp, err := browser.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			page = string(b)
			break
		}
		next = resp.Header.Get("Location")
	}
	field := func(name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no %s on the consent page:\n%s", name, page)
		}
		return m[1]
	}
	form := url.Values{"req": {field("req")}, "csrf": {field("csrf")}, "decision": {"approve"}}
	for _, m := range regexp.MustCompile(`name="(scope_\d+)"`).FindAllStringSubmatch(page, -1) {
		form.Set(m[1], "on")
	}
	resp, err := browser.PostForm(ts.URL+"/auth/authorize/consent", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = browser.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cbErr != nil || session == nil {
		t.Fatalf("callback: %v", cbErr)
	}
	if session.Context.Patient != "77" || session.FHIRUserRef() != "Patient/77" || session.Token.RefreshToken == "" {
		t.Fatalf("session %+v fhirUser %q", session.Context, session.FHIRUser)
	}
}
