package scopes

import (
	"errors"
	"strconv"
	"strings"
)

// ErrMalformed is matched (errors.Is) by every error that reports an invalid
// scope token or scope string.
var ErrMalformed = errors.New("scopes: malformed scope")

// ErrTooLong is matched by the error for a scope string over [Parser.MaxLen]
// bytes, and ErrTooMany by the error for one over [Parser.MaxScopes] tokens.
// Both are reported before any token is parsed, and both also match
// [ErrMalformed], so a server maps all three to invalid_scope.
var (
	ErrTooLong error = limitError("scopes: scope string too long")
	ErrTooMany error = limitError("scopes: too many scopes")
)

type limitError string

func (e limitError) Error() string { return string(e) }

func (e limitError) Is(target error) bool { return target == ErrMalformed }

// ErrWidens is matched by the error [Set.Narrow] returns when the requested
// set asks for more than was granted.
var ErrWidens = errors.New("scopes: requested scope not covered by the grant")

// Reason is the machine-readable cause of an invalid token. It is stable and
// safe to put in an OAuth error_description or an audit event.
type Reason string

// The reasons a token is invalid.
const (
	ReasonEmpty          Reason = "empty scope"
	ReasonCharacter      Reason = "character not allowed in a scope (RFC 6749 §3.3)"
	ReasonUnknown        Reason = "unknown scope"
	ReasonResourceType   Reason = "resource type must be * or [A-Z][A-Za-z]+"
	ReasonNoPermissions  Reason = "missing permissions after '.'"
	ReasonPermissions    Reason = "permissions must be a non-empty subset of cruds in that order, or read, write, *"
	ReasonV1Query        Reason = "query constraints need v2 permissions"
	ReasonEmptyQuery     Reason = "query constraint without a name=value pair"
	ReasonEmptyName      Reason = "query constraint with an empty name"
	ReasonEmptyValue     Reason = "query constraint with an empty value"
	ReasonQuerySyntax    Reason = "'?' or '#' inside a query constraint"
	ReasonEscape         Reason = "malformed percent-escape or invalid UTF-8 in a query constraint"
	ReasonLaunchType     Reason = "launch context type must be lowercase letters"
	ReasonLaunchRole     Reason = "launch context takes only one role=<value> parameter"
	ReasonURIRepresented Reason = "URI representation of a scope is not an OAuth scope token"
)

// A ScopeError reports one invalid token of a scope string.
type ScopeError struct {
	Scope  string // the offending token, as given
	Index  int    // its position among the tokens, from 0
	Offset int    // its byte offset in the scope string
	Reason Reason
}

func (e *ScopeError) Error() string {
	return "scopes: invalid scope " + strconv.Quote(e.Scope) + " (token " + strconv.Itoa(e.Index) + "): " + string(e.Reason)
}

// Is makes every ScopeError match [ErrMalformed].
func (e *ScopeError) Is(target error) bool { return target == ErrMalformed }

// A SetError lists every invalid token of a scope string, in order.
type SetError struct {
	Errs []*ScopeError
}

func (e *SetError) Error() string {
	if len(e.Errs) == 1 {
		return e.Errs[0].Error()
	}
	var b strings.Builder
	b.WriteString("scopes: ")
	b.WriteString(strconv.Itoa(len(e.Errs)))
	b.WriteString(" invalid scopes: ")
	for i, se := range e.Errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(strconv.Quote(se.Scope))
		b.WriteString(": ")
		b.WriteString(string(se.Reason))
	}
	return b.String()
}

// Unwrap returns the individual errors, so errors.As finds a *ScopeError.
func (e *SetError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, se := range e.Errs {
		out[i] = se
	}
	return out
}

// Is makes every SetError match [ErrMalformed].
func (e *SetError) Is(target error) bool { return target == ErrMalformed }

// A WidenError is returned by [Set.Narrow] for the first requested scope the
// grant does not cover. It matches [ErrWidens].
type WidenError struct {
	Scope Scope
}

func (e *WidenError) Error() string {
	return "scopes: " + strconv.Quote(e.Scope.String()) + " is not covered by the granted scopes"
}

// Is makes every WidenError match [ErrWidens].
func (e *WidenError) Is(target error) bool { return target == ErrWidens }
