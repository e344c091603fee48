package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartkit/smartkit/smart/client"
	"github.com/smartkit/smartkit/smart/smarttest"
)

// wire is a transport that notes what each request carries as it leaves
// the app, and can answer a request itself (a redirect) in place of the
// server, as a FHIR server or an authorization server could.
type wire struct {
	next   http.RoundTripper
	mu     sync.Mutex
	sent   map[string]string // URL → its Authorization header
	answer func(*http.Request) *http.Response
}

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	w.mu.Lock()
	if w.sent == nil {
		w.sent = map[string]string{}
	}
	w.sent[r.URL.String()] = r.Header.Get("Authorization")
	answer := w.answer
	w.mu.Unlock()
	if answer != nil {
		if resp := answer(r); resp != nil {
			return resp, nil
		}
	}
	return w.next.RoundTrip(r)
}

func (w *wire) authorization(u string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.sent[u]
	return a, ok
}

// redirect answers with a redirect to target.
func redirect(r *http.Request, status int, target string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{"Location": {target}}, Body: http.NoBody, Request: r}
}

// collector is another server, which notes what reaches it.
func collector(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization")+" body="+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
}

// TestTokenGoesOnlyToTheFHIRServer: a session's and a backend's FHIR
// clients send the token with the requests for the FHIR base, and without
// it to another server, to another path of the same host, and after a
// redirect the FHIR server answers with (found: the transport added the
// token to every request, so an app fetching an attachment URL a record
// named, or following the FHIR server's redirect to a file store, handed
// its token to that host).
func TestTokenGoesOnlyToTheFHIRServer(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	other, reached := collector(t)
	w := &wire{next: ehr.Client().Transport}
	w.answer = func(r *http.Request) *http.Response {
		if r.URL.Path == "/fhir/Binary/scan" { // the FHIR server sends the file from elsewhere
			return redirect(r, http.StatusFound, other.URL+"/files/scan")
		}
		return nil
	}
	a := newApp(t, ehr, "launch/patient", "patient/*.rs")
	a.cfg.HTTPClient = &http.Client{Transport: w}
	s, err := a.standalone()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	origin := strings.TrimSuffix(ehr.FHIRBase, "/fhir")

	key := nightly(t, ehr)
	b := &client.Backend{ClientID: "nightly", FHIRBase: ehr.FHIRBase, Key: key, KeyID: "job-1",
		Scopes: []string{"system/Patient.rs"}, HTTPClient: &http.Client{Transport: w}}

	for name, hc := range map[string]*http.Client{"session": s.Client(ctx), "backend": b.Client(ctx)} {
		if code, _ := getJSON(t, hc, ehr.FHIRBase+"/Patient/smart-1"); code != 200 {
			t.Fatalf("%s: a read from the FHIR server: %d", name, code)
		}
		if auth, _ := w.authorization(ehr.FHIRBase + "/Patient/smart-1"); !strings.HasPrefix(auth, "Bearer ") {
			t.Errorf("%s: the FHIR server's request went without the token: %q", name, auth)
		}
		for _, u := range []string{other.URL + "/attachment.pdf", origin + "/fhir2/Patient", origin + "/auth/userinfo", ehr.FHIRBase + "/Binary/scan"} {
			resp, err := hc.Get(u)
			if err != nil {
				t.Fatalf("%s: %s: %v", name, u, err)
			}
			resp.Body.Close()
			if auth, ok := w.authorization(u); !ok || auth != "" && u != ehr.FHIRBase+"/Binary/scan" {
				t.Errorf("%s: %s went with %q", name, u, auth)
			}
		}
		for _, got := range reached() {
			if !strings.Contains(got, "auth= ") {
				t.Errorf("%s: another server got the token: %s", name, got)
			}
		}
		if len(reached()) == 0 {
			t.Fatalf("%s: the redirect was not followed", name)
		}
	}
	// With no FHIR base there is nowhere the token may go.
	nowhere := &client.Backend{ClientID: "nightly", TokenURL: ehr.Issuer + "/token", Key: key, KeyID: "job-1",
		Scopes: []string{"system/Patient.rs"}, HTTPClient: &http.Client{Transport: w}}
	if _, err := nowhere.Client(ctx).Get(ehr.FHIRBase + "/Patient"); err == nil {
		t.Error("a backend without a FHIR base sent a request")
	}
}

