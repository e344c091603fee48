package fhirproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonpatch"
	"github.com/smartkit/smartkit/internal/jsonstrict"
	"github.com/smartkit/smartkit/internal/r4"
	"github.com/smartkit/smartkit/scopes"
)

// checkWrite checks a write's new content and the stored version it
// replaces or deletes (checkStored), and authorises batch entries.
// contentType is the request's Content-Type, or entryResource for a batch
// entry's resource.
func (p *Proxy) checkWrite(ctx context.Context, contentType string, in Interaction, a *access, body []byte) *refusal {
	bad := func(msg string) *refusal { return refuse(http.StatusBadRequest, "invalid", msg) }
	var next *projection  // an update's new content
	var sparesLabels bool // a patch's (readPatch)
	content := body       // what the references are read from: a batched patch's own, not its Binary's
	if len(body) > 0 && in.Kind != Create && in.Kind != Update && in.Kind != Patch && in.Kind != Batch && in.opBody == nil {
		// It would go upstream unread: POST $everything with
		// {"name":"_mdm"} would ask HAPI for the linked records. (A POST
		// _search's form body was parsed into its parameters.)
		if in.Kind == Operation || in.searchOp != "" {
			return bad("an operation takes its parameters in the query (GET), where they are checked")
		}
		return bad("this interaction takes no body")
	}
	switch in.Kind {
	case Patch:
		var ref *refusal
		if contentType == entryResource {
			content, sparesLabels, ref = readEntryPatch(body)
		} else {
			sparesLabels, ref = readPatch(contentType, body)
		}
		if ref != nil {
			return ref
		}
		if a.appliesPatches() {
			// Its result is what is checked, as an update's content: the
			// proxy applies it to the stored version (checkStored,
			// applyPatch), and the result's labels are held as an
			// update's are.
			if t := bytes.TrimLeft(content, " \t\r\n"); len(t) == 0 || t[0] != '[' {
				return refuse(http.StatusForbidden, "forbidden", "with patient context or a constrained scope a patch is a JSON Patch, which the proxy applies to check its result; a FHIRPath Patch it does not evaluate: send a JSON Patch, or PUT the record")
			}
			sparesLabels = true
		}
	case Batch:
		return p.checkBatch(ctx, a, body)
	case Create, Update:
		if contentType != entryResource && contentType != "" && !jsonMediaType(contentType) {
			return refuse(http.StatusUnsupportedMediaType, "not-supported", "a resource is written as JSON (application/fhir+json)")
		}
		var ref *refusal
		if next, ref = checkContent(in, a, body); ref != nil {
			return ref
		}
		a.touch(next)
		if a.patient != "" && (next.ResourceType == "Binary" || next.ResourceType == "Provenance") {
			if ref := p.patientsBound(ctx, a, next); ref != nil {
				return ref
			}
		}
	}
	judged := !a.seesAll() && (in.Kind == Create || in.Kind == Update || in.Kind == Patch)
	if judged {
		if ref := noSearchReference(content, in.Kind == Patch); ref != nil {
			return ref
		}
	}
	if ref := p.checkStored(ctx, in, a, next, content, sparesLabels); ref != nil || !judged {
		return ref
	}
	if a.patched != nil {
		// The patch as applied (checkStored): what it refers to is read
		// from its result, as an update's is.
		in.Kind, content = Update, a.patched
		if ref := noSearchReference(content, false); ref != nil {
			return ref
		}
	}
	return p.checkReferences(ctx, in, a, content)
}

// noSearchReference refuses a written body holding a reference written as
// a search (refersByCriteria), or one that is not strict JSON.
func noSearchReference(body []byte, patch bool) *refusal {
	if byCriteria, err := refersByCriteria(body, patch); err != nil || byCriteria {
		return refuse(http.StatusForbidden, "forbidden", "a reference written as a search (Type?criteria) is resolved by the FHIR server over records this token may not see; name the resource by its id")
	}
	return nil
}

// checkContent checks a create's or an update's new content: one strict
// JSON resource of the URL's type (an update's of its id), within the
// clearance, in the compartment with patient context, and valid R4.
func checkContent(in Interaction, a *access, body []byte) (*projection, *refusal) {
	bad := func(msg string) (*projection, *refusal) { return nil, refuse(http.StatusBadRequest, "invalid", msg) }
	pr, err := parseResource(body)
	if err != nil {
		return bad("the body must be one strict JSON resource")
	}
	if pr.ResourceType != in.Type {
		return bad("the body's resourceType must match the URL")
	}
	if in.Kind == Update && pr.ID != in.ID {
		return bad("the body's id must match the URL")
	}
	conf, tags := pr.labels()
	if !a.clearance.Allows(conf, tags) {
		return nil, refuse(http.StatusForbidden, "forbidden", "the resource carries labels beyond the token's clearance")
	}
	if a.patient != "" && !pr.inCompartment(a) && pr.ResourceType != "Binary" && pr.ResourceType != "Provenance" { // bound: checkWrite
		return nil, refuse(http.StatusForbidden, "forbidden", "the resource would be outside the patient compartment")
	}
	typed, ref := validR4(body)
	if ref != nil {
		return nil, ref
	}
	a.written = typed
	if a.held != nil {
		if ref := a.held.holds(body); ref != nil {
			return nil, ref
		}
	}
	return &pr, nil
}

