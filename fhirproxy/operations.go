package fhirproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
	"github.com/smartkit/smartkit/scopes"
)

// An operation is one entry of the proxy's table of FHIR operations
// (SPEC-NOTES A8): how it is authorised and what its answer may be. An
// operation not in the table is refused, at every level, for every token.
//
// Besides Patient/{id}/$everything (authorizeEverything), the table holds
// the R4 terminology operations, which apps that fill in forms or check
// codes call: they read terminology (ValueSet, CodeSystem, ConceptMap),
// never a patient's record. Each is authorised as a read of the resource it
// runs on: the r letter on its type at instance level (ValueSet/{id}/$expand),
// r and s at type level, where a parameter finds the resource by its
// canonical URL (ValueSet/$expand?url=…), as a search would. A patient/
// token may call them on the types it may read outside its compartment
// (Proxy.SharedTypes). Constrained scopes do not allow them: the answer is
// computed, not a record a constraint could be checked on.
//
// With a clearance short of every label, the resource an operation runs
// on is judged before the operation goes upstream (Proxy.judgeSubject): an
// expansion is its value set's content, and a value set the clearance
// withholds is not expanded for it. The answer is judged too
// (judgeOperationAnswer): terminology answers carry codes, never records.
//
// Parameters go in the query or, POSTed, in a Parameters body
// (parseOperationBody), each checked against the operation's list. A body
// may also carry the Coding and CodeableConcept parameters (coding,
// codeableConcept, codingA, codingB), which a query cannot; never a
// resource (an inline valueSet, codeSystem or conceptMap), a part, or
// anything but a name and one value. It goes upstream as it came, having
// been read whole. In a batch, operations other than $everything are
// refused: send them on their own.
type operation struct {
	// subject is the parameter that names, at type level, the canonical
	// URL of the resource the operation runs on. It is required there and
	// refused at instance level, where the id names it.
	subject string
	// params are the other parameters it takes; multi may repeat.
	params, multi []string
	// complex are the parameters that take a Coding or CodeableConcept,
	// in a body only.
	complex []string
	// references are the parameters that take a Reference (of a reference
	// alone), in a body only.
	references []string
	// tokens are the parameters that take a Coding or CodeableConcept in
	// a body and are read as a token search value: system|code, a
	// CodeableConcept's codings an OR list.
	tokens []string
	// answer is the resource type it answers with.
	answer string
}

// searchOperations are the operations that are searches with a twist,
// by "Type/$name", each answering a searchset of its type:
// Observation/$lastn (the latest observations of each code, max of them;
// HAPI, for one, requires a patient and a category or code) and US Core's
// DocumentReference/$docref (a patient's documents, existing or generated
// on demand: patient, start, end, type, on-demand, profile). Each is
// authorised, confined to the compartment (patient added for a patient/
// token, another patient refused), constrained and judged exactly as the
// type's search (the s letter), and forwarded to Type/$name; but $docref's
// constraint is the proxy's to hold (docrefOp), and $lastn's matches are
// held to one the proxy evaluates as well (lastnOp).
var searchOperations = map[string]bool{"Observation/" + lastnOp: true, "DocumentReference/" + docrefOp: true}

// searchOperation reports whether in is one of the operations that are
// searches: those of searchOperations, and Patient/{id}/$everything.
func searchOperation(in *Interaction) bool {
	return in.Kind == Operation && (searchOperations[in.Type+"/"+in.Operation] ||
		in.Type == "Patient" && in.ID != "" && in.Operation == "$everything")
}

// searchBody is what a POSTed search operation's Parameters body may hold:
// primitive values, and $docref's type, a CodeableConcept (or a Coding),
// as a token. They join the query's parameters and are authorised as
// they would be there; the operation goes upstream as the GET it then is.
func searchBody(name string) operation {
	if name == docrefOp {
		return operation{tokens: []string{"type"}}
	}
	return operation{}
}

