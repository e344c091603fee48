package sqlstore

import (
	"context"
	"sync"
	"time"
)

// revocations keeps the revoked grant ids and jtis of every tenant in
// memory, adding this node's revocations at once and fetching other nodes'
// from the revocations table at most every RevocationPoll.
type revocations struct {
	store  *Store
	mu     sync.RWMutex
	loaded bool
	last   int64 // highest revocations.seq seen
	next   time.Time
	set    map[string]int64 // tenant\0kind\0id → expiry (unix seconds)
}

func rkey(tenant, kind, id string) string { return tenant + "\x00" + kind + "\x00" + id }

func (r *revocations) add(tenant, kind, id string, exp int64) {
	r.mu.Lock()
	if r.set == nil {
		r.set = map[string]int64{}
	}
	r.set[rkey(tenant, kind, id)] = exp
	r.mu.Unlock()
}

func (r *revocations) poll() time.Duration {
	if r.store.RevocationPoll > 0 {
		return r.store.RevocationPoll
	}
	return time.Second
}

// revoked refreshes the set when it is due, then answers from memory. If
// the database cannot be read when a refresh is due, it fails closed.
func (r *revocations) revoked(ctx context.Context, tenant, grantID, jti string) (bool, error) {
	now := time.Now()
	r.mu.RLock()
	due := !r.loaded || !now.Before(r.next)
	r.mu.RUnlock()
	if due {
		if err := r.refresh(ctx, now); err != nil {
			return true, err
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, g := r.set[rkey(tenant, "grant", grantID)]
	_, j := r.set[rkey(tenant, "jti", jti)]
	return g || j, nil
}

func (r *revocations) refresh(ctx context.Context, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loaded && now.Before(r.next) {
		return nil // another caller refreshed meanwhile
	}
	rows, err := r.store.db.QueryContext(ctx, r.store.q("SELECT seq, tenant, kind, id, expires FROM revocations WHERE seq > ? ORDER BY seq"), r.last)
	if err != nil {
		return err
	}
	defer rows.Close()
	if r.set == nil {
		r.set = map[string]int64{}
	}
	for rows.Next() {
		var seq, exp int64
		var tenant, kind, id string
		if err := rows.Scan(&seq, &tenant, &kind, &id, &exp); err != nil {
			return err
		}
		r.set[rkey(tenant, kind, id)] = exp
		r.last = seq
	}
	for k, exp := range r.set { // a revoked token past its expiry needs no memory
		if exp < now.Unix()-3600 {
			delete(r.set, k)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	r.loaded, r.next = true, now.Add(r.poll())
	return nil
}