// appliesPatches reports whether the proxy applies a JSON Patch itself
// (applyPatch) to check its result: with patient context (the result must
// stay in the compartment) and under a constrained scope (it must match
// the constraint).
func (a *access) appliesPatches() bool { return a.patient != "" || a.held != nil }

// applyPatch applies a patient app's JSON Patch to the stored version
// checkStored read and judged, and checks the result as an update's
// content (checkContent). Sent as the patch, it would be applied by the
// FHIR server, whose result the proxy does not know before it is written:
// a patch can move a record out of the compartment (replace its subject,
// copy a performer over it) in ways no reading of the patch alone settles.
// So the result goes upstream as the update (access.patched), pinned to
// the version it was applied to, once checkStored has held its labels and
// links as an update's and checkWrite what it refers to.
func (p *Proxy) applyPatch(in Interaction, a *access, stored, patch []byte) (*projection, []byte, *refusal) {
	ops, err := jsonpatch.Parse(patch) // read strictly before (readPatch)
	var result []byte
	if err == nil {
		result, err = ops.Apply(stored)
	}
	if err != nil {
		return nil, nil, refuse(http.StatusUnprocessableEntity, "processing", "the patch cannot be applied to the record as stored: "+strings.TrimPrefix(err.Error(), "jsonpatch: "))
	}
	if int64(len(result)) > p.Limits.body() {
		return nil, nil, refuse(http.StatusRequestEntityTooLarge, "too-costly", "the patched record is larger than a write may be")
	}
	in.Kind = Update
	next, ref := checkContent(in, a, result)
	return next, result, ref
}

// checkReferences checks what a write judged by the proxy (a create,
// update or patch with patient context, or a clearance short of every
// label) refers to, once the stored version is checked: no other patient
// (with patient context), no record the access may not see, no reference
// in a form the proxy does not read (a reference written as a search was
// refused before). What the stored version it replaces already refers to
// may be written again (an app sends back the record it read): that tells
// nothing new, and moves the record into no compartment it was not in.
func (p *Proxy) checkReferences(ctx context.Context, in Interaction, a *access, body []byte) *refusal {
	var stored []byte // the version an update or patch replaces
	if in.Kind != Create {
		stored = a.stored
	}
	var fresh writtenRefs // what the written resource holds that the stored version does not
	if a.written != nil {
		fresh = readWrittenRefs(a.written.ProtoReflect())
		if stored != nil && (len(fresh.urls) > 0 || a.patient != "" && fresh.anyIdentity()) {
			if prev, err := r4.Parse(stored); err == nil {
				fresh = fresh.since(readWrittenRefs(prev.ProtoReflect()))
			}
		}
	}
	if a.patient != "" {
		if len(fresh.containedPatients) > 0 {
			return refuse(http.StatusForbidden, "forbidden", "with patient context a written record contains no Patient: "+
				"it would be another person's record, and their identifiers, filed in this patient's chart")
		}
		if len(fresh.patientRefs) > 0 {
			if ref := p.checkOwnIdentifiers(ctx, a, fresh.patientRefs); ref != nil {
				return ref
			}
		}
		if len(fresh.recordRefs) > 0 {
			if ref := p.checkLogicalRecords(ctx, a, fresh.recordRefs); ref != nil {
				return ref
			}
		}
	}
	// The references the stored version holds, as written: a Patient's
	// links to other patients among them, which keepsIdentity holds to
	// the stored ones.
	had := map[string]bool{}
	if stored != nil {
		_, _ = anyString(stored, func(v []byte, reference bool) bool {
			if reference {
				had[string(v)] = true
			}
			return false
		})
	}
	return p.checkReferencedRecords(ctx, a, body, in.Kind == Patch, had, fresh.urls)
}

// refersByCriteria reports whether a written body holds a conditional
// reference: a reference member whose value is a search (Patient?identifier=…,
// on this server or an absolute one), at any depth (contained resources,
// a patch's values). The FHIR server resolves it over every record it
// holds: to one the access may not see, it would link the record, and its
// answer (201, or its 400 or 412) would tell whether such a record exists.
// A patch (JSON or FHIRPath) can also set a reference's value alone, as a
// string: there any string that reads as a search of a resource type
// counts.
func refersByCriteria(body []byte, patch bool) (bool, error) {
	return anyString(body, func(v []byte, reference bool) bool {
		return reference && bytes.IndexByte(v, '?') >= 0 || patch && searchOfType(v)
	})
}

// maxReferencedRecords is how many records a write judged by the proxy
// may refer to: each is read to be checked.
const maxReferencedRecords = 32

