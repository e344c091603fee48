package fhirproxy

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smartkit/smartkit/scopes"
)

// Kind is a FHIR RESTful interaction.
type Kind string

// The interactions the proxy understands. Anything else is refused.
const (
	Read            Kind = "read"
	VRead           Kind = "vread"
	SearchType      Kind = "search-type"
	SearchCompart   Kind = "search-compartment" // GET /Patient/123/Observation
	SearchSystem    Kind = "search-system"
	HistoryInstance Kind = "history-instance"
	HistoryType     Kind = "history-type"
	HistorySystem   Kind = "history-system"
	Create          Kind = "create"
	Update          Kind = "update"
	Patch           Kind = "patch"
	Delete          Kind = "delete"
	Operation       Kind = "operation"
	Batch           Kind = "batch" // batch or transaction Bundle POSTed to the base
	Capabilities    Kind = "capabilities"
	// ExportStatus is a poll (GET) or cancel (DELETE) of a bulk export's
	// status at the link the proxy gave for it; ExportFile a download of
	// one of its files at the link the manifest gave (bulk.go).
	ExportStatus Kind = "export-status"
	ExportFile   Kind = "export-file"
)

// Param is one query parameter, decoded once, in request order.
type Param = scopes.Param

// An Interaction is a request parsed once, strictly. The proxy authorises
// it and forwards exactly it, re-serialised; it never forwards raw bytes it
// did not parse.
type Interaction struct {
	Kind        Kind
	Type        string // resource type; "" at system level
	ID          string
	VersionID   string
	Compartment string // the compartment owner's id for /Patient/{id}/{Type}
	Operation   string // "$everything", without the type or id
	Params      []Param
	// Conditional: a conditional create, update, patch or delete (search
	// criteria in the query, or If-None-Exist). On its own the proxy
	// resolves one to the plain interaction its visible matches call for
	// before it is forwarded (see the package documentation).
	Conditional bool

	unwrap string // a constrained read sent as a search for this id: answer with the one resource, or 404
	post   bool   // a POST _search (of a type, a compartment or the system): parameters go upstream in a form body
	// searchOp is a search sent as an operation that is one
	// (Observation/$lastn): forwarded to Type/searchOp.
	searchOp string
	// asGet is a POSTed operation whose Parameters body was read into
	// Params, a search operation's ($lastn, $docref, $everything) or a bulk
	// kick-off's that names no patients: forwarded as a GET.
	asGet bool
	// opBody is a POSTed operation's Parameters body, read whole and
	// checked (parseOperationBody), and bodyParams its parameters, which
	// are authorised with the query's and go upstream in it, not the query.
	opBody     []byte
	bodyParams []Param
	// patients are a POSTed bulk export kick-off's patient references
	// (Bulk Data's patient parameter, a Reference, so in a body only):
	// authorised with its parameters (authorizeExport), and sent upstream
	// with them in a Parameters body (exportParameters).
	patients []string
	// ifNoneExist holds a conditional create's criteria (If-None-Exist),
	// re-encoded from their parsed form, and ifNoneCrit the parsed form.
	ifNoneExist string
	ifNoneCrit  []Param
	// ifMatch is the version a write names (If-Match, or a batch entry's
	// request.ifMatch); checkStored holds it to the version it judges.
	ifMatch string
	// pageURL is a signed page link's target below the upstream's base,
	// forwarded as the upstream wrote it (links.go).
	pageURL string
	// pageHeld: the page continues a search whose every entry of the
	// constrained type was held to the constraint (pageRef.Held).
	pageHeld bool
	// stored: an export file in object storage, pageURL its whole URL
	// (Proxy.ExportStorage).
	stored bool
	// chained: the search has chains the proxy resolves itself before
	// forwarding it, since labels are judged (chains.go).
	chained bool
	// counts: a search with _summary=count that the proxy answers itself,
	// from the matches the access may see, since labels are judged
	// (count.go).
	counts bool
	// resolve: a conditional write sent on its own, which the proxy
	// resolves to a plain one before it is forwarded (conditional.go).
	resolve bool
	// fresh: an update resolved from a conditional one that matched
	// nothing, at the body's id, which must be free (checkStored: 409).
	fresh bool
	// native: a read of a Binary that asks for its content in its own
	// media type (wantsNative), answered with the judged resource's data.
	native bool
	// deleted: a bulk export's file of deleted resources (bulk.go).
	deleted bool
	// kickOff is an export status link's kick-off as sent (exportRef.KickOff),
	// and since whether its kick-off had _since (exportRef.Since).
	kickOff string
	since   bool
	// notice: an export file link to the proxy's own deletionsNotice.
	notice bool
}

