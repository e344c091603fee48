package fhirproxy

import (
	"bytes"
	"context"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/consent"
	"github.com/smartkit/smartkit/scopes"
	"github.com/smartkit/smartkit/smart"
)

// TokenVerifier verifies bearer tokens; *smart.Verifier implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*smart.Token, error)
}

// Transform lets a host redact or reshape a response body for an app (e.g.
// de-identified fields for research apps); it runs after the proxy's own
// checks, on every successful response that can carry resources (all but
// a delete's), which the proxy then reads whole, even where its own checks
// would not need to, and on each resource a bulk export file keeps (in
// with Kind ExportFile, body that one resource), whose result must be one
// JSON resource (written compacted, as a line); a failure there cuts the
// download.
type Transform func(ctx context.Context, tok *smart.Token, in Interaction, body []byte) ([]byte, error)

// Proxy is the policy enforcement point in front of a FHIR R4 server, an
// http.Handler like httputil.ReverseProxy. Upstream, Verifier and Audit are
// required; the zero values of the others are safe. Mount it at the FHIR
// base that tokens name as aud:
//
//	mux.Handle("/fhir/", http.StripPrefix("/fhir", proxy))
type Proxy struct {
	Upstream *url.URL      // the FHIR server's base URL
	Verifier TokenVerifier // e.g. srv.Verifier(tenant, fhirBase)
	Audit    audit.Sink    // every request; a failing sink refuses the request
	// Transport reaches the upstream; nil means an http.Transport of the
	// proxy's own (one connection pool per Proxy) whose connections are
	// closed when the upstream keeps the proxy waiting longer than Timeout.
	// A Transport you supply bounds its own waits.
	Transport http.RoundTripper
	// Timeout bounds, with the default Transport, how long the upstream may
	// take to begin a response or leave a body without a byte (504 before
	// the response starts, a cut-off body after); 0 means DefaultTimeout.
	Timeout time.Duration
	// UpstreamAuth sets the proxy's own credential on upstream requests
	// (the client's token is never forwarded); nil sends none.
	UpstreamAuth func(r *http.Request)
	// Base is the FHIR base URL clients reach the proxy at (the aud its
	// tokens carry). When set, the links the upstream writes on its own base
	// (Bundle paging links, Location, Content-Location) are moved onto it,
	// so clients follow them through the proxy and the upstream's address
	// is not disclosed; searches and histories are then always inspected.
	// Empty leaves links as the upstream wrote them (give the upstream the
	// proxy's base as its public address instead).
	Base string
	// PageKey signs the page-token links (HAPI's [base]?_getpages=…) that
	// Base makes followable, binding each to its client, grant, scopes,
	// patient and type for an hour, and seals (encrypts, with a key
	// derived from it) a bulk export's status and file links (bulk.go),
	// bound to their client and subject for a day; nil
	// means a random key per Proxy (links then stop at a restart). Give
	// every node behind one address the same key.
	PageKey []byte
	// SMARTConfigURL is advertised in WWW-Authenticate and the
	// CapabilityStatement; typically {fhirBase}/.well-known/smart-configuration.
	SMARTConfigURL string
	// AuthorizeURL, TokenURL, RevokeURL, IntrospectURL fill the SMART
	// oauth-uris extension of the CapabilityStatement.
	AuthorizeURL, TokenURL, RevokeURL, IntrospectURL string
	// SharedTypes may be read by patient/ tokens outside the compartment;
	// nil means DefaultSharedTypes.
	SharedTypes []string
	Transform   Transform
	// AuditEveryDisclosure has every answer that can carry resources read,
	// so that each audit event names the patients it disclosed (and the
	// labels), as SECURITY-BASELINE §10 has it. Without it, an answer the
	// request proves allowed (no patient context, every label cleared, no
	// Transform) passes unread, as from a plain reverse proxy, and its
	// event names only the patient the request names: a system/ search of
	// every patient's Observations names none. With it such answers cost
	// the reading the others get, and a summary that leaves out the
	// references naming a record's patient is refused (400, "use
	// _elements") where neither the token nor the request names one.
	// A delete then has its stored version read too, so that its events
	// name whose record it removes.
	AuditEveryDisclosure bool
	// UserExports lets user/ tokens run a bulk export ($export) as
	// system/ tokens (backend services) may. Off, only system/ tokens
	// export: a user-facing app reaches the same records by searches, page
	// by page, not a whole population in one request.
	UserExports bool
	// ExportStorage lists where a FHIR server that writes its bulk export
	// files to object storage (an Azure storage account, a bucket) puts
	// them: URL prefixes, each ending at a path segment
	// ("https://acct.blob.core.windows.net/fhir-exports/"). A manifest's
	// file under one is read by the proxy (through Transport), with
	// StorageAuth's credential and never UpstreamAuth's, and judged line by
	// line as a file on the server's base is; a file anywhere else is 502.
	// Its URL reaches the client only sealed inside the proxy's link: a
	// pre-signed URL is a credential to the unjudged file.
	ExportStorage []string
	// StorageAuth sets the proxy's credential on its reads of files in
	// ExportStorage; nil sends none (a pre-signed URL carries its own).
	StorageAuth func(r *http.Request)
	Limits      Limits
	// AllowOrigin reports whether a browser app at origin may read the
	// responses to requests made with clientID's token (CORS); see
	// RegisteredOrigins. nil answers no cross-origin request except for
	// the CapabilityStatement.
	AllowOrigin func(ctx context.Context, clientID, origin string) bool
	Logger      *slog.Logger

	once             sync.Once
	defaultTransport http.RoundTripper
	linkOnce         sync.Once
	links            *relinker
	basesOnce        sync.Once
	bases            []string // localBases
	pageOnce         sync.Once
	pageSecret       []byte
	sealOnce         sync.Once
	seal             cipher.AEAD // export links' (exportSeal)
	errLogOnce       sync.Once
	errLog           *log.Logger
}