// checkReferencedRecords checks the records on this server a write refers
// to, when the access does not see everything. With patient context it
// may name no other Patient, anywhere in it (contained resources too): the
// CompartmentDefinition puts a record in the compartment of every patient
// some of its fields name (an Observation's performer, say), so the write
// would put it in another patient's too. And a FHIR server that checks
// references answers a write naming a missing record otherwise than one
// naming a record that exists, so naming a record the access may not see
// (withheld for its labels, another patient's) would tell that it exists,
// and would link the written record to it. So each is read, and must be
// one the access may see; a missing one is refused alike (403, the same
// words):
//
//   - with patient context, a record of the compartment's types (a
//     hasMember Observation, an encounter, a basedOn request) must be the
//     patient's, within its clearance, of a type the token may read (an
//     unreadable type is refused unread); the patient's own Patient is
//     named freely;
//   - any other record (a Practitioner, a Medication; with no patient
//     context, every record) must exist and be within the clearance.
//
// In a patch (patch set), any string that reads as Type/id counts, since a
// patch can set a reference's value alone, and one that begins like a
// reference must be one (oddForm). The urls of the written resource's
// attachments (writtenRefs.urls, those it writes anew) are read as
// references. A reference the
// stored version holds as written (had) is not checked.
func (p *Proxy) checkReferencedRecords(ctx context.Context, a *access, body []byte, patch bool, had map[string]bool, urls []string) *refusal {
	var refs []string
	odd, dangling, otherPatient := "", "", false
	consider := func(v []byte, reference bool) bool {
		sv := string(v)
		if had[sv] || !reference && !patch {
			return false // as the stored version has it, or not a reference
		}
		ref, ok := a.localRef(sv)
		switch {
		case !ok && a.entries != nil && isURN(sv) && (reference || patch):
			if dangling == "" && a.entries.target(sv) == "" {
				dangling = sv
			}
		case !ok:
			if odd == "" && (reference || looksLikeReference(v)) && oddForm(sv, a) {
				odd = sv
			}
		case ref == "Patient/"+a.patient || slices.Contains(refs, ref):
		case a.patient != "" && reference && strings.HasPrefix(ref, "Patient/"):
			otherPatient = true
		default:
			refs = append(refs, ref)
		}
		return false
	}
	if _, err := anyString(body, consider); err != nil {
		return refuse(http.StatusBadRequest, "invalid", "the body must be strict JSON")
	}
	for _, u := range urls {
		consider([]byte(u), true)
	}
	if otherPatient {
		return refuse(http.StatusForbidden, "forbidden", "the resource names another patient: with patient context a record may refer to its own patient only")
	}
	if odd != "" {
		return refuse(http.StatusBadRequest, "invalid", "a reference must be Type/id (or Type/id/_history/v) on this server, an absolute URL on another, #id of a contained resource, or a urn:uuid or urn:oid; "+
			strconv.Quote(odd)+" is none of them")
	}
	if dangling != "" {
		// In a Bundle the server resolves it to the record of the entry
		// with that fullUrl; only a create's or an update's is judged as a
		// record this write may name.
		return refuse(http.StatusBadRequest, "invalid", "a urn:uuid or urn:oid reference must be the fullUrl of a create or update entry in the same Bundle; "+
			strconv.Quote(dangling)+" is not")
	}
	if len(refs) > maxReferencedRecords {
		return refuse(http.StatusBadRequest, "too-costly", "a record written here may refer to at most "+itoa(maxReferencedRecords)+" others (each is checked)")
	}
	unseen := func(ref string) *refusal {
		return refuse(http.StatusForbidden, "forbidden", "the resource refers to "+ref+", which is not a record this token may see")
	}
	inComp := func(ref string) bool {
		typ, _, _ := strings.Cut(ref, "/")
		_, ok := compartment[typ]
		return a.patient != "" && ok
	}
	for _, ref := range refs {
		if typ, _, _ := strings.Cut(ref, "/"); inComp(ref) && !a.readable(typ) {
			return unseen(ref)
		}
	}
	for _, ref := range refs {
		var key string
		if a.entries != nil {
			// What an earlier entry found fine, with the same context: a
			// mixed token's entries may each be decided as user/ or patient/.
			if key = string(a.ctx) + "\x00" + a.patient + "\x00" + ref; a.entries.seen[key] {
				continue
			}
			if !a.entries.spend() {
				return tooManyReads()
			}
		}
		st, pr, _, err := p.fetch(ctx, ref, "")
		if err != nil {
			return refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
		}
		if st != http.StatusOK || pr.ResourceType+"/"+pr.ID != ref {
			return unseen(ref)
		}
		if conf, tags := pr.labels(); !a.clearance.Allows(conf, tags) || inComp(ref) && (!pr.inCompartment(a) && !pr.unowned() || a.judge(pr) != keep) {
			return unseen(ref)
		}
		if pr.ResourceType == "Binary" || a.bound(pr) {
			// Judged as a read of it is: a Binary by the record its
			// securityContext names, a Provenance by its targets,
			// which are read too.
			v, failure := p.judgeRead(ctx, a, pr)
			if failure != nil {
				return failure
			}
			if v != keep {
				return unseen(ref)
			}
		}
		if a.entries != nil {
			a.entries.seen[key] = true
		}
	}
	return nil
}

// oddForm reports whether a reference value that is not Type/id or
// Type/id/_history/v (relative, or absolute on this server: localRef) has
// none of the other forms the proxy reads a reference in: #id of a
// contained resource, a urn:uuid or urn:oid (a Bundle entry's), or an
// absolute URL on another server. A FHIR server could read an odd one
// ("Observation/1/", " Patient/2") as one of the others, past the checks
// the proxy made of it.
func oddForm(v string, a *access) bool {
	switch {
	case strings.HasPrefix(v, "#"), strings.HasPrefix(v, "urn:uuid:"), strings.HasPrefix(v, "urn:oid:"):
		return false
	case strings.Contains(v, "://"):
		_, local := a.local(v)
		return local || strings.TrimSpace(v) != v
	}
	return true
}

