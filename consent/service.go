package consent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/scopes"
)

// Revoker revokes a token family at the authorization server; *smart.Server
// implements it.
type Revoker interface {
	RevokeGrant(ctx context.Context, tenant, grantID, actor, reason string) error
}

// Service applies a Policy, remembers approvals and revokes them. Policy
// and Store are required. Safe for concurrent use.
type Service struct {
	Policy  *Policy
	Store   Store
	Revoker Revoker          // nil means revocation only marks the consent inactive
	Audit   audit.Sink       // nil records nothing; a failing sink fails the change
	Now     func() time.Time // nil means time.Now
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Decide evaluates a request against the policy and the remembered grant of
// its app, user and patient.
func (s *Service) Decide(ctx context.Context, r Request) (Decision, error) {
	if r.Now.IsZero() {
		r.Now = s.now()
	}
	var remembered *Grant
	switch g, err := s.Store.Latest(ctx, r.Tenant, r.App.ClientID, r.UserID, r.Patient); {
	case err == nil:
		remembered = &g
	case !errors.Is(err, ErrNotFound):
		return Decision{}, err // fail closed: no decision without the store
	}
	return Evaluate(s.Policy, r, remembered), nil
}

// Approval is what the authorization server reports after a person (or the
// policy) approved an authorization.
type Approval struct {
	Tenant    string
	App       App
	UserID    string
	Patient   string
	Granted   scopes.Set
	Clearance Clearance
	// TokenGrant is the authorization server's grant id for the token family.
	TokenGrant string
	// Asked reports whether a person was asked (only then is the approval
	// remembered as a new consent; otherwise the existing grant is touched).
	Asked bool
}

// Record remembers an approval: a new active consent when a person
// approved, replacing the previous one of this app, user and patient; or, for
// a launch answered from a remembered grant, its use.
func (s *Service) Record(ctx context.Context, a Approval) (Grant, error) {
	now := s.now()
	prev, err := s.Store.Latest(ctx, a.Tenant, a.App.ClientID, a.UserID, a.Patient)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Grant{}, err
	}
	if err == nil && prev.Live(now) && (!a.Asked || prev.Scope == a.Granted.String()) {
		prev.LastUsed, prev.Launches = now, prev.Launches+1
		prev.TokenGrants = addUnique(prev.TokenGrants, a.TokenGrant)
		return prev, s.Store.Save(ctx, prev)
	}
	g := Grant{
		ID: randid.New()[:22], Tenant: a.Tenant, ClientID: a.App.ClientID, AppName: a.App.Name, UserID: a.UserID,
		Patient: a.Patient, Scope: a.Granted.String(), Clearance: a.Clearance, Status: Active, PolicyURI: s.Policy.URI,
		Created: now, LastUsed: now, Launches: 1, TokenGrants: []string{a.TokenGrant},
	}
	if d := s.Policy.rememberFor(); d > 0 {
		g.Expires = now.Add(d)
	} else {
		g.Expires = now // not remembered: the next launch asks again
	}
	if err == nil && prev.Live(now) {
		// The person answered a wider request: the new consent supersedes.
		prev.Status, prev.RevokedAt, prev.Reason = Inactive, now, "superseded by consent "+g.ID
		if err := s.Store.Save(ctx, prev); err != nil {
			return Grant{}, err
		}
	}
	if err := s.record(ctx, audit.Event{Type: audit.ConsentGranted, Outcome: audit.Success, ClientID: g.ClientID,
		UserID: g.UserID, Patient: g.Patient, Scopes: g.Scope, ConsentID: g.ID, GrantID: a.TokenGrant}); err != nil {
		return Grant{}, err
	}
	return g, s.Store.Save(ctx, g)
}

func (s *Service) record(ctx context.Context, e audit.Event) error {
	if s.Audit == nil {
		return nil
	}
	e.Time = s.now()
	return s.Audit.Record(ctx, e)
}

// ConnectedApps lists a user's grants, newest first: active ones (what the
// user's apps may do now) and inactive ones (history).
func (s *Service) ConnectedApps(ctx context.Context, tenant, userID string) ([]Grant, error) {
	return s.Store.ByUser(ctx, tenant, userID)
}

// Revoke revokes one consent: it becomes inactive and every token family
// issued under it is revoked at the authorization server at once. actor is
// who did it (the user, or an administrator).
func (s *Service) Revoke(ctx context.Context, tenant, id, actor, reason string) error {
	g, err := s.Store.Grant(ctx, tenant, id)
	if err != nil {
		return err
	}
	if g.Status == Inactive && !g.RevokedAt.IsZero() && g.RevokedBy != "" {
		return nil
	}
	g.Status, g.RevokedAt, g.RevokedBy, g.Reason = Inactive, s.now(), actor, reason
	if err := s.record(ctx, audit.Event{Type: audit.ConsentRevoked, Outcome: audit.Success, ClientID: g.ClientID,
		UserID: actor, Patient: g.Patient, Scopes: g.Scope, ConsentID: g.ID, Reason: reason}); err != nil {
		return err
	}
	if err := s.Store.Save(ctx, g); err != nil {
		return err
	}
	if s.Revoker != nil {
		for _, tg := range g.TokenGrants {
			if err := s.Revoker.RevokeGrant(ctx, tenant, tg, actor, "consent revoked"+suffix(reason)); err != nil {
				return fmt.Errorf("consent: revoked, but revoking token family %s failed: %w", tg, err)
			}
		}
	}
	return nil
}

// RevokeApp revokes every active consent given to an app (an
// administrator's action) and returns how many were revoked.
func (s *Service) RevokeApp(ctx context.Context, tenant, clientID, actor, reason string) (int, error) {
	gs, err := s.Store.ByClient(ctx, tenant, clientID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, g := range gs {
		if g.Status == Active {
			if err := s.Revoke(ctx, tenant, g.ID, actor, reason); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func suffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}