// lastnOp is Observation/$lastn, whose matches under a constrained scope
// the proxy holds to the constraint where it evaluates it (authorize).
const lastnOp = "$lastn"

// docrefOp is US Core's $docref, whose answer under a constrained scope the
// proxy holds to the constraint itself: its parameters are not
// DocumentReference's search parameters, so the constraint's cannot go
// with it (authorize).
const docrefOp = "$docref"

// operations is the table, by "Type/$name".
var operations = map[string]operation{
	"ValueSet/$expand": {subject: "url", answer: "ValueSet", params: []string{"valueSetVersion", "filter", "date", "offset", "count",
		"includeDesignations", "includeDefinition", "activeOnly", "excludeNested", "excludeNotForUI", "excludePostCoordinated",
		"displayLanguage"}, multi: []string{"designation", "exclude-system", "system-version", "check-system-version", "force-system-version"}},
	"ValueSet/$validate-code": {subject: "url", answer: "Parameters", params: []string{"valueSetVersion", "code", "system",
		"systemVersion", "display", "date", "abstract", "displayLanguage"}, complex: []string{"coding", "codeableConcept"}},
	"CodeSystem/$lookup": {subject: "system", answer: "Parameters", params: []string{"code", "version", "date", "displayLanguage"},
		multi: []string{"property"}, complex: []string{"coding"}},
	"CodeSystem/$validate-code": {subject: "url", answer: "Parameters", params: []string{"version", "code", "display", "date",
		"abstract", "displayLanguage"}, complex: []string{"coding", "codeableConcept"}},
	"CodeSystem/$subsumes": {subject: "system", answer: "Parameters", params: []string{"codeA", "codeB", "version"},
		complex: []string{"codingA", "codingB"}},
	"ConceptMap/$translate": {subject: "url", answer: "Parameters", params: []string{"conceptMapVersion", "code", "system", "version",
		"source", "target", "targetsystem", "reverse"}, complex: []string{"coding", "codeableConcept"}},
}

// authorizeOperation allows only the operations of the table (deny by
// default); see operation.
func (p *Proxy) authorizeOperation(in *Interaction, a *access) *refusal {
	forbidden := func(msg string) *refusal { return refuse(http.StatusForbidden, "forbidden", msg) }
	if in.Operation == "$everything" && in.Type == "Patient" && in.ID != "" {
		return authorizeEverything(in, a)
	}
	if in.Operation == exportOp {
		return authorizeExport(in, a, p.UserExports, p.Limits)
	}
	if searchOperations[in.Type+"/"+in.Operation] {
		if in.ID != "" {
			return forbidden(in.Operation + " runs at type level only")
		}
		// A search: authorised, confined, constrained and judged as one.
		in.Kind, in.searchOp = SearchType, in.Operation
		if err := checkParamNames(in.Kind, in.Params); err != nil {
			return refuse(http.StatusBadRequest, "invalid", err.Error())
		}
		return p.authorize(in, a)
	}
	op, ok := operations[in.Type+"/"+in.Operation]
	if !ok {
		return forbidden("operation " + in.Operation + " is not allowed")
	}
	need := scopes.Read
	if in.ID == "" {
		need |= scopes.Search
	}
	allows := func(ctx scopes.Context) bool {
		return a.tok.Scopes.Allows(scopes.Access{Context: ctx, Type: in.Type, Perms: need})
	}
	switch {
	case allows(a.ctx):
	case a.ctx == scopes.Patient && a.tok.Scopes.HasContext(scopes.User) && allows(scopes.User):
		a.ctx, a.patient = scopes.User, "" // a mixed token's user/ scope allows it on its own terms
	default:
		return forbidden("the token's scopes do not allow " + in.Operation + " of " + in.Type + " (it needs " + need.String() + " on the type, with no constraint)")
	}
	if a.patient != "" && !a.shared(in.Type) {
		return forbidden(in.Type + " is outside the patient compartment")
	}
	seen := map[string]bool{}
	for i, prm := range in.operationParams() {
		inBody := i >= len(in.Params)
		switch {
		case prm.Name == op.subject && in.ID != "":
			return forbidden("parameter " + prm.Name + " is not taken at instance level: the id names the " + in.Type)
		case slices.Contains(op.multi, prm.Name):
		case slices.Contains(op.complex, prm.Name) && inBody: // its type checked by parseOperationBody
		case prm.Name == "_format" && !inBody: // JSON (jsonOnly)
		case prm.Name != op.subject && !slices.Contains(op.params, prm.Name):
			return forbidden("parameter " + prm.Name + " is not allowed on " + in.Operation)
		}
		if seen[prm.Name] && !slices.Contains(op.multi, prm.Name) {
			return refuse(http.StatusBadRequest, "invalid", "parameter "+prm.Name+" is given more than once")
		}
		seen[prm.Name] = true
	}
	if in.ID == "" && !seen[op.subject] {
		return refuse(http.StatusBadRequest, "required", "at type level "+in.Operation+" needs the "+op.subject+" parameter, the canonical URL of the "+in.Type)
	}
	return nil
}

