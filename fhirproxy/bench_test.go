package fhirproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/fhirproxy"
)

// readOnce GETs target (with the bearer token, if any), reads the whole
// answer, requires a 200 and returns how long it took.
func readOnce(b *testing.B, client *http.Client, target, tok string) time.Duration {
	return timed(b, client, "GET", target, tok, "")
}

// timed sends a request (a FHIR JSON body, when given), reads the whole
// answer, requires a 200 and returns how long it took.
func timed(b *testing.B, client *http.Client, method, target, tok, body string) time.Duration {
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
	return time.Since(start)
}

// pair starts what the paired read benchmarks compare: the proxy in front
// of the test upstream, auditing through audit.Async as a host would (the
// SQL write itself is benchmarked in smart/sqlstore), and a bare
// httputil.ReverseProxy in front of another, given what the proxy has (a
// pool that keeps connections under concurrency, pooled copy buffers; with
// http.DefaultTransport's two idle connections per host it re-dials under
// load and the proxy comes out faster than it), mounted the same way (under
// /fhir, through http.StripPrefix). The bare proxy gets the same request,
// token included, and like any gateway swaps the token for its own
// upstream credential, so the two differ only in what the proxy does. It
// returns the URL of the same 1 KB Observation through each, and the token.
//
// Each side's server goroutines, and its upstream's, carry a profiler label
// (side=proxy, upstream-proxy, bare, upstream-bare; the read benchmarks
// label their clients client-proxy and client-bare), so a CPU profile of a
// paired benchmark tells each side's work apart within the same run:
// go test -bench … -cpuprofile cpu.out, then go tool pprof -tags on it, or
// -tagfocus 'side=^proxy$'.
func pair(b *testing.B, scope string, clearance *consent.Clearance, options ...func(*fhirproxy.Proxy)) (proxyURL, bareURL, tok string) {
	return pairOf(b, scope, clearance, false, options...)
}

