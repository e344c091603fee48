package client

import "errors"

// An AuthError is an error the authorization server sent to the callback
// (RFC 6749 §4.1.2.1), such as access_denied.
type AuthError struct {
	Code        string
	Description string
}

func (e *AuthError) Error() string {
	if e.Description == "" {
		return "client: authorization failed: " + e.Code
	}
	return "client: authorization failed: " + e.Code + ": " + e.Description
}

// Errors of the launch and callback. Each is matched with errors.Is.
var (
	// ErrIssuer: the launch named an iss the app does not trust.
	ErrIssuer = errors.New("client: untrusted iss")
	// ErrMixUp: the callback's iss is not the authorization server the app
	// sent the user to (RFC 9207).
	ErrMixUp = errors.New("client: authorization response from the wrong issuer")
	// ErrIDToken: the id_token did not verify.
	ErrIDToken = errors.New("client: invalid id_token")
	// ErrNoCode: the callback carries neither a code nor an error.
	ErrNoCode = errors.New("client: callback without code")
)
