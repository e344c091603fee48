package audit

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics is a Sink that turns events into OpenTelemetry counters, through
// the metrics API only (the host chooses the SDK and exporter):
//
//	smartkit.tokens.issued         {client_id}
//	smartkit.refusals              {type, code}          refusals by OAuth/FHIR code
//	smartkit.client_auth.failures  {client_id}
//	smartkit.resource.accesses     {client_id, interaction, outcome}
//	smartkit.security.alerts       {type}
//
// Attribute values are identifiers and codes only, never PHI or tokens.
type Metrics struct {
	tokens, refusals, authFailures, accesses, alerts metric.Int64Counter
}

// NewMetrics creates the counters on meter.
func NewMetrics(meter metric.Meter) (*Metrics, error) {
	m := &Metrics{}
	for _, c := range []struct {
		dst        *metric.Int64Counter
		name, desc string
	}{
		{&m.tokens, "smartkit.tokens.issued", "Access tokens issued, by client."},
		{&m.refusals, "smartkit.refusals", "Refused requests, by event type and error code."},
		{&m.authFailures, "smartkit.client_auth.failures", "Failed client authentications, by client."},
		{&m.accesses, "smartkit.resource.accesses", "Proxied FHIR accesses, by client, interaction and outcome."},
		{&m.alerts, "smartkit.security.alerts", "Security-severity events, by type."},
	} {
		var err error
		if *c.dst, err = meter.Int64Counter(c.name, metric.WithDescription(c.desc)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Record counts an event. It never fails.
func (m *Metrics) Record(ctx context.Context, e Event) error {
	switch e.Type {
	case TokenIssued, TokenRefreshed:
		m.tokens.Add(ctx, 1, metric.WithAttributes(attribute.String("client_id", e.ClientID)))
	case ClientAuthFailed:
		m.authFailures.Add(ctx, 1, metric.WithAttributes(attribute.String("client_id", e.ClientID)))
	case ResourceAllowed, ResourceRefused:
		m.accesses.Add(ctx, 1, metric.WithAttributes(attribute.String("client_id", e.ClientID),
			attribute.String("interaction", e.Interaction), attribute.String("outcome", string(e.Outcome))))
	}
	if e.Outcome == Failure {
		code, _, _ := strings.Cut(e.Reason, ":")
		m.refusals.Add(ctx, 1, metric.WithAttributes(attribute.String("type", string(e.Type)), attribute.String("code", code)))
	}
	if e.Severity == Security {
		m.alerts.Add(ctx, 1, metric.WithAttributes(attribute.String("type", string(e.Type))))
	}
	return nil
}
