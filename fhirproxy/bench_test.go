package fhirproxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"testing"
	"time"
)

// benchRead issues b.N GETs of a ~1 KB resource and reports p50.
func benchRead(b *testing.B, target, tok string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest("GET", target, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
}

// BenchmarkProxyRead reads a 1 KB Observation through the proxy (token
// verified from the Verifier's cache, response inspected).
func BenchmarkProxyRead(b *testing.B) {
	f := newFixture(&testing.T{})
	defer f.ts.Close()
	defer f.up.ts.Close()
	tok := f.token("launch/patient patient/Observation.rs", nil)
	f.up.reset()
	benchRead(b, f.base+"/Observation/lab-1", tok)
}

// BenchmarkBaselineReverseProxy reads the same resource through a bare
// httputil.ReverseProxy over loopback.
func BenchmarkBaselineReverseProxy(b *testing.B) {
	up := newUpstream(b)
	u, _ := url.Parse(up.ts.URL)
	rp := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }})
	defer rp.Close()
	benchRead(b, rp.URL+"/Observation/lab-1", "")
}
