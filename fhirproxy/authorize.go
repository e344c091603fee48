package fhirproxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
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
	return searchesOthers(name) || name == "_include:iterate"
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
	if in.Kind == SearchSystem || in.Kind == HistorySystem {
		in.Type = "*"
	}
	need := letters(in)
	d := a.tok.Scopes.Check(scopes.Access{Context: a.ctx, Type: in.Type, Perms: need, Params: in.Params})
	if !d.Allowed && a.ctx == scopes.Patient && a.tok.Scopes.HasContext(scopes.User) {
		// A mixed token: a user/ scope may allow it on its own terms, without the compartment.
		if u := a.tok.Scopes.Check(scopes.Access{Context: scopes.User, Type: in.Type, Perms: need, Params: in.Params}); u.Allowed {
			a.ctx, a.patient, d = scopes.User, "", u
		}
	}
	if in.Type == "*" {
		in.Type = ""
	}
	if !d.Allowed {
		return forbidden("the token's scopes do not allow " + string(in.Kind) + " of " + orAll(in.Type))
	}
	if d.Constrained() {
		if ref := p.applyConstraint(in, d); ref != nil {
			return ref
		}
		// The upstream applies the constraint to this type's matches; nothing
		// else of the type may come along.
		a.constrained = in.Type
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
		// The FHIR server would act on matches the proxy never sees: update
		// or delete a record the clearance withholds, or tell by its answer
		// (200 or 201) that one exists.
		return forbidden("conditional writes are not allowed with a clearance short of every label")
	}
	return judgedParams(in, a)
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
// criteria met by other resources (chains, _has, _filter, _list, _query:
// Patient?_has:Observation:subject:_security=PSY would name the patients
// with psychiatric records) and _summary=count (which counts what is
// withheld) are refused, and so are _contained and _containedType (a
// contained resource answered on its own has lost its container's labels).
func judgedParams(in *Interaction, a *access) *refusal {
	switch in.Kind {
	case Read, VRead, SearchType, SearchCompart, SearchSystem, HistoryInstance, HistoryType, HistorySystem:
	default:
		return nil
	}
	if a.patient == "" && a.unrestricted {
		return nil
	}
	comp, inComp := compartment[in.Type]
	inComp = inComp && a.patient != ""
	for i := range in.Params {
		prm := &in.Params[i]
		base, mod, _ := strings.Cut(prm.Name, ":")
		switch {
		case (base == "_elements" || base == "_summary") && mod != "":
			return refuse(http.StatusBadRequest, "not-supported", prm.Name+" is not supported here")
		case base == "_elements":
			prm.Value = withElements(prm.Value, "meta")
			if in.Type == "Binary" { // judged by its context (Proxy.judgeContext)
				prm.Value = withElements(prm.Value, "securityContext")
			}
			if inComp {
				for _, f := range comp.fields {
					top, _, _ := strings.Cut(f, ".")
					prm.Value = withElements(prm.Value, top)
				}
			}
		case base == "_summary" && prm.Value == "text" && inComp:
			return refuse(http.StatusBadRequest, "not-supported", "_summary=text leaves out the patient reference; use _elements")
		case a.unrestricted: // nothing is withheld for its labels: the rest may pass
		case base == "_contained" || base == "_containedType":
			return refuse(http.StatusForbidden, "forbidden", prm.Name+" is not allowed with a clearance short of every label")
		case base == "_summary" && prm.Value == "count":
			return refuse(http.StatusForbidden, "forbidden", "_summary=count would count records the token's clearance withholds")
		case searchesOthers(prm.Name):
			return refuse(http.StatusForbidden, "forbidden", "parameter "+prm.Name+
				" searches by records the token's clearance may withhold; search those first, then by reference")
		}
	}
	return nil
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
// so the FHIR server proves the match. Constrained writes are refused.
func (p *Proxy) applyConstraint(in *Interaction, d scopes.Decision) *refusal {
	var alts [][]Param
	for sc := range d.Constraints() {
		alts = append(alts, sc.Constraint())
	}
	for _, prm := range in.Params {
		if strings.HasPrefix(prm.Name, "_include") || strings.HasPrefix(prm.Name, "_revinclude") {
			return refuse(http.StatusForbidden, "forbidden", "includes are not allowed under a constrained scope")
		}
	}
	var extra []Param
	switch {
	case len(alts) == 1:
		extra = alts[0]
	default:
		// Several constrained scopes OR together; one parameter name with
		// single values can be ORed with a comma, anything else cannot.
		name := ""
		var vals []string
		for _, alt := range alts {
			if len(alt) != 1 || name != "" && alt[0].Name != name {
				return refuse(http.StatusForbidden, "forbidden", "narrow the request to one of the permitted categories")
			}
			name = alt[0].Name
			vals = append(vals, alt[0].Value)
		}
		extra = []Param{{Name: name, Value: strings.Join(vals, ",")}}
	}
	switch in.Kind {
	case SearchType, SearchCompart:
		in.Params = append(in.Params, extra...)
	case Read:
		// Sent as Type?_id=…&constraint (no id in the path), so the server
		// proves the match; the answer is unwrapped to the one resource.
		in.Kind, in.Params = SearchType, append([]Param{{Name: "_id", Value: in.ID}}, extra...)
		in.unwrap, in.ID = in.ID, ""
	default:
		return refuse(http.StatusForbidden, "forbidden", "this interaction is not allowed under a constrained scope")
	}
	return nil
}

// confine imposes the Patient compartment on a patient/ token.
func (p *Proxy) confine(in *Interaction, a *access) *refusal {
	forbidden := func(msg string) *refusal { return refuse(http.StatusForbidden, "forbidden", msg) }
	pid := a.patient
	_, inComp := compartment[in.Type]
	isPatient, shared := in.Type == "Patient", a.shared(in.Type)
	// A Binary is in no compartment, but a read of one is judged by the
	// resource its securityContext names (Proxy.judgeContext).
	binaryRead := in.Type == "Binary" && (in.Kind == Read || in.Kind == VRead)
	if !inComp && !isPatient && !shared && in.Kind != Batch && !binaryRead {
		return forbidden(in.Type + " is outside the patient compartment")
	}
	switch in.Kind {
	case Read, VRead, HistoryInstance:
		if isPatient && in.ID != pid {
			return notFound() // another patient's record looks absent
		}
	case SearchCompart:
		if in.Compartment != pid {
			return forbidden("the compartment is another patient's")
		}
		in.Kind, in.Compartment = SearchType, ""
		fallthrough
	case SearchType:
		for _, prm := range in.Params {
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
			for _, v := range strings.Split(prm.Value, ",") {
				if !refersTo(v, pid, base == "patient" || base == "_id" || base == "beneficiary" || mod == "Patient") {
					return forbidden("the search names another patient")
				}
			}
		}
		switch {
		case isPatient:
			in.Params = append(in.Params, Param{Name: "_id", Value: pid})
		case inComp:
			in.Params = append(in.Params, Param{Name: compartment[in.Type].param, Value: "Patient/" + pid})
		}
	case HistoryType, SearchSystem, HistorySystem:
		return forbidden("system-wide searches and type history are not allowed with patient context")
	case Create, Update, Delete:
		if in.Conditional {
			return forbidden("conditional writes are not allowed with patient context")
		}
		if shared || isPatient && in.Kind != Update {
			return forbidden("this write is not allowed with patient context")
		}
		if isPatient && in.ID != pid {
			return notFound()
		}
	case Patch:
		return forbidden("PATCH is not supported with patient context; use PUT")
	}
	return nil
}

// authorizeOperation allows only known operations (deny by default):
// Patient/{id}/$everything, which needs read and search of every type.
func (p *Proxy) authorizeOperation(in *Interaction, a *access) *refusal {
	if in.Operation != "$everything" || in.Type != "Patient" || in.ID == "" {
		return refuse(http.StatusForbidden, "forbidden", "operation "+in.Operation+" is not allowed")
	}
	if a.patient != "" && in.ID != a.patient {
		return refuse(http.StatusForbidden, "forbidden", "$everything of another patient")
	}
	if !a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: "*", Perms: scopes.Read | scopes.Search}) {
		return refuse(http.StatusForbidden, "forbidden", "$everything needs read and search of every type")
	}
	for _, prm := range in.Params {
		if prm.Name != "_count" && prm.Name != "_since" && prm.Name != "_type" && prm.Name != "start" && prm.Name != "end" {
			return refuse(http.StatusForbidden, "forbidden", "parameter "+prm.Name+" is not allowed on $everything")
		}
	}
	return nil
}

