package fhirproxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/client"
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

// An app shows a document by reading its Binary as the content's own media
// type (and files one by POSTing the bytes with their Content-Type and
// X-Security-Context, the record they belong to): the proxy judges the
// Binary as FHIR JSON upstream and converts at its edge.
func ExampleProxy_nativeBinary() {
	// The hospital's FHIR server holds a PDF as a FHIR Binary bound to
	// patient 123 (and the patient, which the proxy reads to judge it).
	fhirServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		switch r.URL.Path {
		case "/Binary/scan":
			fmt.Fprint(w, `{"resourceType":"Binary","id":"scan","contentType":"application/pdf",`+
				`"securityContext":{"reference":"Patient/123"},"data":"JVBERi0xLjQK"}`)
		case "/Patient/123":
			fmt.Fprint(w, `{"resourceType":"Patient","id":"123"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
		}
	}))
	defer fhirServer.Close()
	fhirBase, tokenFor, stop := exampleProxy(fhirServer.URL)
	defer stop()

	tok := tokenFor("patient/Binary.r patient/Patient.r", "123")
	req, _ := http.NewRequest("GET", fhirBase+"/Binary/scan", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/pdf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Security-Context"))
	fmt.Printf("%q\n", pdf)
	// Output:
	// 200 application/pdf Patient/123
	// "%PDF-1.4\n"
}

// A backend service exports through the proxy as from the FHIR server
// (Bulk Data): the kick-off, the status, each file, at links of the
// proxy's; each file is judged line by line for the token.
func ExampleProxy_bulkExport() {
	var fhirServer *httptest.Server
	fhirServer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/$export": // Prefer: respond-async, _type=Observation
			w.Header().Set("Content-Location", fhirServer.URL+"/$export-poll-status?_jobId=7")
			w.WriteHeader(http.StatusAccepted)
		case "/$export-poll-status":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"transactionTime":"2026-11-28T10:00:00Z","request":"%s/$export","requiresAccessToken":true,`+
				`"output":[{"type":"Observation","url":"%[1]s/files/1.ndjson"}],"error":[]}`, fhirServer.URL)
		case "/files/1.ndjson": // one Observation is restricted (R): beyond a default clearance
			w.Header().Set("Content-Type", "application/fhir+ndjson")
			fmt.Fprintln(w, `{"resourceType":"Observation","id":"bp","subject":{"reference":"Patient/123"}}`)
			fmt.Fprintln(w, `{"resourceType":"Observation","id":"hiv","subject":{"reference":"Patient/123"},`+
				`"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}`)
		}
	}))
	defer fhirServer.Close()
	fhirBase, tokenFor, stop := exampleProxy(fhirServer.URL)
	defer stop()
	tok := tokenFor("system/Observation.rs", "")
	get := func(target string, header ...string) *http.Response {
		req, _ := http.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		return resp
	}

	kickOff := get(fhirBase+"/$export?_type=Observation", "Prefer", "respond-async")
	status := kickOff.Header.Get("Content-Location")
	fmt.Println(kickOff.StatusCode, strings.HasPrefix(status, fhirBase+"/$export-poll-status?_job="))
	var manifest struct{ Output []struct{ Type, URL string } }
	resp := get(status)
	_ = json.NewDecoder(resp.Body).Decode(&manifest)
	resp.Body.Close()
	file := manifest.Output[0]
	fmt.Println(resp.StatusCode, file.Type, strings.HasPrefix(file.URL, fhirBase+"/$export-file?_file="))
	resp = get(file.URL)
	lines, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(lines))
	// Output:
	// 202 true
	// 200 Observation true
	// {"resourceType":"Observation","id":"bp","subject":{"reference":"Patient/123"}}
}

