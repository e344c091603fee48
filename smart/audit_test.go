package smart_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/launch"
)

// TestAuditTrail runs a launch, refresh, reuse, revocation and failures,
// and checks that each event type lands with the fields a security team
// needs, and never with token material.
func TestAuditTrail(t *testing.T) {
	e := newEnv(t)
	e.launches.Audit = e.audit
	ctx := context.Background()
	l, _ := e.launches.Mint(ctx, launch.Request{ClientID: "app", UserID: "dr-lee", FHIRBase: e.fhir, Context: launch.Context{Patient: "123"}})
	params, verifier := e.authzParams("launch openid fhirUser offline_access patient/*.rs")
	params.Set("launch", l.ID)
	p := parsePage(e.start(params, "dr-lee"))
	q := e.redirectParams(e.approve(p, "dr-lee"), "https://app.example/cb")
	_, m := e.exchange(q.Get("code"), verifier)
	rt := m["refresh_token"].(string)
	_, r2 := refresh(e, rt, nil)
	refresh(e, rt, nil) // reuse
	e.post(e.issuer+"/revoke", url.Values{"token": {r2["access_token"].(string)}, "client_id": {"app"}}, "")
	e.post(e.issuer+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"nobody"}}, "")
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/introspect", strings.NewReader("token=abc"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("conf", e.secret)
	e.do(req, "")

	want := map[audit.Type]func(ev audit.Event) bool{
		audit.LaunchMinted:   func(ev audit.Event) bool { return ev.LaunchRef != "" && ev.Patient == "123" && ev.UserID == "dr-lee" },
		audit.ConsentGranted: func(ev audit.Event) bool { return ev.UserID == "dr-lee" && ev.Patient == "123" && ev.Scopes != "" },
		audit.CodeIssued: func(ev audit.Event) bool {
			return ev.GrantID != "" && ev.LaunchRef == audit.Ref(l.ID) && ev.Patient == "123"
		},
		audit.TokenIssued:      func(ev audit.Event) bool { return ev.TokenID != "" && ev.GrantID != "" && ev.ClientID == "app" },
		audit.TokenRefreshed:   func(ev audit.Event) bool { return ev.TokenID != "" },
		audit.RefreshReuse:     func(ev audit.Event) bool { return ev.Severity == audit.Security && ev.GrantID != "" },
		audit.ClientAuthFailed: func(ev audit.Event) bool { return ev.ClientID == "nobody" && ev.Outcome == audit.Failure },
		audit.Introspection:    func(ev audit.Event) bool { return ev.ClientID == "conf" },
	}
	for ty, ok := range want {
		evs := e.audit.Of(ty)
		if len(evs) == 0 || !ok(evs[0]) {
			t.Errorf("%s: %+v", ty, evs)
		}
	}
	secrets := []string{l.ID, q.Get("code"), verifier, rt, m["access_token"].(string), e.secret}
	for _, ev := range e.audit.Events() {
		if ev.Time.IsZero() || ev.SourceIP == "" && ev.Type != audit.LaunchMinted { // minting is a host call, not a request
			t.Errorf("event without time or source: %+v", ev)
		}
		s := strings.Join([]string{ev.Reason, ev.Scopes, ev.LaunchRef, ev.TokenID, ev.GrantID, ev.ClientID, ev.UserID}, " ")
		for _, secret := range secrets {
			if secret != "" && strings.Contains(s, secret) {
				t.Fatalf("secret material in %s event: %+v", ev.Type, ev)
			}
		}
	}
}

// TestAuditFailureFailsClosed: when the audit sink cannot record, nothing is issued.
func TestAuditFailureFailsClosed(t *testing.T) {
	e := newEnv(t)
	code, verifier := e.code("launch/patient patient/*.rs", "patient")
	e.srv.Audit = audit.SinkFunc(func(context.Context, audit.Event) error { return errors.New("disk full") })
	resp, m := e.exchange(code, verifier)
	if resp.StatusCode != http.StatusInternalServerError || m["access_token"] != nil || m["error"] != "server_error" {
		t.Fatalf("with a failing audit sink: %d %v", resp.StatusCode, m)
	}
}
