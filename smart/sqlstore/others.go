package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"

	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/smart/registry"
)

// Launches returns the launch store.
func (s *Store) Launches() launch.Store { return launchStore{s} }

type launchStore struct{ s *Store }

// Save stores a launch.
func (v launchStore) Save(ctx context.Context, l launch.Launch) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = v.s.exec(ctx, "INSERT INTO launches (tenant, id, data, expires) VALUES (?, ?, ?, ?)", l.Tenant, l.ID, string(b), l.Expires.Unix())
	return err
}

// Consume deletes and returns a launch, exactly once across nodes.
func (v launchStore) Consume(ctx context.Context, tenant, id string) (launch.Launch, error) {
	var l launch.Launch
	var data string
	if err := v.s.queryRow(ctx, "DELETE FROM launches WHERE tenant = ? AND id = ? RETURNING data", tenant, id).Scan(&data); err != nil {
		return l, notFound(err, launch.ErrNotFound)
	}
	return l, json.Unmarshal([]byte(data), &l)
}

// Registry returns the app registry's store.
func (s *Store) Registry() registry.Store { return registryStore{s} }

type registryStore struct{ s *Store }

func isUnique(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "unique") || strings.Contains(msg, "duplicate key") || strings.Contains(msg, "constraint failed")
}

// Create stores a new app and claims its client ids.
func (v registryStore) Create(ctx context.Context, a registry.App) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	err = v.s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, v.s.q("INSERT INTO apps (tenant, id, revision, data) VALUES (?, ?, ?, ?)"), a.Tenant, a.ID, a.Revision, string(b)); err != nil {
			return err
		}
		for _, c := range a.Environments {
			if _, err := tx.ExecContext(ctx, v.s.q("INSERT INTO app_clients (tenant, client_id, app_id) VALUES (?, ?, ?)"), a.Tenant, c.ClientID, a.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if isUnique(err) {
		return registry.ErrExists
	}
	return err
}

func (v registryStore) load(ctx context.Context, query string, args ...any) (registry.App, error) {
	var a registry.App
	var data string
	if err := v.s.queryRow(ctx, query, args...).Scan(&data); err != nil {
		return a, notFound(err, registry.ErrNotFound)
	}
	return a, json.Unmarshal([]byte(data), &a)
}

// App returns an app.
func (v registryStore) App(ctx context.Context, tenant, id string) (registry.App, error) {
	return v.load(ctx, "SELECT data FROM apps WHERE tenant = ? AND id = ?", tenant, id)
}

// ByClientID returns the app owning a client id.
func (v registryStore) ByClientID(ctx context.Context, tenant, clientID string) (registry.App, error) {
	return v.load(ctx, `SELECT a.data FROM apps a JOIN app_clients c ON c.tenant = a.tenant AND c.app_id = a.id
		WHERE c.tenant = ? AND c.client_id = ?`, tenant, clientID)
}

// Update compares and sets on the revision.
func (v registryStore) Update(ctx context.Context, a registry.App) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return v.s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, v.s.q("UPDATE apps SET data = ?, revision = ? WHERE tenant = ? AND id = ? AND revision = ?"),
			string(b), a.Revision, a.Tenant, a.ID, a.Revision-1)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, v.s.q("SELECT 1 FROM apps WHERE tenant = ? AND id = ?"), a.Tenant, a.ID).Scan(&one); err != nil {
				return notFound(err, registry.ErrNotFound)
			}
			return registry.ErrConflict
		}
		if _, err := tx.ExecContext(ctx, v.s.q("DELETE FROM app_clients WHERE tenant = ? AND app_id = ?"), a.Tenant, a.ID); err != nil {
			return err
		}
		for _, c := range a.Environments {
			if _, err := tx.ExecContext(ctx, v.s.q("INSERT INTO app_clients (tenant, client_id, app_id) VALUES (?, ?, ?)"), a.Tenant, c.ClientID, a.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// List returns a tenant's apps ordered by id.
func (v registryStore) List(ctx context.Context, tenant string) ([]registry.App, error) {
	rows, err := v.s.db.QueryContext(ctx, v.s.q("SELECT data FROM apps WHERE tenant = ? ORDER BY id"), tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []registry.App
	for rows.Next() {
		var data string
		var a registry.App
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Consent returns the consent store.
func (s *Store) Consent() consent.Store { return consentStore{s} }

type consentStore struct{ s *Store }

// Save creates or replaces a consent.
func (v consentStore) Save(ctx context.Context, g consent.Grant) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	_, err = v.s.exec(ctx, `INSERT INTO consents (tenant, id, client_id, user_id, patient, created, data) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data`,
		g.Tenant, g.ID, g.ClientID, g.UserID, g.Patient, g.Created.UnixNano(), string(b))
	return err
}

func (v consentStore) list(ctx context.Context, query string, args ...any) ([]consent.Grant, error) {
	rows, err := v.s.db.QueryContext(ctx, v.s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []consent.Grant
	for rows.Next() {
		var data string
		var g consent.Grant
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &g); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// Grant returns a consent.
func (v consentStore) Grant(ctx context.Context, tenant, id string) (consent.Grant, error) {
	gs, err := v.list(ctx, "SELECT data FROM consents WHERE tenant = ? AND id = ?", tenant, id)
	if err != nil {
		return consent.Grant{}, err
	}
	if len(gs) == 0 {
		return consent.Grant{}, consent.ErrNotFound
	}
	return gs[0], nil
}

// Latest returns the newest consent of an app, user and patient.
func (v consentStore) Latest(ctx context.Context, tenant, clientID, userID, patient string) (consent.Grant, error) {
	gs, err := v.list(ctx, `SELECT data FROM consents WHERE tenant = ? AND client_id = ? AND user_id = ? AND patient = ?
		ORDER BY created DESC LIMIT 1`, tenant, clientID, userID, patient)
	if err != nil {
		return consent.Grant{}, err
	}
	if len(gs) == 0 {
		return consent.Grant{}, consent.ErrNotFound
	}
	return gs[0], nil
}

// ByUser lists a user's consents, newest first.
func (v consentStore) ByUser(ctx context.Context, tenant, userID string) ([]consent.Grant, error) {
	return v.list(ctx, "SELECT data FROM consents WHERE tenant = ? AND user_id = ? ORDER BY created DESC", tenant, userID)
}

// ByClient lists an app's consents, newest first.
func (v consentStore) ByClient(ctx context.Context, tenant, clientID string) ([]consent.Grant, error) {
	return v.list(ctx, "SELECT data FROM consents WHERE tenant = ? AND client_id = ? ORDER BY created DESC", tenant, clientID)
}