// parseOperationBody reads the Parameters body of a POSTed operation of
// the table (strict JSON, FHIR JSON): its parameters, each a name and one
// value, primitive or, for the operation's complex ones, a Coding or
// CodeableConcept. Primitive values come back as their text, complex ones
// as "". Anything else (a resource, a part, an extension, an id or meta on
// the Parameters) is refused: the server would act on what the proxy did
// not check.
func parseOperationBody(op operation, contentType string, body []byte) ([]Param, *refusal) {
	bad := func(msg string) *refusal { return refuse(http.StatusBadRequest, "invalid", msg) }
	if !jsonMediaType(contentType) {
		return nil, refuse(http.StatusUnsupportedMediaType, "not-supported", "an operation's body is a FHIR JSON Parameters resource")
	}
	if jsonstrict.Check(body) != nil {
		return nil, bad("the operation's body is not strict JSON")
	}
	var doc map[string]json.RawMessage
	_ = json.Unmarshal(body, &doc)
	var items []map[string]json.RawMessage
	for name, v := range doc {
		switch name {
		case "resourceType":
			if string(v) != `"Parameters"` {
				return nil, bad("an operation's body is a Parameters resource")
			}
		case "parameter":
			if json.Unmarshal(v, &items) != nil {
				return nil, bad("the Parameters' parameter is not a list of parameters")
			}
		default:
			return nil, bad("the Parameters' member " + name + " is not supported here")
		}
	}
	if doc["resourceType"] == nil {
		return nil, bad("an operation's body is a Parameters resource")
	}
	params := make([]Param, 0, len(items))
	for _, item := range items {
		var name, kind string
		var value json.RawMessage
		for k, v := range item {
			switch {
			case k == "name":
				if json.Unmarshal(v, &name) != nil || name == "" {
					return nil, bad("a parameter's name is not a string")
				}
			case strings.HasPrefix(k, "value") && kind == "":
				kind, value = k, v
			default:
				return nil, bad("a parameter takes a name and one value here, not " + k)
			}
		}
		complex := slices.Contains(op.complex, name)
		switch {
		case slices.Contains(op.tokens, name) && (kind == "valueCoding" || kind == "valueCodeableConcept"):
			token, ok := codingToken(kind, value)
			if !ok {
				return nil, bad("parameter " + name + " takes a Coding or CodeableConcept whose every coding has a code")
			}
			params = append(params, Param{Name: name, Value: token})
		case name == "" || kind == "":
			return nil, bad("a parameter takes a name and one value")
		case slices.Contains(op.references, name) && kind != "valueReference":
			return nil, bad("parameter " + name + " takes a valueReference")
		case complex && (kind == "valueCoding" && isCoding(value) || kind == "valueCodeableConcept" && isCodeableConcept(value)):
			params = append(params, Param{Name: name})
		case slices.Contains(op.references, name) && kind == "valueReference":
			var ref struct{ Reference string }
			var members map[string]json.RawMessage
			if json.Unmarshal(value, &members) != nil || len(members) != 1 || members["reference"] == nil ||
				json.Unmarshal(value, &ref) != nil || ref.Reference == "" {
				return nil, bad("parameter " + name + " takes a Reference of a reference alone")
			}
			params = append(params, Param{Name: name, Value: ref.Reference})
		case !complex && primitiveValue[kind]:
			var v any
			d := json.NewDecoder(bytes.NewReader(value))
			d.UseNumber()
			if d.Decode(&v) != nil {
				return nil, bad("parameter " + name + " has no value")
			}
			switch v := v.(type) {
			case string:
				params = append(params, Param{Name: name, Value: v})
			case bool, json.Number:
				params = append(params, Param{Name: name, Value: fmt.Sprint(v)})
			default:
				return nil, bad("parameter " + name + " is not a " + strings.TrimPrefix(kind, "value"))
			}
		default:
			return nil, bad("parameter " + name + " does not take a " + strings.TrimPrefix(kind, "value") + " here")
		}
	}
	return params, nil
}