// ExampleProxy_exportStorage: a FHIR server that writes its bulk export
// files to object storage (here a pre-signed URL on another server, as
// Azure's FHIR service writes to a storage account) has them read there by
// the proxy, which is told the storage's prefix (ExportStorage) and its
// credential (StorageAuth; none for a pre-signed URL). The client's link
// is the proxy's, sealed: it shows neither the storage nor the signature.
func ExampleProxy_exportStorage() {
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sig") != "s3cr3t" {
			http.Error(w, "AuthenticationFailed", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		fmt.Fprintln(w, `{"resourceType":"Observation","id":"bp","subject":{"reference":"Patient/123"}}`)
		fmt.Fprintln(w, `{"resourceType":"Observation","id":"hiv","subject":{"reference":"Patient/123"},`+
			`"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}`)
	}))
	defer storage.Close()
	var fhirServer *httptest.Server
	fhirServer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/$export":
			w.Header().Set("Content-Location", fhirServer.URL+"/$export-poll-status?_jobId=7")
			w.WriteHeader(http.StatusAccepted)
		case "/$export-poll-status":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"transactionTime":"2026-11-28T10:00:00Z","request":"%s/$export","requiresAccessToken":false,`+
				`"output":[{"type":"Observation","url":"%s/exports/7/Observation.ndjson?sig=s3cr3t"}],"error":[]}`, fhirServer.URL, storage.URL)
		}
	}))
	defer fhirServer.Close()
	fhirBase, tokenFor, stop := exampleProxy(fhirServer.URL, func(p *fhirproxy.Proxy) {
		p.ExportStorage = []string{storage.URL + "/exports/"}
	})
	defer stop()
	hc := &http.Client{Transport: bearerTransport(tokenFor("system/Observation.rs", ""))}

	export, err := client.StartExport(context.Background(), hc, fhirBase+"/$export?_type=Observation")
	if err != nil {
		log.Fatal(err)
	}
	manifest, err := export.Wait(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	file := manifest.Output[0]
	fmt.Println(strings.HasPrefix(file.URL, fhirBase+"/$export-file?_file="), strings.Contains(file.URL, "s3cr3t"))
	body, err := client.Download(context.Background(), hc, file)
	if err != nil {
		log.Fatal(err)
	}
	defer body.Close()
	lines, _ := io.ReadAll(body)
	fmt.Print(string(lines))
	// Output:
	// true false
	// {"resourceType":"Observation","id":"bp","subject":{"reference":"Patient/123"}}
}

// bearerTransport sends tok with every request, each to the proxy here (a
// backend service's client, smart/client's Backend.Client, sends it to
// its FHIR base only).
type bearerTransport string

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// exampleProxy mounts a proxy in front of the FHIR server at upstream, as
// ExampleProxy shows, and returns its FHIR base, a way to mint a token for
// an app with patient context (or, with none, a backend service's), and
// what stops it. Options change the proxy before it serves.
func exampleProxy(upstream string, options ...func(*fhirproxy.Proxy)) (fhirBase string, tokenFor func(scope, patient string) string, stop func()) {
	mux := http.NewServeMux()
	site := httptest.NewServer(mux)
	fhirBase = site.URL + "/fhir"
	keys, _ := smart.GenerateKeys()
	keySet, _ := smart.NewKeySet(keys)
	auth := &smart.Server{BaseURL: site.URL + "/auth", Tenants: []smart.Tenant{{FHIRBases: []string{fhirBase}}},
		Clients: &smart.MemoryClients{}, Store: &smart.MemoryStore{}, Keys: keySet, Audit: &audit.Memory{},
		Authenticator: smart.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (smart.User, bool) { return smart.User{}, false })}
	verifier, err := auth.Verifier("", fhirBase)
	if err != nil {
		log.Fatal(err)
	}
	up, _ := url.Parse(upstream)
	proxy := &fhirproxy.Proxy{Upstream: up, Verifier: verifier, Audit: &audit.Memory{}, Base: fhirBase}
	for _, o := range options {
		o(proxy)
	}
	mux.Handle("/fhir/", http.StripPrefix("/fhir", proxy))
	tokenFor = func(scope, patient string) string {
		g := smart.Grant{ClientID: "app", UserID: "u", FHIRUser: "Patient/" + patient, Scope: scope, Context: launch.Context{Patient: patient}}
		if patient == "" {
			g = smart.Grant{ClientID: "app", Scope: scope} // a backend service's
		}
		tok, err := auth.Mint(context.Background(), "", g, time.Hour)
		if err != nil {
			log.Fatal(err)
		}
		return tok
	}
	return fhirBase, tokenFor, site.Close
}

// A patient app batches its start-up searches without naming its patient:
// the proxy sends each search with the patient it adds (and any constraint
// of the app's scopes), and judges each answer as that search's own, so a
// record of another patient that a careless server returns stays out.
func ExampleProxy_batchedSearches() {
	fhirServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch struct {
			Entry []struct{ Request struct{ URL string } }
		}
		_ = json.NewDecoder(r.Body).Decode(&batch)
		var answers []string
		for _, e := range batch.Entry {
			fmt.Println("the FHIR server searches", e.Request.URL)
			answers = append(answers, `{"resource":{"resourceType":"Bundle","type":"searchset","entry":[`+
				`{"resource":{"resourceType":"Observation","id":"mine","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/123"}},"search":{"mode":"match"}},`+
				`{"resource":{"resourceType":"Observation","id":"theirs","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/456"}},"search":{"mode":"match"}}`+
				`]},"response":{"status":"200 OK"}}`)
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprint(w, `{"resourceType":"Bundle","type":"batch-response","entry":[`+strings.Join(answers, ",")+`]}`)
	}))
	defer fhirServer.Close()
	fhirBase, tokenFor, stop := exampleProxy(fhirServer.URL)
	defer stop()

	tok := tokenFor("patient/Observation.rs", "123")
	batch := `{"resourceType":"Bundle","type":"batch","entry":[` +
		`{"request":{"method":"GET","url":"Observation?category=laboratory"}},{"request":{"method":"GET","url":"Observation?code=8867-4"}}]}`
	req, _ := http.NewRequest("POST", fhirBase, strings.NewReader(batch))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Entry []struct {
			Resource struct {
				Entry []struct{ Resource struct{ ID string } }
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		log.Fatal(err)
	}
	for i, e := range answer.Entry {
		var ids []string
		for _, m := range e.Resource.Entry {
			ids = append(ids, m.Resource.ID)
		}
		fmt.Println("search", i, "answered", ids)
	}
	// Output:
	// the FHIR server searches Observation?category=laboratory&patient=Patient%2F123
	// the FHIR server searches Observation?code=8867-4&patient=Patient%2F123
	// search 0 answered [mine]
	// search 1 answered [mine]
}
