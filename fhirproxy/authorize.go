package fhirproxy

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/smartkit/smartkit/scopes"
)

// letters maps an interaction to the SMART permission letters it needs.
func letters(in *Interaction) scopes.Perms {
	var p scopes.Perms
	switch in.Kind {
	case Read, VRead, HistoryInstance:
		p = scopes.Read
	case SearchType, SearchCompart, HistoryType, SearchSystem, HistorySystem:
		p = scopes.Search
	case Create:
		p = scopes.Create
	case Update, Patch:
		p = scopes.Update
	case Delete:
		p = scopes.Delete
	}
	if in.Conditional {
		p |= scopes.Search // a conditional write searches first (SPEC-NOTES A8)
	}
	return p
}

// forbiddenForPatients are search parameters that reach outside the
// compartment or that the proxy cannot bound: reverse chains, chains,
// reverse includes, iterating includes, filters, lists, named queries.
func forbiddenForPatients(name string) bool {
	base, _, _ := strings.Cut(name, ":")
	switch base {
	case "_revinclude", "_contained", "_containedType":
		return true
	}
	// An include with a modifier iterates (:iterate, and :recurse, its R3
	// name, which servers still read so).
	return searchesOthers(name) || base == "_include" && name != "_include"
}

// chainCriteria refuses a chain of one link whose criteria search by
// other records (patient._has:Observation:subject:_security=PSY, or a
// _filter, _list or _query of its target): the proxy resolves a chain by
// a search of its own with those criteria, over every record, and would
// then come back by the records they matched, telling what the access
// may not see (here, which patients have psychiatric records).
func chainCriteria(name string) *refusal {
	if _, _, rest := chainTarget(name); searchesOthers(rest) {
		return refuse(http.StatusForbidden, "forbidden", "a chain's criteria "+rest+" search by records the token's clearance may withhold")
	}
	return nil
}

// patientChain takes a chain of one link in a patient/ token's search
// (encounter.identifier=…, practitioner.name=…), to be resolved by the
// proxy over the records the token may see (resolveChains: the patient's,
// and shared ones), and marks the search chained. Not one through a
// parameter that names a patient (subject:Patient.name; the patient is
// named by id), and one whose criteria name a patient must name this one
// (D-2), and its criteria must search by nothing else (chainCriteria).
func patientChain(in *Interaction, prm Param, pid string, a *access) *refusal {
	if ref := chainCriteria(prm.Name); ref != nil {
		return ref
	}
	ref, rest, _ := strings.Cut(prm.Name, ".")
	if base, _, _ := strings.Cut(ref, ":"); patientParams[base] {
		return refuse(http.StatusForbidden, "forbidden", "a chain through "+base+" is not allowed with patient context: name the patient by id")
	}
	if base, mod, _ := strings.Cut(rest, ":"); patientParams[base] && !namesOnly(prm.Value, pid, base == "patient" || mod == "Patient", a) {
		return refuse(http.StatusForbidden, "forbidden", "the search names another patient")
	}
	in.chained = true
	return nil
}

// namesOnly reports whether each value of an OR list of a parameter that
// can name a patient (patientParams) names Patient/pid on this server, a
// bare id counting where the parameter names patients only (bare).
func namesOnly(list, pid string, bare bool, a *access) bool {
	for _, v := range strings.Split(list, ",") {
		if !refersTo(v, pid, bare, a) {
			return false
		}
	}
	return true
}

// patientTyped reports whether a search parameter (base and modifier
// apart) names patients only, so that a bare id in it is a Patient's:
// patient, _id (of a Patient search), beneficiary, individual, candidate,
// or any with a :Patient modifier.
func patientTyped(base, mod string) bool {
	switch base {
	case "patient", "_id", "beneficiary", "individual", "candidate":
		return true
	}
	return mod == "Patient"
}

// provenanceOf reports whether an _revinclude value brings the
// Provenances about a search's matches of typ: Provenance:target, or
// Provenance:target:typ.
func provenanceOf(v, typ string) bool {
	rest, ok := strings.CutPrefix(v, "Provenance:target")
	return ok && (rest == "" || rest == ":"+typ)
}

// searchesOthers reports whether a search parameter's criteria read
// resources other than those the answer holds: a chain (subject.name, and
// subject:Patient.name, whose dot follows a type modifier), a reverse chain
// (_has), a filter (which can chain), a list or a named query. Whether a
// resource matched then says something about those others, which the proxy
// never sees.
func searchesOthers(name string) bool {
	base, _, _ := strings.Cut(name, ":")
	switch base {
	case "_has", "_filter", "_list", "_query":
		return true
	}
	return strings.Contains(name, ".")
}

