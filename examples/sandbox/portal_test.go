package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/audit/balp"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/smart/registry"
)

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// post submits a form without following redirects.
func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	resp, err := b.hc.PostForm(b.sb.URL+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// csrf signs in if needed and returns the anti-forgery token of a form page.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, page := b.visit(b.sb.URL + path)
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("%s has no csrf field:\n%s", path, page)
	}
	return m[1]
}

func appCount(t *testing.T, sb *Sandbox) int {
	apps, err := sb.Store.Registry().List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return len(apps)
}

func TestPortalRegistersAndLaunchTestsAnApp(t *testing.T) {
	sb := startSandbox(t)
	b := newBrowser(t, sb, "clinician")
	token := b.csrf("/portal/register")
	before := appCount(t, sb)
	good := url.Values{"csrf": {token}, "client_name": {"Vendor Vitals"}, "grant_type": {"authorization_code"},
		"redirect_uris": {"http://127.0.0.1:9999/callback\n"}, "launch_uri": {"http://127.0.0.1:9999/launch"},
		"scope": {"launch openid fhirUser patient/Observation.rs"}, "token_endpoint_auth_method": {"none"}}

	// Refusals change nothing.
	forged := url.Values{}
	for k, v := range good {
		forged[k] = v
	}
	forged.Set("csrf", "forged")
	if status, _ := b.post("/portal/register", forged); status != http.StatusForbidden {
		t.Errorf("a forged form answered %d", status)
	}
	bad := url.Values{}
	for k, v := range good {
		bad[k] = v
	}
	bad.Set("redirect_uris", "http://127.0.0.1:9999/cb#frag")
	bad.Set("scope", "patient/Observation.xyz")
	status, page := b.post("/portal/register", bad)
	if status != http.StatusBadRequest || !strings.Contains(page, `id="field-errors"`) || !strings.Contains(page, "redirect_uris") {
		t.Errorf("invalid metadata answered %d:\n%s", status, page)
	}
	if n := appCount(t, sb); n != before {
		t.Fatalf("refused registrations created %d apps", n-before)
	}

	status, page = b.post("/portal/register", good)
	id := regexp.MustCompile(`id="client-id">([^<]+)<`).FindStringSubmatch(page)
	if status != http.StatusCreated || id == nil {
		t.Fatalf("registration answered %d:\n%s", status, page)
	}
	a, err := sb.Store.Registry().ByClientID(context.Background(), "", id[1])
	if err != nil || a.State != registry.SandboxApproved || a.Current.Metadata.LaunchURI != "http://127.0.0.1:9999/launch" {
		t.Fatalf("registered app: %+v, %v", a, err)
	}

	// The portal offers a launch test with the awkward patients first, and
	// the launch goes to the app's launch URL with iss and launch.
	_, home := b.visit(sb.URL + "/portal/")
	if !strings.Contains(home, id[1]) || !strings.Contains(home, `<option value="pt-nodemo">`) {
		t.Fatalf("portal home:\n%s", home)
	}
	// A backend service (the example one) is offered a bulk export instead.
	if !strings.Contains(home, `<code class="export">GET `+sb.FHIRBase+`/Group/grp-panel/$export</code>`) {
		t.Fatalf("portal home offers no bulk export to the example backend:\n%s", home)
	}
	b.stop = "http://127.0.0.1:9999/"
	final, _ := b.visit(sb.URL + "/ehr/launch?" + url.Values{"client_id": {id[1]}, "patient": {"pt-newborn"}}.Encode())
	if !strings.HasPrefix(final, "http://127.0.0.1:9999/launch?") || !strings.Contains(final, "launch=") ||
		!strings.Contains(final, "iss="+url.QueryEscape(sb.FHIRBase)) {
		t.Fatalf("launch test went to %s", final)
	}

	// The scope catalog explains in plain language, and refuses nonsense.
	_, cat := b.visit(sb.URL + "/portal/scopes?scope=" + url.QueryEscape("patient/Observation.rs?category=laboratory"))
	if !strings.Contains(cat, `id="explained"`) || !strings.Contains(cat, `<table id="catalog">`) {
		t.Fatalf("scope catalog:\n%s", cat)
	}
	resp, err := b.hc.Get(sb.URL + "/portal/scopes?scope=patient%2FObservation.xyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `id="scope-error"`) {
		t.Errorf("a bad scope answered %d:\n%s", resp.StatusCode, body)
	}
}