// header returns the first value of a header by its canonical name (a
// request's or response's keys are canonical already; Get would check and
// canonicalise the name again on every call).
func header(h http.Header, canonical string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (p *Proxy) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// errorLog routes ReverseProxy's own messages (a streamed Bundle cut off,
// say) to the Logger.
func (p *Proxy) errorLog() *log.Logger {
	p.errLogOnce.Do(func() { p.errLog = slog.NewLogLogger(p.logger().Handler(), slog.LevelWarn) })
	return p.errLog
}

func (p *Proxy) transport() http.RoundTripper {
	if p.Transport != nil {
		return p.Transport
	}
	p.once.Do(func() { // one pool of upstream connections per Proxy
		w := &connWatch{timeout: int64(p.timeout())}
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		p.defaultTransport = &http.Transport{IdleConnTimeout: 90 * time.Second,
			MaxIdleConnsPerHost: 64, TLSHandshakeTimeout: 10 * time.Second,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return w.watch(c), nil
			}}
	})
	return p.defaultTransport
}

// access is what one request may do and see.
type access struct {
	tok     *smart.Token
	ctx     scopes.Context
	patient string // compartment owner for patient/ tokens
	// provenances: a search judged for its patient or labels may bring
	// Provenances about its matches (_revinclude=Provenance:target,
	// $everything), kept after them (access.remember,
	// access.provenanceKept).
	provenances bool
	// targets, readied while a response is inspected without patient
	// context and with labels judged (Proxy.readTargets), judges a
	// Provenance in a Bundle the Bundle did not keep after its targets by
	// reading them; otherwise such a Provenance is left out.
	targets     targetReader
	clearance   consent.Clearance
	sharedTypes []string
	// constrained is the type whose scope constraint the proxy injected.
	constrained string
	// unmatched: a constrained search whose answer may hold entries the
	// server did not apply the constraint to (included ones, or a page of
	// a search that may have asked for them). Each not marked as a match
	// is held to included, the constraint as the proxy evaluates it (nil
	// when it cannot: they are dropped). See access.judgeEntry.
	unmatched bool
	included  *localConstraint
	// recheck: every entry of the constrained type is held to included,
	// matches too (a constraint's parameter repeated in the search, or
	// $docref; see access.holdAnswer).
	recheck bool
	// checked: recheck is only the check of a server asked to apply the
	// constraint strictly (access.checkMatches), so the answer's total
	// and meta go as the server wrote them unless the check removed a
	// match (pageFacts.goes).
	checked bool
	// unconstrained: the check dropped a record the server answered as a
	// match of a search it was asked to constrain: the server does not
	// apply the constraint (or one of its parameters), which the audit
	// event says (unconstrainedServer).
	unconstrained bool
	// everything is the patient whose $everything the access answers, so
	// that a signed page link continues it as a $everything (pageRef).
	everything string
	// heldTypes are, for a $everything, the types the token reads and
	// searches only under query constraints the proxy evaluates, each with
	// its constraint (authorizeEverything): an entry of one is kept only if
	// it matches (judgeEntry). Read anywhere else (a Provenance's target),
	// such a type is not readable.
	heldTypes map[string]*localConstraint
	// held is the constraint the record itself is held to, as the proxy
	// evaluates it, where the server cannot apply it: the stored version a
	// write replaces or removes, or whose earlier versions a vread or an
	// instance history shows (checkStored); what a write writes
	// (checkContent); the version a vread shows (exchange.inspect).
	held *localConstraint
	// proof is, for a delete under constraints the proxy cannot evaluate
	// (all of them), the search parameters of each: the stored version
	// must be found by _id with one of them (proveStored).
	proof [][]Param
	// readBack is the constraint of a constrained read of the type a
	// create, update or patch writes, when the proxy can evaluate it: the
	// answer, the record as stored, is shown when it matches.
	readBack *localConstraint
	// pin is the ETag of the stored version a write was judged against
	// (checkStored); the write goes upstream with If-Match on it. A batch's
	// entries' pins are entryPins, written into the Bundle (withEdits).
	pin       string
	entryPins []entryPin
	// entryEdits are the batch entries written anew (entryPlan.edit): a
	// conditional write resolved, references renamed.
	entryEdits []bundleEdit
	// stored is the stored version an update or patch was judged against
	// (checkStored), when it was read: the references it holds may be
	// written again (checkReferences).
	stored []byte
	// written is the resource a create or update writes (or a patch's
	// result), typed by its R4 validation (checkContent).
	written proto.Message
	// patched is a patient app's patch applied to stored (applyPatch):
	// it goes upstream as the update, in place of the patch.
	patched []byte
	// unrestricted: the clearance allows every label.
	unrestricted bool
	// includes: the search asks for included records, which go after a
	// removal only where brought from a record kept (includes.go), by the
	// search's includeSpecs; iterates: it asks :iterate, so an included
	// record may bring another.
	includes, iterates bool
	includeSpecs       []includeSpec
	// subsets: the request asks for part of each record (_elements,
	// _summary=true or text); ownersAsked: the type whose compartment
	// references an element selection was widened with (judgedParams).
	subsets     bool
	ownersAsked string
	// auditsAll: every disclosure is named in its audit event
	// (Proxy.AuditEveryDisclosure). asked is the patient the request names
	// itself (requestPatient), whose a record answered in part without
	// its patient reference is taken to be (disclosure.add).
	auditsAll bool
	asked     string
	// touched are the patients whose records a write changes: the new
	// content's and the stored version's, as far as the proxy read them
	// (a batch's, of every entry), named in its audit events.
	touched []string
	// owners are the patients of the records bound ones (a Binary's
	// securityContext, a Provenance's targets) were judged by, as read
	// (judgeRecord), by reference: a bound record kept is named for them.
	owners map[string]string
	// named are the patients a batch's searches disclosed, named as each
	// search's own access names them (batchSearch.inspect).
	named []string
	// hears: whether the FHIR server's words reach the client (1) or not
	// (-1), once hearsServer has decided (0: not yet).
	hears int8
	// transformed: the host reshapes answers (Proxy.Transform), which the
	// server's words in an error escape (hearsServer).
	transformed bool
	// relink moves the upstream's links onto the proxy's base (Proxy.Base);
	// nil leaves them.
	relink *relinker
	// bases are Proxy.localBases.
	bases []string
	// writes says, for a batch or transaction, which entries write: their
	// answers stay when their resources may not be seen (minimalEntry).
	writes []bool
	// entryRefs are what a batch's entries name (resourceRef), for its
	// audit event, as they were resolved.
	entryRefs []string
	// found says which entries are conditional creates that found their
	// record, sent as reads of it (checkBatch): their answers are a
	// create's that matched (foundEntry).
	found []bool
	// searches are, by entry, the searches and histories (zero for the
	// other entries), each answered with a Bundle of what it found, which
	// is inspected as that search's answer (batchSearch.inspect).
	searches []batchSearch
	// entries is what the judged writes of one batch or transaction share
	// (checkBatch); nil outside one, and for an access that sees all.
	entries *entryChecks
	// top and one hold what inspectBody returns for a single resource, so
	// the read path allocates neither (one response per access).
	top projection
	one [1]*projection
}

