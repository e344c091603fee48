package smart

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// MemoryStore is an in-memory Store for tests, examples and single-process
// hosts. The zero value is ready to use. Records are stored as deep copies
// (pending requests serialised), so callers cannot alias what was saved.
// Expired records are swept when the store passes its size limit; while it
// is full of live records, saves fail at once (no sweep until the earliest
// of them expires).
type MemoryStore struct {
	Limit int              // records of each kind held at once; 0 means 1,000,000
	Now   func() time.Time // nil means time.Now; used for expiry sweeps

	mu       sync.RWMutex
	codes    map[string]memCode
	grants   map[string]Grant
	dead     map[string]bool // revoked grants, for a fast Revoked
	refresh  map[string]memRefresh
	revoked  map[string]time.Time // tenant\0jti → exp
	jtis     map[string]time.Time // tenant\0iss\0jti → exp
	requests map[string]memRequest
	// full holds, per kind of record, when the earliest record of a full
	// map expires: no sweep before then can make room.
	full map[string]time.Time
}

type memRequest struct {
	b   []byte // the PendingRequest, serialised
	exp time.Time
}

func (r memRequest) expiry() time.Time { return r.exp }

type memCode struct {
	c    AuthCode
	used bool
	exp  time.Time
}

type memRefresh struct {
	r    Refresh
	used bool
	exp  time.Time
}

// cloneGrant deep-copies the parts of a grant that share memory.
func cloneGrant(g Grant) Grant {
	g.Context.FHIRContext = slices.Clone(g.Context.FHIRContext)
	for i, it := range g.Context.FHIRContext {
		if it.Identifier != nil {
			id := *it.Identifier
			g.Context.FHIRContext[i].Identifier = &id
		}
	}
	if b := g.Context.NeedPatientBanner; b != nil {
		v := *b
		g.Context.NeedPatientBanner = &v
	}
	if c := g.Clearance; c != nil {
		v := *c
		v.Tags = slices.Clone(c.Tags)
		g.Clearance = &v
	}
	return g
}

func key(parts ...string) string {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	return string(appendKey(make([]byte, 0, n), parts...))
}

// appendKey appends the parts of a map key, NUL-separated.
func appendKey(b []byte, parts ...string) []byte {
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

func (m *MemoryStore) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *MemoryStore) limit() int {
	if m.Limit > 0 {
		return m.Limit
	}
	return 1_000_000
}

// init allocates the maps; the caller holds m.mu.
func (m *MemoryStore) init() {
	if m.codes == nil {
		m.codes = map[string]memCode{}
		m.grants = map[string]Grant{}
		m.dead = map[string]bool{}
		m.refresh = map[string]memRefresh{}
		m.revoked = map[string]time.Time{}
		m.jtis = map[string]time.Time{}
		m.requests = map[string]memRequest{}
		m.full = map[string]time.Time{}
	}
}

// put stores v under k in entries (kind names the map), first sweeping
// expired entries when the map is at the limit, and refuses (errFull) when
// it is still full. A map full of live records is not swept again before
// the earliest of them expires: a save then fails at once instead of
// scanning every record under the lock. The caller holds m.mu.
func put[V any](m *MemoryStore, kind string, entries map[string]V, k string, v V, exp func(V) time.Time) error {
	if _, exists := entries[k]; !exists && len(entries) >= m.limit() {
		now := m.now()
		if now.Before(m.full[kind]) {
			return errFull
		}
		var earliest time.Time
		for k, v := range entries {
			switch e := exp(v); {
			case !now.Before(e):
				delete(entries, k)
			case earliest.IsZero() || e.Before(earliest):
				earliest = e
			}
		}
		if len(entries) >= m.limit() {
			m.full[kind] = earliest
			return errFull
		}
	}
	entries[k] = v
	return nil
}

func (c memCode) expiry() time.Time    { return c.exp }
func (r memRefresh) expiry() time.Time { return r.exp }
func instant(t time.Time) time.Time    { return t }

var errFull = &Error{Code: TemporarilyUnavailable, Description: "the server is at capacity"}

// SaveCode stores an authorization code.
func (m *MemoryStore) SaveCode(_ context.Context, c AuthCode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	return put(m, "codes", m.codes, key(c.Tenant, c.Hash), memCode{c: c, exp: c.Expires}, memCode.expiry)
}

// ConsumeCode marks a code used and returns it; see CodeStore.
func (m *MemoryStore) ConsumeCode(_ context.Context, tenant, hash string) (AuthCode, error) {
	m.mu.Lock()
	m.init()
	k := key(tenant, hash)
	mc, ok := m.codes[k]
	used := mc.used
	if ok && !used {
		mc.used = true
		m.codes[k] = mc
	}
	m.mu.Unlock()
	if !ok {
		return AuthCode{}, ErrNotFound
	}
	if used {
		return mc.c, ErrUsed
	}
	return mc.c, nil
}

// SaveGrant creates or replaces a grant.
func (m *MemoryStore) SaveGrant(_ context.Context, g Grant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	if _, exists := m.grants[key(g.Tenant, g.ID)]; !exists && len(m.grants) >= m.limit() {
		m.sweepGrants()
		if len(m.grants) >= m.limit() {
			return errFull
		}
	}
	m.grants[key(g.Tenant, g.ID)] = cloneGrant(g)
	if g.Revoked {
		m.dead[key(g.Tenant, g.ID)] = true
	}
	return nil
}

