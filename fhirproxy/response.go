package fhirproxy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// inspect reads an upstream response the access must be checked against:
// JSON only (anything else cannot be inspected and is refused), bounded in
// size; Bundles lose the entries the access may not see; a single resource
// outside it becomes the 404 a missing one would give.
func (x *exchange) inspect(resp *http.Response) (*refusal, error) {
	p, in, a, ev := x.p, x.in, x.a, &x.ev
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	if !x.inspects && (resp.StatusCode < 400 || a.hearsServer()) {
		// An answer the request proves passes unread, but for the
		// server's words (words.go): an error's are held as any error's,
		// below, and a delete's success loses its body (HAPI's says how
		// many records it deleted, and a conditional delete's which).
		if in.Kind == Delete && !a.hearsServer() {
			noBody(resp)
		}
		return nil, nil
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		// One answer for "absent" and "not yours": the proxy's, not the upstream's.
		return notFound(), nil
	}
	if resp.StatusCode >= 400 {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			// The upstream refused the proxy's own credential: not the client's business.
			return refuse(http.StatusBadGateway, "transient", "the FHIR server refused the proxy"), nil
		}
		ev.Type, ev.Outcome, ev.Reason = audit.ResourceRefused, audit.Failure, "upstream status "+strconv.Itoa(resp.StatusCode)
		return nil, x.upstreamError(resp) // the upstream's own OperationOutcome about the request
	}
	if exporting(&in) {
		return x.inspectExport(resp)
	}
	if (in.Kind == Create || in.Kind == Update || in.Kind == Patch) && emptyBody(resp) {
		// A write's answer without a body (Prefer: return=minimal, which
		// the proxy passes on): nothing to judge, and its Location and
		// ETag go as any write's. (Found by probing the sandbox: the record
		// was written and the client told 502, which invites a retry that
		// writes it again.)
		ev.Reason = "written; the FHIR server answered without a body"
		return nil, nil
	}
	if !jsonMediaType(header(resp.Header, "Content-Type")) {
		return refuse(http.StatusBadGateway, "not-supported", "the FHIR server answered in a format the proxy cannot inspect"), nil
	}
	if header(resp.Header, "Content-Encoding") != "" {
		return refuse(http.StatusBadGateway, "not-supported", "the FHIR server answered compressed"), nil
	}
	var body []byte
	var err error
	// An instance history and a batch response are read whole: one without
	// a visible version must become a 404, and a batch response's entries
	// keep their places (a streamed answer's status is sent first).
	if from := p.Limits.streamFrom(); in.unwrap == "" && in.Kind != HistoryInstance && in.Kind != Batch && p.Transform == nil && (resp.ContentLength < 0 || resp.ContentLength > from) {
		// Possibly a large Bundle: look at its head first.
		body, err = io.ReadAll(io.LimitReader(resp.Body, from+1))
		if err == nil && int64(len(body)) > from {
			// Only what may answer with a Bundle streams one: a read answered
			// with a Bundle is refused whole, like any other resource.
			if bundle, entryFirst := bundleHead(body); bundle && (alwaysBundle(in.Kind) || in.Kind == Operation && in.Operation == "$everything") ||
				entryFirst && alwaysBundle(in.Kind) {
				p.stream(resp.Request.Context(), resp, body, a, in.Type, !bundle, ev)
				return nil, nil
			}
		}
		if err == nil { // not one to stream: the rest too
			var rest []byte
			rest, err = io.ReadAll(io.LimitReader(resp.Body, p.Limits.resp()+1-int64(len(body))))
			body = append(body, rest...)
		}
	} else {
		body, err = x.readBody(resp, p.Limits.resp())
	}
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > p.Limits.resp() {
		return refuse(http.StatusBadGateway, "too-costly", "the response is too large to inspect"), nil
	}
	if in.Kind == VRead && a.held != nil && !a.held.matches(body) {
		return outsideGrant(), nil // an earlier version outside the constraint
	}
	if a.readBack != nil && a.readBack.matches(body) {
		// A write's answer, the record as stored, matches the token's
		// constrained read of its type, as the proxy evaluates it.
		a.constrained = in.Type
	}
	p.readTargets(resp.Request.Context(), a)
	out, kept, ref := a.inspectBody(in, body)
	if ref == nil && len(kept) == 1 && kept[0] == &a.top && a.bound(kept[0]) {
		if v, _ := p.judgeContext(resp.Request.Context(), a, kept[0], false); v != keep {
			ref = outsideGrant() // (a record the proxy could not read too: as missing)
		}
	}
	if ref != nil && ref.status == http.StatusNotFound && (in.Kind == Create || in.Kind == Update || in.Kind == Patch) {
		// The write happened, but the token may not see what was stored
		// (write-only scopes, labels the server added, a Binary bound to
		// what the proxy judges no Binary by): answer as for Prefer:
		// return=minimal rather than with a 404 that would lie (found by
		// FuzzWritesAgree: a Binary bound to another Binary was created,
		// and its creator told 404, where in a transaction it was 201).
		ev.Reason = "written; the stored resource is not readable with this token: body withheld"
		noBody(resp)
		return nil, nil
	}
	if ref != nil {
		return ref, nil
	}
	if len(out) != len(body) {
		ev.Reason = "entries withheld from the response"
		unconstrainedServer(ev, a)
	}
	if len(kept) > 0 {
		d := disclosure{ev: ev, a: a}
		for _, k := range kept {
			d.add(k)
		}
		for _, id := range a.named { // a batch's searches', named as on their own
			d.name(id)
		}
		ev.Labels = disclosedLabels(kept)
	}
	if in.unwrap != "" && resp.StatusCode == http.StatusOK {
		readValidators(resp.Header, out)
	}
	if (in.Kind == Read || in.Kind == VRead || in.unwrap != "") && resp.StatusCode == http.StatusOK && notModified(x.req.Header, resp.Header) {
		answerNotModified(resp)
		return nil, nil
	}
	body = out
	if p.Transform != nil {
		if body, err = p.Transform(resp.Request.Context(), a.tok, in, body); err != nil {
			// Not the upstream's failure: nothing is sent, as the host's
			// redaction could not run.
			p.logger().ErrorContext(resp.Request.Context(), "fhirproxy: Transform failed", "err", err)
			ev.Reason = "the host's Transform failed: nothing sent"
			return refuse(http.StatusInternalServerError, "exception", "the response could not be prepared for this app"), nil
		}
	}
	contentType := fhirJSON
	if in.native && resp.StatusCode == http.StatusOK {
		data, ct, context, err := nativeContent(body)
		if err != nil {
			return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the Binary without content the proxy can serve"), nil
		}
		body, contentType = data, []string{ct}
		if context != "" {
			resp.Header["X-Security-Context"] = []string{context}
		}
	}
	x.sent.Reset(body)
	resp.Body = &x.sent
	// The upstream's Content-Length stays when it still holds, in the
	// canonical form (the Transport checked it is a number).
	if cl := resp.Header["Content-Length"]; int64(len(body)) != resp.ContentLength || len(cl) != 1 || cl[0] == "" || cl[0][0] == '0' && len(body) != 0 {
		resp.ContentLength = int64(len(body))
		resp.Header["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	resp.Header["Content-Type"] = contentType
	return nil, nil
}

// readValidators gives a constrained read's answer, the one record taken
// from the search it was sent as, the validators a read's answer carries
// (FHIR: ETag from meta.versionId, Last-Modified from meta.lastUpdated),
// in place of the search's, which were the Bundle's: so that a client can
// update it with If-Match, and read it again conditionally (found by
// probing: it came with neither).
func readValidators(h http.Header, res []byte) {
	delete(h, "Etag")
	delete(h, "Last-Modified")
	version, updated := validators(res)
	if version != "" {
		h["Etag"] = []string{`W/"` + version + `"`}
	}
	if t, err := time.Parse(time.RFC3339Nano, updated); err == nil {
		h["Last-Modified"] = []string{t.UTC().Format(http.TimeFormat)}
	}
}

// upstreamError passes the upstream's error answer, where answers are
// read, when it is one OperationOutcome in strict FHIR JSON, read whole
// within maxErrorBody (a longer one is cut, so no longer JSON), holding no
// contained resource. Any other body (a resource a server sent with its
// error, a page of HTML) is not the proxy's to pass unread, and becomes an
// OperationOutcome of the proxy's own with the same status.
func (x *exchange) upstreamError(resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
	resp.Body.Close()
	if err != nil {
		return err
	}
	var pr projection
	s := jsonstrict.NewScanner(body)
	if !jsonMediaType(header(resp.Header, "Content-Type")) || pr.decode(s, nil, nil) != nil || s.End() != nil ||
		pr.ResourceType != "OperationOutcome" || bytes.Contains(body, []byte(`"contained"`)) { // (a resource inside, unjudged)
		x.ev.Reason += "; its answer was not an OperationOutcome: replaced"
		body, _ = json.Marshal(map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "error",
			"code": "processing", "diagnostics": "the FHIR server refused the request (" + strconv.Itoa(resp.StatusCode) + ")"}}})
		resp.Header["Content-Type"] = fhirJSON
	} else if !x.a.hearsServer() {
		if words := serverWords(body); words != "" {
			x.ev.Reason += "; the FHIR server's words, withheld from the client: " + strconv.Quote(words)
		}
		body = withheldOutcome(body, true)
		resp.Header["Content-Type"] = fhirJSON
	} else if rl := x.a.relink; rl != nil && bytes.Contains(body, []byte(rl.from)) {
		// The server's address in its words (diagnostics naming a URL): on
		// the proxy's, as its links are (a URL holds no quote or backslash,
		// so the JSON stays as it was).
		body = bytes.ReplaceAll(body, []byte(rl.from), []byte(rl.to))
	}
	x.sent.Reset(body)
	resp.Body, resp.ContentLength = &x.sent, int64(len(body))
	resp.Header["Content-Length"] = []string{strconv.Itoa(len(body))}
	return nil
}