// refusal is a FHIR error the client sees; nothing has reached the upstream.
type refusal struct {
	status int
	code   string // OperationOutcome issue code
	msg    string
	bearer string // WWW-Authenticate error, for 401/403
	// audit, when set, is the audit event's reason in place of code and
	// msg: what the client must not be told (withheld).
	audit string
}

func (e *refusal) Error() string { return e.msg }

func refuse(status int, code, msg string) *refusal {
	return &refusal{status: status, code: code, msg: msg}
}

// notFound is the answer for anything outside what the token may see:
// indistinguishable from a resource that does not exist.
func notFound() *refusal { return refuse(http.StatusNotFound, "not-found", "resource not found") }

// outsideGrant is notFound for what exists, or is asked for, outside what the
// token may see: the client gets exactly notFound's answer, and the audit
// event says what it was (a security event, as a 403 is), so that an
// attempt to reach another patient's or a labelled record is told apart
// from a miss in the audit trail, and only there.
func outsideGrant() *refusal {
	r := notFound()
	r.audit = "outside the grant: answered as not found"
	return r
}

// ServeHTTP enforces the policy and forwards what it allows.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.preflight(w, r) {
		return
	}
	x := newExchange(p)
	defer x.free()
	x.ev = audit.Event{Type: audit.ResourceAllowed, Outcome: audit.Success, SourceIP: r.RemoteAddr, UserAgent: header(r.Header, "User-Agent"),
		RequestID: header(r.Header, "X-Request-Id")}
	a, ref := p.admit(r, &x.in, &x.acc)
	in := &x.in
	switch {
	case a != nil:
		actedBy(&x.ev, a)
	case ref != nil && ref.status != http.StatusUnauthorized:
		// Refused before its token was read (a malformed request, a
		// method override, a header too large): the refusal stands, and
		// the event names the app, user and patient of a good bearer
		// token, so that an app probing the proxy shows in the audit
		// trail (found by a fuzzer asking every request's event for its
		// client).
		if raw, ok := smart.BearerToken(r); ok {
			if tok, err := p.Verifier.Verify(r.Context(), raw); err == nil {
				var who access
				p.accessFor(&who, tok)
				actedBy(&x.ev, &who)
			}
		}
	}
	x.ev.Interaction, x.ev.Resource = auditTarget(in, r.URL.Path)
	if ref != nil {
		p.allowOrigin(r.Context(), w.Header(), header(r.Header, "Origin"), a)
		if ref.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", allowedMethods)
		}
		p.finish(w, r, &x.ev, ref, nil)
		return
	}
	x.a = a // nil for the CapabilityStatement, which admit does not authorise
	p.forward(w, r, x)
}

// actedBy names in the event who acts: the token's app, user, scopes,
// grant and patient.
func actedBy(ev *audit.Event, a *access) {
	ev.ClientID, ev.UserID, ev.FHIRUser, ev.Scopes = a.tok.ClientID, a.tok.Subject, a.tok.FHIRUser, a.tok.Scope
	ev.TokenID, ev.GrantID, ev.Patient = a.tok.ID, a.tok.GrantID, a.patient
}

// changes reports whether an interaction can change what the FHIR server
// holds: a create, update, patch or delete, or a batch with one.
func changes(in *Interaction, a *access) bool {
	switch in.Kind {
	case Create, Update, Patch, Delete:
		return true
	case Batch:
		return slices.Contains(a.writes, true)
	}
	return false
}

// allowedMethods are the methods of FHIR's RESTful API, the only ones the
// proxy takes (a CORS preflight aside).
const allowedMethods = "GET, POST, PUT, PATCH, DELETE"

// auditTarget is what an audit event says is done, to what: the
// interaction and its resource (resourceRef). A constrained read, sent as
// the search by _id that proves it (Interaction.unwrap), is the read of
// its record (found by probing: its event said search-type of
// Observation, and named no record).
func auditTarget(in *Interaction, path string) (interaction, resource string) {
	if in.unwrap != "" {
		return string(Read), in.Type + "/" + in.unwrap
	}
	return string(in.Kind), resourceRef(in, path)
}

// resourceRef is the audit event's resource: Type/ID, or Type. A read's
// path is that reference already, and is used as it is.
func resourceRef(in *Interaction, path string) string {
	if in.Type == "" || in.ID == "" {
		return in.Type
	}
	if p := strings.TrimPrefix(path, "/"); len(p) == len(in.Type)+1+len(in.ID) &&
		strings.HasPrefix(p, in.Type) && p[len(in.Type)] == '/' && strings.HasSuffix(p, in.ID) {
		return p
	}
	return in.Type + "/" + in.ID
}

