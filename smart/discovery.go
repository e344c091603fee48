package smart

import (
	"net/http"
)

// Capabilities returns the SMART capabilities the tenant really supports
// (SAL 2.2 Conformance › Capabilities).
func (s *Server) capabilities(t *Tenant) []string {
	caps := []string{
		"launch-standalone", "authorize-post",
		"client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
		"context-standalone-patient",
		"permission-offline", "permission-patient", "permission-user", "permission-v1", "permission-v2",
	}
	if s.Launches != nil {
		caps = append(caps, "launch-ehr", "context-banner", "context-style", "context-ehr-patient", "context-ehr-encounter")
	}
	if s.oidc(t) {
		caps = append(caps, "sso-openid-connect")
	}
	return caps
}

// SMARTConfiguration returns the discovery document of a tenant, to serve at
// {fhirBase}/.well-known/smart-configuration as well as under the Server.
func (s *Server) SMARTConfiguration(tenant string) (map[string]any, bool) {
	if s.init() != nil {
		return nil, false
	}
	t, ok := s.tenants[tenant]
	if !ok {
		return nil, false
	}
	iss := s.Issuer(t.ID)
	doc := map[string]any{
		"issuer":                           iss,
		"authorization_endpoint":           iss + "/authorize",
		"token_endpoint":                   iss + "/token",
		"introspection_endpoint":           iss + "/introspect",
		"revocation_endpoint":              iss + "/revoke",
		"jwks_uri":                         iss + "/jwks",
		"grant_types_supported":            []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials},
		"response_types_supported":         []string{"code"},
		"response_modes_supported":         []string{"query"},
		"code_challenge_methods_supported": []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{
			AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT,
		},
		"token_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"scopes_supported": []string{
			"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
			"offline_access", "online_access",
			"patient/*.cruds", "user/*.cruds", "system/*.cruds", "patient/*.rs", "user/*.rs", "system/*.rs",
		},
		"capabilities": s.capabilities(t),
		"authorization_response_iss_parameter_supported": true,
	}
	if s.ManagementURL != "" {
		doc["management_endpoint"] = s.ManagementURL
	}
	if s.RegistrationURL != "" {
		doc["registration_endpoint"] = s.RegistrationURL
	}
	return doc, true
}

// SMARTConfigurationHandler serves the tenant's discovery document, for
// mounting at the FHIR base (SAL requires it at
// {fhirBase}/.well-known/smart-configuration).
func (s *Server) SMARTConfigurationHandler(tenant string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := s.SMARTConfiguration(tenant)
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		writeJSON(w, http.StatusOK, doc)
	})
}

func (s *Server) serveSMARTConfig(w http.ResponseWriter, r *http.Request) {
	s.SMARTConfigurationHandler(info(r).tenant.ID).ServeHTTP(w, r)
}

func (s *Server) serveOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	t := info(r).tenant
	if !s.oidc(t) {
		http.NotFound(w, r)
		return
	}
	iss := s.Issuer(t.ID)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                           iss,
		"authorization_endpoint":                           iss + "/authorize",
		"token_endpoint":                                   iss + "/token",
		"jwks_uri":                                         iss + "/jwks",
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query"},
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            []string{RS256},
		"scopes_supported":                                 []string{"openid", "fhirUser", "profile", "offline_access", "online_access"},
		"claims_supported":                                 []string{"iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser", "name"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"grant_types_supported":                            []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials},
		"token_endpoint_auth_methods_supported":            []string{AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT},
		"token_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"authorization_response_iss_parameter_supported":   true,
		// Stated, not left to the defaults: OIDC Discovery's default for
		// request_uri_parameter_supported is true.
		"request_parameter_supported":     false,
		"request_uri_parameter_supported": false,
		"claims_parameter_supported":      false,
	})
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(s.keys(info(r).tenant).JWKS())
}