// setIfNoneExist makes a create conditional on the criteria of an
// If-None-Exist header (or a batch entry's request.ifNoneExist): parsed as
// any query, refused when not understood, forwarded re-encoded. The
// criteria search the whole type, so they make the create a conditional
// interaction, with what that needs (the s letter; no patient context).
func (in *Interaction) setIfNoneExist(vals []string, lim Limits) error {
	if in.Kind != Create {
		return parseError("If-None-Exist applies to a create only")
	}
	if len(vals) != 1 {
		return parseError("one If-None-Exist at most")
	}
	crit, err := parseQuery(vals[0], lim)
	if err != nil || len(crit) == 0 {
		return parseError("the If-None-Exist criteria are not understood")
	}
	for _, p := range crit {
		if !criterion(p.Name) {
			// An _include would count what it brings as matches,
			// _summary=count would match nothing (found by probing: a
			// batch entry's went upstream as it was where answers pass
			// unread).
			return parseError("parameter " + p.Name + " of If-None-Exist is not a search criterion")
		}
	}
	if encodedLen(crit) > lim.url() { // as forwarded, like a search's query (forwardable)
		return parseError("the If-None-Exist criteria are too long")
	}
	in.Conditional, in.ifNoneExist, in.ifNoneCrit = true, encodeQuery(crit), crit
	return nil
}

// ErrBadRequest is matched by every error the parser returns.
var ErrBadRequest = errors.New("fhirproxy: request not understood")

type parseError string

// errTokenParam is parseQuery's error for an access_token parameter (RFC
// 6750 §2.2, §2.3): the token goes in the Authorization header only, and a
// parameter would be forwarded, into the FHIR server's URLs and logs.
const errTokenParam = parseError("send the token in the Authorization header only; an access_token parameter is not accepted")

func (e parseError) Error() string        { return "fhirproxy: " + string(e) }
func (e parseError) Is(target error) bool { return target == ErrBadRequest }

// Limits bound what the proxy parses. Zero fields take the defaults.
type Limits struct {
	MaxURL    int   // bytes of path and query; 0 means 8 KiB
	MaxParams int   // query parameters; 0 means 64
	MaxBody   int64 // request body bytes; 0 means 2 MiB
	// MaxResp bounds the upstream bytes the proxy holds to inspect: a whole
	// response, or one entry of a streamed Bundle; 0 means 64 MiB.
	MaxResp int64
	// StreamFrom is the size above which a Bundle is filtered as it streams
	// (memory: about one entry) rather than read whole; 0 means 1 MiB.
	// Constrained reads and proxies with a Transform always read whole.
	StreamFrom int64
	MaxEntry   int // Bundle entries in a batch; 0 means 100
	// MaxHeader bounds the request's header bytes (names and values), on
	// top of the server's own MaxHeaderBytes (1 MiB by default); 0 means
	// 16 KiB.
	MaxHeader int
	// MaxCount is the ceiling of a search's _count: a larger page size is
	// lowered to it (a server may always return fewer); 0 means 1000.
	MaxCount int
	// MaxChains bounds the chained parameters of one search that the
	// proxy resolves itself (with labels judged), each by up to ten
	// searches of its own upstream; 0 means 4.
	MaxChains int
}

