package smart

import (
	"errors"
	"net/http"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/pkce"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
)

// TokenResponse is the body of a successful token response (RFC 6749 §5.1,
// SAL 2.2 "Obtain access token"), with the launch context at top level.
type TokenResponse struct {
	AccessToken    string `json:"access_token"`
	TokenType      string `json:"token_type"`
	ExpiresIn      int64  `json:"expires_in"`
	Scope          string `json:"scope"`
	RefreshToken   string `json:"refresh_token,omitempty"`
	IDToken        string `json:"id_token,omitempty"`
	launch.Context        // patient, encounter, fhirContext, … at top level
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	defer s.settleThrottle(r)
	s.cors(w, r, nil)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	f, ferr := parseForm(w, r)
	if ferr != nil {
		s.tokenError(w, r, "", ferr, false)
		return
	}
	gt := f["grant_type"]
	switch gt {
	case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials:
	case "":
		s.tokenError(w, r, "", oauthErr(InvalidRequest, "grant_type is missing"), false)
		return
	default:
		s.tokenError(w, r, "", oauthErr(UnsupportedGrantType, "supported: authorization_code, refresh_token, client_credentials"), false)
		return
	}
	auth, aerr := s.authenticateClient(r, f)
	if aerr != nil {
		s.tokenError(w, r, f["client_id"], aerr, auth.basic)
		return
	}
	if auth.client == nil && gt != GrantRefreshToken {
		s.tokenError(w, r, "", oauthErr(InvalidRequest, "client_id is missing"), false)
		return
	}
	if auth.client != nil {
		s.cors(w, r, auth.client)
		if !auth.client.AllowsGrant(gt) {
			s.tokenError(w, r, auth.client.ID, oauthErr(UnauthorizedClient, "the client is not registered for "+gt), auth.basic)
			return
		}
	}
	switch gt {
	case GrantAuthorizationCode:
		s.grantCode(w, r, f, auth)
	case GrantRefreshToken:
		s.grantRefresh(w, r, f, auth)
	default:
		s.grantClientCredentials(w, r, f, auth)
	}
}

// cors allows browser apps (public clients) to call the token and
// revocation endpoints from the origin of one of their registered redirect
// URIs, and nothing else. Credentials are never allowed.
func (s *Server) cors(w http.ResponseWriter, r *http.Request, c *Client) {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if origin == "" {
		return
	}
	if r.Method == http.MethodOptions {
		// A preflight carries no client id; allow the form POST shape only.
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Allow-Methods", "POST")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.Header().Set("Access-Control-Max-Age", "600")
		return
	}
	if c != nil && c.Public() && c.AllowsOrigin(origin) {
		w.Header().Set("Access-Control-Allow-Origin", origin)
	}
}

func (s *Server) tokenError(w http.ResponseWriter, r *http.Request, clientID string, e *Error, basic bool) {
	if e.Code == InvalidGrant {
		// Codes and refresh tokens are 256-bit: the source's budget bounds
		// guessing them; charging the client would only let anyone lock it out.
		s.failedGuess(r, false)
	}
	// Client auth failures are audited where they happen, the throttle's
	// refusals once per episode.
	if e.Code != InvalidClient && e.retryAfter == 0 {
		if err := s.record(r, audit.Event{Type: audit.TokenRefused, Outcome: audit.Failure, ClientID: clientID,
			Reason: string(e.Code) + ": " + e.Description}); err != nil {
			e = oauthErr(ServerError, "try again later")
		}
	}
	writeOAuthError(w, e, basic)
}

