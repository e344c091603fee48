package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/smarttest"
)

func TestRun(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	path := filepath.Join(t.TempDir(), "key.pem")
	_ = os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES384"}}})
	if err := ehr.Register(smart.Client{ID: "job", TokenEndpointAuthMethod: smart.AuthPrivateKeyJWT, JWKS: jwks,
		GrantTypes: []string{smart.GrantClientCredentials}, Scope: "system/Patient.rs system/Observation.rs"}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(context.Background(), &out, ehr.FHIRBase, path, "job", "k1", "", nil, ehr.Client()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "3 patients") || !strings.Contains(out.String(), "smart-1") {
		t.Fatalf("output:\n%s", out.String())
	}
	// A bulk export: smart-1's HIV test (beyond the default clearance) is
	// not among the Observations.
	out.Reset()
	if err := run(context.Background(), &out, ehr.FHIRBase, path, "job", "k1", "$export?_type=Patient,Observation", nil, ehr.Client()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "  Patient      3\n") || !strings.Contains(out.String(), "  Observation  3\n") {
		t.Fatalf("export output:\n%s", out.String())
	}
	// Two patients, the kick-off POSTed naming them.
	out.Reset()
	if err := run(context.Background(), &out, ehr.FHIRBase, path, "job", "k1", "Patient/$export?_type=Patient,Observation",
		[]string{"Patient/smart-1", "Patient/smart-3"}, ehr.Client()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "  Patient      2\n") || !strings.Contains(out.String(), "  Observation  2\n") {
		t.Fatalf("export of two patients:\n%s", out.String())
	}
	if err := run(context.Background(), &out, ehr.FHIRBase, path, "job", "k1", "Patient/$export?_count=1", []string{"Patient/smart-1"}, ehr.Client()); err == nil {
		t.Error("a kick-off parameter the example does not POST was sent")
	}
	if err := run(context.Background(), &out, ehr.FHIRBase, path, "job", "wrong-kid", "", nil, ehr.Client()); err == nil {
		t.Fatal("an unregistered kid got a token")
	}
}
