package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
	"golang.org/x/oauth2"
)

// Config is a SMART app's view of one registration: its client id, redirect
// URL, the scopes it asks for and the FHIR servers it trusts. It runs both
// launches and turns the callback into a Session. A Config is safe for
// concurrent use; do not change its fields after the first call.
type Config struct {
	ClientID     string
	ClientSecret string // for confidential symmetric clients; "" for public clients
	RedirectURL  string
	Scopes       []string
	// Issuers are the FHIR base URLs the app accepts as iss. An EHR launch
	// naming any other iss is refused (ErrIssuer): following it would send
	// the user to a server the app never registered with. Required.
	Issuers []string
	// States keeps per-launch state between redirect and callback; nil
	// means a CookieStore with a per-process random key.
	States     StateStore
	HTTPClient *http.Client     // nil means a client with a 10 s timeout
	Now        func() time.Time // nil means time.Now
	Logger     *slog.Logger     // nil means slog.Default(); tokens are never logged

	once      sync.Once
	states    StateStore
	discovery discoveryCache
	jwks      jwksCache
}

func (c *Config) init() {
	c.once.Do(func() {
		c.states = c.States
		if c.states == nil {
			c.states = NewCookieStore()
		}
	})
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Config) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return defaultHTTPClient()
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// trusted reports whether iss is one of the Issuers, compared after
// dropping a trailing slash.
func (c *Config) trusted(iss string) bool {
	iss = strings.TrimSuffix(iss, "/")
	for _, t := range c.Issuers {
		if strings.TrimSuffix(t, "/") == iss {
			return true
		}
	}
	return false
}

// Discover returns the (cached) discovery document of a trusted FHIR base.
func (c *Config) Discover(ctx context.Context, fhirBase string) (*Configuration, error) {
	if !c.trusted(fhirBase) {
		return nil, fmt.Errorf("%w: %s", ErrIssuer, fhirBase)
	}
	cfg, err := c.discovery.discover(ctx, c.httpClient(), fhirBase, c.now())
	if err != nil {
		return nil, err
	}
	if err := cfg.validate(true); err != nil {
		return nil, err
	}
	return cfg, nil
}

// OAuth2 returns the golang.org/x/oauth2 configuration for a server.
func (c *Config) OAuth2(cfg *Configuration, scopes []string) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	if c.ClientSecret != "" {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: c.RedirectURL, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: cfg.AuthorizationEndpoint, TokenURL: cfg.TokenEndpoint, AuthStyle: style},
	}
}

// Begin starts an authorization against the FHIR server iss: an EHR launch
// when launchID is set (the launch parameter the EHR sent), a standalone
// launch otherwise. It stores the per-launch state through States and
// returns the URL to send the user to. The request carries PKCE S256, aud =
// iss, state, and a nonce when openid is requested.
func (c *Config) Begin(w http.ResponseWriter, r *http.Request, iss, launchID string) (string, error) {
	c.init()
	cfg, err := c.Discover(r.Context(), iss)
	if err != nil {
		return "", err
	}
	scopeList := slices.Clone(c.Scopes)
	if launchID != "" {
		if !cfg.Has("launch-ehr") && len(cfg.Capabilities) > 0 {
			return "", fmt.Errorf("%w: the server does not support the EHR launch", ErrDiscovery)
		}
		if !slices.Contains(scopeList, "launch") {
			scopeList = append(scopeList, "launch")
		}
	} else {
		scopeList = slices.DeleteFunc(scopeList, func(s string) bool { return s == "launch" })
	}
	a := Authorization{
		FHIRBase: strings.TrimSuffix(iss, "/"), Issuer: cfg.Issuer, RequireIss: cfg.AuthorizationResponseIssParameterSupported,
		Verifier: oauth2.GenerateVerifier(), Launch: launchID != "", Scopes: scopeList, RedirectURL: c.RedirectURL,
		Expires: c.now().Add(10 * time.Minute),
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(a.Verifier), oauth2.SetAuthURLParam("aud", a.FHIRBase)}
	if launchID != "" {
		opts = append(opts, oauth2.SetAuthURLParam("launch", launchID))
	}
	if slices.Contains(scopeList, "openid") {
		a.Nonce = randid.New()
		opts = append(opts, oauth2.SetAuthURLParam("nonce", a.Nonce))
	}
	state := randid.New()
	if err := c.states.Save(w, r, state, a); err != nil {
		return "", err
	}
	return c.OAuth2(cfg, scopeList).AuthCodeURL(state, opts...), nil
}

