package app_test

import (
	"fmt"
	"html"
	"net/http/httptest"
	"regexp"
	"strings"

	"github.com/smartkit/smartkit/examples/app"
	"github.com/smartkit/smartkit/smart/client"
)

// Without a session the app offers a standalone launch against its first
// trusted EHR, and its pages may be framed only by the EHR.
func Example() {
	a := &app.App{Base: "/app", EHROrigins: []string{"https://ehr.example"}, Client: &client.Config{
		ClientID: "example-app", RedirectURL: "https://apps.example/app/callback",
		Issuers: []string{"https://ehr.example/fhir"}, Scopes: []string{"openid", "launch/patient", "patient/Patient.r"},
		States: &client.MemoryStates{}}}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest("GET", "/app/", nil))
	link := regexp.MustCompile(`id="standalone" href="([^"]+)"`).FindStringSubmatch(w.Body.String())
	fmt.Println(w.Code, html.UnescapeString(link[1]))
	fmt.Println(strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors https://ehr.example"))
	// Output:
	// 200 /app/launch?iss=https%3A%2F%2Fehr.example%2Ffhir
	// true
}