// maxErrorBody bounds an upstream error answer the proxy reads.
const maxErrorBody = 64 << 10

// noBody empties a response (its body closed): a write's answer the token
// may not read, a bulk export's kick-off and status.
func noBody(resp *http.Response) {
	resp.Body.Close()
	resp.Body, resp.ContentLength = http.NoBody, 0
	resp.Header["Content-Length"] = []string{"0"}
	delete(resp.Header, "Content-Type")
}

// jsonMediaType reports whether a Content-Type is application/fhir+json or
// application/json, with any parameters.
func jsonMediaType(ct string) bool {
	return mediaTypeOf(ct, "application/fhir+json", "application/json")
}

// mediaTypeOf reports whether a Content-Type names one of the media types
// given (lower case), with any parameters.
func mediaTypeOf(ct string, types ...string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	for _, t := range types {
		if strings.EqualFold(mt, t) {
			return true
		}
	}
	return false
}

// readBody reads at most limit+1 bytes of a response: when the length is
// declared, in one read into a buffer from a pool (returned once the
// exchange is over, unless a Transform could keep it), growing otherwise.
func (x *exchange) readBody(resp *http.Response, limit int64) ([]byte, error) {
	n := resp.ContentLength
	if n < 0 || n > limit {
		return io.ReadAll(io.LimitReader(resp.Body, limit+1))
	}
	var body []byte
	if n <= pooledBody && x.p.Transform == nil {
		x.sent.buf = bodyBuffers.Get().(*[]byte)
		body = (*x.sent.buf)[:n]
	} else {
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(resp.Body, body); err != nil {
		return nil, err
	}
	return body, nil
}

// pooledBody is the largest response body read into a pooled buffer.
const pooledBody = 64 << 10

var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, pooledBody); return &b }}