// looksLikeReference reports whether a string in a patch may be meant as a
// reference's value: it begins (spaces aside) with a resource type and a
// slash, or is an absolute URL.
func looksLikeReference(v []byte) bool {
	v = bytes.TrimSpace(v)
	if bytes.Contains(v, []byte("://")) {
		return true
	}
	typ, _, ok := bytes.Cut(v, []byte("/"))
	return ok && knownType(string(typ))
}

// anyString reads a strict JSON value and reports whether found holds for
// one of its strings, told whether it is the value of a member named
// reference.
func anyString(body []byte, found func(v []byte, reference bool) bool) (bool, error) {
	hit := false
	err := eachString(body, func(v []byte, reference bool, _, _ int64) {
		hit = hit || found(v, reference)
	})
	return hit, err
}

// eachString reads a strict JSON value and calls each for each of its
// strings (object member names aside), told whether it is the value of a
// member named reference and where its token begins and ends.
func eachString(body []byte, each func(v []byte, reference bool, from, to int64)) error {
	return walkStrings(body, false, func(_ string, v []byte, reference bool, from, to int64) { each(v, reference, from, to) })
}

// walkStrings is eachString that, with roots, also names the root element
// (the top-level object's member) each string is in ("" at the top).
func walkStrings(body []byte, roots bool, each func(root string, v []byte, reference bool, from, to int64)) error {
	s := jsonstrict.NewScanner(body)
	var value func(root string, top, reference bool) error
	value = func(root string, top, reference bool) error {
		switch s.Kind() {
		case '{':
			return s.Object(func(name []byte) error {
				r := root
				if top && roots {
					r = string(name)
				}
				return value(r, false, string(name) == "reference")
			})
		case '[':
			return s.Array(func() error { return value(root, false, false) })
		case '"':
			from := s.Offset()
			v, err := s.String()
			if err == nil {
				each(root, v, reference, from, s.Offset())
			}
			return err
		}
		return s.Skip()
	}
	err := value("", true, false)
	if err == nil {
		err = s.End()
	}
	return err
}

// searchOfType reports whether a string reads as a search of a resource
// type: Type?… or …/Type?….
func searchOfType(v []byte) bool {
	q := bytes.IndexByte(v, '?')
	if q < 0 {
		return false
	}
	typ := v[:q]
	if i := bytes.LastIndexByte(typ, '/'); i >= 0 {
		typ = typ[i+1:]
	}
	return knownType(string(typ))
}

// entryResource is the content type checkWrite is given for a batch
// entry's resource.
const entryResource = "\x00entry"

