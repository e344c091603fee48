package smarttest_test

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"

	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart/client"
	"github.com/smartkit/smartkit/smart/smarttest"
)

// exampleT stands in for the *testing.T a real test passes.
type exampleT struct{ cleanups []func() }

func (t *exampleT) Helper()           {}
func (t *exampleT) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
func (t *exampleT) Cleanup(f func())  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// A vendor unit-tests its app's EHR launch against the fake EHR, with no
// browser and no network. In a test, pass t instead of exampleT.
func ExampleNewServer() {
	t := &exampleT{}
	defer t.done()

	ehr := smarttest.NewServer(t, smarttest.Config{Patient: "smart-2"})

	// The app under test: its launch and callback handlers.
	var session *client.Session
	mux := http.NewServeMux()
	appSrv := httptest.NewServer(mux)
	defer appSrv.Close()
	app := &client.Config{
		ClientID: "my-app", RedirectURL: appSrv.URL + "/callback",
		Scopes:  []string{"openid", "fhirUser", "patient/*.rs"},
		Issuers: []string{ehr.FHIRBase}, HTTPClient: ehr.Client(), States: &client.MemoryStates{},
	}
	mux.HandleFunc("/launch", app.HandleLaunch)
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		session, _ = app.Callback(w, r)
	})
	if err := ehr.Register(smarttest.PublicClient("my-app", app.RedirectURL)); err != nil {
		t.Fatal(err)
	}

	// The EHR launches the app; the fake EHR logs in and approves.
	launchURL, _ := ehr.LaunchURL("my-app", appSrv.URL+"/launch")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := browser.Get(launchURL)
	callback, _ := ehr.Authorize(resp.Header.Get("Location"))
	resp, _ = browser.Get(callback)
	resp.Body.Close()

	fmt.Println(session.Context.Patient, session.FHIRUserRef(), session.Granted.Has("launch"))
	// Output: smart-2 Practitioner/dr-smart true
}

// The fake EHR's FHIR API is the real policy enforcement point: an app's
// test sees what production would answer, here to a search that names
// another patient than the one in context.
func ExampleServer_Proxy() {
	t := &exampleT{}
	defer t.done()

	ehr := smarttest.NewServer(t, smarttest.Config{})
	tok, _ := ehr.MintToken("my-app", "patient/Observation.rs", launch.Context{Patient: "smart-2"})
	for _, path := range []string{"/Observation", "/Observation?patient=smart-1"} {
		req, _ := http.NewRequest(http.MethodGet, ehr.FHIRBase+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, _ := ehr.Client().Do(req)
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	// Output:
	// /Observation 200
	// /Observation?patient=smart-1 403
}
