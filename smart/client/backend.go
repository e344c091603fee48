package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/internal/josekit"
	"github.com/smartkit/smartkit/internal/randid"
	"golang.org/x/oauth2"
)

// Backend is a SMART Backend Services client: client_credentials with a
// private_key_jwt assertion. It caches its token until shortly before it
// expires. Safe for concurrent use; do not change fields after first use.
type Backend struct {
	ClientID string
	// TokenURL is the token endpoint; "" means discover it from FHIRBase.
	TokenURL string
	FHIRBase string
	Key      crypto.Signer // the registered key (RSA or P-384), in memory or in an HSM
	KeyID    string        // its kid in the registered JWKS
	// Algorithm is RS384 or ES384 (SMART's two); "" picks from the key.
	Algorithm  string
	Scopes     []string
	HTTPClient *http.Client     // nil means a client with a 10 s timeout
	Now        func() time.Time // nil means time.Now

	mu       sync.Mutex
	tok      *oauth2.Token
	fetching chan struct{} // closed when the token request in flight ends
	signer   jose.Signer
}

// AssertionLifetime is how long a client assertion is valid (SMART: at most 5 minutes).
const AssertionLifetime = 4 * time.Minute

func (b *Backend) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Backend) httpClient() *http.Client {
	if b.HTTPClient != nil {
		return b.HTTPClient
	}
	return defaultHTTPClient()
}

func (b *Backend) alg() (string, error) {
	if b.Algorithm != "" {
		return b.Algorithm, nil
	}
	switch k := b.Key.Public().(type) {
	case *rsa.PublicKey:
		return "RS384", nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			return "ES384", nil
		}
	}
	return "", errors.New("client: backend key must be RSA or P-384 (or set Algorithm)")
}

// Assertion returns a fresh signed client assertion for the token URL:
// iss = sub = ClientID, aud = token URL, exp 4 minutes ahead, a unique jti, kid.
func (b *Backend) Assertion(tokenURL string) (string, error) {
	b.mu.Lock()
	if b.signer == nil {
		alg, err := b.alg()
		if err != nil {
			b.mu.Unlock()
			return "", err
		}
		if b.signer, err = josekit.NewSigner(b.Key, b.KeyID, alg, "JWT"); err != nil {
			b.mu.Unlock()
			return "", err
		}
	}
	signer := b.signer
	b.mu.Unlock()
	now := b.now()
	return josekit.SignJSON(signer, map[string]any{
		"iss": b.ClientID, "sub": b.ClientID, "aud": tokenURL, "jti": randid.New(),
		"iat": now.Unix(), "exp": now.Add(AssertionLifetime).Unix(),
	})
}

// Token returns a cached token, or fetches a new one when the cached one
// expires within 30 seconds. Callers that find no fresh token while one is being fetched wait for
// that one rather than each posting an assertion of their own (a job's
// workers starting at once would otherwise ask for as many tokens).
func (b *Backend) Token(ctx context.Context) (*oauth2.Token, error) {
	for {
		b.mu.Lock()
		if t := b.tok; t != nil && b.now().Add(refreshEarly).Before(t.Expiry) {
			b.mu.Unlock()
			return t, nil
		}
		if wait := b.fetching; wait != nil {
			b.mu.Unlock()
			select {
			case <-wait:
				continue // fetched, or failed: look again
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		b.fetching = done
		b.mu.Unlock()
		tok, err := b.fetch(ctx)
		b.mu.Lock()
		b.fetching = nil
		if err == nil {
			b.tok = tok
		}
		b.mu.Unlock()
		close(done)
		return tok, err
	}
}

// fetch asks the token endpoint for a new token.
func (b *Backend) fetch(ctx context.Context) (*oauth2.Token, error) {
	tokenURL := b.TokenURL
	if tokenURL == "" {
		cfg, err := Discover(ctx, b.httpClient(), b.FHIRBase)
		if err != nil {
			return nil, err
		}
		tokenURL = cfg.TokenEndpoint
	}
	assertion, err := b.Assertion(tokenURL)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(b.Scopes, " ")},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return doTokenRequest(noRedirects(b.httpClient()), req, b.now())
}

// TokenSource adapts the Backend to oauth2.TokenSource, bound to ctx.
func (b *Backend) TokenSource(ctx context.Context) oauth2.TokenSource { return backendSource{b, ctx} }

type backendSource struct {
	b   *Backend
	ctx context.Context
}

func (s backendSource) Token() (*oauth2.Token, error) { return s.b.Token(s.ctx) }

// Client returns an http.Client that sends the backend token with the
// requests for FHIRBase, and with no others (see Session.Client): a
// request for another server goes without it.
func (b *Backend) Client(ctx context.Context) *http.Client {
	token := func(bool) (*oauth2.Token, error) { return b.Token(ctx) }
	return &http.Client{Timeout: b.httpClient().Timeout, Transport: newBearer(b.FHIRBase, token, false, b.httpClient().Transport)}
}

// doTokenRequest posts a token request and reads an RFC 6749 §5.1 response.
func doTokenRequest(hc *http.Client, req *http.Request, now time.Time) (*oauth2.Token, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := decodeJSON(resp.Body, &body); err != nil {
		return nil, fmt.Errorf("client: token response (%d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || body.Error != "" {
		return nil, &oauth2.RetrieveError{Response: resp, ErrorCode: body.Error, ErrorDescription: body.Description}
	}
	if body.AccessToken == "" || !strings.EqualFold(body.TokenType, "bearer") {
		return nil, errors.New("client: token response without a bearer access token")
	}
	tok := &oauth2.Token{AccessToken: body.AccessToken, TokenType: "Bearer"}
	if body.ExpiresIn > 0 {
		tok.Expiry = now.Add(time.Duration(body.ExpiresIn) * time.Second)
		tok.ExpiresIn = body.ExpiresIn
	}
	return tok.WithExtra(map[string]any{"scope": body.Scope}), nil
}
