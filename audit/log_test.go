package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
)

func seed(t *testing.T, l audit.Log) {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for i := range 30 {
		e := audit.Event{Time: t0.Add(time.Duration(i) * time.Minute), Tenant: "h1", Type: audit.ResourceAllowed, Outcome: audit.Success,
			ClientID: "app-a", UserID: "dr-1", Patient: "p1", Interaction: "read"}
		if i%3 == 0 {
			e.Patient, e.ClientID = "p2", "app-b"
		}
		if i%5 == 0 {
			e.Type, e.Outcome, e.Reason = audit.ResourceRefused, audit.Failure, "insufficient_scope"
		}
		evs = append(evs, e)
	}
	evs = append(evs, audit.Event{Time: t0, Tenant: "h2", Type: audit.TokenIssued, Outcome: audit.Success, Patient: "p1"})
	if err := l.RecordBatch(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func TestQuery(t *testing.T) {
	l := &audit.MemoryLog{}
	seed(t, l)
	ctx := context.Background()
	count := func(q audit.Query) int {
		n, cursor := 0, ""
		for {
			q.Cursor = cursor
			p, err := l.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(p.Records); i++ {
				if p.Records[i].Seq >= p.Records[i-1].Seq {
					t.Fatal("a page is not newest first")
				}
			}
			n += len(p.Records)
			if p.Next == "" {
				return n
			}
			cursor = p.Next
		}
	}
	tests := map[string]struct {
		q    audit.Query
		want int
	}{
		"everything, paged by 7":  {audit.Query{Tenant: "h1", Limit: 7}, 30},
		"accesses to patient p1":  {audit.Query{Tenant: "h1", Patient: "p1"}, 20},
		"what app-b did":          {audit.Query{Tenant: "h1", ClientID: "app-b"}, 10},
		"refusals":                {audit.Query{Tenant: "h1", Outcome: audit.Failure}, 6},
		"by type":                 {audit.Query{Tenant: "h1", Types: []audit.Type{audit.ResourceRefused}}, 6},
		"time range":              {audit.Query{Tenant: "h1", From: time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC), To: time.Date(2026, 1, 1, 0, 20, 0, 0, time.UTC)}, 10},
		"another tenant is apart": {audit.Query{Tenant: "h2", Patient: "p1"}, 1},
		"unknown tenant":          {audit.Query{Tenant: "nope"}, 0},
	}
	for name, tc := range tests {
		if got := count(tc.q); got != tc.want {
			t.Errorf("%s: %d records, want %d", name, got, tc.want)
		}
	}
	if _, err := l.Query(ctx, audit.Query{Tenant: "h1", Cursor: "x"}); !errors.Is(err, audit.ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestChainDetectsEditAndDeletion(t *testing.T) {
	l := &audit.MemoryLog{}
	seed(t, l)
	rs, _ := l.Records(context.Background(), "h1", 0, 0)
	if err := audit.VerifyChain(rs, "", 0); err != nil {
		t.Fatalf("intact chain: %v", err)
	}
	edited := append([]audit.Record(nil), rs...)
	edited[11].Event.Patient = "p9"
	var be *audit.BrokenChainError
	if err := audit.VerifyChain(edited, "", 0); !errors.As(err, &be) || be.Seq != 12 {
		t.Fatalf("edit of record 12: %v", err)
	}
	deleted := append(append([]audit.Record(nil), rs[:19]...), rs[20:]...)
	if err := audit.VerifyChain(deleted, "", 0); !errors.As(err, &be) || be.Seq != 20 {
		t.Fatalf("deletion of record 20: %v", err)
	}
	rehashed := append([]audit.Record(nil), rs...)
	rehashed[4] = audit.Link(&rehashed[3], audit.Event{Tenant: "h1", Type: audit.ResourceAllowed})
	if err := audit.VerifyChain(rehashed, "", 0); !errors.As(err, &be) || be.Seq != 6 {
		t.Fatalf("a forged, re-hashed record 5 must break the link at 6: %v", err)
	}
	// Verification can start at a checkpoint.
	if err := audit.VerifyChain(rs[10:], rs[9].Hash, rs[9].Seq); err != nil {
		t.Fatalf("from a checkpoint: %v", err)
	}
}

// TestHashesAreStable: a record's hash is pinned, so a field added to Event
// cannot change the hashes of records written before it (Labels is left
// out of the JSON when empty; with labels, the hash is another).
func TestHashesAreStable(t *testing.T) {
	e := audit.Event{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Tenant: "t1", Type: audit.ResourceAllowed, Outcome: audit.Success,
		ClientID: "app", Patient: "123", Resource: "Observation/7"}
	if got := audit.Link(nil, e).Hash; got != "32849a8d706d02976dfed598c71af114a99a4c1f1b5736f70940d1edd91f37d7" {
		t.Errorf("the hash of an unchanged event changed: %s", got)
	}
	e.Labels = []string{"http://terminology.hl7.org/CodeSystem/v3-ActCode|HIV"}
	if audit.Link(nil, e).Hash == "32849a8d706d02976dfed598c71af114a99a4c1f1b5736f70940d1edd91f37d7" {
		t.Error("labels are not part of the hash")
	}
}
