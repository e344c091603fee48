package smart_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/smart"
)

// throttled sets a small throttle on e whose source is the X-Test-Source
// header (default "s1").
func throttled(e *env, source, client int) {
	e.srv.Throttle = smart.Throttle{SourceFailures: source, ClientFailures: client, Window: time.Minute,
		SourceOf: func(r *http.Request) string {
			if s := r.Header.Get("X-Test-Source"); s != "" {
				return s
			}
			return "s1"
		}}
}

// introspectAs calls the introspection endpoint as the confidential client
// with secret, from source.
func (e *env) introspectAs(secret, source string) *http.Response {
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/introspect", strings.NewReader("token=abc"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("conf", secret)
	req.Header.Set("X-Test-Source", source)
	return e.do(req, "")
}

// throttleEvents counts the audited refusals of the throttle.
func (e *env) throttleEvents() int {
	n := 0
	for _, ev := range e.audit.Of(audit.TokenRefused) {
		if strings.HasPrefix(ev.Reason, "throttled:") {
			if ev.Severity != audit.Security {
				e.t.Errorf("throttle event at severity %q", ev.Severity)
			}
			n++
		}
	}
	return n
}

func wantThrottled(t *testing.T, resp *http.Response) {
	t.Helper()
	m := decode(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || m["error"] != "temporarily_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %v (Retry-After %q), want 429 temporarily_unavailable", resp.StatusCode, m, resp.Header.Get("Retry-After"))
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
}

func TestThrottleSecretGuessing(t *testing.T) {
	e := newEnv(t)
	throttled(e, 3, 100)
	for i := range 3 {
		if r := e.introspectAs("wrong", "s1"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, r.StatusCode, body(r))
		}
	}
	// The source has spent its budget: even the right secret is refused,
	// before it is looked at, and each refusal says when to come back.
	for range 3 {
		r := e.introspectAs(e.secret, "s1")
		if got := r.Header.Get("Retry-After"); got != "20" { // one failure back every 60/3 s
			t.Errorf("Retry-After %q, want 20", got)
		}
		wantThrottled(t, r)
	}
	if n := e.throttleEvents(); n != 1 {
		t.Errorf("%d throttle events audited, want 1 (the episode's first refusal)", n)
	}
	if n := e.events(audit.Introspection); n != 0 {
		t.Errorf("%d introspections happened while throttled", n)
	}
	// Another source is not affected.
	if r := e.introspectAs(e.secret, "s2"); r.StatusCode != http.StatusOK {
		t.Fatalf("other source: %d %s", r.StatusCode, body(r))
	}
	// One failure's worth of time later, one more attempt is allowed.
	e.clock.Add(20 * time.Second)
	if r := e.introspectAs(e.secret, "s1"); r.StatusCode != http.StatusOK {
		t.Fatalf("after the wait: %d %s", r.StatusCode, body(r))
	}
	// Successes cost nothing: the budget refilled is not spent by them.
	for range 10 {
		if r := e.introspectAs(e.secret, "s1"); r.StatusCode != http.StatusOK {
			t.Fatalf("success throttled: %d %s", r.StatusCode, body(r))
		}
	}
	if r := e.introspectAs("wrong", "s1"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%d", r.StatusCode)
	}
	wantThrottled(t, e.introspectAs("wrong", "s1"))
	if n := e.throttleEvents(); n != 2 {
		t.Errorf("%d throttle events audited, want 2 (two episodes)", n)
	}
}

func TestThrottleCodeGuessing(t *testing.T) {
	e := newEnv(t)
	throttled(e, 4, 100)
	code, verifier := e.code("launch/patient patient/*.rs", "patient")
	for i := range 4 {
		resp, m := e.exchange("guess"+strings.Repeat("x", i+20), verifier)
		if resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Fatalf("guess %d: %d %v", i, resp.StatusCode, m)
		}
	}
	// The real code is refused unread: it is not spent.
	if resp, m := e.exchange(code, verifier); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("real code while throttled: %d %v", resp.StatusCode, m)
	}
	if n := e.events(audit.TokenIssued); n != 0 {
		t.Fatalf("%d tokens issued while throttled", n)
	}
	if n := e.events(audit.CodeReuse); n != 0 {
		t.Fatalf("the throttled redemption counted as a use")
	}
	e.clock.Add(15 * time.Second)
	if resp, m := e.exchange(code, verifier); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the wait: %d %v", resp.StatusCode, m)
	}
}

func TestThrottleRefreshGuessing(t *testing.T) {
	e := newEnv(t)
	throttled(e, 2, 100)
	m := e.tokens("launch/patient patient/*.rs offline_access")
	refresh := func(rt string) *http.Response {
		return e.post(e.issuer+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}}, "")
	}
	for range 2 {
		if r := refresh("not-a-refresh-token"); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("%d %s", r.StatusCode, body(r))
		}
	}
	wantThrottled(t, refresh(m["refresh_token"].(string)))
	if n := e.events(audit.TokenRefreshed); n != 0 {
		t.Fatal("refreshed while throttled")
	}
}