// finish writes a refusal (as an OperationOutcome) and audits it.
func (p *Proxy) finish(w http.ResponseWriter, r *http.Request, ev *audit.Event, ref *refusal, _ error) {
	ev.Type, ev.Outcome = audit.ResourceRefused, audit.Failure
	ev.Reason = ref.code + ": " + ref.msg
	if ref.audit != "" {
		ev.Reason = ref.audit
	}
	if ref.status == http.StatusUnauthorized || ref.status == http.StatusForbidden || ref.audit != "" {
		ev.Severity = audit.Security
	}
	if err := p.record(r.Context(), ev); err != nil {
		ref = refuse(http.StatusInternalServerError, "exception", "the request could not be audited")
	}
	if ref.status == http.StatusUnauthorized {
		ch := `Bearer realm="fhir"`
		if ref.bearer != "" {
			ch += `, error="` + ref.bearer + `"`
		}
		if p.SMARTConfigURL != "" {
			ch += `, smart_configuration="` + p.SMARTConfigURL + `"`
		}
		w.Header().Set("WWW-Authenticate", ch)
	} else if ref.status == http.StatusForbidden {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fhir", error="insufficient_scope"`)
	}
	writeOutcome(w, ref.status, ref.code, ref.msg)
}

// tokenParam refuses a request with an access_token parameter: 401 when it
// has no Authorization header, 400 when it has one too (RFC 6750 §2: one
// method per request).
func tokenParam(r *http.Request) *refusal {
	if _, ok := smart.BearerToken(r); !ok {
		return &refusal{status: http.StatusUnauthorized, code: "login", msg: "send the token in the Authorization header only", bearer: "invalid_request"}
	}
	return &refusal{status: http.StatusBadRequest, code: "invalid", msg: string(errTokenParam), bearer: "invalid_request"}
}

func (p *Proxy) record(ctx context.Context, ev *audit.Event) error {
	ev.Time = time.Now()
	return p.Audit.Record(ctx, *ev)
}

func writeOutcome(w http.ResponseWriter, status int, code, msg string) {
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"resourceType": "OperationOutcome",
		"issue": []any{map[string]any{"severity": "error", "code": code, "diagnostics": msg}}})
	_, _ = w.Write(b)
}

// secHeaders are set on every response, replacing the upstream's. The value
// slices are shared and never mutated (Add on a one-element slice copies).
var secHeaders = [...]struct {
	key string
	val []string
}{
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Cache-Control", []string{"no-store"}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
}

func securityHeaders(h http.Header) {
	for _, s := range secHeaders {
		h[s.key] = s.val
	}
}

var fhirJSON = []string{"application/fhir+json"}