// sentBody is an inspected response body on its way to the client, and
// the pooled buffer it may be read from (released by forward).
type sentBody struct {
	bytes.Reader
	buf *[]byte
}

func (b *sentBody) Close() error { return nil }

func (b *sentBody) release() {
	if b.buf != nil {
		bodyBuffers.Put(b.buf)
		b.buf = nil
	}
}

// disclosure collects, for an audit event, the patients whose records went
// out: the first as Patient (when no patient is in context), the others in
// Patients, each once. It answers "who saw this patient's records" for a
// user/ or system/ search whose page holds many patients' as well as for a
// read.
type disclosure struct {
	ev   *audit.Event
	a    *access
	seen map[string]bool // once Patients is long enough to search slowly
	// most, when set, bounds the patients named (Patient and Patients);
	// capped says a patient past it went unnamed.
	most   int
	capped bool
}

func (d *disclosure) add(pr *projection) {
	id := d.a.patientOf(pr)
	if id == "" && d.a.asked != "" {
		if _, owned := compartment[pr.ResourceType]; owned {
			// Answered without the reference that names its patient (a
			// summary): the patient the request names.
			id = d.a.asked
		}
	}
	if pr.ResourceType == "Binary" || pr.ResourceType == "Provenance" {
		// Of the patients of the records it is bound to, as the proxy
		// read them to judge it (access.owners): a document's content
		// is its patient's.
		unjudged := !d.a.bound(pr)
		for _, r := range pr.boundRefs() {
			ref, ok := d.a.localRef(r.Reference)
			if ok && d.a.owners[ref] == "" && unjudged && !strings.HasPrefix(ref, "Patient/") { // (a Patient names itself: patientOf)
				// Kept unjudged (the access sees everything): read for
				// the audit where every disclosure is named (readTargets).
				d.a.targets.owner(d.a, ref)
			}
			if ok && d.a.owners[ref] != "" {
				d.name(d.a.owners[ref])
			}
		}
	}
	d.name(id)
}

// name names a patient in the event, once.
func (d *disclosure) name(id string) {
	ev := d.ev
	full := d.most > 0 && 1+len(ev.Patients) >= d.most
	switch {
	case id == "" || id == ev.Patient:
	case ev.Patient == "":
		ev.Patient = id
	case d.seen != nil:
		if !d.seen[id] {
			if full {
				d.capped = true
				return
			}
			d.seen[id] = true
			ev.Patients = append(ev.Patients, id)
		}
	case !slices.Contains(ev.Patients, id):
		if full {
			d.capped = true
			return
		}
		ev.Patients = append(ev.Patients, id)
		if len(ev.Patients) == 16 {
			d.seen = make(map[string]bool, 64)
			for _, p := range ev.Patients {
				d.seen[p] = true
			}
		}
	}
}

// touch adds to the patients whose records a write changes
// (access.touched) the one a record written or replaced (pr) is about.
func (a *access) touch(pr *projection) {
	if pr == nil {
		return
	}
	if id := a.patientOf(pr); id != "" && !slices.Contains(a.touched, id) {
		a.touched = append(a.touched, id)
	}
}

// patientOf is the patient a kept resource is about: a Patient itself, or
// the one its patient reference names on this server.
func (a *access) patientOf(pr *projection) string {
	if pr.ResourceType == "Patient" {
		return pr.ID
	}
	var buf [6]string
	refs := append(buf[:0], pr.Subject.Reference, pr.Patient.Reference, pr.Beneficiary.Reference,
		pr.Individual.Reference, pr.Candidate.Reference, pr.Actor.Reference)
	for _, pa := range pr.Participant {
		refs = append(refs, pa.Actor.Reference)
	}
	if pr.ResourceType == "Provenance" {
		// About the patient itself, where a target is the Patient (the
		// Provenance's patient search parameter). A target that is
		// another record is not read for its patient here.
		for _, t := range pr.Target {
			refs = append(refs, t.Reference)
		}
	}
	for _, r := range refs {
		if id, ok := strings.CutPrefix(r, "Patient/"); ok && validID(id) { // the usual form, without allocating
			return id
		}
		if ref, ok := a.localRef(r); ok {
			if id, ok := strings.CutPrefix(ref, "Patient/"); ok {
				return id
			}
		}
	}
	return ""
}

// requestPatient is the patient a request names itself (a Patient's read
// or history, a compartment search, a search by one patient), for the
// audit event of an answer the proxy does not read.
func requestPatient(in *Interaction) string {
	switch {
	case in.Type == "Patient" && in.ID != "" && in.Kind != Delete:
		return in.ID
	case in.Kind == SearchCompart:
		return in.Compartment
	case in.Kind == SearchType || in.Kind == SearchSystem:
		return searchedPatient(in.Params)
	}
	return ""
}

// searchedPatient is the one patient a search names by its patient or
// subject parameter (patient=p1, patient=Patient/p1, subject=Patient/p1,
// subject:Patient=p1), or "" when it names none, several, or one in a form
// that could mean something else.
func searchedPatient(params []Param) string {
	found := ""
	for _, p := range params {
		var id string
		switch p.Name {
		case "patient", "subject:Patient", "patient:Patient":
			id = strings.TrimPrefix(p.Value, "Patient/")
		case "subject":
			var ok bool
			if id, ok = strings.CutPrefix(p.Value, "Patient/"); !ok {
				continue
			}
		default:
			continue
		}
		if !validID(id) || found != "" && found != id {
			return ""
		}
		found = id
	}
	return found
}

// maxLabels bounds the labels one audit event lists.
const maxLabels = 32

// disclosedLabels lists, once each, the security labels of what a response
// lets through, for its audit event; never those of what it withheld.
func disclosedLabels(kept []*projection) []string {
	var out []string
	for _, k := range kept {
		out = addLabels(out, k)
	}
	return out
}

