package client

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/smartkit/smartkit/launch"
	"github.com/smartkit/smartkit/scopes"
	"golang.org/x/oauth2"
)

// A Session is an authorised launch: the token, what was asked and granted,
// and the launch context. Keep it server-side (never in localStorage).
type Session struct {
	FHIRBase  string // the FHIR server (iss) the token is for
	Token     *oauth2.Token
	Requested scopes.Set
	Granted   scopes.Set
	Context   launch.Context
	FHIRUser  string   // from the id_token, absolute or relative as sent; see FHIRUserRef
	IDToken   *IDToken // nil without openid
	// Missing names context the app asked for and did not get ("patient",
	// "encounter", "fhirUser"), so it can degrade gracefully and say why.
	Missing []string

	config *oauth2.Config
	client *Config
	mu     sync.Mutex
	src    *refresher
}

// LogValue keeps tokens out of logs.
func (s *Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("fhir_base", s.FHIRBase), slog.String("scope", s.Granted.String()),
		slog.String("patient", s.Context.Patient))
}

// Denied returns the requested scopes the server did not grant (it may
// trim, narrow or replace scopes; SAL 2.2 lets it).
func (s *Session) Denied() scopes.Set {
	return s.Requested.Filter(func(sc scopes.Scope) bool { return !s.Granted.Covers(sc) && !s.Granted.Covers(sc.V2()) })
}

// FHIRUserRef returns fhirUser as a relative reference ("Practitioner/9"),
// whether the server sent it absolute (under the FHIR base) or relative.
// It returns "" for a reference to another server.
func (s *Session) FHIRUserRef() string {
	u := s.FHIRUser
	if rest, ok := strings.CutPrefix(u, strings.TrimSuffix(s.FHIRBase, "/")+"/"); ok {
		return rest
	}
	if strings.Contains(u, "://") {
		return ""
	}
	return u
}

// TokenSource returns a source that refreshes the token shortly before it
// expires, keeping the rotated refresh token (x/oauth2 does).
func (s *Session) TokenSource(ctx context.Context) oauth2.TokenSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src == nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, noRedirects(s.client.httpClient()))
		s.src = &refresher{session: s, ctx: ctx}
	}
	return s.src
}

// refresher refreshes a session's token 30 s before it expires, or at once
// when forced after a 401.
type refresher struct {
	session *Session
	ctx     context.Context
	mu      sync.Mutex
}

const refreshEarly = 30 * time.Second

func (r *refresher) Token() (*oauth2.Token, error) { return r.token(false) }

func (r *refresher) token(force bool) (*oauth2.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.session
	s.mu.Lock()
	tok := s.Token
	s.mu.Unlock()
	if !force && tok.AccessToken != "" && (tok.Expiry.IsZero() || s.client.now().Add(refreshEarly).Before(tok.Expiry)) {
		return tok, nil
	}
	if tok.RefreshToken == "" {
		return nil, errors.New("client: the token expired and there is no refresh token")
	}
	stale := *tok
	stale.Expiry = time.Unix(1, 0) // make x/oauth2 refresh
	next, err := s.config.TokenSource(r.ctx, &stale).Token()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.Token = next
	s.mu.Unlock()
	return next, nil
}

// Client returns an http.Client for the FHIR API: it sends the token in the
// Authorization header (never elsewhere), and only with requests for the
// FHIR base the token is for (forTheBase); it refreshes the token before
// expiry, and on a 401 from the FHIR server refreshes once and retries a
// request whose body can be replayed. A request for another server (an
// attachment's URL, a redirect the FHIR server answered with) goes as it
// is, without the token.
func (s *Session) Client(ctx context.Context) *http.Client {
	src := s.TokenSource(ctx).(*refresher)
	base := s.client.httpClient()
	return &http.Client{Timeout: base.Timeout, Transport: newBearer(s.FHIRBase, src.token, true, base.Transport)}
}