func TestAdminConsole(t *testing.T) {
	sb := startSandbox(t)
	ctx := context.Background()

	// Only the admin role gets in.
	clin := newBrowser(t, sb, "clinician")
	clin.visit(sb.URL + "/ehr/")
	resp, err := clin.hc.Get(sb.URL + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a clinician got %d from the admin console", resp.StatusCode)
	}
	// The clinician launches the example app, so there is a grant and an audit trail.
	clin.visit(sb.URL + "/ehr/launch?" + url.Values{"client_id": {ExampleAppID}, "patient": {"pt-003"}}.Encode())

	adm := newBrowser(t, sb, "admin")
	token := adm.csrf("/admin/")
	exampleApp, err := sb.Store.Registry().ByClientID(ctx, "", ExampleAppID)
	if err != nil {
		t.Fatal(err)
	}

	// A lifecycle action needs a reason; without one nothing changes.
	status, _ := adm.post("/admin/apps/transition", url.Values{"csrf": {token}, "app_id": {exampleApp.ID}, "to": {"suspended"}})
	if a, _ := sb.Store.Registry().App(ctx, "", exampleApp.ID); status != http.StatusBadRequest || a.State != registry.SandboxApproved {
		t.Fatalf("suspension without a reason: %d, state %s", status, a.State)
	}
	status, _ = adm.post("/admin/apps/transition", url.Values{"csrf": {"x"}, "app_id": {exampleApp.ID}, "to": {"suspended"}, "reason": {"r"}})
	if a, _ := sb.Store.Registry().App(ctx, "", exampleApp.ID); status != http.StatusForbidden || a.State != registry.SandboxApproved {
		t.Fatalf("forged suspension: %d, state %s", status, a.State)
	}

	// Grants per user, revoked with a reason.
	_, grants := adm.visit(sb.URL + "/admin/grants?user=clinician")
	gid := regexp.MustCompile(`name="grant_id" value="([^"]+)"`).FindStringSubmatch(grants)
	if gid == nil {
		t.Fatalf("no revocable grant for clinician:\n%s", grants)
	}
	status, page := adm.post("/admin/grants/revoke", url.Values{"csrf": {token}, "grant_id": {gid[1]}, "reason": {"test"}, "user": {"clinician"}})
	g, err := sb.Consent.Store.Grant(ctx, "", gid[1])
	if status != http.StatusOK || err != nil || g.Status != consent.Inactive || g.RevokedBy != "admin" {
		t.Fatalf("revocation: %d %+v %v\n%s", status, g, err, page)
	}

	// Suspend with a reason, then reinstate.
	status, _ = adm.post("/admin/apps/transition", url.Values{"csrf": {token}, "app_id": {exampleApp.ID}, "to": {"suspended"}, "reason": {"security review"}})
	if a, _ := sb.Store.Registry().App(ctx, "", exampleApp.ID); status != http.StatusSeeOther || a.State != registry.Suspended {
		t.Fatalf("suspension: %d, state %s", status, a.State)
	}
	status, _ = adm.post("/admin/apps/transition", url.Values{"csrf": {token}, "app_id": {exampleApp.ID}, "to": {"sandbox_approved"}, "reason": {"cleared"}})
	if a, _ := sb.Store.Registry().App(ctx, "", exampleApp.ID); status != http.StatusSeeOther || a.State != registry.SandboxApproved {
		t.Fatalf("reinstatement: %d, state %s", status, a.State)
	}

	// The audit search finds the steps; the export is valid BALP.
	// (The sandbox writes audit asynchronously: wait for the last step.)
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		p, err := sb.AuditLog.Query(ctx, audit.Query{Types: []audit.Type{audit.AppTransition}, UserID: "admin", Limit: 2})
		if err == nil && len(p.Records) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lifecycle changes never reached the audit log")
		}
	}
	_, auditPage := adm.visit(sb.URL + "/admin/audit?app=" + ExampleAppID + "&from=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	for _, want := range []string{string(audit.LaunchMinted), string(audit.TokenIssued), string(audit.ConsentRevoked), "pt-003"} {
		if !strings.Contains(auditPage, want) {
			t.Errorf("audit search for the app lacks %s", want)
		}
	}
	// A search that disclosed several patients' records is found by each,
	// and the page says how many more it named.
	if err := sb.AuditLog.Record(ctx, audit.Event{Time: time.Now(), Type: audit.ResourceAllowed, Outcome: audit.Success,
		ClientID: "research-x", Interaction: "search-type", Resource: "Observation", Patient: "pt-001", Patients: []string{"pt-009", "pt-010"}}); err != nil {
		t.Fatal(err)
	}
	if _, page := adm.visit(sb.URL + "/admin/audit?patient=pt-010"); !strings.Contains(page, "research-x") ||
		!strings.Contains(page, `title="pt-009 pt-010">+2 more`) {
		t.Errorf("the audit search for a patient named second lacks the event:\n%s", page)
	}
	_, transitions := adm.visit(sb.URL + "/admin/audit?type=" + string(audit.AppTransition) + "&user=admin")
	if !strings.Contains(transitions, "security review") {
		t.Errorf("audit search lacks the suspension:\n%s", transitions)
	}
	resp, err = adm.hc.Get(sb.URL + "/admin/audit?format=fhir&app=" + ExampleAppID)
	if err != nil {
		t.Fatal(err)
	}
	export, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/fhir+json" {
		t.Fatalf("export content type %q", resp.Header.Get("Content-Type"))
	}
	if err := balp.Validate(export); err != nil {
		t.Fatalf("the export is not valid BALP: %v", err)
	}
	// Reading the audit log was itself audited.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		p, err := sb.AuditLog.Query(ctx, audit.Query{Types: []audit.Type{audit.AuditRead}, UserID: "admin", Limit: 10})
		if err == nil && len(p.Records) == 4 && p.Records[0].Event.Interaction == "export" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit searches were not audited: %+v %v", p.Records, err)
		}
	}
	resp, err = adm.hc.Get(sb.URL + "/admin/audit?from=yesterday")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad time answered %d", resp.StatusCode)
	}
}
