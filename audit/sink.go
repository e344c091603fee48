package audit

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
)

// A Sink records audit events. Record returns an error when the event could
// not be recorded; callers treat that as a reason to refuse the operation
// that produced it (fail closed). Sinks must be safe for concurrent use.
type Sink interface {
	Record(ctx context.Context, e Event) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, e Event) error

// Record calls f.
func (f SinkFunc) Record(ctx context.Context, e Event) error { return f(ctx, e) }

// Memory is an in-memory Sink for tests and examples. The zero value is
// ready to use.
type Memory struct {
	mu     sync.Mutex
	events []Event
}

// Record appends e.
func (m *Memory) Record(_ context.Context, e Event) error {
	m.mu.Lock()
	m.events = append(m.events, e)
	m.mu.Unlock()
	return nil
}

// Events returns a copy of the recorded events, oldest first.
func (m *Memory) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.events)
}

// Of returns the recorded events of the given type, oldest first.
func (m *Memory) Of(t Type) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, e := range m.events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

// Reset forgets every recorded event.
func (m *Memory) Reset() {
	m.mu.Lock()
	m.events = nil
	m.mu.Unlock()
}

// Slog is a Sink that writes each event as one log record, for hosts that
// ship logs to their SIEM. Security events are logged at Warn, the rest at
// Info. Logger nil means slog.Default(). Values go through slog's handler,
// which escapes them, so no event can forge a log line.
type Slog struct {
	Logger *slog.Logger
}

// Record logs e.
func (s Slog) Record(ctx context.Context, e Event) error {
	l := s.Logger
	if l == nil {
		l = slog.Default()
	}
	level := slog.LevelInfo
	if e.Severity == Security || e.Severity == Warning {
		level = slog.LevelWarn
	}
	l.LogAttrs(ctx, level, "audit", slog.Any("event", e))
	return nil
}

// Multi returns a Sink that records each event in every sink, in order, and
// returns the errors of those that failed, joined.
func Multi(sinks ...Sink) Sink {
	return SinkFunc(func(ctx context.Context, e Event) error {
		var errs []error
		for _, s := range sinks {
			if err := s.Record(ctx, e); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}

// ErrBadCursor is returned by a Log for a malformed page cursor.
var ErrBadCursor = errors.New("audit: bad cursor")