func (m *MemoryStore) sweepGrants() {
	now := m.now()
	for k, g := range m.grants {
		if !now.Before(g.Expires) {
			delete(m.grants, k)
			delete(m.dead, k)
		}
	}
}

// Grant returns a grant.
func (m *MemoryStore) Grant(_ context.Context, tenant, id string) (Grant, error) {
	m.mu.RLock()
	g, ok := m.grants[key(tenant, id)]
	m.mu.RUnlock()
	if !ok {
		return Grant{}, ErrNotFound
	}
	return cloneGrant(g), nil
}

// RevokeGrant marks a grant revoked; its refresh tokens and access tokens
// stop working.
func (m *MemoryStore) RevokeGrant(ctx context.Context, tenant, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.revokeLocked(tenant, id)
}

func (m *MemoryStore) revokeLocked(tenant, id string) error {
	k := key(tenant, id)
	g, ok := m.grants[k]
	if !ok {
		return ErrNotFound
	}
	g.Revoked = true
	m.grants[k] = g
	m.dead[k] = true
	for rk, mr := range m.refresh { // the family's refresh tokens die with it
		if mr.r.Tenant == tenant && mr.r.GrantID == id && !mr.used {
			mr.used = true
			m.refresh[rk] = mr
		}
	}
	return nil
}

// RevokeGrantsOf revokes every live grant of a client.
func (m *MemoryStore) RevokeGrantsOf(_ context.Context, tenant, clientID string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, g := range m.grants {
		if g.Tenant == tenant && g.ClientID == clientID && !g.Revoked {
			if err := m.revokeLocked(tenant, g.ID); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// SaveRefresh stores a refresh token.
func (m *MemoryStore) SaveRefresh(_ context.Context, r Refresh) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	return put(m, "refresh", m.refresh, key(r.Tenant, r.Hash), memRefresh{r: r, exp: r.Expires}, memRefresh.expiry)
}

// Refresh returns a live (not yet rotated) refresh token; a rotated one
// gives ErrUsed with its record.
func (m *MemoryStore) Refresh(_ context.Context, tenant, hash string) (Refresh, error) {
	m.mu.RLock()
	mr, ok := m.refresh[key(tenant, hash)]
	m.mu.RUnlock()
	if !ok {
		return Refresh{}, ErrNotFound
	}
	if mr.used {
		return mr.r, ErrUsed
	}
	return mr.r, nil
}

// RotateRefresh retires oldHash and saves next, atomically.
func (m *MemoryStore) RotateRefresh(_ context.Context, tenant, oldHash string, next Refresh) (Refresh, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	k := key(tenant, oldHash)
	mr, ok := m.refresh[k]
	if !ok {
		return Refresh{}, ErrNotFound
	}
	old := mr.r
	if mr.used {
		return old, ErrUsed
	}
	mr.used = true
	m.refresh[k] = mr
	if next.Hash != "" {
		m.refresh[key(next.Tenant, next.Hash)] = memRefresh{r: next, exp: next.Expires}
	}
	return old, nil
}

// RevokeToken revokes one access token by jti.
func (m *MemoryStore) RevokeToken(_ context.Context, tenant, jti string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	return put(m, "revoked", m.revoked, key(tenant, jti), exp, instant)
}

// Revoked reports whether the grant is revoked (or unknown) or the jti revoked.
func (m *MemoryStore) Revoked(_ context.Context, tenant, grantID, jti string) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	// Checked on every verified request: the keys are built on the stack
	// (a map index with string(bytes) does not allocate).
	var buf [256]byte
	if _, ok := m.revoked[string(appendKey(buf[:0], tenant, jti))]; ok {
		return true, nil
	}
	k := appendKey(buf[:0], tenant, grantID)
	if _, ok := m.grants[string(k)]; !ok {
		return true, nil
	}
	return m.dead[string(k)], nil
}

// Claim records a client-assertion jti, or returns ErrReplay.
func (m *MemoryStore) Claim(_ context.Context, tenant, issuer, jti string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	k := key(tenant, issuer, jti)
	if until, ok := m.jtis[k]; ok && m.now().Before(until) {
		return ErrReplay
	}
	return put(m, "jtis", m.jtis, k, exp, instant)
}

// SaveRequest creates or replaces a pending authorization request.
func (m *MemoryStore) SaveRequest(_ context.Context, p PendingRequest) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	return put(m, "requests", m.requests, key(p.Tenant, p.ID), memRequest{b: b, exp: p.Expires}, memRequest.expiry)
}

// Request returns a pending request.
func (m *MemoryStore) Request(_ context.Context, tenant, id string) (PendingRequest, error) {
	m.mu.RLock()
	r, ok := m.requests[key(tenant, id)]
	m.mu.RUnlock()
	b := r.b
	if !ok {
		return PendingRequest{}, ErrNotFound
	}
	var p PendingRequest
	err := json.Unmarshal(b, &p)
	return p, err
}

// ConsumeRequest removes and returns a pending request.
func (m *MemoryStore) ConsumeRequest(_ context.Context, tenant, id string) (PendingRequest, error) {
	m.mu.Lock()
	k := key(tenant, id)
	r, ok := m.requests[k]
	delete(m.requests, k)
	m.mu.Unlock()
	b := r.b
	if !ok {
		return PendingRequest{}, ErrNotFound
	}
	var p PendingRequest
	err := json.Unmarshal(b, &p)
	return p, err
}