func (s *Server) grantCode(w http.ResponseWriter, r *http.Request, f map[string]string, auth authResult) {
	in := info(r)
	ctx := r.Context()
	client := auth.client
	fail := func(e *Error) { s.tokenError(w, r, client.ID, e, auth.basic) }
	code := f["code"]
	if code == "" {
		fail(oauthErr(InvalidRequest, "code is missing"))
		return
	}
	if !randid.Valid(code) {
		fail(oauthErr(InvalidGrant, "the code is invalid"))
		return
	}
	c, err := s.Store.ConsumeCode(ctx, in.tenant.ID, hashToken(code))
	switch {
	case errors.Is(err, ErrNotFound):
		fail(oauthErr(InvalidGrant, "the code is invalid"))
		return
	case errors.Is(err, ErrUsed):
		// RFC 6749 §4.1.2: a reused code revokes what it produced.
		rerr := s.Store.RevokeGrant(ctx, in.tenant.ID, c.GrantID)
		_ = s.record(r, audit.Event{Type: audit.CodeReuse, Outcome: audit.Failure, Severity: audit.Security,
			ClientID: client.ID, GrantID: c.GrantID, Reason: "authorization code presented twice; grant revoked"})
		if rerr != nil && !errors.Is(rerr, ErrNotFound) {
			s.logger().ErrorContext(ctx, "smart: revoking grant after code reuse failed", "err", rerr)
		}
		fail(oauthErr(InvalidGrant, "the code was already used"))
		return
	case err != nil:
		fail(oauthErr(ServerError, "try again later"))
		return
	}
	switch {
	case !s.now().Before(c.Expires):
		fail(oauthErr(InvalidGrant, "the code has expired"))
		return
	case c.ClientID != client.ID:
		_ = s.record(r, audit.Event{Type: audit.TokenRefused, Outcome: audit.Failure, Severity: audit.Security,
			ClientID: client.ID, GrantID: c.GrantID, Reason: "code issued to another client"})
		fail(oauthErr(InvalidGrant, "the code was not issued to this client"))
		return
	case f["redirect_uri"] != c.RedirectURI:
		fail(oauthErr(InvalidGrant, "redirect_uri differs from the authorization request"))
		return
	case f["code_verifier"] == "":
		fail(oauthErr(InvalidRequest, "code_verifier is missing"))
		return
	case !pkce.Verify(f["code_verifier"], c.Challenge):
		_ = s.record(r, audit.Event{Type: audit.TokenRefused, Outcome: audit.Failure, Severity: audit.Security,
			ClientID: client.ID, GrantID: c.GrantID, Reason: "PKCE verification failed"})
		fail(oauthErr(InvalidGrant, "code_verifier does not match"))
		return
	}
	g, err := s.Store.Grant(ctx, in.tenant.ID, c.GrantID)
	if err != nil || g.Revoked || g.ClientID != client.ID {
		fail(oauthErr(InvalidGrant, "the grant is no longer valid"))
		return
	}
	granted, _ := scopes.ParseLenient(g.Scope)
	var refresh *Refresh
	if granted.Has("offline_access") || granted.Has("online_access") {
		refresh = &Refresh{Tenant: in.tenant.ID, GrantID: g.ID, ClientID: client.ID, Scope: g.Scope, Expires: g.Expires}
	}
	s.issue(w, r, client, g, granted, c.Nonce, refresh, "", audit.TokenIssued, auth.basic)
}

