package app_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/examples/app"
	"github.com/smartkit/smartkit/smart/client"
	"github.com/smartkit/smartkit/smart/smarttest"
)

// launchHome runs an EHR launch of the app for smart-1 against the fake
// EHR and returns the app's home page.
func launchHome(t *testing.T, cfg smarttest.Config) string {
	t.Helper()
	ehr := smarttest.NewServer(t, cfg)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a := &app.App{Base: "/app", Client: &client.Config{ClientID: "example-app", RedirectURL: srv.URL + "/app/callback",
		Scopes:  []string{"openid", "fhirUser", "launch", "patient/Patient.r", "patient/Observation.rs"},
		Issuers: []string{ehr.FHIRBase}, HTTPClient: ehr.Client(), States: &client.MemoryStates{}}}
	mux.Handle("/app/", a)
	if err := ehr.Register(smarttest.PublicClient("example-app", a.Client.RedirectURL)); err != nil {
		t.Fatal(err)
	}
	launchURL, err := ehr.LaunchURL("example-app", srv.URL+"/app/launch")
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(launchURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback, err := ehr.Authorize(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if resp, err = browser.Get(callback); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = browser.Get(srv.URL + "/app/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestWithheldRecordsAreSaid: when the EHR withholds records from a search
// (smart-1's HIV test, beyond the default clearance) the app says so
// instead of implying the list is complete; cleared, it shows them all.
func TestWithheldRecordsAreSaid(t *testing.T) {
	page := launchHome(t, smarttest.Config{Patient: "smart-1"})
	if !strings.Contains(page, `id="withheld"`) || strings.Contains(page, "HIV") || !strings.Contains(page, "Amy Shaw") {
		t.Errorf("default clearance:\n%s", page)
	}
	cleared := &consent.Clearance{MaxConfidentiality: consent.Restricted, Tags: []string{"HIV"}}
	page = launchHome(t, smarttest.Config{Patient: "smart-1", Clearance: cleared})
	if strings.Contains(page, `id="withheld"`) || strings.Count(page, "<tr>") != 2 {
		t.Errorf("cleared for HIV:\n%s", page)
	}
}
