package consent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"
)

// Status of a remembered grant (FHIR Consent status codes).
type Status string

// The statuses a grant passes through. Grants are never deleted.
const (
	Active   Status = "active"
	Inactive Status = "inactive" // revoked or expired
)

// A Grant is a person's remembered approval of an app: for one user (and,
// for patient-facing apps, one patient), with the scopes approved, the
// clearance, and the token families issued under it.
type Grant struct {
	ID        string
	Tenant    string
	ClientID  string
	AppName   string
	UserID    string
	Patient   string
	Scope     string // exactly what was approved
	Clearance Clearance
	Status    Status
	PolicyURI string
	Created   time.Time
	Expires   time.Time
	LastUsed  time.Time
	Launches  int
	// TokenGrants are the authorization server's grant ids (token
	// families) issued under this consent; revoking it revokes them.
	TokenGrants []string
	RevokedAt   time.Time
	RevokedBy   string
	Reason      string
}

// Live reports whether the grant is active and unexpired at now.
func (g *Grant) Live(now time.Time) bool {
	return g.Status == Active && (g.Expires.IsZero() || now.Before(g.Expires))
}

// ErrNotFound is returned by a Store for an unknown grant.
var ErrNotFound = errors.New("consent: no grant")

// Store keeps remembered grants.
type Store interface {
	Save(ctx context.Context, g Grant) error
	Grant(ctx context.Context, tenant, id string) (Grant, error)
	// Latest returns the most recent grant of this app, user and patient
	// (any status), or ErrNotFound.
	Latest(ctx context.Context, tenant, clientID, userID, patient string) (Grant, error)
	// ByUser lists a user's grants, newest first.
	ByUser(ctx context.Context, tenant, userID string) ([]Grant, error)
	// ByClient lists an app's grants, newest first.
	ByClient(ctx context.Context, tenant, clientID string) ([]Grant, error)
}

// Memory is an in-memory Store; the zero value is ready to use. Grants are
// stored serialised.
type Memory struct {
	mu     sync.RWMutex
	grants map[string][]byte
}

// Save creates or replaces a grant.
func (m *Memory) Save(_ context.Context, g Grant) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.grants == nil {
		m.grants = map[string][]byte{}
	}
	m.grants[g.Tenant+"\x00"+g.ID] = b
	return nil
}

// Grant returns a grant.
func (m *Memory) Grant(_ context.Context, tenant, id string) (Grant, error) {
	m.mu.RLock()
	b, ok := m.grants[tenant+"\x00"+id]
	m.mu.RUnlock()
	if !ok {
		return Grant{}, ErrNotFound
	}
	var g Grant
	err := json.Unmarshal(b, &g)
	return g, err
}

func (m *Memory) filter(keep func(*Grant) bool) ([]Grant, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Grant
	for _, b := range m.grants {
		var g Grant
		if err := json.Unmarshal(b, &g); err != nil {
			return nil, err
		}
		if keep(&g) {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Latest returns the newest grant of an app, user and patient.
func (m *Memory) Latest(_ context.Context, tenant, clientID, userID, patient string) (Grant, error) {
	gs, err := m.filter(func(g *Grant) bool {
		return g.Tenant == tenant && g.ClientID == clientID && g.UserID == userID && g.Patient == patient
	})
	if err != nil || len(gs) == 0 {
		return Grant{}, errors.Join(err, ErrNotFound)
	}
	return gs[0], nil
}

// ByUser lists a user's grants.
func (m *Memory) ByUser(_ context.Context, tenant, userID string) ([]Grant, error) {
	return m.filter(func(g *Grant) bool { return g.Tenant == tenant && g.UserID == userID })
}

// ByClient lists an app's grants.
func (m *Memory) ByClient(_ context.Context, tenant, clientID string) ([]Grant, error) {
	return m.filter(func(g *Grant) bool { return g.Tenant == tenant && g.ClientID == clientID })
}

func addUnique(xs []string, x string) []string {
	if slices.Contains(xs, x) {
		return xs
	}
	return append(xs, x)
}
