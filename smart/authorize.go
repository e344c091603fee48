package smart

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/pkce"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
)

// hashToken is how codes and refresh tokens are stored: SHA-256, base64url.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// normalizeURL is the aud comparison of SPEC-NOTES A21: scheme and host
// lower-cased, default port dropped, trailing "/" dropped, path kept as is.
func normalizeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	} else if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host + strings.TrimSuffix(u.EscapedPath(), "/")
}

// matchAudience returns the configured FHIR base that aud names, or "".
func matchAudience(t *Tenant, aud string) string {
	n := normalizeURL(aud)
	if n == "" {
		return ""
	}
	for _, b := range t.FHIRBases {
		if normalizeURL(b) == n {
			return b
		}
	}
	return ""
}

// authzFailure is an error sent back to the client's redirect URI.
type authzFailure struct {
	client, redirect, state string
}

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	in := info(r)
	ctx := r.Context()
	p, perr := parseForm(w, r)
	if perr != nil {
		s.errorPage(w, r, http.StatusBadRequest, perr, "")
		return
	}
	clientID := p["client_id"]
	refuse := func(e *Error, clientID string) {
		if s.record(r, audit.Event{Type: audit.AuthorizeRefused, Outcome: audit.Failure, ClientID: clientID,
			Reason: string(e.Code) + ": " + e.Description}) != nil {
			e = oauthErr(ServerError, "the request could not be recorded")
		}
		s.errorPage(w, r, http.StatusBadRequest, e, "")
	}
	if clientID == "" {
		refuse(oauthErr(InvalidRequest, "client_id is missing"), "")
		return
	}
	client, err := s.Clients.Client(ctx, in.tenant.ID, clientID)
	if errors.Is(err, ErrNotFound) {
		refuse(oauthErr(InvalidClient, "the client is not registered here"), clientID)
		return
	} else if err != nil {
		s.logger().ErrorContext(ctx, "smart: client lookup failed", "err", err)
		s.errorPage(w, r, http.StatusInternalServerError, oauthErr(ServerError, "try again later"), "")
		return
	}
	redirect := p["redirect_uri"]
	if !client.matchRedirect(redirect) {
		refuse(oauthErr(InvalidRequest, "redirect_uri is missing or not registered for this client"), clientID)
		return
	}
	// From here on, errors go back to the (now trusted) redirect URI.
	af := authzFailure{client: clientID, redirect: redirect, state: p["state"]}
	fail := func(c Code, desc string) { s.redirectError(w, r, af, oauthErr(c, desc)) }

	if p["response_type"] != "code" {
		fail(UnsupportedResponseType, "only response_type=code is supported")
		return
	}
	// What the server does not do is refused, not ignored: a client that
	// put its parameters in a request object, or asked for the response
	// in a fragment or a form post, would otherwise get an answer to a
	// request it did not make, or in a place it does not look.
	if _, ok := p["request"]; ok {
		fail(RequestNotSupported, "request objects are not supported: send the parameters themselves")
		return
	}
	if _, ok := p["request_uri"]; ok {
		fail(RequestURINotSupported, "request_uri is not supported: send the parameters themselves")
		return
	}
	if m, ok := p["response_mode"]; ok && m != "query" {
		fail(InvalidRequest, "only response_mode=query is supported")
		return
	}
	if p["state"] == "" {
		fail(InvalidRequest, "state is required")
		return
	}
	if !client.AllowsGrant(GrantAuthorizationCode) {
		fail(UnauthorizedClient, "the client is not registered for the authorization code grant")
		return
	}
	if p["code_challenge"] == "" {
		fail(InvalidRequest, "PKCE is required: code_challenge is missing")
		return
	}
	if p["code_challenge_method"] != "S256" {
		fail(InvalidRequest, "code_challenge_method must be S256")
		return
	}
	if !pkce.ValidChallenge(p["code_challenge"]) {
		fail(InvalidRequest, "code_challenge must be 43 base64url characters")
		return
	}
	aud := p["aud"]
	if res := p["resource"]; aud == "" {
		aud = res
	} else if res != "" && normalizeURL(res) != normalizeURL(aud) {
		fail(InvalidRequest, "aud and resource disagree")
		return
	}
	audience := matchAudience(in.tenant, aud)
	if audience == "" {
		fail(InvalidRequest, "aud must be the FHIR base URL of a server this authorization server protects")
		return
	}
	if p["scope"] == "" {
		fail(InvalidRequest, "scope is required")
		return
	}
	requested, serr := scopes.ParseLenient(p["scope"])
	var dropped []string
	if se := (*scopes.SetError)(nil); errors.As(serr, &se) {
		if client.StrictScopes {
			fail(InvalidScope, se.Error())
			return
		}
		for _, e := range se.Errs {
			dropped = append(dropped, e.Scope)
		}
	} else if serr != nil {
		fail(InvalidScope, serr.Error())
		return
	}
	prompt, err := parsePrompt(p["prompt"])
	if err != nil {
		fail(InvalidRequest, err.Error())
		return
	}
	if (p["launch"] != "") != requested.Has("launch") {
		fail(InvalidRequest, "an EHR launch needs both the launch scope and the launch parameter")
		return
	}
	pr := PendingRequest{
		ID: randid.New(), Tenant: in.tenant.ID, ClientID: clientID, RedirectURI: redirect, State: p["state"],
		Challenge: p["code_challenge"], Nonce: p["nonce"], Audience: audience,
		Dropped: strings.Join(dropped, " "), Prompt: prompt, CSRF: randid.New(), Expires: s.now().Add(RequestTTL),
	}
	if id := p["launch"]; id != "" {
		if s.Launches == nil {
			fail(InvalidRequest, "this server does not support the EHR launch")
			return
		}
		l, err := s.Launches.Redeem(ctx, launch.Binding{Tenant: in.tenant.ID, ID: id, ClientID: clientID, FHIRBase: audience})
		if errors.Is(err, launch.ErrInvalid) {
			fail(InvalidRequest, "the launch is unknown, expired, already used, or not for this client and aud")
			return
		} else if err != nil {
			s.logger().ErrorContext(ctx, "smart: launch redeem failed", "err", err)
			fail(ServerError, "try again later")
			return
		}
		pr.EHRLaunch, pr.LaunchUser, pr.Context, pr.LaunchRef = true, l.UserID, l.Context, audit.Ref(id)
	}
	allowed := requested.Intersect(client.allowedScopes())
	if allowed.Len() == 0 {
		fail(InvalidScope, "none of the requested scopes may be granted to this client")
		return
	}
	if !pr.EHRLaunch && (allowed.Has("launch/patient") || allowed.HasContext(scopes.Patient)) {
		pr.NeedPatient = true
	}
	if pr.EHRLaunch && pr.Context.Patient == "" {
		allowed = withoutPatient(allowed)
	}
	pr.Scope = allowed.String()
	if err := s.Store.SaveRequest(ctx, pr); err != nil {
		s.logger().ErrorContext(ctx, "smart: saving request failed", "err", err)
		fail(CodeOf(err), "try again later")
		return
	}
	s.seeOther(w, r, info(r).issuer+"/authorize/continue?req="+pr.ID)
}