// inspects reports whether the response of an interaction must be read.
// It need not be only when the request proves everything the response
// could break: no compartment to confine it to (no patient context), no
// label the clearance could refuse (consent.Clearance.Unrestricted), no
// constraint to check, and an interaction whose answer can hold only the
// type the scopes were checked for (instance reads and history, searches
// without includes or contained resources). Then the answer passes as from
// a plain reverse proxy, streamed, and the upstream is trusted to answer
// what it was asked.
func (a *access) inspects(in Interaction) bool {
	switch in.Kind {
	case Delete, Capabilities:
		return false
	}
	if a.patient != "" || !a.unrestricted || a.constrained != "" || in.unwrap != "" || in.pageURL != "" {
		return true
	}
	switch in.Kind {
	case Read, VRead:
		return false
	case HistoryInstance:
		return a.relink != nil // a Bundle, whose links move
	case SearchType, HistoryType:
		if a.relink != nil {
			return true
		}
		for _, p := range in.Params {
			name, _, _ := strings.Cut(p.Name, ":")
			if name == "_include" || name == "_revinclude" || name == "_contained" || name == "_containedType" {
				return true
			}
		}
		return false
	}
	return true
}

// checkWrite checks a write's new content and the stored version it
// replaces or deletes (checkStored), and authorises batch entries.
func (p *Proxy) checkWrite(ctx context.Context, r *http.Request, in Interaction, a *access, body []byte) *refusal {
	bad := func(msg string) *refusal { return refuse(http.StatusBadRequest, "invalid", msg) }
	switch in.Kind {
	case Batch:
		return p.checkBatch(ctx, r, a, body)
	case Create, Update:
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
			return refuse(http.StatusForbidden, "forbidden", "the resource carries labels beyond the token's clearance")
		}
		if a.patient != "" && !pr.inCompartment(a.patient) {
			return refuse(http.StatusForbidden, "forbidden", "the resource would be outside the patient compartment")
		}
		if ref := validR4(body); ref != nil {
			return ref
		}
	}
	return p.checkStored(ctx, in, a)
}

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
// A vread or an instance history is checked the same way before it is
// forwarded: an earlier version is shown only while the resource itself
// may be (the versions are then judged one by one as they come back). A
// record labelled, or moved to another patient, after it was written is
// withheld in every version, not only in those written after. A resource
// the server no longer has (deleted: 410) leaves its versions to be judged
// one by one.
func (p *Proxy) checkStored(ctx context.Context, in Interaction, a *access) *refusal {
	read := false
	switch in.Kind {
	case Update, Patch, Delete:
	case VRead, HistoryInstance:
		read = true
	default:
		return nil
	}
	inComp := a.patient != "" && in.Type != "Patient" // a patient/ token's own Patient is checked by id
	if !inComp && a.unrestricted || in.ID == "" {
		return nil
	}
	st, pr, err := p.fetch(ctx, in.Type+"/"+in.ID)
	switch {
	case err != nil:
		return refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
	case st == http.StatusOK && (pr.ResourceType != in.Type || pr.ID != in.ID):
		return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered with another resource")
	case read && (st == http.StatusNotFound || st == http.StatusGone):
		return nil
	case read && st == http.StatusOK:
		v := a.judge(pr)
		if v == needsContext {
			v = p.judgeContext(ctx, a, pr)
		}
		if v != keep {
			return notFound()
		}
		return nil
	case st != http.StatusOK, inComp && !pr.inCompartment(a.patient):
		return notFound()
	}
	if conf, tags := pr.labels(); !a.clearance.Allows(conf, tags) {
		return notFound()
	}
	if a.judge(pr) == needsContext && p.judgeContext(ctx, a, pr) != keep {
		return notFound() // a Binary whose context the access may not see
	}
	return nil
}