// checkBatch authorises every entry of a batch or transaction on its own;
// one refused entry refuses the whole Bundle. A write entry is checked as
// it is on its own (checkWrite) and pinned to the version judged. Where
// answers are judged, the Bundle's own names are too: its fullUrls
// (entryNamed) and the urn references its writes hold, which must name a
// create or update entry (checkReferencedRecords); the checks share one
// budget of upstream reads (entryChecks).
func (p *Proxy) checkBatch(ctx context.Context, a *access, body []byte) *refusal {
	bad := func(msg string) *refusal { return refuse(http.StatusBadRequest, "invalid", msg) }
	b, err := parseBatch(body, p.Limits.entries())
	if err == errTooManyEntries {
		return refuse(http.StatusRequestEntityTooLarge, "too-costly", "too many Bundle entries")
	}
	if err != nil {
		return bad("the body must be one strict JSON Bundle, its member names each in one case")
	}
	if b.ResourceType != "Bundle" || b.Type != "batch" && b.Type != "transaction" {
		return bad("POST to the base takes a batch or transaction Bundle")
	}
	a.writes, a.found, a.searches = make([]bool, len(b.Entry)), make([]bool, len(b.Entry)), make([]batchSearch, len(b.Entry))
	judged := !a.seesAll()
	var fullURLs map[string]bool // the entries' fullUrls, where answers are judged
	if judged {
		fullURLs = map[string]bool{}
		a.entries = &entryChecks{targets: map[string]string{}, seen: map[string]bool{}, reads: maxBundleReads}
	}
	// First each entry is read and authorised, and where answers are
	// judged a conditional write is resolved into the plain one it calls
	// for; then each write's content is checked, once every reference to a
	// conditional create that found its record can be renamed to that
	// record.
	plans := make([]entryPlan, len(b.Entry))
	found := map[string]string{} // a conditional create's fullUrl → the record it found, in a transaction
	for i, e := range b.Entry {
		pl := &plans[i]
		path, query, _ := strings.Cut(e.URL, "?")
		if strings.Contains(path, "://") || strings.HasPrefix(path, "/") {
			return bad("batch entry URLs must be relative to the base")
		}
		in, err := parsePath(e.Method, "/"+path, query, p.Limits)
		if err == nil {
			a.entryRefs = append(a.entryRefs, resourceRef(&in, ""))
		}
		if err == nil && judged && e.FullURL != "" {
			// A server puts the record an entry writes in place of every
			// reference to its fullUrl: one that reads as another record
			// (Patient/p1, when the entry creates an Observation) would
			// move a reference the proxy judged onto another record, and
			// of two alike it would pick one.
			switch {
			case fullURLs[e.FullURL]:
				return bad("batch entry " + itoa(i) + ": another entry has the same fullUrl")
			case !entryNamed(e.FullURL, in, a):
				return bad("batch entry " + itoa(i) + ": a fullUrl must be a urn:uuid or urn:oid, or the URL on this server of the record the entry names")
			}
			fullURLs[e.FullURL] = true
			if isURN(e.FullURL) && (e.Method == http.MethodPost || e.Method == http.MethodPut) {
				a.entries.targets[e.FullURL] = in.Type
			}
		}
		if err == nil && e.IfNoneExist != nil {
			// The criteria are checked here as a header's would be, and
			// make the entry conditional.
			err = in.setIfNoneExist(e.IfNoneExist, p.Limits)
		}
		in.ifMatch = e.IfMatch
		if err != nil || in.Kind == Batch || in.Kind == Capabilities {
			return bad("batch entry " + itoa(i) + " is not understood")
		}
		if ref := jsonOnly(in.Params); ref != nil {
			return entryRefusal(i, ref)
		}
		if _, ok := tableOperation(&in); ok || in.Kind == Operation && searchOperations[in.Type+"/"+in.Operation] {
			// Its answer is judged as an operation's, which an entry's is not.
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+": "+in.Operation+" is sent on its own, not in a batch")
		}
		typeSearch := in.Kind == SearchType || in.Kind == SearchCompart // (or of the patient's compartment)
		if a.patient != "" && !typeSearch && in.Kind != Read && in.Kind != VRead && in.Kind != Create && in.Kind != Update && in.Kind != Patch && in.Kind != Delete {
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+": only reads, writes and searches of a type may be batched with patient context")
		}
		searches := alwaysBundle(in.Kind) // a search or a history
		// An entry is either a write with its content, which is checked,
		// or carries none the server could act on unchecked.
		takes := in.Kind == Create || in.Kind == Update || in.Kind == Patch
		switch {
		case takes && len(e.Resource) == 0:
			return bad("batch entry " + itoa(i) + ": a POST, PUT or PATCH entry needs its resource")
		case !takes && len(e.Resource) > 0:
			return bad("batch entry " + itoa(i) + ": only a POST, PUT or PATCH entry carries a resource")
		}
		a.writes[i] = takes || in.Kind == Delete
		pl.ea, pl.body, pl.method = *a, e.Resource, e.Method
		if judged && in.Conditional && a.writes[i] {
			// Resolved as on its own (resolveConditional): the FHIR server
			// would match the criteria over records the access may not see.
			// Each page of the criteria's matches the proxy reads counts
			// against the Bundle's reads (visibleMatches).
			if ref := authorizeConditional(&in, &pl.ea); ref != nil {
				return entryRefusal(i, ref)
			}
			if d, _ := pl.ea.decide(scopes.Access{Context: pl.ea.ctx, Type: in.Type, Perms: letters(&in)}); d.Constrained() {
				// Its criteria's search, and a create's read of what it
				// found, go under the constraint, which an entry cannot.
				return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+": a conditional write under a constrained scope is resolved on its own only; send it on its own")
			}
			x := &exchange{in: in, a: &pl.ea, body: e.Resource}
			if ref := p.resolveConditional(ctx, x); ref != nil {
				return entryRefusal(i, ref)
			}
			in, pl.body, pl.rebuilt = x.in, x.body, true
			a.entryRefs[i] = resourceRef(&in, "") // what the criteria resolved to
			if x.method != "" {
				pl.method = x.method
			}
			if in.Kind == Read {
				// A create that found its record: the entry reads it, and
				// in a transaction a reference to its fullUrl names it.
				a.writes[i], a.found[i] = false, true
				if e.FullURL != "" {
					delete(a.entries.targets, e.FullURL)
					if b.Type == "transaction" {
						found[e.FullURL] = in.Type + "/" + in.ID
					}
				}
			}
			pl.in = in
			continue
		}
		orig := encodeQuery(in.Params)
		// As on its own (Proxy.admit): _count is a count, at most the
		// ceiling (found by fuzzing: a batched search went with any _count,
		// or none the server could read).
		if err := capCount(in.Params, p.Limits.count()); err != nil {
			return entryRefusal(i, refuse(http.StatusBadRequest, "invalid", err.Error()))
		}
		if ref := p.authorize(&in, &pl.ea); ref != nil {
			return entryRefusal(i, ref)
		}
		if e.Conditional && !a.writes[i] && !pl.ea.seesAll() {
			// The server would answer 304 without the resource, for a
			// record the access may not see as for one it may: whether it
			// exists, and its version, would show. On its own the read is
			// judged first, and its conditions evaluated by the proxy.
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+": conditional reads are evaluated by the proxy; send it on its own")
		}
		// A search goes upstream as authorised, the patient and the
		// constraints the proxy adds written into its entry; its answer is
		// judged under them (batchSearch). A constrained search cannot
		// carry Prefer: handling=strict in a batch, so a server that
		// ignores the constraint's parameter is caught by the proxy, which
		// holds every match to it (access.holdMatches); one it cannot
		// evaluate goes on its own, or not at all. So does a read under a
		// constrained scope, which goes as a search (Interaction.unwrap),
		// and a search whose chains the proxy resolves with reads of its
		// own (chains.go); and a conditional read's conditions would be
		// lost in an entry written anew.
		onItsOwn := func() *refusal {
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+" needs constraints the proxy applies only to a request on its own; send it on its own")
		}
		if in.chained {
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+" has chains, which the proxy resolves only in a search on its own; send it on its own")
		}
		if in.counts {
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+" asks for its total alone (_summary=count, _count=0), which the proxy counts only in a search on its own; send it on its own")
		}
		if pl.ea.constrained != "" && (!typeSearch || !pl.ea.holdMatches(&in) || constraintUnread(&in, pl.ea.included)) {
			return onItsOwn()
		}
		if encodeQuery(in.Params) != orig {
			// A search, or a read asked for in part (what the proxy judges
			// by added to its _elements: found by probing, such a read was
			// refused as needing constraints), goes written anew.
			if !searches && in.Kind != Read || e.Conditional {
				return onItsOwn()
			}
			in.post, pl.method, pl.rebuilt = false, http.MethodGet, true
		}
		if a.patient != "" && in.Kind == VRead || !a.unrestricted && (in.Kind == VRead || in.Kind == HistoryInstance) {
			// Checked on their own against the resource as it is now
			// (checkStored), with the same 404 for a withheld resource
			// and a missing one; a batch could not answer them alike.
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+": earlier versions are checked one by one; send it on its own")
		}
		if searches {
			// Its Bundle is inspected as the search's own answer, with the
			// access the search was authorised with (what it asked for,
			// such as its matches' Provenances): batchSearch.inspect.
			sa := pl.ea
			a.searches[i] = batchSearch{in: Interaction{Kind: in.Kind, Type: in.Type, ID: in.ID}, a: &sa}
		}
		pl.in = in
	}
	for i, e := range b.Entry {
		pl := &plans[i]
		if !a.writes[i] {
			if pl.rebuilt {
				a.entryEdits = append(a.entryEdits, pl.edit(e, ""))
			}
			continue
		}
		if len(found) > 0 && pl.in.Kind != Patch {
			renamed, err := renameReferences(pl.body, found)
			if err != nil {
				return bad("batch entry " + itoa(i) + ": the resource must be strict JSON")
			}
			if renamed != nil {
				pl.body, pl.rebuilt = renamed, true
			}
		}
		// As on its own: the new content, then the stored version (which
		// must be one the access may see; a free id, another patient's
		// record and a withheld one are refused alike, 403 here as the
		// Bundle's own answer), then what the content refers to.
		ref := p.checkWrite(ctx, entryResource, pl.in, &pl.ea, pl.body)
		for _, id := range pl.ea.touched {
			if !slices.Contains(a.touched, id) {
				a.touched = append(a.touched, id)
			}
		}
		for ref, id := range pl.ea.owners {
			if a.owners == nil {
				a.owners = map[string]string{}
			}
			a.owners[ref] = id
		}
		if ref != nil {
			return entryRefusal(i, ref)
		}
		if pl.ea.patched != nil { // the patch as applied, sent as the update it makes
			pl.method, pl.body, pl.rebuilt = http.MethodPut, pl.ea.patched, true
		}
		switch {
		case pl.rebuilt:
			// Sent as resolved, with ifMatch on the version judged.
			pin := pl.ea.pin
			if pin == "" {
				pin = pl.in.ifMatch
			}
			a.entryEdits = append(a.entryEdits, pl.edit(e, pin))
		case pl.ea.pin != "" && e.IfMatch == "":
			// As on its own (access.pin): the entry goes with ifMatch on the
			// version judged, written into the Bundle that goes upstream.
			a.entryPins = append(a.entryPins, entryPin{at: e.requestAt, etag: pl.ea.pin})
		}
	}
	return nil
}

