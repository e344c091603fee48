package launch

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// DefaultMemoryLimit bounds a Memory store whose Limit is zero.
const DefaultMemoryLimit = 100_000

// Memory is an in-memory Store for tests and single-process hosts. The zero
// value is ready to use. Launches are stored serialised, so callers cannot
// alias what was saved. Expired launches are dropped when the store is full;
// while it is full of live ones, saves fail at once (no scan until the
// earliest of them expires).
type Memory struct {
	Limit int              // most launches held at once; 0 means DefaultMemoryLimit
	Now   func() time.Time // nil means time.Now; used to drop expired launches

	mu       sync.Mutex
	launches map[string][]byte
	expires  map[string]time.Time
	// fullUntil is when the earliest launch of a store found full of live
	// ones expires: no sweep before then can make room.
	fullUntil time.Time
}

type memKey struct{ tenant, id string }

func (k memKey) String() string { return k.tenant + "\x00" + k.id }

// Save stores l, or returns ErrFull when the limit is reached even after
// expired launches are dropped.
func (m *Memory) Save(_ context.Context, l Launch) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.launches == nil {
		m.launches, m.expires = map[string][]byte{}, map[string]time.Time{}
	}
	limit := m.Limit
	if limit <= 0 {
		limit = DefaultMemoryLimit
	}
	if len(m.launches) >= limit {
		now := time.Now()
		if m.Now != nil {
			now = m.Now()
		}
		if now.Before(m.fullUntil) { // full of live launches: refused without a scan
			return ErrFull
		}
		var earliest time.Time
		for k, exp := range m.expires {
			switch {
			case !now.Before(exp):
				delete(m.launches, k)
				delete(m.expires, k)
			case earliest.IsZero() || exp.Before(earliest):
				earliest = exp
			}
		}
		if len(m.launches) >= limit {
			m.fullUntil = earliest
			return ErrFull
		}
	}
	k := memKey{l.Tenant, l.ID}.String()
	m.launches[k] = b
	m.expires[k] = l.Expires
	return nil
}

// Consume removes and returns a launch atomically.
func (m *Memory) Consume(_ context.Context, tenant, id string) (Launch, error) {
	k := memKey{tenant, id}.String()
	m.mu.Lock()
	b, ok := m.launches[k]
	delete(m.launches, k)
	delete(m.expires, k)
	m.mu.Unlock()
	if !ok {
		return Launch{}, ErrNotFound
	}
	var l Launch
	err := json.Unmarshal(b, &l)
	return l, err
}