// addLabels adds to a list of disclosed labels those of one resource.
func addLabels(out []string, p *projection) []string {
	for _, c := range p.Meta.Security {
		if l := c.System + "|" + c.Code; len(out) < maxLabels && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// capabilities passes the CapabilityStatement through with the SMART
// security service and oauth-uris extension added (SAL: the deprecated but
// still common discovery path).
func (p *Proxy) capabilities(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.Limits.resp()))
	resp.Body.Close()
	if err != nil {
		return err
	}
	var cs map[string]any
	if err := json.Unmarshal(body, &cs); err != nil || cs["resourceType"] != "CapabilityStatement" {
		return refuse(http.StatusBadGateway, "invalid", "the FHIR server's CapabilityStatement is unreadable")
	}
	var ext []any
	for name, u := range map[string]string{"authorize": p.AuthorizeURL, "token": p.TokenURL, "revoke": p.RevokeURL, "introspect": p.IntrospectURL} {
		if u != "" {
			ext = append(ext, map[string]any{"url": name, "valueUri": u})
		}
	}
	security := map[string]any{
		"service": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}}}},
		"extension": []any{map[string]any{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": ext}},
	}
	rest, _ := cs["rest"].([]any)
	if len(rest) == 0 {
		rest = []any{map[string]any{"mode": "server"}}
	}
	for _, r := range rest {
		if m, ok := r.(map[string]any); ok {
			m["security"] = security
			supportedOnly(m)
		}
	}
	cs["rest"] = rest
	// Messaging ($process-message) is not: its endpoints are the FHIR
	// server's own addresses, which no client can use through the proxy.
	delete(cs, "messaging")
	// Only JSON is served (anything else is 406), and patches only in JSON.
	cs["format"] = []any{"application/fhir+json", "json"}
	if pf, ok := cs["patchFormat"].([]any); ok {
		cs["patchFormat"] = slices.DeleteFunc(pf, func(f any) bool { s, _ := f.(string); return !strings.Contains(s, "json") })
	}
	if rl := p.relinker(); rl != nil {
		if impl, ok := cs["implementation"].(map[string]any); ok {
			if u, ok := impl["url"].(string); ok {
				impl["url"], _ = rl.move(u)
			}
		}
	}
	out, err := json.Marshal(cs)
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Set("Content-Type", "application/fhir+json")
	resp.Header.Set("Access-Control-Allow-Origin", "*")
	return nil
}

// bundleEntry is one element of a Bundle's entry array: its span in the
// body, and its resource's projection and span when it has one.
type bundleEntry struct {
	start, end       int64
	hasRes           bool
	resStart, resEnd int64
	res              projection
	status           string // response.status, in batch and transaction responses
	// respStart and respEnd span the response member's value, if any.
	respStart, respEnd int64
	// fullUrl's value, from its opening quote to its end, and the url it
	// moves to on the proxy's base (relinker), if it does.
	urlStart, urlEnd int64
	movedURL         string
	// response.location's value, likewise (a batch or transaction
	// response's, a history's): the server writes its own base there too.
	locStart, locEnd int64
	movedLoc         string
	// nested is a batch search's Bundle as inspected (nestedEntry).
	nested []byte
	// outStart and outEnd span response.outcome's value, if any; quiet:
	// the server's words in it, and in a resource that is an
	// OperationOutcome, are withheld as the entry is written (speaks).
	outStart, outEnd int64
	quiet            bool
	// notMatch: search.mode says the entry is an include or an outcome,
	// which a search's total does not count; match: it says match.
	notMatch, match bool
}

// moved reports whether the entry is written otherwise than it came: a
// url moved onto the proxy's base, or the server's words withheld.
func (e *bundleEntry) moved() bool { return e.movedURL != "" || e.movedLoc != "" || e.quiet }

// speaks reports whether the entry holds the server's words: an outcome in
// its response, or a resource that is an OperationOutcome.
func (e *bundleEntry) speaks() bool {
	return e.outEnd > e.outStart || e.hasRes && e.res.ResourceType == "OperationOutcome"
}

// hush marks the entries that hold the server's words to be written
// without them, where the access does not hear them, and reports whether
// any was.
func (a *access) hush(entries []bundleEntry) bool {
	hushed := false
	for i := range entries {
		hushed = a.hushes(&entries[i]) || hushed
	}
	return hushed
}

// hushes marks an entry that holds the server's words to be written
// without them, where the access does not hear them, and reports whether
// it did.
func (a *access) hushes(e *bundleEntry) bool {
	e.quiet = e.speaks() && !a.hearsServer()
	return e.quiet
}

// appendEntry appends an entry as it came, or with its fullUrl and its
// response.location moved.
func appendEntry(out, raw []byte, e *bundleEntry) []byte {
	return appendMoved(out, raw, e.start, e)
}

// appendResponse appends an entry's response member's value, its location
// moved.
func appendResponse(out, body []byte, e *bundleEntry) []byte {
	return appendMoved(out, body[e.respStart:e.respEnd], e.respStart, e)
}

// appendMoved appends raw, which begins at offset from in the body, with
// the entry's moved urls that fall within it written in place, and, for a
// quiet entry, its OperationOutcomes without the server's words
// (withheldOutcome).
func appendMoved(out, raw []byte, from int64, e *bundleEntry) []byte {
	type edit struct {
		start, end int64
		url        string
		outcome    bool // withheldOutcome of the span
	}
	var edits [4]edit
	n := 0
	resOutcome := e.hasRes && e.res.ResourceType == "OperationOutcome"
	for _, ed := range [...]edit{{e.urlStart, e.urlEnd, e.movedURL, false}, {e.locStart, e.locEnd, e.movedLoc, false},
		{e.outStart, e.outEnd, "", e.quiet && e.outEnd > e.outStart}, {e.resStart, e.resEnd, "", e.quiet && resOutcome}} {
		if (ed.url != "" || ed.outcome) && ed.start >= from && ed.end <= from+int64(len(raw)) {
			edits[n] = ed
			n++
		}
	}
	slices.SortFunc(edits[:n], func(x, y edit) int { return cmp.Compare(x.start, y.start) })
	prev := int64(0)
	for _, ed := range edits[:n] {
		out = append(out, raw[prev:ed.start-from]...)
		if ed.outcome {
			out = append(out, withheldOutcome(raw[ed.start-from:ed.end-from], !foundStatus(e.status) && e.status != "")...)
		} else {
			q, _ := json.Marshal(ed.url)
			out = append(out, q...)
		}
		prev = ed.end - from
	}
	return append(out, raw[prev:]...)
}