// entryRefusal is a batch entry's refusal as the Bundle's: it names the
// entry, and a 404 (a missing record, or one the access may not see) is
// the Bundle's 403.
func entryRefusal(i int, ref *refusal) *refusal {
	ref.msg = "batch entry " + itoa(i) + ": " + ref.msg
	if ref.status == http.StatusNotFound {
		ref.status, ref.code = http.StatusForbidden, "forbidden"
	}
	return ref
}

// entryPlan is what checkBatch makes of one entry: the interaction it is
// (a conditional write resolved), the access it was authorised with, and
// what goes upstream: the method and the resource, in an entry written
// anew (rebuilt) when either differs from the one sent.
type entryPlan struct {
	in      Interaction
	ea      access
	method  string
	body    []byte
	rebuilt bool
}

// edit is the entry written anew, in place of e: its fullUrl, a request
// with the method and URL resolved (and ifMatch, when pin is set), and its
// resource, for a write that has one. Whatever else the entry held (a
// conditional create's ifNoneExist, search or response members) is left
// out.
func (pl *entryPlan) edit(e batchEntry, pin string) bundleEdit {
	url := pl.in.Type
	switch {
	case alwaysBundle(pl.in.Kind): // a search or a history, rewritten by authorisation
		url = strings.TrimPrefix(pl.in.path(), "/")
		if len(pl.in.Params) > 0 {
			url += "?" + encodeQuery(pl.in.Params)
		}
	case pl.in.ID != "":
		url += "/" + pl.in.ID
		if pl.in.Kind == Read && len(pl.in.Params) > 0 { // a read in part
			url += "?" + encodeQuery(pl.in.Params)
		}
	}
	out := []byte{'{'}
	if e.FullURL != "" {
		q, _ := json.Marshal(e.FullURL)
		out = append(append(append(out, `"fullUrl":`...), q...), ',')
	}
	m, _ := json.Marshal(pl.method)
	u, _ := json.Marshal(url)
	out = append(append(append(append(out, `"request":{"method":`...), m...), `,"url":`...), u...)
	if pin != "" {
		q, _ := json.Marshal(pin)
		out = append(append(out, `,"ifMatch":`...), q...)
	}
	out = append(out, '}')
	if pl.in.Kind != Read && len(pl.body) > 0 {
		out = append(append(out, `,"resource":`...), pl.body...)
	}
	return bundleEdit{from: e.start, to: e.end, text: append(out, '}')}
}

