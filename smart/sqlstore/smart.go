package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/smartkit/smartkit/smart"
)

// Smart returns the authorization server's store.
func (s *Store) Smart() smart.Store { return smartStore{s} }

type smartStore struct{ s *Store }

var _ smart.Store = smartStore{}

func notFound(err error, as error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return as
	}
	return err
}

// SaveCode stores a code under its hash.
func (v smartStore) SaveCode(ctx context.Context, c smart.AuthCode) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = v.s.exec(ctx, "INSERT INTO codes (tenant, hash, data, used, expires) VALUES (?, ?, ?, 0, ?)",
		c.Tenant, c.Hash, string(b), c.Expires.Add(time.Hour).Unix())
	return err
}

// ConsumeCode marks a code used in one conditional UPDATE, so of two nodes
// racing exactly one gets it; the other gets the code and ErrUsed.
func (v smartStore) ConsumeCode(ctx context.Context, tenant, hash string) (smart.AuthCode, error) {
	var c smart.AuthCode
	var data string
	err := v.s.queryRow(ctx, "UPDATE codes SET used = 1 WHERE tenant = ? AND hash = ? AND used = 0 RETURNING data", tenant, hash).Scan(&data)
	if err == nil {
		return c, json.Unmarshal([]byte(data), &c)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return c, err
	}
	if err := v.s.queryRow(ctx, "SELECT data FROM codes WHERE tenant = ? AND hash = ?", tenant, hash).Scan(&data); err != nil {
		return c, notFound(err, smart.ErrNotFound)
	}
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		return c, err
	}
	return c, smart.ErrUsed
}

// SaveGrant creates or replaces a grant.
func (v smartStore) SaveGrant(ctx context.Context, g smart.Grant) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	_, err = v.s.exec(ctx, `INSERT INTO grants (tenant, id, client_id, data, revoked, expires) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data, revoked = excluded.revoked, expires = excluded.expires`,
		g.Tenant, g.ID, g.ClientID, string(b), b2i(g.Revoked), g.Expires.Add(time.Hour).Unix())
	return err
}

// Grant returns a grant, with Revoked as the database says.
func (v smartStore) Grant(ctx context.Context, tenant, id string) (smart.Grant, error) {
	var g smart.Grant
	var data string
	var revoked int
	if err := v.s.queryRow(ctx, "SELECT data, revoked FROM grants WHERE tenant = ? AND id = ?", tenant, id).Scan(&data, &revoked); err != nil {
		return g, notFound(err, smart.ErrNotFound)
	}
	if err := json.Unmarshal([]byte(data), &g); err != nil {
		return g, err
	}
	g.Revoked = g.Revoked || revoked == 1
	return g, nil
}

// RevokeGrant revokes a grant and retires its refresh family in one
// transaction, and announces it to the other nodes.
func (v smartStore) RevokeGrant(ctx context.Context, tenant, id string) error {
	var exp int64
	err := v.s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, v.s.q("UPDATE grants SET revoked = 1 WHERE tenant = ? AND id = ? RETURNING expires"), tenant, id).Scan(&exp); err != nil {
			return notFound(err, smart.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, v.s.q("UPDATE refresh SET used = 1 WHERE tenant = ? AND grant_id = ?"), tenant, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, v.s.q("INSERT INTO revocations (tenant, kind, id, expires) VALUES (?, 'grant', ?, ?)"), tenant, id, exp)
		return err
	})
	if err == nil {
		v.s.revs.add(tenant, "grant", id, exp)
	}
	return err
}

// RevokeGrantsOf revokes every live grant of a client.
func (v smartStore) RevokeGrantsOf(ctx context.Context, tenant, clientID string) (int, error) {
	rows, err := v.s.db.QueryContext(ctx, v.s.q("SELECT id FROM grants WHERE tenant = ? AND client_id = ? AND revoked = 0"), tenant, clientID)
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for i, id := range ids {
		if err := v.RevokeGrant(ctx, tenant, id); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// SaveRefresh stores a refresh token under its hash.
func (v smartStore) SaveRefresh(ctx context.Context, r smart.Refresh) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = v.s.exec(ctx, "INSERT INTO refresh (tenant, hash, grant_id, data, used, expires) VALUES (?, ?, ?, ?, 0, ?)",
		r.Tenant, r.Hash, r.GrantID, string(b), r.Expires.Unix())
	return err
}

// Refresh returns a refresh token; a rotated one comes with ErrUsed.
func (v smartStore) Refresh(ctx context.Context, tenant, hash string) (smart.Refresh, error) {
	var r smart.Refresh
	var data string
	var used int
	if err := v.s.queryRow(ctx, "SELECT data, used FROM refresh WHERE tenant = ? AND hash = ?", tenant, hash).Scan(&data, &used); err != nil {
		return r, notFound(err, smart.ErrNotFound)
	}
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return r, err
	}
	if used == 1 {
		return r, smart.ErrUsed
	}
	return r, nil
}