// HandleLaunch is an http.Handler for the app's launch URL: it reads iss and
// launch (EHR launch) or iss alone (standalone, when the app links to itself
// with ?iss=), and redirects the browser to the authorization server.
func (c *Config) HandleLaunch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target, err := c.Begin(w, r, q.Get("iss"), q.Get("launch"))
	if err != nil {
		c.logger().WarnContext(r.Context(), "smart client: launch refused", "err", err)
		status := http.StatusBadGateway
		if errors.Is(err, ErrIssuer) {
			status = http.StatusBadRequest
		}
		http.Error(w, "this app cannot be launched from there", status)
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// Callback completes an authorization at the app's redirect URL: it checks
// state (once only), iss (RFC 9207), exchanges the code with the PKCE
// verifier, verifies the id_token (signature by the server's JWKS, iss, aud,
// exp, nonce), and returns the Session. The caller should then redirect to a
// URL without the code (SECURITY-BASELINE §11).
func (c *Config) Callback(w http.ResponseWriter, r *http.Request) (*Session, error) {
	c.init()
	ctx := r.Context()
	q := r.URL.Query()
	a, err := c.states.Load(w, r, q.Get("state"))
	if err != nil {
		return nil, err
	}
	if !c.now().Before(a.Expires) {
		return nil, ErrState
	}
	switch iss := q.Get("iss"); {
	case iss != "" && iss != a.Issuer:
		return nil, fmt.Errorf("%w: got %q, sent the user to %q", ErrMixUp, iss, a.Issuer)
	case iss == "" && a.RequireIss:
		return nil, fmt.Errorf("%w: the response lacks iss", ErrMixUp)
	}
	if e := q.Get("error"); e != "" {
		return nil, &AuthError{Code: e, Description: q.Get("error_description")}
	}
	code := q.Get("code")
	if code == "" {
		return nil, ErrNoCode
	}
	cfg, err := c.Discover(ctx, a.FHIRBase)
	if err != nil {
		return nil, err
	}
	oc := c.OAuth2(cfg, a.Scopes)
	ctx = context.WithValue(ctx, oauth2.HTTPClient, noRedirects(c.httpClient()))
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(a.Verifier))
	if err != nil {
		return nil, err
	}
	return c.session(ctx, cfg, oc, a, tok)
}

// session builds the Session of a token response.
func (c *Config) session(ctx context.Context, cfg *Configuration, oc *oauth2.Config, a Authorization, tok *oauth2.Token) (*Session, error) {
	s := &Session{FHIRBase: a.FHIRBase, Token: tok, config: oc, client: c}
	requested, _ := scopes.ParseLenient(strings.Join(a.Scopes, " "))
	s.Requested = requested
	if granted, ok := tok.Extra("scope").(string); ok {
		// Lenient: an EHR may answer v1 scopes to a v2 request, or add its own.
		s.Granted, _ = scopes.ParseLenient(granted)
	} else {
		s.Granted = requested // RFC 6749 §5.1: omitted means as requested
	}
	s.Context = contextOf(tok)
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		claims, err := c.verifyIDToken(ctx, cfg, raw, a.Nonce)
		if err != nil {
			return nil, err
		}
		s.IDToken = claims
		s.FHIRUser = claims.FHIRUser
	} else if slices.Contains(a.Scopes, "openid") && s.Granted.Has("openid") {
		return nil, fmt.Errorf("%w: openid was granted but no id_token came", ErrIDToken)
	}
	s.Missing = missingContext(s.Requested, s.Granted, s.Context, a.Launch)
	return s, nil
}

// contextOf reads the launch context from a token response.
func contextOf(tok *oauth2.Token) launch.Context {
	str := func(k string) string { v, _ := tok.Extra(k).(string); return v }
	ctx := launch.Context{Patient: str("patient"), Encounter: str("encounter"), Intent: str("intent"),
		StyleURL: str("smart_style_url"), Tenant: str("tenant")}
	if b, ok := tok.Extra("need_patient_banner").(bool); ok {
		ctx.NeedPatientBanner = &b
	}
	if items, ok := tok.Extra("fhirContext").([]any); ok {
		for _, it := range items {
			switch v := it.(type) {
			case string: // SAL 2.0 form: a relative reference
				ctx.FHIRContext = append(ctx.FHIRContext, launch.ContextItem{Reference: v})
			case map[string]any:
				ci := launch.ContextItem{}
				ci.Reference, _ = v["reference"].(string)
				ci.Canonical, _ = v["canonical"].(string)
				ci.Type, _ = v["type"].(string)
				ci.Role, _ = v["role"].(string)
				if id, ok := v["identifier"].(map[string]any); ok {
					ci.Identifier = &launch.Identifier{}
					ci.Identifier.System, _ = id["system"].(string)
					ci.Identifier.Value, _ = id["value"].(string)
				}
				if ci.Valid() {
					ctx.FHIRContext = append(ctx.FHIRContext, ci)
				}
			}
		}
	}
	return ctx
}

// missingContext lists the context the app asked for and did not get, so
// it can degrade gracefully and say why.
func missingContext(requested, granted scopes.Set, ctx launch.Context, ehr bool) []string {
	var out []string
	wantPatient := requested.Has("launch/patient") || requested.HasContext(scopes.Patient) ||
		ehr && requested.Has("launch") && granted.HasContext(scopes.Patient)
	if wantPatient && ctx.Patient == "" {
		out = append(out, "patient")
	}
	if requested.Has("launch/encounter") && ctx.Encounter == "" {
		out = append(out, "encounter")
	}
	if requested.Has("fhirUser") && granted.Has("openid") && !granted.Has("fhirUser") {
		out = append(out, "fhirUser")
	}
	return out
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
