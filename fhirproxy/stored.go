package fhirproxy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// checkStored checks the stored version an update, patch or delete would
// replace or remove, when the token could not see every version: with
// patient context it must be the patient's (a write must not take over
// another's record), and with a clearance short of every label it must be
// within the clearance (a write must not strip the labels of a record the
// token may not read, nor delete one). What fails answers the 404 a read of
// it gets, and so does a free id: an update that would create, or a delete
// of nothing, must not tell a free id from a withheld one (no existence
// oracle; a new resource is created with POST).
//
// An update or a patch must also keep the stored version's security
// labels: an app may raise them, never lower or remove them (an app
// cleared for a record could otherwise launder it to every app that is
// not). So every update and patch reads the stored version; with every
// label cleared and no patient context, a free id is still created. A
// patch of a labelled record may not touch meta at all (its result is
// not known before the server applies it): change the labels with PUT.
// With patient context the proxy applies a JSON Patch itself, to the
// version read here (applyPatch; body is the patch), and holds its result
// as it holds an update's new content (next).
//
// A vread or an instance history is checked the same way before it is
// forwarded: an earlier version is shown only while the resource itself
// may be (the versions are then judged one by one as they come back). A
// record labelled, or moved to another patient, after it was written is
// withheld in every version, not only in those written after. A resource
// the server no longer has (deleted: 410) leaves its versions to be judged
// one by one.
func (p *Proxy) checkStored(ctx context.Context, in Interaction, a *access, next *projection, body []byte, sparesLabels bool) *refusal {
	read, labelled := false, in.Kind == Update || in.Kind == Patch
	switch in.Kind {
	case Update, Patch, Delete:
	case VRead, HistoryInstance:
		read = true
	default:
		return nil
	}
	if in.Conditional && labelled {
		return p.checkMatches(ctx, in, next, sparesLabels)
	}
	inComp := a.patient != "" && in.Type != "Patient"                    // a patient/ token's own Patient is checked by id
	sees := !inComp && a.unrestricted && a.held == nil && a.proof == nil // the access may see every stored version
	// (A delete the access may make whatever is stored is read where
	// every disclosure is audited, for its events to name whose record it
	// removes.)
	if sees && !labelled && !(in.Kind == Delete && a.auditsAll) || in.ID == "" {
		return nil
	}
	if !a.entries.spend() {
		return tooManyReads()
	}
	st, pr, stored, etag, err := p.fetchVersion(ctx, in.Type+"/"+in.ID, "")
	if st == http.StatusOK && !read {
		a.touch(pr)
	}
	switch {
	case err != nil:
		return refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
	case in.fresh && st == http.StatusOK:
		return refuse(http.StatusConflict, "conflict", "the criteria match no record, and a record has the body's id")
	case st == http.StatusOK && (pr.ResourceType != in.Type || pr.ID != in.ID):
		return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered with another resource")
	case (read || sees && a.patient == "") && (st == http.StatusNotFound || st == http.StatusGone):
		return nil // nothing stored to protect, nor to tell of
	case st == http.StatusOK && a.held != nil && !a.held.matches(stored):
		return outsideGrant() // as a read of it under the constraint answers
	case read && st == http.StatusOK:
		if v, _ := p.judgeRead(ctx, a, pr); v != keep {
			return outsideGrant()
		}
		return nil
	case st != http.StatusOK:
		return notFound()
	case inComp && !pr.inCompartment(a) && in.Type != "Binary": // a Binary is judged by its context, below
		return outsideGrant()
	}
	if conf, tags := pr.labels(); !a.clearance.Allows(conf, tags) {
		return outsideGrant()
	}
	if ownBinary := inComp && in.Type == "Binary"; a.bound(pr) || ownBinary {
		// A Binary whose context the access may not see; with patient
		// context, one not bound to one of the patient's records (another
		// patient's, a shared record's, none), which a patient app may not
		// replace or remove.
		if v, ref := p.judgeContext(ctx, a, pr, ownBinary); ref != nil {
			return ref
		} else if v != keep {
			return outsideGrant()
		}
	}
	if a.proof != nil {
		if ref := p.proveStored(ctx, in, a); ref != nil {
			return ref
		}
	}
	if in.Kind == Patch && a.appliesPatches() {
		// A patient app's JSON Patch is applied to the version just judged
		// (applyPatch); what follows holds its result as an update's.
		var ref *refusal
		if next, body, ref = p.applyPatch(in, a, stored, body); ref != nil {
			return ref
		}
		a.patched = body
	}
	if ref := keepsLabels(in, pr, next, sparesLabels); ref != nil {
		return ref
	}
	if a.patient != "" && in.Type == "Patient" && next != nil {
		if ref := keepsIdentity(stored, body); ref != nil {
			return ref
		}
	}
	// The write must meet the version judged here: it goes upstream with
	// If-Match on it, so a record relabelled, moved to another patient or
	// linked in between is refused by the server (412), not overwritten.
	// A version the client names must be that one: the server would refuse
	// another, unless the record changed into it in between.
	if in.ifMatch != "" && etag != "" && !matchesVersion(in.ifMatch, etag) {
		return refuse(http.StatusPreconditionFailed, "conflict", "the resource has changed: If-Match names another version")
	}
	a.pin, a.stored = etag, stored
	return nil
}