// fate is what a filtered Bundle does with an entry.
type fate uint8

const (
	sendEntry    fate = iota
	dropEntry         // left out
	missingEntry      // in a batch response: replaced by notFoundEntry
	// minimalEntry: in a batch response, a write whose result the access
	// may not see keeps its response (status, location), not the resource,
	// as Prefer: return=minimal would have it: the write happened.
	minimalEntry
	// nestedEntry: in a batch response, a search's, its Bundle written
	// anew (bundleEntry.nested) with its response.
	nestedEntry
	// foundEntry: in a batch response, the read a conditional create that
	// found its record was sent as (checkBatch) answers as FHIR has a
	// conditional create that matched answer: 200, with the record's
	// location (appendFound).
	foundEntry
)

// appendFound appends the answer of a conditional create that found its
// record: the record, status 200 and its location (versioned, when the
// record says its version).
func appendFound(out, res []byte, pr *projection) []byte {
	loc := pr.ResourceType + "/" + pr.ID
	if v := versionOf(res); v != "" {
		loc += "/_history/" + v
	}
	q, _ := json.Marshal(loc)
	out = append(append(out, `{"resource":`...), res...)
	return append(append(append(out, `,"response":{"status":"200 OK","location":`...), q...), `}}`...)
}

// notFoundEntry answers a batch entry the access may not see, or one the
// FHIR server did not find, alike: a batch response keeps one entry per
// request, in order, and must not tell "not yours" from "absent".
const notFoundEntry = `{"response":{"status":"404 Not Found","outcome":{"resourceType":"OperationOutcome",` +
	`"issue":[{"severity":"error","code":"not-found","diagnostics":"resource not found"}]}}}`

// absentStatus reports whether a batch entry's response status says the
// resource was not found or is gone ("404", "404 Not Found", "410 Gone").
func absentStatus(status string) bool {
	return strings.HasPrefix(status, "404") || strings.HasPrefix(status, "410")
}

// foundStatus reports whether an entry's response.status is a success or
// a redirection (2xx, 3xx: 304 Not Modified).
func foundStatus(status string) bool {
	return status != "" && (status[0] == '2' || status[0] == '3')
}

// span is one top-level member of a body, from its name to its value's end.
type span struct {
	name       string // "entry", "total", "meta", "link" or "" for the others
	start, end int64
	repl       []byte // what to write instead (a link member with moved urls)
}

// readEntries returns the reader of a top-level "entry" member's value: an
// array of objects, each with an optional resource; each element is passed
// to done once read.
func readEntries(s *jsonstrict.Scanner, rl *relinker, done func(bundleEntry) error) func() error {
	return func() error {
		return readArray(s, func() error {
			e := bundleEntry{start: s.Offset()}
			err := s.Object(func(name []byte) error {
				switch {
				case rl != nil && string(name) == "fullUrl" && s.Kind() == '"':
					var err error
					e.urlStart, e.urlEnd, e.movedURL, err = readMoved(s, rl)
					return err
				case string(name) == "search":
					return readObject(s, func(name []byte) error {
						if string(name) != "mode" || s.Kind() != '"' {
							return s.Skip()
						}
						mode, err := s.String()
						e.notMatch = string(mode) == "include" || string(mode) == "outcome"
						e.match = string(mode) == "match"
						return err
					})
				case string(name) == "response":
					e.respStart = s.Offset()
					err := readObject(s, func(name []byte) error {
						switch {
						case string(name) == "status":
							return readString(s, &e.status)
						case rl != nil && string(name) == "location" && s.Kind() == '"':
							var err error
							e.locStart, e.locEnd, e.movedLoc, err = readMoved(s, rl)
							return err
						case string(name) == "outcome" && s.Kind() == '{':
							e.outStart = s.Offset()
							err := s.Skip()
							e.outEnd = s.Offset()
							return err
						}
						return s.Skip()
					})
					e.respEnd = s.Offset()
					return err
				case string(name) != "resource" || s.Kind() == 'n':
					return s.Skip()
				}
				e.hasRes, e.resStart = true, s.Offset()
				err := e.res.decode(s, nil, nil)
				e.resEnd = s.Offset()
				return err
			})
			if err != nil {
				return err
			}
			e.end = s.Offset()
			return done(e)
		})
	}
}

// batchSearch is a batch entry that is a search or a history: what it
// is, and the access it was authorised with (checkBatch).
type batchSearch struct {
	in Interaction
	a  *access
}

// inspect inspects the Bundle a batch's search was answered with as that
// search's own answer, with the search's access (a copy, apart from the
// outer Bundle's, whose projections that inspection holds): each entry
// judged as on its own (type, patient, labels, its Provenances with the
// records they are about), the REDACTED mark where it withholds one, a
// total only where it may go, links and fullUrls moved onto the proxy's
// base and page links signed for the search. Anything but a Bundle is not
// ok. A Binary or Provenance in it is judged by the records it is bound to
// as that search's access reads them, within the reads the response has
// left (targets: found by probing, a batched search of Binary answered
// none, its access having no reader).
func (b batchSearch) inspect(body []byte, targets *targetReader) ([]byte, []*projection, []string, bool) {
	na := *b.a
	na.writes, na.found, na.searches, na.entries, na.entryPins, na.entryEdits = nil, nil, nil, nil, nil, nil
	if targets.p != nil {
		na.targets = targets.nested()
	}
	out, kept, ref := na.inspectBody(b.in, body)
	// Named as on its own: by the patient the search names, and the
	// records its Binaries and Provenances are bound to, which this
	// access read (found by probing: a batched search of Provenances, and
	// one by patient as _summary=text, named no one).
	var ev audit.Event
	d := disclosure{ev: &ev, a: &na}
	for _, k := range kept {
		d.add(k)
	}
	targets.spend(na.targets)
	return out, kept, append([]string{ev.Patient}, ev.Patients...), ref == nil
}