func (s *Server) grantRefresh(w http.ResponseWriter, r *http.Request, f map[string]string, auth authResult) {
	in := info(r)
	ctx := r.Context()
	clientID := ""
	if auth.client != nil {
		clientID = auth.client.ID
	}
	fail := func(e *Error) { s.tokenError(w, r, clientID, e, auth.basic) }
	rt := f["refresh_token"]
	if rt == "" {
		fail(oauthErr(InvalidRequest, "refresh_token is missing"))
		return
	}
	if !randid.Valid(rt) {
		fail(oauthErr(InvalidGrant, "the refresh token is invalid"))
		return
	}
	old, err := s.Store.Refresh(ctx, in.tenant.ID, hashToken(rt))
	reuse := func(old Refresh) {
		// RFC 9700 §4.14.2: reuse of a rotated refresh token revokes the family.
		_ = s.Store.RevokeGrant(ctx, in.tenant.ID, old.GrantID)
		_ = s.record(r, audit.Event{Type: audit.RefreshReuse, Outcome: audit.Failure, Severity: audit.Security,
			ClientID: old.ClientID, GrantID: old.GrantID, Reason: "rotated refresh token presented again; grant revoked"})
		fail(oauthErr(InvalidGrant, "the refresh token was already used"))
	}
	switch {
	case errors.Is(err, ErrUsed):
		// A token retired because its grant was revoked is not a replay.
		if g, gerr := s.Store.Grant(ctx, in.tenant.ID, old.GrantID); gerr == nil && g.Revoked {
			fail(oauthErr(InvalidGrant, "the grant was revoked"))
			return
		}
		reuse(old)
		return
	case errors.Is(err, ErrNotFound):
		fail(oauthErr(InvalidGrant, "the refresh token is invalid"))
		return
	case err != nil:
		fail(oauthErr(ServerError, "try again later"))
		return
	}
	client := auth.client
	if client == nil {
		// A public client may refresh without client_id: the token names it.
		c, err := s.Clients.Client(ctx, in.tenant.ID, old.ClientID)
		if err != nil || !c.Public() {
			fail(oauthErr(InvalidClient, "client authentication is required"))
			return
		}
		client, clientID = c, c.ID
		s.cors(w, r, client)
	}
	if old.ClientID != client.ID {
		_ = s.record(r, audit.Event{Type: audit.TokenRefused, Outcome: audit.Failure, Severity: audit.Security,
			ClientID: client.ID, GrantID: old.GrantID, Reason: "refresh token of another client"})
		fail(oauthErr(InvalidGrant, "the refresh token was not issued to this client"))
		return
	}
	if !s.now().Before(old.Expires) {
		fail(oauthErr(InvalidGrant, "the refresh token has expired"))
		return
	}
	g, err := s.Store.Grant(ctx, in.tenant.ID, old.GrantID)
	if err != nil || g.Revoked || !s.now().Before(g.Expires) {
		fail(oauthErr(InvalidGrant, "the grant is no longer valid"))
		return
	}
	current, _ := scopes.ParseLenient(old.Scope)
	if granted, _ := scopes.ParseLenient(g.Scope); s.Sessions != nil && online(granted) {
		active, err := false, error(nil)
		if g.Session != "" { // a grant the host gave no session is not bound to one that lives
			active, err = s.Sessions.SessionActive(ctx, g.UserID, g.Session)
		}
		if err != nil {
			s.logger().ErrorContext(ctx, "smart: session check failed", "err", err)
			fail(oauthErr(ServerError, "try again later"))
			return
		}
		if !active {
			// The user has left: the grant's tokens die with the session.
			if err := s.Store.RevokeGrant(ctx, in.tenant.ID, g.ID); err != nil {
				fail(oauthErr(ServerError, "try again later"))
				return
			}
			_ = s.record(r, audit.Event{Type: audit.GrantRevoked, Outcome: audit.Success, ClientID: client.ID,
				UserID: g.UserID, GrantID: g.ID, Reason: "online_access: the user's session has ended"})
			fail(oauthErr(InvalidGrant, "online_access ends with the user's session, which has ended"))
			return
		}
	}
	scope := current
	if f["scope"] != "" {
		req, err := scopes.ParseSet(f["scope"])
		if err != nil {
			fail(oauthErr(InvalidScope, err.Error()))
			return
		}
		if scope, err = current.Narrow(req); err != nil {
			fail(oauthErr(InvalidScope, err.Error()))
			return
		}
	}
	var next *Refresh
	if scope.Has("offline_access") || scope.Has("online_access") {
		next = &Refresh{Tenant: in.tenant.ID, GrantID: g.ID, ClientID: client.ID, Scope: scope.String(), Expires: old.Expires}
	}
	s.issue(w, r, client, g, scope, "", next, old.Hash, audit.TokenRefreshed, auth.basic)
}

func (s *Server) grantClientCredentials(w http.ResponseWriter, r *http.Request, f map[string]string, auth authResult) {
	in := info(r)
	client := auth.client
	fail := func(e *Error) { s.tokenError(w, r, client.ID, e, auth.basic) }
	if client.TokenEndpointAuthMethod != AuthPrivateKeyJWT || !auth.credentials {
		fail(oauthErr(UnauthorizedClient, "backend services need private_key_jwt"))
		return
	}
	if f["scope"] == "" {
		fail(oauthErr(InvalidScope, "scope is required"))
		return
	}
	requested, err := scopes.ParseLenient(f["scope"])
	if err != nil && requested.Len() == 0 {
		fail(oauthErr(InvalidScope, err.Error()))
		return
	}
	system := requested.Filter(func(sc scopes.Scope) bool { return sc.Context() == scopes.System })
	granted := system.Intersect(client.allowedScopes())
	if granted.Len() == 0 {
		fail(oauthErr(InvalidScope, "none of the requested system/ scopes is pre-authorised for this client"))
		return
	}
	aud := in.tenant.FHIRBases[0]
	if a := f["aud"] + f["resource"]; a != "" {
		if aud = matchAudience(in.tenant, a); aud == "" {
			fail(oauthErr(InvalidRequest, "aud is not a FHIR server this authorization server protects"))
			return
		}
	}
	now := s.now()
	life := min(ttl(s.BackendTokenTTL, DefaultBackendTokenTTL), DefaultBackendTokenTTL)
	if requested.Version() == scopes.V1 {
		granted = granted.V1()
	}
	g := Grant{ID: randid.New(), Tenant: in.tenant.ID, ClientID: client.ID, Scope: granted.String(),
		Audience: aud, Created: now, Expires: now.Add(life)}
	if s.BackendClearance != nil {
		if g.Clearance, err = s.BackendClearance(r.Context(), in.tenant.ID, client); err != nil {
			s.logger().ErrorContext(r.Context(), "smart: backend clearance", "client", client.ID, "err", err)
			fail(oauthErr(ServerError, "try again later"))
			return
		}
	}
	if err := s.Store.SaveGrant(r.Context(), g); err != nil {
		fail(oauthErr(ServerError, "try again later"))
		return
	}
	s.issue(w, r, client, g, granted, "", nil, "", audit.TokenIssued, auth.basic)
}