// withoutPatient drops what needs a patient in context: patient/ scopes and
// launch/patient (SPEC-NOTES A12).
func withoutPatient(set scopes.Set) scopes.Set {
	return set.Filter(func(sc scopes.Scope) bool {
		return sc.Context() != scopes.Patient && sc.String() != "launch/patient"
	})
}

// serveContinue carries a pending request through login, the patient
// picker and consent.
func (s *Server) serveContinue(w http.ResponseWriter, r *http.Request) {
	in := info(r)
	ctx := r.Context()
	p, ok := s.pending(w, r, r.URL.Query().Get("req"), false)
	if !ok {
		return
	}
	af := authzFailure{client: p.ClientID, redirect: p.RedirectURI, state: p.State}
	silent := hasPrompt(p.Prompt, PromptNone)
	// With prompt=none nothing may be shown: an unanswered question ends
	// the request with an error for the app (OIDC Core §3.1.2.6).
	interaction := func(c Code, desc string) {
		_, _ = s.Store.ConsumeRequest(ctx, in.tenant.ID, p.ID)
		s.redirectError(w, r, af, oauthErr(c, desc))
	}
	r = r.WithContext(context.WithValue(ctx, promptKey{}, p.Prompt))
	var user User
	if silent {
		if user, ok = s.Authenticator.Authenticate(discardWriter{}, r); !ok {
			interaction(LoginRequired, "prompt=none and no one is signed in")
			return
		}
	} else if user, ok = s.Authenticator.Authenticate(w, r); !ok {
		return
	}
	if p.UserID != "" && p.UserID != user.ID || p.EHRLaunch && p.LaunchUser != user.ID {
		_, _ = s.Store.ConsumeRequest(ctx, in.tenant.ID, p.ID)
		s.redirectError(w, r, af, oauthErr(AccessDenied, "this authorization belongs to another user"))
		return
	}
	dirty := p.UserID == ""
	p.UserID = user.ID
	set, _ := scopes.ParseLenient(p.Scope)
	if p.NeedPatient && p.Context.Patient == "" {
		switch {
		case user.PatientID != "":
			p.Context.Patient, p.NeedPatient, dirty = user.PatientID, false, true
		case s.Patients != nil && silent:
			interaction(InteractionRequired, "prompt=none and a patient must be chosen")
			return
		case s.Patients != nil:
			if dirty {
				if err := s.Store.SaveRequest(ctx, p); err != nil {
					s.redirectError(w, r, af, oauthErr(ServerError, "try again later"))
					return
				}
			}
			s.pickerPage(w, r, p, user, r.URL.Query().Get("q"), "")
			return
		default:
			set = withoutPatient(set)
			p.Scope, p.NeedPatient, dirty = set.String(), false, true
		}
	}
	client, err := s.Clients.Client(ctx, in.tenant.ID, p.ClientID)
	if err != nil {
		s.redirectError(w, r, af, oauthErr(UnauthorizedClient, "the client is no longer registered"))
		return
	}
	dec, err := s.decide(r, client, user, p, set)
	if err != nil {
		s.redirectError(w, r, af, oauthErr(ServerError, "try again later"))
		return
	}
	if dec.Deny || dec.Grantable.Len() == 0 {
		_, _ = s.Store.ConsumeRequest(ctx, in.tenant.ID, p.ID)
		reason := dec.Reason
		if reason == "" {
			reason = "nothing requested may be granted"
		}
		_ = s.record(r, audit.Event{Type: audit.ConsentRefused, Outcome: audit.Failure, ClientID: p.ClientID,
			UserID: user.ID, Patient: p.Context.Patient, Scopes: p.Scope, Reason: reason})
		s.redirectError(w, r, af, oauthErr(AccessDenied, reason))
		return
	}
	p.Clearance = dec.Clearance
	for _, rf := range dec.Refused {
		p.Dropped = strings.TrimSpace(p.Dropped + " " + rf.Scope + " (" + rf.Reason + ")")
	}
	if hasPrompt(p.Prompt, PromptConsent) {
		dec.Ask = true // asked for whatever the policy would remember
	}
	if dec.Ask && silent {
		interaction(ConsentRequired, "prompt=none and the user's consent is needed")
		return
	}
	if dec.Ask {
		p.Offered, p.Asked = dec.Grantable.String(), true
		if err := s.Store.SaveRequest(ctx, p); err != nil {
			s.redirectError(w, r, af, oauthErr(ServerError, "try again later"))
			return
		}
		s.consentPage(w, r, p, client, user, dec.Grantable)
		return
	}
	if _, err := s.Store.ConsumeRequest(ctx, in.tenant.ID, p.ID); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, oauthErr(InvalidRequest, "this authorization request was already used"), "")
		return
	}
	s.issueCode(w, r, p, user, dec.Grantable, false)
}

