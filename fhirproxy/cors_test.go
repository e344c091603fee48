package fhirproxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/smart"
)

func TestCORS(t *testing.T) {
	f := newFixture(t)
	clients := f.srv.Clients.(*smart.MemoryClients)
	if err := clients.Add("", smart.Client{ID: "app", TokenEndpointAuthMethod: smart.AuthNone, RedirectURIs: []string{"https://app.example/cb"}}); err != nil {
		t.Fatal(err)
	}
	tok := f.token("patient/*.rs", nil)

	// Not configured: nothing is readable cross-origin, whatever the upstream says.
	r := f.do("GET", "/Patient/p1", tok, "", "Origin", "https://app.example")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("without AllowOrigin: %d, ACAO %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}

	lookups := &countingClients{ClientStore: clients}
	f.proxy.AllowOrigin = fhirproxy.RegisteredOrigins(lookups, "")
	r = f.do("GET", "/Patient/p1", tok, "", "Origin", "https://app.example")
	if got := r.header.Get("Access-Control-Allow-Origin"); r.status != 200 || got != "https://app.example" ||
		r.header.Get("Access-Control-Allow-Credentials") != "" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Security-Context") {
		t.Errorf("registered origin: %d, headers %v", r.status, r.header)
	}
	if len(r.header.Values("Access-Control-Allow-Origin")) != 1 {
		t.Errorf("the upstream's CORS header leaked: %v", r.header.Values("Access-Control-Allow-Origin"))
	}
	// The answer is remembered: a second request costs no client lookup.
	f.do("GET", "/Patient/p1", tok, "", "Origin", "https://app.example")
	if n := lookups.n.Load(); n != 1 {
		t.Errorf("%d client lookups for two requests from one origin", n)
	}
	r = f.do("GET", "/Patient/p1", tok, "", "Origin", "https://evil.example")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("an unregistered origin may read: %q", got)
	}
	// A refusal is readable by the app's origin (so it can explain it), but
	// not when the token is bad.
	r = f.do("GET", "/Patient/p2", tok, "", "Origin", "https://app.example")
	if r.status == 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("refusal: %d, ACAO %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	f.up.reset()
	r = f.do("GET", "/Patient/p1", "bad.token.here", "", "Origin", "https://app.example")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a bad token's response is readable cross-origin")
	}
	f.up.reset()

	// Preflights are answered by the proxy and never forwarded.
	r = f.do("OPTIONS", "/Patient/p1", "", "", "Origin", "https://app.example", "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", "authorization")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		r.header.Get("Access-Control-Allow-Headers") == "" {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	if n := len(f.up.requests()); n != 0 {
		t.Errorf("a preflight reached the upstream (%d requests)", n)
	}

	// The CapabilityStatement is readable from anywhere.
	r = f.do("GET", "/metadata", "", "", "Origin", "https://anyone.example")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("metadata: %d, ACAO %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
}

// countingClients counts client-store lookups.
type countingClients struct {
	smart.ClientStore
	n atomic.Int32
}

func (c *countingClients) Client(ctx context.Context, tenant, id string) (*smart.Client, error) {
	c.n.Add(1)
	return c.ClientStore.Client(ctx, tenant, id)
}

// TestInformationalResponses: an upstream 103 Early Hints does not cost the
// final response its CORS or security headers (ReverseProxy clears the
// writer's headers after relaying a 1xx).
func TestInformationalResponses(t *testing.T) {
	body := `{"resourceType":"Patient","id":"p1"}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</fhir/Patient/p1>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(body))
	}))
	defer up.Close()
	f := newFixture(t)
	f.proxy.Upstream, _ = url.Parse(up.URL)
	clients := f.srv.Clients.(*smart.MemoryClients)
	if err := clients.Add("", smart.Client{ID: "app", TokenEndpointAuthMethod: smart.AuthNone, RedirectURIs: []string{"https://app.example/cb"}}); err != nil {
		t.Fatal(err)
	}
	f.proxy.AllowOrigin = fhirproxy.RegisteredOrigins(clients, "")
	r := f.do("GET", "/Patient/p1", f.token("patient/*.rs", nil), "", "Origin", "https://app.example")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || r.header.Get("Cache-Control") != "no-store" ||
		len(r.header.Values("Cache-Control")) != 1 {
		t.Errorf("after a 103: %d, headers %v", r.status, r.header)
	}
	// And the 103 itself, with the upstream's unchecked Link, is not passed on.
	var informational int
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(int, textproto.MIMEHeader) error { informational++; return nil },
	}), "GET", f.base+"/Patient/p1", nil)
	req.Header.Set("Authorization", "Bearer "+f.token("patient/*.rs", nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || informational != 0 {
		t.Errorf("status %d after %d informational responses", resp.StatusCode, informational)
	}
}