// RotateRefresh retires oldHash and saves next in one transaction; the
// conditional UPDATE makes one of two racing rotations lose with ErrUsed.
func (v smartStore) RotateRefresh(ctx context.Context, tenant, oldHash string, next smart.Refresh) (smart.Refresh, error) {
	var old smart.Refresh
	nb, err := json.Marshal(next)
	if err != nil {
		return old, err
	}
	err = v.s.tx(ctx, func(tx *sql.Tx) error {
		var data string
		err := tx.QueryRowContext(ctx, v.s.q("UPDATE refresh SET used = 1 WHERE tenant = ? AND hash = ? AND used = 0 RETURNING data"), tenant, oldHash).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			if err := tx.QueryRowContext(ctx, v.s.q("SELECT data FROM refresh WHERE tenant = ? AND hash = ?"), tenant, oldHash).Scan(&data); err != nil {
				return notFound(err, smart.ErrNotFound)
			}
			if err := json.Unmarshal([]byte(data), &old); err != nil {
				return err
			}
			return smart.ErrUsed
		} else if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(data), &old); err != nil {
			return err
		}
		if next.Hash == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx, v.s.q("INSERT INTO refresh (tenant, hash, grant_id, data, used, expires) VALUES (?, ?, ?, ?, 0, ?)"),
			next.Tenant, next.Hash, next.GrantID, string(nb), next.Expires.Unix())
		return err
	})
	return old, err
}

// RevokeToken revokes one access token by jti and announces it.
func (v smartStore) RevokeToken(ctx context.Context, tenant, jti string, exp time.Time) error {
	err := v.s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, v.s.q(`INSERT INTO revoked_tokens (tenant, jti, expires) VALUES (?, ?, ?)
			ON CONFLICT (tenant, jti) DO NOTHING`), tenant, jti, exp.Unix()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, v.s.q("INSERT INTO revocations (tenant, kind, id, expires) VALUES (?, 'jti', ?, ?)"), tenant, jti, exp.Unix())
		return err
	})
	if err == nil {
		v.s.revs.add(tenant, "jti", jti, exp.Unix())
	}
	return err
}

// Revoked answers from memory (see the package doc for the bound).
func (v smartStore) Revoked(ctx context.Context, tenant, grantID, jti string) (bool, error) {
	return v.s.revs.revoked(ctx, tenant, grantID, jti)
}

// Claim records a client-assertion jti; the primary key makes a replay fail.
func (v smartStore) Claim(ctx context.Context, tenant, issuer, jti string, exp time.Time) error {
	now := v.s.now().Unix()
	// An expired entry may be reused; a live one is a replay.
	res, err := v.s.exec(ctx, `INSERT INTO jtis (tenant, issuer, jti, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, issuer, jti) DO UPDATE SET expires = excluded.expires WHERE jtis.expires < ?`,
		tenant, issuer, jti, exp.Unix(), now)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return smart.ErrReplay
	}
	return nil
}

// SaveRequest creates or replaces a pending authorization request.
func (v smartStore) SaveRequest(ctx context.Context, p smart.PendingRequest) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = v.s.exec(ctx, `INSERT INTO requests (tenant, id, data, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data, expires = excluded.expires`,
		p.Tenant, p.ID, string(b), p.Expires.Add(time.Hour).Unix())
	return err
}

// Request returns a pending request.
func (v smartStore) Request(ctx context.Context, tenant, id string) (smart.PendingRequest, error) {
	var p smart.PendingRequest
	var data string
	if err := v.s.queryRow(ctx, "SELECT data FROM requests WHERE tenant = ? AND id = ?", tenant, id).Scan(&data); err != nil {
		return p, notFound(err, smart.ErrNotFound)
	}
	return p, json.Unmarshal([]byte(data), &p)
}

// ConsumeRequest deletes and returns a pending request, once.
func (v smartStore) ConsumeRequest(ctx context.Context, tenant, id string) (smart.PendingRequest, error) {
	var p smart.PendingRequest
	var data string
	if err := v.s.queryRow(ctx, "DELETE FROM requests WHERE tenant = ? AND id = ? RETURNING data", tenant, id).Scan(&data); err != nil {
		return p, notFound(err, smart.ErrNotFound)
	}
	return p, json.Unmarshal([]byte(data), &p)
}
