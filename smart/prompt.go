package smart

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
)

// The OIDC prompt values (OpenID Connect Core §3.1.2.1) an authorization
// request may carry.
const (
	// PromptNone: show nothing. The request ends with login_required,
	// interaction_required (a patient must be chosen) or consent_required
	// unless it can be answered from the session and what the consent
	// policy already allows or remembers; it never grants a new consent.
	PromptNone = "none"
	// PromptConsent: show the consent page even when the policy would not.
	PromptConsent = "consent"
	// PromptLogin and PromptSelectAccount are for the host's Authenticator,
	// which reads them with [Prompted]: only it can make the user sign in
	// again or choose an account.
	PromptLogin         = "login"
	PromptSelectAccount = "select_account"
)

// parsePrompt checks a prompt parameter: space-separated, none alone.
// Values it does not know are dropped (an extension the server lacks,
// such as OIDC's "create", is a hint, not a demand).
func parsePrompt(raw string) (string, error) {
	var vals []string
	for v := range strings.FieldsSeq(raw) {
		switch v {
		case PromptNone, PromptConsent, PromptLogin, PromptSelectAccount:
			if !slices.Contains(vals, v) {
				vals = append(vals, v)
			}
		}
	}
	if slices.Contains(vals, PromptNone) && len(vals) > 1 {
		return "", errors.New("prompt=none cannot be combined with other values")
	}
	return strings.Join(vals, " "), nil
}

func hasPrompt(prompt, v string) bool {
	return slices.Contains(strings.Fields(prompt), v)
}

type promptKey struct{}

// Prompted reports whether the authorization request being served asked
// for the prompt value v. An Authenticator calls it with its request's
// context: for PromptLogin it should make the user sign in again, for
// PromptSelectAccount let them choose an account, and for PromptNone it is
// called with a writer that discards what it writes (it returns false to
// mean no one is signed in).
func Prompted(ctx context.Context, v string) bool {
	p, _ := ctx.Value(promptKey{}).(string)
	return hasPrompt(p, v)
}

// discardWriter is the ResponseWriter a silent (prompt=none)
// authentication writes to: whatever the Authenticator would show the
// user is dropped.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
