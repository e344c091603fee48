// Package smart is the SMART on FHIR authorization server and the token
// Verifier resource servers use (SMART App Launch 2.2, OAuth 2.0 with the
// RFC 9700 security profile).
//
// [Server] is one http.Handler serving, per tenant (the default tenant at
// the root, others under /t/{id}/):
//
//	/.well-known/smart-configuration   discovery (also mountable at the FHIR base)
//	/.well-known/openid-configuration  OpenID Connect discovery
//	/jwks                              current and retired public keys
//	/authorize                         GET and POST; then /authorize/continue, /patient, /consent
//	/token                             authorization_code, refresh_token, client_credentials
//	/introspect                        RFC 7662, for authenticated callers only
//	/revoke                            RFC 7009
//
// The host mounts it on its own mux and supplies its login ([Authenticator]),
// its keys ([KeySet] over crypto.Signers, so an HSM or KMS works), a client
// registry ([ClientStore]) and storage ([Store]; [MemoryStore] here,
// SQLite and PostgreSQL in smart/sqlstore):
//
//	srv := &smart.Server{
//		BaseURL:       "https://ehr.example.org/auth",
//		Tenants:       []smart.Tenant{{FHIRBases: []string{"https://ehr.example.org/fhir"}}},
//		Clients:       registry,
//		Store:         store,
//		Keys:          keys,
//		Authenticator: login,
//		Launches:      &launch.Service{Store: launchStore},
//		Audit:         auditSink,
//	}
//	mux.Handle("/auth/", http.StripPrefix("/auth", srv))
//
// # What it enforces
//
// Exact redirect-URI matching (loopback ports excepted, RFC 8252), no
// redirect for an unknown client or redirect URI, response_type=code only
// (request objects, request_uri and response modes other than query refused),
// PKCE S256 for every client, aud equal to a protected FHIR base, state
// required and echoed, iss in every authorization response (RFC 9207),
// single-use launch ids bound to client, user, tenant and FHIR base,
// single-use codes that live 60 s and revoke their grant when replayed,
// refresh-token rotation with family revocation on reuse and narrowing-only
// scope, private_key_jwt with RS384/ES384 (keys only from the registered
// JWKS or JWKS URL, jti replay refused, aud the token endpoint, exp at most
// five minutes ahead), hashed client secrets, codes and refresh tokens.
// With [Sessions], online_access refresh tokens end with the user's
// sign-in session (the grant is revoked at the first refresh after it).
// The OIDC prompt parameter is honoured: prompt=none shows no page and
// ends with login_required, interaction_required or consent_required
// unless the session and what the consent policy allows or remembers
// answer the request (it never grants a new consent); prompt=consent
// shows the consent page even when the policy would not; login and
// select_account reach the host's Authenticator through [Prompted].
// Failed client authentications and grants at the token, introspection and
// revocation endpoints are throttled per source address and client named,
// per source address, and per client with a secret ([Throttle], on by
// default): guessing gets 429 and Retry-After before any credential is
// looked at.
// Every decision goes to an audit.Sink; if the sink fails, nothing is issued.
//
// # Tokens
//
// Access tokens are JWTs (typ at+jwt, ES256 by default) carrying iss, sub,
// aud, client_id, scope, jti, exp, iat, the grant id and the launch context
// the grant reveals. [Verifier] checks them locally with a bounded cache;
// revocation is consulted on every call. id_tokens are RS256, as SMART's
// sso-openid-connect requires. A grant's consent.Clearance (what labelled
// data the proxy lets through) rides in its tokens: for a user's grant it
// comes from the consent decision, for a backend service from
// Server.BackendClearance (normal data only when unset).
//
// # Spec
//
// https://hl7.org/fhir/smart-app-launch/app-launch.html
// https://hl7.org/fhir/smart-app-launch/backend-services.html
// https://www.rfc-editor.org/rfc/rfc9700
package smart