// proxyHeaders are the security headers the proxy sets on every answer
// (replacing the upstream's Cache-Control); a headered bare proxy sets them
// too, and drops the upstream's CORS header as the proxy does.
var proxyHeaders = [...][2]string{{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"},
	{"Referrer-Policy", "no-referrer"}, {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"}}

// pairOf is pair; with headered, the bare proxy answers with the proxy's
// security headers (proxyHeaders).
func pairOf(b *testing.B, scope string, clearance *consent.Clearance, headered bool, options ...func(*fhirproxy.Proxy)) (proxyURL, bareURL, tok string) {
	f := newFixture(&testing.T{})
	for _, o := range options {
		o(f.proxy)
	}
	b.Cleanup(f.ts.Close)
	b.Cleanup(f.up.ts.Close)
	tok = f.token(scope, clearance)
	async := &audit.Async{Next: discardBatches{}}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() { _ = async.Run(ctx) }()
	f.proxy.Audit = async
	if os.Getenv("PLAIN") != "" {
		f.proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
	}
	up := newUpstream(b)
	up.forgetful, f.up.forgetful = true, true // a record growing by the request would grow the GC's work
	up.side, f.up.side = side("upstream-bare"), side("upstream-proxy")
	ps := httptest.NewServer(labelled("proxy", http.StripPrefix("/fhir", f.proxy)))
	b.Cleanup(ps.Close)
	u, _ := url.Parse(up.ts.URL)
	bare := &httputil.ReverseProxy{
		Transport:  &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
		BufferPool: copyBuffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Set("Authorization", "Bearer upstream-credential")
		}}
	if headered {
		bare.ModifyResponse = func(resp *http.Response) error {
			delete(resp.Header, "Access-Control-Allow-Origin")
			for _, h := range proxyHeaders {
				resp.Header[h[0]] = []string{h[1]}
			}
			return nil
		}
	}
	rp := httptest.NewServer(labelled("bare", http.StripPrefix("/fhir", bare)))
	b.Cleanup(rp.Close)
	return ps.URL + "/fhir/Observation/lab-1", rp.URL + "/fhir/Observation/lab-1", tok
}

// side is the profiler label of one side of a paired benchmark.
func side(name string) context.Context {
	return pprof.WithLabels(context.Background(), pprof.Labels("side", name))
}

// labelled gives the goroutine serving each request h gets the label side.
func labelled(name string, h http.Handler) http.Handler {
	ctx := side(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pprof.SetGoroutineLabels(ctx)
		h.ServeHTTP(w, r)
	})
}

// BenchmarkReadVsBaseline alternates one read through the proxy with one
// through a bare httputil.ReverseProxy (same upstream shape, same client
// settings) and reports each one's mean and p50 and the ratios, so drift in
// the machine's load falls on both equally. One op is one pair.
func BenchmarkReadVsBaseline(b *testing.B) {
	readVsBaseline(b, "launch/patient patient/Observation.rs", nil)
}

// BenchmarkProvenReadVsBaseline is the same read by a system/ token whose
// clearance allows every label: the request proves what the answer could
// break, and the answer is not inspected.
func BenchmarkProvenReadVsBaseline(b *testing.B) {
	readVsBaseline(b, "system/Observation.rs", everyLabel())
}

// BenchmarkAuditedProvenReadVsBaseline is BenchmarkProvenReadVsBaseline
// with Proxy.AuditEveryDisclosure set: the answer the request proves is
// read anyway, so that its audit event names the patient disclosed. Its
// figures beside the proven read's are what the switch costs.
func BenchmarkAuditedProvenReadVsBaseline(b *testing.B) {
	readVsBaseline(b, "system/Observation.rs", everyLabel(), func(p *fhirproxy.Proxy) { p.AuditEveryDisclosure = true })
}

// BenchmarkProvenReadVsHeaderedBaseline is BenchmarkProvenReadVsBaseline
// against a bare proxy that answers with the same security headers as the
// proxy (proxyHeaders): what the proxy costs beyond the headers the issue
// asks for on every answer, which a bare ReverseProxy does not send and
// its clients do not parse (about 1% of the p50 a header, measured).
func BenchmarkProvenReadVsHeaderedBaseline(b *testing.B) {
	proxyURL, bareURL, tok := pairOf(b, "system/Observation.rs", everyLabel(), true)
	for _, target := range []string{proxyURL, bareURL} { // both answer with exactly the proxy's headers
		req, _ := http.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		for _, h := range proxyHeaders {
			if got := resp.Header.Values(h[0]); len(got) != 1 || got[0] != h[1] {
				b.Fatalf("%s: %s = %q, want %q", target, h[0], got, h[1])
			}
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			b.Fatalf("%s: the upstream's CORS header came through", target)
		}
	}
	comparePair(b, proxyURL, bareURL, tok)
}

func readVsBaseline(b *testing.B, scope string, clearance *consent.Clearance, options ...func(*fhirproxy.Proxy)) {
	proxyURL, bareURL, tok := pair(b, scope, clearance, options...)
	comparePair(b, proxyURL, bareURL, tok)
}

// comparePair alternates reads through the proxy and the bare proxy and
// reports each one's mean and p50 and their ratios.
func comparePair(b *testing.B, proxyURL, bareURL, tok string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	clientP, clientB := side("client-proxy"), side("client-bare")
	defer pprof.SetGoroutineLabels(context.Background())
	proxy := func() time.Duration { pprof.SetGoroutineLabels(clientP); return readOnce(b, client, proxyURL, tok) }
	baseline := func() time.Duration { pprof.SetGoroutineLabels(clientB); return readOnce(b, client, bareURL, tok) }
	var proxied, bare []time.Duration
	var sumP, sumB time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var p, q time.Duration
		if i%2 == 0 { // alternate which goes first: neither pays for the other's tail
			p, q = proxy(), baseline()
		} else {
			q, p = baseline(), proxy()
		}
		proxied, bare = append(proxied, p), append(bare, q)
		sumP, sumB = sumP+p, sumB+q
	}
	b.StopTimer()
	slices.Sort(proxied)
	slices.Sort(bare)
	p50P, p50B := proxied[len(proxied)/2], bare[len(bare)/2]
	b.ReportMetric(float64(sumP.Nanoseconds())/float64(b.N), "proxy-ns")
	b.ReportMetric(float64(sumB.Nanoseconds())/float64(b.N), "bare-ns")
	b.ReportMetric(float64(sumB)/float64(sumP), "throughput-ratio")
	b.ReportMetric(float64(p50P)/float64(p50B), "p50-ratio")
}

