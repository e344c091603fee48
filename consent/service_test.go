package consent_test

import (
	"context"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/scopes"
)

type revoker struct{ revoked []string }

func (r *revoker) RevokeGrant(_ context.Context, _, grantID, _, _ string) error {
	r.revoked = append(r.revoked, grantID)
	return nil
}

func TestRememberAndRevoke(t *testing.T) {
	ctx := context.Background()
	clock := now
	rv := &revoker{}
	mem := &audit.Memory{}
	s := &consent.Service{Policy: &consent.Policy{RememberFor: 24 * time.Hour}, Store: &consent.Memory{}, Revoker: rv, Audit: mem,
		Now: func() time.Time { return clock }}
	a := app("clinician-facing", "low", "launch patient/*.rs offline_access")
	req := consent.Request{App: a, UserID: "dr", Patient: "p1", Requested: scopes.MustParseSet("launch patient/Observation.rs")}
	if d, _ := s.Decide(ctx, req); d.Ask.Len() != 2 {
		t.Fatalf("first launch should ask: %+v", d)
	}
	g, err := s.Record(ctx, consent.Approval{App: a, UserID: "dr", Patient: "p1", Granted: scopes.MustParseSet("launch patient/Observation.rs"),
		TokenGrant: "tg-1", Asked: true})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Decide(ctx, req); d.Ask.Len() != 0 || d.Remembered == nil || d.Remembered.ID != g.ID {
		t.Fatalf("second launch should not ask: %+v", d)
	}
	// Another patient, or a wider request, asks again.
	other := req
	other.Patient = "p2"
	if d, _ := s.Decide(ctx, other); d.Ask.Len() == 0 {
		t.Fatal("a grant for one patient answered for another")
	}
	wider := req
	wider.Requested = scopes.MustParseSet("launch patient/Observation.rs offline_access")
	if d, _ := s.Decide(ctx, wider); d.Ask.String() != "offline_access" {
		t.Fatalf("wider request asks %q, want only the extra scope", d.Ask)
	}
	// A remembered launch is recorded against the same consent.
	if g2, _ := s.Record(ctx, consent.Approval{App: a, UserID: "dr", Patient: "p1", Granted: scopes.MustParseSet("launch patient/Observation.rs"),
		TokenGrant: "tg-2"}); g2.ID != g.ID || g2.Launches != 2 || len(g2.TokenGrants) != 2 {
		t.Fatalf("remembered launch: %+v", g2)
	}
	apps, _ := s.ConnectedApps(ctx, "", "dr")
	if len(apps) != 1 || apps[0].Status != consent.Active {
		t.Fatalf("connected apps %+v", apps)
	}
	if err := s.Revoke(ctx, "", g.ID, "dr", "no longer used"); err != nil {
		t.Fatal(err)
	}
	if len(rv.revoked) != 2 {
		t.Fatalf("token families revoked: %v", rv.revoked)
	}
	if d, _ := s.Decide(ctx, req); d.Ask.Len() != 2 {
		t.Fatal("a revoked consent still answers")
	}
	if len(mem.Of(audit.ConsentRevoked)) != 1 || len(mem.Of(audit.ConsentGranted)) != 1 {
		t.Fatalf("audit %+v", mem.Events())
	}
	// Expiry.
	g3, _ := s.Record(ctx, consent.Approval{App: a, UserID: "dr", Patient: "p1", Granted: scopes.MustParseSet("launch patient/Observation.rs"),
		TokenGrant: "tg-3", Asked: true})
	clock = clock.Add(25 * time.Hour)
	if d, _ := s.Decide(ctx, req); d.Ask.Len() != 2 || g3.Expires.IsZero() {
		t.Fatal("an expired consent still answers")
	}
}

func TestRevokeApp(t *testing.T) {
	ctx := context.Background()
	rv := &revoker{}
	s := &consent.Service{Policy: &consent.Policy{}, Store: &consent.Memory{}, Revoker: rv}
	a := app("clinician-facing", "low", "patient/*.rs")
	for _, u := range []string{"u1", "u2"} {
		if _, err := s.Record(ctx, consent.Approval{App: a, UserID: u, Granted: scopes.MustParseSet("patient/*.rs"), TokenGrant: "tg-" + u, Asked: true}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.RevokeApp(ctx, "", a.ClientID, "admin", "app retired"); err != nil || n != 2 || len(rv.revoked) != 2 {
		t.Fatalf("RevokeApp: %d %v %v", n, err, rv.revoked)
	}
}

func TestStoreFailureFailsClosed(t *testing.T) {
	s := &consent.Service{Policy: &consent.Policy{}, Store: &failing{}}
	if _, err := s.Decide(context.Background(), consent.Request{App: app("x", "low", "patient/*.rs"), Requested: scopes.MustParseSet("patient/*.rs")}); err == nil {
		t.Fatal("decided without the store")
	}
}

type failing struct{ consent.Memory }

func (*failing) Latest(context.Context, string, string, string, string) (consent.Grant, error) {
	return consent.Grant{}, context.DeadlineExceeded
}
