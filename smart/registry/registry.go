package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/scopes"
	"github.com/smartkit/smartkit/smart"
)

// DefaultRecertification is how long a review holds when
// Registry.Recertification is zero.
const DefaultRecertification = 365 * 24 * time.Hour

// Revoker revokes every grant of a client at the authorization server;
// *smart.Server implements it.
type Revoker interface {
	SuspendClient(ctx context.Context, tenant, clientID, actor, reason string) (int, error)
}

// Registry is the governed path for apps: registration, review, lifecycle,
// credentials, and the ClientStore the authorization server reads. Store is
// required. It is safe for concurrent use.
type Registry struct {
	Store Store
	// Revokers are told when an app is suspended or retired; its grants in
	// each are revoked at once. Typically the sandbox and production servers.
	Revokers []Revoker
	// Audit records every change; nil records nothing. A failing sink fails
	// the change.
	Audit           audit.Sink
	Recertification time.Duration    // 0 means DefaultRecertification
	Now             func() time.Time // nil means time.Now
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// NewApp is what an owner submits to register an app.
type NewApp struct {
	Owner           Owner
	SupportContact  Contact
	SecurityContact Contact
	Category        Category
	RiskTier        RiskTier
	Metadata        Metadata
	// Sandbox, when set, approves the app for the sandbox in the same
	// write that creates it: for open sandbox registration and bundled
	// example apps, where no person reviews.
	Sandbox *SandboxApproval
}

// SandboxApproval lands a new app sandbox-approved. The app's history and
// the audit trail record a passed review and the transition, as if each
// had been a step of its own.
type SandboxApproval struct {
	By     string // who approves, e.g. "sandbox"; "" means the creating actor
	Reason string // why no person reviews, e.g. "open sandbox registration"
	// ClientID fixes the sandbox client id (a bundled app's readable id);
	// "" generates one. It must be unused in the tenant.
	ClientID string
}

// Credentials are what the owner receives once: client ids per
// environment and, for symmetric clients, the secrets.
type Credentials struct {
	AppID              string
	SandboxClientID    string
	ProductionClientID string
	SandboxSecret      string
	ProductionSecret   string
}

// Create registers an app in draft with separate client ids (and secrets,
// for symmetric clients) for the sandbox and production.
func (r *Registry) Create(ctx context.Context, tenant string, in NewApp, actor string) (*App, Credentials, error) {
	return r.create(ctx, tenant, in, actor, nil)
}

// create is Create with a hook that adjusts the app before its one write.
func (r *Registry) create(ctx context.Context, tenant string, in NewApp, actor string, prepare func(a *App)) (*App, Credentials, error) {
	if err := in.Metadata.Validate(); err != nil {
		return nil, Credentials{}, err
	}
	if in.Category == "" || in.RiskTier == "" || in.Owner.Name == "" {
		return nil, Credentials{}, &ValidationError{Fields: []FieldError{{Field: "owner/category/risk_tier", Reason: "owner, category and risk tier are required"}}}
	}
	now := r.now()
	a := App{
		ID: randid.New()[:22], Tenant: tenant, Owner: in.Owner, SupportContact: in.SupportContact,
		SecurityContact: in.SecurityContact, Category: in.Category, RiskTier: in.RiskTier, State: Draft,
		Environments: map[Environment]*Credential{}, Current: Version{Number: 1, Metadata: in.Metadata, Created: now},
		Created: now, Revision: 1,
	}
	creds := Credentials{AppID: a.ID}
	for _, env := range []Environment{Sandbox, Production} {
		c := &Credential{ClientID: string(env[:4]) + "-" + randid.New()[:22]}
		if symmetric(in.Metadata) {
			secret, hash := smart.NewSecret()
			c.SecretHash = hash
			if env == Sandbox {
				creds.SandboxSecret = secret
			} else {
				creds.ProductionSecret = secret
			}
		}
		a.Environments[env] = c
	}
	a.History = append(a.History, Change{At: now, By: actor, Kind: "created", To: string(Draft)})
	if err := r.record(ctx, tenant, a.ID, actor, "created", ""); err != nil {
		return nil, Credentials{}, err
	}
	if sb := in.Sandbox; sb != nil {
		by := sb.By
		if by == "" {
			by = actor
		}
		if sb.ClientID != "" {
			a.Environments[Sandbox].ClientID = sb.ClientID
		}
		a.Current.Review = &Review{At: now, By: by, Passed: true, Notes: sb.Reason}
		a.LastReviewed, a.RecertificationDue = now, now.Add(r.recert())
		a.State, a.Current.ApprovedAt, a.Environments[Sandbox].ApprovedAt = SandboxApproved, now, now
		a.History = append(a.History,
			Change{At: now, By: by, Kind: "review", To: "1", Reason: "passed"},
			Change{At: now, By: by, Kind: "transition", From: string(Draft), To: string(SandboxApproved), Reason: sb.Reason})
		if err := errors.Join(r.record(ctx, tenant, a.ID, by, "review recorded", "version 1 passed=true"),
			r.record(ctx, tenant, a.ID, by, "transition "+string(Draft)+" → "+string(SandboxApproved), sb.Reason)); err != nil {
			return nil, Credentials{}, err
		}
	}
	if prepare != nil {
		prepare(&a)
	}
	creds.SandboxClientID, creds.ProductionClientID = a.ClientID(Sandbox), a.ClientID(Production)
	if err := r.Store.Create(ctx, a); err != nil {
		return nil, Credentials{}, err
	}
	return &a, creds, nil
}

func symmetric(m Metadata) bool {
	return m.TokenEndpointAuthMethod == smart.AuthClientSecretBasic || m.TokenEndpointAuthMethod == smart.AuthClientSecretPost
}

// edit loads an app, applies change, and stores it, retrying on a
// concurrent update.
func (r *Registry) edit(ctx context.Context, tenant, id string, change func(a *App) error) (*App, error) {
	for range 5 {
		a, err := r.Store.App(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		if err := change(&a); err != nil {
			return nil, err
		}
		a.Revision++
		switch err := r.Store.Update(ctx, a); {
		case err == nil:
			return &a, nil
		case !errors.Is(err, ErrConflict):
			return nil, err
		}
	}
	return nil, ErrConflict
}

func (r *Registry) record(ctx context.Context, tenant, appID, actor, what, reason string) error {
	if r.Audit == nil {
		return nil
	}
	return r.Audit.Record(ctx, audit.Event{Time: r.now(), Tenant: tenant, Type: audit.AppTransition, Outcome: audit.Success,
		ClientID: appID, UserID: actor, Reason: what + reasonSuffix(reason)})
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// Update changes an app's metadata. In draft it applies at once (and voids
// any review). On an approved app a change to redirect URIs, keys, scopes,
// launch URL, auth method or grant types becomes a pending version that
// goes back to review while the approved one keeps working; other changes
// (name, logo, contacts) apply at once.
func (r *Registry) Update(ctx context.Context, tenant, id string, m Metadata, actor string) (*App, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return r.edit(ctx, tenant, id, func(a *App) error {
		now := r.now()
		switch {
		case a.State == Retired:
			return &TransitionError{From: a.State, To: a.State, Reason: "a retired app cannot change"}
		case symmetric(a.Current.Metadata) != symmetric(m):
			return &ValidationError{Fields: []FieldError{{Field: "token_endpoint_auth_method", Value: m.TokenEndpointAuthMethod,
				Reason: "cannot switch between secret and non-secret methods; register a new app"}}}
		case a.State == Draft:
			a.Current = Version{Number: a.Current.Number, Metadata: m, Created: now}
			a.History = append(a.History, Change{At: now, By: actor, Kind: "update", Reason: "draft edited; review voided"})
		case a.Current.Metadata.sensitiveChange(m):
			n := a.Current.Number + 1
			a.Pending = &Version{Number: n, Metadata: m, Created: now}
			a.History = append(a.History, Change{At: now, By: actor, Kind: "version", To: fmt.Sprint(n), Reason: "changed version awaits review"})
		default:
			a.Current.Metadata = m
			a.History = append(a.History, Change{At: now, By: actor, Kind: "update", Reason: "non-sensitive metadata"})
		}
		return r.record(ctx, tenant, id, actor, "metadata updated", "")
	})
}

// RecordReview records a review of the pending version, or of the current
// one when nothing is pending. A passed review of a pending version
// promotes it: it becomes current, and the approved scope set is narrowed
// to what the new version still requests.
func (r *Registry) RecordReview(ctx context.Context, tenant, id string, rv Review, actor string) (*App, error) {
	return r.edit(ctx, tenant, id, func(a *App) error {
		now := r.now()
		rv.At, rv.By = now, actor
		target := &a.Current
		if a.Pending != nil {
			target = a.Pending
		}
		target.Review = &rv
		a.History = append(a.History, Change{At: now, By: actor, Kind: "review", To: fmt.Sprint(target.Number),
			Reason: map[bool]string{true: "passed", false: "failed"}[rv.Passed]})
		if rv.Passed {
			a.LastReviewed = now
			a.RecertificationDue = now.Add(r.recert())
			if a.Pending != nil {
				target.ApprovedAt = now
				a.Current, a.Pending = *target, nil
				a.ApprovedScope = narrowTo(a.ApprovedScope, a.Current.Metadata.Scope)
			}
		}
		return r.record(ctx, tenant, id, actor, "review recorded", fmt.Sprintf("version %d passed=%v", target.Number, rv.Passed))
	})
}

func (r *Registry) recert() time.Duration {
	if r.Recertification > 0 {
		return r.Recertification
	}
	return DefaultRecertification
}

// narrowTo keeps the part of approved that requested still covers.
func narrowTo(approved, requested string) string {
	if approved == "" {
		return ""
	}
	a, _ := scopes.ParseLenient(approved)
	q, _ := scopes.ParseLenient(requested)
	return a.Intersect(q).String()
}

// SetApprovedScope sets the scope set approved for production; it must
// parse and lie within the requested scopes.
func (r *Registry) SetApprovedScope(ctx context.Context, tenant, id, scope, actor string) (*App, error) {
	set, err := scopes.ParseSet(scope)
	if err != nil {
		return nil, &ValidationError{Fields: []FieldError{{Field: "scope", Value: scope, Reason: err.Error()}}}
	}
	return r.edit(ctx, tenant, id, func(a *App) error {
		requested, _ := scopes.ParseLenient(a.Current.Metadata.Scope)
		if !requested.CoversAll(set) {
			return &ValidationError{Fields: []FieldError{{Field: "scope", Value: scope, Reason: "approved scopes must be within the requested scopes"}}}
		}
		a.ApprovedScope = set.String()
		a.History = append(a.History, Change{At: r.now(), By: actor, Kind: "scopes", To: a.ApprovedScope})
		return r.record(ctx, tenant, id, actor, "approved scopes set", a.ApprovedScope)
	})
}

// SetDUA records the data-use agreement reference.
func (r *Registry) SetDUA(ctx context.Context, tenant, id, ref, actor string) (*App, error) {
	return r.edit(ctx, tenant, id, func(a *App) error {
		a.DUA = ref
		a.History = append(a.History, Change{At: r.now(), By: actor, Kind: "dua", To: ref})
		return r.record(ctx, tenant, id, actor, "data-use agreement recorded", ref)
	})
}

// Transition moves an app through its lifecycle, checking the state machine
// and each edge's preconditions. Suspending or retiring revokes every grant
// of the app's client ids at every Revoker before it returns; retiring also
// destroys the credentials.
func (r *Registry) Transition(ctx context.Context, tenant, id string, to State, actor, reason string) (*App, error) {
	var from State
	a, err := r.edit(ctx, tenant, id, func(a *App) error {
		if err := checkTransition(a, to); err != nil {
			return err
		}
		now := r.now()
		from = a.State
		if to == Suspended {
			a.PreviousState = a.State
		}
		a.State = to
		switch to {
		case SandboxApproved:
			a.Environments[Sandbox].ApprovedAt = now
			if a.Current.ApprovedAt.IsZero() {
				a.Current.ApprovedAt = now
			}
		case ProductionApproved:
			a.Environments[Production].ApprovedAt = now
		case Retired:
			for _, c := range a.Environments {
				c.SecretHash, c.OldSecretHash, c.RegistrationTokenHash = "", "", ""
			}
		}
		a.History = append(a.History, Change{At: now, By: actor, Kind: "transition", From: string(from), To: string(to), Reason: reason})
		return r.record(ctx, tenant, id, actor, "transition "+string(from)+" → "+string(to), reason)
	})
	if te := (*TransitionError)(nil); errors.As(err, &te) && r.Audit != nil {
		if aerr := r.Audit.Record(ctx, audit.Event{Time: r.now(), Tenant: tenant, Type: audit.AppTransition, Outcome: audit.Failure,
			ClientID: id, UserID: actor, Reason: te.Error()}); aerr != nil {
			return nil, errors.Join(err, aerr)
		}
	}
	if err != nil {
		return nil, err
	}
	if to == Suspended || to == Retired {
		for _, rv := range r.Revokers {
			for _, c := range a.Environments {
				if _, err := rv.SuspendClient(ctx, tenant, c.ClientID, actor, "app "+string(to)+reasonSuffix(reason)); err != nil {
					return a, fmt.Errorf("registry: app %s is %s, but revoking its grants failed: %w", id, to, err)
				}
			}
		}
	}
	return a, nil
}

// RotateSecret issues a new secret for a symmetric client in env; the old
// one keeps working for overlap (at most 30 days) so deployments can roll.
func (r *Registry) RotateSecret(ctx context.Context, tenant, id string, env Environment, overlap time.Duration, actor string) (string, error) {
	var secret string
	_, err := r.edit(ctx, tenant, id, func(a *App) error {
		c := a.Environments[env]
		if c == nil || !symmetric(a.Current.Metadata) || a.State == Retired {
			return &ValidationError{Fields: []FieldError{{Field: "token_endpoint_auth_method", Reason: "only live symmetric clients have secrets"}}}
		}
		s, hash := smart.NewSecret()
		secret = s
		c.OldSecretHash, c.OldExpires = c.SecretHash, r.now().Add(min(overlap, 30*24*time.Hour))
		c.SecretHash = hash
		a.History = append(a.History, Change{At: r.now(), By: actor, Kind: "secret", To: string(env)})
		return r.record(ctx, tenant, id, actor, "secret rotated", string(env))
	})
	return secret, err
}

// Due returns the approved apps whose recertification is due within
// warning (or overdue), ordered by due date.
func (r *Registry) Due(ctx context.Context, tenant string, warning time.Duration) ([]App, error) {
	apps, err := r.Store.List(ctx, tenant)
	if err != nil {
		return nil, err
	}
	limit := r.now().Add(warning)
	var out []App
	for _, a := range apps {
		if (a.State == SandboxApproved || a.State == ProductionApproved) && !a.RecertificationDue.IsZero() && !a.RecertificationDue.After(limit) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y App) int { return x.RecertificationDue.Compare(y.RecertificationDue) })
	return out, nil
}

// SuspendOverdue suspends approved apps whose recertification is more than
// grace overdue: a host policy to run daily. It returns the suspended ids.
func (r *Registry) SuspendOverdue(ctx context.Context, tenant string, grace time.Duration, actor string) ([]string, error) {
	due, err := r.Due(ctx, tenant, -grace)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, a := range due {
		if _, err := r.Transition(ctx, tenant, a.ID, Suspended, actor, "recertification overdue"); err != nil {
			return ids, err
		}
		ids = append(ids, a.ID)
	}
	return ids, nil
}

// Clients returns the smart.ClientStore of one environment: it yields only
// apps whose state permits that environment, under that environment's
// client id and credentials, with production limited to the approved scope
// set. Anything else is unknown to the server (ErrNotFound): a suspended
// app, a draft, a sandbox client id presented to production.
func (r *Registry) Clients(env Environment) smart.ClientStore { return clientStore{r: r, env: env} }

type clientStore struct {
	r   *Registry
	env Environment
}

func (cs clientStore) Client(ctx context.Context, tenant, clientID string) (*smart.Client, error) {
	a, err := cs.r.Store.ByClientID(ctx, tenant, clientID)
	if errors.Is(err, ErrNotFound) {
		return nil, smart.ErrNotFound
	} else if err != nil {
		return nil, err
	}
	c := a.Environments[cs.env]
	if c == nil || c.ClientID != clientID || !a.State.permits(cs.env) {
		return nil, smart.ErrNotFound
	}
	m := a.Current.Metadata
	scope := m.Scope
	if cs.env == Production {
		scope = a.ApprovedScope
	}
	method := m.TokenEndpointAuthMethod
	if method == "" {
		method = smart.AuthNone
	}
	out := &smart.Client{
		ID: clientID, Name: m.ClientName, RedirectURIs: m.RedirectURIs, TokenEndpointAuthMethod: method,
		GrantTypes: m.GrantTypes, JWKS: m.JWKS, JWKSURI: m.JWKSURI, Scope: scope, LaunchURL: m.LaunchURI,
		LogoURI: m.LogoURI, SecretHash: c.SecretHash,
	}
	if c.OldSecretHash != "" && cs.r.now().Before(c.OldExpires) {
		out.OldSecretHashes = []string{c.OldSecretHash}
	}
	return out, nil
}
