package smart_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/smart"
)

// silent runs an authorization request with prompt=none (or the given
// prompt) as user ("" for no one signed in) and returns the final response.
func (e *env) silent(scope, prompt, user string) (*http.Response, url.Values, string) {
	e.t.Helper()
	params, verifier := e.authzParams(scope)
	params.Set("prompt", prompt)
	return e.start(params, user), params, verifier
}

// wantAppError checks a redirect to the app with error code c, the request's
// state and iss, and that no page was shown on the way.
func wantAppError(t *testing.T, e *env, resp *http.Response, params url.Values, c smart.Code) {
	t.Helper()
	q := e.redirectParams(resp, "https://app.example/cb")
	if q.Get("error") != string(c) || q.Get("state") != params.Get("state") || q.Get("iss") != e.issuer || q.Get("code") != "" {
		t.Fatalf("redirect %v, want error=%s with state and iss", q, c)
	}
}

func TestPromptNoneNotSignedIn(t *testing.T) {
	e := newEnv(t)
	resp, params, _ := e.silent("launch/patient patient/*.rs", "none", "")
	// Not the login page (a 401 here): straight back to the app.
	wantAppError(t, e, resp, params, smart.LoginRequired)
	if n := e.events(audit.CodeIssued); n != 0 {
		t.Fatalf("%d codes issued", n)
	}
}

func TestPromptNoneNeedsConsent(t *testing.T) {
	e := newEnv(t) // no consent policy: every authorization is shown to the user
	resp, params, _ := e.silent("launch/patient patient/*.rs", "none", "patient")
	wantAppError(t, e, resp, params, smart.ConsentRequired)
	if e.events(audit.ConsentGranted) != 0 || e.events(audit.CodeIssued) != 0 {
		t.Fatal("prompt=none granted consent")
	}
}

func TestPromptNoneNeedsPatient(t *testing.T) {
	e := newEnv(t)
	// dr-lee is not a patient: a standalone patient launch needs the picker.
	resp, params, _ := e.silent("launch/patient patient/*.rs", "none", "dr-lee")
	wantAppError(t, e, resp, params, smart.InteractionRequired)
}

// TestPromptNoneRemembered: with a consent the user gave before, a silent
// request is answered without a page; prompt=consent shows the page anyway.
func TestPromptNoneRemembered(t *testing.T) {
	e := newEnv(t)
	svc := &consent.Service{Policy: &consent.Policy{URI: consent.PolicyBasicNormal}, Store: &consent.Memory{}, Revoker: e.srv, Now: e.clock.Now}
	e.srv.Consent = &smart.PolicyConsent{Service: svc}
	const scope = "launch/patient patient/Observation.rs"

	// Before any consent: consent_required, and nothing is remembered.
	resp, params, _ := e.silent(scope, "none", "patient")
	wantAppError(t, e, resp, params, smart.ConsentRequired)
	if apps, _ := svc.ConnectedApps(context.Background(), "", "patient"); len(apps) != 0 {
		t.Fatalf("prompt=none recorded a consent: %+v", apps)
	}

	e.tokens(scope) // the user approves on the consent page

	resp, params, verifier := e.silent(scope, "none", "patient")
	q := e.redirectParams(resp, "https://app.example/cb")
	if q.Get("code") == "" || q.Get("state") != params.Get("state") {
		t.Fatalf("silent request after consent: %v", q)
	}
	if _, m := e.exchange(q.Get("code"), verifier); m["scope"] != scope {
		t.Fatalf("token: %v", m)
	}
	// Asking for more than was approved needs the user again.
	resp, params, _ = e.silent(scope+" patient/Condition.rs", "none", "patient")
	wantAppError(t, e, resp, params, smart.ConsentRequired)

	// prompt=consent shows the page though the consent is remembered.
	resp, _, _ = e.silent(scope, "consent", "patient")
	if p := parsePage(resp); p.status != http.StatusOK || p.req == "" || !strings.Contains(p.body, `id="approve"`) {
		t.Fatalf("prompt=consent: status %d, no consent page", p.status)
	}
}

func TestPromptValues(t *testing.T) {
	e := newEnv(t)
	resp, params, _ := e.silent("launch/patient patient/*.rs", "none consent", "patient")
	q := e.redirectParams(resp, "https://app.example/cb")
	if q.Get("error") != "invalid_request" || q.Get("state") != params.Get("state") {
		t.Fatalf("prompt=none consent: %v", q)
	}
	// login and select_account reach the host's Authenticator; unknown
	// values are dropped.
	var seen []string
	auth := e.srv.Authenticator
	e.srv.Authenticator = smart.AuthenticatorFunc(func(w http.ResponseWriter, r *http.Request) (smart.User, bool) {
		for _, v := range []string{smart.PromptLogin, smart.PromptSelectAccount, smart.PromptNone, smart.PromptConsent, "create"} {
			if smart.Prompted(r.Context(), v) {
				seen = append(seen, v)
			}
		}
		return auth.Authenticate(w, r)
	})
	resp, _, _ = e.silent("launch/patient patient/*.rs", "login select_account create", "patient")
	if p := parsePage(resp); p.status != http.StatusOK || p.req == "" {
		t.Fatalf("prompt=login: status %d", p.status)
	}
	if strings.Join(seen, " ") != "login select_account" {
		t.Fatalf("the Authenticator saw prompts %q", seen)
	}
}
