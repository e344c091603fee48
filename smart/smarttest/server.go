package smarttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/fhirproxy"
	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
	"github.com/smartkit/smartkit/smart"
)

// Config sets up a fake EHR. The zero value works: Dr Smart, a clinician,
// signed in, patient "smart-1" in context, every scope a client registered
// granted.
type Config struct {
	// User is who is signed in; zero means Practitioner "dr-smart".
	User smart.User
	// Patient in context for launches; "" means "smart-1". Standalone
	// launches get it without a picker.
	Patient string
	// Encounter in context for EHR launches; "" means none.
	Encounter string
	// Scopes, when set, caps what is granted (the user "approves" only these).
	Scopes string
	// Clearance is what granted and minted tokens may see of labelled data
	// (smart-1's HIV test is labelled R and HIV); nil means normal data
	// only, as a production EHR's default consent policy gives.
	Clearance *consent.Clearance
	Quirks    Quirks
}

// Quirks make the fake EHR behave like real ones do.
type Quirks struct {
	AbsoluteFHIRUser bool          // fhirUser as an absolute URL
	TrimScopes       []string      // scopes silently not granted
	V1Scopes         bool          // answer v1 scopes (patient/X.read) to v2 requests
	NoPatient        bool          // establish no patient context
	TokenDelay       time.Duration // the token endpoint answers this late
	TokenFailure     int           // the token endpoint answers this HTTP status (e.g. 503)
}

// Server is a running fake EHR.
type Server struct {
	URL      string // root of the test server
	Issuer   string // the authorization server's issuer
	FHIRBase string // the FHIR base URL: the iss apps launch against
	// Auth is the real authorization server. Like a production one it
	// throttles failed client authentications and grants (Auth.Throttle):
	// after 20 a minute naming one client, the token endpoint answers 429.
	// A test that drives more failures sets Auth.Throttle.Disabled.
	Auth     *smart.Server
	Store    *smart.MemoryStore
	Audit    *audit.Memory
	Launches *launch.Service
	// Proxy is the real policy enforcement point in front of the fake
	// FHIR data: what a production smartkit EHR refuses, confines and
	// withholds, it does too. Its audit goes to Audit.
	Proxy *fhirproxy.Proxy

	cfg     Config
	ts      *httptest.Server
	clients *smart.MemoryClients
}

// TB is the part of testing.TB NewServer uses; *testing.T and *testing.B
// satisfy it, and so can a small value in an Example.
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

var _ TB = testing.TB(nil)

// NewServer starts a fake EHR; t.Cleanup stops it.
func NewServer(t TB, cfg Config) *Server {
	t.Helper()
	if cfg.User.ID == "" {
		cfg.User = smart.User{ID: "dr-smart", FHIRUser: "Practitioner/dr-smart", Name: "Dr Smart"}
	}
	if cfg.Patient == "" {
		cfg.Patient = "smart-1"
	}
	keys, err := smart.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := smart.NewKeySet(keys)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: cfg, clients: &smart.MemoryClients{}, Store: &smart.MemoryStore{}, Audit: &audit.Memory{}}
	mux := http.NewServeMux()
	s.ts = httptest.NewServer(mux)
	t.Cleanup(s.ts.Close)
	s.URL = s.ts.URL
	s.Issuer = s.URL + "/auth"
	s.FHIRBase = s.URL + "/fhir"
	s.Launches = &launch.Service{Store: &launch.Memory{}, Audit: s.Audit}
	s.Auth = &smart.Server{
		BaseURL: s.Issuer, Tenants: []smart.Tenant{{FHIRBases: []string{s.FHIRBase}}},
		Clients: s.clients, Store: s.Store, Keys: ks, Launches: s.Launches, Audit: s.Audit,
		Authenticator: smart.AuthenticatorFunc(s.authenticate), Consent: autoApprove{s},
	}
	mux.Handle("/auth/token", s.quirkyToken(http.StripPrefix("/auth", s.Auth)))
	mux.Handle("/auth/", http.StripPrefix("/auth", s.Auth))
	mux.Handle("/fhir/.well-known/smart-configuration", s.Auth.SMARTConfigurationHandler(""))
	v, err := s.Auth.Verifier("", s.FHIRBase)
	if err != nil {
		t.Fatal(err)
	}
	up, _ := url.Parse("http://smarttest-data.invalid")
	s.Proxy = &fhirproxy.Proxy{Upstream: up, Transport: inMemory{data{}}, Verifier: v, Audit: s.Audit, Base: s.FHIRBase,
		SMARTConfigURL: s.FHIRBase + "/.well-known/smart-configuration", TokenURL: s.Issuer + "/token"}
	mux.Handle("/fhir/", http.StripPrefix("/fhir", s.Proxy))
	return s
}

// Client returns an HTTP client for the fake EHR (plain HTTP on loopback).
func (s *Server) Client() *http.Client { return s.ts.Client() }