// admit authenticates, parses (into in) and authorises a request. It
// returns the access (a, filled in) once the token is verified, and a
// refusal for anything not allowed; nothing is forwarded then.
func (p *Proxy) admit(r *http.Request, in *Interaction, a *access) (*access, *refusal) {
	if headerBytes(r.Header, p.Limits.header()) > p.Limits.header() {
		return nil, refuse(http.StatusRequestHeaderFieldsTooLarge, "too-costly", "the request headers are too large")
	}
	if r.URL.RawPath != "" || r.RequestURI != "" && !strings.HasPrefix(r.RequestURI, "/") {
		return nil, refuse(http.StatusBadRequest, "invalid", "the request target must be a plain path")
	}
	// Encoded separators in the path (in a query value, such as a
	// reference searched for, they are data, which parseQuery decodes).
	if target, _, _ := strings.Cut(r.RequestURI, "?"); strings.Contains(target, "%2F") || strings.Contains(target, "%2f") ||
		strings.Contains(target, "%5C") || strings.Contains(target, "%5c") {
		return nil, refuse(http.StatusBadRequest, "invalid", "encoded separators are not accepted in the path")
	}
	for _, h := range [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"} { // canonical forms
		if header(r.Header, h) != "" {
			return nil, refuse(http.StatusBadRequest, "invalid", "method override headers are not accepted")
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default: // HEAD too: its answer's status alone would tell a withheld record from a missing one
		return nil, refuse(http.StatusMethodNotAllowed, "not-supported", "FHIR's methods are "+allowedMethods)
	}
	var err error
	*in, err = parsePath(r.Method, r.URL.Path, r.URL.RawQuery, p.Limits)
	if err == nil && r.Header["If-None-Exist"] != nil {
		err = in.setIfNoneExist(r.Header["If-None-Exist"], p.Limits)
	}
	in.ifMatch = strings.Join(r.Header["If-Match"], ", ")
	in.resolve = in.Conditional
	if errors.Is(err, errTokenParam) {
		return nil, tokenParam(r)
	}
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "invalid", err.Error())
	}
	if ref := jsonOnly(in.Params); ref != nil {
		return nil, ref
	}
	if ref := acceptable(in, r.Header["Accept"]); ref != nil {
		return nil, ref
	}
	if in.Kind == Capabilities {
		return nil, nil
	}
	if in.post {
		// POST _search: the form body holds parameters; they go through the
		// same parser as a query and are forwarded re-encoded.
		if mt, ref := bodyType(r.Header.Get("Content-Type")); ref != nil || mt != "application/x-www-form-urlencoded" {
			return nil, refuse(http.StatusUnsupportedMediaType, "not-supported", "_search takes an application/x-www-form-urlencoded body")
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, int64(p.Limits.url())+1))
		if err != nil || len(b) > p.Limits.url() {
			return nil, refuse(http.StatusBadRequest, "too-costly", "the search is too long")
		}
		more, err := parseQuery(string(b), p.Limits)
		if errors.Is(err, errTokenParam) {
			return nil, tokenParam(r)
		}
		if err != nil || len(in.Params)+len(more) > p.Limits.params() {
			return nil, refuse(http.StatusBadRequest, "invalid", "the search parameters are not understood")
		}
		if err := checkParamNames(in.Kind, more); err != nil {
			return nil, refuse(http.StatusBadRequest, "invalid", err.Error())
		}
		if ref := jsonOnly(more); ref != nil { // (found by fuzzing: _format=xml went upstream in the form)
			return nil, ref
		}
		in.Params = append(in.Params, more...)
		r.Body = http.NoBody
	}
	if err := capCount(in.Params, p.Limits.count()); err != nil {
		return nil, refuse(http.StatusBadRequest, "invalid", err.Error())
	}
	raw, ok := smart.BearerToken(r)
	if !ok {
		return nil, &refusal{status: http.StatusUnauthorized, code: "login", msg: "a bearer token is required", bearer: ""}
	}
	tok, err := p.Verifier.Verify(r.Context(), raw)
	if err != nil {
		return nil, &refusal{status: http.StatusUnauthorized, code: "login", msg: "the token is not valid here", bearer: "invalid_token"}
	}
	p.accessFor(a, tok)
	// A POSTed operation's Parameters body is authorised with its query,
	// so it is read here, once the token is known to be good. A bulk
	// export's kick-off has all its parameters there (Bulk Data), checked
	// with the query's and sent upstream in it, as a GET (exportKickOff).
	kickOff := in.Kind == Operation && in.Operation == exportOp
	// A search operation's ($lastn, $docref, $everything) likewise: its
	// parameters join the query's, and it goes upstream as the GET it
	// then is (they change nothing), so that what was authorised is
	// exactly what the server reads.
	in.asGet = r.Method == http.MethodPost && (kickOff || searchOperation(in))
	if op, ok := tableOperation(in); (ok || in.asGet) && r.Method == http.MethodPost {
		b, err := io.ReadAll(io.LimitReader(r.Body, p.Limits.body()+1))
		switch {
		case err != nil:
			return a, refuse(http.StatusBadRequest, "invalid", "the request body could not be read")
		case int64(len(b)) > p.Limits.body():
			return a, refuse(http.StatusRequestEntityTooLarge, "too-costly", "the request body is too large")
		case len(b) > 0 || kickOff:
			switch {
			case kickOff:
				op = exportBody
			case in.asGet:
				op = searchBody(in.Operation)
			}
			params, ref := parseOperationBody(op, header(r.Header, "Content-Type"), b)
			if ref != nil {
				return a, ref
			}
			if kickOff {
				// Its patients are bounded on their own
				// (maxKickOffPatients, far above MaxParams), the body by
				// MaxBody.
				rest := params[:0]
				for _, prm := range params {
					if prm.Name == "patient" {
						in.patients = append(in.patients, prm.Value)
					} else {
						rest = append(rest, prm)
					}
				}
				params = rest
				// Named patients go in a body, upstream too (exportParameters).
				in.asGet = in.patients == nil
			}
			// The body's parameters are read as the query's are, by the
			// same parser (names, case, control characters: a value may
			// go upstream in a query, the url that judgeSubject searches
			// by say).
			params, err = parseQuery(encodeQuery(params), p.Limits)
			switch {
			case errors.Is(err, errTokenParam):
				return a, refuse(http.StatusBadRequest, "invalid", "a token is never a parameter")
			case err != nil:
				return a, refuse(http.StatusBadRequest, "invalid", err.Error())
			}
			if kickOff || in.asGet {
				// They join the query, held to its rules too (_format,
				// _count), as a POST _search's form is.
				if ref := jsonOnly(params); ref != nil {
					return a, ref
				}
				if err := capCount(params, p.Limits.count()); err != nil {
					return a, refuse(http.StatusBadRequest, "invalid", err.Error())
				}
			}
			if len(in.Params)+len(params) > p.Limits.params() {
				return a, refuse(http.StatusBadRequest, "too-costly", "too many parameters")
			}
			if kickOff || in.asGet {
				in.Params = append(in.Params, params...)
			} else {
				in.opBody, in.bodyParams = b, params
			}
		}
		r.Body = http.NoBody
	}
	switch {
	case in.Kind == ExportStatus || in.Kind == ExportFile:
		return a, p.followExport(in, a)
	case kickOff:
		if ref := exportKickOff(r); ref != nil {
			return a, ref
		}
	}
	if ref := p.followPage(in, a); ref != nil {
		return a, ref
	}
	if ref := p.authorize(in, a); ref != nil {
		return a, ref
	}
	return a, nil
}

// accessFor derives the context a token acts in. A token with patient/
// scopes is confined to its patient; system/ and user/ act without one.
// Mixed tokens are judged scope by scope in authorize.
func (p *Proxy) accessFor(a *access, tok *smart.Token) {
	*a = access{tok: tok}
	switch {
	case tok.Scopes.HasContext(scopes.Patient):
		a.ctx, a.patient = scopes.Patient, tok.Context.Patient
	case tok.Scopes.HasContext(scopes.User):
		a.ctx = scopes.User
	default:
		a.ctx = scopes.System
	}
	if tok.Clearance != nil {
		a.clearance = *tok.Clearance
		a.unrestricted = a.clearance.Unrestricted()
	}
	a.sharedTypes = p.SharedTypes
	if a.sharedTypes == nil {
		a.sharedTypes = DefaultSharedTypes
	}
	a.relink = p.relinker()
	a.bases = p.localBases()
	a.transformed = p.Transform != nil
	a.auditsAll = p.AuditEveryDisclosure
}

// localBases are the absolute bases a reference names this FHIR server
// by, other than a token's audience: the upstream's (first), and the
// proxy's public base when set.
func (p *Proxy) localBases() []string {
	p.basesOnce.Do(func() {
		if p.Upstream != nil {
			p.bases = append(p.bases, strings.TrimSuffix(p.Upstream.String(), "/"))
		}
		if p.Base != "" {
			p.bases = append(p.bases, strings.TrimSuffix(p.Base, "/"))
		}
	})
	return p.bases
}

// local returns the path of an absolute URL on this FHIR server: below
// the upstream's base, the proxy's public base or the token's audience
// (the FHIR base it was issued for). Anything else is another server's.
func (a *access) local(u string) (string, bool) {
	for _, b := range a.bases {
		if rest, ok := below(b, u); ok {
			return rest, true
		}
	}
	if a.tok != nil && a.tok.Audience != "" {
		return below(strings.TrimSuffix(a.tok.Audience, "/"), u)
	}
	return "", false
}

// seesAll reports whether the access may see whatever its scopes name: no
// patient compartment to confine it, no label its clearance withholds.
// Otherwise answers are judged.
func (a *access) seesAll() bool { return a.patient == "" && a.unrestricted }

