// Package sqlstore keeps everything the platform must not forget in one SQL
// database: apps and their lifecycle, authorization codes, grants and
// refresh families, pending authorization requests, launches, client
// assertion jti values, consents, and the hash-chained audit log. SQLite
// (modernc.org/sqlite, pure Go) is the embedded default; several stateless
// nodes share one PostgreSQL (github.com/jackc/pgx/v5).
//
//	st, err := sqlstore.Open(ctx, "file:smartkit.db")               // or "postgres://…"
//	srv := &smart.Server{Store: st.Smart(), Clients: reg.Clients(env), …}
//	launches := &launch.Service{Store: st.Launches()}
//	reg := &registry.Registry{Store: st.Registry()}
//	svc := &consent.Service{Store: st.Consent()}
//	sink := &audit.Async{Next: st.Audit()}
//	go st.Sweep(ctx, time.Minute) // bounded clean-up of expired rows
//
// One *Store serves every package through typed views, because their
// interfaces share method names (a consent Grant is not an OAuth Grant).
//
// # Guarantees
//
// Codes and launch ids are consumed exactly once even when nodes race
// (a conditional UPDATE … RETURNING); refresh rotation and reuse detection
// are one statement; jti values are unique per tenant and issuer; revoking
// a grant revokes its refresh family in the same transaction. Codes, refresh
// tokens and client secrets are stored only as hashes. Migrations are
// embedded and run on Open (under an advisory lock on PostgreSQL, so nodes
// starting together migrate once). When the database fails, every call
// returns an error and the server issues nothing.
//
// # Revocation across nodes
//
// Verifiers consult [Store.Smart]'s RevocationChecker on every request. It
// answers from memory: revocations made on this node are seen at once, and
// those made on other nodes within the polling interval (RevocationPoll,
// default one second) plus one query. That is the documented bound.
package sqlstore