// readMoved reads a URL string at s, and returns its span (from its
// opening quote) and the URL it moves to on the proxy's base, or "" when it
// is not on the upstream's.
func readMoved(s *jsonstrict.Scanner, rl *relinker) (start, end int64, moved string, err error) {
	start = s.Offset()
	v, err := s.String()
	if m, ok := rl.move(string(v)); ok {
		moved = m
	}
	return start, s.Offset(), moved, err
}

// memberName names the top-level members a filtered Bundle rewrites.
func memberName(name []byte) string {
	switch string(name) {
	case "entry":
		return "entry"
	case "total":
		return "total"
	case "meta":
		return "meta"
	case "link":
		return "link"
	case "resourceType":
		return "resourceType"
	}
	return ""
}

// redacted is the meta of a Bundle some of whose entries were withheld for
// their labels.
const redacted = `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"REDACTED"}]}`

// inspectBody decides a whole response body for the access in one strict
// pass that also reads the projections. A Bundle is rebuilt from the spans
// of what it keeps only when it must lose entries; a single resource the
// access may not see becomes the 404 of a missing one. It returns the body
// to send and what it lets through, or a refusal.
func (a *access) inspectBody(in Interaction, body []byte) ([]byte, []*projection, *refusal) {
	var (
		top     = &a.top
		spans   = make([]span, 0, 8)
		entries []bundleEntry
	)
	*top = projection{}
	s := jsonstrict.NewScanner(body)
	// A Bundle read as a resource (a document, a collection) is one
	// resource, judged with what it holds (projection.Inner), never cut.
	// So is a List answered for a List: its entries name records and hold
	// none (one that held a resource would be judged by it, as a Bundle's
	// Inner are).
	read := in.Kind == Read || in.Kind == VRead
	whole := read && in.Type == "Bundle" || in.Type == "List" && answersResource(in.Kind)
	var err error
	if whole {
		err = top.decode(s, nil, nil)
	} else {
		err = top.decode(s, readEntries(s, a.relink, func(e bundleEntry) error {
			entries = append(entries, e)
			return nil
		}), func(name string, start int64) error {
			spans = append(spans, span{name: name, start: start, end: s.Offset()})
			return nil
		})
	}
	if err != nil || s.End() != nil {
		return nil, nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered with invalid or ambiguous JSON")
	}
	if op, ok := tableOperation(&in); ok {
		if len(entries) > 0 {
			return nil, nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the operation with entries")
		}
		if ref := a.judgeOperationAnswer(op, top, body); ref != nil {
			return nil, nil, ref
		}
		return body, nil, nil
	}
	switch {
	case top.ResourceType == "Bundle" && read && (in.Type != "Bundle" || top.ID != in.ID),
		whole && top.ResourceType != in.Type && top.ResourceType != "OperationOutcome":
		// (Read whole, a Bundle's entries would pass as a List's.)
		return nil, nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered with another resource")
	case top.ResourceType == "Bundle" && !read:
		relinked := false
		if a.relink != nil {
			for i := range spans {
				if m := &spans[i]; m.name == "link" {
					m.repl = a.relink.member(body[m.start:m.end], a, in.Type)
					relinked = relinked || m.repl != nil
				}
			}
			for i := range entries {
				relinked = relinked || entries[i].moved()
			}
		}
		if a.hush(entries) { // the server's words, where the access does not hear them
			relinked = true
		}
		if in.Kind == HistoryInstance {
			// Every version is the record's (found by a test holding the
			// history to each version's vread: another record in it went
			// out judged as itself, where its vread is a 502), checked
			// before any is judged (and a bound one's records read).
			for i := range entries {
				if e := &entries[i]; e.hasRes && (e.res.ResourceType != in.Type || e.res.ID != in.ID) {
					return nil, nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the history with another resource")
				}
			}
		}
		kept := make([]*projection, 0, len(entries))
		fates := make([]fate, len(entries))
		removed, withheld := false, false
		removedMatch := false    // a removed entry a total counts
		answered := false        // an entry rewritten as a conditional create's answer (foundEntry)
		var keys map[string]bool // the records kept so far (the patient's), which Provenances may follow
		// A batch response keeps its entries in place: what the access may
		// not see, and what the server did not find, become the same
		// not-found entry (and no REDACTED mark, which would tell them apart).
		batch := in.Kind == Batch
		var inc *inclusion // the records kept and removed so far, by which included ones are judged
		if a.includes && !batch {
			inc = &inclusion{specs: a.includeSpecs}
		}
		for i := range entries {
			e := &entries[i]
			if !e.hasRes || e.res.ResourceType == "OperationOutcome" { // a response without a resource, a deletion, or an issue
				// A read answered as found without the resource (a 304, or
				// a server that will not show it) says that something the
				// access might not see exists: where reads are judged, it
				// reads as missing.
				written := i < len(a.writes) && a.writes[i]
				if batch && (absentStatus(e.status) || !a.seesAll() && !written && foundStatus(e.status)) {
					fates[i], removed = missingEntry, true
				}
				continue
			}
			if batch && i < len(a.searches) && a.searches[i].a != nil {
				// A search's answer: inspected as that search's, entry by
				// entry, its links moved.
				if nested, nestedKept, named, ok := a.searches[i].inspect(body[e.resStart:e.resEnd], &a.targets); ok {
					e.nested, fates[i], answered = nested, nestedEntry, true
					kept = append(kept, nestedKept...)
					a.named = append(a.named, named...)
				} else {
					fates[i], removed = missingEntry, true
				}
				continue
			}
			follows := keys
			if batch { // (a batch's entries follow no record)
				follows = nil
			}
			v := a.judgeInBundle(e, body[e.resStart:e.resEnd], follows, !batch)
			if inc != nil && v == keep && e.notMatch && inc.betrays(a, &e.res, body[e.resStart:e.resEnd]) {
				v = drop // included because of a match removed (includes.go)
			}
			if inc != nil {
				inc.noteEntry(a, e, body[e.resStart:e.resEnd], v == keep)
			}
			switch {
			case v == keep:
				kept = append(kept, &e.res)
				if batch && i < len(a.found) && a.found[i] {
					fates[i], answered = foundEntry, true
				}
				keys = a.remember(keys, &e.res)
			case batch && i < len(a.writes) && a.writes[i] && e.respEnd > e.respStart && !absentStatus(e.status):
				fates[i], removed = minimalEntry, true
			case batch:
				fates[i], removed = missingEntry, true
			default:
				fates[i], removed, withheld = dropEntry, true, withheld || v == withhold
				removedMatch = removedMatch || !e.notMatch
			}
		}
		if in.Kind == HistoryInstance && len(kept) == 0 {
			// No version the access may see: the answer a missing resource
			// gets, not an empty history that would say it exists (nor a
			// deletion entry that would say it existed).
			return nil, nil, outsideGrant()
		}
		if in.unwrap != "" { // a constrained read: exactly the one resource, or absent
			missing := notFound() // absent, or outside the constraint: the server's search cannot tell
			for i := range entries {
				e := &entries[i]
				if !e.hasRes || e.res.ResourceType != in.Type || e.res.ID != in.unwrap {
					continue
				}
				if fates[i] == sendEntry {
					return body[e.resStart:e.resEnd], []*projection{&e.res}, nil
				}
				missing = outsideGrant()
				if a.unconstrained {
					missing.audit += unconstrainedNote
				}
			}
			return nil, nil, missing
		}
		if batch {
			removedMatch = removed // (a batch response's entries are not a search's)
		}
		var f pageFacts
		if !removedMatch && (removed || a.judgesTotals()) { // only then do the facts decide
			f = bundleFacts(body, spans)
			f.matches = matchCount(entries)
		}
		keepTotal, keepMeta := f.goes(a, removed, removedMatch)
		if !removed && !relinked && !answered && (keepTotal || !f.total) && (keepMeta || !f.meta) {
			return body, kept, nil
		}
		return rebuildBundle(body, spans, entries, fates, edits{removed, withheld, !keepTotal, !keepMeta}), kept, nil
	case len(entries) > 0:
		// Entries belong to a Bundle: judged nowhere else, they would pass
		// unseen inside whatever claims to be another resource.
		return nil, nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered with entries outside a Bundle")
	case top.ResourceType == "OperationOutcome":
		if !a.hearsServer() {
			return withheldOutcome(body, false), nil, nil
		}
		return body, nil, nil
	case in.unwrap != "" || alwaysBundle(in.Kind):
		return nil, nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered a search with something else")
	}
	if in.ID != "" && in.Kind != Operation && (top.ResourceType != in.Type || top.ID != in.ID) {
		return nil, nil, refuse(http.StatusBadGateway, "invalid", "the FHIR server answered with another resource")
	}
	if v := a.judge(top); v != keep && v != needsContext { // exchange.inspect judges the context
		return nil, nil, outsideGrant()
	}
	a.one[0] = top
	return body, a.one[:], nil
}

