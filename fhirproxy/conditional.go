package fhirproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/smartkit/smartkit/scopes"
)

// Conditional reads. An upstream answers If-None-Match or If-Modified-Since
// with 304 and no body, which the proxy cannot judge: passed on, a 304 for
// another patient's record would tell that it exists, and at which version.
// So when a response is inspected the conditions are not forwarded; the
// proxy evaluates them itself on the full answer once it has judged the
// resource visible (a 200 is always a correct answer to a conditional
// read).

// notModified reports whether a client's conditional read is answered by
// 304 given the response's validators: If-None-Match by weak comparison of
// entity tags (RFC 9110 13.1.2), else If-Modified-Since against
// Last-Modified.
func notModified(req, resp http.Header) bool {
	if inm := req["If-None-Match"]; len(inm) > 0 {
		etag := header(resp, "Etag")
		return etag != "" && matchesETag(strings.Join(inm, ","), etag)
	}
	if ims := header(req, "If-Modified-Since"); ims != "" {
		since, err1 := http.ParseTime(ims)
		modified, err2 := http.ParseTime(header(resp, "Last-Modified"))
		return err1 == nil && err2 == nil && !modified.After(since)
	}
	return false
}

// matchesETag reports whether a list of entity tags (or "*") holds etag,
// comparing weakly: W/"1" matches "1".
func matchesETag(list, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// answerNotModified turns a judged 200 into the 304 its conditions ask for.
func answerNotModified(resp *http.Response) {
	resp.StatusCode, resp.Status = http.StatusNotModified, "304 Not Modified"
	resp.Body, resp.ContentLength = http.NoBody, 0
	delete(resp.Header, "Content-Length")
	delete(resp.Header, "Content-Type")
}

// Conditional writes. Sent on as they came, a conditional update, patch or
// delete, or a create with If-None-Exist, would have the FHIR server match
// its criteria over records the proxy never sees: it would overwrite or
// delete another patient's record, or one the clearance withholds, and its
// answer (200 or 201) would tell that one exists. And it would match them
// again when it writes, after the proxy judged what it matched. So the
// proxy resolves them itself (resolveConditional): it runs the criteria as
// the token's own search (the compartment and the token's constraints
// imposed, withheld matches not counted, chains resolved), and sends the
// plain write the visible matches call for, which is then authorised and
// checked as that write is on its own, and held (If-Match) to the version
// the criteria matched. What the token cannot see is, for it, no match:
//
//   - an update matching none creates (POST; a body with an id creates at
//     that id if it is free, 409 if not, for an access that sees
//     everything, and is refused otherwise, there being no update-as-create
//     where answers are judged), one matching one updates it (a body
//     without an id gets that one's);
//   - a patch or a delete matching none is the 404 of a missing record;
//   - a create matching none creates, one matching one is answered with
//     that record (a read: 200, nothing created), as FHIR has it;
//   - criteria matching more than one are the 412 FHIR gives criteria
//     that are not selective enough, deletes included.
//
// Batch entries are resolved the same way where answers are judged
// (checkBatch), each sent as what it resolved to; a reference to the
// fullUrl of a create that found its record is renamed to that record in a
// transaction. For an access that sees everything they go as they are.

// authorizeConditional decides what can be decided of a conditional write
// before it is resolved: the token's scopes must give its letters (the
// write's and s), in its context or, for a mixed token, as a user/ token.
// Under a query constraint the criteria are searched with it (the token's
// own search), and the write they resolve to is held to its own
// (compileConstraint), which must be one the proxy can check: one it
// cannot is refused here, before anything is searched, but for a delete,
// which the FHIR server proves (proveStored). The criteria and the write
// are authorised in full when it is resolved.
func authorizeConditional(in *Interaction, a *access) *refusal {
	d, ctx := a.decide(scopes.Access{Context: a.ctx, Type: in.Type, Perms: letters(in)})
	if !d.Allowed {
		return refuse(http.StatusForbidden, "forbidden", "the token's scopes do not allow a conditional "+string(in.Kind)+" of "+in.Type+" (it needs s too)")
	}
	if !d.Constrained() {
		return nil
	}
	if w := a.tok.Scopes.Check(scopes.Access{Context: ctx, Type: in.Type, Perms: letters(in) &^ scopes.Search}); w.Constrained() && in.Kind != Delete {
		if _, ref := compileConstraint(in.Type, w); ref != nil {
			return ref
		}
	}
	return nil
}

// resolveConditional turns the exchange's conditional write into the plain
// interaction its criteria's visible matches call for (see above), or
// refuses it.
func (p *Proxy) resolveConditional(ctx context.Context, x *exchange) *refusal {
	in, a := &x.in, x.a
	crit, kept := in.Params, []Param(nil) // kept: the write's own parameters (_format)
	if in.Kind == Create {
		var err error
		if crit, err = parseQuery(in.ifNoneExist, p.Limits); err != nil { // parsed once already
			return refuse(http.StatusBadRequest, "invalid", "the If-None-Exist criteria are not understood")
		}
		kept = in.Params // a create's query holds _format only (parsePath)
	}
	s := Interaction{Kind: SearchType, Type: in.Type}
	for _, prm := range crit {
		switch {
		case prm.Name == "_format" && in.Kind != Create:
			kept = append(kept, prm)
		case !criterion(prm.Name):
			// If-None-Exist's too: an _include would count what it brings
			// as matches, _summary=count would match nothing.
			return refuse(http.StatusBadRequest, "invalid", "parameter "+prm.Name+" is not a search criterion")
		default:
			s.Params = append(s.Params, prm)
		}
	}
	sa := *a
	if ref := p.authorize(&s, &sa); ref != nil {
		return ref
	}
	if ref := p.resolveChains(ctx, &s, &sa); ref != nil {
		return ref
	}
	if !s.forwardable(p.Limits) {
		return refuse(http.StatusBadRequest, "too-costly", "the criteria are too long as the proxy would search them (re-encoded, with the token's constraints added); narrow them")
	}
	found, ref := p.visibleMatches(ctx, &sa, in.Type, s.Params, 1, true)
	if ref != nil {
		return ref
	}
	if len(found) > 1 {
		return refuse(http.StatusPreconditionFailed, "multiple-matches", "the criteria match more than one record; narrow them")
	}
	var id string
	if len(found) == 1 {
		id = found[0].id
	}
	switch in.Kind {
	case Create:
		in.ifNoneExist, in.ifNoneCrit = "", nil
		if id != "" {
			in.Kind, in.ID, x.method, x.body, x.bodyType = Read, id, http.MethodGet, nil, ""
		}
	case Update:
		pr, err := parseResource(x.body)
		switch {
		case err != nil:
			return refuse(http.StatusBadRequest, "invalid", "the body must be one strict JSON resource")
		case id == "" && pr.ID != "" && a.seesAll():
			// FHIR's update-as-create at the body's id, where that id is
			// free; a record that has it, and does not match, is a 409
			// (checkStored reads it).
			id, in.fresh = pr.ID, true
		case id == "" && pr.ID != "":
			return refuse(http.StatusBadRequest, "invalid", "the criteria match no record, so the update creates one, with an id the FHIR server assigns: send the resource without an id")
		case id == "":
			in.Kind, x.method = Create, http.MethodPost
		case pr.ID != "" && pr.ID != id:
			return refuse(http.StatusBadRequest, "invalid", "the body's id is not that of the record the criteria match")
		case pr.ID == "":
			x.body = withID(x.body, id)
		}
	case Patch, Delete:
		if id == "" {
			return notFound()
		}
	}
	if in.Kind != Create {
		in.ID = id
	}
	if len(found) == 1 && in.Kind != Create && in.Kind != Read {
		if v := found[0].version; v != "" {
			// The write is held to the version the criteria matched:
			// checkStored refuses another (a record changed after it
			// matched, so that it may match no more), and the version goes
			// upstream as If-Match where the stored version is not read.
			matched := `W/"` + v + `"`
			if in.ifMatch != "" && !matchesVersion(in.ifMatch, matched) {
				return refuse(http.StatusPreconditionFailed, "conflict", "If-Match names another version than the record the criteria match")
			}
			in.ifMatch, a.pin = matched, matched
		}
	}
	in.Params, in.Conditional, in.resolve = kept, false, false
	x.ev.Interaction, x.ev.Resource = auditTarget(in, "") // what is done, to what
	if in.Kind == Read {
		// The token's own search found the record; its answer is judged
		// as a read's (the token may have no r, only s). Under a
		// constraint the read is that search by _id, so that the server
		// proves the criteria and the constraint again, on the record as
		// it is read (a constrained read's form: Interaction.unwrap).
		if sa.constrained != "" {
			in.Kind, in.Params, in.unwrap, in.ID = SearchType, append([]Param{{Name: "_id", Value: id}}, s.Params...), id, ""
			a.constrained, a.recheck, a.checked, a.included = sa.constrained, sa.recheck, sa.checked, sa.included
		}
		return nil
	}
	return p.authorize(in, a)
}

// withID returns a JSON object with an id member first, for an update
// resolved to a record the body did not name. A body whose id member is
// null gets a second one, which the strict parse that follows refuses.
func withID(body []byte, id string) []byte {
	at := bytes.IndexByte(body, '{') + 1 // a strict JSON object: parseResource read it
	q, _ := json.Marshal(id)
	out := make([]byte, 0, len(body)+len(q)+6)
	out = append(append(append(out, body[:at]...), `"id":`...), q...)
	if rest := bytes.TrimLeft(body[at:], " \t\r\n"); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, body[at:]...)
}