// decide asks the consent policy, or applies the default: everything the
// client may have, approved by the user on the consent page.
func (s *Server) decide(r *http.Request, c *Client, u User, p PendingRequest, allowed scopes.Set) (ConsentDecision, error) {
	if u.FHIRUser == "" {
		// user/ scopes act as a FHIR user; without one the Verifier refuses them.
		allowed = allowed.Filter(func(sc scopes.Scope) bool { return sc.Context() != scopes.User && sc.String() != "fhirUser" })
	}
	if s.Consent == nil {
		return ConsentDecision{Grantable: allowed, Ask: true}, nil
	}
	requested, _ := scopes.ParseLenient(p.Scope)
	d, err := s.Consent.Decide(r.Context(), ConsentRequest{
		Tenant: p.Tenant, Client: c, User: u, Patient: p.Context.Patient,
		Requested: requested, Allowed: allowed, EHRLaunch: p.EHRLaunch,
	})
	if err != nil {
		return d, err
	}
	// The policy can narrow, never widen, what the client may have.
	d.Grantable = d.Grantable.Intersect(allowed)
	if p.Context.Patient == "" {
		d.Grantable = withoutPatient(d.Grantable)
	}
	return d, nil
}

// pending loads a pending request (consuming it when consume is set), or
// renders an error page and returns false.
func (s *Server) pending(w http.ResponseWriter, r *http.Request, id string, consume bool) (PendingRequest, bool) {
	in := info(r)
	var p PendingRequest
	err := ErrNotFound
	if randid.Valid(id) {
		if consume {
			p, err = s.Store.ConsumeRequest(r.Context(), in.tenant.ID, id)
		} else {
			p, err = s.Store.Request(r.Context(), in.tenant.ID, id)
		}
	}
	if err == nil && !s.now().Before(p.Expires) {
		_, _ = s.Store.ConsumeRequest(r.Context(), in.tenant.ID, id)
		s.redirectError(w, r, authzFailure{p.ClientID, p.RedirectURI, p.State}, oauthErr(AccessDenied, "the authorization took too long; start again"))
		return p, false
	}
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, oauthErr(InvalidRequest, "this authorization request is unknown, expired or already used; start again from the app"), "")
		return p, false
	}
	return p, true
}