// authenticate signs in Config.User; the user's patient is the configured
// patient, so standalone launches need no picker.
func (s *Server) authenticate(_ http.ResponseWriter, _ *http.Request) (smart.User, bool) {
	u := s.cfg.User
	if s.cfg.Quirks.AbsoluteFHIRUser && u.FHIRUser != "" && !strings.Contains(u.FHIRUser, "://") {
		u.FHIRUser = s.FHIRBase + "/" + u.FHIRUser
	}
	if !s.cfg.Quirks.NoPatient {
		u.PatientID = s.cfg.Patient
	}
	return u, true
}

// autoApprove grants what the client may have, capped by Config.Scopes,
// minus Quirks.TrimScopes, without asking.
type autoApprove struct{ s *Server }

func (a autoApprove) Decide(_ context.Context, r smart.ConsentRequest) (smart.ConsentDecision, error) {
	g := r.Allowed
	if a.s.cfg.Scopes != "" {
		cap, err := scopes.ParseSet(a.s.cfg.Scopes + " launch launch/patient launch/encounter openid fhirUser profile offline_access online_access")
		if err != nil {
			return smart.ConsentDecision{}, err
		}
		g = g.Intersect(cap)
	}
	trim := a.s.cfg.Quirks.TrimScopes
	g = g.Filter(func(sc scopes.Scope) bool {
		for _, t := range trim {
			if sc.String() == t {
				return false
			}
		}
		return true
	})
	return smart.ConsentDecision{Grantable: g, Clearance: a.s.cfg.Clearance}, nil
}

// quirkyToken delays, fails, or rewrites token responses as Quirks say.
func (s *Server) quirkyToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := s.cfg.Quirks
		if q.TokenDelay > 0 {
			select {
			case <-time.After(q.TokenDelay):
			case <-r.Context().Done():
				return
			}
		}
		if q.TokenFailure != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(q.TokenFailure)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"smarttest: configured failure"}`))
			return
		}
		if !q.V1Scopes {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &body) == nil {
			if sc, ok := body["scope"].(string); ok {
				set, _ := scopes.ParseLenient(sc)
				body["scope"] = set.V1().String()
			}
			b, _ := json.Marshal(body)
			rec.Body = bytes.NewBuffer(b)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// PublicClient returns the registration of a public app (PKCE, no secret)
// that may be granted the usual patient and user scopes.
func PublicClient(id, redirectURL string) smart.Client {
	return smart.Client{ID: id, Name: id, TokenEndpointAuthMethod: smart.AuthNone, RedirectURIs: []string{redirectURL},
		Scope: "launch launch/patient launch/encounter openid fhirUser offline_access online_access patient/*.cruds user/*.cruds"}
}

// Register adds a client to the fake EHR.
func (s *Server) Register(c smart.Client) error { return s.clients.Add("", c) }

// LaunchURL mints an EHR launch of the client for the configured user,
// patient and encounter, and returns the app's launch URL with iss and launch.
func (s *Server) LaunchURL(clientID, appLaunchURL string) (string, error) {
	ctx := launch.Context{Encounter: s.cfg.Encounter}
	if !s.cfg.Quirks.NoPatient {
		ctx.Patient = s.cfg.Patient
	}
	l, err := s.Launches.Mint(context.Background(), launch.Request{ClientID: clientID, UserID: s.cfg.User.ID,
		FHIRBase: s.FHIRBase, Context: ctx})
	if err != nil {
		return "", err
	}
	return l.AppURL(appLaunchURL)
}

// Authorize plays the user's browser for an authorization URL the app
// produced: it follows the server's redirects with the configured user
// signed in and approving, and returns the URL the server finally redirects
// to (the app's callback, with code or error, state and iss).
func (s *Server) Authorize(authURL string) (string, error) {
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	target := authURL
	for range 5 {
		resp, err := hc.Get(target)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound || loc == "" {
			return "", fmt.Errorf("smarttest: authorization stopped with status %d at %s", resp.StatusCode, target)
		}
		if !strings.HasPrefix(loc, s.Issuer) {
			return loc, nil
		}
		target = loc
	}
	return "", errors.New("smarttest: too many redirects")
}

// MintToken signs an access token for resource-server tests: the given
// scopes and context, for the configured user (or, with only system/
// scopes, for a backend client), valid for an hour.
func (s *Server) MintToken(clientID, scope string, ctx launch.Context) (string, error) {
	set, err := scopes.ParseSet(scope)
	if err != nil {
		return "", err
	}
	g := smart.Grant{ClientID: clientID, Scope: set.String(), Audience: s.FHIRBase, Context: ctx, Clearance: s.cfg.Clearance}
	if !set.HasContext(scopes.System) {
		g.UserID, g.FHIRUser = s.cfg.User.ID, s.cfg.User.FHIRUser
	}
	return s.Auth.Mint(context.Background(), "", g, time.Hour)
}

// JWKS returns the fake EHR's published keys, to verify minted tokens.
func (s *Server) JWKS() []byte { return s.Auth.Keys.JWKS() }

// URLValues parses the query of a callback URL.
func URLValues(callback string) url.Values {
	u, err := url.Parse(callback)
	if err != nil {
		return nil
	}
	return u.Query()
}