// authorize decides an interaction and rewrites it to what may be
// forwarded: constraints injected, the patient compartment imposed.
func (p *Proxy) authorize(in *Interaction, a *access) *refusal {
	forbidden := func(msg string) *refusal { return refuse(http.StatusForbidden, "forbidden", msg) }
	switch in.Kind {
	case Batch:
		return nil // decided entry by entry once the body is read (checkWrite)
	case Operation:
		return p.authorizeOperation(in, a)
	}
	if in.resolve {
		return authorizeConditional(in, a) // the rest once it is resolved (Proxy.resolveConditional)
	}
	if in.Kind == SearchSystem || in.Kind == HistorySystem {
		in.Type = "*"
	}
	need := letters(in)
	d, ctx := a.decide(scopes.Access{Context: a.ctx, Type: in.Type, Perms: need, Params: in.Params})
	if d.Allowed && ctx != a.ctx {
		a.ctx, a.patient = ctx, "" // on the user/ scope's own terms, without the compartment
	}
	// A search that carries every pair of a constrained scope is allowed
	// outright (scopes.Decision.Carried), and the server applies the
	// constraint as it would one the proxy added: it is held alike.
	carried := d.Carried()
	if in.Type == "*" {
		in.Type = ""
	}
	if !d.Allowed {
		return forbidden("the token's scopes do not allow " + string(in.Kind) + " of " + orAll(in.Type))
	}
	switch {
	case d.Constrained() && (in.Kind == Create || in.Kind == Update || in.Kind == Patch || in.Kind == Delete):
		// The proxy holds what is written, and what it replaces or removes,
		// to the constraint (checkContent, checkStored).
		if in.Conditional { // resolved first where answers are judged (authorizeConditional)
			return forbidden("a conditional write under a constrained scope is resolved by the proxy; this one was not (send it on its own)")
		}
		lc, ref := compileConstraint(in.Type, d)
		if in.Kind == Delete && (ref != nil || lc.partial) {
			// A delete removes what is stored, which the FHIR server can
			// prove matches whatever the constraint: found by _id with one
			// scope's constraint (checkStored, proveStored), where the
			// proxy cannot evaluate them all.
			a.proof, lc, ref = nil, nil, nil
			for sc := range d.Constraints() {
				a.proof = append(a.proof, sc.Constraint())
			}
		}
		if ref != nil {
			return ref
		}
		a.held = lc
	case d.Constrained() && (in.Kind == VRead || in.Kind == HistoryInstance):
		// A search finds current versions only, so the server cannot
		// apply the constraint to an earlier one: the proxy evaluates it,
		// on the record as it is now (checkStored) and on each version it
		// shows (judgeEntry; a vread's in exchange.inspect).
		lc, ref := compileConstraint(in.Type, d)
		if ref != nil {
			return ref
		}
		a.held, a.included, a.unmatched, a.constrained = lc, lc, true, in.Type
		// A version asked for in part keeps what the constraint reads
		// (found by FuzzElementsAgree: without it, withheld as not
		// matching); a summary may leave it out (constraintUnread).
		keepConstraintElements(in, lc)
		if constraintUnread(in, lc) {
			return unreadConstraint()
		}
	case in.searchOp == docrefOp && (d.Constrained() || carried):
		// $docref's parameters are its own (patient, start, end, type,
		// on-demand, profile): a server ignores a constraint's, or refuses
		// them, and a category the client sends bounds nothing either. The
		// constraint does not go upstream; every document answered is held
		// to it as the proxy evaluates it, on later pages too (pageRef.Held).
		if carried {
			d = a.tok.Scopes.Check(scopes.Access{Context: a.ctx, Type: in.Type, Perms: need})
		}
		if ref := constrainedSearch(in); ref != nil {
			return ref
		}
		lc, ref := compileConstraint(in.Type, d)
		if ref != nil {
			return ref
		}
		a.constrained, a.recheck, a.included = in.Type, true, lc
	case d.Constrained():
		if ref := p.applyConstraint(in, d); ref != nil {
			return ref
		}
		// The upstream applies the constraint to this type's matches; what
		// else of the type comes along is held to it by the proxy.
		a.constrained = in.Type
		if ref := a.holdAnswer(in, d); ref != nil {
			return ref
		}
		if ref := a.checkMatches(in, d); ref != nil {
			return ref
		}
	case carried:
		// Found by probing: the type was then unreadable in the answer, so
		// a patient app searching Observation?category=laboratory under
		// patient/Observation.rs?category=laboratory got an empty Bundle,
		// and _query went upstream unbounded.
		if ref := constrainedSearch(in); ref != nil {
			return ref
		}
		a.constrained = in.Type
		dc := a.tok.Scopes.Check(scopes.Access{Context: a.ctx, Type: in.Type, Perms: need})
		if ref := a.holdAnswer(in, dc); ref != nil {
			return ref
		}
		// A search that carries the constraint itself (the next page of
		// one the proxy constrained, whose link the server wrote with it)
		// is checked on its results alike.
		if ref := a.checkMatches(in, dc); ref != nil {
			return ref
		}
	}
	if in.searchOp == lastnOp && a.constrained == in.Type {
		// $lastn takes Observation's search parameters, the constraint's
		// among them, but servers support few there (HAPI: patient,
		// category, code, date) and may ignore the rest: where the proxy
		// evaluates the constraint, it holds every match to it too, in
		// place of the server (its total judged), whatever checked it first.
		if a.holdMatches(in) && constraintUnread(in, a.included) {
			return unreadConstraint()
		}
	}
	if in.Kind == Create || in.Kind == Update || in.Kind == Patch {
		if rd := a.tok.Scopes.Check(scopes.Access{Context: a.ctx, Type: in.Type, Perms: scopes.Read}); rd.Constrained() {
			a.readBack, _ = compileConstraint(in.Type, rd) // none: the answer stays withheld
		}
	}
	if a.patient != "" {
		if ref := p.confine(in, a); ref != nil {
			return ref
		}
	}
	if (in.Kind == HistoryType || in.Kind == HistorySystem) && !a.unrestricted {
		// Versions of many records, each judged on its own: an earlier
		// version of a record labelled since would pass (checkStored
		// follows the record for one resource's history only).
		return forbidden("type and system history are not allowed with a clearance short of every label")
	}
	if in.Conditional && !a.unrestricted {
		// Never sent on as it is: the FHIR server would act on matches the
		// proxy never sees (update or delete a record the clearance
		// withholds, or tell by its answer, 200 or 201, that one exists).
		// Resolved first, on its own and in a batch (resolveConditional),
		// it arrives here as the plain write; this holds if it did not.
		return forbidden("conditional writes are resolved by the proxy; this one was not")
	}
	if ref := a.criteriaCovered(in); ref != nil {
		return ref
	}
	// Where a match may be removed, an included record linked to it alone
	// is dropped (includes.go), by the links the matches come with.
	if a.includes = asksIncludes(in) && (!a.seesAll() || a.constrained != ""); a.includes {
		everything := includesEverything(in)
		if everything && slices.ContainsFunc(in.Params, func(prm Param) bool { return prm.Name == "_elements" }) {
			// _include=* follows every reference, which no element list
			// names: a match answered in part would come without the links
			// that tell an included record brought by a removed match
			// (found by FuzzSearchesAgree, the sandbox: pt-sensitive's app
			// got the encounter its withheld HIV test was drawn at).
			return refuse(http.StatusBadRequest, "not-supported", "_include=* cannot go with _elements here: ask for whole records, or name the includes")
		}
		specs := includeSpecs(in)
		summary := slices.ContainsFunc(in.Params, func(prm Param) bool { return prm.Name == "_summary" && prm.Value == "true" })
		if summaryText(in) || summary && (everything || slices.ContainsFunc(specs, includeSpec.summaryLeavesOut)) {
			// A summary leaves out references, which no element list can
			// keep: text all of them, true those R4 does not mark as
			// summary elements, which _include=* follows too (found by
			// probing the sandbox: a clinician's _summary=text got the
			// encounter only a withheld HIV test refers to), and an
			// include may name (DiagnosticReport:result). An include
			// whose link a summary leaves out is dropped where a match is
			// removed (inclusion.betrays), but the search would not say so.
			return refuse(http.StatusBadRequest, "not-supported", "_summary leaves out the references included records are judged by here: ask with _elements, or for whole records")
		}
		a.includeSpecs = specs
		keepElements(in, includeElements(a.includeSpecs))
		a.iterates = slices.ContainsFunc(a.includeSpecs, func(sp includeSpec) bool { return sp.iterate })
	}
	return judgedParams(in, a)
}