// or returns v, or def when v is not positive: the zero values of Limits
// and Proxy.Timeout mean their defaults.
func or[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (l Limits) url() int          { return or(l.MaxURL, 8<<10) }
func (l Limits) params() int       { return or(l.MaxParams, 64) }
func (l Limits) body() int64       { return or(l.MaxBody, 2<<20) }
func (l Limits) resp() int64       { return or(l.MaxResp, 64<<20) }
func (l Limits) streamFrom() int64 { return or(l.StreamFrom, 1<<20) }
func (l Limits) entries() int      { return or(l.MaxEntry, 100) }
func (l Limits) header() int       { return or(l.MaxHeader, 16<<10) }
func (l Limits) count() int        { return or(l.MaxCount, 1000) }
func (l Limits) chains() int       { return or(l.MaxChains, 4) }

// capCount lowers every _count to the ceiling; one that is not a
// non-negative integer is not understood.
func capCount(ps []Param, most int) error {
	for i := range ps {
		if ps[i].Name != "_count" {
			continue
		}
		n, err := strconv.Atoi(ps[i].Value)
		if err != nil || n < 0 {
			return parseError("_count must be a non-negative integer")
		}
		if n > most {
			ps[i].Value = strconv.Itoa(most)
		}
	}
	return nil
}

// headerBytes counts a header's names and values, stopping past limit.
func headerBytes(h http.Header, limit int) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v)
		}
		if n > limit {
			break
		}
	}
	return n
}

// validID is FHIR's id syntax: [A-Za-z0-9\-\.]{1,64}, and not "." or "..".
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// parsePath parses the path below the FHIR base and the raw query into an
// Interaction, refusing anything ambiguous: dot segments, empty segments,
// percent-encoding in the path, ';', '\\', control characters, unknown or
// wrongly cased resource types.
func parsePath(method, path, rawQuery string, lim Limits) (Interaction, error) {
	var in Interaction
	if len(path)+len(rawQuery) > lim.url() {
		return in, parseError("the URL is too long")
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c < 0x21 || c > 0x7e || c == '%' || c == ';' || c == '\\' || c == '?' || c == '#' {
			return in, parseError("the path has a character the proxy does not accept")
		}
	}
	params, err := parseQuery(rawQuery, lim)
	if err != nil {
		return in, err
	}
	in.Params = params
	path = strings.TrimPrefix(path, "/")
	var buf [6]string // the segments of every path the proxy understands fit
	segs := buf[:0]
	for rest := path; path != ""; {
		seg, more, found := strings.Cut(rest, "/")
		segs = append(segs, seg)
		if !found {
			break
		}
		rest = more
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return in, parseError("empty or dot segment in the path")
		}
	}
	bad := parseError("this request shape is not supported")
	isType := func(s string) bool { return knownType(s) }
	isOp := func(s string) bool { return strings.HasPrefix(s, "$") && validOpName(s[1:]) }
	switch {
	case len(segs) == 0:
		switch method {
		case "GET":
			in.Kind = SearchSystem
		case "POST":
			in.Kind = Batch
		default:
			return in, bad
		}
	case len(segs) == 1 && segs[0] == "metadata" && method == "GET":
		in.Kind = Capabilities
	case len(segs) == 1 && segs[0] == "_history" && method == "GET":
		in.Kind = HistorySystem
	case len(segs) == 1 && segs[0] == "_search" && method == "POST":
		in.Kind, in.post = SearchSystem, true
	case len(segs) == 1 && (segs[0] == exportStatusOp && (method == "GET" || method == "DELETE") ||
		segs[0] == exportFileOp && method == "GET"):
		// A bulk export's status or file, by the link the proxy signed:
		// its one parameter, and nothing else.
		name := exportJobParam
		in.Kind = ExportStatus
		if segs[0] == exportFileOp {
			name, in.Kind = exportFileParam, ExportFile
		}
		if len(params) != 1 || params[0].Name != name {
			return in, parseError(segs[0] + " takes exactly one parameter, " + name + ", as the proxy's link gave it")
		}
	case len(segs) == 1 && isOp(segs[0]):
		in.Kind, in.Operation = Operation, segs[0]
	case len(segs) >= 1 && !isType(segs[0]):
		return in, parseError("unknown resource type (types are case-sensitive)")
	case len(segs) == 1:
		in.Type = segs[0]
		switch method {
		case "GET":
			in.Kind = SearchType
		case "POST":
			in.Kind = Create
		case "PUT":
			in.Kind, in.Conditional = Update, true
		case "DELETE":
			in.Kind, in.Conditional = Delete, true
		case "PATCH":
			in.Kind, in.Conditional = Patch, true
		default:
			return in, bad
		}
	case len(segs) == 2 && segs[1] == "_search" && method == "POST":
		in.Type, in.Kind, in.post = segs[0], SearchType, true
	case len(segs) == 2 && segs[1] == "_history" && method == "GET":
		in.Type, in.Kind = segs[0], HistoryType
	case len(segs) == 2 && isOp(segs[1]):
		in.Type, in.Kind, in.Operation = segs[0], Operation, segs[1]
	case len(segs) == 2 && validID(segs[1]):
		in.Type, in.ID = segs[0], segs[1]
		switch method {
		case "GET":
			in.Kind = Read
		case "PUT":
			in.Kind = Update
		case "PATCH":
			in.Kind = Patch
		case "DELETE":
			in.Kind = Delete
		default:
			return in, bad
		}
	case len(segs) == 3 && validID(segs[1]) && segs[2] == "_history" && method == "GET":
		in.Type, in.ID, in.Kind = segs[0], segs[1], HistoryInstance
	case len(segs) == 3 && validID(segs[1]) && isOp(segs[2]):
		in.Type, in.ID, in.Kind, in.Operation = segs[0], segs[1], Operation, segs[2]
	case len(segs) == 3 && validID(segs[1]) && isType(segs[2]) && method == "GET",
		len(segs) == 4 && validID(segs[1]) && isType(segs[2]) && segs[3] == "_search" && method == "POST":
		// Compartment search: /Patient/123/Observation, or POSTed to
		// /Patient/123/Observation/_search.
		if segs[0] != "Patient" {
			return in, parseError("only the Patient compartment is supported")
		}
		in.Compartment, in.Type, in.Kind, in.post = segs[1], segs[2], SearchCompart, len(segs) == 4
	case len(segs) == 4 && validID(segs[1]) && segs[2] == "_history" && validID(segs[3]) && method == "GET":
		in.Type, in.ID, in.VersionID, in.Kind = segs[0], segs[1], segs[3], VRead
	default:
		return in, bad
	}
	if in.Kind == Operation && method != "GET" && method != "POST" {
		// FHIR invokes an operation with POST, or GET when it changes
		// nothing. Found by probing: DELETE /Patient/p1/$everything by a
		// read-only token went upstream as a DELETE.
		return in, parseError("an operation is invoked with GET or POST")
	}
	if in.Kind == Batch {
		// A batch or transaction is all in its Bundle: a query would go
		// upstream unjudged (entries are authorised, not the POST's URL).
		for _, p := range in.Params {
			if p.Name != "_format" {
				return in, parseError("a batch or transaction takes no query parameters")
			}
		}
	}
	if in.Kind == Create || in.Kind == Update || in.Kind == Delete || in.Kind == Patch {
		for _, p := range in.Params {
			switch {
			case p.Name == "_format":
			case !in.Conditional:
				// A create, or a write of one instance, takes no query but
				// _format: FHIR has no condition there (a create's goes in
				// If-None-Exist), and servers read some parameters as
				// instructions (HAPI's _cascade=delete deletes what
				// refers to the record too, whatever its type).
				return in, parseError("a create or an instance write takes no query parameters but _format")
			case !criterion(p.Name):
				return in, parseError("parameter " + p.Name + " is not a search criterion")
			}
		}
	}
	return in, checkParamNames(in.Kind, in.Params)
}

