package smart

import (
	"context"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/scopes"
)

// ConsentRecorder is implemented by consent policies that remember what
// people approved. The server calls Approved after it records a grant and
// before it issues the code; an error fails the authorization closed.
type ConsentRecorder interface {
	Approved(ctx context.Context, a ConsentApproval) error
}

// A ConsentApproval reports one approved authorization.
type ConsentApproval struct {
	Tenant  string
	Client  *Client
	User    User
	Patient string
	Granted scopes.Set
	GrantID string // the token family's grant id
	Asked   bool   // a person answered the consent page
}

// PolicyConsent is the ConsentPolicy of the consent package: organisation
// policy, remembered approvals, revocation. Set it as Server.Consent.
type PolicyConsent struct {
	Service *consent.Service
	// Apps describes a client for the policy (category, risk tier, the
	// scopes approved for it in this environment), typically from the
	// registry; nil means a moderate-risk app of no category, approved for
	// the scopes the client registered.
	Apps func(ctx context.Context, tenant string, c *Client) (consent.App, error)
}

func (p *PolicyConsent) app(ctx context.Context, tenant string, c *Client) (consent.App, error) {
	if p.Apps != nil {
		return p.Apps(ctx, tenant, c)
	}
	return consent.App{ClientID: c.ID, Name: c.Name, RiskTier: "moderate", Approved: c.allowedScopes()}, nil
}

// Decide evaluates the policy. An app that needs an administrator's review
// is refused with that reason; what the person must decide is offered on the
// consent page, the rest granted without asking.
func (p *PolicyConsent) Decide(ctx context.Context, r ConsentRequest) (ConsentDecision, error) {
	app, err := p.app(ctx, r.Tenant, r.Client)
	if err != nil {
		return ConsentDecision{}, err
	}
	d, err := p.Service.Decide(ctx, consent.Request{Tenant: r.Tenant, App: app, UserID: r.User.ID, Role: consent.Role(r.User.Role),
		Patient: r.Patient, Requested: r.Allowed})
	if err != nil {
		return ConsentDecision{}, err
	}
	clearance := d.Clearance
	out := ConsentDecision{Grantable: d.Grantable(), Ask: d.Ask.Len() > 0, Clearance: &clearance, Refused: d.Refused}
	switch {
	case d.AdminReview:
		out.Deny, out.Reason = true, "an administrator must review this app's request first"
	case out.Grantable.Len() == 0 && len(d.Refused) > 0:
		out.Deny, out.Reason = true, d.Refused[0].Scope+": "+d.Refused[0].Reason
	}
	return out, nil
}

// Approved remembers the approval in the consent service.
func (p *PolicyConsent) Approved(ctx context.Context, a ConsentApproval) error {
	app, err := p.app(ctx, a.Tenant, a.Client)
	if err != nil {
		return err
	}
	d, err := p.Service.Decide(ctx, consent.Request{Tenant: a.Tenant, App: app, UserID: a.User.ID, Patient: a.Patient, Requested: a.Granted})
	if err != nil {
		return err
	}
	_, err = p.Service.Record(ctx, consent.Approval{Tenant: a.Tenant, App: app, UserID: a.User.ID, Patient: a.Patient,
		Granted: a.Granted, Clearance: d.Clearance, TokenGrant: a.GrantID, Asked: a.Asked})
	return err
}
