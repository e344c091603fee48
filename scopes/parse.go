package scopes

import "strings"

// Default limits of the zero [Parser]. A scope string longer than
// DefaultMaxLen bytes or with more than DefaultMaxScopes tokens is refused
// before any token is parsed, so absurd input costs almost nothing.
const (
	DefaultMaxLen    = 16 << 10
	DefaultMaxScopes = 256
)

// A Parser parses scope strings with limits and host-defined scopes. The zero
// Parser is ready to use and is what the package-level functions use. A
// Parser is safe for concurrent use; do not change its fields after first use.
type Parser struct {
	// MaxLen bounds a scope string in bytes; 0 means DefaultMaxLen.
	MaxLen int
	// MaxScopes bounds the number of tokens; 0 means DefaultMaxScopes.
	MaxScopes int
	// Custom, when set, is asked about each token that is none of SMART's
	// scopes; returning true keeps it as an opaque scope of Kind Custom.
	// Tokens still must consist of RFC 6749 scope characters. SMART's own
	// extension forms ("__name", absolute URIs) are accepted without it.
	// Nil means unknown tokens are invalid.
	Custom func(token string) bool
}

// Parse parses a single scope token with the zero Parser.
func Parse(token string) (Scope, error) { return (&Parser{}).Parse(token) }

// ParseSet parses a space-separated scope string with the zero Parser; any
// invalid token makes it fail. See [Parser.ParseSet].
func ParseSet(s string) (Set, error) { return (&Parser{}).ParseSet(s) }

// ParseLenient parses a scope string with the zero Parser, dropping invalid
// tokens. See [Parser.ParseLenient].
func ParseLenient(s string) (Set, error) { return (&Parser{}).ParseLenient(s) }

// MustParseSet is ParseSet for constants in programs and tests; it panics on error.
func MustParseSet(s string) Set {
	set, err := ParseSet(s)
	if err != nil {
		panic(err)
	}
	return set
}

// Parse parses one scope token. An invalid token yields a *[ScopeError].
func (p *Parser) Parse(token string) (Scope, error) {
	if len(token) > p.maxLen() {
		return Scope{}, ErrTooLong
	}
	sc, reason := p.parseToken(token)
	if reason != "" {
		return Scope{}, &ScopeError{Scope: token, Reason: reason}
	}
	return sc, nil
}

// ParseSet parses a scope string (RFC 6749 §3.3): tokens separated by spaces.
// Leading, trailing and repeated spaces are tolerated; any other whitespace
// is invalid. Duplicate tokens are kept once, in first-seen order. If any
// token is invalid, ParseSet returns the empty Set and a *[SetError] naming
// every invalid token with its position. An empty string is invalid, as it
// is in an authorization request. Limits give [ErrTooLong] or [ErrTooMany].
func (p *Parser) ParseSet(s string) (Set, error) {
	set, errs, err := p.parseSet(s, true)
	if err != nil {
		return Set{}, err
	}
	if errs != nil {
		return Set{}, errs
	}
	return set, nil
}

// ParseLenient parses a scope string like ParseSet but keeps the valid tokens
// and drops the invalid ones, which it reports in a *[SetError] alongside the
// Set. Servers use it where SMART lets them ignore what they do not
// understand. The empty string gives the empty Set and no error. Limits still
// fail the whole string with the empty Set.
func (p *Parser) ParseLenient(s string) (Set, error) {
	set, errs, err := p.parseSet(s, false)
	if err != nil {
		return Set{}, err
	}
	if errs != nil {
		return set, errs
	}
	return set, nil
}

func (p *Parser) maxLen() int {
	if p.MaxLen > 0 {
		return p.MaxLen
	}
	return DefaultMaxLen
}

func (p *Parser) maxScopes() int {
	if p.MaxScopes > 0 {
		return p.MaxScopes
	}
	return DefaultMaxScopes
}

// dedupMapAt is the token count from which de-duplication uses a map rather
// than a linear scan.
const dedupMapAt = 32

func (p *Parser) parseSet(s string, strict bool) (Set, *SetError, error) {
	if len(s) > p.maxLen() {
		return Set{}, nil, ErrTooLong
	}
	n := 0
	for i := 0; i < len(s); {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i == len(s) {
			break
		}
		n++
		for i < len(s) && s[i] != ' ' {
			i++
		}
	}
	if n > p.maxScopes() {
		return Set{}, nil, ErrTooMany
	}
	if n == 0 {
		if strict {
			return Set{}, &SetError{Errs: []*ScopeError{{Scope: s, Reason: ReasonEmpty}}}, nil
		}
		return Set{}, nil, nil
	}
	out := make([]Scope, 0, n)
	var errs *SetError
	var seen map[string]struct{}
	if n >= dedupMapAt {
		seen = make(map[string]struct{}, n)
	}
	idx := 0
	for i := 0; i < len(s); {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i == len(s) {
			break
		}
		start := i
		for i < len(s) && s[i] != ' ' {
			i++
		}
		tok := s[start:i]
		sc, reason := p.parseToken(tok)
		if reason != "" {
			if errs == nil {
				errs = &SetError{}
			}
			errs.Errs = append(errs.Errs, &ScopeError{Scope: tok, Index: idx, Offset: start, Reason: reason})
		} else if !(errs != nil && strict) && !duplicate(out, seen, tok) {
			out = append(out, sc)
		}
		idx++
	}
	return makeSet(out), errs, nil
}

func duplicate(out []Scope, seen map[string]struct{}, tok string) bool {
	if seen != nil {
		if _, ok := seen[tok]; ok {
			return true
		}
		seen[tok] = struct{}{}
		return false
	}
	for i := range out {
		if out[i].text == tok {
			return true
		}
	}
	return false
}

