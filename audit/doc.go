// Package audit is smartkit's evidence trail: one event model for every
// SMART step and every proxied FHIR access, and the Sink interface the other
// packages write to. Audit is evidence, not diagnostics: a Sink returns its
// errors, and callers fail closed when an event cannot be recorded.
//
// Events never carry secrets. There are no fields for access or refresh
// tokens, codes, client secrets, PKCE verifiers or client assertions; a token
// is identified by its jti, and a launch by [Ref], a one-way reference to the
// launch id.
//
// This package provides the model and the [Memory], [Slog] and [Multi]
// sinks. The SQL log, the async batching sink, tamper evidence, the query
// API and FHIR AuditEvent export are tracked in their own issue.
package audit
