package smart_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/smart"
)

func TestConsentPolicyEndToEnd(t *testing.T) {
	e := newEnv(t)
	svc := &consent.Service{Policy: &consent.Policy{URI: consent.PolicyBasicNormal, ReleasedTags: []string{"SEX"}},
		Store: &consent.Memory{}, Revoker: e.srv, Now: e.clock.Now}
	e.srv.Consent = &smart.PolicyConsent{Service: svc}
	ctx := context.Background()

	params, verifier := e.authzParams("launch/patient offline_access patient/Observation.rs patient/Condition.rs")
	p := parsePage(e.start(params, "patient"))
	if !strings.Contains(p.body, `<option value="category:laboratory">`) {
		t.Fatalf("no category choice for Observation on the consent page:\n%s", p.body)
	}
	// Laboratory results only, and no conditions.
	form := url.Values{"req": {p.req}, "csrf": {p.csrf}, "decision": {"approve"}}
	form.Set(p.boxes[0], "on")                  // offline_access
	form.Set(p.boxes[1], "category:laboratory") // Observation
	q := e.redirectParams(e.post(e.issuer+"/authorize/consent", form, "patient"), "https://app.example/cb")
	_, m := e.exchange(q.Get("code"), verifier)
	want := "launch/patient offline_access patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	if m["scope"] != want {
		t.Fatalf("granted %v, want %s", m["scope"], want)
	}
	tok, err := e.verifier().Verify(ctx, m["access_token"].(string))
	if err != nil || tok.Clearance == nil || tok.Clearance.MaxConfidentiality != consent.Normal || len(tok.Clearance.Tags) != 1 {
		t.Fatalf("clearance in the token: %+v %v", tok.Clearance, err)
	}

	// The next launch for the same app, user and patient is not asked again.
	params2, verifier2 := e.authzParams("launch/patient patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory")
	resp := e.start(params2, "patient")
	q2 := e.redirectParams(resp, "https://app.example/cb")
	if _, m2 := e.exchange(q2.Get("code"), verifier2); m2["access_token"] == nil {
		t.Fatalf("remembered launch: %v", m2)
	}

	// Revoking the consent stops the access and refresh tokens of every launch under it.
	grants, _ := svc.ConnectedApps(ctx, "", "patient")
	if len(grants) != 1 || len(grants[0].TokenGrants) != 2 {
		t.Fatalf("connected apps %+v", grants)
	}
	if err := svc.Revoke(ctx, "", grants[0].ID, "patient", "changed my mind"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.verifier().Verify(ctx, m["access_token"].(string)); err == nil {
		t.Fatal("the access token survived revocation of the consent")
	}
	if resp, _ := refresh(e, m["refresh_token"].(string), nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the refresh token survived revocation: %d", resp.StatusCode)
	}
}

func TestConsentPolicyAdminReview(t *testing.T) {
	e := newEnv(t)
	svc := &consent.Service{Policy: &consent.Policy{}, Store: &consent.Memory{}}
	e.srv.Consent = &smart.PolicyConsent{Service: svc, Apps: func(_ context.Context, _ string, c *smart.Client) (consent.App, error) {
		a := consent.App{ClientID: c.ID, RiskTier: "high", Category: "clinician-facing"}
		a.Approved, _ = parseScopes(c.Scope)
		return a, nil
	}}
	params, _ := e.authzParams("launch/patient patient/Observation.cru")
	q := e.redirectParams(e.start(params, "patient"), "https://app.example/cb")
	if q.Get("error") != "access_denied" || !strings.Contains(q.Get("error_description"), "administrator") {
		t.Fatalf("high-risk writes without review: %v", q)
	}
}