// copyBuffers is the pool of 32 KiB copy buffers the bare proxies get, as
// a tuned ReverseProxy would have (without one it allocates a buffer per
// request, and the garbage collection that causes is charged to it).
var copyBuffers = &bufferPool{}

type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.pool.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }

// discardBatches is a BatchSink that keeps nothing.
type discardBatches struct{}

func (discardBatches) RecordBatch(context.Context, []audit.Event) error { return nil }

// cannedUpstream answers every request with the same 1 KB Observation,
// in memory, with the headers a FHIR server sends with one: the handler
// benchmarks measure the proxy's own work.
type cannedUpstream struct{ body []byte }

func (c cannedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header: http.Header{"Content-Type": {"application/fhir+json"}, "Content-Length": {strconv.Itoa(len(c.body))},
			"Date": {"Fri, 27 Nov 2026 10:00:00 GMT"}, "Etag": {`W/"1"`}, "Last-Modified": {"Mon, 02 Nov 2026 10:00:00 GMT"}},
		ContentLength: int64(len(c.body)), Body: io.NopCloser(bytes.NewReader(c.body))}, nil
}

// BenchmarkHandlerVsBaseline is the CPU side of the read benchmark without
// the network: one op serves the same read through the proxy's handler and
// through a bare httputil.ReverseProxy, both over an in-memory upstream.
func BenchmarkHandlerVsBaseline(b *testing.B) { handlerVsBaseline(b, false) }

// BenchmarkColdHandlerVsBaseline is BenchmarkHandlerVsBaseline with the
// CPU's caches evicted before each request (untimed), as they are when a
// server runs the client, the proxy and the upstream in turn: it predicts
// the loopback benchmarks' gap, where the hot loop understates it.
func BenchmarkColdHandlerVsBaseline(b *testing.B) { handlerVsBaseline(b, true) }

// evict touches a buffer larger than the CPU's caches, a line at a time in
// a scattered order, so that what a request touches next comes from memory.
func evict() {
	const line = 64
	n := len(evictBuf)
	for i := 0; i < n; i += line {
		evictBuf[(i*4099)%n]++
	}
}

var evictBuf = make([]byte, 2<<20)

func handlerVsBaseline(b *testing.B, cold bool) {
	f := newFixture(&testing.T{})
	tok := f.token("launch/patient patient/Observation.rs", nil)
	async := &audit.Async{Next: discardBatches{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = async.Run(ctx) }()
	body, _ := json.Marshal(obs("lab-1", "p1", "laboratory"))
	f.proxy.Audit, f.proxy.Transport = async, cannedUpstream{body}
	u, _ := url.Parse("http://fhir.invalid")
	bare := &httputil.ReverseProxy{Transport: cannedUpstream{body}, BufferPool: copyBuffers, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Header.Set("Authorization", "Bearer upstream-credential")
	}}
	serve := func(h http.Handler, target string) time.Duration {
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("User-Agent", "Go-http-client/1.1")
		req.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		if cold {
			evict()
		}
		start := time.Now()
		h.ServeHTTP(w, req)
		d := time.Since(start)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		return d
	}
	var sumP, sumB time.Duration
	for b.Loop() {
		sumP += serve(f.proxy, "/Observation/lab-1")
		sumB += serve(bare, "/Observation/lab-1")
	}
	b.ReportMetric(float64(sumP.Nanoseconds())/float64(b.N), "proxy-ns")
	b.ReportMetric(float64(sumB.Nanoseconds())/float64(b.N), "bare-ns")
}

