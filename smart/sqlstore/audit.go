package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/smartkit/smartkit/audit"
)

// Audit returns the hash-chained audit log. Put an audit.Async in front of
// it so callers pay a queue push, not a transaction.
func (s *Store) Audit() audit.Log { return auditLog{s} }

type auditLog struct{ s *Store }

var _ audit.Log = auditLog{}

// Record appends one event.
func (v auditLog) Record(ctx context.Context, e audit.Event) error {
	return v.RecordBatch(ctx, []audit.Event{e})
}

// RecordBatch appends events in one transaction, chaining each to the last
// record of its tenant. Appends for one tenant are serialised across nodes
// (an advisory lock on PostgreSQL, the write lock on SQLite).
func (v auditLog) RecordBatch(ctx context.Context, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	return v.s.tx(ctx, func(tx *sql.Tx) error {
		last := map[string]*audit.Record{}
		for _, e := range events {
			prev, ok := last[e.Tenant]
			if !ok {
				if v.s.postgres {
					if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "smartkit-audit:"+e.Tenant); err != nil {
						return err
					}
				}
				var r audit.Record
				err := tx.QueryRowContext(ctx, v.s.q("SELECT seq, hash FROM audit WHERE tenant = ? ORDER BY seq DESC LIMIT 1"), e.Tenant).Scan(&r.Seq, &r.Hash)
				switch {
				case err == nil:
					prev = &r
				case !errors.Is(err, sql.ErrNoRows):
					return err
				}
			}
			rec := audit.Link(prev, e)
			data, err := json.Marshal(rec.Event)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, v.s.q(`INSERT INTO audit (tenant, seq, prev, hash, time, type, outcome, severity, client_id, user_id, patient, data)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), e.Tenant, rec.Seq, rec.Prev, rec.Hash, e.Time.UnixNano(), string(e.Type),
				string(e.Outcome), string(e.Severity), e.ClientID, e.UserID, e.Patient, string(data)); err != nil {
				return err
			}
			if err := v.notePatients(ctx, tx, e, rec.Seq); err != nil {
				return err
			}
			last[e.Tenant] = &rec
		}
		return nil
	})
}

// patientRows is how many audit_patients rows one statement inserts (3
// parameters each, well under SQLite's 32766 and PostgreSQL's 65535).
const patientRows = 500

// notePatients indexes an event's other patients (Event.Patients) for
// Query.Patient, many rows a statement: a page of a search can name a
// thousand. A patient listed twice is noted once (the key).
func (v auditLog) notePatients(ctx context.Context, tx *sql.Tx, e audit.Event, seq int64) error {
	for rest := e.Patients; len(rest) > 0; {
		chunk := rest[:min(len(rest), patientRows)]
		rest = rest[len(chunk):]
		var q strings.Builder
		q.WriteString("INSERT INTO audit_patients (tenant, patient, seq) VALUES ")
		args := make([]any, 0, 3*len(chunk))
		for i, p := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?)")
			args = append(args, e.Tenant, p, seq)
		}
		q.WriteString(" ON CONFLICT DO NOTHING")
		if _, err := tx.ExecContext(ctx, v.s.q(q.String()), args...); err != nil {
			return err
		}
	}
	return nil
}

func (v auditLog) scan(rows *sql.Rows) ([]audit.Record, error) {
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		var r audit.Record
		var data string
		if err := rows.Scan(&r.Seq, &r.Prev, &r.Hash, &data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &r.Event); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Query answers an audit.Query, newest first, a page at a time.
func (v auditLog) Query(ctx context.Context, q audit.Query) (audit.Page, error) {
	where := []string{"tenant = ?"}
	args := []any{q.Tenant}
	add := func(cond string, arg any) { where = append(where, cond); args = append(args, arg) }
	if !q.From.IsZero() {
		add("time >= ?", q.From.UnixNano())
	}
	if !q.To.IsZero() {
		add("time < ?", q.To.UnixNano())
	}
	if q.Patient != "" {
		// Patient or one of Patients; each side by its own index.
		where = append(where, "seq IN (SELECT seq FROM audit WHERE tenant = ? AND patient = ? UNION SELECT seq FROM audit_patients WHERE tenant = ? AND patient = ?)")
		args = append(args, q.Tenant, q.Patient, q.Tenant, q.Patient)
	}
	if q.UserID != "" {
		add("user_id = ?", q.UserID)
	}
	if q.ClientID != "" {
		add("client_id = ?", q.ClientID)
	}
	if q.Outcome != "" {
		add("outcome = ?", string(q.Outcome))
	}
	if q.Severity != "" {
		add("severity = ?", string(q.Severity))
	}
	if len(q.Types) > 0 {
		marks := make([]string, len(q.Types))
		for i, t := range q.Types {
			marks[i] = "?"
			args = append(args, string(t))
		}
		where = append(where, "type IN ("+strings.Join(marks, ", ")+")")
	}
	if q.Cursor != "" {
		seq, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || seq < 1 {
			return audit.Page{}, audit.ErrBadCursor
		}
		add("seq < ?", seq)
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = 100
	case limit > 1000:
		limit = 1000
	}
	args = append(args, limit+1)
	rows, err := v.s.db.QueryContext(ctx, v.s.q("SELECT seq, prev, hash, data FROM audit WHERE "+strings.Join(where, " AND ")+
		" ORDER BY seq DESC LIMIT ?"), args...)
	if err != nil {
		return audit.Page{}, err
	}
	recs, err := v.scan(rows)
	if err != nil {
		return audit.Page{}, err
	}
	var p audit.Page
	if len(recs) > limit {
		recs = recs[:limit]
		p.Next = strconv.FormatInt(recs[limit-1].Seq, 10)
	}
	p.Records = recs
	return p, nil
}

// Records returns a tenant's records after a sequence number, oldest first.
func (v auditLog) Records(ctx context.Context, tenant string, after int64, limit int) ([]audit.Record, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := v.s.db.QueryContext(ctx, v.s.q("SELECT seq, prev, hash, data FROM audit WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?"), tenant, after, limit)
	if err != nil {
		return nil, err
	}
	return v.scan(rows)
}