func TestThrottleNamedClientAcrossSources(t *testing.T) {
	e := newEnv(t)
	throttled(e, 100, 4)
	for i := range 4 { // one guess from each of four sources
		if r := e.introspectAs("wrong", "bot"+string(rune('a'+i))); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d", r.StatusCode)
		}
	}
	// The client is refused to every source for a while, its own too.
	wantThrottled(t, e.introspectAs(e.secret, "home"))
	// Guesses naming unregistered clients create no client bucket and
	// cost only their source.
	for range 10 {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/introspect", strings.NewReader("token=abc"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("nobody", "x")
		req.Header.Set("X-Test-Source", "scan")
		if r := e.do(req, ""); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unknown client: %d", r.StatusCode)
		}
	}
	// Other clients are unaffected.
	if resp, m := e.backendToken(e.assertion(nil), "system/Observation.rs"); resp.StatusCode != http.StatusOK {
		t.Fatalf("backend client: %d %v", resp.StatusCode, m)
	}
	// A client with a key gives nothing to guess: bad assertions in its
	// name from many sources cost those sources only, never the client.
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"},
			"scope": {"system/Observation.rs"}, "client_assertion_type": {smart.AssertionType}, "client_id": {"bulk"},
			"client_assertion": {"eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJidWxrIn0.c2ln"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Test-Source", "bot"+strconv.Itoa(i))
		if r := e.do(req, ""); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad assertion: %d", r.StatusCode)
		}
	}
	if resp, m := e.backendToken(e.assertion(nil), "system/Observation.rs"); resp.StatusCode != http.StatusOK {
		t.Fatalf("backend client after bad assertions in its name: %d %v", resp.StatusCode, m)
	}
	e.clock.Add(15 * time.Second)
	if r := e.introspectAs(e.secret, "home"); r.StatusCode != http.StatusOK {
		t.Fatalf("after the wait: %d %s", r.StatusCode, body(r))
	}
}

// slowClients is a client store that takes its time (a remote database),
// so the requests of a burst are all in flight together.
type slowClients struct{ smart.ClientStore }

func (s slowClients) Client(ctx context.Context, tenant, id string) (*smart.Client, error) {
	time.Sleep(20 * time.Millisecond)
	return s.ClientStore.Client(ctx, tenant, id)
}

// TestThrottleConcurrentGuesses: requests in flight hold their source's
// budget, so a burst of parallel guesses gets no more than the budget.
func TestThrottleConcurrentGuesses(t *testing.T) {
	e := newEnv(t)
	throttled(e, 5, 1000)
	e.srv.Clients = slowClients{e.clients}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"/introspect", strings.NewReader("token=abc"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("conf", "wrong")
			resp, err := e.http().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusUnauthorized] != 5 || codes[http.StatusTooManyRequests] != 35 {
		t.Fatalf("statuses %v, want 5 × 401 and 35 × 429", codes)
	}
}

func TestThrottleEndpoints(t *testing.T) {
	e := newEnv(t)
	throttled(e, 1, 100)
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/revoke", strings.NewReader("token=abc"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("conf", "wrong")
	if r := e.do(req, ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	// The budget is the source's for that client, whichever endpoint spent it.
	wantThrottled(t, e.introspectAs(e.secret, "s1"))
	// Another client at the same address keeps its own.
	if resp, m := e.backendToken(e.assertion(nil), "system/Observation.rs"); resp.StatusCode != http.StatusOK {
		t.Fatalf("another client at the address: %d %v", resp.StatusCode, m)
	}
	// Bad requests that guess nothing cost nothing.
	e.clock.Add(time.Minute)
	for range 5 {
		r := e.post(e.issuer+"/token", url.Values{"grant_type": {"password"}}, "")
		if r.StatusCode != http.StatusBadRequest {
			t.Fatalf("%d", r.StatusCode)
		}
	}
	if resp, m := e.backendToken(e.assertion(nil), "system/Observation.rs"); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
}

// TestThrottleSharedAddress: behind one address (a balancer without
// SourceOf, a hospital's NAT), a client that keeps failing (a job with a
// stale secret) exhausts only its own budget there; an address trying many
// clients is stopped by SourceAllFailures.
func TestThrottleSharedAddress(t *testing.T) {
	e := newEnv(t)
	throttled(e, 3, 1000)
	e.srv.Throttle.SourceAllFailures = 10
	e.srv.Throttle.SourceOf = func(r *http.Request) string { // every caller is the balancer, "lb"
		if s := r.Header.Get("X-Test-Source"); s != "" {
			return s
		}
		return "lb"
	}
	for range 3 {
		if r := e.introspectAs("stale", "lb"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d", r.StatusCode)
		}
	}
	wantThrottled(t, e.introspectAs(e.secret, "lb"))
	code, verifier := e.code("launch/patient patient/*.rs", "patient") // "app", through the same address
	if resp, m := e.exchange(code, verifier); resp.StatusCode != http.StatusOK {
		t.Fatalf("another client behind the address: %d %v", resp.StatusCode, m)
	}
	// One address naming client after client: 10 failures in all.
	n := 0
	for i := range 20 {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/introspect", strings.NewReader("token=abc"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("client-"+strconv.Itoa(i), "x")
		req.Header.Set("X-Test-Source", "sprayer")
		if r := e.do(req, ""); r.StatusCode == http.StatusUnauthorized {
			n++
		} else if r.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%d", r.StatusCode)
		}
	}
	if n != 10 {
		t.Fatalf("%d failures let through from one address, want SourceAllFailures (10)", n)
	}
}

func TestThrottleDefaultsAndDisabled(t *testing.T) {
	e := newEnv(t) // the zero Throttle: on, 20 failures per source
	for i := range smart.DefaultSourceFailures {
		if r := e.introspectAs("wrong", ""); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
	}
	wantThrottled(t, e.introspectAs(e.secret, ""))

	e = newEnv(t)
	e.srv.Throttle.Disabled = true
	for i := range 2 * smart.DefaultSourceFailures {
		if r := e.introspectAs("wrong", ""); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
	}
	if r := e.introspectAs(e.secret, ""); r.StatusCode != http.StatusOK {
		t.Fatalf("disabled: %d", r.StatusCode)
	}
}
