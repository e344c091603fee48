package audit

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"
)

// A Query selects events from a Log: the questions a security team asks
// (who accessed this patient, what did this app or user do, what was
// refused). Zero fields match everything; Tenant is always applied.
type Query struct {
	Tenant   string
	From, To time.Time // [From, To)
	Patient  string    // Event.Patient or one of Event.Patients
	UserID   string
	ClientID string
	Types    []Type
	Outcome  Outcome
	Severity Severity
	// Cursor continues a previous page (Page.Next); "" starts at the newest.
	Cursor string
	Limit  int // 0 means 100; at most 1000
}

// A Page is one page of a query, newest first.
type Page struct {
	Records []Record
	Next    string // cursor of the next (older) page; "" at the end
}

func (q Query) limit() int {
	switch {
	case q.Limit <= 0:
		return 100
	case q.Limit > 1000:
		return 1000
	}
	return q.Limit
}

// Matches reports whether an event satisfies the query's filters.
func (q Query) Matches(e Event) bool {
	return (q.From.IsZero() || !e.Time.Before(q.From)) && (q.To.IsZero() || e.Time.Before(q.To)) &&
		(q.Patient == "" || e.Patient == q.Patient || slices.Contains(e.Patients, q.Patient)) && (q.UserID == "" || e.UserID == q.UserID) &&
		(q.ClientID == "" || e.ClientID == q.ClientID) && (len(q.Types) == 0 || slices.Contains(q.Types, e.Type)) &&
		(q.Outcome == "" || e.Outcome == q.Outcome) && (q.Severity == "" || e.Severity == q.Severity)
}

// Log is a durable, queryable, tamper-evident audit log. Append chains the
// events per tenant in one transaction. The SQL log in smart/sqlstore
// implements it; MemoryLog here.
type Log interface {
	Sink
	BatchSink
	Query(ctx context.Context, q Query) (Page, error)
	// Records returns a tenant's records with Seq > after, oldest first,
	// for chain verification and export.
	Records(ctx context.Context, tenant string, after int64, limit int) ([]Record, error)
}

// MemoryLog is an in-memory Log. The zero value is ready to use.
type MemoryLog struct {
	mu      sync.RWMutex
	tenants map[string][]Record
}

// Record appends one event.
func (m *MemoryLog) Record(ctx context.Context, e Event) error { return m.RecordBatch(ctx, []Event{e}) }

// RecordBatch appends events, chaining each to its tenant's log.
func (m *MemoryLog) RecordBatch(_ context.Context, events []Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tenants == nil {
		m.tenants = map[string][]Record{}
	}
	for _, e := range events {
		rs := m.tenants[e.Tenant]
		var prev *Record
		if len(rs) > 0 {
			prev = &rs[len(rs)-1]
		}
		m.tenants[e.Tenant] = append(rs, Link(prev, e))
	}
	return nil
}

// Query returns matching records, newest first, a page at a time.
func (m *MemoryLog) Query(_ context.Context, q Query) (Page, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	rs := m.tenants[q.Tenant]
	start := len(rs) - 1
	if q.Cursor != "" {
		seq, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || seq < 1 {
			return Page{}, ErrBadCursor
		}
		start = min(int(seq)-2, len(rs)-1)
	}
	var p Page
	for i := start; i >= 0; i-- {
		if q.Matches(rs[i].Event) {
			if len(p.Records) == q.limit() {
				p.Next = strconv.FormatInt(p.Records[len(p.Records)-1].Seq, 10)
				break
			}
			p.Records = append(p.Records, rs[i])
		}
	}
	return p, nil
}

// Records returns a tenant's records after a sequence number.
func (m *MemoryLog) Records(_ context.Context, tenant string, after int64, limit int) ([]Record, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	rs := m.tenants[tenant]
	if after >= int64(len(rs)) {
		return nil, nil
	}
	out := rs[after:]
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return slices.Clone(out), nil
}
