package smart

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/launch"
)

// Defaults for Server fields left zero.
const (
	DefaultAccessTokenTTL  = 15 * time.Minute
	DefaultBackendTokenTTL = 5 * time.Minute // SMART Backend Services: SHOULD NOT exceed 300 s
	DefaultRefreshTTL      = 90 * 24 * time.Hour
	DefaultOnlineTTL       = 12 * time.Hour
	DefaultSkew            = 60 * time.Second
	DefaultCodeTTL         = 60 * time.Second // authorization code lifetime
	RequestTTL             = 10 * time.Minute // how long a user has to log in and consent
	maxFormBytes           = 64 << 10
)

// A Tenant is one issuer: its own clients, keys, grants and launches. The
// tenant with ID "" is served at the Server's root; others under /t/{id}/.
type Tenant struct {
	ID string
	// FHIRBases are the FHIR base URLs this tenant protects; an
	// authorization request's aud must equal one of them.
	FHIRBases []string
	// Keys signs this tenant's tokens; nil means Server.Keys.
	Keys *KeySet
}

// Server is the SMART authorization server: discovery, authorize, token,
// introspection, revocation and JWKS, as one http.Handler a host mounts on
// its own mux:
//
//	mux.Handle("/auth/", http.StripPrefix("/auth", srv))
//
// BaseURL, Tenants, Clients, Store, Keys and Authenticator are required;
// every other field has a safe zero value. Do not change fields after the
// first request. A Server is safe for concurrent use.
type Server struct {
	// BaseURL is the absolute URL the Server is mounted at, without a
	// trailing slash; the default tenant's issuer.
	BaseURL       string
	Tenants       []Tenant
	Clients       ClientStore
	Store         Store
	Keys          *KeySet
	Authenticator Authenticator
	// Launches redeems EHR launch ids; nil means the EHR launch is refused.
	Launches *launch.Service
	// Consent decides what may be granted; nil means requested ∩
	// client-allowed, approved by the user on the consent page.
	Consent ConsentPolicy
	// Patients lets a standalone launch choose a patient; nil means only a
	// user who is a patient has a patient context.
	Patients PatientPicker
	// Audit receives every decision; nil means audit.Slog with Logger. A
	// failing sink fails the request (nothing is issued).
	Audit  audit.Sink
	Logger *slog.Logger     // nil means slog.Default()
	Now    func() time.Time // nil means time.Now

	// HTTPClient fetches clients' JWKS URLs; nil means a client with a 10 s
	// timeout that refuses private, loopback and link-local addresses.
	HTTPClient *http.Client

	AccessTokenTTL  time.Duration // 0 means DefaultAccessTokenTTL
	BackendTokenTTL time.Duration // 0 means DefaultBackendTokenTTL; capped at 300 s
	RefreshTTL      time.Duration // offline_access; 0 means DefaultRefreshTTL
	OnlineTTL       time.Duration // online_access; 0 means DefaultOnlineTTL
	Skew            time.Duration // clock skew allowed on assertions; 0 means DefaultSkew
	// Sessions binds online_access grants to the user's sign-in session
	// (User.Session): a refresh after it has ended revokes the grant. Nil
	// means online_access lasts OnlineTTL whatever the session does.
	Sessions Sessions
	// BackendClearance decides what labelled data a backend service's
	// tokens (client_credentials) may see: its consent.Clearance, carried
	// in the token for the proxy. Nil, or a nil result, means normal data
	// only (what the default consent policy gives a user's grant); an
	// error fails the token request with server_error. No user consents
	// for a backend service, so this is the host's decision, typically
	// made when the service is approved (a bulk export for the hospital's
	// own research warehouse may be cleared for every label).
	BackendClearance func(ctx context.Context, tenant string, c *Client) (*consent.Clearance, error)
	// CodeTTL is the authorization code lifetime; 0 means DefaultCodeTTL.
	// RFC 6749 recommends at most 10 minutes.
	CodeTTL time.Duration
	// AccessTokenAlg signs access tokens: ES256 (default), RS256 or EdDSA.
	AccessTokenAlg string
	// FrameAncestors lists origins allowed to frame the login-flow pages
	// (the EHR shell); empty means none may.
	FrameAncestors []string
	// Templates overrides the pages: templates named "error", "picker" and
	// "consent"; see pages.go for the data each receives. Nil means the
	// defaults. Keep {{.Base}}/assets/smart.js in their head (no defer): it
	// stops a double click from submitting a consent twice, which loses the
	// launch. The pages' CSP allows no other script.
	Templates *template.Template
	// ManagementURL is published as management_endpoint, where users review
	// and revoke app access; "" omits it.
	ManagementURL string
	// RegistrationURL is published as registration_endpoint (RFC 7591,
	// e.g. a registry.Registration handler); "" omits it.
	RegistrationURL string

	// Throttle limits failed client authentications and grants (guessed
	// secrets, codes and refresh tokens); the zero value is on, with the
	// defaults.
	Throttle Throttle

	once      sync.Once
	initErr   error
	throttler throttler
	tenants   map[string]*Tenant
	jwks      *jwksCache
}