// checkForm reads a page's form, authenticates the user and checks the
// form against the pending request: same user, same CSRF token (constant
// time). It has answered the request when it returns false.
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request, consume bool) (map[string]string, PendingRequest, User, bool) {
	f, ferr := parseForm(w, r)
	if ferr != nil {
		s.errorPage(w, r, http.StatusBadRequest, ferr, "")
		return nil, PendingRequest{}, User{}, false
	}
	user, ok := s.Authenticator.Authenticate(w, r)
	if !ok {
		return f, PendingRequest{}, user, false
	}
	p, ok := s.pending(w, r, f["req"], consume)
	if !ok {
		return f, p, user, false
	}
	if p.UserID != user.ID || subtle.ConstantTimeCompare([]byte(f["csrf"]), []byte(p.CSRF)) != 1 {
		_ = s.record(r, audit.Event{Type: audit.AuthorizeRefused, Outcome: audit.Failure, Severity: audit.Security,
			ClientID: p.ClientID, UserID: user.ID, Reason: "csrf: form token or user mismatch"})
		s.errorPage(w, r, http.StatusForbidden, oauthErr(AccessDenied, "this form is not valid for your session"), "")
		return f, p, user, false
	}
	return f, p, user, true
}

func (s *Server) servePatient(w http.ResponseWriter, r *http.Request) {
	f, p, user, ok := s.checkForm(w, r, false)
	if !ok {
		return
	}
	af := authzFailure{p.ClientID, p.RedirectURI, p.State}
	if !p.NeedPatient || s.Patients == nil {
		s.errorPage(w, r, http.StatusBadRequest, oauthErr(InvalidRequest, "no patient is to be chosen"), "")
		return
	}
	allowed, err := s.Patients.Allowed(r.Context(), p.Tenant, user, f["patient"])
	if err != nil {
		s.redirectError(w, r, af, oauthErr(ServerError, "try again later"))
		return
	}
	if f["patient"] == "" || !allowed {
		_ = s.record(r, audit.Event{Type: audit.AuthorizeRefused, Outcome: audit.Failure, Severity: audit.Security,
			ClientID: p.ClientID, UserID: user.ID, Reason: "picker: patient not allowed for this user"})
		s.pickerPage(w, r, p, user, "", "That patient is not available. Choose another.")
		return
	}
	p.Context.Patient, p.NeedPatient = f["patient"], false
	if err := s.Store.SaveRequest(r.Context(), p); err != nil {
		s.redirectError(w, r, af, oauthErr(ServerError, "try again later"))
		return
	}
	s.seeOther(w, r, info(r).issuer+"/authorize/continue?req="+p.ID)
}