// criteriaCovered refuses a search whose criteria other types' records
// meet where the token may not search those types: which records match
// says something about those others. Found by probing: a system/ token
// with Observation.rs alone sent Observation?_has:Condition:subject:code=…
// upstream as it was, and the answer, passed unread to a token that sees
// everything its scopes name, told which patients have that condition;
// so did subject:Patient.name=… of patients' names. Included records are
// judged in the answer instead (access.inspects); here, as SMART-DIGEST
// has it for them, each type a criterion reads needs s (outright: a type
// searched only under a query constraint is not covered, since the
// server would not apply the constraint inside a chain):
//
//   - a chain reads the type it names (subject:Patient.name, or
//     patient.name, whose parameter names it: chainTargets); one of unnamed
//     type, or longer, may read any type, and needs s on all (*);
//   - _has:Type:reference:param reads Type, each Type of a nested one, and
//     all types when its last parameter chains on;
//   - _list reads List (but for a functional list, $current-problems and
//     the like, the server's own view of the searched type); _filter and
//     _query may read anything (*);
//   - _sort by a chained key (subject.name) orders by other records (*).
//
// Where answers are judged (patient context, a clearance short of every
// label) most of these are refused anyway, or resolved by the proxy
// (judgedParams, confine); this holds for every access alike, and for a
// conditional create's If-None-Exist criteria too (a batch entry's went
// upstream as they were where answers pass unread: whether the create
// happened told whether a record matched).
func (a *access) criteriaCovered(in *Interaction) *refusal {
	for _, params := range [...][]Param{in.Params, in.ifNoneCrit} {
		for _, prm := range params {
			for _, t := range criteriaTypes(prm) {
				if !a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: t, Perms: scopes.Search}) {
					what := t + " records, which the token's scopes do not allow it to search"
					if t == "*" {
						what = "records of any type, which needs s on every type"
					}
					return refuse(http.StatusForbidden, "forbidden", "parameter "+prm.Name+" searches by "+what)
				}
			}
		}
	}
	return nil
}

// criteriaTypes are the types whose records a search parameter's criteria
// read, other than the type searched ("*" for any); see criteriaCovered.
func criteriaTypes(prm Param) []string {
	name := prm.Name
	base, _, _ := strings.Cut(name, ":")
	switch base {
	case "_has":
		var types []string
		rest := name
		for strings.HasPrefix(rest, "_has:") {
			parts := strings.SplitN(rest, ":", 4) // _has, Type, reference, the rest
			if len(parts) < 4 || !knownType(parts[1]) {
				return []string{"*"}
			}
			types, rest = append(types, parts[1]), parts[3]
		}
		if len(types) == 0 || strings.Contains(rest, ".") { // _has alone (found by FuzzParsePath), or a chain at its end
			types = append(types, "*")
		}
		return types
	case "_list":
		for v := range strings.SplitSeq(prm.Value, ",") {
			if !strings.HasPrefix(v, "$") {
				return []string{"List"}
			}
		}
		return nil // functional lists ($current-problems): the server's own view of the searched type
	case "_filter", "_query":
		return []string{"*"}
	case "_sort":
		if strings.Contains(prm.Value, ".") {
			return []string{"*"}
		}
		return nil
	}
	if strings.HasPrefix(base, "_") || !strings.Contains(name, ".") {
		return nil
	}
	if _, target, _ := chainTarget(name); simpleChain(name) && target != "" {
		return []string{target}
	}
	return []string{"*"}
}