// judgeContext judges a Binary by the resource its securityContext names,
// read from the upstream: the access must be able to see that resource as
// it is now (type, compartment, labels). A context the proxy cannot read
// as Type/id on the upstream (contained, on another server, absent, itself
// a Binary) sees nothing.
func (p *Proxy) judgeContext(ctx context.Context, a *access, bin *projection) verdict {
	ref, ok := p.localRef(bin.SecurityContext.Reference)
	if !ok {
		return drop
	}
	st, pr, err := p.fetch(ctx, ref)
	if err != nil || st != http.StatusOK || pr.ResourceType+"/"+pr.ID != ref || pr.ResourceType == "Binary" {
		return drop
	}
	return a.judge(pr)
}

// localRef turns a reference into Type/id on the upstream: relative, or
// absolute on the upstream's base or the proxy's public one, a version
// dropped. Anything else is not the upstream's to answer.
func (p *Proxy) localRef(v string) (string, bool) {
	if strings.Contains(v, "://") {
		rest, ok := "", false
		for _, base := range []string{p.Upstream.String(), p.Base} {
			if base = strings.TrimSuffix(base, "/"); base != "" && strings.HasPrefix(v, base+"/") {
				rest, ok = v[len(base)+1:], true
				break
			}
		}
		if !ok {
			return "", false
		}
		v = rest
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

// fetch reads a stored resource from the upstream with the proxy's own credential.
func (p *Proxy) fetch(ctx context.Context, ref string) (int, *projection, error) {
	u := *p.Upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + ref
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if p.UpstreamAuth != nil {
		p.UpstreamAuth(req)
	}
	resp, err := p.transport().RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, p.Limits.resp()))
	if err != nil {
		return 0, nil, err
	}
	var pr projection
	if resp.StatusCode == http.StatusOK {
		if pr, err = parseResource(b); err != nil {
			return 0, nil, err
		}
	}
	return resp.StatusCode, &pr, nil
}