// renameReferences returns body with each reference whose value is one
// of names' keys renamed to its value, or nil when it names none.
func renameReferences(body []byte, names map[string]string) ([]byte, error) {
	var edits []bundleEdit // in the order eachString reads them
	err := eachString(body, func(v []byte, reference bool, from, to int64) {
		if n, ok := names[string(v)]; ok && reference {
			q, _ := json.Marshal(n)
			edits = append(edits, bundleEdit{from: from, to: to, text: q})
		}
	})
	if err != nil || len(edits) == 0 {
		return nil, err
	}
	return splice(body, edits), nil
}

// maxBundleReads is how many upstream reads the checks of one batch or
// transaction's judged writes may make: a stored version for each update,
// patch and delete, each record the written content refers to (once a
// Bundle), and each page of a conditional write's matches.
const maxBundleReads = 128

// entryChecks is what the judged writes of one batch or transaction share:
// the fullUrls a urn reference may name (those of its create and update
// entries), the records already found to be ones the access may see (by
// context, patient and reference), and how many upstream reads the Bundle
// has left.
type entryChecks struct {
	targets map[string]string // the fullUrls of the entries that create or update, and their types
	seen    map[string]bool
	reads   int
	// ids are the identifiers of the in-context patient's record, by
	// context and patient, once read (checkOwnIdentifiers).
	ids map[string]map[[2]string]bool
}

// writesOwn reports whether the entry with that fullUrl creates or updates
// a record of the compartment's types or the Patient: with patient
// context, checked as the patient's as that entry.
func (c *entryChecks) writesOwn(fullURL string) bool {
	t := c.target(fullURL)
	_, ok := compartment[t]
	return ok || t == "Patient"
}

// target is the type of the record the entry with that fullUrl creates or
// updates, or "" (always, outside a batch).
func (c *entryChecks) target(fullURL string) string {
	if c == nil {
		return ""
	}
	return c.targets[fullURL]
}

// identifiers are the in-context patient's identifiers an earlier entry
// read, or nil (always, outside a batch).
func (c *entryChecks) identifiers(key string) map[[2]string]bool {
	if c == nil {
		return nil
	}
	return c.ids[key]
}

// keepIdentifiers keeps what identifiers read for the entries that follow.
func (c *entryChecks) keepIdentifiers(key string, ids map[[2]string]bool) {
	if c == nil {
		return
	}
	if c.ids == nil {
		c.ids = map[string]map[[2]string]bool{}
	}
	c.ids[key] = ids
}

// spend counts one upstream read, and reports whether the Bundle had one
// left (always, outside a batch).
func (c *entryChecks) spend() bool {
	if c == nil {
		return true
	}
	if c.reads == 0 {
		return false
	}
	c.reads--
	return true
}

// tooManyReads refuses a Bundle whose checks would read too much.
func tooManyReads() *refusal {
	return refuse(http.StatusRequestEntityTooLarge, "too-costly", "the Bundle's writes refer to more records than are checked in one request ("+itoa(maxBundleReads)+"); send it in smaller Bundles")
}

// isURN reports whether v is a urn:uuid or urn:oid: a Bundle entry's
// fullUrl, which a server resolves to the record that entry writes.
func isURN(v string) bool {
	return strings.HasPrefix(v, "urn:uuid:") || strings.HasPrefix(v, "urn:oid:")
}

// entryNamed reports whether a Bundle entry's fullUrl (not empty) is one
// a judged Bundle may carry: a urn:uuid or urn:oid, or the absolute URL on
// this server of the very record the entry reads, updates or deletes.
func entryNamed(fullURL string, in Interaction, a *access) bool {
	if isURN(fullURL) {
		return true
	}
	if !strings.Contains(fullURL, "://") || in.ID == "" {
		return false
	}
	ref, ok := a.localRef(fullURL)
	return ok && ref == in.Type+"/"+in.ID && !strings.Contains(fullURL, "/_history/")
}

// entryPin is an ifMatch the proxy adds to a batch entry's request: the
// version its update was judged against (checkStored).
type entryPin struct {
	at   int64 // the request object's '{'
	etag string
}

