package launch

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/randid"
)

// ErrInvalid is returned by [Service.Redeem] for a launch id that is
// unknown, expired, already used, or bound to another client, tenant, user or
// FHIR base. The cases are deliberately indistinguishable.
var ErrInvalid = errors.New("launch: invalid launch")

// ErrNotFound is returned by [Store.Consume] when no launch has that id.
var ErrNotFound = errors.New("launch: not found")

// ErrFull is returned by a Store that has reached its size limit.
var ErrFull = errors.New("launch: store full")

// DefaultTTL is how long a launch id lives when Service.TTL is zero.
const DefaultTTL = 5 * time.Minute

// A Launch is one minted EHR launch: the handle the app receives and
// everything it is bound to.
type Launch struct {
	ID       string // single-use handle, 256 random bits
	Tenant   string
	ClientID string
	UserID   string // the EHR user who launched the app
	FHIRBase string // the iss the app is launched with; the only aud it may use
	Context  Context
	Created  time.Time
	Expires  time.Time
}

// AppURL returns the app's launch URL with the iss and launch parameters
// added (SAL 2.2 "Launch App: EHR Launch"), keeping any query it already has.
func (l Launch) AppURL(launchURL string) (string, error) {
	u, err := url.Parse(launchURL)
	if err != nil {
		return "", err
	}
	if !u.IsAbs() {
		return "", errors.New("launch: launch URL must be absolute")
	}
	q := u.Query()
	q.Set("iss", l.FHIRBase)
	q.Set("launch", l.ID)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Store keeps minted launches. Consume must be atomic: of two concurrent
// calls for one id, at most one returns the launch. Implementations must be
// safe for concurrent use.
type Store interface {
	// Save stores a new launch.
	Save(ctx context.Context, l Launch) error
	// Consume removes and returns the launch with the given tenant and id,
	// or returns ErrNotFound.
	Consume(ctx context.Context, tenant, id string) (Launch, error)
}

// A Request asks for a launch to be minted.
type Request struct {
	Tenant   string
	ClientID string
	UserID   string
	FHIRBase string
	Context  Context
}

// A Binding is what the authorization request presents when it redeems a
// launch: every field must equal what the launch was minted for.
type Binding struct {
	Tenant   string
	ID       string
	ClientID string
	FHIRBase string // the aud of the authorization request
}

// Service mints and redeems launches. Store is required; the other fields
// have working zero values. It is safe for concurrent use.
type Service struct {
	Store Store
	TTL   time.Duration    // lifetime of a launch id; 0 means DefaultTTL
	Now   func() time.Time // nil means time.Now
	Audit audit.Sink       // nil records nothing; a failing sink fails Mint
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Mint creates a launch for r and returns it. The id has 256 random bits.
func (s *Service) Mint(ctx context.Context, r Request) (Launch, error) {
	if r.ClientID == "" || r.UserID == "" || r.FHIRBase == "" {
		return Launch{}, errors.New("launch: client, user and FHIR base are required")
	}
	for _, it := range r.Context.FHIRContext {
		if !it.Valid() {
			return Launch{}, errors.New("launch: fhirContext item needs a reference, canonical or identifier")
		}
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	now := s.now()
	l := Launch{
		ID: randid.New(), Tenant: r.Tenant, ClientID: r.ClientID, UserID: r.UserID,
		FHIRBase: r.FHIRBase, Context: r.Context, Created: now, Expires: now.Add(ttl),
	}
	if s.Audit != nil {
		err := s.Audit.Record(ctx, audit.Event{
			Time: now, Tenant: r.Tenant, Type: audit.LaunchMinted, Outcome: audit.Success, Severity: audit.Info,
			ClientID: r.ClientID, UserID: r.UserID, Patient: r.Context.Patient, LaunchRef: audit.Ref(l.ID),
		})
		if err != nil {
			return Launch{}, err
		}
	}
	if err := s.Store.Save(ctx, l); err != nil {
		return Launch{}, err
	}
	return l, nil
}

// Redeem consumes the launch b names and checks it against b. The launch is
// used up whatever the outcome, so a launch id gets one attempt. Every
// refusal is ErrInvalid; other errors come from the Store.
func (s *Service) Redeem(ctx context.Context, b Binding) (Launch, error) {
	if !randid.Valid(b.ID) {
		return Launch{}, ErrInvalid
	}
	l, err := s.Store.Consume(ctx, b.Tenant, b.ID)
	if errors.Is(err, ErrNotFound) {
		return Launch{}, ErrInvalid
	}
	if err != nil {
		return Launch{}, err
	}
	if !s.now().Before(l.Expires) || l.Tenant != b.Tenant || l.ClientID != b.ClientID || l.FHIRBase != b.FHIRBase {
		return Launch{}, ErrInvalid
	}
	return l, nil
}
