// Command backend is the example SMART Backend Services job: it gets a token
// with client_credentials and a private_key_jwt assertion (ES384), then reads
// with system/ scopes. The sandbox registers its key pair as
// "example-backend" and keeps the private key in its data directory.
//
//	go run ./examples/backend -fhir http://127.0.0.1:8080/fhir -key sandbox-data/backend-key.pem
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
	"os"
	"time"

	"github.com/smartkit/smartkit/smart/client"
)

func main() {
	fhir := flag.String("fhir", "http://127.0.0.1:8080/fhir", "FHIR base URL (the token endpoint is discovered)")
	keyFile := flag.String("key", "sandbox-data/backend-key.pem", "PKCS#8 PEM private key registered for the client")
	clientID := flag.String("client", "example-backend", "client id")
	kid := flag.String("kid", "example-backend-1", "key id in the registered JWKS")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, *fhir, *keyFile, *clientID, *kid, nil); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// run gets a backend token and lists a few patients with their latest observation.
func run(ctx context.Context, out io.Writer, fhir, keyFile, clientID, kid string, hc *http.Client) error {
	key, err := readKey(keyFile)
	if err != nil {
		return err
	}
	job := &client.Backend{ClientID: clientID, FHIRBase: fhir, Key: key, KeyID: kid, HTTPClient: hc,
		Scopes: []string{"system/Patient.rs", "system/Observation.rs"}}
	tok, err := job.Token(ctx)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintf(out, "token for %q, %v left\n", tok.Extra("scope"), time.Until(tok.Expiry).Round(time.Second))
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
