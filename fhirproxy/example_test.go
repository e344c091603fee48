package fhirproxy_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
)

// A host puts the proxy in front of its FHIR server at the FHIR base that
// tokens name as aud.
func ExampleProxy() {
	// The hospital's FHIR server (any FHIR R4 server).
	fhirServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprint(w, `{"resourceType":"Patient","id":"123","name":[{"family":"Shaw"}]}`)
	}))
	defer fhirServer.Close()

	mux := http.NewServeMux()
	site := httptest.NewServer(mux)
	defer site.Close()
	fhirBase := site.URL + "/fhir"

	keys, _ := smart.GenerateKeys()
	keySet, _ := smart.NewKeySet(keys)
	auth := &smart.Server{BaseURL: site.URL + "/auth", Tenants: []smart.Tenant{{FHIRBases: []string{fhirBase}}},
		Clients: &smart.MemoryClients{}, Store: &smart.MemoryStore{}, Keys: keySet, Audit: &audit.Memory{},
		Authenticator: smart.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (smart.User, bool) { return smart.User{}, false })}
	mux.Handle("/auth/", http.StripPrefix("/auth", auth))

	verifier, err := auth.Verifier("", fhirBase)
	if err != nil {
		log.Fatal(err)
	}
	upstream, _ := url.Parse(fhirServer.URL)
	proxy := &fhirproxy.Proxy{Upstream: upstream, Verifier: verifier, Audit: &audit.Memory{},
		Base:           fhirBase, // the upstream's paging links and Locations come back on it
		SMARTConfigURL: fhirBase + "/.well-known/smart-configuration"}
	mux.Handle("/fhir/.well-known/smart-configuration", auth.SMARTConfigurationHandler(""))
	mux.Handle("/fhir/", http.StripPrefix("/fhir", proxy))

	// An app with patient/Patient.r for patient 123 reads its patient, and not another.
	tok, _ := auth.Mint(context.Background(), "", smart.Grant{ClientID: "app", UserID: "u", FHIRUser: "Patient/123",
		Scope: "patient/Patient.r", Context: launch.Context{Patient: "123"}}, time.Hour)
	for _, id := range []string{"123", "456"} {
		req, _ := http.NewRequest("GET", fhirBase+"/Patient/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(id, resp.StatusCode)
	}
	// Output:
	// 123 200
	// 456 404
}
