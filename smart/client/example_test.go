package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/client"
	"github.com/smartkit/smartkit/smart/smarttest"
)

// A minimal SMART web app that the EHR launches: /launch starts the
// authorization, /callback finishes it and reads the patient.
func ExampleConfig_HandleLaunch() {
	app := &client.Config{
		ClientID:    "growth-chart",
		RedirectURL: "https://growth.example/callback",
		Scopes:      []string{"openid", "fhirUser", "patient/Observation.rs", "patient/Patient.r"},
		Issuers:     []string{"https://ehr.example.org/fhir"},
		States:      &client.CookieStore{Key: []byte("0123456789abcdef0123456789abcdef")}, // load a real secret
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/launch", app.HandleLaunch)
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		s, err := app.Callback(w, r)
		if err != nil {
			http.Error(w, "could not launch", http.StatusBadRequest)
			return
		}
		client.SecurityHeaders(w.Header(), "https://ehr.example.org")
		resp, err := s.Client(r.Context()).Get(s.FHIRBase + "/Patient/" + s.Context.Patient)
		if err != nil {
			http.Error(w, "FHIR call failed", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		fmt.Fprintf(w, "patient %s, granted %s", s.Context.Patient, s.Granted)
	})
	_ = http.Handler(mux) // http.ListenAndServe(":8443", mux) behind TLS
	fmt.Println("ready")
	// Output: ready
}

// A nightly backend job: private_key_jwt with an ES384 key, system scopes.
func ExampleBackend() {
	t := &exampleT{}
	defer t.done()
	ehr := smarttest.NewServer(t, smarttest.Config{}) // in production: the EHR's FHIR base

	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader) // in production: from your KMS
	if err != nil {
		log.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "job-1", Algorithm: "ES384"}}})
	_ = ehr.Register(smart.Client{ID: "nightly", TokenEndpointAuthMethod: smart.AuthPrivateKeyJWT, JWKS: jwks,
		GrantTypes: []string{smart.GrantClientCredentials}, Scope: "system/Patient.rs"})

	job := &client.Backend{
		ClientID: "nightly", FHIRBase: ehr.FHIRBase, Key: key, KeyID: "job-1",
		Scopes: []string{"system/Patient.rs"}, HTTPClient: ehr.Client(),
	}
	resp, err := job.Client(context.Background()).Get(ehr.FHIRBase + "/Patient")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var bundle struct{ Total int }
	_ = json.NewDecoder(resp.Body).Decode(&bundle)
	fmt.Println(resp.StatusCode, bundle.Total)
	// Output: 200 3
}

// A backend service exports the FHIR server's data (Bulk Data): it kicks
// the export off, waits for the manifest and reads each NDJSON file. The
// fake EHR's proxy judges every line, so smart-1's HIV test stays out of an
// export whose clearance does not release it.
func ExampleStartExport() {
	t := &exampleT{}
	defer t.done()
	ehr := smarttest.NewServer(t, smarttest.Config{})
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "job-1", Algorithm: "ES384"}}})
	_ = ehr.Register(smart.Client{ID: "nightly", TokenEndpointAuthMethod: smart.AuthPrivateKeyJWT, JWKS: jwks,
		GrantTypes: []string{smart.GrantClientCredentials}, Scope: "system/Patient.rs system/Observation.rs"})
	job := &client.Backend{ClientID: "nightly", FHIRBase: ehr.FHIRBase, Key: key, KeyID: "job-1",
		Scopes: []string{"system/Patient.rs", "system/Observation.rs"}, HTTPClient: ehr.Client()}
	ctx := context.Background()
	hc := job.Client(ctx)

	export, err := client.StartExport(ctx, hc, ehr.FHIRBase+"/$export?_type=Patient,Observation")
	if err != nil {
		log.Fatal(err)
	}
	manifest, err := export.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, file := range manifest.Output {
		body, err := client.Download(ctx, hc, file)
		if err != nil {
			log.Fatal(err)
		}
		n := 0
		for _, err := range client.Resources(body) {
			if err != nil {
				log.Fatal(err)
			}
			n++
		}
		body.Close()
		fmt.Println(file.Type, n)
	}
	// Output:
	// Patient 3
	// Observation 3
}

// A backend service exports two patients' records: a POSTed kick-off
// names them (Bulk Data's patient parameter, a Reference, goes only in a
// body), with the types it wants.
func ExamplePostExport() {
	t := &exampleT{}
	defer t.done()
	ehr := smarttest.NewServer(t, smarttest.Config{})
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "job-1", Algorithm: "ES384"}}})
	_ = ehr.Register(smart.Client{ID: "nightly", TokenEndpointAuthMethod: smart.AuthPrivateKeyJWT, JWKS: jwks,
		GrantTypes: []string{smart.GrantClientCredentials}, Scope: "system/Patient.rs system/Observation.rs"})
	job := &client.Backend{ClientID: "nightly", FHIRBase: ehr.FHIRBase, Key: key, KeyID: "job-1",
		Scopes: []string{"system/Patient.rs", "system/Observation.rs"}, HTTPClient: ehr.Client()}
	ctx := context.Background()
	hc := job.Client(ctx)

	export, err := client.PostExport(ctx, hc, ehr.FHIRBase+"/Patient/$export", client.ExportParams{
		Types: []string{"Patient", "Observation"}, Patients: []string{"Patient/smart-2", "Patient/smart-3"}})
	if err != nil {
		log.Fatal(err)
	}
	manifest, err := export.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, file := range manifest.Output {
		body, err := client.Download(ctx, hc, file)
		if err != nil {
			log.Fatal(err)
		}
		n := 0
		for _, err := range client.Resources(body) {
			if err != nil {
				log.Fatal(err)
			}
			n++
		}
		body.Close()
		fmt.Println(file.Type, n)
	}
	// Output:
	// Patient 2
	// Observation 2
}

type exampleT struct{ cleanups []func() }

func (t *exampleT) Helper()           {}
func (t *exampleT) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
func (t *exampleT) Cleanup(f func())  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