// answersResource reports whether an interaction is answered with one
// resource of its type: a read, a version, or a write's answer.
func answersResource(k Kind) bool {
	switch k {
	case Read, VRead, Create, Update, Patch:
		return true
	}
	return false
}

// edits says what rebuildBundle changes besides the entries: whether some
// were removed (an emptied entry array is then left out), whether some of
// those were withheld for their labels (the meta becomes a REDACTED label),
// and whether the total and the meta go (see pageFacts.goes).
type edits struct{ removed, withheld, dropTotal, dropMeta bool }

// rebuildBundle writes a Bundle without the entries it may not keep (or
// with notFoundEntry in their place): its other members as they were (or
// as replaced), except for what ed says. An empty entry array is left out,
// as FHIR wants.
func rebuildBundle(body []byte, spans []span, entries []bundleEntry, fates []fate, ed edits) []byte {
	removed, withheld := ed.removed, ed.withheld
	out := make([]byte, 0, len(body))
	out = append(out, '{')
	sep := func() {
		if len(out) > 1 {
			out = append(out, ',')
		}
	}
	for _, m := range spans {
		switch {
		case m.name == "total" && ed.dropTotal, m.name == "meta" && (withheld || ed.dropMeta):
			continue
		case m.repl != nil:
			sep()
			out = append(out, m.repl...)
			continue
		case m.name == "entry":
			n := 0
			for i, e := range entries {
				if fates[i] == dropEntry {
					continue
				}
				if n == 0 {
					sep()
					out = append(out, `"entry":[`...)
				} else {
					out = append(out, ',')
				}
				switch fates[i] {
				case missingEntry:
					out = append(out, notFoundEntry...)
				case foundEntry:
					out = appendFound(out, body[e.resStart:e.resEnd], &e.res)
				case minimalEntry:
					out = append(appendResponse(append(out, `{"response":`...), body, &e), '}')
				case nestedEntry:
					out = append(append(out, `{"resource":`...), e.nested...)
					if e.respEnd > e.respStart {
						out = appendResponse(append(out, `,"response":`...), body, &e)
					}
					out = append(out, '}')
				default:
					out = appendEntry(out, body[e.start:e.end], &e)
				}
				n++
			}
			switch {
			case n > 0:
				out = append(out, ']')
			case !removed: // empty or null as it came (nothing was taken out)
				sep()
				out = append(out, body[m.start:m.end]...)
			}
			continue
		}
		sep()
		out = append(out, body[m.start:m.end]...)
	}
	if withheld {
		sep()
		out = append(out, redacted...)
	}
	return append(out, '}')
}

