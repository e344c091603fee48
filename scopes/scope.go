package scopes

import "strings"

// Kind says which family of SMART scope a token belongs to.
type Kind uint8

// The scope families of SMART App Launch 2.2 ("Scopes and Launch Context").
const (
	// Invalid is the Kind of the zero Scope.
	Invalid Kind = iota
	// Resource is a FHIR resource scope: patient/Observation.rs, user/*.read.
	Resource
	// Launch is the bare "launch" scope of the EHR launch.
	Launch
	// LaunchContext asks for context: launch/patient, launch/list?role=….
	LaunchContext
	// Identity is openid, fhirUser or the legacy profile.
	Identity
	// Refresh is offline_access or online_access.
	Refresh
	// Extension is a host-defined scope in one of the forms SMART reserves for
	// them: a name starting with "__", or an absolute URI.
	Extension
	// Messaging is a SMART Web Messaging group: messaging/ui, messaging/scratchpad.
	Messaging
	// Custom is an opaque scope the host accepted through [Parser.Custom].
	Custom
)

var kindNames = [...]string{
	Invalid:       "invalid",
	Resource:      "resource",
	Launch:        "launch",
	LaunchContext: "launch-context",
	Identity:      "identity",
	Refresh:       "refresh",
	Extension:     "extension",
	Messaging:     "messaging",
	Custom:        "custom",
}

// String returns the family's name as used in scope-vectors.json ("resource",
// "launch-context", …).
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// Context is the prefix of a resource scope: whose data it reaches.
type Context uint8

// The three contexts of SMART resource scopes.
const (
	// NoContext is the Context of every scope that is not a resource scope.
	NoContext Context = iota
	// Patient ("patient/") reaches the data of the one patient in context.
	Patient
	// User ("user/") reaches the data the signed-in user may see.
	User
	// System ("system/") reaches the data the client itself is authorised for.
	System
)

var contextNames = [...]string{NoContext: "", Patient: "patient", User: "user", System: "system"}

// String returns "patient", "user", "system", or "" for NoContext.
func (c Context) String() string {
	if int(c) < len(contextNames) {
		return contextNames[c]
	}
	return ""
}

// Perms is a set of SMART v2 interaction letters, c r u d s.
type Perms uint8

// The interaction letters of SMART v2 resource scopes.
const (
	Create Perms = 1 << iota // c: type-level create
	Read                     // r: read, vread, instance history
	Update                   // u: update (and update-as-create), patch
	Delete                   // d: delete
	Search                   // s: type and system search, type and system history

	// All is "cruds", what v1 ".*" means.
	All = Create | Read | Update | Delete | Search
	// V1Read is what v1 ".read" means: "rs".
	V1Read = Read | Search
	// V1Write is what v1 ".write" means: "cud" (write never implies read).
	V1Write = Create | Update | Delete
)

const letters = "cruds"

// String returns the letters in canonical "cruds" order, e.g. "rs"; "" for none.
func (p Perms) String() string {
	switch p & All {
	case V1Read:
		return "rs"
	case All:
		return letters
	}
	var b [5]byte
	n := 0
	for i := range 5 {
		if p&(1<<i) != 0 {
			b[n] = letters[i]
			n++
		}
	}
	return string(b[:n])
}

// Has reports whether p includes every letter of q.
func (p Perms) Has(q Perms) bool { return p&q == q }

// Version says which grammar a resource scope was written in.
type Version uint8

const (
	// V2 is SMART App Launch 2.x: letters from "cruds" and optional query constraints.
	V2 Version = iota
	// V1 is SMART App Launch 1.0: ".read", ".write" or ".*". The legacy "profile"
	// scope is V1 too.
	V1
)

// String returns "v1" or "v2".
func (v Version) String() string {
	if v == V1 {
		return "v1"
	}
	return "v2"
}

// Param is one decoded name=value pair of a query constraint, or the role of a
// launch-context scope. Names keep modifiers and chains verbatim ("code:in",
// "patient.birthdate").
type Param struct {
	Name  string
	Value string
}

// A Scope is one parsed scope token. Scopes are immutable values; the zero
// Scope has Kind Invalid. Create them with [Parse] or [NewResource].
type Scope struct {
	text    string  // the token exactly as parsed; canonical by construction
	typ     string  // resource type, "*", or the launch-context type ("patient")
	params  []Param // decoded query constraint, or the launch role; never shared mutably
	kind    Kind
	context Context
	perms   Perms
	version Version
}