// scopeChar marks the bytes RFC 6749 §3.3 allows in a scope token:
// %x21 / %x23-5B / %x5D-7E.
var scopeChar = func() (t [256]bool) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// parseToken classifies and parses one token; a non-empty Reason means invalid.
func (p *Parser) parseToken(tok string) (Scope, Reason) {
	if tok == "" {
		return Scope{}, ReasonEmpty
	}
	for i := 0; i < len(tok); i++ {
		if !scopeChar[tok[i]] {
			return Scope{}, ReasonCharacter
		}
	}
	switch tok[0] {
	case 'p':
		if rest, ok := strings.CutPrefix(tok, "patient/"); ok {
			return parseResource(tok, Patient, rest)
		}
		if tok == "profile" {
			return Scope{text: tok, kind: Identity, version: V1}, ""
		}
	case 'u':
		if rest, ok := strings.CutPrefix(tok, "user/"); ok {
			return parseResource(tok, User, rest)
		}
	case 's':
		if rest, ok := strings.CutPrefix(tok, "system/"); ok {
			return parseResource(tok, System, rest)
		}
	case 'l':
		if tok == "launch" {
			return Scope{text: tok, kind: Launch}, ""
		}
		if rest, ok := strings.CutPrefix(tok, "launch/"); ok {
			return parseLaunchContext(tok, rest)
		}
	case 'o':
		switch tok {
		case "openid":
			return Scope{text: tok, kind: Identity}, ""
		case "offline_access", "online_access":
			return Scope{text: tok, kind: Refresh}, ""
		}
	case 'f':
		if tok == "fhirUser" {
			return Scope{text: tok, kind: Identity}, ""
		}
	case 'm':
		if tok == "messaging/ui" || tok == "messaging/scratchpad" {
			return Scope{text: tok, kind: Messaging}, ""
		}
	case '_':
		if strings.HasPrefix(tok, "__") {
			return Scope{text: tok, kind: Extension}, ""
		}
	}
	if isAbsoluteURI(tok) {
		if _, ok := FromURI(tok); ok {
			return Scope{}, ReasonURIRepresented
		}
		return Scope{text: tok, kind: Extension}, ""
	}
	if p.Custom != nil && p.Custom(tok) {
		return Scope{text: tok, kind: Custom}, ""
	}
	return Scope{}, ReasonUnknown
}

// validType reports whether t is "*" or matches [A-Z][A-Za-z]+.
func validType(t string) bool {
	if t == "*" {
		return true
	}
	if len(t) < 2 || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := 1; i < len(t); i++ {
		c := t[i] | 0x20 // fold to lower case; only letters survive the range test
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func parseResource(tok string, ctx Context, rest string) (Scope, Reason) {
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		if validType(rest) {
			return Scope{}, ReasonNoPermissions
		}
		return Scope{}, ReasonResourceType
	}
	typ := rest[:dot]
	if !validType(typ) {
		return Scope{}, ReasonResourceType
	}
	suffix := rest[dot+1:]
	letters, query, hasQuery := strings.Cut(suffix, "?")
	sc := Scope{text: tok, typ: typ, kind: Resource, context: ctx}
	switch letters {
	case "":
		return Scope{}, ReasonNoPermissions
	case "read", "write", "*":
		if hasQuery {
			return Scope{}, ReasonV1Query
		}
		sc.version = V1
		switch letters {
		case "read":
			sc.perms = V1Read
		case "write":
			sc.perms = V1Write
		default:
			sc.perms = All
		}
		return sc, ""
	}
	perms, ok := parsePerms(letters)
	if !ok {
		return Scope{}, ReasonPermissions
	}
	sc.perms = perms
	if hasQuery {
		params, reason := parseQuery(query)
		if reason != "" {
			return Scope{}, reason
		}
		sc.params = params
	}
	return sc, ""
}

// parsePerms accepts a non-empty, strictly ordered subset of "cruds".
func parsePerms(s string) (Perms, bool) {
	var p Perms
	next := 0 // position in "cruds" the next letter may take
	for i := 0; i < len(s); i++ {
		j := strings.IndexByte(letters[next:], s[i])
		if j < 0 {
			return 0, false
		}
		next += j
		p |= 1 << next
		next++
	}
	return p, p != 0
}

func parseLaunchContext(tok, rest string) (Scope, Reason) {
	typ, query, hasQuery := strings.Cut(rest, "?")
	if typ == "" {
		return Scope{}, ReasonLaunchType
	}
	for i := 0; i < len(typ); i++ {
		if typ[i] < 'a' || typ[i] > 'z' {
			return Scope{}, ReasonLaunchType
		}
	}
	sc := Scope{text: tok, typ: typ, kind: LaunchContext}
	if hasQuery {
		params, reason := parseQuery(query)
		if reason != "" {
			return Scope{}, reason
		}
		if len(params) != 1 || params[0].Name != "role" {
			return Scope{}, ReasonLaunchRole
		}
		sc.params = params
	}
	return sc, ""
}

// isAbsoluteURI reports whether s is scheme ":" rest (RFC 3986 §3.1) with a
// non-empty rest whose percent-escapes are well formed.
func isAbsoluteURI(s string) bool {
	colon := strings.IndexByte(s, ':')
	if colon < 1 || colon == len(s)-1 {
		return false
	}
	c := s[0] | 0x20
	if c < 'a' || c > 'z' {
		return false
	}
	for i := 1; i < colon; i++ {
		c := s[i]
		if !(c|0x20 >= 'a' && c|0x20 <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	for i := colon + 1; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return false
			}
		}
	}
	return true
}
