package smart

import (
	"context"
	"net/http"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/randid"
)

// serveRevoke implements RFC 7009. The client authenticates as at the token
// endpoint (a public client by client_id). A refresh token revokes its whole
// grant family; an access token is revoked by jti. The answer is 200 whether
// or not the token was known, so the endpoint is no oracle.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	defer s.settleThrottle(r)
	in := info(r)
	ctx := r.Context()
	s.cors(w, r, nil)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	noStore(w)
	f, ferr := parseForm(w, r)
	if ferr != nil {
		writeOAuthError(w, ferr, false)
		return
	}
	auth, aerr := s.authenticateClient(r, f)
	if aerr != nil {
		writeOAuthError(w, aerr, auth.basic)
		return
	}
	if auth.client == nil {
		writeOAuthError(w, oauthErr(InvalidRequest, "client_id is missing"), false)
		return
	}
	s.cors(w, r, auth.client)
	raw := f["token"]
	if raw == "" {
		writeOAuthError(w, oauthErr(InvalidRequest, "token is missing"), false)
		return
	}
	var err error
	switch {
	case randid.Valid(raw):
		if rt, rerr := s.Store.Refresh(ctx, in.tenant.ID, hashToken(raw)); (rerr == nil || rerr == ErrUsed) && rt.ClientID == auth.client.ID {
			if err = s.Store.RevokeGrant(ctx, in.tenant.ID, rt.GrantID); err == nil {
				err = s.record(r, audit.Event{Type: audit.GrantRevoked, Outcome: audit.Success, ClientID: auth.client.ID,
					GrantID: rt.GrantID, Reason: "refresh token revoked by the client"})
			}
		}
	default:
		if t := s.verifyAny(r, raw); t != nil && t.ClientID == auth.client.ID {
			if err = s.Store.RevokeToken(ctx, in.tenant.ID, t.ID, t.Expiry); err == nil {
				err = s.record(r, audit.Event{Type: audit.TokenRevoked, Outcome: audit.Success, ClientID: auth.client.ID,
					GrantID: t.GrantID, TokenID: t.ID, Reason: "access token revoked by the client"})
			}
		}
	}
	if err != nil {
		writeOAuthError(w, oauthErr(ServerError, "try again later"), false)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// RevokeGrant revokes one grant family (a user withdrawing consent, an
// admin acting on a grant): its refresh tokens stop at once and its access
// tokens at the next Verify. actor is who did it, for the audit trail.
func (s *Server) RevokeGrant(ctx context.Context, tenant, grantID, actor, reason string) error {
	if err := s.Store.RevokeGrant(ctx, tenant, grantID); err != nil {
		return err
	}
	return s.audit().Record(ctx, audit.Event{Time: s.now(), Tenant: tenant, Type: audit.GrantRevoked,
		Outcome: audit.Success, UserID: actor, GrantID: grantID, Reason: reason})
}

// SuspendClient revokes every grant of a client (an app suspended or
// retired) and returns how many were revoked. New authorizations are the
// registry's to refuse.
func (s *Server) SuspendClient(ctx context.Context, tenant, clientID, actor, reason string) (int, error) {
	n, err := s.Store.RevokeGrantsOf(ctx, tenant, clientID)
	if err != nil {
		return n, err
	}
	return n, s.audit().Record(ctx, audit.Event{Time: s.now(), Tenant: tenant, Type: audit.GrantRevoked,
		Outcome: audit.Success, UserID: actor, ClientID: clientID, Reason: reason})
}
