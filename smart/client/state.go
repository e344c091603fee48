package client

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// An Authorization is what an app remembers between sending the user to the
// authorization server and the callback: one per launch, keyed by state.
type Authorization struct {
	FHIRBase    string   // the iss the app launched against (and sent as aud)
	Issuer      string   // the authorization server's issuer, for RFC 9207
	RequireIss  bool     // the server promised iss in its responses
	Verifier    string   // PKCE code_verifier
	Nonce       string   // OpenID Connect nonce, "" without openid
	Launch      bool     // an EHR launch (vs standalone)
	Scopes      []string // requested
	RedirectURL string
	Expires     time.Time
}

// ErrState is returned by a StateStore when the state is unknown, expired
// or already used: a forged or replayed callback.
var ErrState = errors.New("client: unknown or used state")

// StateStore keeps Authorizations. Load consumes: a state works once.
// Several authorizations may be in flight for one browser at once.
type StateStore interface {
	Save(w http.ResponseWriter, r *http.Request, state string, a Authorization) error
	Load(w http.ResponseWriter, r *http.Request, state string) (Authorization, error)
}

// CookieStore keeps each Authorization in its own cookie, sealed with
// AES-256-GCM under Key and bound to its state, so apps need no server-side
// session. Cookies are HttpOnly, SameSite=Lax (the callback is a top-level
// navigation), Secure unless Insecure is set (for http://127.0.0.1 in
// development), scoped to Path, and live at most TTL.
type CookieStore struct {
	Key      []byte        // 32 bytes; keep it secret and stable across restarts
	Path     string        // "" means "/"
	TTL      time.Duration // 0 means 10 minutes
	Insecure bool
}

// NewCookieStore returns a CookieStore with a fresh random key, for a single
// process (authorizations in flight do not survive a restart).
func NewCookieStore() *CookieStore {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return &CookieStore{Key: k}
}

func (c *CookieStore) name(state string) string {
	sum := sha256.Sum256([]byte(state))
	prefix := "__Host-smart_"
	if c.Insecure || c.Path != "" && c.Path != "/" {
		prefix = "smart_" // __Host- requires Secure and Path=/
	}
	return prefix + base64.RawURLEncoding.EncodeToString(sum[:9])
}

func (c *CookieStore) aead() (cipher.AEAD, error) {
	if len(c.Key) != 32 {
		return nil, errors.New("client: CookieStore needs a 32-byte key")
	}
	block, err := aes.NewCipher(c.Key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (c *CookieStore) ttl() time.Duration {
	if c.TTL > 0 {
		return c.TTL
	}
	return 10 * time.Minute
}

func (c *CookieStore) path() string {
	if c.Path != "" {
		return c.Path
	}
	return "/"
}

// Save seals a into a cookie named after state.
func (c *CookieStore) Save(w http.ResponseWriter, _ *http.Request, state string, a Authorization) error {
	aead, err := c.aead()
	if err != nil {
		return err
	}
	plain, err := json.Marshal(a)
	if err != nil {
		return err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, plain, []byte(state))
	http.SetCookie(w, &http.Cookie{
		Name: c.name(state), Value: base64.RawURLEncoding.EncodeToString(sealed), Path: c.path(),
		MaxAge: int(c.ttl() / time.Second), HttpOnly: true, Secure: !c.Insecure, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// Load opens and clears the cookie of state.
func (c *CookieStore) Load(w http.ResponseWriter, r *http.Request, state string) (Authorization, error) {
	var a Authorization
	name := c.name(state)
	ck, err := r.Cookie(name)
	if err != nil {
		return a, ErrState
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: c.path(), MaxAge: -1, HttpOnly: true,
		Secure: !c.Insecure, SameSite: http.SameSiteLaxMode})
	aead, err := c.aead()
	if err != nil {
		return a, err
	}
	sealed, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(sealed) < aead.NonceSize() {
		return a, ErrState
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(state))
	if err != nil || json.Unmarshal(plain, &a) != nil {
		return a, ErrState
	}
	return a, nil
}

// MemoryStates keeps Authorizations on the server, for apps that already
// have server-side sessions or several instances behind sticky routing. The
// zero value is ready to use.
type MemoryStates struct {
	mu sync.Mutex
	m  map[string]Authorization
}

// Save stores a under state.
func (m *MemoryStates) Save(_ http.ResponseWriter, _ *http.Request, state string, a Authorization) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]Authorization{}
	}
	now := time.Now()
	for k, v := range m.m { // bounded by the flow's lifetime
		if now.After(v.Expires) {
			delete(m.m, k)
		}
	}
	m.m[state] = a
	return nil
}

// Load removes and returns the Authorization of state.
func (m *MemoryStates) Load(_ http.ResponseWriter, _ *http.Request, state string) (Authorization, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.m[state]
	delete(m.m, state)
	if !ok {
		return a, ErrState
	}
	return a, nil
}