// checkParamNames refuses the parameters an interaction does not take, so
// that none goes upstream for a server to read in a way the proxy cannot
// know (found by probing: a read's ?_id=… or ?patient=… went with the
// read, and a system/ token's Observation?_type=Patient with its search):
//
//   - a read or vread takes _format, _pretty, _summary and _elements (R4
//     http.html#read);
//   - a search takes _type at system level only;
//   - an _include or _revinclude names * or Type:param[:Target], with R4's
//     types (found by FuzzPagesAgree: a server that read
//     Observat^on:subject as a subject's include brought what the proxy,
//     which judges includes by their type and parameter, could not
//     justify, page by page otherwise than whole).
//
// Searches and histories keep the names FHIR does not define: servers
// write their own into the page links they answer with (HAPI's _getpages
// and _getpagesoffset, others' _offset or _page_token, Azure's ct), which
// the proxy passes on. What such a name asks of a server the proxy cannot
// know, so an answer to a request with an underscored one is always read
// and judged (unknownResultParam, access.inspects): found by probing, R5's
// Observation?_graph=…, inclusion by GraphDefinition, went upstream as a
// plain search whose answer a system/ token got unread.
func checkParamNames(kind Kind, params []Param) error {
	for _, p := range params {
		base, _, _ := strings.Cut(p.Name, ":")
		switch kind {
		case Read, VRead:
			switch base {
			case "_format", "_pretty", "_summary", "_elements":
				continue
			}
			return parseError("a read takes no parameter but _format, _pretty, _summary and _elements, not " + p.Name)
		case SearchType, SearchCompart:
			if base == "_type" {
				// A server that read it at type level could answer with
				// other types' records.
				return parseError("_type chooses the types of a system-level search only")
			}
		}
		if (base == "_include" || base == "_revinclude") && !includeValue(p.Value) {
			return parseError(p.Name + " names * or Type:param[:Target], with R4's resource types")
		}
	}
	return nil
}

