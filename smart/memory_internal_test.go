package smart

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestMemoryStoreFull: a store full of live records refuses saves at once
// and does not sweep again before the earliest of them expires.
func TestMemoryStoreFull(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	m := &MemoryStore{Limit: 3, Now: func() time.Time { return now }}
	ctx := context.Background()
	save := func(id string, exp time.Time) error {
		return m.SaveRequest(ctx, PendingRequest{ID: id, Tenant: "t", Expires: exp})
	}
	for i, id := range []string{"r1", "r2", "r3"} {
		if err := save(id, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := save("r4", t0.Add(time.Hour)); !errors.Is(err, errFull) {
		t.Fatalf("save into a full store: %v", err)
	}
	if got := m.full["requests"]; !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("next sweep at %v, want the earliest expiry", got)
	}
	// A record that expired meanwhile is not swept out before then: no
	// scan runs while nothing can have expired since the last.
	m.requests[key("t", "stale")] = memRequest{exp: t0}
	delete(m.requests, key("t", "r3"))
	now = t0.Add(30 * time.Second)
	if err := save("r5", t0.Add(time.Hour)); !errors.Is(err, errFull) {
		t.Fatalf("save before the earliest expiry: %v", err)
	}
	if _, ok := m.requests[key("t", "stale")]; !ok {
		t.Fatal("swept before the earliest expiry")
	}
	now = t0.Add(61 * time.Second)
	if err := save("r6", t0.Add(time.Hour)); err != nil {
		t.Fatalf("save once records expired: %v", err)
	}
	if _, ok := m.requests[key("t", "stale")]; ok {
		t.Fatal("the expired record was kept")
	}
	// Replacing a record is not adding one, full or not.
	if err := save("r7", t0.Add(time.Hour)); err != nil || len(m.requests) != 3 {
		t.Fatalf("filling again: %v, %d records", err, len(m.requests))
	}
	if err := save("r2", t0.Add(2*time.Hour)); err != nil {
		t.Fatalf("replacing in a full store: %v", err)
	}
}
