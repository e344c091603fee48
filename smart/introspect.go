package smart

import (
	"errors"
	"net/http"
	"strings"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/launch"
)

// IntrospectionResponse is an RFC 7662 answer as SMART profiles it. An
// inactive token is exactly {"active":false}.
type IntrospectionResponse struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Iss       string `json:"iss,omitempty"`
	Aud       string `json:"aud,omitempty"`
	Jti       string `json:"jti,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	FHIRUser  string `json:"fhirUser,omitempty"`
	launch.Context
}

// serveIntrospect answers RFC 7662 requests. Callers must authenticate: a
// confidential client allowed to introspect, or a bearer token issued to
// one (RFC 7662 §2.1 requires it; SPEC-NOTES A33).
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	defer s.settleThrottle(r)
	in := info(r)
	noStore(w)
	f, ferr := parseForm(w, r)
	if ferr != nil {
		writeOAuthError(w, ferr, false)
		return
	}
	caller, cerr := s.introspectionCaller(r, f)
	if cerr != nil {
		writeOAuthError(w, cerr, cerr.Code == InvalidClient)
		return
	}
	resp := IntrospectionResponse{}
	raw := f["token"]
	if raw == "" {
		writeOAuthError(w, oauthErr(InvalidRequest, "token is missing"), false)
		return
	}
	if t := s.verifyAny(r, raw); t != nil {
		resp = IntrospectionResponse{Active: true, Scope: t.Scope, ClientID: t.ClientID, Exp: t.Expiry.Unix(),
			Iat: t.IssuedAt.Unix(), Sub: t.Subject, Iss: t.Issuer, Aud: t.Audience, Jti: t.ID, TokenType: "Bearer",
			FHIRUser: t.FHIRUser, Context: t.Context}
	} else if randid.Valid(raw) {
		rt, err := s.Store.Refresh(r.Context(), in.tenant.ID, hashToken(raw))
		if err == nil && s.now().Before(rt.Expires) {
			if g, err := s.Store.Grant(r.Context(), in.tenant.ID, rt.GrantID); err == nil && !g.Revoked {
				resp = IntrospectionResponse{Active: true, Scope: rt.Scope, ClientID: rt.ClientID, Exp: rt.Expires.Unix(),
					Sub: g.UserID, Iss: in.issuer, TokenType: "refresh_token", FHIRUser: g.FHIRUser}
			}
		}
	}
	if err := s.record(r, audit.Event{Type: audit.Introspection, Outcome: audit.Success, ClientID: caller,
		TokenID: resp.Jti, Reason: activeReason(resp.Active)}); err != nil {
		writeOAuthError(w, oauthErr(ServerError, "try again later"), false)
		return
	}
	if !resp.Active {
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func activeReason(active bool) string {
	if active {
		return "active"
	}
	return "inactive"
}

// introspectionCaller authenticates the caller and returns its client id.
func (s *Server) introspectionCaller(r *http.Request, f map[string]string) (string, *Error) {
	if raw, ok := BearerToken(r); ok {
		t := s.verifyAny(r, raw)
		if t == nil {
			return "", oauthErr(InvalidToken, "the bearer token is not valid")
		}
		c, err := s.Clients.Client(r.Context(), info(r).tenant.ID, t.ClientID)
		if err != nil || !c.Introspect {
			return "", oauthErr(InvalidToken, "this token may not introspect")
		}
		return c.ID, nil
	}
	auth, aerr := s.authenticateClient(r, f)
	if aerr != nil {
		return "", aerr
	}
	if auth.client == nil || !auth.credentials || !auth.client.Introspect {
		return "", oauthErr(InvalidClient, "introspection needs an authenticated client allowed to introspect")
	}
	return auth.client.ID, nil
}

// verifyAny verifies an access token of the request's tenant for any of its
// FHIR bases, or returns nil.
func (s *Server) verifyAny(r *http.Request, raw string) *Token {
	if strings.Count(raw, ".") != 2 {
		return nil
	}
	in := info(r)
	for _, base := range in.tenant.FHIRBases {
		v, err := s.Verifier(in.tenant.ID, base)
		if err != nil {
			continue
		}
		v.CacheSize = -1
		if t, err := v.Verify(r.Context(), raw); err == nil {
			return t
		} else if !errors.Is(err, ErrInvalidToken) {
			return nil
		}
	}
	return nil
}