// shared reports whether patient/ tokens may read type t outside the compartment.
func (a *access) shared(t string) bool { return slices.Contains(a.sharedTypes, t) }

// readable reports whether the token may see resources of type t.
func (a *access) readable(t string) bool {
	return t == a.constrained ||
		a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: t, Perms: scopes.Read}) ||
		a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: t, Perms: scopes.Search})
}

// forward sends the authorised interaction upstream, rebuilt from its parsed
// form, and inspects the response when the request alone cannot prove it is
// allowed.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, x *exchange) {
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodDelete {
		var err error
		x.body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, p.Limits.body()))
		if err != nil {
			p.finish(w, r, &x.ev, refuse(http.StatusRequestEntityTooLarge, "too-costly", "the request body is too large"), err)
			return
		}
		var ref *refusal
		if ct := header(r.Header, "Content-Type"); nativeUpload(&x.in, ct) {
			// A Binary's content as it is: written upstream as the FHIR
			// JSON Binary it describes, and checked as that.
			x.body, ref = binaryResource(&x.in, ct, r.Header["X-Security-Context"], x.body)
			x.bodyType = fhirJSONType
		} else {
			x.bodyType, ref = bodyType(ct)
		}
		if ref != nil {
			p.finish(w, r, &x.ev, ref, nil)
			return
		}
		if x.in.opBody != nil { // read and checked on admission
			x.body = x.in.opBody
		}
	}
	if x.a != nil {
		if x.in.resolve {
			if ref := p.resolveConditional(r.Context(), x); ref != nil {
				p.finish(w, r, &x.ev, ref, nil)
				return
			}
		}
		if ref := p.resolveChains(r.Context(), &x.in, x.a); ref != nil {
			p.finish(w, r, &x.ev, ref, nil)
			return
		}
		if ref := p.judgeSubject(r.Context(), &x.in, x.a); ref != nil {
			p.finish(w, r, &x.ev, ref, nil)
			return
		}
		if !x.in.forwardable(p.Limits) {
			p.finish(w, r, &x.ev, refuse(http.StatusBadRequest, "too-costly", "the search is too long as the proxy would forward it (re-encoded, with the token's constraints added); narrow it"), nil)
			return
		}
		ref := p.checkWrite(r.Context(), x.bodyType, x.in, x.a, x.body)
		x.ev.Resources = x.a.entryRefs     // a batch's: what its entries name, as far as they were read
		d := disclosure{ev: &x.ev, a: x.a} // whose records it changes: the new content's, the stored version's, a bound record's (a Provenance written: its targets')
		for _, id := range slices.Concat(x.a.touched, slices.Sorted(maps.Values(x.a.owners))) {
			d.name(id)
		}
		if ref != nil {
			p.finish(w, r, &x.ev, ref, nil)
			return
		}
		if x.a.patched != nil { // the patch as applied, sent as the update it makes
			x.method, x.body, x.bodyType = http.MethodPut, x.a.patched, fhirJSONType
		}
		if len(x.a.entryPins) > 0 || len(x.a.entryEdits) > 0 {
			x.body = withEdits(x.body, x.a.entryPins, x.a.entryEdits)
		}
	}
	x.req = r
	x.in.native = x.a != nil && wantsNative(&x.in, r.Header["Accept"])
	// A Transform sees every body that can carry resources: a response the
	// request proves (full clearance, no patient context) is read too, or
	// the host's redaction would not run for the very apps (research, with
	// system/ scopes) it is usually for. A Binary's native content is
	// served from the resource read.
	x.inspects = x.a != nil && (x.in.native || exporting(&x.in) || x.a.inspects(x.in) || (p.Transform != nil || p.AuditEveryDisclosure) && x.in.Kind != Delete)
	if !x.inspects && x.a != nil && x.ev.Patient == "" {
		// An answer passed unread: its audit event names the patient the
		// request itself names, where it names one.
		x.ev.Patient = requestPatient(&x.in)
	}
	if x.a != nil && changes(&x.in, x.a) {
		// A write is audited before it goes: recorded only after the
		// answer, a write made while the sink is down would be done and
		// not audited (the answer withheld is no undo).
		before := x.ev
		before.Reason = "write authorised: forwarded to the FHIR server (its outcome is recorded next)"
		if err := p.record(r.Context(), &before); err != nil {
			p.finish(w, r, &x.ev, refuse(http.StatusInternalServerError, "exception", "the request could not be audited"), err)
			return
		}
	}
	x.w.ResponseWriter = w
	if x.in.counts { // the proxy's own count: the search itself does not go
		p.countMatches(w, r, x)
		return
	}
	if x.in.notice { // the proxy's own file: nothing goes upstream
		x.ev.Reason = "export notice: deletions are not relayed to this token"
		if err := p.record(r.Context(), &x.ev); err != nil {
			p.finish(w, r, &x.ev, refuse(http.StatusInternalServerError, "exception", "the request could not be audited"), err)
			return
		}
		w.Header()["Content-Type"] = []string{ndjsonType}
		w.Header()["Content-Length"] = []string{strconv.Itoa(len(deletionsNotice))}
		_, _ = x.w.Write(deletionsNotice)
		return
	}
	x.rp.Transport, x.rp.ErrorLog = p.transport(), p.errorLog()
	// ReverseProxy clones the request it is given, headers and all, and
	// strips hop-by-hop ones; given the client's, it would copy every
	// header a browser sends only for rewrite to throw them away. It gets
	// a copy carrying just the headers that go upstream.
	x.out = *r
	x.out.Header = x.upstreamHeader(r)
	if x.in.asGet {
		x.method = http.MethodGet // a POSTed operation's parameters were read into the query
	}
	if x.method != "" { // a conditional write resolved to another interaction
		x.out.Method = x.method
	}
	x.rp.ServeHTTP(&x.w, &x.out)
}

