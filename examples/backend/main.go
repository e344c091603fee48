// Command backend is the example SMART Backend Services job: it gets a token
// with client_credentials and a private_key_jwt assertion (ES384), then reads
// with system/ scopes or, with -export, runs a bulk export (Bulk Data) and
// counts what each file holds. The sandbox registers its key pair as
// "example-backend" and keeps the private key in its data directory.
//
//	go run ./examples/backend -fhir http://127.0.0.1:8080/fhir -key sandbox-data/backend-key.pem
//	go run ./examples/backend -export 'Group/grp-panel/$export?_type=Patient,Observation'
//	go run ./examples/backend -export 'Group/grp-panel/$export?_type=Observation' -patients Patient/pt-001,Patient/pt-002
//
// With -patients the kick-off is POSTed, its parameters and the patients in
// a Parameters body, as Bulk Data has a kick-off that names patients.
package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/smartkit/smartkit/smart/client"
)

func main() {
	fhir := flag.String("fhir", "http://127.0.0.1:8080/fhir", "FHIR base URL (the token endpoint is discovered)")
	keyFile := flag.String("key", "sandbox-data/backend-key.pem", "PKCS#8 PEM private key registered for the client")
	clientID := flag.String("client", "example-backend", "client id")
	kid := flag.String("kid", "example-backend-1", "key id in the registered JWKS")
	export := flag.String("export", "", "a bulk export's kick-off below the FHIR base, such as 'Group/grp-panel/$export?_type=Patient'")
	named := flag.String("patients", "", "with -export, the patients to export (Patient/id, comma-separated): the kick-off is POSTed")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var patients []string
	if *named != "" {
		patients = strings.Split(*named, ",")
	}
	if err := run(ctx, os.Stdout, *fhir, *keyFile, *clientID, *kid, *export, patients, nil); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// run gets a backend token and lists a few patients or, given a kick-off
// (export), runs that bulk export, of the patients named, if any.
func run(ctx context.Context, out io.Writer, fhir, keyFile, clientID, kid, export string, patients []string, hc *http.Client) error {
	key, err := readKey(keyFile)
	if err != nil {
		return err
	}
	job := &client.Backend{ClientID: clientID, FHIRBase: fhir, Key: key, KeyID: kid, HTTPClient: hc,
		Scopes: []string{"system/Patient.rs", "system/Observation.rs", "system/Group.r"}}
	tok, err := job.Token(ctx)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintf(out, "token for %q, %v left\n", tok.Extra("scope"), time.Until(tok.Expiry).Round(time.Second))
	if export != "" {
		return bulkExport(ctx, out, job.Client(ctx), fhir+"/"+export, patients)
	}
	var bundle struct {
		Total *int `json:"total"` // absent when the proxy cannot show it (fhirproxy D-9)
		Entry []struct {
			Resource struct {
				ID   string `json:"id"`
				Name []struct {
					Family string   `json:"family"`
					Given  []string `json:"given"`
				} `json:"name"`
			} `json:"resource"`
		} `json:"entry"`
	}
	resp, err := job.Client(ctx).Get(fhir + "/Patient?_count=5")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("search for patients: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&bundle); err != nil {
		return err
	}
	if bundle.Total != nil {
		fmt.Fprintf(out, "%d patients; the first %d:\n", *bundle.Total, len(bundle.Entry))
	} else {
		fmt.Fprintf(out, "the first %d patients:\n", len(bundle.Entry))
	}
	for _, e := range bundle.Entry {
		name := "(no name)"
		if len(e.Resource.Name) > 0 {
			name = fmt.Sprint(e.Resource.Name[0].Given, " ", e.Resource.Name[0].Family)
		}
		fmt.Fprintf(out, "  %s  %s\n", e.Resource.ID, name)
	}
	return nil
}

// bulkExport runs a bulk export and counts the resources of each file:
// kicked off with a GET of kickOff or, naming patients, a POST of its
// parameters.
func bulkExport(ctx context.Context, out io.Writer, hc *http.Client, kickOff string, patients []string) error {
	var export *client.Export
	var err error
	if patients == nil {
		export, err = client.StartExport(ctx, hc, kickOff)
	} else {
		endpoint, query, _ := strings.Cut(kickOff, "?")
		var p client.ExportParams
		if p, err = exportParams(query); err == nil {
			p.Patients = patients
			export, err = client.PostExport(ctx, hc, endpoint, p)
		}
	}
	if err != nil {
		return err
	}
	manifest, err := export.Wait(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "export of %s:\n", manifest.TransactionTime)
	for _, f := range append(manifest.Output, manifest.Error...) {
		body, err := client.Download(ctx, hc, f)
		if err != nil {
			return err
		}
		n := 0
		for _, err := range client.Resources(body) {
			if err != nil {
				body.Close()
				return fmt.Errorf("%s: %w", f.Type, err)
			}
			n++
		}
		body.Close()
		fmt.Fprintf(out, "  %-12s %d\n", f.Type, n)
	}
	return export.Cancel(ctx) // the files are read: the server may delete them
}

// exportParams reads a kick-off's query into the parameters of a POSTed
// one.
func exportParams(query string) (client.ExportParams, error) {
	var p client.ExportParams
	q, err := url.ParseQuery(query)
	if err != nil {
		return p, err
	}
	for name, vals := range q {
		switch name {
		case "_type":
			p.Types = strings.Split(vals[0], ",")
		case "_elements":
			p.Elements = strings.Split(vals[0], ",")
		case "_typeFilter":
			p.TypeFilters = vals
		case "_outputFormat":
			p.OutputFormat = vals[0]
		case "_since":
			if p.Since, err = time.Parse(time.RFC3339Nano, vals[0]); err != nil {
				return p, fmt.Errorf("_since: %w", err)
			}
		default:
			return p, errors.New("the example does not POST the kick-off parameter " + name)
		}
	}
	return p, nil
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block in " + path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("the key cannot sign")
	}
	return s, nil
}
