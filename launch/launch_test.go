package launch_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
)

const base = "https://ehr.example.org/fhir"

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newService() (*launch.Service, *clock, *audit.Memory) {
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	mem := &audit.Memory{}
	return &launch.Service{Store: &launch.Memory{Now: c.Now}, Now: c.Now, Audit: mem}, c, mem
}

func mint(t *testing.T, s *launch.Service, tenant, client string) launch.Launch {
	t.Helper()
	l, err := s.Mint(context.Background(), launch.Request{
		Tenant: tenant, ClientID: client, UserID: "dr-lee", FHIRBase: base,
		Context: launch.Context{Patient: "123"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRedeemOnce(t *testing.T) {
	s, _, mem := newService()
	l := mint(t, s, "t1", "app")
	if len(l.ID) < 22 {
		t.Fatalf("launch id %q is too short for 128 bits", l.ID)
	}
	got, err := s.Redeem(context.Background(), launch.Binding{Tenant: "t1", ID: l.ID, ClientID: "app", FHIRBase: base})
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != "dr-lee" || got.Context.Patient != "123" {
		t.Errorf("redeemed %+v", got)
	}
	if _, err := s.Redeem(context.Background(), launch.Binding{Tenant: "t1", ID: l.ID, ClientID: "app", FHIRBase: base}); !errors.Is(err, launch.ErrInvalid) {
		t.Errorf("second redemption: %v, want ErrInvalid", err)
	}
	ev := mem.Of(audit.LaunchMinted)
	if len(ev) != 1 || ev[0].LaunchRef != audit.Ref(l.ID) || ev[0].LaunchRef == l.ID {
		t.Errorf("audit: %+v", ev)
	}
}

// guess changes the last character of a launch id (to one it is not: a
// fixed "A" matched the real id once in 64 runs).
func guess(id string) string {
	last := "A"
	if strings.HasSuffix(id, last) {
		last = "B"
	}
	return id[:len(id)-1] + last
}

func TestRedeemRefusals(t *testing.T) {
	tests := map[string]func(l launch.Launch, b *launch.Binding, c *clock){
		"other client":    func(_ launch.Launch, b *launch.Binding, _ *clock) { b.ClientID = "other" },
		"other tenant":    func(_ launch.Launch, b *launch.Binding, _ *clock) { b.Tenant = "t2" },
		"other FHIR base": func(_ launch.Launch, b *launch.Binding, _ *clock) { b.FHIRBase = base + "/" },
		"expired":         func(_ launch.Launch, _ *launch.Binding, c *clock) { c.t = c.t.Add(launch.DefaultTTL) },
		"guessed":         func(_ launch.Launch, b *launch.Binding, _ *clock) { b.ID = guess(b.ID) },
		"malformed":       func(_ launch.Launch, b *launch.Binding, _ *clock) { b.ID = "x" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			s, c, _ := newService()
			l := mint(t, s, "t1", "app")
			b := launch.Binding{Tenant: "t1", ID: l.ID, ClientID: "app", FHIRBase: base}
			mutate(l, &b, c)
			if _, err := s.Redeem(context.Background(), b); !errors.Is(err, launch.ErrInvalid) {
				t.Fatalf("Redeem: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestAttemptBurnsLaunch(t *testing.T) {
	s, _, _ := newService()
	l := mint(t, s, "", "app")
	_, _ = s.Redeem(context.Background(), launch.Binding{ID: l.ID, ClientID: "attacker", FHIRBase: base})
	if _, err := s.Redeem(context.Background(), launch.Binding{ID: l.ID, ClientID: "app", FHIRBase: base}); !errors.Is(err, launch.ErrInvalid) {
		t.Fatalf("a launch survived a failed attempt: %v", err)
	}
}

func TestConcurrentRedeem(t *testing.T) {
	s, _, _ := newService()
	l := mint(t, s, "", "app")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := s.Redeem(context.Background(), launch.Binding{ID: l.ID, ClientID: "app", FHIRBase: base}); err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent redemptions succeeded, want 1", wins.Load())
	}
}

func TestMintValidation(t *testing.T) {
	s, _, _ := newService()
	for _, r := range []launch.Request{
		{UserID: "u", FHIRBase: base},
		{ClientID: "c", FHIRBase: base},
		{ClientID: "c", UserID: "u"},
		{ClientID: "c", UserID: "u", FHIRBase: base, Context: launch.Context{FHIRContext: []launch.ContextItem{{Role: "x"}}}},
	} {
		if _, err := s.Mint(context.Background(), r); err == nil {
			t.Errorf("Mint(%+v) succeeded", r)
		}
	}
	failing := &launch.Service{Store: &launch.Memory{}, Audit: audit.SinkFunc(func(context.Context, audit.Event) error { return errors.New("down") })}
	if _, err := failing.Mint(context.Background(), launch.Request{ClientID: "c", UserID: "u", FHIRBase: base}); err == nil {
		t.Error("Mint succeeded although the audit sink failed")
	}
}

func TestMemoryLimit(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	s := &launch.Service{Store: &launch.Memory{Limit: 2, Now: c.Now}, Now: c.Now}
	req := launch.Request{ClientID: "c", UserID: "u", FHIRBase: base}
	for range 2 {
		if _, err := s.Mint(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Mint(context.Background(), req); !errors.Is(err, launch.ErrFull) {
		t.Fatalf("third launch: %v, want ErrFull", err)
	}
	c.t = c.t.Add(launch.DefaultTTL)
	if _, err := s.Mint(context.Background(), req); err != nil {
		t.Fatalf("expired launches were not dropped: %v", err)
	}
}

func TestAppURL(t *testing.T) {
	l := launch.Launch{ID: "abc", FHIRBase: base}
	got, err := l.AppURL("https://app.example.com/launch?x=1")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(got)
	if q := u.Query(); q.Get("iss") != base || q.Get("launch") != "abc" || q.Get("x") != "1" {
		t.Errorf("AppURL = %s", got)
	}
	if _, err := l.AppURL("/relative"); err == nil {
		t.Error("relative launch URL accepted")
	}
}

func TestReveal(t *testing.T) {
	yes := true
	full := launch.Context{
		Patient: "p", Encounter: "e", Tenant: "t", Intent: "reconcile", StyleURL: "https://s", NeedPatientBanner: &yes,
		FHIRContext: []launch.ContextItem{
			{Reference: "ImagingStudy/1"},
			{Canonical: "http://q.example/Questionnaire/x", Type: "Questionnaire"},
		},
	}
	tests := []struct {
		name    string
		granted string
		ehr     bool
		want    launch.Context
	}{
		{"ehr launch reveals all", "launch patient/*.rs", true, full},
		{"standalone patient", "launch/patient patient/*.rs", false, launch.Context{Patient: "p", Tenant: "t"}},
		{"standalone encounter and type", "launch/encounter launch/imagingstudy", false,
			launch.Context{Encounter: "e", Tenant: "t", FHIRContext: full.FHIRContext[:1]}},
		{"patient/ scopes need the patient", "patient/Observation.rs", false, launch.Context{Patient: "p", Tenant: "t"}},
		{"nothing granted", "openid", true, launch.Context{Tenant: "t", Intent: "reconcile", StyleURL: "https://s", NeedPatientBanner: &yes}},
		{"launch scope outside an EHR launch", "launch", false, launch.Context{Tenant: "t"}},
	}
	for _, tc := range tests {
		got := full.Reveal(scopes.MustParseSet(tc.granted), tc.ehr)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
