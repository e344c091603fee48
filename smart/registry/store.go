package registry

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"
)

// Store errors.
var (
	ErrNotFound = errors.New("registry: no such app")
	ErrExists   = errors.New("registry: app or client id exists")
	// ErrConflict is returned by Store.Update when the app changed since it
	// was read (another node, another admin): read again and retry.
	ErrConflict = errors.New("registry: app changed concurrently")
)

// Store keeps apps. Update must compare and set on Revision, so two nodes
// editing one app cannot lose a write. Client ids are unique per tenant.
type Store interface {
	Create(ctx context.Context, a App) error
	App(ctx context.Context, tenant, id string) (App, error)
	// ByClientID finds the app owning a client id in any environment.
	ByClientID(ctx context.Context, tenant, clientID string) (App, error)
	// Update stores a (whose Revision is already incremented) if the stored
	// revision is a.Revision-1, or returns ErrConflict.
	Update(ctx context.Context, a App) error
	List(ctx context.Context, tenant string) ([]App, error)
}

// Memory is an in-memory Store. The zero value is ready to use; apps are
// stored serialised.
type Memory struct {
	mu      sync.RWMutex
	apps    map[string][]byte
	clients map[string]string // tenant\0client id → tenant\0app id
}

func mkey(a, b string) string { return a + "\x00" + b }

// Create stores a new app.
func (m *Memory) Create(_ context.Context, a App) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.apps == nil {
		m.apps, m.clients = map[string][]byte{}, map[string]string{}
	}
	if _, ok := m.apps[mkey(a.Tenant, a.ID)]; ok {
		return ErrExists
	}
	for _, c := range a.Environments {
		if _, ok := m.clients[mkey(a.Tenant, c.ClientID)]; ok {
			return ErrExists
		}
	}
	m.apps[mkey(a.Tenant, a.ID)] = b
	for _, c := range a.Environments {
		m.clients[mkey(a.Tenant, c.ClientID)] = mkey(a.Tenant, a.ID)
	}
	return nil
}

func (m *Memory) load(k string) (App, error) {
	b, ok := m.apps[k]
	if !ok {
		return App{}, ErrNotFound
	}
	var a App
	err := json.Unmarshal(b, &a)
	return a, err
}

// App returns an app.
func (m *Memory) App(_ context.Context, tenant, id string) (App, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.load(mkey(tenant, id))
}

// ByClientID returns the app owning a client id.
func (m *Memory) ByClientID(_ context.Context, tenant, clientID string) (App, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.clients[mkey(tenant, clientID)]
	if !ok {
		return App{}, ErrNotFound
	}
	return m.load(k)
}

// Update replaces an app if nobody changed it since it was read.
func (m *Memory) Update(_ context.Context, a App) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := mkey(a.Tenant, a.ID)
	old, err := m.load(k)
	if err != nil {
		return err
	}
	if old.Revision != a.Revision-1 {
		return ErrConflict
	}
	for _, c := range old.Environments {
		delete(m.clients, mkey(a.Tenant, c.ClientID))
	}
	for _, c := range a.Environments {
		m.clients[mkey(a.Tenant, c.ClientID)] = k
	}
	m.apps[k] = b
	return nil
}

// List returns a tenant's apps ordered by id.
func (m *Memory) List(_ context.Context, tenant string) ([]App, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []App
	for k := range m.apps {
		if a, err := m.load(k); err == nil && a.Tenant == tenant {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
