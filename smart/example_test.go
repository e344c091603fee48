package smart_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
)

// A host mounts the authorization server on its own mux and launches an app.
func ExampleServer() {
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	defer ts.Close()

	keys, err := smart.GenerateKeys() // production: crypto.Signers from an HSM or KMS
	if err != nil {
		log.Fatal(err)
	}
	keySet, err := smart.NewKeySet(keys)
	if err != nil {
		log.Fatal(err)
	}
	clients := &smart.MemoryClients{}
	err = clients.Add("", smart.Client{
		ID: "growth-chart", Name: "Growth Chart", TokenEndpointAuthMethod: smart.AuthNone,
		RedirectURIs: []string{"https://growth.example/cb"}, LaunchURL: "https://growth.example/launch",
		Scope: "launch openid fhirUser patient/Observation.rs patient/Patient.r",
	})
	if err != nil {
		log.Fatal(err)
	}
	launches := &launch.Service{Store: &launch.Memory{}}
	srv := &smart.Server{
		BaseURL:  ts.URL + "/auth",
		Tenants:  []smart.Tenant{{FHIRBases: []string{ts.URL + "/fhir"}}},
		Clients:  clients,
		Store:    &smart.MemoryStore{},
		Keys:     keySet,
		Launches: launches,
		Audit:    &audit.Memory{},
		Authenticator: smart.AuthenticatorFunc(func(w http.ResponseWriter, r *http.Request) (smart.User, bool) {
			// The host's login goes here; send unknown users to your sign-in page.
			return smart.User{ID: "dr-lee", FHIRUser: "Practitioner/9", Name: "Dr Lee"}, true
		}),
	}
	mux.Handle("/auth/", http.StripPrefix("/auth", srv))
	mux.Handle("/fhir/.well-known/smart-configuration", srv.SMARTConfigurationHandler(""))

	// The EHR shell launches the app for the patient in the open chart.
	l, err := launches.Mint(context.Background(), launch.Request{
		ClientID: "growth-chart", UserID: "dr-lee", FHIRBase: ts.URL + "/fhir",
		Context: launch.Context{Patient: "123"},
	})
	if err != nil {
		log.Fatal(err)
	}
	appURL, _ := l.AppURL("https://growth.example/launch")
	fmt.Println(len(appURL) > 0)

	resp, err := http.Get(ts.URL + "/fhir/.well-known/smart-configuration")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	// Output:
	// true
	// 200 application/json
}

// Guessing a client's secret: after SourceFailures failures from one
// address naming it, the token endpoint answers 429 until the bucket
// refills. Behind a load balancer, name the source it vouches for
// (SourceOf), or every caller shares one address's budget.
func ExampleThrottle() {
	keys, _ := smart.GenerateKeys()
	keySet, _ := smart.NewKeySet(keys)
	clients := &smart.MemoryClients{}
	_, hash := smart.NewSecret()
	_ = clients.Add("", smart.Client{ID: "lab-feed", TokenEndpointAuthMethod: smart.AuthClientSecretBasic,
		SecretHash: hash, GrantTypes: []string{smart.GrantClientCredentials}, Scope: "system/Observation.c"})
	srv := &smart.Server{BaseURL: "https://ehr.example.org/auth",
		Tenants: []smart.Tenant{{FHIRBases: []string{"https://ehr.example.org/fhir"}}},
		Clients: clients, Store: &smart.MemoryStore{}, Keys: keySet, Audit: &audit.Memory{},
		Authenticator: smart.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (smart.User, bool) { return smart.User{}, false }),
		Throttle: smart.Throttle{
			SourceFailures: 3, Window: time.Minute,
			SourceOf: func(r *http.Request) string { return r.Header.Get("X-Real-Ip") }, // set by the balancer
		},
	}
	for range 4 {
		req := httptest.NewRequest("POST", "/token", strings.NewReader("grant_type=client_credentials&scope=system/Observation.c"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Real-Ip", "203.0.113.9")
		req.SetBasicAuth("lab-feed", "guess")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		fmt.Printf("%d retry-after=%q\n", w.Code, w.Header().Get("Retry-After"))
	}
	// Output:
	// 401 retry-after=""
	// 401 retry-after=""
	// 401 retry-after=""
	// 429 retry-after="20"
}
