package fhirproxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
)

type timed struct {
	h     http.Handler
	sum   atomic.Int64
	sumUp atomic.Int64
}

func (t *timed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := time.Now()
	t.h.ServeHTTP(w, r)
	t.sum.Add(int64(time.Since(s)))
}

type timedRT struct {
	rt  http.RoundTripper
	sum *atomic.Int64
}

func (t timedRT) RoundTrip(r *http.Request) (*http.Response, error) {
	s := time.Now()
	resp, err := t.rt.RoundTrip(r)
	t.sum.Add(int64(time.Since(s)))
	return resp, err
}

func BenchmarkZInSitu(b *testing.B) {
	f := newFixture(&testing.T{})
	tok := f.token("launch/patient patient/Observation.rs", nil)
	async := &audit.Async{Next: discardBatches{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = async.Run(ctx) }()
	f.proxy.Audit = async
	up := newUpstream(b)
	up.forgetful, f.up.forgetful = true, true
	u, _ := url.Parse(up.ts.URL)
	tp := &timed{}
	tb := &timed{}
	f.proxy.Transport = timedRT{&http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}, &tp.sumUp}
	tp.h = http.StripPrefix("/fhir", f.proxy)
	tb.h = http.StripPrefix("/fhir", &httputil.ReverseProxy{
		Transport:  timedRT{&http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}, &tb.sumUp},
		BufferPool: copyBuffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Set("Authorization", "Bearer upstream-credential")
		}})
	ps := httptest.NewServer(tp)
	bs := httptest.NewServer(tb)
	defer ps.Close()
	defer bs.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	var P, B []time.Duration
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			P = append(P, readOnce(b, client, ps.URL+"/fhir/Observation/lab-1", tok))
			B = append(B, readOnce(b, client, bs.URL+"/fhir/Observation/lab-1", tok))
		} else {
			B = append(B, readOnce(b, client, bs.URL+"/fhir/Observation/lab-1", tok))
			P = append(P, readOnce(b, client, ps.URL+"/fhir/Observation/lab-1", tok))
		}
	}
	slices.Sort(P)
	slices.Sort(B)
	n := float64(b.N)
	b.ReportMetric(float64(P[len(P)/2]), "p50P")
	b.ReportMetric(float64(B[len(B)/2]), "p50B")
	b.ReportMetric(float64(tp.sum.Load())/n, "handlerP")
	b.ReportMetric(float64(tb.sum.Load())/n, "handlerB")
	b.ReportMetric(float64(tp.sumUp.Load())/n, "upP")
	b.ReportMetric(float64(tb.sumUp.Load())/n, "upB")
}
