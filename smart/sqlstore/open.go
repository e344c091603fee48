package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// Store is one database serving every smartkit store interface through its
// views. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	postgres bool
	// RevocationPoll is how often revocations made on other nodes are
	// fetched; set it before the first Verify. 0 means one second.
	RevocationPoll time.Duration
	// Now is the clock for expiry sweeps; nil means time.Now.
	Now func() time.Time

	revs *revocations
}

// Open connects to dsn and migrates the schema. A DSN starting with
// "postgres://" or "postgresql://" opens PostgreSQL; anything else is a
// SQLite file path or "file:"/"sqlite:" URI.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://"):
		s.postgres = true
		s.db, err = sql.Open("pgx", dsn)
		if err == nil {
			s.db.SetMaxOpenConns(16)
		}
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if !strings.HasPrefix(path, "file:") {
			path = "file:" + path
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		// WAL for concurrent readers, a busy timeout for writers from other
		// processes, immediate transactions so a writer never upgrades late.
		path += sep + "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		s.db, err = sql.Open("sqlite", path)
		if err == nil {
			s.db.SetMaxOpenConns(1) // one writer per process; other processes wait on the lock
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	s.revs = &revocations{store: s}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB exposes the database handle, for hosts that add their own tables and
// for fault-injection tests.
func (s *Store) DB() *sql.DB { return s.db }

// Postgres reports whether the store is on PostgreSQL.
func (s *Store) Postgres() bool { return s.postgres }

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// q rewrites "?" placeholders for PostgreSQL ($1, $2, …).
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.q(query), args...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.q(query), args...)
}

// tx runs f in a transaction, committing if it returns nil.
func (s *Store) tx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Sweep deletes expired rows every interval until ctx ends, at most 1,000
// rows per table per pass, so the database never grows without bound and no
// pass holds locks for long. Run it on one or more nodes; passes are
// idempotent.
func (s *Store) Sweep(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.SweepOnce(ctx); err != nil && ctx.Err() == nil {
			// Keep going: a transient failure is retried next pass.
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// SweepOnce deletes up to 1,000 expired rows per table and returns how many.
func (s *Store) SweepOnce(ctx context.Context) (int64, error) {
	now := s.now().Unix()
	var total int64
	for _, table := range []string{"codes", "refresh", "jtis", "requests", "launches", "revoked_tokens", "grants", "revocations"} {
		var res sql.Result
		var err error
		if s.postgres {
			res, err = s.exec(ctx, "DELETE FROM "+table+" WHERE ctid IN (SELECT ctid FROM "+table+" WHERE expires < ? LIMIT 1000)", now)
		} else {
			res, err = s.exec(ctx, "DELETE FROM "+table+" WHERE rowid IN (SELECT rowid FROM "+table+" WHERE expires < ? LIMIT 1000)", now)
		}
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