// decide checks an access in its context or, for a mixed token whose
// patient/ scopes do not allow it, as a user/ token: a user/ scope may
// allow it on its own terms, without the compartment. It returns the
// decision and the context it was made in.
func (a *access) decide(acc scopes.Access) (scopes.Decision, scopes.Context) {
	d := a.tok.Scopes.Check(acc)
	if !d.Allowed && acc.Context == scopes.Patient && a.tok.Scopes.HasContext(scopes.User) {
		acc.Context = scopes.User
		d = a.tok.Scopes.Check(acc)
	}
	return d, acc.Context
}

// searchable reports whether the token may read and search the records of
// type t as a whole (a bulk export's, $everything's): with r and s from
// scopes with no constraint, or from query-constrained ones (SMART v2:
// system/Observation.rs?category=laboratory) whose constraints the proxy
// evaluates, held, which every record of the type it passes must then
// match (a scope whose constraint it cannot evaluate allows nothing).
func searchable(a *access, t string) (held *localConstraint, ok bool) {
	d := a.tok.Scopes.Check(scopes.Access{Context: a.ctx, Type: t, Perms: scopes.Read | scopes.Search})
	switch {
	case !d.Allowed:
		return nil, false
	case !d.Constrained():
		return nil, true
	case t == "*":
		return nil, false
	}
	held, ref := compileConstraint(t, d)
	return held, ref == nil
}

// searches is searchable's verdict alone.
func searches(a *access, t string) bool {
	_, ok := searchable(a, t)
	return ok
}

// scopedTypes are the types the token's resource scopes name in its
// context, each once, that it may read and search as a whole (searchable):
// what a bulk export or $everything asks for when the client names none.
func scopedTypes(a *access) []string {
	var out []string
	for sc := range a.tok.Scopes.All() {
		if t := sc.Type(); sc.Kind() == scopes.Resource && sc.Context() == a.ctx && knownType(t) && !slices.Contains(out, t) && searches(a, t) {
			out = append(out, t)
		}
	}
	return out
}