func (s *Server) init() error {
	s.once.Do(func() {
		switch {
		case s.BaseURL == "" || strings.HasSuffix(s.BaseURL, "/"):
			s.initErr = errors.New("smart: BaseURL must be an absolute URL without a trailing slash")
		case len(s.Tenants) == 0:
			s.initErr = errors.New("smart: at least one Tenant is required")
		case s.Clients == nil || s.Store == nil || s.Keys == nil || s.Authenticator == nil:
			s.initErr = errors.New("smart: Clients, Store, Keys and Authenticator are required")
		}
		if s.initErr != nil {
			return
		}
		s.tenants = map[string]*Tenant{}
		for i := range s.Tenants {
			t := &s.Tenants[i]
			if len(t.FHIRBases) == 0 {
				s.initErr = errors.New("smart: tenant " + t.ID + " has no FHIR base")
				return
			}
			if !s.keys(t).Has(s.accessAlg()) {
				s.initErr = errors.New("smart: no signing key for " + s.accessAlg())
				return
			}
			s.tenants[t.ID] = t
		}
		s.jwks = &jwksCache{client: s.httpClient()}
		s.throttler.cfg = &s.Throttle
	})
	return s.initErr
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) audit() audit.Sink {
	if s.Audit != nil {
		return s.Audit
	}
	return audit.Slog{Logger: s.logger()}
}

func (s *Server) accessAlg() string {
	if s.AccessTokenAlg != "" {
		return s.AccessTokenAlg
	}
	return ES256
}

func (s *Server) keys(t *Tenant) *KeySet {
	if t.Keys != nil {
		return t.Keys
	}
	return s.Keys
}

func ttl(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (s *Server) skew() time.Duration { return ttl(s.Skew, DefaultSkew) }

// Issuer returns the issuer URL of a tenant.
func (s *Server) Issuer(tenant string) string {
	if tenant == "" {
		return s.BaseURL
	}
	return s.BaseURL + "/t/" + tenant
}

// oidc reports whether the tenant can sign id_tokens (RS256, required by
// SMART's sso-openid-connect).
func (s *Server) oidc(t *Tenant) bool { return s.keys(t).Has(RS256) }

type ctxKey struct{}

// request-scoped values the handlers share.
type reqInfo struct {
	tenant   *Tenant
	issuer   string
	throttle throttleState
}

// ServeHTTP routes a request to its endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.init(); err != nil {
		s.logger().Error("smart: misconfigured server", "err", err)
		http.Error(w, "authorization server misconfigured", http.StatusInternalServerError)
		return
	}
	path := r.URL.Path
	tenantID := ""
	if rest, ok := strings.CutPrefix(path, "/t/"); ok {
		id, sub, _ := strings.Cut(rest, "/")
		tenantID, path = id, "/"+sub
		if id == "" {
			http.NotFound(w, r)
			return
		}
	}
	t, ok := s.tenants[tenantID]
	if !ok {
		http.NotFound(w, r)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, &reqInfo{tenant: t, issuer: s.Issuer(t.ID)}))
	switch path {
	case "/.well-known/smart-configuration":
		s.methods(w, r, s.serveSMARTConfig, http.MethodGet, http.MethodHead)
	case "/.well-known/openid-configuration":
		s.methods(w, r, s.serveOpenIDConfig, http.MethodGet, http.MethodHead)
	case "/jwks":
		s.methods(w, r, s.serveJWKS, http.MethodGet, http.MethodHead)
	case "/authorize":
		s.methods(w, r, s.serveAuthorize, http.MethodGet, http.MethodPost)
	case "/authorize/continue":
		s.methods(w, r, s.serveContinue, http.MethodGet)
	case "/authorize/patient":
		s.methods(w, r, s.servePatient, http.MethodPost)
	case "/authorize/consent":
		s.methods(w, r, s.serveConsent, http.MethodPost)
	case "/token":
		s.oauthMethods(w, r, s.serveToken, http.MethodPost, http.MethodOptions)
	case "/introspect":
		s.oauthMethods(w, r, s.serveIntrospect, http.MethodPost)
	case "/revoke":
		s.oauthMethods(w, r, s.serveRevoke, http.MethodPost, http.MethodOptions)
	case "/assets/smart.css":
		s.methods(w, r, serveCSS, http.MethodGet, http.MethodHead)
	case "/assets/smart.js":
		s.methods(w, r, serveJS, http.MethodGet, http.MethodHead)
	default:
		http.NotFound(w, r)
	}
}

