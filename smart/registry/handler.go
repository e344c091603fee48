package registry

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
	"github.com/smartkit/smartkit/internal/randid"
	"github.com/smartkit/smartkit/smart"
)

// Registration serves RFC 7591 dynamic registration (POST /register) and
// RFC 7592 management (GET, PUT, DELETE /register/{client_id}, authorised by
// the registration access token) for one environment. Registration is open
// only when Open is set (a sandbox); otherwise callers need an initial
// access token that InitialAccessToken accepts. Apps land in draft, or
// sandbox-approved when AutoApprove is set in the sandbox.
type Registration struct {
	Registry    *Registry
	Tenant      string
	Environment Environment
	// BaseURL is where the handler is mounted; registration_client_uri is
	// BaseURL + "/register/" + client_id.
	BaseURL            string
	Open               bool
	InitialAccessToken func(token string) bool
	AutoApprove        bool
}

// registrationResponse is RFC 7591 §3.2.1 plus RFC 7592 §3.
type registrationResponse struct {
	Metadata
	ClientID                string `json:"client_id"`
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri"`
	AppID                   string `json:"app_id"`
	LifecycleState          State  `json:"lifecycle_state"`
}

// ServeHTTP routes /register and /register/{client_id}.
func (h *Registration) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/register" && r.Method == http.MethodPost:
		h.register(w, r)
	case strings.HasPrefix(path, "/register/"):
		h.manage(w, r, strings.TrimPrefix(path, "/register/"))
	default:
		http.NotFound(w, r)
	}
}

func regError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func writeErr(w http.ResponseWriter, err error) {
	var ve *ValidationError
	var te *TransitionError
	switch {
	case errors.As(err, &ve):
		regError(w, http.StatusBadRequest, ve.Code(), ve.Error())
	case errors.As(err, &te):
		regError(w, http.StatusBadRequest, "invalid_client_metadata", te.Error())
	default:
		regError(w, http.StatusInternalServerError, "server_error", "try again later")
	}
}

func readMetadata(w http.ResponseWriter, r *http.Request) (Metadata, bool) {
	var m Metadata
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil || jsonstrict.Check(b) != nil {
		regError(w, http.StatusBadRequest, "invalid_client_metadata", "the body must be one strict JSON object")
		return m, false
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&m); err != nil {
		regError(w, http.StatusBadRequest, "invalid_client_metadata", "unreadable client metadata")
		return m, false
	}
	return m, true
}

func hashRAT(tok string) string {
	sum := sha256.Sum256([]byte("smartkit registration\x00" + tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (h *Registration) register(w http.ResponseWriter, r *http.Request) {
	if !h.Open {
		tok, ok := smart.BearerToken(r)
		if !ok || h.InitialAccessToken == nil || !h.InitialAccessToken(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			regError(w, http.StatusUnauthorized, "invalid_token", "an initial access token is required")
			return
		}
	}
	m, ok := readMetadata(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	in := NewApp{Owner: Owner{Name: m.ClientName}, Category: "unclassified", RiskTier: Moderate, Metadata: m}
	if h.AutoApprove && h.Environment == Sandbox {
		in.Sandbox = &SandboxApproval{By: "sandbox", Reason: "open sandbox registration"}
	}
	rat := randid.New()
	app, creds, err := h.Registry.create(ctx, h.Tenant, in, "dynamic-registration", func(a *App) {
		a.Environments[h.Environment].RegistrationTokenHash = hashRAT(rat)
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	resp := h.response(app)
	resp.RegistrationAccessToken = rat
	if h.Environment == Sandbox {
		resp.ClientSecret = creds.SandboxSecret
	} else {
		resp.ClientSecret = creds.ProductionSecret
	}
	if resp.ClientSecret != "" {
		never := int64(0)
		resp.ClientSecretExpiresAt = &never
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(resp)
}

func (h *Registration) response(a *App) registrationResponse {
	id := a.ClientID(h.Environment)
	return registrationResponse{Metadata: a.Current.Metadata, ClientID: id, ClientIDIssuedAt: a.Created.Unix(),
		RegistrationClientURI: h.BaseURL + "/register/" + id, AppID: a.ID, LifecycleState: a.State}
}

// manage serves RFC 7592 for the holder of the registration access token.
func (h *Registration) manage(w http.ResponseWriter, r *http.Request, clientID string) {
	ctx := r.Context()
	tok, ok := smart.BearerToken(r)
	app, err := h.Registry.Store.ByClientID(ctx, h.Tenant, clientID)
	var c *Credential
	if err == nil {
		c = app.Environments[h.Environment]
	}
	// Unknown client and wrong token look the same (RFC 7592 §2).
	if !ok || c == nil || c.ClientID != clientID || c.RegistrationTokenHash == "" ||
		subtle.ConstantTimeCompare([]byte(c.RegistrationTokenHash), []byte(hashRAT(tok))) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		regError(w, http.StatusUnauthorized, "invalid_token", "unknown client or registration access token")
		return
	}
	switch r.Method {
	case http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.response(&app))
	case http.MethodPut:
		m, ok := readMetadata(w, r)
		if !ok {
			return
		}
		updated, err := h.Registry.Update(ctx, h.Tenant, app.ID, m, "dynamic-registration")
		if err != nil {
			writeErr(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.response(updated))
	case http.MethodDelete:
		if _, err := h.Registry.Transition(ctx, h.Tenant, app.ID, Retired, "dynamic-registration", "deleted by its owner (RFC 7592)"); err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