// judgedParams keeps in an answer what the proxy judges it by, when it
// judges it, and keeps out of a search what it cannot judge.
//
// An element selection (_elements) also asks for meta (security labels)
// and, for a patient/ token, the references that place the type in the
// compartment; otherwise a server would leave them out, and a label or
// reference that is absent must never read as allowed. A selection with a
// modifier (_elements:exclude, which some servers support) and, for a
// patient/ token on a compartment type, _summary=text (which leaves the
// references out) are refused.
//
// With a clearance short of every label, the proxy withholds what the
// clearance does not release, so a search must not reveal it otherwise:
// criteria met by other resources (_has, _filter, _list, _query, longer
// chains: Patient?_has:Observation:subject:_security=PSY would name the
// patients with psychiatric records) are refused, and so are _contained and _containedType (a
// contained resource answered on its own has lost its container's labels).
// A chain of one link (simpleChain) is marked for the proxy to resolve
// before forwarding (resolveChains), and _summary=count (which the server
// would answer counting what is withheld) for the proxy to answer itself
// (countMatches), in a search of one type; elsewhere it is refused.
func judgedParams(in *Interaction, a *access) *refusal {
	switch in.Kind {
	case Read, VRead, SearchType, SearchCompart, SearchSystem, HistoryInstance, HistoryType, HistorySystem:
	default:
		return nil
	}
	if (in.Kind == SearchType || in.Kind == SearchCompart) && in.searchOp == "" && a.constrained == in.Type && asksCount(in.Params) {
		// Under a query constraint the proxy may hold the matches to it
		// itself (access.holdMatches), and then sends on no total it cannot
		// vouch for: a count would come without one. It counts them itself.
		// (Found by FuzzSearchesAgree, the sandbox: a clinician granted
		// laboratory results only, of every label, counting
		// category=laboratory,vital-signs got a Bundle with no total.)
		in.counts = true
	}
	a.asked = requestPatient(in)
	if ref := unnamedDisclosure(in, a); ref != nil {
		return ref
	}
	if a.seesAll() {
		if slices.ContainsFunc(in.Params, func(prm Param) bool { return prm.Name == "_elements" }) && (a.auditsAll || a.transformed || a.inspects(*in)) {
			// The answer is read, and its audit event names the patients
			// it disclosed: a record selected without the reference that
			// names its patient (or the meta its labels are in) would go
			// unnamed (found by probing: a clinician's
			// Observation?category=laboratory&_elements=code disclosed two
			// patients' results, and its event named neither).
			widenElements(in, ownerElements(in))
		}
		return nil
	}
	_, inComp := compartment[in.Type]
	inComp = inComp && a.patient != ""
	a.subsets = slices.ContainsFunc(in.Params, func(prm Param) bool {
		return strings.HasPrefix(prm.Name, "_elements") || strings.HasPrefix(prm.Name, "_summary") && (prm.Value == "true" || prm.Value == "text")
	})
	for i := range in.Params {
		prm := &in.Params[i]
		base, mod, _ := strings.Cut(prm.Name, ":")
		switch {
		case (base == "_elements" || base == "_summary") && mod != "":
			return refuse(http.StatusBadRequest, "not-supported", prm.Name+" is not supported here")
		case base == "_elements":
			// What it is judged by, and (the compartment references of
			// each type asked, which a patient app's is judged by too)
			// what names it in the audit event.
			for _, e := range append(judgedElements(in.Type, false), ownerElements(in)...) {
				prm.Value = withElements(prm.Value, e)
			}
			if _, owned := compartment[in.Type]; owned || in.Type == "Binary" {
				a.ownersAsked = in.Type
			}
		case base == "_summary" && inComp && summaryLeavesOut(in, in.Type, compartmentRoots(in.Type)):
			return refuse(http.StatusBadRequest, "not-supported", "_summary="+prm.Value+" leaves out the reference that places a record of "+in.Type+" in the patient's compartment; use _elements")
		case base == "_summary" && in.Type == "Binary" && (prm.Value == "text" || prm.Value == "true"):
			// A Binary is judged by its securityContext, and one without
			// is bound to nothing: a summary that left it out (text does,
			// a server's true may) would pass a withheld Binary as that
			// (found by probing: _summary=true answered 200 for a Binary
			// bound to a withheld record, whose whole read is 404).
			return refuse(http.StatusBadRequest, "not-supported", "_summary="+prm.Value+" may leave out a Binary's securityContext, by which it is judged; use _elements")
		case base == "_revinclude" && provenanceOf(prm.Value, in.Type):
			// The Provenances of the records kept come after them, and are
			// judged by them (access.provenanceKept).
			a.provenances = true
		case a.unrestricted: // nothing is withheld for its labels: the rest may pass
		case base == "_contained" || base == "_containedType":
			return refuse(http.StatusForbidden, "forbidden", prm.Name+" is not allowed with a clearance short of every label")
		case base == "_summary" && prm.Value == "count", base == "_count" && prm.Value == "0":
			if in.Kind != SearchType && in.Kind != SearchCompart || in.searchOp != "" { // ($lastn and $docref answer otherwise than a search)
				return refuse(http.StatusForbidden, "forbidden", prm.Name+"="+prm.Value+" would count records the token's clearance withholds; the proxy counts a search of one type only")
			}
			in.counts = true // counted by the proxy (count.go)
		case simpleChain(prm.Name) && in.Kind != SearchSystem:
			if ref := chainCriteria(prm.Name); ref != nil {
				return ref
			}
			in.chained = true // resolved by the proxy, over what the access may see (chains.go)
		case searchesOthers(prm.Name):
			return refuse(http.StatusForbidden, "forbidden", "parameter "+prm.Name+
				" searches by records the token's clearance may withhold; search those first, then by reference")
		}
	}
	if in.Type == "Provenance" && (in.Kind == SearchType || in.Kind == SearchCompart) && a.patient == "" {
		pageOfProvenances(in)
	}
	return nil
}

// judgedElements are the root elements of a record of type t that the proxy
// judges it by, which an element selection (_elements) must keep: meta (the
// labels); a Binary's securityContext and a Provenance's target (the
// records they are bound to: Proxy.judgeContext); with refs, the references
// that place it in the Patient compartment (which name its patient).
func judgedElements(t string, refs bool) []string {
	out := []string{"meta"}
	switch t {
	case "Binary":
		out = append(out, "securityContext")
	case "Provenance":
		out = append(out, "target")
	}
	if refs {
		out = append(out, compartmentRoots(t)...)
	}
	return out
}

