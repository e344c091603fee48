package scopes

import "iter"

// An Access is one FHIR interaction to authorise against a Set (digest
// §1.15): the context the token acts in, the resource type, the letters the
// interaction needs and, for a search, its decoded parameters.
type Access struct {
	// Context is the scope context the request is judged under. A token
	// with both patient/ and user/ scopes is judged scope by scope: check
	// each context on its own terms and never let one widen another.
	Context Context
	// Type is the exact-case resource type, or "*" for system-level search
	// and history, which only a wildcard scope allows.
	Type string
	// Perms are the letters needed: Read for read, vread and instance
	// history; Search for search and type history; Create, Update, Delete
	// for writes. Several letters mean all are needed (a conditional update
	// needs Update|Search); scopes combine as a union to supply them.
	Perms Perms
	// Params are the decoded search parameters of a search. A constrained
	// scope is satisfied up front when every one of its pairs appears here
	// exactly; otherwise the results must be filtered.
	Params []Param
}

// A Decision is the answer of [Set.Check].
type Decision struct {
	// Allowed reports whether some scopes allow the access. When
	// Constrained also reports true, they allow it only for resources that
	// match one of their query constraints.
	Allowed bool

	set  []Scope
	typ  string
	ctx  Context
	need Perms
	free Perms  // letters supplied by scopes with no constraint left to apply
	mask uint64 // constrained scopes through which access is allowed (first 64)
	more bool   // such scopes beyond the first 64 exist: rescan them
	// carried: allowed outright only through constrained scopes whose
	// pairs the search carries.
	carried bool
}

// Constrained reports whether the access is allowed only through
// query-constrained scopes, so the caller must still make sure every result
// (and every resource written) matches one of [Decision.Constraints].
func (d Decision) Constrained() bool { return d.Allowed && (d.mask != 0 || d.more) }

// Carried reports whether a search is allowed outright only because it
// carries every pair of some constrained scopes (Access.Params): the
// server's matching applies their constraint, so nothing needs adding, and
// Constrained reports false. But only the matches are bounded by it: what
// else an answer may hold (included resources, or the matches of a server
// that takes one value of a parameter the search repeats) is not. A
// caller that judges answers holds those to the constraints that
// [Set.Check] yields for the same access without its Params.
func (d Decision) Carried() bool { return d.carried }

// Constraints iterates over the constrained scopes through which the access
// is allowed. A resource is permitted when it matches the constraint of at
// least one of them (pairs within one constraint are ANDed). It yields
// nothing when the access is allowed outright or refused.
func (d Decision) Constraints() iter.Seq[Scope] {
	return func(yield func(Scope) bool) {
		if !d.Constrained() {
			return
		}
		for i := range d.set {
			var hit bool
			if i < 64 {
				hit = d.mask&(1<<i) != 0
			} else if d.more {
				sc := &d.set[i]
				hit = sc.kind == Resource && len(sc.params) > 0 && sc.context == d.ctx &&
					typeCovers(sc.typ, d.typ) && (d.free | sc.perms).Has(d.need)
			}
			if hit && !yield(d.set[i]) {
				return
			}
		}
	}
}

// Check decides an access. It does not allocate. The access is allowed
// outright when scopes without a constraint (or whose constraint the search
// already carries) supply every needed letter. Otherwise it is allowed,
// constrained, when adding one constrained scope's letters completes them;
// the caller then filters by [Decision.Constraints]. An access with no
// letters or no context is refused.
func (set Set) Check(a Access) Decision {
	free, constrained, ok, carried := set.scan(&a)
	if ok {
		return Decision{Allowed: true, carried: carried}
	}
	if !constrained {
		return Decision{}
	}
	d := Decision{set: set.s, typ: a.Type, ctx: a.Context, need: a.Perms, free: free}
	for i := range set.s {
		sc := &set.s[i]
		if sc.kind != Resource || len(sc.params) == 0 || sc.context != a.Context || !typeCovers(sc.typ, a.Type) ||
			!(free | sc.perms).Has(a.Perms) {
			continue
		}
		d.Allowed = true
		if i < 64 {
			d.mask |= 1 << i
		} else {
			d.more = true
		}
	}
	return d
}

// scan collects the letters that scopes without a constraint left to apply
// supply for a (ok when they suffice). constrained reports whether a
// constrained scope of the right context and type was passed over; carried
// whether the letters suffice only with scopes whose constraint the search
// carries. It stops as soon as scopes with no constraint at all suffice.
func (set Set) scan(a *Access) (free Perms, constrained, ok, carried bool) {
	if a.Perms == 0 || a.Perms&^All != 0 || a.Context == NoContext {
		return 0, false, false, false
	}
	var plain Perms // from scopes with no constraint
	for i := range set.s {
		sc := &set.s[i]
		if sc.kind != Resource || sc.context != a.Context || !typeCovers(sc.typ, a.Type) {
			continue
		}
		switch {
		case len(sc.params) == 0:
			if plain |= sc.perms; plain.Has(a.Perms) {
				return free | plain, constrained, true, false
			}
			free |= sc.perms
		case a.Perms == Search && paramsSubset(sc.params, a.Params):
			free |= sc.perms
		default:
			constrained = true
		}
	}
	if free.Has(a.Perms) {
		return free, constrained, true, true
	}
	return free, constrained, false, false
}

// Allows reports whether the set allows the access outright, with no query
// constraint left to apply. It is the fail-closed shorthand for callers that
// cannot filter results: an access allowed only through a constrained scope
// reports false here; use [Set.Check] to honour such scopes. It does not
// allocate.
func (set Set) Allows(a Access) bool {
	_, _, ok, _ := set.scan(&a)
	return ok
}
