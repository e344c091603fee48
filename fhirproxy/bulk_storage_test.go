package fhirproxy_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestBulkExportStorage: a FHIR server that writes its export files to
// object storage (Proxy.ExportStorage) has them read there by the proxy,
// with the storage credential (StorageAuth) and never the FHIR server's,
// and judged line by line as any file. The file's URL, pre-signed here,
// reaches the client only sealed in the proxy's link. A file outside the
// prefixes, or one dressed up to leave them, is 502, and a link whose
// storage the host no longer names does not open.
func TestBulkExportStorage(t *testing.T) {
	f, bs := newBulkFixture(t)
	type got struct{ target, auth string }
	var mu sync.Mutex
	var storageGot []got
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		storageGot = append(storageGot, got{r.URL.RequestURI(), r.Header.Get("Authorization") + "|" + r.Header.Get("X-Storage-Key")})
		mu.Unlock()
		if r.URL.Path != "/exports/job-1/Observation-1.ndjson" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream") // as written, without a media type
		_, _ = io.WriteString(w, bs.files["/files/Observation.ndjson"])
	}))
	defer storage.Close()
	stored := func() []got {
		mu.Lock()
		defer mu.Unlock()
		out := storageGot
		storageGot = nil
		return out
	}
	presigned := storage.URL + "/exports/job-1/Observation-1.ndjson?sv=2024-01-01&sig=SECRET"
	manifestWith := func(fileURL string) {
		bs.mu.Lock()
		bs.manifest = func(base string) map[string]any {
			return map[string]any{"transactionTime": "2026-11-28T10:00:00Z", "request": base + "/$export?_type=Observation", "requiresAccessToken": false,
				"output": []any{map[string]any{"type": "Observation", "url": fileURL, "count": 5}}, "error": []any{}}
		}
		bs.mu.Unlock()
	}
	f.proxy.ExportStorage = []string{storage.URL + "/exports"}
	f.proxy.StorageAuth = func(r *http.Request) { r.Header.Set("X-Storage-Key", "storage-credential") }
	tok := f.token("system/Observation.rs", nil)
	manifestWith(presigned)
	out := bs.manifestOf(t, tok, "/$export?_type=Observation")
	if len(out) != 1 {
		t.Fatalf("manifest output %v", out)
	}
	link, _ := out[0]["url"].(string)
	sealed, _ := url.Parse(link)
	raw, _ := base64.RawURLEncoding.DecodeString(sealed.Query().Get("_file"))
	for _, secret := range []string{"SECRET", "sig=", strings.TrimPrefix(storage.URL, "http://"), "exports", "Observation-1"} {
		if strings.Contains(link, secret) || strings.Contains(string(raw), secret) {
			t.Errorf("the client's link shows %q: %s", secret, link)
		}
	}
	if out[0]["count"] != nil {
		t.Errorf("a count for a clearance short of every label: %v", out[0])
	}
	f.up.reset()
	r := f.do("GET", f.proxyPath(link), tok, "")
	if ids := ndjsonIDs(t, r.raw); r.status != http.StatusOK || !slices.Equal(ids, []string{"Observation/lab-1", "Observation/vs-1", "Observation/lab-2"}) {
		t.Errorf("the file: %d %v", r.status, ids)
	}
	if g := stored(); len(g) != 1 || g[0] != (got{"/exports/job-1/Observation-1.ndjson?sv=2024-01-01&sig=SECRET", "|storage-credential"}) {
		t.Errorf("the storage received %+v", g)
	}
	if g := f.up.requests(); len(g) != 0 {
		t.Errorf("the FHIR server was asked for %s", g[0].URL)
	}
	// Another client's token does not follow the link.
	if r := f.do("GET", f.proxyPath(link), f.tokenFor("other", "system/Observation.rs"), ""); r.status != http.StatusBadRequest || len(stored()) != 0 {
		t.Errorf("another client: %d %s", r.status, r.raw)
	}
	// A link to storage the host no longer names does not open.
	f.proxy.ExportStorage = []string{storage.URL + "/elsewhere/"}
	if r := f.do("GET", f.proxyPath(link), tok, ""); r.status != http.StatusBadRequest || len(stored()) != 0 {
		t.Errorf("storage no longer named: %d %s", r.status, r.raw)
	}
	f.proxy.ExportStorage = []string{storage.URL + "/exports"} // (a segment's end all the same)
	for _, c := range []struct{ name, url string }{
		{"beside the prefix", storage.URL + "/exports-old/job-1/Observation-1.ndjson"},
		{"the prefix itself", storage.URL + "/exports/"},
		{"a dot segment", storage.URL + "/exports/../private/Observation-1.ndjson"},
		{"an empty segment", storage.URL + "/exports//?restype=container&comp=list"},
		{"a directory", storage.URL + "/exports/job-1/"},
		{"an escaped dot segment", storage.URL + "/exports/%2e%2e/private/Observation-1.ndjson"},
		{"an escaped slash", storage.URL + "/exports/..%2fprivate/Observation-1.ndjson"},
		{"an escaped backslash", storage.URL + "/exports/..%5cprivate/Observation-1.ndjson"},
		{"user information", strings.Replace(storage.URL, "http://", "http://user@", 1) + "/exports/job-1/Observation-1.ndjson"},
		{"another scheme", strings.Replace(storage.URL, "http://", "ftp://", 1) + "/exports/job-1/Observation-1.ndjson"},
	} {
		manifestWith(c.url)
		status := f.do("GET", "/$export?_type=Observation", tok, "", "Prefer", "respond-async").header.Get("Content-Location")
		if r := f.do("GET", f.proxyPath(status), tok, ""); r.status != http.StatusBadGateway || strings.Contains(r.raw, "exports") {
			t.Errorf("a file %s: %d %s", c.name, r.status, r.raw)
		}
	}
	// The storage unreachable: 502, and the pre-signed URL is in no log.
	f.proxy.ExportStorage = []string{storage.URL + "/exports/"}
	var logs bytes.Buffer
	f.proxy.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	storage.Close()
	if r := f.do("GET", f.proxyPath(link), tok, ""); r.status != http.StatusBadGateway || strings.Contains(r.raw, "SECRET") {
		t.Errorf("the storage unreachable: %d %s", r.status, r.raw)
	}
	if strings.Contains(logs.String(), "SECRET") || !strings.Contains(logs.String(), "upstream failed") {
		t.Errorf("logged: %s", logs.String())
	}
	for _, ev := range f.audit.Events() {
		if strings.Contains(fmt.Sprintf("%+v", ev), "SECRET") {
			t.Errorf("audited: %+v", ev)
		}
	}
	// Without ExportStorage, a file in storage is 502, as before.
	f.proxy.ExportStorage = nil
	manifestWith(presigned)
	status := f.do("GET", "/$export?_type=Observation", tok, "", "Prefer", "respond-async").header.Get("Content-Location")
	if r := f.do("GET", f.proxyPath(status), tok, ""); r.status != http.StatusBadGateway || strings.Contains(r.raw, "SECRET") {
		t.Errorf("no ExportStorage: %d %s", r.status, r.raw)
	}
	if g := stored(); len(g) != 0 {
		t.Errorf("the storage received %+v", g)
	}
}
