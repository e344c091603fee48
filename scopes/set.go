package scopes

import (
	"iter"
	"strings"
)

// A Set is a parsed scope string: distinct scopes in first-seen order. Sets
// are immutable values and safe to share; the zero Set is empty.
type Set struct {
	s []Scope
}

// makeSet wraps scopes that are already distinct and valid.
func makeSet(s []Scope) Set { return Set{s: s} }

// NewSet returns the Set of the given scopes, skipping zero Scopes and
// duplicates (same text).
func NewSet(scopes ...Scope) Set {
	out := make([]Scope, 0, len(scopes))
	var seen map[string]struct{}
	if len(scopes) >= dedupMapAt {
		seen = make(map[string]struct{}, len(scopes))
	}
	for _, sc := range scopes {
		if sc.kind != Invalid && !duplicate(out, seen, sc.text) {
			out = append(out, sc)
		}
	}
	return makeSet(out)
}

// Len returns the number of scopes in the set.
func (set Set) Len() int { return len(set.s) }

// At returns the i'th scope; it panics if i is out of range.
func (set Set) At(i int) Scope { return set.s[i] }

// All iterates over the scopes in order.
func (set Set) All() iter.Seq[Scope] {
	return func(yield func(Scope) bool) {
		for _, sc := range set.s {
			if !yield(sc) {
				return
			}
		}
	}
}

// Scopes returns a copy of the scopes in order.
func (set Set) Scopes() []Scope { return append([]Scope(nil), set.s...) }

// String returns the canonical scope string: the tokens joined by single
// spaces, each as written. The empty Set gives "" (nothing granted).
func (set Set) String() string {
	switch len(set.s) {
	case 0:
		return ""
	case 1:
		return set.s[0].text
	}
	n := len(set.s) - 1
	for _, sc := range set.s {
		n += len(sc.text)
	}
	var b strings.Builder
	b.Grow(n)
	for i, sc := range set.s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(sc.text)
	}
	return b.String()
}

// Has reports whether the set holds the token text exactly, e.g.
// Has("offline_access") or Has("launch/patient").
func (set Set) Has(text string) bool {
	for i := range set.s {
		if set.s[i].text == text {
			return true
		}
	}
	return false
}

// HasKind reports whether any scope in the set is of kind k.
func (set Set) HasKind(k Kind) bool {
	for i := range set.s {
		if set.s[i].kind == k {
			return true
		}
	}
	return false
}

// HasContext reports whether any resource scope in the set has context c.
func (set Set) HasContext(c Context) bool {
	for i := range set.s {
		if set.s[i].kind == Resource && set.s[i].context == c {
			return true
		}
	}
	return false
}

// Version returns V1 when any resource scope is written in the v1 grammar,
// V2 otherwise. Servers use it to answer in the client's dialect.
func (set Set) Version() Version {
	for i := range set.s {
		if set.s[i].kind == Resource && set.s[i].version == V1 {
			return V1
		}
	}
	return V2
}

// V2 returns the set with every v1 resource scope rewritten in v2 (read → rs,
// write → cud, * → cruds), de-duplicated.
func (set Set) V2() Set {
	out := make([]Scope, len(set.s))
	for i, sc := range set.s {
		out[i] = sc.V2()
	}
	return NewSet(out...)
}

// V1 returns the set with each v2 resource scope rewritten in v1 where that
// says exactly the same (see [Scope.V1]); others stay in v2.
func (set Set) V1() Set {
	out := make([]Scope, len(set.s))
	for i, sc := range set.s {
		if v1, ok := sc.V1(); ok {
			out[i] = v1
		} else {
			out[i] = sc
		}
	}
	return NewSet(out...)
}

// Filter returns the scopes for which keep returns true.
func (set Set) Filter(keep func(Scope) bool) Set {
	var out []Scope
	for _, sc := range set.s {
		if keep(sc) {
			out = append(out, sc)
		}
	}
	return makeSet(out)
}

// Union returns the scopes of set followed by those of other, de-duplicated.
func (set Set) Union(other Set) Set {
	all := make([]Scope, 0, len(set.s)+len(other.s))
	all = append(all, set.s...)
	all = append(all, other.s...)
	return NewSet(all...)
}

// typeCovers reports whether a scope for type a reaches type b.
func typeCovers(a, b string) bool { return a == "*" || a == b }

// reaches reports whether the resource scope a reaches every resource that
// the resource scope t reaches, ignoring letters: same context, a's type is
// t's or "*", and a's constraint is a subset of t's (SPEC-NOTES A10: an
// unconstrained scope reaches any constrained one; a constrained scope
// reaches another only if its pairs are among the other's).
func reaches(a, t *Scope) bool {
	return a.context == t.context && typeCovers(a.typ, t.typ) && paramsSubset(a.params, t.params)
}

