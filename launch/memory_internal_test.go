package launch

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestMemoryFullScansOnce: a store full of live launches refuses at once
// and does not scan again before the earliest of them expires.
func TestMemoryFullScansOnce(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	m := &Memory{Limit: 2, Now: func() time.Time { return now }}
	ctx := context.Background()
	for i, id := range []string{"a", "b"} {
		if err := m.Save(ctx, Launch{ID: id, Expires: t0.Add(time.Duration(i+1) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Save(ctx, Launch{ID: "c", Expires: t0.Add(time.Hour)}); !errors.Is(err, ErrFull) || !m.fullUntil.Equal(t0.Add(time.Minute)) {
		t.Fatalf("full: %v, next scan at %v", err, m.fullUntil)
	}
	stale := memKey{"", "stale"}.String() // expired, planted: a scan would drop it
	m.launches[stale], m.expires[stale] = nil, t0
	delete(m.launches, memKey{"", "b"}.String())
	delete(m.expires, memKey{"", "b"}.String())
	now = t0.Add(30 * time.Second)
	if err := m.Save(ctx, Launch{ID: "d", Expires: t0.Add(time.Hour)}); !errors.Is(err, ErrFull) {
		t.Fatalf("before the earliest expiry: %v", err)
	}
	if _, ok := m.launches[stale]; !ok {
		t.Fatal("scanned before the earliest expiry")
	}
	now = t0.Add(time.Minute)
	if err := m.Save(ctx, Launch{ID: "e", Expires: t0.Add(time.Hour)}); err != nil {
		t.Fatalf("once launches expired: %v", err)
	}
}
