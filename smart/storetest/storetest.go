// Package storetest is a conformance suite for smartkit's store interfaces,
// in the spirit of testing/fstest: a host that writes its own store (or
// runs ours on another database) calls these from its tests, and its store
// meets the bar the memory and SQL stores meet: single-use consumption
// under concurrency, atomic refresh rotation, replay refusal, tenant
// isolation, compare-and-set updates, and an intact audit hash chain.
//
//	func TestMyStore(t *testing.T) {
//		storetest.Smart(t, func(t *testing.T) smart.Store { return newMyStore(t) })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart"
	"github.com/smartkit/smartkit/smart/registry"
)

var ctx = context.Background()

// race runs f n times concurrently and returns how many returned nil.
func race(n int, f func() error) int {
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if f() == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return int(ok.Load())
}

// Smart checks a smart.Store.
func Smart(t *testing.T, newStore func(t *testing.T) smart.Store) {
	exp := time.Now().Add(time.Hour)
	t.Run("code consumed once", func(t *testing.T) {
		s := newStore(t)
		c := smart.AuthCode{Hash: "h1", Tenant: "t1", ClientID: "app", GrantID: "g1", Expires: exp}
		if err := s.SaveCode(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsumeCode(ctx, "t2", "h1"); !errors.Is(err, smart.ErrNotFound) {
			t.Fatalf("other tenant: %v", err)
		}
		got, err := s.ConsumeCode(ctx, "t1", "h1")
		if err != nil || got.ClientID != "app" || got.GrantID != "g1" {
			t.Fatalf("first consume: %+v %v", got, err)
		}
		if got, err := s.ConsumeCode(ctx, "t1", "h1"); !errors.Is(err, smart.ErrUsed) || got.GrantID != "g1" {
			t.Fatalf("second consume: %+v %v, want the code and ErrUsed", got, err)
		}
		if _, err := s.ConsumeCode(ctx, "t1", "nope"); !errors.Is(err, smart.ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	})
	t.Run("concurrent consumption has one winner", func(t *testing.T) {
		s := newStore(t)
		_ = s.SaveCode(ctx, smart.AuthCode{Hash: "race", Tenant: "t", Expires: exp})
		if n := race(16, func() error { _, err := s.ConsumeCode(ctx, "t", "race"); return err }); n != 1 {
			t.Fatalf("%d winners", n)
		}
	})
	t.Run("grants and revocation", func(t *testing.T) {
		s := newStore(t)
		g := smart.Grant{ID: "g1", Tenant: "t", ClientID: "app", UserID: "u", Scope: "patient/*.rs online_access", Expires: exp, Session: "s1"}
		if err := s.SaveGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
		got, err := s.Grant(ctx, "t", "g1")
		if err != nil || got.Scope != "patient/*.rs online_access" || got.Session != "s1" || got.Revoked {
			t.Fatalf("grant %+v %v", got, err)
		}
		if _, err := s.Grant(ctx, "other", "g1"); !errors.Is(err, smart.ErrNotFound) {
			t.Fatalf("other tenant: %v", err)
		}
		_ = s.SaveRefresh(ctx, smart.Refresh{Hash: "r1", Tenant: "t", GrantID: "g1", ClientID: "app", Expires: exp})
		if rv, _ := s.Revoked(ctx, "t", "g1", "j1"); rv {
			t.Fatal("revoked before revocation")
		}
		if err := s.RevokeGrant(ctx, "t", "g1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Grant(ctx, "t", "g1"); !got.Revoked {
			t.Fatal("grant not revoked")
		}
		if rv, err := s.Revoked(ctx, "t", "g1", "j1"); !rv || err != nil {
			t.Fatalf("Revoked = %v %v", rv, err)
		}
		if _, err := s.RotateRefresh(ctx, "t", "r1", smart.Refresh{Hash: "r2", Tenant: "t", GrantID: "g1", Expires: exp}); !errors.Is(err, smart.ErrUsed) {
			t.Fatalf("the family's refresh token survived revocation: %v", err)
		}
		if err := s.RevokeGrant(ctx, "t", "nope"); !errors.Is(err, smart.ErrNotFound) {
			t.Fatalf("unknown grant: %v", err)
		}
	})
	t.Run("revoke every grant of a client", func(t *testing.T) {
		s := newStore(t)
		for i := range 3 {
			_ = s.SaveGrant(ctx, smart.Grant{ID: fmt.Sprint("g", i), Tenant: "t", ClientID: "app", Expires: exp})
		}
		_ = s.SaveGrant(ctx, smart.Grant{ID: "other", Tenant: "t", ClientID: "other", Expires: exp})
		if n, err := s.RevokeGrantsOf(ctx, "t", "app"); n != 3 || err != nil {
			t.Fatalf("revoked %d: %v", n, err)
		}
		if rv, _ := s.Revoked(ctx, "t", "other", "x"); rv {
			t.Fatal("another client's grant was revoked")
		}
	})
	t.Run("refresh rotation", func(t *testing.T) {
		s := newStore(t)
		_ = s.SaveGrant(ctx, smart.Grant{ID: "g", Tenant: "t", ClientID: "app", Expires: exp})
		_ = s.SaveRefresh(ctx, smart.Refresh{Hash: "r1", Tenant: "t", GrantID: "g", ClientID: "app", Scope: "a", Expires: exp})
		if n := race(8, func() error {
			_, err := s.RotateRefresh(ctx, "t", "r1", smart.Refresh{Hash: "r2-" + fmt.Sprint(time.Now().UnixNano()), Tenant: "t", GrantID: "g", Expires: exp})
			return err
		}); n != 1 {
			t.Fatalf("%d concurrent rotations succeeded", n)
		}
		if r, err := s.Refresh(ctx, "t", "r1"); !errors.Is(err, smart.ErrUsed) || r.GrantID != "g" {
			t.Fatalf("rotated token: %+v %v", r, err)
		}
		_ = s.SaveRefresh(ctx, smart.Refresh{Hash: "r9", Tenant: "t", GrantID: "g", Expires: exp})
		if _, err := s.RotateRefresh(ctx, "t", "r9", smart.Refresh{}); err != nil {
			t.Fatalf("ending a family: %v", err)
		}
		if _, err := s.Refresh(ctx, "t", "r9"); !errors.Is(err, smart.ErrUsed) {
			t.Fatal("ending a family did not retire the token")
		}
		if _, err := s.Refresh(ctx, "t", "nope"); !errors.Is(err, smart.ErrNotFound) {
			t.Fatal("unknown refresh token")
		}
	})
	t.Run("access token revocation", func(t *testing.T) {
		s := newStore(t)
		_ = s.SaveGrant(ctx, smart.Grant{ID: "g", Tenant: "t", Expires: exp})
		if err := s.RevokeToken(ctx, "t", "jti-1", exp); err != nil {
			t.Fatal(err)
		}
		if rv, _ := s.Revoked(ctx, "t", "g", "jti-1"); !rv {
			t.Fatal("revoked jti not seen")
		}
		if rv, _ := s.Revoked(ctx, "t", "g", "jti-2"); rv {
			t.Fatal("another jti revoked")
		}
	})
	t.Run("assertion replay", func(t *testing.T) {
		s := newStore(t)
		if err := s.Claim(ctx, "t", "app", "j1", exp); err != nil {
			t.Fatal(err)
		}
		if err := s.Claim(ctx, "t", "app", "j1", exp); !errors.Is(err, smart.ErrReplay) {
			t.Fatalf("replay: %v", err)
		}
		if err := s.Claim(ctx, "t", "other", "j1", exp); err != nil {
			t.Fatalf("same jti, other issuer: %v", err)
		}
		if err := s.Claim(ctx, "t2", "app", "j1", exp); err != nil {
			t.Fatalf("same jti, other tenant: %v", err)
		}
		if n := race(8, func() error { return s.Claim(ctx, "t", "app", "j-race", exp) }); n != 1 {
			t.Fatalf("%d concurrent claims of one jti succeeded", n)
		}
	})
	t.Run("pending requests", func(t *testing.T) {
		s := newStore(t)
		p := smart.PendingRequest{ID: "p1", Tenant: "t", ClientID: "app", State: "s", Expires: exp}
		if err := s.SaveRequest(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.UserID = "u"
		if err := s.SaveRequest(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Request(ctx, "t", "p1"); err != nil || got.UserID != "u" {
			t.Fatalf("request %+v %v", got, err)
		}
		if n := race(8, func() error { _, err := s.ConsumeRequest(ctx, "t", "p1"); return err }); n != 1 {
			t.Fatalf("%d consumed one request", n)
		}
		if _, err := s.Request(ctx, "t", "p1"); !errors.Is(err, smart.ErrNotFound) {
			t.Fatal("consumed request still there")
		}
	})
}

// Launch checks a launch.Store.
func Launch(t *testing.T, newStore func(t *testing.T) launch.Store) {
	s := newStore(t)
	l := launch.Launch{ID: "l1", Tenant: "t", ClientID: "app", UserID: "u", FHIRBase: "https://x/fhir",
		Context: launch.Context{Patient: "p"}, Expires: time.Now().Add(time.Minute)}
	if err := s.Save(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Consume(ctx, "t2", "l1"); !errors.Is(err, launch.ErrNotFound) {
		t.Fatalf("other tenant: %v", err)
	}
	if n := race(8, func() error { _, err := s.Consume(ctx, "t", "l1"); return err }); n != 1 {
		t.Fatalf("%d consumed one launch", n)
	}
	_ = s.Save(ctx, launch.Launch{ID: "l2", Tenant: "t", Context: launch.Context{Patient: "p2"}, Expires: time.Now().Add(time.Minute)})
	if got, err := s.Consume(ctx, "t", "l2"); err != nil || got.Context.Patient != "p2" {
		t.Fatalf("launch %+v %v", got, err)
	}
}

// Registry checks a registry.Store.
func Registry(t *testing.T, newStore func(t *testing.T) registry.Store) {
	s := newStore(t)
	a := registry.App{ID: "a1", Tenant: "t", State: registry.Draft, Revision: 1,
		Environments: map[registry.Environment]*registry.Credential{registry.Sandbox: {ClientID: "sb-1"}, registry.Production: {ClientID: "pr-1"}}}
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	dup := a
	dup.ID = "a2"
	if err := s.Create(ctx, dup); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("duplicate client id: %v", err)
	}
	if err := s.Create(ctx, a); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("duplicate app: %v", err)
	}
	if got, err := s.ByClientID(ctx, "t", "pr-1"); err != nil || got.ID != "a1" {
		t.Fatalf("by client id: %v", err)
	}
	if _, err := s.ByClientID(ctx, "t2", "pr-1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("other tenant: %v", err)
	}
	a.Revision, a.State = 2, registry.SandboxApproved
	a.Environments[registry.Sandbox] = &registry.Credential{ClientID: "sb-2"}
	if err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, a); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("stale revision: %v", err)
	}
	if _, err := s.ByClientID(ctx, "t", "sb-1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatal("a replaced client id still resolves")
	}
	if got, _ := s.ByClientID(ctx, "t", "sb-2"); got.State != registry.SandboxApproved {
		t.Fatal("update not stored")
	}
	next := a
	next.Revision = 3
	if n := race(6, func() error { return s.Update(ctx, next) }); n != 1 {
		t.Fatalf("%d concurrent updates of one revision succeeded", n)
	}
	if l, _ := s.List(ctx, "t"); len(l) != 1 {
		t.Fatalf("list %d", len(l))
	}
}

// Consent checks a consent.Store.
func Consent(t *testing.T, newStore func(t *testing.T) consent.Store) {
	s := newStore(t)
	t0 := time.Now()
	for i, p := range []string{"p1", "p1", "p2"} {
		g := consent.Grant{ID: fmt.Sprint("c", i), Tenant: "t", ClientID: "app", UserID: "u", Patient: p, Scope: fmt.Sprint(i),
			Status: consent.Active, Created: t0.Add(time.Duration(i) * time.Second)}
		if err := s.Save(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if g, err := s.Latest(ctx, "t", "app", "u", "p1"); err != nil || g.ID != "c1" {
		t.Fatalf("latest %+v %v", g, err)
	}
	if _, err := s.Latest(ctx, "t", "app", "u", "p9"); !errors.Is(err, consent.ErrNotFound) {
		t.Fatalf("none: %v", err)
	}
	g, _ := s.Grant(ctx, "t", "c0")
	g.Status = consent.Inactive
	_ = s.Save(ctx, g)
	if g, _ := s.Grant(ctx, "t", "c0"); g.Status != consent.Inactive {
		t.Fatal("update not stored")
	}
	if gs, _ := s.ByUser(ctx, "t", "u"); len(gs) != 3 || gs[0].ID != "c2" {
		t.Fatalf("by user %d, newest first", len(gs))
	}
	if gs, _ := s.ByClient(ctx, "t2", "app"); len(gs) != 0 {
		t.Fatal("another tenant's consents")
	}
}

// AuditLog checks an audit.Log: chained appends (also concurrent), queries and paging.
func AuditLog(t *testing.T, newLog func(t *testing.T) audit.Log) {
	l := newLog(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var batch []audit.Event
	for i := range 25 {
		batch = append(batch, audit.Event{Time: t0.Add(time.Duration(i) * time.Second), Tenant: "t", Type: audit.ResourceAllowed,
			Outcome: audit.Success, ClientID: fmt.Sprint("app", i%2), Patient: fmt.Sprint("p", i%5)})
	}
	if err := l.RecordBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if n := race(8, func() error {
		return l.Record(ctx, audit.Event{Time: t0, Tenant: "t", Type: audit.TokenIssued, Outcome: audit.Success, ClientID: "c"})
	}); n != 8 {
		t.Fatalf("%d of 8 concurrent appends succeeded", n)
	}
	_ = l.Record(ctx, audit.Event{Time: t0, Tenant: "other", Type: audit.TokenIssued, Patient: "p0"})
	rs, err := l.Records(ctx, "t", 0, 0)
	if err != nil || len(rs) != 33 {
		t.Fatalf("%d records: %v", len(rs), err)
	}
	if err := audit.VerifyChain(rs, "", 0); err != nil {
		t.Fatal(err)
	}
	if tail, _ := l.Records(ctx, "t", 30, 2); len(tail) != 2 || tail[0].Seq != 31 {
		t.Fatalf("records after 30: %+v", tail)
	}
	seen := 0
	for cursor := ""; ; {
		p, err := l.Query(ctx, audit.Query{Tenant: "t", Patient: "p0", Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			if r.Event.Patient != "p0" {
				t.Fatal("query returned another patient")
			}
		}
		seen += len(p.Records)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if seen != 5 {
		t.Fatalf("patient p0: %d records, want 5", seen)
	}
	// A search that disclosed several patients' records is found by each.
	many := audit.Event{Time: t0, Tenant: "t", Type: audit.ResourceAllowed, Outcome: audit.Success, ClientID: "research",
		Patient: "p1", Patients: []string{"p7", "p8", "p7"}}
	if err := l.Record(ctx, many); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"p1", "p7", "p8"} {
		p, err := l.Query(ctx, audit.Query{Tenant: "t", Patient: who, ClientID: "research"})
		if err != nil || len(p.Records) != 1 || !slices.Equal(p.Records[0].Event.Patients, many.Patients) {
			t.Fatalf("patient %s: %+v %v", who, p.Records, err)
		}
	}
	// A page of a thousand patients and more (the SQL log inserts them in
	// several statements).
	page := audit.Event{Time: t0, Tenant: "t", Type: audit.ResourceAllowed, Outcome: audit.Success, ClientID: "bulk", Patient: "q0"}
	for i := 1; i <= 1200; i++ {
		page.Patients = append(page.Patients, fmt.Sprint("q", i))
	}
	if err := l.Record(ctx, page); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"q1", "q500", "q501", "q1200"} {
		if p, err := l.Query(ctx, audit.Query{Tenant: "t", Patient: who, ClientID: "bulk"}); err != nil || len(p.Records) != 1 {
			t.Fatalf("patient %s of a large page: %d records, %v", who, len(p.Records), err)
		}
	}
	if p, _ := l.Query(ctx, audit.Query{Tenant: "other", Patient: "p7"}); len(p.Records) != 0 {
		t.Fatalf("another tenant's query found %+v", p.Records)
	}
	if rs, err := l.Records(ctx, "t", 0, 0); err != nil || audit.VerifyChain(rs, "", 0) != nil {
		t.Fatalf("the chain with Patients: %v", err)
	}
	p, _ := l.Query(ctx, audit.Query{Tenant: "t", Types: []audit.Type{audit.TokenIssued}, ClientID: "c"})
	if len(p.Records) != 8 {
		t.Fatalf("by type and client: %d", len(p.Records))
	}
	if _, err := l.Query(ctx, audit.Query{Tenant: "t", Cursor: "zz"}); !errors.Is(err, audit.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}