// exchange is one request: what the proxy decided about it and, when it is
// forwarded, the ReverseProxy that carries it. Exchanges are pooled: one
// request's state is a single value, reused, whose ReverseProxy hooks are
// bound once.
type exchange struct {
	p        *Proxy
	in       Interaction
	acc      access  // a's storage
	a        *access // &acc once admitted; nil for the CapabilityStatement
	ev       audit.Event
	body     []byte
	bodyType string        // the body's media type as read (bodyType), "" when unnamed
	method   string        // the method forwarded, when not the client's (resolveConditional)
	recorded bool          // ev has been recorded
	inspects bool          // the response is read before it is sent (access.inspects)
	headed   bool          // the final response's headers are set (writer)
	req      *http.Request // the client's
	out      http.Request  // the request handed to ReverseProxy: the client's with the upstream's headers
	w        writer
	rp       httputil.ReverseProxy
	sent     sentBody // the inspected body, when it is sent from memory
	copyBuf  []byte   // ReverseProxy's copy buffer (x.rp.BufferPool is x)
}

var exchanges = sync.Pool{New: func() any {
	x := new(exchange)
	x.w.x = x
	x.rp = httputil.ReverseProxy{BufferPool: x, Rewrite: x.rewrite, ModifyResponse: x.modify, ErrorHandler: x.fail}
	return x
}}

func newExchange(p *Proxy) *exchange {
	x := exchanges.Get().(*exchange)
	x.p = p
	return x
}

// free releases what the exchange holds and returns it to the pool; the
// ReverseProxy is done with it (ServeHTTP has returned).
func (x *exchange) free() {
	x.sent.release()
	rp, buf := x.rp, x.copyBuf
	*x = exchange{}
	x.w.x, x.rp, x.copyBuf = x, rp, buf
	x.rp.Transport, x.rp.ErrorLog = nil, nil
	exchanges.Put(x)
}

// Get and Put make the exchange the httputil.BufferPool of its
// ReverseProxy: one 32 KiB copy buffer, kept with the pooled exchange.
func (x *exchange) Get() []byte {
	if x.copyBuf == nil {
		x.copyBuf = make([]byte, 32<<10)
	}
	return x.copyBuf
}

// Put is part of httputil.BufferPool; the buffer stays with the exchange.
func (x *exchange) Put([]byte) {}

// answerHeader reports whether an upstream response header (canonical
// name) is passed to the client. The others, such as Set-Cookie (which
// would land on the proxy's origin), Alt-Svc, Link (an address the proxy
// has not judged), Server, Date and the upstream's own CORS, are dropped by
// upstreamHeaders, and so are trailers. A switch, not a map: no hashing on
// every response.
func answerHeader(k string) bool {
	switch k {
	case "Content-Type", "Content-Length", "Content-Encoding", "Content-Language", "Etag", "Last-Modified",
		"Location", "Content-Location", "Retry-After", "Vary", "X-Request-Id", "X-Correlation-Id",
		"X-Progress", "Expires": // (a bulk export's progress, and its files' lifetime)
		return true
	}
	return false
}

func upstreamHeaders(resp *http.Response) {
	for k := range resp.Header {
		if !answerHeader(k) {
			delete(resp.Header, k)
		}
	}
	resp.Trailer = nil
}

// forwardHeaders are the request headers passed upstream as they came
// (canonical names). If-None-Exist goes as parsed
// (Interaction.ifNoneExist), Content-Type as the body was read (bodyType),
// Prefer as its return preference alone (preferReturn). The last three do
// not go when the proxy inspects the answer: it must read the body
// uncompressed, and it evaluates the conditions itself (conditional.go).
var forwardHeaders = [...]string{"If-Match", "Accept-Encoding", "If-None-Match", "If-Modified-Since"}

// forwardInspected is how many of forwardHeaders go with an inspected answer.
const forwardInspected = 1

// upstreamHeader is what goes upstream of the client's request headers
// (the credential is added by UpstreamAuth).
func (x *exchange) upstreamHeader(r *http.Request) http.Header {
	hdr := make(http.Header, 4)
	keys := forwardHeaders[:]
	if x.inspects {
		keys = keys[:forwardInspected]
	}
	for _, k := range keys {
		if v := r.Header[k]; len(v) > 0 {
			hdr[k] = v
		}
	}
	hdr["Accept"] = fhirJSON
	if x.a != nil && x.a.pin != "" {
		hdr["If-Match"] = []string{x.a.pin} // the version judged (checkStored)
	}
	if x.in.ifNoneExist != "" {
		hdr["If-None-Exist"] = []string{x.in.ifNoneExist}
	}
	if len(x.body) > 0 {
		ct := x.bodyType
		if ct == "" {
			ct = fhirJSONType
		}
		hdr["Content-Type"] = []string{ct}
	}
	var prefer []string
	if ret := preferReturn(r.Header["Prefer"]); ret != "" {
		prefer = append(prefer, "return="+ret)
	}
	if x.a != nil && x.in.Kind == SearchType && x.a.constrained == x.in.Type && x.in.searchOp != docrefOp && x.in.pageURL == "" {
		// The search carries a scope's constraint, whose matching the proxy
		// leaves to the server: a server lenient by default (HAPI) would
		// ignore a constraint parameter it does not support and answer
		// unconstrained. Strict, it refuses instead (FHIR search.html#errors).
		prefer = append(prefer, "handling=strict")
	}
	if prefer != nil {
		hdr["Prefer"] = []string{strings.Join(prefer, ", ")} // one field: some servers read only the first
	}
	switch {
	case x.in.Kind == ExportFile:
		hdr["Accept"] = []string{ndjsonType}
	case x.in.Kind == Operation && x.in.Operation == exportOp:
		hdr["Prefer"] = []string{"respond-async"} // checked on admission (exportKickOff)
	}
	return hdr
}

// matchesVersion reports whether an If-Match value (*, or a list of entity
// tags) admits the version etag, weak or strong alike (FHIR servers send
// W/"3" and clients echo either form).
func matchesVersion(ifMatch, etag string) bool {
	if strings.TrimSpace(ifMatch) == "*" {
		return true
	}
	for tag := range strings.SplitSeq(ifMatch, ",") {
		if strings.TrimPrefix(strings.TrimSpace(tag), "W/") == strings.TrimPrefix(strings.TrimSpace(etag), "W/") {
			return true
		}
	}
	return false
}

