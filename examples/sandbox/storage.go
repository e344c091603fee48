package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// objectStore stands in for the object storage some FHIR servers write
// their bulk export files to (Azure's FHIR service writes them to a
// storage account): with Config.ExportStorage the data server's manifests
// name each file here, at another address than its FHIR base, by a
// pre-signed URL ({url}/exports/{job}/{type}.ndjson?sig=…) that is the only
// credential it asks for, and the proxy follows them there
// (fhirproxy.Proxy.ExportStorage). It serves the bytes as stored, as
// application/octet-stream, as such stores do for a file written without a
// media type.
type objectStore struct {
	url  string // its base, http://127.0.0.1:port
	key  []byte // signs its URLs
	fhir *fhirServer
}

func newObjectStore(url string, fhir *fhirServer) *objectStore {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &objectStore{url: url, key: key, fhir: fhir}
}

// prefix is where the store keeps export files: what the proxy is told to
// follow.
func (o *objectStore) prefix() string { return o.url + "/exports/" }

// fileURL is the pre-signed URL of a job's file of a type.
func (o *objectStore) fileURL(jobID, typ string) string {
	path := "/exports/" + jobID + "/" + typ + ".ndjson"
	return o.url + path + "?sig=" + o.sign(path)
}

func (o *objectStore) sign(path string) string {
	mac := hmac.New(sha256.New, o.key)
	mac.Write([]byte(path))
	return hex.EncodeToString(mac.Sum(nil))
}

func (o *objectStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/exports/")
	jobID, name, ok2 := strings.Cut(rest, "/")
	typ, ok3 := strings.CutSuffix(name, ".ndjson")
	sig := r.URL.Query().Get("sig")
	if r.Method != http.MethodGet || !ok || !ok2 || !ok3 || len(r.URL.Query()) != 1 || !hmac.Equal([]byte(sig), []byte(o.sign(r.URL.Path))) {
		http.Error(w, "AuthenticationFailed", http.StatusForbidden)
		return
	}
	o.fhir.mu.RLock()
	var body []byte
	if job := o.fhir.jobs[jobID]; job != nil {
		body = job.files[typ]
	}
	o.fhir.mu.RUnlock()
	if body == nil {
		http.Error(w, "BlobNotFound", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}
