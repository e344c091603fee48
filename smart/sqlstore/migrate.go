package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// migrations are applied in order, each once; never edit one that shipped.
var migrations = []string{
	// 1: the initial schema.
	`CREATE TABLE codes (tenant TEXT NOT NULL, hash TEXT NOT NULL, data TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0,
		expires BIGINT NOT NULL, PRIMARY KEY (tenant, hash));
	CREATE TABLE grants (tenant TEXT NOT NULL, id TEXT NOT NULL, client_id TEXT NOT NULL, data TEXT NOT NULL,
		revoked INTEGER NOT NULL DEFAULT 0, expires BIGINT NOT NULL, PRIMARY KEY (tenant, id));
	CREATE INDEX grants_client ON grants (tenant, client_id);
	CREATE TABLE refresh (tenant TEXT NOT NULL, hash TEXT NOT NULL, grant_id TEXT NOT NULL, data TEXT NOT NULL,
		used INTEGER NOT NULL DEFAULT 0, expires BIGINT NOT NULL, PRIMARY KEY (tenant, hash));
	CREATE INDEX refresh_grant ON refresh (tenant, grant_id);
	CREATE TABLE revoked_tokens (tenant TEXT NOT NULL, jti TEXT NOT NULL, expires BIGINT NOT NULL, PRIMARY KEY (tenant, jti));
	CREATE TABLE revocations (seq {{serial}}, tenant TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, expires BIGINT NOT NULL);
	CREATE TABLE jtis (tenant TEXT NOT NULL, issuer TEXT NOT NULL, jti TEXT NOT NULL, expires BIGINT NOT NULL,
		PRIMARY KEY (tenant, issuer, jti));
	CREATE TABLE requests (tenant TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, expires BIGINT NOT NULL, PRIMARY KEY (tenant, id));
	CREATE TABLE launches (tenant TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, expires BIGINT NOT NULL, PRIMARY KEY (tenant, id));
	CREATE TABLE apps (tenant TEXT NOT NULL, id TEXT NOT NULL, revision BIGINT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tenant, id));
	CREATE TABLE app_clients (tenant TEXT NOT NULL, client_id TEXT NOT NULL, app_id TEXT NOT NULL, PRIMARY KEY (tenant, client_id));
	CREATE TABLE consents (tenant TEXT NOT NULL, id TEXT NOT NULL, client_id TEXT NOT NULL, user_id TEXT NOT NULL,
		patient TEXT NOT NULL, created BIGINT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tenant, id));
	CREATE INDEX consents_who ON consents (tenant, client_id, user_id, patient, created);
	CREATE INDEX consents_user ON consents (tenant, user_id, created);
	CREATE TABLE audit (tenant TEXT NOT NULL, seq BIGINT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, time BIGINT NOT NULL,
		type TEXT NOT NULL, outcome TEXT NOT NULL, severity TEXT NOT NULL, client_id TEXT NOT NULL, user_id TEXT NOT NULL,
		patient TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tenant, seq));
	CREATE INDEX audit_patient ON audit (tenant, patient, seq);
	CREATE INDEX audit_client ON audit (tenant, client_id, seq);
	CREATE INDEX audit_user ON audit (tenant, user_id, seq);`,
	// 2: the other patients an event disclosed (audit.Event.Patients), so a
	// query by patient finds a search that returned many patients' records.
	`CREATE TABLE audit_patients (tenant TEXT NOT NULL, patient TEXT NOT NULL, seq BIGINT NOT NULL,
		PRIMARY KEY (tenant, patient, seq));`,
}

func (s *Store) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.postgres {
			// Nodes starting together migrate one at a time.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7246331)"); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)"); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&have); err != nil {
			return err
		}
		serial := "INTEGER PRIMARY KEY AUTOINCREMENT"
		if s.postgres {
			serial = "BIGSERIAL PRIMARY KEY"
		}
		for i := have; i < len(migrations); i++ {
			for stmt := range strings.SplitSeq(strings.ReplaceAll(migrations[i], "{{serial}}", serial), ";") {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("sqlstore: migration %d: %w", i+1, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.q("INSERT INTO schema_migrations (version) VALUES (?)"), i+1); err != nil {
				return err
			}
		}
		return nil
	})
}