// coveredPerms returns the union of letters of the resource scopes in set
// that reach t.
func (set Set) coveredPerms(t *Scope) Perms {
	var p Perms
	for i := range set.s {
		a := &set.s[i]
		if a.kind == Resource && reaches(a, t) {
			p |= a.perms
		}
	}
	return p
}

// Covers reports whether the set grants at least what s asks for. A resource
// scope is covered when the scopes that reach it (same context, same type or
// "*", a constraint no narrower) together hold all its letters, so
// "patient/Observation.r patient/Observation.s" covers
// "patient/Observation.rs", and "patient/*.rs" covers
// "patient/Observation.rs?category=laboratory". Any other scope is covered
// only by an identical one.
func (set Set) Covers(s Scope) bool {
	switch s.kind {
	case Invalid:
		return false
	case Resource:
		return set.coveredPerms(&s).Has(s.perms)
	}
	return set.Has(s.text)
}

// CoversAll reports whether the set covers every scope of other.
func (set Set) CoversAll(other Set) bool {
	for i := range other.s {
		if !set.Covers(other.s[i]) {
			return false
		}
	}
	return true
}

// Equal reports whether the two sets grant exactly the same: each covers the
// other. "patient/Observation.read" equals "patient/Observation.rs", and
// "user/Encounter.r user/Encounter.s" equals "user/Encounter.rs".
func (set Set) Equal(other Set) bool { return set.CoversAll(other) && other.CoversAll(set) }

// Intersect returns what both sets grant, written in set's terms where it
// can be: each scope of set narrowed to the letters other covers, then each
// scope of other narrowed to what set covers, then, for pairs of constrained
// scopes of the same context and type, their combined constraint. It is how
// a server computes requested ∩ client-allowed ∩ user-approved. The result
// is covered by both sets; a scope that neither side can express alone may be
// left out, so the answer errs toward less access.
func (set Set) Intersect(other Set) Set {
	var out []Scope
	for _, sc := range set.s {
		if sc.kind != Resource {
			if other.Has(sc.text) {
				out = append(out, sc)
			}
			continue
		}
		if p := sc.perms & other.coveredPerms(&sc); p != 0 {
			out = append(out, sc.withPerms(p))
		}
	}
	for _, sc := range other.s {
		if sc.kind != Resource {
			continue
		}
		if p := sc.perms & set.coveredPerms(&sc); p != 0 {
			out = append(out, sc.withPerms(p))
		}
	}
	for i := range set.s {
		a := &set.s[i]
		if a.kind != Resource {
			continue
		}
		for j := range other.s {
			b := &other.s[j]
			if b.kind != Resource || a.context != b.context || reaches(a, b) || reaches(b, a) {
				continue
			}
			if m, ok := merge(a, b); ok {
				out = append(out, m)
			}
		}
	}
	return minimal(NewSet(out...))
}

// merge builds the scope both constrained scopes a and b reach: the narrower
// type, the common letters, and both constraints ANDed.
func merge(a, b *Scope) (Scope, bool) {
	var typ string
	switch {
	case a.typ == b.typ || b.typ == "*":
		typ = a.typ
	case a.typ == "*":
		typ = b.typ
	default:
		return Scope{}, false
	}
	p := a.perms & b.perms
	if p == 0 {
		return Scope{}, false
	}
	text := a.context.String() + "/" + typ + "." + p.String()
	var q []string
	if s := a.queryText(); s != "" {
		q = append(q, s)
	}
	if s := b.queryText(); s != "" {
		q = append(q, s)
	}
	if len(q) > 0 {
		text += "?" + strings.Join(q, "&")
	}
	sc, err := Parse(text)
	if err != nil {
		return Scope{}, false
	}
	return sc, true
}

// minimal drops each resource scope that the rest of the set already covers,
// so an intersection does not list patient/Observation.rs beside patient/*.rs.
// Where two scopes say the same, the earlier one is kept.
func minimal(set Set) Set {
	var kept []Scope
	for _, sc := range set.s {
		if sc.kind != Resource || !makeSet(kept).Covers(sc) {
			kept = append(kept, sc)
		}
	}
	out := kept[:0:0]
	for i, sc := range kept {
		if sc.kind == Resource {
			rest := makeSet(append(append([]Scope(nil), out...), kept[i+1:]...))
			if rest.Covers(sc) {
				continue
			}
		}
		out = append(out, sc)
	}
	return makeSet(out)
}

// Narrow checks a refresh or re-authorisation request against a grant: every
// scope of requested must be covered by set (the grant). It returns
// requested when it is, and otherwise a *[WidenError] (matching [ErrWidens])
// naming the first scope that would widen access. An empty requested set is
// not narrowing: it returns set itself, as RFC 6749 §6 prescribes for a
// refresh request without "scope".
func (set Set) Narrow(requested Set) (Set, error) {
	if len(requested.s) == 0 {
		return set, nil
	}
	for _, sc := range requested.s {
		if !set.Covers(sc) {
			return Set{}, &WidenError{Scope: sc}
		}
	}
	return requested, nil
}