// includeValue reports whether an _include or _revinclude value is *, or
// Type:param or Type:param:Target with R4 types (Type may be *, param *).
func includeValue(v string) bool {
	if v == "*" {
		return true
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[1] == "" || parts[0] != "*" && !knownType(parts[0]) {
		return false
	}
	return len(parts) == 2 || knownType(parts[2])
}

// unknownResultParam reports whether a parameter name (without modifier)
// is an underscored one FHIR does not define (specialParams, and R5's
// _maxresults and _score, which limit and annotate an answer).
func unknownResultParam(base string) bool {
	return strings.HasPrefix(base, "_") && !slices.Contains(specialParams[:], base) && base != "_maxresults" && base != "_score"
}

// criterion reports whether a parameter of a conditional write's query may
// be a search criterion: any but the underscored names that are not
// (result parameters, and server instructions such as _cascade or
// _expunge, which act beyond the records matched).
func criterion(name string) bool {
	base, _, _ := strings.Cut(name, ":")
	if !strings.HasPrefix(base, "_") {
		return true
	}
	switch base {
	case "_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text", "_content", "_list", "_has", "_filter":
		return true
	}
	return false
}

func validOpName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// parseQuery decodes a query string once: '&'-separated pairs, no ';', no
// malformed escapes, valid UTF-8, a bounded count. Repeated names are kept
// in order (FHIR ANDs them); empty pairs are dropped.
func parseQuery(raw string, lim Limits) ([]Param, error) {
	if raw == "" {
		return nil, nil
	}
	if strings.IndexByte(raw, ';') >= 0 {
		return nil, parseError("';' is not a parameter separator")
	}
	var out []Param
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		name, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || name == "" || !utf8.ValidString(name) || !utf8.ValidString(value) {
			return nil, parseError("malformed query parameter")
		}
		base, mod, _ := strings.Cut(name, ":")
		if strings.EqualFold(base, "access_token") {
			return nil, errTokenParam
		}
		if emptyPart(name) {
			// (Found by fuzzing: ":Patient.=x" read as a chain through a
			// parameter with no name, resolved by the proxy into a
			// parameter with none, "=Patient/p1", which it sent upstream.)
			return nil, parseError("malformed query parameter name: a name, a modifier or a chain's link is empty")
		}
		// Parameter names and modifiers are case-sensitive, and the proxy
		// judges FHIR's by their names; a server that matched them without
		// case would run _HAS, _SUMMARY=count or :NOT where the proxy saw a
		// name it does not know.
		if strings.HasPrefix(base, "_") {
			if c, ok := inAnotherCase(base, specialParams[:]...); ok {
				return nil, parseError("parameter names are case-sensitive: " + base + " is not " + c)
			}
		}
		if c, ok := inAnotherCase(mod, modifiers[:]...); ok {
			return nil, parseError("modifiers are case-sensitive: :" + mod + " is not :" + c)
		}
		if hasControl(name) || hasControl(value) {
			// No search value holds one; forwarded, a NUL could end a
			// value early in a server written in C, and a line break
			// forge a line in a log that writes values decoded.
			return nil, parseError("control character in a query parameter")
		}
		out = append(out, Param{Name: name, Value: value})
		if len(out) > lim.params() {
			return nil, parseError("too many query parameters")
		}
	}
	return out, nil
}

// emptyPart reports whether a parameter name has an empty part between
// its separators (':' before a modifier or a type, '.' in a chain):
// ":Patient", "subject.", "code::text".
func emptyPart(name string) bool {
	prev := byte('.') // the start reads as after a separator
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c == ':' || c == '.') && (prev == ':' || prev == '.') {
			return true
		}
		prev = c
	}
	return prev == ':' || prev == '.'
}

