package scopes

import "strings"

// The prefixes of SMART's URI representation of scopes, for use outside
// OAuth such as policy documents (SAL 2.2, Scopes › Appendix: URI
// representation of scopes). Such URIs are not OAuth scope tokens.
const (
	SMARTScopeURIPrefix  = "http://smarthealthit.org/fhir/scopes/"
	OpenIDScopeURIPrefix = "http://openid.net/specs/openid-connect-core-1_0#"
)

// URI returns the URI representation of s: SMART scopes behind
// [SMARTScopeURIPrefix], "openid" and "profile" behind
// [OpenIDScopeURIPrefix]. Extension URIs are returned unchanged.
func (s Scope) URI() string {
	switch {
	case s.kind == Invalid:
		return ""
	case s.kind == Extension && !strings.HasPrefix(s.text, "__"):
		return s.text
	case s.text == "openid" || s.text == "profile":
		return OpenIDScopeURIPrefix + s.text
	}
	return SMARTScopeURIPrefix + s.text
}

// FromURI converts the URI representation of a scope back to the scope
// token; ok is false when uri is not such a representation.
func FromURI(uri string) (token string, ok bool) {
	if rest, found := strings.CutPrefix(uri, SMARTScopeURIPrefix); found && rest != "" {
		return rest, true
	}
	if rest, found := strings.CutPrefix(uri, OpenIDScopeURIPrefix); found && rest != "" {
		return rest, true
	}
	return "", false
}
