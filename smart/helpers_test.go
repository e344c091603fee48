package smart_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/scopes"
	"github.com/smartkit/smartkit/smart"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func newTLSJWKS(t *testing.T, fetches *atomic.Int32, keys ...jose.JSONWebKey) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func clientWithJWKSURI(id, uri string) smart.Client {
	return smart.Client{ID: id, TokenEndpointAuthMethod: smart.AuthPrivateKeyJWT, JWKSURI: uri,
		GrantTypes: []string{smart.GrantClientCredentials}, Scope: "system/*.rs"}
}

func base64Decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func parseScopes(s string) (scopes.Set, error) { return scopes.ParseLenient(s) }
