package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestDetector(t *testing.T) {
	var alerts []audit.Alert
	d := &audit.Detector{Alert: func(_ context.Context, a audit.Alert) { alerts = append(alerts, a) }, MinCount: 50,
		Approved: func(_, client string) (string, bool) { return "launch/patient patient/Observation.rs", client == "app" }}
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Five quiet minutes of about 20 accesses, then a burst of 400.
	for m := range 5 {
		for i := range 20 {
			_ = d.Record(ctx, audit.Event{Time: t0.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Second), Type: audit.ResourceAllowed, ClientID: "app"})
		}
	}
	for i := range 400 {
		_ = d.Record(ctx, audit.Event{Time: t0.Add(5*time.Minute + time.Duration(i)*100*time.Millisecond), Type: audit.ResourceAllowed, ClientID: "app"})
	}
	// Another app at a steady high rate is its own baseline: no alert.
	for m := range 6 {
		for i := range 300 {
			_ = d.Record(ctx, audit.Event{Time: t0.Add(time.Duration(m)*time.Minute + time.Duration(i)*150*time.Millisecond), Type: audit.ResourceAllowed, ClientID: "bulk"})
		}
	}
	_ = d.Record(ctx, audit.Event{Time: t0, Type: audit.TokenIssued, ClientID: "app", Scopes: "launch/patient patient/Observation.r patient/Condition.rs"})
	_ = d.Record(ctx, audit.Event{Time: t0, Type: audit.TokenIssued, ClientID: "app", Scopes: "patient/Observation.rs"})
	_ = d.Record(ctx, audit.Event{Time: t0, Type: audit.AppTransition, ClientID: "app", Reason: "metadata updated"})
	kinds := map[string]int{}
	for _, a := range alerts {
		kinds[a.Kind+"/"+a.ClientID]++
	}
	want := map[string]int{"volume/app": 1, "scope-drift/app": 1, "app-change/app": 1}
	if len(kinds) != len(want) {
		t.Fatalf("alerts %v, want %v", kinds, want)
	}
	for k, n := range want {
		if kinds[k] != n {
			t.Fatalf("alerts %v, want %v", kinds, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("smartkit-test")
	m, err := audit.NewMetrics(meter)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, e := range []audit.Event{
		{Type: audit.TokenIssued, ClientID: "a"}, {Type: audit.TokenIssued, ClientID: "a"},
		{Type: audit.TokenRefused, Outcome: audit.Failure, Reason: "invalid_grant: code reuse"},
		{Type: audit.ClientAuthFailed, Outcome: audit.Failure, ClientID: "b", Severity: audit.Security},
		{Type: audit.ResourceAllowed, ClientID: "a", Interaction: "read", Outcome: audit.Success},
	} {
		_ = m.Record(ctx, e)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, met := range sm.Metrics {
			for _, dp := range met.Data.(metricdata.Sum[int64]).DataPoints {
				got[met.Name] += dp.Value
			}
		}
	}
	want := map[string]int64{"smartkit.tokens.issued": 2, "smartkit.refusals": 2, "smartkit.client_auth.failures": 1,
		"smartkit.resource.accesses": 1, "smartkit.security.alerts": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