// TestTokenRequestsFollowNoRedirect: a token request (the code's exchange,
// a refresh, a backend's client_credentials) answered with a 307 or 308
// fails, and what it carried (code and verifier, refresh token, client
// assertion) goes nowhere else (found: net/http posted the form again to
// wherever the redirect pointed; an assertion so sent could be redeemed
// there for the backend's token within its lifetime).
func TestTokenRequestsFollowNoRedirect(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	other, reached := collector(t)
	var status int
	w := &wire{next: ehr.Client().Transport}
	w.answer = func(r *http.Request) *http.Response {
		if status != 0 && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") && !strings.HasPrefix(r.URL.String(), other.URL) {
			return redirect(r, status, other.URL+"/token")
		}
		return nil
	}
	a := newApp(t, ehr, "launch/patient", "offline_access", "patient/*.rs")
	a.cfg.HTTPClient = &http.Client{Transport: w}
	key := nightly(t, ehr)
	for _, status = range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		if _, err := a.standalone(); err == nil {
			t.Errorf("%d: a code exchange answered with a redirect succeeded", status)
		}
		b := &client.Backend{ClientID: "nightly", FHIRBase: ehr.FHIRBase, Key: key, KeyID: "job-1",
			Scopes: []string{"system/Patient.rs"}, HTTPClient: &http.Client{Transport: w}}
		if _, err := b.Token(context.Background()); err == nil {
			t.Errorf("%d: a backend token request answered with a redirect succeeded", status)
		}
	}
	status = 0
	s, err := a.standalone()
	if err != nil {
		t.Fatal(err)
	}
	status = http.StatusTemporaryRedirect
	s.Token.Expiry = time.Now().Add(-time.Minute)
	if _, err := s.TokenSource(context.Background()).Token(); err == nil {
		t.Error("a refresh answered with a redirect succeeded")
	}
	if got := reached(); len(got) != 0 {
		t.Errorf("token requests were posted to another server: %q", got)
	}
}

// TestBackendFetchesOnce: workers asking for the backend's token at once,
// with none cached, share one token request.
func TestBackendFetchesOnce(t *testing.T) {
	ehr := smarttest.NewServer(t, smarttest.Config{})
	key := nightly(t, ehr)
	var mu sync.Mutex
	posts := 0
	w := &wire{next: ehr.Client().Transport, answer: func(r *http.Request) *http.Response {
		if r.Method == http.MethodPost {
			mu.Lock()
			posts++
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // a slow token endpoint: the others arrive meanwhile
		}
		return nil
	}}
	b := &client.Backend{ClientID: "nightly", FHIRBase: ehr.FHIRBase, Key: key, KeyID: "job-1",
		Scopes: []string{"system/Patient.rs"}, HTTPClient: &http.Client{Transport: w}}
	var wg sync.WaitGroup
	toks := make([]string, 16)
	for i := range toks {
		wg.Go(func() {
			if tok, err := b.Token(context.Background()); err == nil {
				toks[i] = tok.AccessToken
			}
		})
	}
	wg.Wait()
	for _, tok := range toks {
		if tok == "" || tok != toks[0] {
			t.Fatalf("the workers got different tokens, or none")
		}
	}
	if posts != 1 {
		t.Errorf("%d token requests for 16 workers at once", posts)
	}
	// A caller that gives up while another's request is in flight returns
	// at once, and the request in flight still lands.
	hold, posted := make(chan struct{}), make(chan struct{})
	w2 := &wire{next: ehr.Client().Transport, answer: func(r *http.Request) *http.Response {
		if r.Method == http.MethodPost {
			close(posted)
			<-hold
		}
		return nil
	}}
	b2 := &client.Backend{ClientID: "nightly", FHIRBase: ehr.FHIRBase, Key: key, KeyID: "job-1",
		Scopes: []string{"system/Patient.rs"}, HTTPClient: &http.Client{Transport: w2}}
	first := make(chan error, 1)
	go func() { _, err := b2.Token(context.Background()); first <- err }()
	<-posted
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b2.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a caller that gave up: %v", err)
	}
	close(hold)
	if err := <-first; err != nil {
		t.Errorf("the request in flight: %v", err)
	}
}