// codingToken reads a Coding or CodeableConcept (kind is its value[x]) as
// a token search value: system|code (code alone for a coding without a
// system), a CodeableConcept's codings an OR list, each part escaped as
// search values are. It is not one when it is not a Coding or
// CodeableConcept (isCoding, isCodeableConcept), or a coding has no code.
func codingToken(kind string, v json.RawMessage) (string, bool) {
	var codings []json.RawMessage
	switch {
	case kind == "valueCoding" && isCoding(v):
		codings = []json.RawMessage{v}
	case kind == "valueCodeableConcept" && isCodeableConcept(v):
		var cc struct{ Coding []json.RawMessage }
		_ = json.Unmarshal(v, &cc)
		codings = cc.Coding
	}
	var list []string
	for _, raw := range codings {
		var c struct{ System, Code string }
		_ = json.Unmarshal(raw, &c)
		switch {
		case c.Code == "":
			return "", false
		case c.System == "":
			list = append(list, tokenEscape(c.Code))
		default:
			list = append(list, tokenEscape(c.System)+"|"+tokenEscape(c.Code))
		}
	}
	return strings.Join(list, ","), len(list) > 0
}

// isCoding reports whether v is a Coding of string members (system,
// version, code, display) and userSelected, and nothing else.
func isCoding(v json.RawMessage) bool {
	var c map[string]any
	if json.Unmarshal(v, &c) != nil {
		return false
	}
	for k, m := range c {
		switch m.(type) {
		case string:
			if k != "system" && k != "version" && k != "code" && k != "display" {
				return false
			}
		case bool:
			if k != "userSelected" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// isCodeableConcept reports whether v is a CodeableConcept of Codings
// (isCoding) and a text, and nothing else.
func isCodeableConcept(v json.RawMessage) bool {
	var c map[string]json.RawMessage
	if json.Unmarshal(v, &c) != nil {
		return false
	}
	for k, m := range c {
		switch k {
		case "text":
			var t string
			if json.Unmarshal(m, &t) != nil {
				return false
			}
		case "coding":
			var list []json.RawMessage
			if json.Unmarshal(m, &list) != nil || slices.ContainsFunc(list, func(c json.RawMessage) bool { return !isCoding(c) }) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// primitiveValue are the value[x] a primitive operation parameter may take.
var primitiveValue = map[string]bool{"valueString": true, "valueCode": true, "valueId": true, "valueUri": true, "valueUrl": true,
	"valueCanonical": true, "valueBoolean": true, "valueInteger": true, "valuePositiveInt": true, "valueUnsignedInt": true,
	"valueDecimal": true, "valueDate": true, "valueDateTime": true, "valueInstant": true}

// authorizeEverything authorises Patient/{id}/$everything. A token with
// read and search of every type asks for everything; one with narrower
// scopes asks for the types it reads and searches (as _type; a _type of its
// own must name only those), with no constraint or under constraints the
// proxy evaluates, to which each entry of the type is then held; the answer
// is judged entry by entry as a search's, so an entry of another type is
// left out whatever the server sends. Without patient context the token must
// read Patient: the server's answer for a patient it does not hold would
// tell otherwise whether one exists.
func authorizeEverything(in *Interaction, a *access) *refusal {
	forbidden := func(msg string) *refusal { return refuse(http.StatusForbidden, "forbidden", msg) }
	if a.patient != "" && in.ID != a.patient {
		return forbidden("$everything of another patient")
	}
	a.provenances = !a.seesAll() // Provenances come with the records they are about, and are judged by them
	a.everything = in.ID
	var asked []string // the types _type names, each repetition adding to them (R4: 0..*, each a list)
	for _, prm := range in.Params {
		switch prm.Name {
		case "_type":
			for _, t := range strings.Split(prm.Value, ",") {
				if !slices.Contains(asked, t) {
					asked = append(asked, t)
				}
			}
		case "_count", "_since", "start", "end", "_format":
		case "ct", "_page_token", "_page", "_offset", "_getpages", "_getpagesoffset":
			// A server's continuation in the next link it wrote on the
			// operation's own URL (Microsoft's ct, Google's _page_token,
			// IBM's _page, _offset; HAPI's two at its base are signed page
			// links instead): the answer is judged entry by entry anyway.
		default:
			return forbidden("parameter " + prm.Name + " is not allowed on $everything")
		}
	}
	all := a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: "*", Perms: scopes.Read | scopes.Search})
	switch {
	case all:
		return nil
	case a.patient == "" && !a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: "Patient", Perms: scopes.Read}):
		return forbidden("$everything of a patient needs the r letter on Patient, or read and search of every type")
	}
	if asked == nil { // no _type: the types the token reads and searches
		if asked = scopedTypes(a); len(asked) == 0 {
			return forbidden("$everything needs read and search of a type, with no constraint or one the proxy evaluates")
		}
	}
	// A type read and searched only under query constraints the proxy
	// evaluates is asked for too, and its entries held to them (heldTypes):
	// the server applies no constraint in $everything.
	for _, t := range asked {
		held, ok := searchable(a, t)
		switch {
		case !knownType(t) || !ok:
			return forbidden("$everything's _type names " + strconv.Quote(t) + ", which the token's scopes do not allow reading and searching" +
				" (with no constraint, or one the proxy evaluates)")
		case held != nil:
			if a.heldTypes == nil {
				a.heldTypes = map[string]*localConstraint{}
			}
			a.heldTypes[t] = held
		}
	}
	// One _type goes upstream, the list of every type asked for.
	in.Params = slices.DeleteFunc(in.Params, func(prm Param) bool { return prm.Name == "_type" })
	in.Params = append(in.Params, Param{Name: "_type", Value: strings.Join(asked, ",")})
	return nil
}

// tableOperation returns the table's entry for an interaction that is one
// of its operations ($everything is not: its answer is judged as a search's).
func tableOperation(in *Interaction) (operation, bool) {
	if in.Kind != Operation {
		return operation{}, false
	}
	op, ok := operations[in.Type+"/"+in.Operation]
	return op, ok
}

// judgeSubject judges, for a clearance short of every label, the resource
// an operation of the table runs on, before the operation goes upstream:
// at instance level the record read by its id, at type level every record
// with the canonical URL the operation names, on the server's first page
// of them (more, versions of a value set say, are refused: name one by its
// id). One the access may not see answers as a missing one would, and
// nothing is sent: at instance level exactly as a missing one (404); at
// type level the server's own answer to an unknown URL may differ from the
// proxy's 404, which then tells that some withheld terminology resource
// has the URL, and nothing of it.
func (p *Proxy) judgeSubject(ctx context.Context, in *Interaction, a *access) *refusal {
	if in.patients != nil && !a.unrestricted {
		if ref := p.judgePatients(ctx, in.patients, a); ref != nil {
			return ref
		}
	}
	op, ok := tableOperation(in)
	group := in.Kind == Operation && in.Operation == exportOp && in.ID != "" // Group/{id}/$export
	if !ok && !group || a.unrestricted {
		return nil
	}
	if in.ID != "" {
		st, pr, _, err := p.fetch(ctx, in.Type+"/"+in.ID, "")
		switch {
		case err != nil:
			return refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
		case st != http.StatusOK || pr.ResourceType != in.Type || pr.ID != in.ID:
			return notFound()
		case a.judge(pr) != keep:
			return outsideGrant()
		}
		return nil
	}
	url := values(in.operationParams(), op.subject)[0]
	st, body, _, err := p.get(ctx, in.Type, encodeQuery([]Param{{Name: "url", Value: url}}))
	switch {
	case err != nil:
		return refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
	case st != http.StatusOK:
		return refuse(http.StatusBadGateway, "transient", "the FHIR server did not answer a search of "+in.Type+" by url ("+strconv.Itoa(st)+")")
	}
	withheld := false
	_, next, ok := readSearchPage(body, func(e *bundleEntry) {
		withheld = withheld || e.hasRes && e.res.ResourceType != "OperationOutcome" && (e.res.ResourceType != in.Type || a.judge(&e.res) != keep)
	})
	switch {
	case !ok:
		return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered a search of "+in.Type+" by url with invalid JSON or not a Bundle")
	case next:
		return refuse(http.StatusForbidden, "too-costly", "more "+in.Type+" records have this url than the proxy judges; name one by its id")
	case withheld:
		return outsideGrant()
	}
	return nil
}

// judgeOperationAnswer judges the answer of an operation of the table: of
// its answer type (or an OperationOutcome), labels within the clearance,
// no resource inside a Parameters, and contained resources only of types
// the token may read (a computed answer has no other reason to carry one).
// A labelled answer is withheld as a labelled record is, answered as
// missing; any other is the server's error (502).
func (a *access) judgeOperationAnswer(op operation, top *projection, body []byte) *refusal {
	if top.ResourceType == "OperationOutcome" {
		return nil
	}
	if top.ResourceType != op.answer {
		return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the operation with a "+top.ResourceType+", not a "+op.answer)
	}
	var doc struct {
		Parameter []parameterPart                 `json:"parameter"`
		Contained []struct{ ResourceType string } `json:"contained"`
	}
	if json.Unmarshal(body, &doc) != nil || carriesResource(doc.Parameter) {
		return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the operation with a resource inside its Parameters")
	}
	for _, c := range doc.Contained {
		if !a.readable(c.ResourceType) {
			return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the operation with a contained "+c.ResourceType)
		}
	}
	if conf, tags := top.labels(); !a.clearance.Allows(conf, tags) {
		return outsideGrant()
	}
	return nil
}

// carriesResource reports whether a Parameters' parameters hold a
// resource, in any parameter or part.
func carriesResource(parts []parameterPart) bool {
	for _, p := range parts {
		if len(p.Resource) > 0 || carriesResource(p.Part) {
			return true
		}
	}
	return false
}

// parameterPart is what judgeOperationAnswer reads of one parameter.
type parameterPart struct {
	Resource json.RawMessage `json:"resource"`
	Part     []parameterPart `json:"part"`
}

// supportedOperations are the operations a CapabilityStatement keeps for a
// type (names without the $): those of the table, the searches, and
// $everything.
func supportedOperations(typ string) []string {
	var out []string
	switch typ {
	case "Patient":
		out = append(out, "everything", "export")
	case "Group":
		out = append(out, "export")
	}
	for _, keys := range []iter.Seq[string]{maps.Keys(operations), maps.Keys(searchOperations)} {
		for key := range keys {
			if t, name, _ := strings.Cut(key, "/"); t == typ {
				out = append(out, strings.TrimPrefix(name, "$"))
			}
		}
	}
	return out
}