// specialParams are FHIR's parameters for all resources and its result
// parameters (R4 search.html).
var specialParams = [...]string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text", "_content",
	"_list", "_has", "_type", "_query", "_filter", "_sort", "_count", "_include", "_revinclude", "_summary", "_total",
	"_elements", "_contained", "_containedType", "_format", "_pretty", "_since", "_at", "_language"}

// modifiers are FHIR's search modifiers (R4 search.html; :recurse is R3's
// name for :iterate, which servers still read).
var modifiers = [...]string{"missing", "exact", "contains", "not", "text", "in", "not-in", "below", "above",
	"identifier", "of-type", "code-text", "text-advanced", "iterate", "recurse"}

// inAnotherCase returns the name among known that s is in another case
// (Unicode case folding, as encoding/json and .NET match names), if any.
func inAnotherCase(s string, known ...string) (string, bool) {
	if s == "" {
		return "", false
	}
	for _, k := range known {
		if s != k && strings.EqualFold(s, k) {
			return k, true
		}
	}
	return "", false
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// encodeQuery re-serialises parameters canonically.
func encodeQuery(ps []Param) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.Name))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.Value))
	}
	return b.String()
}

// encodedLen is len(encodeQuery(ps)), without building it.
func encodedLen(ps []Param) int {
	n := max(len(ps)-1, 0) // the &s
	for _, p := range ps {
		n += 1 + escapedLen(p.Name) + escapedLen(p.Value) // and the =
	}
	return n
}

// escapedLen is len(url.QueryEscape(s)): unreserved bytes and the space
// (+) stay one byte, any other becomes three.
func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == ' ':
		default:
			n += 2
		}
	}
	return n
}

// forwardable reports whether what the proxy forwards for in, its path and
// its parameters re-encoded with whatever authorisation added to them, is
// within the URL limit. The limit bounds what leaves the proxy as well as
// what reaches it: re-encoding can triple a parameter's length (a raw {
// goes as %7B), and a resolved chain becomes a list of references.
func (in *Interaction) forwardable(lim Limits) bool {
	const longestPath = 512 // well over any path the proxy forwards: no need to build it
	n := encodedLen(in.Params)
	return n+longestPath <= lim.url() || n+len(in.path()) <= lim.url()
}

// operationParams are an operation's parameters: the query's, then its
// body's (bodyParams).
func (in *Interaction) operationParams() []Param {
	return append(slices.Clip(in.Params), in.bodyParams...)
}

// path re-serialises the interaction's path below the base.
func (in Interaction) path() string { return in.pathUnder("") }

// pathUnder is path with base (no trailing slash) in front, built in one
// allocation: it is on every forwarded request.
func (in Interaction) pathUnder(base string) string {
	var buf [6]string
	parts := buf[:0]
	switch {
	case in.Kind == SearchType && in.post:
		parts = append(parts, in.Type, "_search")
	case in.Kind == SearchType && in.searchOp != "":
		parts = append(parts, in.Type, in.searchOp)
	case in.Kind == SearchCompart:
		parts = append(parts, "Patient", in.Compartment, in.Type)
		if in.post {
			parts = append(parts, "_search")
		}
	case in.Kind == SearchSystem && in.post:
		parts = append(parts, "_search")
	case in.Kind == Capabilities:
		parts = append(parts, "metadata")
	case in.Kind == HistorySystem:
		parts = append(parts, "_history")
	default:
		if in.Type != "" {
			parts = append(parts, in.Type)
		}
		if in.ID != "" {
			parts = append(parts, in.ID)
		}
		switch in.Kind {
		case HistoryInstance, HistoryType:
			parts = append(parts, "_history")
		case VRead:
			parts = append(parts, "_history", in.VersionID)
		case Operation:
			parts = append(parts, in.Operation)
		}
	}
	if len(parts) == 0 {
		return base + "/"
	}
	n := len(base)
	for _, p := range parts {
		n += 1 + len(p)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(base)
	for _, p := range parts {
		b.WriteByte('/')
		b.WriteString(p)
	}
	return b.String()
}

// values returns every value of a parameter name (exact name, so modifiers
// are distinct names).
func values(ps []Param, name string) []string {
	var out []string
	for _, p := range ps {
		if p.Name == name {
			out = append(out, p.Value)
		}
	}
	return out
}