func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	f, p, user, ok := s.checkForm(w, r, true)
	if !ok {
		return
	}
	af := authzFailure{p.ClientID, p.RedirectURI, p.State}
	offered, _ := scopes.ParseLenient(p.Offered)
	if p.Offered == "" || offered.Len() == 0 {
		s.errorPage(w, r, http.StatusBadRequest, oauthErr(InvalidRequest, "nothing was offered for consent"), "")
		return
	}
	if f["decision"] != "approve" {
		_ = s.record(r, audit.Event{Type: audit.ConsentRefused, Outcome: audit.Failure, ClientID: p.ClientID,
			UserID: user.ID, Patient: p.Context.Patient, Scopes: p.Offered, Reason: "the user declined"})
		s.redirectError(w, r, af, oauthErr(AccessDenied, "the user declined"))
		return
	}
	// Only indices into the server-held offer count, so a tampered form can
	// narrow the grant but never add to it.
	var granted []scopes.Scope
	for i, sc := range offered.Scopes() {
		switch v := f["scope_"+strconv.Itoa(i)]; {
		case fixedScope(sc) || v == "on":
			granted = append(granted, sc)
		case strings.HasPrefix(v, "category:"):
			if sub, ok := categoryScope(sc, strings.TrimPrefix(v, "category:")); ok {
				granted = append(granted, sub)
			}
		}
	}
	if err := s.record(r, audit.Event{Type: audit.ConsentGranted, Outcome: audit.Success, ClientID: p.ClientID,
		UserID: user.ID, FHIRUser: user.FHIRUser, Patient: p.Context.Patient, Scopes: scopes.NewSet(granted...).String()}); err != nil {
		s.redirectError(w, r, af, oauthErr(ServerError, "try again later"))
		return
	}
	s.issueCode(w, r, p, user, scopes.NewSet(granted...), true)
}

// fixedScope reports whether the consent page shows a scope without a
// checkbox: the launch scopes carry the context the app was opened in.
func fixedScope(sc scopes.Scope) bool {
	return sc.Kind() == scopes.Launch || sc.Kind() == scopes.LaunchContext
}

// issueCode records the grant, stores a single-use code and redirects to the app.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, p PendingRequest, user User, granted scopes.Set, consented bool) {
	ctx := r.Context()
	af := authzFailure{p.ClientID, p.RedirectURI, p.State}
	requested, _ := scopes.ParseLenient(p.Scope)
	if requested.Version() == scopes.V1 {
		granted = granted.V1()
	}
	now := s.now()
	g := Grant{
		ID: randid.New(), Tenant: p.Tenant, ClientID: p.ClientID, UserID: user.ID, FHIRUser: user.FHIRUser,
		Scope: granted.String(), Audience: p.Audience, Context: p.Context, EHRLaunch: p.EHRLaunch,
		Clearance: p.Clearance, Created: now, Expires: now.Add(s.grantLifetime(granted)),
	}
	if online(granted) {
		g.Session = user.Session
	}
	code := randid.New()
	c := AuthCode{
		Hash: hashToken(code), Tenant: p.Tenant, ClientID: p.ClientID, RedirectURI: p.RedirectURI,
		Challenge: p.Challenge, Nonce: p.Nonce, GrantID: g.ID, Expires: now.Add(ttl(s.CodeTTL, DefaultCodeTTL)),
	}
	err := s.record(r, audit.Event{Type: audit.CodeIssued, Outcome: audit.Success, ClientID: p.ClientID,
		UserID: user.ID, FHIRUser: user.FHIRUser, Patient: p.Context.Patient, Scopes: g.Scope,
		GrantID: g.ID, LaunchRef: p.LaunchRef, Reason: droppedReason(p.Dropped)})
	if err == nil {
		err = s.Store.SaveGrant(ctx, g)
	}
	if rec, ok := s.Consent.(ConsentRecorder); ok && err == nil {
		client, cerr := s.Clients.Client(ctx, p.Tenant, p.ClientID)
		if err = cerr; err == nil {
			err = rec.Approved(ctx, ConsentApproval{Tenant: p.Tenant, Client: client, User: user, Patient: p.Context.Patient,
				Granted: granted, GrantID: g.ID, Asked: consented})
		}
	}
	if err == nil {
		err = s.Store.SaveCode(ctx, c)
	}
	if err != nil {
		s.logger().ErrorContext(ctx, "smart: issuing code failed", "err", err)
		s.redirectError(w, r, af, oauthErr(ServerError, "try again later"))
		return
	}
	q := url.Values{"code": {code}, "state": {p.State}, "iss": {info(r).issuer}}
	s.redirectTo(w, r, p.RedirectURI, q)
}