// ownerElements are the root elements an element selection must keep for
// the audit event to name whose records it disclosed (disclosure): meta
// (their labels) and the references that place each type the request
// asks for in the Patient compartment (every compartment type's, for a
// search or history of the system).
func ownerElements(in *Interaction) []string {
	out := []string{"meta"}
	for _, t := range askedTypes(in) {
		for _, e := range compartmentRoots(t) {
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	return out
}

// askedTypes are the types of the records a read, search or history asks
// for: its type, or those _type names, or every compartment type; with
// the types its includes name (a reverse include's, a forward include's
// target where it names one).
func askedTypes(in *Interaction) []string {
	types := []string{in.Type}
	if in.Type == "" {
		types = nil
		for _, v := range values(in.Params, "_type") {
			types = append(types, strings.Split(v, ",")...)
		}
		if types == nil {
			return compartmentTypes
		}
	}
	for _, sp := range includeSpecs(in) {
		switch {
		case sp.rev && sp.src != "":
			types = append(types, sp.src)
		case !sp.rev && sp.target != "":
			types = append(types, sp.target)
		}
	}
	return types
}

// compartmentTypes are the types of compartment, sorted.
var compartmentTypes = slices.Sorted(maps.Keys(compartment))

// widenElements adds names to every plain element selection (_elements)
// of a request.
func widenElements(in *Interaction, names []string) {
	for i := range in.Params {
		if prm := &in.Params[i]; prm.Name == "_elements" {
			for _, e := range names {
				prm.Value = withElements(prm.Value, e)
			}
		}
	}
}

// unnamedDisclosure refuses, where every disclosure is named in its audit
// event (access.auditsAll) and neither the token's context nor the
// request names the patient, a summary that leaves out the reference
// naming a record's patient: _summary=text of any record in the
// compartment, _summary=true of one whose reference R4 does not mark as a
// summary element (an Appointment's participants, a Device's patient),
// asked for or named by an include. (A forward include that names no
// target type goes: most of what one may bring never names a patient,
// though 157 R4 reference parameters may reach those six types.)
// Its records would go out named for no one (found by probing: a
// clinician's Observation?category=laboratory&_summary=text disclosed two
// patients' results, and its event named neither). An element selection
// keeps the references (ownerElements); a request that names its patient
// (a search by patient, a compartment search) has its records named for
// that patient (disclosure.add).
func unnamedDisclosure(in *Interaction, a *access) *refusal {
	if !a.auditsAll || a.patient != "" || a.asked != "" || !slices.ContainsFunc(in.Params, func(prm Param) bool {
		return prm.Name == "_summary" && (prm.Value == "text" || prm.Value == "true")
	}) {
		return nil
	}
	types := askedTypes(in)
	if summaryText(in) && asksIncludes(in) {
		types = compartmentTypes // any include may bring any type
	}
	for _, t := range types {
		if _, owned := compartment[t]; owned && summaryLeavesOut(in, t, compartmentRoots(t)) {
			return refuse(http.StatusBadRequest, "not-supported", "the summary asked for leaves out the reference that names the patient of a record of "+t+
				", whom the audit of what this server discloses names; use _elements, or name the patient")
		}
	}
	return nil
}

// compartmentRoots are the root elements of the references that place a
// record of type t in the Patient compartment (compartment).
func compartmentRoots(t string) []string {
	var out []string
	for _, f := range compartment[t].fields {
		top, _, _ := strings.Cut(f, ".")
		out = append(out, top)
	}
	return out
}

// pageOfProvenances asks a search of Provenance, whose matches the proxy
// judges by reading the records they are about (access.targets, at most
// maxTargetReads of them a response), for pages no larger than that: a
// larger page of Provenances about as many records would lose those past
// the reads (a server may always send fewer than _count asks).
func pageOfProvenances(in *Interaction) {
	for i := range in.Params {
		if p := &in.Params[i]; p.Name == "_count" {
			if n, err := strconv.Atoi(p.Value); err == nil && n > maxTargetReads { // (capCount checked the form)
				p.Value = strconv.Itoa(maxTargetReads)
			}
			return
		}
	}
	in.Params = append(in.Params, Param{Name: "_count", Value: strconv.Itoa(maxTargetReads)})
}

// withElements adds an element name to a comma-separated list that lacks it.
func withElements(list, name string) string {
	have := strings.Split(list, ",")
	if !slices.Contains(have, name) {
		have = append(have, name)
	}
	return strings.Join(slices.DeleteFunc(have, func(e string) bool { return e == "" }), ",")
}

func orAll(t string) string {
	if t == "" {
		return "all types"
	}
	return t
}

// applyConstraint makes a query constraint part of the request: searches
// get the constraint's parameters; a read becomes a search by _id with them,
// so the FHIR server proves the match. (A write is held to it by the proxy:
// compileConstraint.)
func (p *Proxy) applyConstraint(in *Interaction, d scopes.Decision) *refusal {
	if ref := constrainedSearch(in); ref != nil {
		return ref
	}
	extra, ref := constraintParams(d)
	if ref != nil {
		return ref
	}
	switch in.Kind {
	case SearchType, SearchCompart:
		in.Params = append(in.Params, extra...)
	case Read:
		// Sent as Type?_id=…&constraint (no id in the path), so the server
		// proves the match; the answer is unwrapped to the one resource.
		// The read's own parameters (_elements, _summary, _format) go with
		// it, judged as a search's are (found by probing: they were
		// dropped, so a constrained read asked for part of a record got
		// all of it).
		in.Kind, in.Params = SearchType, append(append([]Param{{Name: "_id", Value: in.ID}}, in.Params...), extra...)
		in.unwrap, in.ID = in.ID, ""
	default:
		return refuse(http.StatusForbidden, "forbidden", "this interaction is not allowed under a constrained scope")
	}
	return nil
}

// constraintParams are the search parameters that apply a decision's
// constraints: one scope's pairs, or several scopes' single pairs of one
// name ORed with a comma. Other combinations cannot be one search.
func constraintParams(d scopes.Decision) ([]Param, *refusal) {
	var alts [][]Param
	for sc := range d.Constraints() {
		alts = append(alts, sc.Constraint())
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	name := ""
	var vals []string
	for _, alt := range alts {
		if len(alt) != 1 || name != "" && alt[0].Name != name {
			return nil, refuse(http.StatusForbidden, "forbidden", "narrow the request to one of the permitted categories")
		}
		name = alt[0].Name
		vals = append(vals, alt[0].Value)
	}
	return []Param{{Name: name, Value: strings.Join(vals, ",")}}, nil
}

// constrainedSearch refuses the parameters whose answer a constraint does
// not bound, and which the proxy cannot bound either:
// _containedType=container answers with the containers of what matched
// (found by probing, with _contained and _query, which went upstream with
// the constraint added), and a named query is the server's own, which
// need not apply the other parameters. (Includes bring entries the proxy
// judges one by one: access.holdAnswer.)
func constrainedSearch(in *Interaction) *refusal {
	for _, prm := range in.Params {
		switch base, _, _ := strings.Cut(prm.Name, ":"); base {
		case "_contained", "_containedType", "_query":
			return refuse(http.StatusForbidden, "forbidden", prm.Name+" is not allowed under a constrained scope: the answer could hold records the constraint was not applied to")
		}
	}
	return nil
}

// holdAnswer prepares the judging of a constrained search's answer (d,
// whose constraints it is under) where the server's matching alone does
// not bound it:
//
//   - _include and _revinclude bring entries the server did not apply the
//     constraint to, and so may a page of a search that may have asked for
//     them (a page link carries no parameters). Each entry the answer does
//     not mark as a match is held to the constraint as the proxy evaluates
//     it (access.judgeEntry); where the proxy cannot evaluate it, those of
//     the constrained type are dropped.
//   - A constraint's parameter repeated in the search (the client's
//     category=vital-signs beside the constraint's category=laboratory)
//     is bounded only by a server that ANDs repeated parameters, as FHIR
//     has it; one that took the first or the last would answer outside
//     the constraint. So every entry of the constrained type is held to it
//     too, and where the proxy cannot evaluate it the search is refused.
//     So is every entry of a page that continues a search held so
//     (Interaction.pageHeld).
//
// An element selection then keeps what the constraint reads, or a record
// would lose it and be dropped.
func (a *access) holdAnswer(in *Interaction, d scopes.Decision) *refusal {
	includes, repeated := in.pageURL != "" || asksIncludes(in), in.pageHeld
	for sc := range d.Constraints() {
		for _, pair := range sc.Constraint() {
			n := 0
			for _, prm := range in.Params {
				if prm.Name == pair.Name {
					n++
				}
			}
			repeated = repeated || n > 1
		}
	}
	if !includes && !repeated {
		return nil
	}
	lc, _ := compileConstraint(in.Type, d)
	if repeated && lc == nil {
		return refuse(http.StatusForbidden, "forbidden", "the search repeats a parameter of the scope's constraint, and the proxy cannot check the answer against it; search without it")
	}
	a.unmatched, a.recheck, a.included = includes, repeated, lc
	if lc != nil {
		keepConstraintElements(in, lc)
	}
	if repeated && constraintUnread(in, lc) {
		return unreadConstraint()
	}
	return nil
}

// holdMatches holds every entry of a constrained search's answer of the
// constrained type, the server's matches too, to the constraint as the
// proxy evaluates it (access.recheck), where the server may not have
// applied it: $lastn's, and a batched search's, which cannot carry
// Prefer: handling=strict. It reports false, holding nothing, when the
// proxy cannot evaluate the constraint.
func (a *access) holdMatches(in *Interaction) bool {
	lc, _ := compileConstraint(in.Type, a.tok.Scopes.Check(scopes.Access{Context: a.ctx, Type: in.Type, Perms: letters(in)}))
	if lc == nil {
		return false
	}
	a.recheck, a.checked, a.included = true, false, lc // in place of the server, not only after it
	keepConstraintElements(in, lc)
	return true
}

// checkMatches holds the server's matches of a constrained search, or of
// the search by _id a constrained read becomes, to the constraint too,
// where the proxy evaluates every scope's constraint (SECURITY-BASELINE:
// constraints are checked on results). The server is asked to apply it,
// with Prefer: handling=strict; but a server that ignores a parameter it
// does not support, strict or not, answers unconstrained (found by
// probing: smarttest's fake server does, and a patient app granted
// laboratory results read a vital sign there, by search and by id). A
// constraint the proxy evaluates only in part, or not at all, is left to
// the server as before: holding to part of it would withhold what the
// rest allows. _summary=text, which leaves out what the constraint reads
// (and would have every record withheld), is refused where the proxy
// checks (constraintUnread). The answer's total, and a _summary=count,
// stay the server's unless the check removes a match: a count shows no
// record, and a server that applied the constraint counted right.
func (a *access) checkMatches(in *Interaction, d scopes.Decision) *refusal {
	if a.recheck {
		return nil
	}
	lc, _ := compileConstraint(in.Type, d)
	if lc == nil || lc.partial {
		return nil
	}
	if constraintUnread(in, lc) {
		return unreadConstraint()
	}
	a.recheck, a.checked, a.included = true, true, lc
	keepConstraintElements(in, lc)
	return nil
}

// keepConstraintElements adds what the constraint lc reads to an element
// selection, or a record would lose it and be dropped.
func keepConstraintElements(in *Interaction, lc *localConstraint) { keepElements(in, lc.elements()) }

// keepElements adds elements to the request's element selection, if it
// has one.
func keepElements(in *Interaction, elements []string) {
	for i := range in.Params {
		if prm := &in.Params[i]; prm.Name == "_elements" {
			for _, e := range elements {
				prm.Value = withElements(prm.Value, e)
			}
		}
	}
}

// confine imposes the Patient compartment on a patient/ token.
func (p *Proxy) confine(in *Interaction, a *access) *refusal {
	forbidden := func(msg string) *refusal { return refuse(http.StatusForbidden, "forbidden", msg) }
	pid := a.patient
	_, inComp := compartment[in.Type]
	isPatient, shared := in.Type == "Patient", a.shared(in.Type)
	// A Binary or a Provenance is in no compartment, but a read of one is
	// judged by the records it is bound to: the one a Binary's
	// securityContext names, a Provenance's targets (Proxy.judgeContext).
	boundRead := (in.Type == "Binary" || in.Type == "Provenance") && (in.Kind == Read || in.Kind == VRead)
	// A Binary bound to one of the patient's records may be written whole
	// (Proxy.patientsBound), and a Provenance about them created (never
	// changed).
	binaryWrite := in.Type == "Binary" && (in.Kind == Create || in.Kind == Update || in.Kind == Delete)
	provenanceWrite := in.Type == "Provenance" && in.Kind == Create
	switch {
	case in.Type == "" && in.Kind != Batch:
		return forbidden("system-level interactions are not allowed with patient context")
	case !inComp && !isPatient && !shared && in.Kind != Batch && !boundRead && !binaryWrite && !provenanceWrite:
		return forbidden(in.Type + " is outside the patient compartment")
	}
	switch in.Kind {
	case Read, VRead, HistoryInstance:
		if isPatient && in.ID != pid {
			return outsideGrant() // another patient's record looks absent
		}
	case SearchCompart:
		if in.Compartment != pid {
			return forbidden("the compartment is another patient's")
		}
		if shared {
			// Searched as its type, it would find records the compartment
			// holds none of (a shared type is in no patient's): the
			// answer to another search. Found by FuzzReadsAgree (the
			// sandbox).
			return refuse(http.StatusBadRequest, "invalid", in.Type+" is not in the Patient compartment: search "+in.Type+" itself")
		}
		in.Kind, in.Compartment = SearchType, ""
		fallthrough
	case SearchType:
		for _, prm := range in.Params {
			if prm.Name == "_revinclude" && provenanceOf(prm.Value, in.Type) {
				// US Core's: each Provenance comes only with the
				// patient's records it is about (access.provenanceKept);
				// with a shared type's, none does.
				a.provenances = true
				continue
			}
			if simpleChain(prm.Name) {
				if ref := patientChain(in, prm, pid, a); ref != nil {
					return ref
				}
				continue
			}
			if forbiddenForPatients(prm.Name) {
				return forbidden("parameter " + prm.Name + " is not allowed with patient context")
			}
			base, mod, _ := strings.Cut(prm.Name, ":")
			if !patientParams[base] || shared || base == "_id" && !isPatient {
				continue
			}
			if mod != "" && mod != "Patient" {
				return forbidden("modifier :" + mod + " is not allowed on a patient parameter")
			}
			if !namesOnly(prm.Value, pid, patientTyped(base, mod), a) {
				return forbidden("the search names another patient")
			}
		}
		switch {
		case isPatient:
			in.Params = appendOnce(in.Params, Param{Name: "_id", Value: pid})
		case inComp && in.searchOp == docrefOp:
			// $docref's patient is an operation parameter, the id of one
			// (US Core: 1..1, an id), not a reference to search by: it
			// goes once, as the id. The client's own name only this
			// patient (above).
			in.Params = slices.DeleteFunc(in.Params, func(prm Param) bool {
				base, _, _ := strings.Cut(prm.Name, ":")
				return base == "patient"
			})
			in.Params = append(in.Params, Param{Name: "patient", Value: pid})
		case inComp:
			in.Params = appendOnce(in.Params, Param{Name: compartment[in.Type].param, Value: "Patient/" + pid})
		}
	case HistoryType, SearchSystem, HistorySystem:
		return forbidden("system-wide searches and type history are not allowed with patient context")
	case Create, Update, Patch, Delete:
		// A patch is applied by the proxy and sent as the update it makes
		// (Proxy.applyPatch).
		if in.Conditional {
			return forbidden("conditional writes are resolved by the proxy; this one was not") // as above
		}
		if shared || isPatient && in.Kind != Update && in.Kind != Patch {
			return forbidden("this write is not allowed with patient context")
		}
		if isPatient && in.ID != pid {
			return outsideGrant()
		}
	}
	return nil
}

// appendOnce appends prm to params unless they hold it already, exactly
// (name and value): a search ANDs its parameters, so the same one twice
// finds what it finds once. Found by FuzzSearchesAgree (the sandbox): a
// server that writes its next link with the query it was sent (offset
// paging) gave each page of a patient app's search one patient parameter
// more than the last, until the proxy refused the 64th page as too many.
func appendOnce(params []Param, prm Param) []Param {
	if slices.Contains(params, prm) {
		return params
	}
	return append(params, prm)
}

// inspects reports whether the response of an interaction must be read.
// It need not be only when the request proves everything the response
// could break: no compartment to confine it to (no patient context), no
// label the clearance could refuse (consent.Clearance.Unrestricted), no
// constraint to check, and an interaction whose answer can hold only the
// type the scopes were checked for (instance reads and history, searches
// without includes or contained resources, and without an underscored
// parameter FHIR does not define: checkParamNames). Then the answer passes as from
// a plain reverse proxy, streamed, and the upstream is trusted to answer
// what it was asked.
func (a *access) inspects(in Interaction) bool {
	switch in.Kind {
	case Delete, Capabilities:
		return false
	}
	if !a.seesAll() || a.constrained != "" || in.unwrap != "" || in.pageURL != "" {
		return true
	}
	switch in.Kind {
	case Read, VRead:
		return false
	case HistoryInstance, SearchType, HistoryType:
		if a.relink != nil { // a Bundle, whose links move
			return true
		}
		for _, p := range in.Params {
			name, _, _ := strings.Cut(p.Name, ":")
			if name == "_include" || name == "_revinclude" || name == "_contained" || name == "_containedType" || unknownResultParam(name) {
				return true
			}
		}
		return false
	}
	return true
}