// issue mints the access token (and id_token, and refresh token when next
// is set, rotating oldRefresh if given), audits, and writes the response.
func (s *Server) issue(w http.ResponseWriter, r *http.Request, client *Client, g Grant, scope scopes.Set,
	nonce string, next *Refresh, oldRefresh string, event audit.Type, basic bool) {
	in := info(r)
	ctx := r.Context()
	fail := func(e *Error) { s.tokenError(w, r, client.ID, e, basic) }
	life := ttl(s.AccessTokenTTL, DefaultAccessTokenTTL)
	if g.UserID == "" {
		life = min(ttl(s.BackendTokenTTL, DefaultBackendTokenTTL), DefaultBackendTokenTTL)
	}
	revealed := g.Context.Reveal(scope, g.EHRLaunch)
	at, claims, err := s.mintAccess(in.tenant, g, scope.String(), revealed, life)
	if err != nil {
		fail(oauthErr(ServerError, "could not sign the token"))
		return
	}
	resp := TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(life / time.Second), Scope: scope.String()}
	resp.Context = revealed
	if scope.Has("openid") && s.oidc(in.tenant) && g.UserID != "" {
		idc := IDClaims{Issuer: s.Issuer(in.tenant.ID), Subject: g.UserID, Audience: client.ID,
			IssuedAt: claims.IssuedAt, Expiry: claims.Expiry, Nonce: nonce}
		if scope.Has("fhirUser") {
			idc.FHIRUser = g.FHIRUser
		}
		if resp.IDToken, err = s.mintID(in.tenant, idc); err != nil {
			fail(oauthErr(ServerError, "could not sign the id_token"))
			return
		}
	}
	if err := s.record(r, audit.Event{Type: event, Outcome: audit.Success, ClientID: client.ID, UserID: g.UserID,
		FHIRUser: g.FHIRUser, Patient: revealed.Patient, Scopes: resp.Scope, GrantID: g.ID, TokenID: claims.ID}); err != nil {
		fail(oauthErr(ServerError, "try again later"))
		return
	}
	if next != nil || oldRefresh != "" {
		var rt string
		var rec Refresh
		if next != nil {
			rt = randid.New()
			rec = *next
			rec.Hash = hashToken(rt)
		}
		var err error
		if oldRefresh != "" {
			var old Refresh
			old, err = s.Store.RotateRefresh(ctx, in.tenant.ID, oldRefresh, rec)
			if errors.Is(err, ErrUsed) { // lost a race with another refresh of the same token
				_ = s.Store.RevokeGrant(ctx, in.tenant.ID, old.GrantID)
				_ = s.record(r, audit.Event{Type: audit.RefreshReuse, Outcome: audit.Failure, Severity: audit.Security,
					ClientID: client.ID, GrantID: old.GrantID, Reason: "concurrent refresh of one token; grant revoked"})
				fail(oauthErr(InvalidGrant, "the refresh token was already used"))
				return
			}
		} else {
			err = s.Store.SaveRefresh(ctx, rec)
		}
		if err != nil {
			fail(oauthErr(ServerError, "try again later"))
			return
		}
		resp.RefreshToken = rt
	}
	noStore(w)
	writeJSON(w, http.StatusOK, resp)
}