// checkBatch authorises every entry of a batch or transaction on its own;
// one refused entry refuses the whole Bundle. Patient/ tokens may batch
// reads and searches only.
func (p *Proxy) checkBatch(ctx context.Context, r *http.Request, a *access, body []byte) *refusal {
	bad := func(msg string) *refusal { return refuse(http.StatusBadRequest, "invalid", msg) }
	b, err := parseBatch(body, p.Limits.entries())
	if err == errTooManyEntries {
		return refuse(http.StatusRequestEntityTooLarge, "too-costly", "too many Bundle entries")
	}
	if err != nil {
		return bad("the body must be one strict JSON Bundle")
	}
	if b.ResourceType != "Bundle" || b.Type != "batch" && b.Type != "transaction" {
		return bad("POST to the base takes a batch or transaction Bundle")
	}
	a.writes = make([]bool, len(b.Entry))
	for i, e := range b.Entry {
		path, query, _ := strings.Cut(e.URL, "?")
		if strings.Contains(path, "://") || strings.HasPrefix(path, "/") {
			return bad("batch entry URLs must be relative to the base")
		}
		in, err := parsePath(e.Method, "/"+path, query, p.Limits)
		if err == nil && e.IfNoneExist != nil {
			// The Bundle goes upstream as sent: the criteria are checked
			// here as a header's would be, and make the entry conditional.
			err = in.setIfNoneExist(e.IfNoneExist, p.Limits)
		}
		if err != nil || in.Kind == Batch || in.Kind == Capabilities {
			return bad("batch entry " + itoa(i) + " is not understood")
		}
		if a.patient != "" && in.Kind != Read && in.Kind != VRead {
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+": only reads may be batched with patient context")
		}
		a.writes[i] = in.Kind == Create || in.Kind == Update || in.Kind == Patch || in.Kind == Delete
		orig := encodeQuery(in.Params)
		ea := *a
		if ref := p.authorize(&in, &ea); ref != nil {
			ref.msg = "batch entry " + itoa(i) + ": " + ref.msg
			if ref.status == http.StatusNotFound {
				ref.status = http.StatusForbidden
			}
			return ref
		}
		if in.unwrap != "" || encodeQuery(in.Params) != orig || in.Kind == SearchType && a.patient != "" {
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+" needs constraints the proxy adds; send it on its own")
		}
		if a.patient != "" && in.Kind == VRead || !a.unrestricted && (in.Kind == VRead || in.Kind == HistoryInstance) {
			// Checked on their own against the resource as it is now
			// (checkStored), with the same 404 for a withheld resource
			// and a missing one; a batch could not answer them alike.
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+": earlier versions are checked one by one; send it on its own")
		}
		if !a.unrestricted && (in.Kind == Update || in.Kind == Patch || in.Kind == Delete) {
			// Checked against the stored version on its own, it answers 404
			// for a withheld record and a free id alike; in a batch the
			// server's own answer for a free id would tell them apart.
			return refuse(http.StatusForbidden, "forbidden", "batch entry "+itoa(i)+
				": with a clearance short of every label, updates and deletes are checked one by one; send it on its own")
		}
		if len(e.Resource) > 0 {
			if ref := p.checkWrite(ctx, r, in, &ea, e.Resource); ref != nil {
				return ref
			}
		}
	}
	return nil
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
	Resource    []byte
}

var errTooManyEntries = errors.New("fhirproxy: too many Bundle entries")

// parseBatch reads a batch Bundle strictly, with member names matched
// exactly: the entry the proxy authorises is the one the server executes
// (encoding/json would also match "Request" and let the last twin win).
func parseBatch(body []byte, most int) (batch, error) {
	var b batch
	s := jsonstrict.NewScanner(body)
	err := s.Object(func(name []byte) error {
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
				var e batchEntry
				err := s.Object(func(name []byte) error {
					switch string(name) {
					case "request":
						return readObject(s, func(name []byte) error {
							switch string(name) {
							case "method":
								return readString(s, &e.Method)
							case "url":
								return readString(s, &e.URL)
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