// bundleEdit replaces the bytes of a Bundle (or of a resource: splice)
// from from to to with text.
type bundleEdit struct {
	from, to int64
	text     []byte
}

// withEdits returns the Bundle with each pin's ifMatch as the first member
// of its entry's request object (which holds a method and a url, so a comma
// follows), and its entries written anew (entryPlan.edit); no entry is
// both pinned and written anew.
func withEdits(body []byte, pins []entryPin, edits []bundleEdit) []byte {
	all := make([]bundleEdit, 0, len(pins)+len(edits))
	for _, p := range pins {
		q, _ := json.Marshal(p.etag)
		all = append(all, bundleEdit{from: p.at + 1, to: p.at + 1, text: append(append([]byte(`"ifMatch":`), q...), ',')})
	}
	all = append(all, edits...)
	slices.SortFunc(all, func(a, b bundleEdit) int { return int(a.from - b.from) })
	return splice(body, all)
}

// splice returns body with each edit's span replaced by its text; the
// edits are in order and do not overlap.
func splice(body []byte, edits []bundleEdit) []byte {
	n := len(body)
	for _, e := range edits {
		n += len(e.text)
	}
	out := make([]byte, 0, n)
	from := int64(0)
	for _, e := range edits {
		out = append(append(out, body[from:e.from]...), e.text...)
		from = e.to
	}
	return append(out, body[from:]...)
}

func itoa(i int) string { return strconv.Itoa(i) }

// batch is what the proxy reads of a batch or transaction Bundle: each
// entry's request and raw resource.
type batch struct {
	ResourceType, Type string
	Entry              []batchEntry
}

type batchEntry struct {
	Method, URL string
	IfNoneExist []string // request.ifNoneExist, when present
	// Conditional is set by request.ifNoneMatch or ifModifiedSince: a
	// conditional read.
	Conditional bool
	IfMatch     string // request.ifMatch
	FullURL     string
	// requestAt is the offset of the request object's '{', where an
	// ifMatch the proxy pins goes in (entryPin).
	requestAt int64
	// start and end are the entry object's offsets, where an entry the
	// proxy writes anew goes (entryPlan.edit).
	start, end int64
	Resource   []byte
}

var errTooManyEntries = errors.New("fhirproxy: too many Bundle entries")

// caseVariant refuses a Bundle member name that is one the batch is read
// by, in another case.
func caseVariant(name []byte, known ...string) error {
	if k, ok := inAnotherCase(string(name), known...); ok {
		return errors.New("fhirproxy: the Bundle member " + strconv.Quote(string(name)) + " is " + k + " in another case")
	}
	return nil
}

// parseBatch reads a batch Bundle strictly, with member names matched
// exactly: the entry the proxy authorises is the one the server executes.
// The Bundle goes upstream as sent, so it is read as a server whose JSON
// reader folds names would read it too (Go's encoding/json, ASP.NET's
// defaults): names equal under case folding are refused anywhere in it,
// and so is a member the proxy reads by named in another case ("Method"
// beside "method", an "Entry" array beside or instead of "entry"), which
// such a server would run unjudged.
func parseBatch(body []byte, most int) (batch, error) {
	var b batch
	s := jsonstrict.NewFoldingScanner(body)
	err := s.Object(func(name []byte) error {
		if err := caseVariant(name, "resourceType", "type", "entry"); err != nil {
			return err
		}
		switch string(name) {
		case "resourceType":
			return readString(s, &b.ResourceType)
		case "type":
			return readString(s, &b.Type)
		case "entry":
			return readArray(s, func() error {
				if len(b.Entry) == most {
					return errTooManyEntries
				}
				e := batchEntry{start: s.Offset()}
				err := s.Object(func(name []byte) error {
					if err := caseVariant(name, "request", "resource", "fullUrl"); err != nil {
						return err
					}
					switch string(name) {
					case "fullUrl":
						return readString(s, &e.FullURL)
					case "request":
						e.requestAt = s.Offset()
						return readObject(s, func(name []byte) error {
							if err := caseVariant(name, "method", "url", "ifMatch", "ifNoneExist", "ifNoneMatch", "ifModifiedSince"); err != nil {
								return err
							}
							switch string(name) {
							case "method":
								return readString(s, &e.Method)
							case "ifMatch":
								return readString(s, &e.IfMatch)
							case "url":
								return readString(s, &e.URL)
							case "ifNoneMatch", "ifModifiedSince":
								e.Conditional = s.Kind() != 'n'
								return s.Skip()
							case "ifNoneExist":
								if s.Kind() == 'n' {
									return s.Skip()
								}
								var v string
								err := readString(s, &v)
								e.IfNoneExist = []string{v}
								return err
							}
							return s.Skip()
						})
					case "resource":
						if s.Kind() == 'n' {
							return s.Skip()
						}
						start := s.Offset()
						err := s.Skip()
						e.Resource = s.Bytes(start, s.Offset())
						return err
					}
					return s.Skip()
				})
				e.end = s.Offset()
				b.Entry = append(b.Entry, e)
				return err
			})
		}
		return s.Skip()
	})
	if err == nil {
		err = s.End()
	}
	return b, err
}