// pageFacts is what a judged Bundle's total and meta go out by: whether it
// has a total (and whether that is a non-negative integer, n), a next
// link, a meta, and how many of the entries sent are matches (not
// includes or outcomes).
type pageFacts struct {
	total, totalOK, next, meta bool
	n, matches                 int
}

// unconstrainedServer says in an event that the FHIR server answered
// records outside the scope's constraint it was asked to apply, which the
// proxy dropped (access.unconstrained): a server that ignores the
// constraint's parameter, which its operators need to know of.
func unconstrainedServer(ev *audit.Event, a *access) {
	if a.unconstrained {
		ev.Reason += unconstrainedNote + ": dropped"
		ev.Severity = audit.Warning
	}
}

// unconstrainedNote is what an event adds where access.unconstrained.
const unconstrainedNote = "; the FHIR server answered records outside the scope's constraint, which it was asked to apply"

// judgesTotals reports whether a Bundle's total and meta are judged by the
// page's facts (pageFacts.goes): with labels judged, and where the proxy
// holds every match to a constraint itself (access.recheck) in place of a
// server that may not have applied it, since that one counted what the
// proxy drops. Where the server was asked to apply it strictly and the
// proxy only checks (access.checked), a removed match alone drops them.
func (a *access) judgesTotals() bool { return !a.unrestricted || a.recheck && !a.checked }

// goes reports whether a judged Bundle's total and meta go out. Neither
// does when matches were removed (entries not marked include or outcome):
// the total counts them, the meta may carry their labels. With labels
// judged, both go only when the page holds the whole result (no next
// link), and the total only when it counts no more than the page's
// matches; otherwise they tell of matches on pages not yet judged, or on
// none (_summary=count): how many records the clearance withholds, and
// their labels (servers write the high-water mark of the matches' labels
// in the meta). When only included entries were removed, the matches are
// all there: the total goes by the same test (a server that counts its
// includes in it fails it), the meta never. Whole and streamed Bundles
// alike.
func (f pageFacts) goes(a *access, removed, removedMatch bool) (total, meta bool) {
	whole := !f.total || !f.next && f.totalOK && f.n <= f.matches
	switch {
	case removedMatch:
		return false, false
	case removed:
		return whole, false
	case !a.judgesTotals():
		return true, true
	}
	return whole, !f.next
}

// matchCount counts the entries a search's total counts: all but those whose
// search.mode is include or outcome.
func matchCount(entries []bundleEntry) int {
	n := 0
	for i := range entries {
		if !entries[i].notMatch {
			n++
		}
	}
	return n
}

// bundleFacts reads a whole Bundle's pageFacts from its member spans.
func bundleFacts(body []byte, spans []span) pageFacts {
	var f pageFacts
	for _, m := range spans {
		switch m.name {
		case "total":
			f.total = true
			f.n, f.totalOK = memberInt(body[m.start:m.end])
		case "link":
			f.next = f.next || nextLink(body[m.start:m.end])
		case "meta":
			f.meta = true
		}
	}
	return f
}

// memberInt reads a member ("total": 12) whose value is a non-negative
// integer.
func memberInt(member []byte) (int, bool) {
	colon := bytes.IndexByte(member, ':')
	if colon < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(member[colon+1:])))
	return n, err == nil && n >= 0
}

// supportedOnly removes from a CapabilityStatement's rest entry what the
// proxy refuses to everyone: every operation but those of its table
// (operations, searchOperations) and Patient/{id}/$everything, resource
// types outside FHIR R4, and conditional deletes of several records.
func supportedOnly(rest map[string]any) {
	// Of the system-level operations, only $export is allowed.
	ops, _ := rest["operation"].([]any)
	ops = slices.DeleteFunc(ops, func(o any) bool {
		op, _ := o.(map[string]any)
		return op["name"] != "export"
	})
	if len(ops) == 0 {
		delete(rest, "operation")
	} else {
		rest["operation"] = ops
	}
	resources, _ := rest["resource"].([]any)
	resources = slices.DeleteFunc(resources, func(r any) bool {
		m, ok := r.(map[string]any)
		t, _ := m["type"].(string)
		return !ok || !knownType(t)
	})
	for _, r := range resources {
		m := r.(map[string]any)
		if m["conditionalDelete"] == "multiple" {
			m["conditionalDelete"] = "single" // the proxy answers 412 to criteria matching several (resolveConditional)
		}
		t, _ := m["type"].(string)
		supported := supportedOperations(t)
		ops, _ := m["operation"].([]any)
		ops = slices.DeleteFunc(ops, func(o any) bool {
			op, _ := o.(map[string]any)
			name, _ := op["name"].(string)
			return !slices.Contains(supported, name)
		})
		if len(ops) == 0 {
			delete(m, "operation")
		} else {
			m["operation"] = ops
		}
	}
	if resources != nil {
		rest["resource"] = resources
	}
}

// emptyBody reports whether a response has no body, reading at most one
// byte of it to tell (a chunked answer says no length); a body found is
// left to be read whole.
func emptyBody(resp *http.Response) bool {
	switch {
	case resp.ContentLength == 0:
		return true
	case resp.ContentLength > 0:
		return false
	}
	var one [1]byte
	n, err := io.ReadFull(resp.Body, one[:])
	if n == 0 && err == io.EOF {
		resp.Body.Close()
		resp.Body = http.NoBody
		return true
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(one[:n]), resp.Body), resp.Body}
	return false
}
