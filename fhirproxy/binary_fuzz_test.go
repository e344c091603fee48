package fhirproxy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzNativeBinary: a native upload and a native read are each other's
// inverse (the content, its media type and its context come back as
// sent), and what nativeContent serves of an upstream's answer is what
// encoding/json reads there with exact member names: a Binary's data, never
// anything else's.
func FuzzNativeBinary(f *testing.F) {
	f.Add([]byte("%PDF-1.4\x00\xff"), "application/pdf", "Patient/p1",
		[]byte(`{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8=","securityContext":{"reference":"Patient/p1"}}`))
	f.Add([]byte("hello"), "text/plain; charset=ISO-8859-1", "", []byte(`{"resourceType":"Binary","data":"aGVs\nbG8="}`))
	f.Add([]byte(""), "image/png", "Observation/o1", []byte(`{"resourceType":"Binary","Data":"aGVsbG8=","data":"","contentType":"x"}`))
	f.Add([]byte("x"), "text/html", "https://ehr.example/fhir/Patient/p1", []byte(`{"resourceType":"Observation","data":"aGVsbG8="}`))
	f.Add([]byte("x"), "a/b; q=\"1 2\"", "#x", []byte(`{"resourceType":"Binary","data":"aGVsbG8=","data":"d29ybGQ="}`))
	f.Fuzz(func(t *testing.T, content []byte, contentType, context string, answer []byte) {
		in := Interaction{Kind: Create, Type: "Binary"}
		var sc []string
		if context != "" {
			sc = []string{context}
		}
		if nativeUpload(&in, contentType) {
			if b, ref := binaryResource(&in, contentType, sc, content); ref == nil {
				data, ct, got, err := nativeContent(b)
				if err != nil || !bytes.Equal(data, content) || got != context || ct == "application/octet-stream" && !strings.HasPrefix(contentType, "application/octet-stream") {
					t.Fatalf("upload of %q (%q, %q) read back as %q (%q, %q), %v, via %s", content, contentType, context, data, ct, got, err, b)
				}
				if _, err := parseResource(b); err != nil {
					t.Fatalf("the upload is not one resource: %s", b)
				}
			}
		}
		data, _, context, err := nativeContent(answer)
		if err != nil {
			return
		}
		var doc map[string]any
		if json.Unmarshal(answer, &doc) != nil || doc["resourceType"] != "Binary" {
			t.Fatalf("served content of %q", answer)
		}
		b64, _ := doc["data"].(string)
		want, err := base64.StdEncoding.DecodeString(strings.NewReplacer(" ", "", "\t", "", "\r", "", "\n", "").Replace(b64))
		if err != nil || !bytes.Equal(data, want) {
			t.Fatalf("served %q of %q, want %q", data, answer, want)
		}
		sc2, _ := doc["securityContext"].(map[string]any)
		if ref, _ := sc2["reference"].(string); ref != context {
			t.Fatalf("served the context %q of %q", context, answer)
		}
	})
}