// BenchmarkThroughputVsBaseline measures throughput under load: each op
// is one round of 4 concurrent clients × 8 reads through the proxy and one
// through a bare ReverseProxy (same request, token and upstream
// credential), in alternating order, and the ratio of the time the rounds
// took. On this machine's two cores the clients, proxies and upstreams
// share the CPU, so the ratio is that of the work per request.
func BenchmarkThroughputVsBaseline(b *testing.B) {
	proxyURL, bareURL, tok := pair(b, "launch/patient patient/Observation.rs", nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	const workers, each = 4, 8
	clientP, clientB := side("client-proxy"), side("client-bare")
	defer pprof.SetGoroutineLabels(context.Background())
	round := func(target string) time.Duration {
		if target == proxyURL { // the workers, and the connections they dial, inherit it
			pprof.SetGoroutineLabels(clientP)
		} else {
			pprof.SetGoroutineLabels(clientB)
		}
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					readOnce(b, client, target, tok)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var tP, tB time.Duration
	i := 0
	for b.Loop() {
		if i++; i%2 == 0 {
			tP += round(proxyURL)
			tB += round(bareURL)
		} else {
			tB += round(bareURL)
			tP += round(proxyURL)
		}
	}
	n := float64(i * workers * each)
	b.ReportMetric(n/tP.Seconds(), "proxy-req/s")
	b.ReportMetric(n/tB.Seconds(), "bare-req/s")
	b.ReportMetric(float64(tB)/float64(tP), "throughput-ratio")
}

// BenchmarkTransactionVsBaseline is a patient app's transaction through
// the proxy and through a bare ReverseProxy, alternating: four new
// readings (one a panel naming another by urn:uuid) and an update of a
// record of the patient's. The proxy checks each entry as on its own
// (content, valid R4, the stored version it reads for the update, what
// the panel names) and pins the update: the figures are what that costs.
func BenchmarkTransactionVsBaseline(b *testing.B) {
	proxyURL, bareURL, tok := pair(b, "launch/patient patient/Observation.cruds", nil)
	proxyURL, bareURL = strings.TrimSuffix(proxyURL, "/Observation/lab-1"), strings.TrimSuffix(bareURL, "/Observation/lab-1")
	reading := func(extra string) string {
		return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},` +
			`"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":64,"unit":"/min"}` + extra + `}`
	}
	lab, _ := json.Marshal(obs("lab-1", "p1", "laboratory"))
	body := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:1","request":{"method":"POST","url":"Observation"},"resource":` + reading("") + `},` +
		`{"request":{"method":"POST","url":"Observation"},"resource":` + reading("") + `},` +
		`{"request":{"method":"POST","url":"Observation"},"resource":` + reading("") + `},` +
		`{"request":{"method":"POST","url":"Observation"},"resource":` + reading(`,"hasMember":[{"reference":"urn:uuid:1"}]`) + `},` +
		`{"request":{"method":"PUT","url":"Observation/lab-1"},"resource":` + string(lab) + `}]}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(target string) time.Duration { return timed(b, client, http.MethodPost, target, tok, body) }
	var sumP, sumB time.Duration
	i := 0
	for b.Loop() {
		if i++; i%2 == 0 {
			sumP += post(proxyURL)
			sumB += post(bareURL)
		} else {
			sumB += post(bareURL)
			sumP += post(proxyURL)
		}
	}
	b.ReportMetric(float64(sumP.Nanoseconds())/float64(i), "proxy-ns")
	b.ReportMetric(float64(sumB.Nanoseconds())/float64(i), "bare-ns")
	b.ReportMetric(float64(sumB)/float64(sumP), "throughput-ratio")
}
