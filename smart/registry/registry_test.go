package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/registry"
)

func meta() registry.Metadata {
	return registry.Metadata{
		ClientName: "Growth Chart", RedirectURIs: []string{"https://growth.example/cb"}, TokenEndpointAuthMethod: "none",
		Scope:     "launch launch/patient openid fhirUser offline_access patient/Observation.rs patient/Patient.r",
		LaunchURI: "https://growth.example/launch", Contacts: []string{"support@growth.example"},
	}
}

type fixture struct {
	r     *registry.Registry
	audit *audit.Memory
	now   time.Time
	revs  *recorder
}

type recorder struct{ suspended []string }

func (r *recorder) SuspendClient(_ context.Context, _, clientID, _, _ string) (int, error) {
	r.suspended = append(r.suspended, clientID)
	return 1, nil
}

func newFixture() *fixture {
	f := &fixture{audit: &audit.Memory{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), revs: &recorder{}}
	f.r = &registry.Registry{Store: &registry.Memory{}, Audit: f.audit, Revokers: []registry.Revoker{f.revs},
		Now: func() time.Time { return f.now }}
	return f
}

func (f *fixture) create(t *testing.T) *registry.App {
	t.Helper()
	a, _, err := f.r.Create(context.Background(), "", registry.NewApp{Owner: registry.Owner{Name: "Growth Inc"},
		Category: registry.ClinicianFacing, RiskTier: registry.Moderate, Metadata: meta()}, "owner@growth")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// to brings an app to a state along the happy path.
func (f *fixture) to(t *testing.T, a *registry.App, s registry.State) *registry.App {
	t.Helper()
	ctx := context.Background()
	step := func(to registry.State) {
		var err error
		if a, err = f.r.Transition(ctx, "", a.ID, to, "admin", "test"); err != nil {
			t.Fatalf("→ %s: %v", to, err)
		}
	}
	if s == registry.Draft {
		return a
	}
	if s == registry.Retired {
		step(registry.Retired)
		return a
	}
	_, _ = f.r.RecordReview(ctx, "", a.ID, registry.Review{Passed: true, Evidence: []string{"REV-1"}}, "reviewer")
	step(registry.SandboxApproved)
	if s == registry.SandboxApproved {
		return a
	}
	if s == registry.Suspended {
		step(registry.Suspended)
		return a
	}
	_, _ = f.r.SetApprovedScope(ctx, "", a.ID, "launch launch/patient openid fhirUser offline_access patient/Observation.rs", "admin")
	_, _ = f.r.SetDUA(ctx, "", a.ID, "DUA-2026-7", "admin")
	step(registry.ProductionApproved)
	return a
}

func TestStateMachine(t *testing.T) {
	states := []registry.State{registry.Draft, registry.SandboxApproved, registry.ProductionApproved, registry.Suspended, registry.Retired}
	allowed := map[[2]registry.State]bool{
		{registry.Draft, registry.SandboxApproved}:              true,
		{registry.Draft, registry.Retired}:                      true,
		{registry.SandboxApproved, registry.ProductionApproved}: true,
		{registry.SandboxApproved, registry.Suspended}:          true,
		{registry.SandboxApproved, registry.Retired}:            true,
		{registry.ProductionApproved, registry.Suspended}:       true,
		{registry.ProductionApproved, registry.Retired}:         true,
		{registry.Suspended, registry.SandboxApproved}:          true, // it was suspended from sandbox_approved
		{registry.Suspended, registry.Retired}:                  true,
	}
	for _, from := range states {
		for _, to := range states {
			t.Run(string(from)+"→"+string(to), func(t *testing.T) {
				f := newFixture()
				a := f.to(t, f.create(t), from)
				if from == registry.Draft && to == registry.SandboxApproved {
					_, _ = f.r.RecordReview(context.Background(), "", a.ID, registry.Review{Passed: true}, "reviewer")
				}
				if from == registry.SandboxApproved && to == registry.ProductionApproved {
					_, _ = f.r.SetApprovedScope(context.Background(), "", a.ID, "patient/Observation.rs", "admin")
					_, _ = f.r.SetDUA(context.Background(), "", a.ID, "DUA-1", "admin")
				}
				_, err := f.r.Transition(context.Background(), "", a.ID, to, "admin", "table")
				if want := allowed[[2]registry.State{from, to}]; want != (err == nil) {
					t.Fatalf("allowed=%v, got err %v", want, err)
				}
				if err != nil && !errors.Is(err, registry.ErrTransition) {
					t.Fatalf("refusal is not ErrTransition: %v", err)
				}
			})
		}
	}
}

func TestPreconditions(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	a := f.create(t)
	if _, err := f.r.Transition(ctx, "", a.ID, registry.SandboxApproved, "admin", ""); !errors.Is(err, registry.ErrTransition) {
		t.Fatalf("sandbox approval without a review: %v", err)
	}
	_, _ = f.r.RecordReview(ctx, "", a.ID, registry.Review{Passed: false}, "reviewer")
	if _, err := f.r.Transition(ctx, "", a.ID, registry.SandboxApproved, "admin", ""); err == nil {
		t.Fatal("approved after a failed review")
	}
	_, _ = f.r.RecordReview(ctx, "", a.ID, registry.Review{Passed: true}, "reviewer")
	if _, err := f.r.Transition(ctx, "", a.ID, registry.SandboxApproved, "admin", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Transition(ctx, "", a.ID, registry.ProductionApproved, "admin", ""); err == nil || !strings.Contains(err.Error(), "approved scope set") {
		t.Fatalf("production without approved scopes: %v", err)
	}
	if _, err := f.r.SetApprovedScope(ctx, "", a.ID, "user/*.cruds", "admin"); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("approving scopes beyond the request: %v", err)
	}
	_, _ = f.r.SetApprovedScope(ctx, "", a.ID, "patient/Observation.rs", "admin")
	if _, err := f.r.Transition(ctx, "", a.ID, registry.ProductionApproved, "admin", ""); err == nil || !strings.Contains(err.Error(), "data-use agreement") {
		t.Fatalf("production without a DUA: %v", err)
	}
	// Retired is final.
	a = f.to(t, f.create(t), registry.Retired)
	for _, to := range []registry.State{registry.Draft, registry.SandboxApproved, registry.Retired} {
		if _, err := f.r.Transition(ctx, "", a.ID, to, "admin", ""); err == nil {
			t.Fatalf("retired → %s allowed", to)
		}
	}
	failures := 0
	for _, e := range f.audit.Of(audit.AppTransition) {
		if e.Outcome == audit.Failure {
			failures++
		}
	}
	if failures != 7 {
		t.Fatalf("%d refused transitions audited, want 7", failures)
	}
}

func TestValidationNamesEachBadValue(t *testing.T) {
	m := meta()
	m.RedirectURIs = []string{"https://ok.example/cb", "http://evil.example/cb", "https://x.example/*", "javascript:alert(1)", "https://a.example/cb#f"}
	m.JWKSURI = "http://keys.example/jwks"
	m.LaunchURI = "data:text/html,hi"
	m.Scope = "patient/Observation.sr"
	m.GrantTypes = []string{"password"}
	m.Contacts = []string{"not an email"}
	err := m.Validate()
	var ve *registry.ValidationError
	if !errors.As(err, &ve) || ve.Code() != "invalid_redirect_uri" {
		t.Fatalf("error %v", err)
	}
	for _, want := range []string{`"http://evil.example/cb"`, `"https://x.example/*"`, `"javascript:alert(1)"`, `"https://a.example/cb#f"`,
		"jwks_uri", "launch_uri", "patient/Observation.sr", "password", "contacts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "ok.example") {
		t.Error("a good redirect URI was reported")
	}
	if err := meta().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEnvironmentSeparation(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	a := f.to(t, f.create(t), registry.SandboxApproved)
	sb, prod := f.r.Clients(registry.Sandbox), f.r.Clients(registry.Production)
	sid, pid := a.ClientID(registry.Sandbox), a.ClientID(registry.Production)
	if sid == pid || sid == "" {
		t.Fatalf("client ids %q %q", sid, pid)
	}
	if _, err := sb.Client(ctx, "", sid); err != nil {
		t.Fatalf("sandbox client in sandbox: %v", err)
	}
	for name, lookup := range map[string]func() error{
		"sandbox id in production":               func() error { _, err := prod.Client(ctx, "", sid); return err },
		"production id before production":        func() error { _, err := prod.Client(ctx, "", pid); return err },
		"production id in sandbox":               func() error { _, err := sb.Client(ctx, "", pid); return err },
		"sandbox id in another tenant's sandbox": func() error { _, err := sb.Client(ctx, "other", sid); return err },
	} {
		if err := lookup(); !errors.Is(err, smart.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	a = f.to(t, f.create(t), registry.ProductionApproved)
	c, err := prod.Client(ctx, "", a.ClientID(registry.Production))
	if err != nil || c.Scope != "launch launch/patient openid fhirUser offline_access patient/Observation.rs" {
		t.Fatalf("production client %+v: %v (must carry the approved scope set)", c, err)
	}
}

func TestVersioning(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	a := f.to(t, f.create(t), registry.ProductionApproved)
	changed := meta()
	changed.RedirectURIs = []string{"https://growth.example/new-cb"}
	a, err := f.r.Update(ctx, "", a.ID, changed, "owner")
	if err != nil || a.Pending == nil || a.Current.Metadata.RedirectURIs[0] != "https://growth.example/cb" {
		t.Fatalf("a sensitive change applied at once: %+v %v", a.Current.Metadata.RedirectURIs, err)
	}
	c, _ := f.r.Clients(registry.Production).Client(ctx, "", a.ClientID(registry.Production))
	if c.RedirectURIs[0] != "https://growth.example/cb" {
		t.Fatal("the pending version took effect before review")
	}
	cosmetic := meta()
	cosmetic.ClientName = "Growth Chart Pro"
	if a, _ = f.r.Update(ctx, "", a.ID, cosmetic, "owner"); a.Current.Metadata.ClientName != "Growth Chart Pro" {
		t.Fatal("a cosmetic change did not apply")
	}
	if a, err = f.r.RecordReview(ctx, "", a.ID, registry.Review{Passed: true}, "reviewer"); err != nil || a.Pending != nil || a.Current.Number != 2 {
		t.Fatalf("review did not promote the version: %v", err)
	}
	c, _ = f.r.Clients(registry.Production).Client(ctx, "", a.ClientID(registry.Production))
	if c.RedirectURIs[0] != "https://growth.example/new-cb" {
		t.Fatal("the approved version did not take effect")
	}
}

func TestSecretRotationOverlap(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	m := meta()
	m.TokenEndpointAuthMethod = smart.AuthClientSecretBasic
	a, creds, err := f.r.Create(ctx, "", registry.NewApp{Owner: registry.Owner{Name: "Conf"}, Category: registry.Operational,
		RiskTier: registry.Low, Metadata: m}, "owner")
	if err != nil || creds.SandboxSecret == "" || creds.SandboxSecret == creds.ProductionSecret {
		t.Fatalf("secrets %+v %v", creds, err)
	}
	a = f.to(t, a, registry.SandboxApproved)
	newSecret, err := f.r.RotateSecret(ctx, "", a.ID, registry.Sandbox, time.Hour, "owner")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.r.Clients(registry.Sandbox).Client(ctx, "", a.ClientID(registry.Sandbox))
	if c.SecretHash != smart.HashSecret(newSecret) || len(c.OldSecretHashes) != 1 || c.OldSecretHashes[0] != smart.HashSecret(creds.SandboxSecret) {
		t.Fatal("rotation did not keep the old secret for the overlap")
	}
	f.now = f.now.Add(2 * time.Hour)
	if c, _ = f.r.Clients(registry.Sandbox).Client(ctx, "", a.ClientID(registry.Sandbox)); len(c.OldSecretHashes) != 0 {
		t.Fatal("the old secret outlived the overlap")
	}
}

func TestRecertification(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	a := f.to(t, f.create(t), registry.SandboxApproved)
	f.now = f.now.Add(360 * 24 * time.Hour)
	due, _ := f.r.Due(ctx, "", 30*24*time.Hour)
	if len(due) != 1 || due[0].ID != a.ID {
		t.Fatalf("due %v", due)
	}
	if ids, _ := f.r.SuspendOverdue(ctx, "", 7*24*time.Hour, "policy"); len(ids) != 0 {
		t.Fatal("suspended before the grace period ended")
	}
	f.now = f.now.Add(13 * 24 * time.Hour)
	ids, err := f.r.SuspendOverdue(ctx, "", 7*24*time.Hour, "policy")
	if err != nil || len(ids) != 1 {
		t.Fatalf("overdue suspension: %v %v", ids, err)
	}
	if len(f.revs.suspended) != 2 {
		t.Fatalf("grants revoked for %v, want both client ids", f.revs.suspended)
	}
}

func TestConcurrentEditsDoNotLoseWrites(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	a := f.create(t)
	done := make(chan error, 2)
	go func() { _, err := f.r.SetDUA(ctx, "", a.ID, "DUA-1", "a"); done <- err }()
	go func() {
		_, err := f.r.RecordReview(ctx, "", a.ID, registry.Review{Passed: true}, "b")
		done <- err
	}()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got, _ := f.r.Store.App(ctx, "", a.ID)
	if got.DUA != "DUA-1" || got.Current.Review == nil {
		t.Fatalf("a concurrent write was lost: dua=%q review=%v", got.DUA, got.Current.Review)
	}
}

func TestCreateSandboxApproved(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	in := registry.NewApp{Owner: registry.Owner{Name: "Growth Inc"}, Category: registry.ClinicianFacing, RiskTier: registry.Moderate,
		Metadata: meta(), Sandbox: &registry.SandboxApproval{By: "sandbox", Reason: "bundled example", ClientID: "growth-chart"}}
	a, creds, err := f.r.Create(ctx, "", in, "owner@growth")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.r.Store.App(ctx, "", a.ID)
	if err != nil || stored.State != registry.SandboxApproved || stored.Revision != 1 || creds.SandboxClientID != "growth-chart" {
		t.Fatalf("stored %+v (creds %+v): %v; want sandbox_approved in one write under the fixed id", stored, creds, err)
	}
	if rv := stored.Current.Review; rv == nil || !rv.Passed || rv.By != "sandbox" || stored.RecertificationDue.IsZero() {
		t.Errorf("review %+v, recertification %v", rv, stored.RecertificationDue)
	}
	var kinds []string
	for _, c := range stored.History {
		kinds = append(kinds, c.Kind)
	}
	if strings.Join(kinds, ",") != "created,review,transition" {
		t.Errorf("history %v", kinds)
	}
	if n := len(f.audit.Events()); n != 3 {
		t.Errorf("%d audit events, want created, review and transition", n)
	}
	if c, err := f.r.Clients(registry.Sandbox).Client(ctx, "", "growth-chart"); err != nil || c.ID != "growth-chart" {
		t.Errorf("the sandbox does not know the fixed client id: %v", err)
	}
	// A fixed id already in use is refused, and nothing is stored.
	before, _ := f.r.Store.List(ctx, "")
	if _, _, err := f.r.Create(ctx, "", in, "owner@growth"); !errors.Is(err, registry.ErrExists) {
		t.Errorf("a reused client id: %v", err)
	}
	if after, _ := f.r.Store.List(ctx, ""); len(after) != len(before) {
		t.Errorf("a refused create stored an app")
	}
}
