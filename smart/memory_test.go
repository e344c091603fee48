package smart_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/smartkit/smartkit/smart"
)

// TestMemoryStoreCapacity: a full store refuses new entries with
// temporarily_unavailable until expired ones can be swept.
func TestMemoryStoreCapacity(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	m := &smart.MemoryStore{Limit: 2, Now: func() time.Time { return now }}
	for _, h := range []string{"a", "b"} {
		if err := m.SaveCode(ctx, smart.AuthCode{Hash: h, Expires: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	var oe *smart.Error
	if err := m.SaveCode(ctx, smart.AuthCode{Hash: "c", Expires: now.Add(time.Minute)}); !errors.As(err, &oe) || oe.Code != smart.TemporarilyUnavailable {
		t.Fatalf("a third code in a store of two: %v", err)
	}
	if err := m.RevokeToken(ctx, "", "j1", now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute) // the codes and the revocation have expired
	if err := m.SaveCode(ctx, smart.AuthCode{Hash: "c", Expires: now.Add(time.Minute)}); err != nil {
		t.Errorf("after expiry: %v", err)
	}
	if _, err := m.ConsumeCode(ctx, "", "a"); err == nil {
		t.Error("a swept code was consumed")
	}
}