// keepsIdentity refuses an update of the context patient's own record
// that changes Patient.link (decision D-6) or Patient.identifier. A link
// says that another record is the same person (replaced-by, replaces,
// refer, seealso): it moves the record into the other patient's
// compartment (the CompartmentDefinition counts Patient.link), and servers
// that merge records act on it. An identifier says which person the
// record is (a record number, a national id): another patient's, added to
// this record, would make a search by it find this patient (and an EHR
// matching on it could act on that), and would let the app write it beside
// references to the patient as the patient's own (checkOwnIdentifiers).
// Both are the EHR's record of identity, not something an app acting for
// one patient may assert: they must stay exactly as stored (an app that
// sends back the record it read keeps them).
func keepsIdentity(stored, next []byte) *refusal {
	for _, m := range [...]struct{ name, msg string }{
		{"link", "Patient.link cannot be changed with patient context: links between patient records are the EHR's to make"},
		{"identifier", "Patient.identifier cannot be changed with patient context: which identifiers are the patient's is the EHR's to say"},
	} {
		was, err1 := member(stored, m.name)
		now, err2 := member(next, m.name)
		if err1 != nil || err2 != nil || was != now {
			return refuse(http.StatusForbidden, "forbidden", m.msg)
		}
	}
	return nil
}

// member is a resource's member of that name in a canonical form (object
// members sorted, no space; absent, null and empty alike). The member is
// found by its exact name, as the FHIR server reads it (encoding/json
// would match "Link" too).
func member(body []byte, name string) (string, error) {
	var raw []byte
	s := jsonstrict.NewScanner(body)
	err := s.Object(func(n []byte) error {
		if string(n) != name {
			return s.Skip()
		}
		from := s.Offset()
		err := s.Skip()
		raw = s.Bytes(from, s.Offset())
		return err
	})
	var v []any
	if err != nil || raw == nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers as written, not rounded to float64
	if err := dec.Decode(&v); err != nil || len(v) == 0 {
		return "", err
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// keepsLabels refuses an update that would lower stored's labels, and a
// patch of a labelled record that could: one that is not a JSON Patch
// sparing its root, meta and contained (a FHIRPath expression can reach
// meta in ways the proxy does not evaluate).
func keepsLabels(in Interaction, stored, next *projection, sparesLabels bool) *refusal {
	switch {
	case next != nil && lowers(stored, next):
		return refuse(http.StatusForbidden, "forbidden", "an update must keep the stored record's security labels; an app may add labels, not lower or remove them")
	case in.Kind == Patch && len(stored.Meta.Security) > 0 && !sparesLabels:
		return refuse(http.StatusForbidden, "forbidden", "a patch of a labelled record must be a JSON Patch that leaves meta and contained alone; change labels with PUT, keeping its security labels")
	}
	return nil
}

// checkMatches checks a batched conditional update or patch (which only a
// token with every label cleared and no patient context gets this far
// with; on its own one is resolved first, resolveConditional) against what
// its criteria match now: the proxy runs the search first,
// and the new content must keep the labels of every match (a Bundle read
// as one resource carries its entries' labels). More than one match is
// the FHIR server's to refuse.
func (p *Proxy) checkMatches(ctx context.Context, in Interaction, next *projection, sparesLabels bool) *refusal {
	st, found, _, err := p.fetch(ctx, in.Type, encodeQuery(in.Params))
	switch {
	case err != nil:
		return refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
	case st != http.StatusOK || found.ResourceType != "Bundle":
		return refuse(http.StatusBadGateway, "invalid", "the FHIR server did not answer the update's criteria with a Bundle")
	}
	return keepsLabels(in, found, next, sparesLabels)
}

// lowers reports whether next drops a security label of stored: a lower
// confidentiality, or a sensitivity, policy or obligation tag removed.
// Labels of contained resources and of a Bundle's entries count, as they
// do when the resource is judged.
func lowers(stored, next *projection) bool {
	sc, stags := stored.labels()
	nc, ntags := next.labels()
	if nc.Rank() < sc.Rank() {
		return true
	}
	for _, t := range stags {
		if !slices.Contains(ntags, t) {
			return true
		}
	}
	return false
}

// judgeContext judges a bound resource (access.bound) by the records it
// is bound to, read from the upstream: a Binary by the one its
// securityContext names, a Provenance by each of its targets (at least
// one, at most maxTargets), each by judgeRecord. own asks that each be
// the patient's (in the compartment, not a shared record), as a
// Provenance's always must be with patient context. The refusal is the upstream's failure or
// a Bundle's spent reads, for a write to answer with; a read reads either
// as missing (drop).
func (p *Proxy) judgeContext(ctx context.Context, a *access, res *projection, own bool) (verdict, *refusal) {
	refs := res.boundRefs()
	if res.ResourceType == "Provenance" {
		own = a.patient != "" // (a patient's Provenance is about its records, not shared ones)
	}
	if len(refs) == 0 {
		return drop, nil
	}
	for _, r := range refs {
		if v, ref := p.judgeRecord(ctx, a, r.Reference, own); v != keep || ref != nil {
			return drop, ref
		}
	}
	return keep, nil
}

// judgeRead judges a resource as a read of it is judged: judge, and for
// one bound to other records (needsContext) those records as they are
// now (judgeContext, which reads them). The refusal is as judgeContext's.
func (p *Proxy) judgeRead(ctx context.Context, a *access, pr *projection) (verdict, *refusal) {
	if v := a.judge(pr); v != needsContext {
		return v, nil
	}
	return p.judgeContext(ctx, a, pr, false)
}

// boundRefs are the records a bound resource (access.bound) is judged by:
// a Binary's securityContext, a Provenance's targets, of which there must
// be 1 to maxTargets (none otherwise: it is judged by nothing, and seen
// nowhere).
func (p *projection) boundRefs() []ref {
	if p.ResourceType != "Provenance" {
		return []ref{p.SecurityContext}
	}
	if len(p.Target) == 0 || len(p.Target) > maxTargets {
		return nil
	}
	return p.Target
}

// judgeRecord reads the record a bound resource names (v) and judges it as
// the access may see it now (type, compartment, labels): keep only for a
// record on this server by Type/id, not itself bound, and, with own, in
// the patient's compartment. One the proxy cannot read so (contained, on
// another server, absent) sees nothing. The read counts in a Bundle's.
func (p *Proxy) judgeRecord(ctx context.Context, a *access, v string, own bool) (verdict, *refusal) {
	ref, ok := a.localRef(v)
	if !ok {
		return drop, nil
	}
	if !a.entries.spend() {
		return drop, tooManyReads()
	}
	st, pr, _, err := p.fetch(ctx, ref, "")
	switch {
	case err != nil:
		return drop, refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
	case st != http.StatusOK || pr.ResourceType+"/"+pr.ID != ref || a.bound(pr) || pr.ResourceType == "Binary" || own && !pr.inCompartment(a):
		return drop, nil
	}
	verdict := a.judge(pr)
	if id := a.patientOf(pr); verdict == keep && id != "" {
		if a.owners == nil {
			a.owners = map[string]string{}
		}
		a.owners[ref] = id
	}
	return verdict, nil
}

// patientsBound checks a Binary or a Provenance a patient app writes: it
// is bound to its patient's records (boundRefs: a Binary's
// securityContext, a Provenance's 1 to maxTargets targets), each on this
// server in the compartment (the patient's Patient or one of its records;
// not a shared one) as the access may see it now (judgeRecord, a read),
// or the fullUrl of a record of the compartment's types the same Bundle
// creates or updates, checked as that entry (a document filed with its
// content; a reading with its provenance). (A stored Binary, which a
// write replaces or removes, checkStored judges by judgeContext alone: a
// fullUrl there names no record. A patient app never changes or removes a
// Provenance: confine.)
func (p *Proxy) patientsBound(ctx context.Context, a *access, res *projection) *refusal {
	refused := refuse(http.StatusForbidden, "forbidden", "with patient context a Binary is bound (securityContext) to one of the patient's records this token may read, "+
		"by Type/id on this server, or by the fullUrl of one the same transaction writes")
	if res.ResourceType == "Provenance" {
		refused = refuse(http.StatusForbidden, "forbidden", "with patient context a Provenance is about the patient's records this token may read "+
			"(1 to "+itoa(maxTargets)+" targets, by Type/id on this server, or by the fullUrl of one the same transaction writes)")
	}
	refs := res.boundRefs()
	if len(refs) == 0 {
		return refused
	}
	for _, r := range refs {
		if isURN(r.Reference) {
			if !a.entries.writesOwn(r.Reference) {
				return refused
			}
			continue
		}
		if v, ref := p.judgeRecord(ctx, a, r.Reference, true); ref != nil {
			return ref
		} else if v != keep {
			return refused
		}
	}
	return nil
}

// maxTargets is how many targets a Provenance judged by them may have:
// each is read to judge it (one, as a rule: the record it is about).
const maxTargets = 8

// maxTargetReads is how many records one response's Provenances may have
// the proxy read to judge them (access.targets): a page of Provenances
// about as many records. Past it, a Provenance about a record not yet
// read is left out (the Bundle then loses its total, as for any entry
// left out).
const maxTargetReads = 50

// targetReader judges, in a response inspected for a patient or for
// labels, a bound resource (a Binary, a Provenance) in a Bundle by the
// records it is bound to, as a read of it on its own is judged
// (judgeContext): a Provenance the Bundle did not keep after its targets
// (a Provenance search, a history, another reverse include, one that came
// first, a batched read), a Binary a search or a batch holds. It goes if
// each record, read from the upstream, may be seen (judgeRecord; with
// patient context a Provenance's must be the patient's). Each record is
// read once a response, at most maxTargetReads. The zero value (p nil)
// judges nothing.
type targetReader struct {
	p      *Proxy
	ctx    context.Context
	judged map[string]verdict // by Type/id (and "own" after it, as judgeRecord's own): what the access may see of it
	// failed: a read failed (the upstream, or a batch's spent reads): no
	// more are tried for this response, so a hung upstream costs one
	// timeout, not one a Provenance.
	failed bool
	// most is how many records it may read; 0 means maxTargetReads (an
	// export file's reader may read more: maxExportTargetReads).
	most int
	// spent is how many of those the readers of a batch's searches read
	// (nested), each with its own memo: a search's access judges records
	// its own way.
	spent int
}

// nested is a reader for a batched search's answer, judged with that
// search's access: its own memo, from the reads this response has left.
func (t *targetReader) nested() targetReader {
	left := cmp.Or(t.most, maxTargetReads) - len(t.judged) - t.spent
	return targetReader{p: t.p, ctx: t.ctx, failed: t.failed || left <= 0, most: left} // (most 0 would mean the default)
}

// spend counts the reads a nested reader made, and its failure, against t.
func (t *targetReader) spend(n targetReader) {
	t.spent += len(n.judged)
	t.failed = t.failed || n.failed
}

// readTargets readies a.targets where a judges, keeping one already
// readied: one reader an access, of at most maxTargetReads reads (a
// conditional write's criteria are searched with a copy of the access,
// which reads as many again).
func (p *Proxy) readTargets(ctx context.Context, a *access) {
	if (!a.seesAll() || a.auditsAll) && a.targets.p == nil {
		a.targets = targetReader{p: p, ctx: ctx}
	}
}

// owner reads, for the audit, a record that a bound resource an access
// keeps unjudged (one that sees everything: access.bound) is bound to
// (ref, Type/id on this server), so that the resource is named for its
// patient (access.owners, disclosure.add): once a response, within the
// reader's reads. Past them, or once a read failed, it is left unnamed.
func (t *targetReader) owner(a *access, ref string) {
	if t.p != nil {
		t.read(a, ref, ref, false)
	}
}

// read judges the record ref as judgeRecord does, once a response (by
// key), within the reader's reads: drop past them or once a read failed.
func (t *targetReader) read(a *access, key, ref string, own bool) verdict {
	if v, ok := t.judged[key]; ok {
		return v
	}
	if t.failed || len(t.judged)+t.spent >= cmp.Or(t.most, maxTargetReads) {
		return drop
	}
	v, failure := t.p.judgeRecord(t.ctx, a, ref, own)
	t.failed = failure != nil
	if t.judged == nil {
		t.judged = map[string]verdict{}
	}
	t.judged[key] = v
	return v
}

// judge judges a Provenance by each of its targets as it reads them: keep
// when a may see every one, withhold when the clearance withholds one
// (the Provenance is withheld with it), drop otherwise (also where the
// reader is off).
func (t *targetReader) judge(a *access, pr *projection) verdict {
	refs := pr.boundRefs()
	if t.p == nil || len(refs) == 0 {
		return drop
	}
	own := a.patient != "" && pr.ResourceType == "Provenance" // as judgeContext has it
	for _, r := range refs {
		ref, ok := a.localRef(r.Reference)
		if !ok {
			return drop
		}
		key := ref
		if own {
			key += " own"
		}
		if v := t.read(a, key, ref, own); v != keep {
			return v // withhold: the Bundle is marked REDACTED, as for the record itself
		}
	}
	return keep
}

// remember adds a record a Bundle keeps to keys, the records (with
// patient context, the patient's, not shared ones) that Provenances after
// it may be about, when the search may bring Provenances
// (access.provenances). Past maxKeys it adds none, and a Provenance about
// a later record is left out, or, without patient context, judged by
// reading its targets (access.targets).
func (a *access) remember(keys map[string]bool, p *projection) map[string]bool {
	if !a.provenances || len(keys) >= maxKeys || a.patient != "" && !p.inCompartment(a) {
		return keys
	}
	if keys == nil {
		keys = map[string]bool{}
	}
	keys[p.ResourceType+"/"+p.ID] = true
	return keys
}

// maxKeys bounds the records a Bundle's inspection remembers for the
// Provenances that follow them (a streamed one's memory stays bounded).
const maxKeys = 4096

// judgeInBundle judges an entry of a Bundle (res, its resource) as
// judgeEntry does, and one judgeEntry leaves to the records it is bound to
// (needsContext: a Binary by its securityContext, a Provenance with the
// records it is about) by them (judgeBound): in a searchset, a whole one
// or a streamed one, after the records kept so far (keys, search), in a
// batch's entries and a criteria search's matches as the proxy reads them.
func (a *access) judgeInBundle(e *bundleEntry, res []byte, keys map[string]bool, search bool) verdict {
	v := a.judgeEntry(e, res)
	if v == needsContext {
		v = a.judgeBound(&e.res, keys, search)
	}
	return v
}

// judgeBound judges a Binary or a Provenance in a Bundle that judge bound
// to the records it names (needsContext), as a read of it on its own is
// judged: a Provenance is kept when it follows each record it is about
// (provenanceKept, over keys), and otherwise, as a Binary always is, by
// those records as the access's targetReader reads them; with patient
// context, in a search (search), a Provenance goes after the patient's
// records it is about or not at all, and only a batch's entries, which
// follow no record, are judged by reading. Whole and streamed Bundles
// alike.
func (a *access) judgeBound(p *projection, keys map[string]bool, search bool) verdict {
	if p.ResourceType == "Provenance" {
		switch {
		case a.provenanceKept(p, keys):
			return keep
		case search && a.patient != "":
			return drop
		}
	}
	return a.targets.judge(a, p)
}

// provenanceKept reports whether a Provenance in a Bundle is about records
// of the patient's the Bundle keeps (keys, by Type/id): each of its
// targets, at least one, at most maxTargets, names one of them on this
// server (a version of it too: versions follow the record).
func (a *access) provenanceKept(p *projection, keys map[string]bool) bool {
	refs := p.boundRefs()
	if len(refs) == 0 {
		return false
	}
	for _, r := range refs {
		if ref, ok := a.localRef(r.Reference); !ok || !keys[ref] {
			return false
		}
	}
	return true
}

// localRef turns a reference into Type/id on the upstream: relative, or
// absolute on this server (access.local), a version dropped. Anything else
// is not the upstream's to answer.
func (a *access) localRef(v string) (string, bool) {
	if strings.Contains(v, "://") {
		rest, ok := a.local(v)
		if !ok || !strings.HasPrefix(rest, "/") {
			return "", false
		}
		v = rest[1:]
	}
	segs := strings.Split(v, "/")
	if len(segs) == 4 && segs[2] == "_history" {
		segs = segs[:2]
	}
	if len(segs) != 2 || !knownType(segs[0]) || !validID(segs[1]) {
		return "", false
	}
	return segs[0] + "/" + segs[1], true
}

// fetch reads a stored resource (or, with a query, a search's Bundle, whose
// projection carries its entries' labels) from the upstream with the
// proxy's own credential, and its body (nil unless the status is 200).
func (p *Proxy) fetch(ctx context.Context, ref, query string) (int, *projection, []byte, error) {
	st, pr, b, _, err := p.fetchVersion(ctx, ref, query)
	return st, pr, b, err
}

// fetchVersion is fetch that also returns the answer's ETag, the version
// the projection is of ("" when the server sends none).
func (p *Proxy) fetchVersion(ctx context.Context, ref, query string) (int, *projection, []byte, string, error) {
	st, b, etag, err := p.get(ctx, ref, query)
	if err != nil {
		return 0, nil, nil, "", err
	}
	var pr projection
	if st != http.StatusOK {
		return st, &pr, nil, "", nil
	}
	if pr, err = parseResource(b); err != nil {
		return 0, nil, nil, "", err
	}
	return st, &pr, b, etag, nil
}

// get reads a path below the upstream's base, with a query, with the
// proxy's own credential: the status and at most Limits.MaxResp of body.
func (p *Proxy) get(ctx context.Context, ref, query string) (int, []byte, string, error) {
	return p.getURL(ctx, p.upstreamURL(ref, query))
}

// upstreamURL is the address of a path below the upstream's base, with a
// query.
func (p *Proxy) upstreamURL(ref, query string) string {
	u := *p.Upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + ref
	u.RawQuery = query
	return u.String()
}

// ownPage returns, on the upstream's base, the address of a page the FHIR
// server links in its answer to a search the proxy runs itself: one on
// its own base, or on the proxy's public base (Proxy.Base), where a server
// behind the proxy is told it lives and writes its links (HAPI with its
// server address set; the sandbox's data server). ok is false for another
// server's, where the proxy's own credential may not go. (Found by probing
// the sandbox: a patient app's chained search, whose target's matches
// paged on the public base, was refused with 502.)
func (p *Proxy) ownPage(u string) (string, bool) {
	bases := p.localBases()
	if _, ok := below(bases[0], u); ok {
		return u, true
	}
	if p.Base != "" {
		if rest, ok := below(bases[len(bases)-1], u); ok {
			return bases[0] + rest, true
		}
	}
	return "", false
}

// getURL reads an address on the upstream's base (the caller has checked
// it is) as get does, with the answer's ETag. A search goes with Prefer:
// handling=strict: the proxy's own searches decide what it allows (the
// search that proves a constraint, a conditional write's criteria, a
// chain's target), and a lenient server that ignored a parameter it does
// not support would prove, or find, more than was asked (found by review:
// the proof of a constraint went without it, where the client's constrained
// search has it).
func (p *Proxy) getURL(ctx context.Context, u string) (int, []byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if req.URL.RawQuery != "" {
		req.Header.Set("Prefer", "handling=strict")
	}
	if p.UpstreamAuth != nil {
		p.UpstreamAuth(req)
	}
	resp, err := p.transport().RoundTrip(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, p.Limits.resp()))
	return resp.StatusCode, b, resp.Header.Get("ETag"), err
}

// proveStored has the FHIR server prove that the stored record a delete
// removes matches one of the constraints the proxy cannot evaluate
// (access.proof): a search by its _id with that constraint's parameters
// must find it, tried scope by scope. The delete then goes with If-Match
// on the version read before the searches, and versions only move forward:
// if it succeeds, that version was still current when a search found it
// matching.
func (p *Proxy) proveStored(ctx context.Context, in Interaction, a *access) *refusal {
	for _, alt := range a.proof {
		found, ref := p.foundWith(ctx, in, a, alt)
		if ref != nil || found {
			return ref
		}
	}
	return outsideGrant() // as a read of it under the constraint answers
}

// foundWith reports whether a search of in's type by its _id with the
// parameters of one constraint finds it.
func (p *Proxy) foundWith(ctx context.Context, in Interaction, a *access, constraint []Param) (bool, *refusal) {
	if !a.entries.spend() {
		return false, tooManyReads()
	}
	st, body, _, err := p.get(ctx, in.Type, encodeQuery(append([]Param{{Name: "_id", Value: in.ID}}, constraint...)))
	switch {
	case err != nil:
		return false, refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
	case st != http.StatusOK:
		return false, refuse(http.StatusBadGateway, "transient", "the FHIR server did not answer the search that proves the constraint ("+itoa(st)+")")
	}
	found := false
	_, _, ok := readSearchPage(body, func(e *bundleEntry) {
		found = found || e.hasRes && !e.notMatch && e.res.ResourceType == in.Type && e.res.ID == in.ID
	})
	if !ok {
		return false, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the search that proves the constraint with invalid JSON or not a Bundle")
	}
	return found, nil
}