// methods runs h for the allowed methods and answers any other with 405
// and an Allow header. HEAD is allowed only where it is listed: on the
// documents that are the same for every GET (a page of the authorization
// flow has effects, which a HEAD must not have).
func (s *Server) methods(w http.ResponseWriter, r *http.Request, h http.HandlerFunc, allowed ...string) {
	if slices.Contains(allowed, r.Method) {
		h(w, r)
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

// oauthMethods is methods for the OAuth endpoints, which take a POST and
// answer any other method as they answer every mistake: with an OAuth
// error, not a line of text a client cannot parse.
func (s *Server) oauthMethods(w http.ResponseWriter, r *http.Request, h http.HandlerFunc, allowed ...string) {
	if slices.Contains(allowed, r.Method) {
		h(w, r)
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	noStore(w)
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": string(InvalidRequest),
		"error_description": r.Method + " is not allowed here: send a POST with a form body"})
}

func info(r *http.Request) *reqInfo { return r.Context().Value(ctxKey{}).(*reqInfo) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// noStore sets the cache headers every token-bearing response needs.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// writeOAuthError writes a token-endpoint style JSON error (RFC 6749 §5.2).
func writeOAuthError(w http.ResponseWriter, e *Error, basic bool) {
	noStore(w)
	if e.Code == InvalidClient && basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="smart", charset="UTF-8"`)
	}
	body := map[string]string{"error": string(e.Code)}
	if e.Description != "" {
		body["error_description"] = e.Description
	}
	status := e.Code.status()
	if e.retryAfter > 0 {
		status = http.StatusTooManyRequests
		w.Header().Set("Retry-After", strconv.FormatInt(e.retryAfter, 10))
	}
	writeJSON(w, status, body)
}

// record writes an audit event with the request's tenant, source and agent.
func (s *Server) record(r *http.Request, e audit.Event) error {
	in := info(r)
	e.Time = s.now()
	e.Tenant = in.tenant.ID
	if e.Severity == "" {
		e.Severity = audit.Info
		if e.Outcome == audit.Failure {
			e.Severity = audit.Warning
		}
	}
	e.SourceIP = r.RemoteAddr
	e.UserAgent = r.UserAgent()
	e.RequestID = r.Header.Get("X-Request-Id")
	if err := s.audit().Record(r.Context(), e); err != nil {
		s.logger().ErrorContext(r.Context(), "smart: audit sink failed", "err", err, "type", e.Type)
		return err
	}
	return nil
}

// parseForm reads a form-encoded POST body (or, for GET, the query) with a
// size limit, refusing repeated parameters (RFC 6749 §3.1) and invalid UTF-8.
func parseForm(w http.ResponseWriter, r *http.Request) (map[string]string, *Error) {
	var raw string
	if r.Method == http.MethodGet {
		raw = r.URL.RawQuery
	} else {
		ct := r.Header.Get("Content-Type")
		if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
			return nil, oauthErr(InvalidRequest, "the body must be application/x-www-form-urlencoded")
		}
		b, err := readLimited(w, r, maxFormBytes)
		if err != nil {
			return nil, oauthErr(InvalidRequest, "the request body is too large or unreadable")
		}
		raw = string(b)
	}
	vals, err := parseQueryStrict(raw)
	if err != nil {
		return nil, oauthErr(InvalidRequest, err.Error())
	}
	return vals, nil
}