// preferReturn is the return preference of a request's Prefer headers
// (RFC 7240; FHIR's minimal, representation or OperationOutcome), the
// first one when it is repeated, or "". Only it goes upstream, rebuilt:
// a Prefer header passed on as it came could carry handling=lenient
// after it ("return=minimal, handling=lenient", or after a ';', which
// servers also split on), and a lenient server ignores a search parameter
// it does not support, the constraint the proxy added among them.
func preferReturn(values []string) string {
	for _, v := range values {
		for pref := range strings.SplitSeq(v, ",") {
			pref, _, _ = strings.Cut(pref, ";")
			name, val, _ := strings.Cut(pref, "=")
			if !strings.EqualFold(strings.TrimSpace(name), "return") {
				continue
			}
			switch val = strings.Trim(strings.TrimSpace(val), `"`); val {
			case "minimal", "representation", "OperationOutcome":
				return val
			}
			return ""
		}
	}
	return ""
}

// rewrite builds the upstream request from the parsed interaction only.
func (x *exchange) rewrite(pr *httputil.ProxyRequest) {
	p, in, out := x.p, &x.in, pr.Out
	out.URL.Scheme, out.URL.Host = p.Upstream.Scheme, p.Upstream.Host
	out.URL.Path = in.pathUnder(strings.TrimSuffix(p.Upstream.Path, "/"))
	out.URL.RawPath, out.URL.RawQuery = "", encodeQuery(in.Params)
	out.Host = p.Upstream.Host
	switch {
	case in.stored: // an export file in object storage, at its URL as the server wrote it (openExport checked it)
		u, _ := url.Parse(in.pageURL)
		out.URL, out.Host = u, u.Host
	case in.pageURL != "": // the upstream's own link, as it wrote it (signed by the proxy)
		path, query, _ := strings.Cut(in.pageURL, "?")
		raw := strings.TrimSuffix(p.Upstream.EscapedPath(), "/") + path // escaped as written, not again
		if raw == "" {
			raw = "/"
		}
		out.URL.Path, out.URL.RawPath, out.URL.RawQuery = raw, "", query
		if unescaped, err := url.PathUnescape(raw); err == nil {
			out.URL.Path, out.URL.RawPath = unescaped, raw
		}
	}
	hdr := out.Header // upstreamHeader's, cloned by ReverseProxy
	switch {
	case in.stored:
		if p.StorageAuth != nil {
			p.StorageAuth(out) // never UpstreamAuth's credential, which is the FHIR server's
		}
	case p.UpstreamAuth != nil:
		p.UpstreamAuth(out)
	}
	out.GetBody = nil
	body := x.body
	switch {
	case in.post:
		body = []byte(encodeQuery(in.Params))
		out.URL.RawQuery = ""
		hdr["Content-Type"] = []string{"application/x-www-form-urlencoded"}
	case in.patients != nil: // a kick-off for named patients: its parameters in a body (Bulk Data)
		body = exportParameters(in.Params, in.patients)
		out.URL.RawQuery = ""
		hdr["Content-Type"] = []string{fhirJSONType}
	}
	if len(body) == 0 {
		out.Body, out.ContentLength = http.NoBody, 0 // not "unknown length", which means chunked
	} else {
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
}

// modify checks the upstream's response and records the event before any
// of it goes out.
func (x *exchange) modify(resp *http.Response) error {
	upstreamHeaders(resp) // the proxy's own CORS and security headers are set by the writer
	if rl := x.p.relinker(); rl != nil && !exporting(&x.in) {
		rl.headers(resp.Header) // (an export's links are the proxy's own: inspectExport)
	}
	if x.a == nil {
		if err := x.p.capabilities(resp); err != nil {
			return err
		}
	} else {
		ref, err := x.inspect(resp)
		if err != nil {
			return err
		}
		if ref != nil {
			return ref
		}
	}
	x.recorded = true
	if err := x.p.record(resp.Request.Context(), &x.ev); err != nil {
		// Nothing has been sent: the answer is withheld, as for a refusal
		// that cannot be audited.
		x.p.logger().ErrorContext(resp.Request.Context(), "fhirproxy: a response could not be audited; withheld", "err", err)
		return refuse(http.StatusInternalServerError, "exception", "the request could not be audited")
	}
	return nil
}

// fail answers a failed exchange: a refusal from modify, or the upstream
// unreachable.
func (x *exchange) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ref *refusal
	switch {
	case errors.As(err, &ref):
	case errors.Is(err, errUpstreamTimeout):
		ref = refuse(http.StatusGatewayTimeout, "timeout", "the FHIR server did not answer in time")
	default:
		x.p.logger().WarnContext(r.Context(), "fhirproxy: upstream failed", "err", err)
		ref = refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
	}
	if !x.recorded {
		x.p.finish(w, r, &x.ev, ref, err)
		return
	}
	writeOutcome(w, ref.status, ref.code, ref.msg)
}

// writer is the ResponseWriter ReverseProxy writes to. It does not pass on
// the upstream's informational (1xx) responses: their headers are the
// upstream's, unchecked (an Early Hints Link could name what the final
// answer withholds). On the final response it sets the proxy's security
// and CORS headers over whatever ReverseProxy copied from the upstream's
// (after any 1xx, whose relay clears the writer's headers).
type writer struct {
	http.ResponseWriter
	x *exchange
}

func (w *writer) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		return
	}
	if x := w.x; !x.headed {
		x.headed = true
		h := w.ResponseWriter.Header()
		securityHeaders(h)
		if x.in.native && code == http.StatusOK {
			h["Content-Security-Policy"] = nativeCSP
		}
		x.p.allowOrigin(x.req.Context(), h, header(x.req.Header, "Origin"), x.a)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *writer) Write(b []byte) (int, error) {
	if !w.x.headed {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (Flush).
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