func droppedReason(d string) string {
	if d == "" {
		return ""
	}
	return "not granted: " + d
}

// ObservationCategories are the categories (observation-category code
// system) the consent page offers as narrower choices for an Observation
// scope, so a person can share only laboratory results, say.
var ObservationCategories = []string{"laboratory", "vital-signs", "social-history", "imaging", "survey", "exam"}

const observationCategorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"

// categoryScope narrows an unconstrained Observation scope to one category.
func categoryScope(sc scopes.Scope, code string) (scopes.Scope, bool) {
	if sc.Kind() != scopes.Resource || sc.Type() != "Observation" || sc.Constrained() || !slices.Contains(ObservationCategories, code) {
		return scopes.Scope{}, false
	}
	sub, err := scopes.Parse(sc.V2().String() + "?category=" + observationCategorySystem + "|" + code)
	return sub, err == nil
}

// online reports whether a grant's refresh tokens live while the user is
// online: online_access without offline_access (which wins, SPEC-NOTES A18).
func online(granted scopes.Set) bool {
	return granted.Has("online_access") && !granted.Has("offline_access")
}

// grantLifetime is how long a grant lives: as long as its refresh tokens may.
func (s *Server) grantLifetime(granted scopes.Set) time.Duration {
	switch {
	case granted.Has("offline_access"):
		return ttl(s.RefreshTTL, DefaultRefreshTTL)
	case granted.Has("online_access"):
		return ttl(s.OnlineTTL, DefaultOnlineTTL)
	}
	return ttl(s.AccessTokenTTL, DefaultAccessTokenTTL)
}

// redirectError sends an OAuth error to the client's redirect URI, with
// state and iss (RFC 6749 §4.1.2.1, RFC 9207), and audits the refusal.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, af authzFailure, e *Error) {
	_ = s.record(r, audit.Event{Type: audit.AuthorizeRefused, Outcome: audit.Failure, ClientID: af.client,
		Reason: string(e.Code) + ": " + e.Description})
	q := url.Values{"error": {string(e.Code)}, "iss": {info(r).issuer}}
	if e.Description != "" {
		q.Set("error_description", e.Description)
	}
	if af.state != "" {
		q.Set("state", af.state)
	}
	s.redirectTo(w, r, af.redirect, q)
}

// redirectTo adds q to a registered redirect URI, keeping its own query.
func (s *Server) redirectTo(w http.ResponseWriter, r *http.Request, redirect string, q url.Values) {
	u, err := url.Parse(redirect)
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, oauthErr(InvalidRequest, "bad redirect URI"), "")
		return
	}
	merged := u.Query()
	for k, v := range q {
		merged[k] = v
	}
	u.RawQuery = merged.Encode()
	s.seeOther(w, r, u.String())
}

func (s *Server) seeOther(w http.ResponseWriter, r *http.Request, target string) {
	noStore(w)
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, target, http.StatusSeeOther)
}
