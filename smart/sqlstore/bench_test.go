package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/sqlstore"
)

func TestSweep(t *testing.T) {
	for name, dsn := range dialects(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t, dsn(t))
			now := time.Now()
			st.Now = func() time.Time { return now }
			ctx := context.Background()
			for i := range 5 {
				_ = st.Smart().Claim(ctx, "t", "app", fmt.Sprint("old", i), now.Add(-time.Hour))
				_ = st.Smart().Claim(ctx, "t", "app", fmt.Sprint("new", i), now.Add(time.Hour))
			}
			n, err := st.SweepOnce(ctx)
			if err != nil || n != 5 {
				t.Fatalf("swept %d: %v", n, err)
			}
			if err := st.Smart().Claim(ctx, "t", "app", "new0", now.Add(time.Hour)); err == nil {
				t.Fatal("the sweep removed a live jti")
			}
		})
	}
}

func benchStores(b *testing.B) map[string]*sqlstore.Store {
	out := map[string]*sqlstore.Store{}
	out["sqlite"] = open(b, b.TempDir()+"/bench.db")
	if base := getenvPG(); base != "" {
		out["postgres"] = open(b, pgSchema(b, base))
	}
	return out
}

func BenchmarkConsumeCode(b *testing.B) {
	for name, st := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s := st.Smart()
			hashes := make([]string, b.N)
			for i := range hashes {
				hashes[i] = fmt.Sprintf("h%d-%d", i, time.Now().UnixNano())
				_ = s.SaveCode(ctx, smart.AuthCode{Hash: hashes[i], Tenant: "t", ClientID: "app", Expires: time.Now().Add(time.Hour)})
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.ConsumeCode(ctx, "t", hashes[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRotateRefresh(b *testing.B) {
	for name, st := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s := st.Smart()
			exp := time.Now().Add(time.Hour)
			_ = s.SaveGrant(ctx, smart.Grant{ID: "g", Tenant: "t", ClientID: "app", Expires: exp})
			prev := fmt.Sprint("r-start-", time.Now().UnixNano())
			_ = s.SaveRefresh(ctx, smart.Refresh{Hash: prev, Tenant: "t", GrantID: "g", Expires: exp})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				next := fmt.Sprintf("r%d-%d", i, time.Now().UnixNano())
				if _, err := s.RotateRefresh(ctx, "t", prev, smart.Refresh{Hash: next, Tenant: "t", GrantID: "g", Expires: exp}); err != nil {
					b.Fatal(err)
				}
				prev = next
			}
		})
	}
}

// BenchmarkAuditAppendBatched appends events in batches of 100, as
// audit.Async does; ns/op is per event.
func BenchmarkAuditAppendBatched(b *testing.B) {
	for name, st := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			l := st.Audit()
			e := audit.Event{Time: time.Now(), Tenant: "t", Type: audit.ResourceAllowed, Outcome: audit.Success, ClientID: "app",
				UserID: "dr", Patient: "123", Interaction: "read", Resource: "Observation/1", TokenID: "jti"}
			batch := make([]audit.Event, 100)
			for i := range batch {
				batch[i] = e
			}
			b.ResetTimer()
			for done := 0; done < b.N; done += len(batch) {
				n := min(len(batch), b.N-done)
				if err := l.RecordBatch(ctx, batch[:n]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