// String returns the scope in its canonical text, which is the text it was
// parsed from: Parse(s.String()) gives back s.
func (s Scope) String() string { return s.text }

// Kind returns the scope's family.
func (s Scope) Kind() Kind { return s.kind }

// Context returns patient, user or system for resource scopes, NoContext otherwise.
func (s Scope) Context() Context { return s.context }

// Type returns the resource type or "*" of a resource scope, the lowercase
// context type of a launch-context scope ("patient"), or "".
func (s Scope) Type() string { return s.typ }

// Perms returns the interaction letters of a resource scope, with v1 suffixes
// mapped (read → rs, write → cud, * → cruds).
func (s Scope) Perms() Perms { return s.perms }

// Version returns V1 for scopes written in the 1.0 grammar, V2 otherwise.
func (s Scope) Version() Version { return s.version }

// Constrained reports whether a resource scope carries a query constraint.
func (s Scope) Constrained() bool { return s.kind == Resource && len(s.params) > 0 }

// Constraint returns a copy of the decoded query constraint of a v2 resource
// scope, in the order written (a repeated name means AND); nil if none.
func (s Scope) Constraint() []Param {
	if s.kind != Resource || len(s.params) == 0 {
		return nil
	}
	return append([]Param(nil), s.params...)
}

// Role returns the role URI of a launch-context scope such as
// "launch/list?role=https://example.org/med-list-at-home", or "".
func (s Scope) Role() string {
	if s.kind == LaunchContext && len(s.params) == 1 {
		return s.params[0].Value
	}
	return ""
}

// IsZero reports whether s is the zero Scope.
func (s Scope) IsZero() bool { return s.kind == Invalid }

// v1Suffix returns the v1 word for p, if p has one.
func v1Suffix(p Perms) (string, bool) {
	switch p {
	case V1Read:
		return "read", true
	case V1Write:
		return "write", true
	case All:
		return "*", true
	}
	return "", false
}

// V2 returns s written in the v2 grammar. Scopes other than v1 resource
// scopes are returned unchanged ("profile" stays "profile").
func (s Scope) V2() Scope {
	if s.kind != Resource || s.version == V2 {
		return s
	}
	s.version = V2
	s.text = s.context.String() + "/" + s.typ + "." + s.perms.String()
	return s
}

// V1 returns s written in the v1 grammar when that says exactly the same:
// a resource scope without a constraint whose letters are rs, cud or cruds.
// Other v2 resource scopes report false. Non-resource scopes are returned
// unchanged with true.
func (s Scope) V1() (Scope, bool) {
	if s.kind != Resource {
		return s, true
	}
	if s.version == V1 {
		return s, true
	}
	word, ok := v1Suffix(s.perms)
	if !ok || len(s.params) > 0 {
		return Scope{}, false
	}
	s.version = V1
	s.text = s.context.String() + "/" + s.typ + "." + word
	return s, true
}

// NewResource builds the v2 resource scope context/typ.perms without a
// constraint. It returns the zero Scope when an argument is invalid: an
// unknown context, a type that is neither "*" nor [A-Z][A-Za-z]+, or no letters.
func NewResource(c Context, typ string, p Perms) Scope {
	if c == NoContext || c > System || p == 0 || p&^All != 0 || !validType(typ) {
		return Scope{}
	}
	return Scope{
		text:    c.String() + "/" + typ + "." + p.String(),
		typ:     typ,
		kind:    Resource,
		context: c,
		perms:   p,
	}
}

// withPerms returns the resource scope s narrowed to p, keeping its dialect
// when the v1 grammar can say p, and its constraint text.
func (s Scope) withPerms(p Perms) Scope {
	if p == s.perms {
		return s
	}
	s.perms = p
	if s.version == V1 {
		if word, ok := v1Suffix(p); ok {
			s.text = s.context.String() + "/" + s.typ + "." + word
			return s
		}
		s.version = V2
	}
	prefix := s.context.String() + "/" + s.typ + "." + p.String()
	if q := s.queryText(); q != "" {
		s.text = prefix + "?" + q
	} else {
		s.text = prefix
	}
	return s
}

// queryText returns the raw constraint text after "?", as written.
func (s Scope) queryText() string {
	if s.kind != Resource || len(s.params) == 0 {
		return ""
	}
	if i := strings.IndexByte(s.text, '?'); i >= 0 {
		return s.text[i+1:]
	}
	return ""
}
