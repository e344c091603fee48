package smart

import (
	"errors"
	"net/http"
)

// Code is an OAuth 2.0 error code (RFC 6749 §4.1.2.1, §5.2; RFC 7009; OIDC).
type Code string

// The OAuth error codes the server sends.
const (
	InvalidRequest          Code = "invalid_request"
	InvalidClient           Code = "invalid_client"
	InvalidGrant            Code = "invalid_grant"
	UnauthorizedClient      Code = "unauthorized_client"
	UnsupportedGrantType    Code = "unsupported_grant_type"
	UnsupportedResponseType Code = "unsupported_response_type"
	UnsupportedTokenType    Code = "unsupported_token_type"
	InvalidScope            Code = "invalid_scope"
	AccessDenied            Code = "access_denied"
	ServerError             Code = "server_error"
	TemporarilyUnavailable  Code = "temporarily_unavailable"
	LoginRequired           Code = "login_required"
	ConsentRequired         Code = "consent_required"
	InteractionRequired     Code = "interaction_required"
	InvalidToken            Code = "invalid_token"
	// RequestNotSupported and RequestURINotSupported refuse request
	// objects (OIDC Core §3.1.2.6, RFC 9101), which the server does not
	// take: their parameters would otherwise be silently ignored.
	RequestNotSupported    Code = "request_not_supported"
	RequestURINotSupported Code = "request_uri_not_supported"
)

// An Error is a protocol error: Code and Description go to the client, Err
// only to logs. Each call builds a fresh value.
type Error struct {
	Code        Code
	Description string // sent to the client; never holds secrets
	Err         error  // logged, never sent
	// retryAfter, in seconds, makes the answer a 429 with Retry-After
	// (the throttle).
	retryAfter int64
}

func (e *Error) Error() string { return "smart: " + string(e.Code) + ": " + e.Description }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the OAuth error code of err, ServerError unless err wraps an *Error.
func CodeOf(err error) Code {
	if e := (*Error)(nil); errors.As(err, &e) {
		return e.Code
	}
	return ServerError
}

func oauthErr(c Code, desc string) *Error { return &Error{Code: c, Description: desc} }

// status returns the HTTP status of a token-endpoint error (RFC 6749 §5.2).
func (c Code) status() int {
	switch c {
	case InvalidClient, InvalidToken:
		return http.StatusUnauthorized
	case ServerError:
		return http.StatusInternalServerError
	case TemporarilyUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// Store errors.
var (
	// ErrNotFound is returned by stores for an unknown id or hash.
	ErrNotFound = errors.New("smart: not found")
	// ErrUsed is returned by CodeStore.ConsumeCode for a code redeemed before,
	// and by GrantStore.RotateRefresh for a refresh token rotated before.
	ErrUsed = errors.New("smart: already used")
	// ErrReplay is returned by ReplayCache.Claim for a jti seen before.
	ErrReplay = errors.New("smart: replayed")
)
