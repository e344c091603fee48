package fhirproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smartkit/smartkit/audit"
	"github.com/smartkit/smartkit/internal/jsonstrict"
	"github.com/smartkit/smartkit/scopes"
)

// Bulk export (FHIR Bulk Data Access, the use SMART Backend Services was
// made for): the kick-off (authorizeExport), the status and the files, each
// a request authorised and audited as any; see "Bulk export" in the package
// documentation. The server's status and file URLs become links of the
// proxy's, sealed with a key derived from Proxy.PageKey (exportRef,
// exportSeal),
// followed by a token of the client and subject they were given to
// (followExport); the manifest is rebuilt (manifest), and each file is
// judged line by line as it streams (ndjsonFile).

const (
	exportOp        = "$export"
	exportStatusOp  = "$export-poll-status"
	exportFileOp    = "$export-file"
	exportJobParam  = "_job"
	exportFileParam = "_file"
	exportTTL       = 24 * time.Hour
	// maxExportPatients bounds the patients one download's audit event
	// names; its reason says when there were more.
	maxExportPatients = 1000
	// maxExportTargetReads is how many records one export file's
	// Provenances (and bound Binaries) may have the proxy read to judge
	// them: far more than a page's (maxTargetReads), as an export is a
	// batch job and its files hold every Provenance of the type. Past it,
	// a Provenance about a record not yet read is left out.
	maxExportTargetReads = 10000
	// ndjsonType is the media type of export files.
	ndjsonType = "application/fhir+ndjson"
)

// exportRef is what an export link carries, sealed (exportSeal): the
// client sees none of it.
type exportRef struct {
	Use     string // "job" (the status) or "file"
	Client  string
	Subject string // audit.Ref of the token's subject: a user's id stays out of URLs
	Type    string // a file's resource type
	// Deleted: a file of deleted resources (Bundles of DELETE entries).
	Deleted bool `json:",omitempty"`
	// Upstream is below the upstream's base ("/$export-poll-status?_jobId=…"),
	// or for a file in object storage its whole URL, under one of
	// Proxy.ExportStorage (a pre-signed one is a credential: links are
	// sealed).
	Upstream string
	// KickOff is a status link's kick-off as the client sent it
	// ("/Group/g1/$export?_type=Patient"; a POST's path alone): the
	// manifest's request.
	KickOff string `json:",omitempty"`
	// Since: a status link's kick-off had _since (an incremental export,
	// whose manifest tells a partial clearance that deletions are not
	// relayed: deletionsNotice).
	Since   bool  `json:",omitempty"`
	Expires int64 // Unix seconds
}

// exportSeal is the AEAD export links are sealed with (AES-256-GCM), its
// key derived from PageKey apart from page links' MAC key. Sealed, a link
// shows its holder nothing: not the server's paths, nor a file's URL in
// object storage, which when pre-signed would let its holder read the
// unjudged file around the proxy.
func (p *Proxy) exportSeal() cipher.AEAD {
	p.sealOnce.Do(func() { // once per Proxy, as its key (a GCM is safe for concurrent use)
		mac := hmac.New(sha256.New, p.pageKey())
		mac.Write([]byte("smartkit fhirproxy bulk export link key"))
		block, _ := aes.NewCipher(mac.Sum(nil)) // a 32-byte key: AES-256, no error
		p.seal, _ = cipher.NewGCM(block)
	})
	return p.seal
}

// exportAD is the sealed links' additional data: what they are for.
var exportAD = []byte("smartkit fhirproxy bulk export link")

func (p *Proxy) signExport(ref exportRef) string {
	payload, _ := json.Marshal(ref)
	aead := p.exportSeal()
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(payload)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, payload, exportAD))
}

// openExport returns what a sealed export link of the use carries, if it
// opens and has not expired.
func (p *Proxy) openExport(token, use string, now time.Time) (exportRef, bool) {
	var ref exportRef
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	aead := p.exportSeal()
	if err != nil || len(sealed) < aead.NonceSize()+aead.Overhead() {
		return exportRef{}, false
	}
	payload, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], exportAD)
	if err != nil || jsonstrict.Check(payload) != nil || json.Unmarshal(payload, &ref) != nil {
		return exportRef{}, false
	}
	upstream := use != "notice" // the proxy's own notice names no server URL
	switch {
	case ref.Use != use || now.Unix() > ref.Expires || upstream != (ref.Upstream != ""):
		return exportRef{}, false
	case upstream && ref.Upstream[0] != '/' && ref.Upstream[0] != '?' && (use != "file" || !p.inStorage(ref.Upstream)):
		// (a file in object storage only while ExportStorage still names it)
		return exportRef{}, false
	}
	return ref, true
}

// inStorage reports whether u is a file's URL under one of
// Proxy.ExportStorage: http or https, no fragment, no dot segment, empty
// segment (a trailing slash too) or escaped slash in its path (which a
// storage service could resolve outside the prefix, or to the prefix
// itself), below a prefix at a segment's end.
func (p *Proxy) inStorage(u string) bool {
	if len(p.ExportStorage) == 0 {
		return false
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "http" && pu.Scheme != "https" || pu.Host == "" || pu.Fragment != "" || strings.Contains(u, "#") {
		return false
	}
	for i, seg := range strings.Split(pu.EscapedPath(), "/") {
		lower := strings.ToLower(seg)
		if i > 0 && seg == "" || seg == "." || seg == ".." || strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%2e") || strings.Contains(seg, "\\") {
			return false
		}
	}
	for _, prefix := range p.ExportStorage {
		if !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		if rest, ok := strings.CutPrefix(u, prefix); ok && rest != "" && rest[0] != '?' {
			return true
		}
	}
	return false
}

// publicBase is the proxy's FHIR base as the token's client reaches it:
// Base, or the token's audience (the FHIR base it was issued for).
func (p *Proxy) publicBase(a *access) string {
	base := p.Base
	if base == "" {
		base = a.tok.Audience
	}
	return strings.TrimSuffix(base, "/")
}

// exportLink is the proxy's address for what an export link names.
func (p *Proxy) exportLink(a *access, op, param string, ref exportRef) string {
	ref.Client, ref.Subject, ref.Expires = a.tok.ClientID, audit.Ref(a.tok.Subject), time.Now().Add(exportTTL).Unix()
	return p.publicBase(a) + "/" + op + "?" + param + "=" + p.signExport(ref)
}

// exporting reports whether an interaction is a step of a bulk export.
func exporting(in *Interaction) bool {
	return in.Kind == ExportStatus || in.Kind == ExportFile || in.Kind == Operation && in.Operation == exportOp
}

// scopeFilters are the criteria that ask the server for what a constrained
// export of t may hold: those of each scope whose constraint the proxy
// evaluates (a server ORs _typeFilter queries of a type). A server that
// ignores them sends more, which the proxy leaves out.
func scopeFilters(a *access, t string) [][]Param {
	var out [][]Param
	for sc := range a.tok.Scopes.Check(scopes.Access{Context: a.ctx, Type: t, Perms: scopes.Read | scopes.Search}).Constraints() {
		evaluated := true
		for _, prm := range sc.Constraint() {
			if _, ok := compileTest(t, prm); !ok {
				evaluated = false
			}
		}
		if evaluated {
			out = append(out, sc.Constraint())
		}
	}
	return out
}

// exportKickOff checks what a kick-off request must be beyond its
// parameters: the asynchronous pattern asked for. A POSTed kick-off
// (Bulk Data allows one) has had its Parameters body read strictly into
// in.Params (and its patients into in.patients) on admission, to be
// checked as a GET's query is; it goes upstream as that GET, which every
// server takes, or, naming patients, as a POST of the parameters checked
// (Proxy.forward, exchange.rewrite).
func exportKickOff(r *http.Request) *refusal {
	for _, v := range r.Header["Prefer"] {
		for pref := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(pref), "respond-async") {
				return nil
			}
		}
	}
	return refuse(http.StatusBadRequest, "invalid", "$export needs the header Prefer: respond-async")
}

// authorizeExport authorises a kick-off and rebuilds its parameters: the
// types it exports (named, or those the token may export), the output
// format, _since, the client's _typeFilter queries (exportFilters),
// _elements (exportElements), includeAssociatedData and the patients a
// POSTed one names (exportPatients), each checked. users: user/ tokens may
// export too (Proxy.UserExports).
func authorizeExport(in *Interaction, a *access, users bool, lim Limits) *refusal {
	forbidden := func(msg string) *refusal { return refuse(http.StatusForbidden, "forbidden", msg) }
	invalid := func(msg string) *refusal { return refuse(http.StatusBadRequest, "invalid", msg) }
	switch {
	case in.Type == "" && in.ID == "", in.Type == "Patient" && in.ID == "", in.Type == "Group" && in.ID != "":
	default:
		return forbidden("$export runs at system level, on Patient, or on a Group")
	}
	switch {
	case a.patient != "":
		return forbidden("a token with patient context cannot export: bulk export is for backend services (system/ scopes)")
	case a.ctx == scopes.User && !users:
		return forbidden("a user/ token cannot export here: bulk export is for backend services (system/ scopes)")
	}
	if in.Type == "Group" && !a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: "Group", Perms: scopes.Read}) {
		return forbidden("exporting a Group needs the r letter on Group")
	}
	var (
		types         []string
		named, format bool
		since         string
		filters       []string
		elements      *string
		associated    []string
	)
	for _, prm := range in.Params {
		switch prm.Name {
		case "_type":
			named = true
			for t := range strings.SplitSeq(prm.Value, ",") {
				switch {
				case !knownType(t):
					return invalid("_type names " + strconv.Quote(t) + ", which is not an R4 resource type (types are case-sensitive)")
				case !searches(a, t):
					return forbidden("the token's scopes do not allow exporting " + t + " (it needs r and s on the type, with no constraint or one the proxy evaluates)")
				case !slices.Contains(types, t):
					types = append(types, t)
				}
			}
		case "_outputFormat":
			switch prm.Value {
			case ndjsonType, "application/ndjson", "ndjson":
			default:
				return refuse(http.StatusBadRequest, "not-supported", "_outputFormat must be NDJSON (application/fhir+ndjson)")
			}
			if format {
				return invalid("_outputFormat is given twice")
			}
			format = true
		case "_since":
			if since != "" {
				return invalid("_since is given twice")
			}
			if _, err := time.Parse(time.RFC3339Nano, prm.Value); err != nil || len(prm.Value) > 35 || !strings.Contains(prm.Value, "T") {
				return invalid("_since must be a FHIR instant, such as 2026-01-01T00:00:00Z")
			}
			since = prm.Value
		case "_typeFilter":
			filters = append(filters, prm.Value)
		case "patient":
			return invalid("patient is a Reference, given in a POSTed kick-off's Parameters body (valueReference)")
		case "includeAssociatedData":
			// Provenances, in files of their own, judged as any Provenance
			// file: by the records they are about.
			for v := range strings.SplitSeq(prm.Value, ",") {
				switch {
				case v != "LatestProvenanceResources" && v != "RelevantProvenanceResources":
					return refuse(http.StatusBadRequest, "not-supported", "includeAssociatedData takes LatestProvenanceResources and RelevantProvenanceResources here, not "+strconv.Quote(v))
				case !searches(a, "Provenance"):
					return refuse(http.StatusForbidden, "forbidden", "includeAssociatedData exports Provenances, which the token's scopes do not allow exporting")
				case !slices.Contains(associated, v):
					associated = append(associated, v)
				}
			}
		case "_elements":
			if elements != nil {
				return invalid("_elements is given twice")
			}
			elements = &prm.Value
		default:
			return refuse(http.StatusBadRequest, "not-supported", "the proxy does not support $export's parameter "+prm.Name+
				" (it takes _type, _outputFormat, _since, _typeFilter, _elements, includeAssociatedData and, POSTed, patient)")
		}
	}
	if _, all := searchable(a, "*"); !named && !all {
		if types = scopedTypes(a); len(types) == 0 {
			return forbidden("the token's scopes allow exporting no type (it needs r and s on a type, with no constraint or one the proxy evaluates)")
		}
	}
	if ref := exportPatients(in, a); ref != nil {
		return ref
	}
	asked, ref := exportFilters(filters, types, named, a, lim)
	if ref != nil {
		return ref
	}
	var selected string
	if elements != nil {
		selects := types // the types whose lines the list may subset
		if associated != nil && len(types) > 0 && !slices.Contains(types, "Provenance") {
			selects = append(slices.Clip(types), "Provenance") // in files of their own
		}
		if selected, ref = exportElements(*elements, selects, named, a); ref != nil {
			return ref
		}
	}
	out := make([]Param, 0, 4)
	if format {
		out = append(out, Param{Name: "_outputFormat", Value: ndjsonType})
	}
	if since != "" {
		out = append(out, Param{Name: "_since", Value: since})
	}
	if len(types) > 0 {
		out = append(out, Param{Name: "_type", Value: strings.Join(types, ",")})
	}
	// Each type's queries: the client's, each within every scope's
	// constraint for a constrained type (the server ORs a type's queries,
	// and a query ANDs its criteria), or the scopes' alone.
	var sent []string
	for _, t := range exportedTypes(types, asked) {
		own, scoped := asked[t], scopeFilters(a, t)
		switch {
		case len(own) == 0:
			own = scoped
		case len(scoped) > 0:
			var both [][]Param
			for _, o := range own {
				for _, sc := range scoped {
					both = append(both, append(slices.Clip(o), sc...))
				}
			}
			own = both
		}
		for _, q := range own {
			sent = append(sent, t+"?"+encodeQuery(q))
		}
	}
	if len(sent) > maxTypeFilters {
		return refuse(http.StatusBadRequest, "too-costly", "the kick-off asks for more than "+strconv.Itoa(maxTypeFilters)+
			" _typeFilter queries, with those the token's constrained scopes add to each")
	}
	for _, q := range sent {
		out = append(out, Param{Name: "_typeFilter", Value: q})
	}
	if selected != "" {
		out = append(out, Param{Name: "_elements", Value: selected})
	}
	if associated != nil {
		out = append(out, Param{Name: "includeAssociatedData", Value: strings.Join(associated, ",")})
	}
	in.Params = out
	return nil
}

// exportElements checks the client's _elements (Bulk Data: a
// comma-separated list of root elements, each Type.element for one type or
// element for every type) and adds what the proxy reads of each line of a
// type the list selects from: meta (the labels), the references that name
// the record's patient (for the audit event of the download, and the
// compartment), a Provenance's target and a Binary's securityContext (by
// which they are judged), and what a constrained type's constraint reads
// (else every line of it would be left out). Unqualified elements get the
// additions unqualified, for every type exported; a type named only in
// qualified elements gets its own. A type named in no element is left as
// the server answers it.
func exportElements(v string, types []string, named bool, a *access) (string, *refusal) {
	var out []string
	add := func(e string) {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	var qualified []string // the types named in Type.element
	plain := false
	for e := range strings.SplitSeq(v, ",") {
		t, name, dotted := strings.Cut(e, ".")
		if !dotted {
			t, name = "", e
		}
		switch {
		case !rootElement(name) || dotted && !knownType(t):
			return "", refuse(http.StatusBadRequest, "invalid", "_elements names "+strconv.Quote(e)+
				", which is not a root element (element or Type.element; types and elements are case-sensitive)")
		case dotted && named && !slices.Contains(types, t):
			return "", refuse(http.StatusBadRequest, "invalid", "_elements names an element of "+t+", which _type does not name")
		case dotted && (len(types) > 0 && !slices.Contains(types, t) || !searches(a, t)):
			return "", refuse(http.StatusForbidden, "forbidden", "the token's scopes do not allow exporting "+t)
		case dotted && !slices.Contains(qualified, t):
			qualified = append(qualified, t)
		}
		plain = plain || !dotted
		add(e)
	}
	if plain {
		every := types
		if len(every) == 0 { // a wildcard scope's export of every type
			every = slices.Sorted(maps.Keys(compartment))
			every = append(every, "Provenance", "Binary")
		}
		for _, t := range every {
			for _, e := range exportJudged(a, t) {
				add(e)
			}
		}
	}
	for _, t := range qualified {
		for _, e := range exportJudged(a, t) {
			add(t + "." + e)
		}
	}
	return strings.Join(out, ","), nil
}

// exportJudged are the root elements of a line of type t that the proxy
// judges and audits it by (judgedElements, with the references naming its
// patient, whom the download's audit event names), and what a constrained
// type's constraint reads.
func exportJudged(a *access, t string) []string {
	out := judgedElements(t, true)
	if held, _ := searchable(a, t); held != nil {
		out = append(out, held.elements()...)
	}
	return out
}

// rootElement reports whether s is an element name: a lower-case letter,
// then letters and digits.
func rootElement(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' || len(s) > 64 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// maxKickOffPatients bounds the patients a kick-off names (Bulk Data's
// patient parameter); maxJudgedPatients those it names for a clearance
// short of every label, each of which the proxy reads first.
const (
	maxKickOffPatients = 1000
	maxJudgedPatients  = 200
	// patientsPerSearch is how many of them judgePatients reads a search.
	patientsPerSearch = 50
)

// exportBody is what a POSTed kick-off's Parameters body may hold beyond
// primitive values: patient, a Reference.
var exportBody = operation{references: []string{"patient"}}

// exportPatients checks a kick-off's patient references (in.patients,
// from its POSTed body): a kick-off on Patient or a Group, by a token that
// may read Patient (the server's answer to a patient it does not hold, or
// one not in the Group, tells whether it exists), each Patient/id, at most
// maxKickOffPatients (maxJudgedPatients for a clearance short of every
// label, whose patients are read and judged before the kick-off goes:
// judgePatients). Repeated ones are sent once.
func exportPatients(in *Interaction, a *access) *refusal {
	if in.patients == nil {
		return nil
	}
	invalid := func(msg string) *refusal { return refuse(http.StatusBadRequest, "invalid", msg) }
	most := maxKickOffPatients
	if !a.unrestricted {
		most = maxJudgedPatients
	}
	switch {
	case in.Type == "":
		return invalid("patient is not taken by a system-level export; export on Patient or a Group")
	case !a.tok.Scopes.Allows(scopes.Access{Context: a.ctx, Type: "Patient", Perms: scopes.Read}):
		return refuse(http.StatusForbidden, "forbidden", "naming patients needs the r letter on Patient")
	}
	var ids []string
	for _, ref := range in.patients {
		t, id, _ := strings.Cut(ref, "/")
		if t != "Patient" || !validID(id) {
			return invalid("patient " + strconv.Quote(ref) + " is not a reference of the form Patient/id")
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) > most {
		return refuse(http.StatusBadRequest, "too-costly", "a kick-off names at most "+strconv.Itoa(most)+" patients here")
	}
	in.patients = in.patients[:0]
	for _, id := range ids {
		in.patients = append(in.patients, "Patient/"+id)
	}
	return nil
}

// judgePatients reads the patients a kick-off names, 50 a search by _id,
// for a clearance short of every label: one the access may not see answers
// as a missing one does (404), and nothing is sent. The server would tell
// a patient it does not hold from one it does, and the records of a
// withheld patient, judged one by one, might not all carry its labels.
func (p *Proxy) judgePatients(ctx context.Context, refs []string, a *access) *refusal {
	for chunk := range slices.Chunk(refs, patientsPerSearch) {
		ids := make([]string, len(chunk))
		for i, ref := range chunk {
			ids[i] = strings.TrimPrefix(ref, "Patient/")
		}
		st, body, _, err := p.get(ctx, "Patient", encodeQuery([]Param{{Name: "_id", Value: strings.Join(ids, ",")},
			{Name: "_count", Value: strconv.Itoa(len(ids))}}))
		switch {
		case err != nil:
			return refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
		case st != http.StatusOK:
			return refuse(http.StatusBadGateway, "transient", "the FHIR server did not answer a search of Patient by _id ("+strconv.Itoa(st)+")")
		}
		found, withheld := map[string]bool{}, false
		_, _, ok := readSearchPage(body, func(e *bundleEntry) {
			switch {
			case !e.hasRes || e.res.ResourceType == "OperationOutcome":
			case e.res.ResourceType != "Patient" || a.judge(&e.res) != keep:
				withheld = true
			default:
				found[e.res.ID] = true
			}
		})
		switch {
		case !ok:
			return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered a search of Patient by _id with invalid JSON or not a Bundle")
		case withheld:
			return outsideGrant()
		}
		for _, id := range ids {
			if !found[id] {
				return notFound()
			}
		}
	}
	return nil
}

// exportParameters is the Parameters body of a kick-off for named
// patients: its parameters, re-serialised, and each patient's Reference.
func exportParameters(params []Param, patients []string) []byte {
	type value struct {
		Reference string `json:"reference"`
	}
	type parameter struct {
		Name           string `json:"name"`
		ValueString    string `json:"valueString,omitempty"`
		ValueInstant   string `json:"valueInstant,omitempty"`
		ValueReference *value `json:"valueReference,omitempty"`
	}
	out := make([]parameter, 0, len(params)+len(patients))
	for _, prm := range params {
		if prm.Name == "_since" {
			out = append(out, parameter{Name: prm.Name, ValueInstant: prm.Value})
		} else {
			out = append(out, parameter{Name: prm.Name, ValueString: prm.Value})
		}
	}
	for _, ref := range patients {
		out = append(out, parameter{Name: "patient", ValueReference: &value{ref}})
	}
	b, _ := json.Marshal(struct {
		ResourceType string      `json:"resourceType"`
		Parameter    []parameter `json:"parameter"`
	}{"Parameters", out})
	return b
}

// maxTypeFilters bounds the _typeFilter queries a kick-off sends upstream.
const maxTypeFilters = 32

// exportedTypes are the types whose _typeFilter queries go upstream: those
// the kick-off exports, in order, then (where a wildcard scope exports
// every type and none was named) those the client filtered.
func exportedTypes(types []string, asked map[string][][]Param) []string {
	if len(types) > 0 {
		return types
	}
	out := slices.Collect(maps.Keys(asked))
	slices.Sort(out)
	return out
}

// exportFilters reads the client's _typeFilter values (Bulk Data): each a
// FHIR search of one type, Type?criteria; several may be given, repeated or
// in one value separated by commas (Bulk Data 1's form: a comma begins
// another query where Type? follows it, and is otherwise an OR list's). A
// query's type must be one the kick-off exports, and its criteria must be
// what the token could search that type by, as a search's are
// (criteriaCovered; for a clearance short of every label, nothing that
// searches by other records, which the proxy could not judge: chains,
// _has, _list, _filter). Result parameters (_sort, _include, _elements, …)
// are not criteria, and are refused, as Bulk Data has it. The answer maps
// each type to its queries, re-serialised from the parsed form.
func exportFilters(values, types []string, named bool, a *access, lim Limits) (map[string][][]Param, *refusal) {
	invalid := func(msg string) *refusal { return refuse(http.StatusBadRequest, "invalid", msg) }
	asked := map[string][][]Param{}
	for _, v := range values {
		for q := range splitFilters(v) {
			t, raw, ok := strings.Cut(q, "?")
			switch {
			case !ok || raw == "":
				return nil, invalid("a _typeFilter is a search of one type, Type?criteria, not " + strconv.Quote(q))
			case !knownType(t):
				return nil, invalid("_typeFilter names " + strconv.Quote(t) + ", which is not an R4 resource type (types are case-sensitive)")
			case named && !slices.Contains(types, t):
				return nil, invalid("_typeFilter searches " + t + ", which _type does not name")
			case len(types) > 0 && !slices.Contains(types, t), !searches(a, t):
				return nil, refuse(http.StatusForbidden, "forbidden", "the token's scopes do not allow exporting "+t)
			}
			params, err := parseQuery(raw, lim)
			if err != nil {
				return nil, invalid("_typeFilter " + t + ": " + strings.TrimPrefix(err.Error(), "fhirproxy: "))
			}
			for _, prm := range params {
				switch {
				case !criterion(prm.Name):
					return nil, invalid("_typeFilter takes search criteria, not the result parameter " + prm.Name)
				case !a.seesAll() && (searchesOthers(prm.Name) || simpleChain(prm.Name)):
					return nil, refuse(http.StatusForbidden, "forbidden", "_typeFilter parameter "+prm.Name+
						" searches by records the token's clearance may withhold")
				}
			}
			if ref := a.criteriaCovered(&Interaction{Kind: SearchType, Type: t, Params: params}); ref != nil {
				return nil, ref
			}
			asked[t] = append(asked[t], params)
		}
	}
	return asked, nil
}

// splitFilters yields the queries of one _typeFilter value: split at each
// comma that Type? follows.
func splitFilters(v string) iter.Seq[string] {
	return func(yield func(string) bool) {
		start := 0
		for i := 0; i < len(v); i++ {
			if v[i] != ',' {
				continue
			}
			if t, _, ok := strings.Cut(v[i+1:], "?"); ok && knownType(t) {
				if !yield(v[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(v[start:])
	}
}

// followExport turns a request for a signed export link into the
// upstream's own URL it names, for a token of the client and subject it
// was given to, without patient context, that may still read the file's
// type. Nothing else is asked of the status: the job holds what its
// kick-off was allowed.
func (p *Proxy) followExport(in *Interaction, a *access) *refusal {
	use := "job"
	if in.Kind == ExportFile {
		use = "file"
	}
	ref, ok := p.openExport(in.Params[0].Value, use, time.Now())
	if !ok && in.Kind == ExportFile { // the proxy's own notice (deletionsNotice)?
		ref, ok = p.openExport(in.Params[0].Value, "notice", time.Now())
		in.notice = ok
	}
	if !ok || ref.Client != a.tok.ClientID || ref.Subject != audit.Ref(a.tok.Subject) {
		return refuse(http.StatusBadRequest, "invalid", "the export link is not valid for this token (or has expired)")
	}
	if a.patient != "" {
		return refuse(http.StatusForbidden, "forbidden", "a token with patient context cannot follow an export")
	}
	if ref.Deleted && !a.seesAll() {
		return refuse(http.StatusForbidden, "forbidden", "a file of deleted resources goes only to a token that sees every record")
	}
	if in.Kind == ExportFile && ref.Type != "OperationOutcome" && !ref.Deleted {
		held, ok := searchable(a, ref.Type)
		if !ok {
			return refuse(http.StatusForbidden, "forbidden", "the token's scopes do not allow exporting "+ref.Type)
		}
		if held != nil { // each record is held to the constraint (ndjsonFile.judge)
			a.held, a.constrained = held, ref.Type
		}
	}
	in.Type, in.Params, in.pageURL, in.deleted, in.kickOff, in.since = ref.Type, nil, ref.Upstream, ref.Deleted, ref.KickOff, ref.Since
	in.stored = ref.Upstream != "" && ref.Upstream[0] != '/' && ref.Upstream[0] != '?' // (openExport checked it is in ExportStorage)
	return nil
}

// inspectExport answers a step of a bulk export (exporting): the
// kick-off's 202, the status or its manifest, a file.
func (x *exchange) inspectExport(resp *http.Response) (*refusal, error) {
	switch {
	case x.in.Kind == ExportFile:
		return x.exportFile(resp)
	case x.in.Kind == Operation: // the kick-off
		if resp.StatusCode != http.StatusAccepted {
			return refuse(http.StatusBadGateway, "not-supported", "the FHIR server did not accept the export to run asynchronously"), nil
		}
		loc := resp.Header["Content-Location"]
		var rest string
		ok := len(loc) == 1
		if ok {
			rest, ok = x.a.local(loc[0])
		}
		if !ok || rest == "" {
			return refuse(http.StatusBadGateway, "not-supported", "the FHIR server's export status is not on its base, where the proxy can follow it"), nil
		}
		// The kick-off as the client sent it (a GET's query with it), for
		// the manifest's request: the server's names what the proxy sent.
		kickOff := x.in.path()
		if x.req.Method == http.MethodGet && x.req.URL.RawQuery != "" {
			kickOff += "?" + x.req.URL.RawQuery
		}
		resp.Header["Content-Location"] = []string{x.p.exportLink(x.a, exportStatusOp, exportJobParam,
			exportRef{Use: "job", Upstream: rest, KickOff: kickOff, Since: len(values(x.in.Params, "_since")) > 0})}
		x.ev.Reason = "export accepted: its status is followed through the proxy"
		for _, t := range values(x.in.Params, "_type") { // what it exports ("who exported what"); none: every type its scopes allow
			x.ev.Resources = append(x.ev.Resources, strings.Split(t, ",")...)
		}
		for i, ref := range x.in.patients { // the patients it is for, when it names them
			if id := strings.TrimPrefix(ref, "Patient/"); i == 0 {
				x.ev.Patient = id
			} else {
				x.ev.Patients = append(x.ev.Patients, id)
			}
		}
		noBody(resp)
		return nil, nil
	}
	switch { // the status
	case resp.StatusCode == http.StatusOK && x.req.Method == http.MethodGet:
		return x.manifest(resp)
	case resp.StatusCode/100 == 2: // running (202), or cancelled
		noBody(resp)
		if _, says := resp.Header["X-Progress"]; says && !x.a.hearsServer() {
			resp.Header["X-Progress"] = []string{"in progress"} // in place of the server's words (words.go)
		}
		return nil, nil
	}
	return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the export status with "+strconv.Itoa(resp.StatusCode)), nil
}

// manifestFile is one entry of a manifest's output, error or deleted array.
type manifestFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count *int64 `json:"count,omitempty"`
}

// manifest rewrites a finished export's manifest for the token (see "Bulk
// export" in the package documentation): rebuilt from the members it
// knows, each file's URL a link of the proxy's.
func (x *exchange) manifest(resp *http.Response) (*refusal, error) {
	body, err := x.readBody(resp, x.p.Limits.resp())
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	invalid := refuse(http.StatusBadGateway, "invalid", "the FHIR server's export manifest is not one the proxy can read")
	elsewhere := refuse(http.StatusBadGateway, "not-supported", "the FHIR server's export files are neither on its base nor in the export storage the proxy is given (Proxy.ExportStorage), where it can read and judge them")
	if int64(len(body)) > x.p.Limits.resp() || !jsonMediaType(header(resp.Header, "Content-Type")) || jsonstrict.Check(body) != nil {
		return invalid, nil
	}
	var m struct {
		TransactionTime string         `json:"transactionTime"`
		Request         string         `json:"request"`
		Output          []manifestFile `json:"output"`
		Error           []manifestFile `json:"error"`
		Deleted         []manifestFile `json:"deleted"`
	}
	if json.Unmarshal(body, &m) != nil || m.TransactionTime == "" {
		return invalid, nil
	}
	a := x.a
	relink := func(f manifestFile, typ string) (manifestFile, bool) {
		rest, ok := a.local(f.URL)
		switch {
		case ok && rest != "":
		case x.p.inStorage(f.URL): // followed there (Proxy.ExportStorage), the URL sealed in the link
			rest = f.URL
		default:
			return f, false
		}
		f.URL = x.p.exportLink(a, exportFileOp, exportFileParam, exportRef{Use: "file", Type: typ, Deleted: typ == "Bundle", Upstream: rest})
		if !a.seesAll() {
			f.Count = nil
		}
		return f, true
	}
	out := struct {
		TransactionTime     string         `json:"transactionTime"`
		Request             string         `json:"request"`
		RequiresAccessToken bool           `json:"requiresAccessToken"`
		Output              []manifestFile `json:"output"`
		Error               []manifestFile `json:"error"`
		Deleted             []manifestFile `json:"deleted,omitempty"`
	}{TransactionTime: m.TransactionTime, Request: m.Request, RequiresAccessToken: true, Output: []manifestFile{}, Error: []manifestFile{}}
	// The request is the kick-off as the client sent it, on the proxy's
	// base (Bulk Data: "the full URL of the original Bulk Data kick-off
	// request", a POST's without its parameters): the server's names what
	// the proxy sent, with the types, filters and elements it added, and
	// its address elsewhere is not the client's to know.
	out.Request = x.p.publicBase(a) + x.in.kickOff
	left := 0
	for _, f := range m.Output {
		if !knownType(f.Type) {
			return invalid, nil
		}
		held, ok := searchable(a, f.Type)
		if !ok {
			left++
			continue
		}
		moved, ok := relink(f, f.Type)
		if !ok {
			return elsewhere, nil
		}
		if held != nil {
			moved.Count = nil // the records that do not match are left out
		}
		out.Output = append(out.Output, moved)
	}
	for _, f := range m.Error {
		moved, ok := relink(f, "OperationOutcome")
		if !ok {
			return elsewhere, nil
		}
		moved.Type = "OperationOutcome"
		out.Error = append(out.Error, moved)
	}
	x.ev.Reason = "export manifest: " + strconv.Itoa(len(out.Output)) + " files, through the proxy"
	if left > 0 {
		x.ev.Reason += "; " + strconv.Itoa(left) + " of types the token may not read left out"
	}
	// A deleted record's labels are gone with it: its files (whose lines
	// name records by id) go only to a token that sees every record.
	switch {
	case len(m.Deleted) > 0 && a.seesAll():
		for _, f := range m.Deleted {
			moved, ok := relink(f, "Bundle")
			if !ok {
				return elsewhere, nil
			}
			moved.Type, moved.Count = "Bundle", nil
			out.Deleted = append(out.Deleted, moved)
		}
	case len(m.Deleted) > 0:
		x.ev.Reason += "; files of deleted resources not relayed (only a token that sees every record gets them)"
	}
	// An incremental export's client is told, whether or not the server
	// listed deletions (which would tell it that something was deleted):
	// a copy it keeps may hold records deleted since.
	if x.in.since && !a.seesAll() {
		out.Error = append(out.Error, manifestFile{Type: "OperationOutcome",
			URL: x.p.exportLink(a, exportFileOp, exportFileParam, exportRef{Use: "notice", Type: "OperationOutcome"})})
	}
	b, _ := json.Marshal(out)
	x.sent.Reset(b)
	resp.Body, resp.ContentLength = &x.sent, int64(len(b))
	resp.Header["Content-Length"] = []string{strconv.Itoa(len(b))}
	resp.Header["Content-Type"] = []string{"application/json"}
	return nil, nil
}

// storedAs reports whether a file in object storage is served as the
// bytes it holds, which storage services do for a file written without a
// media type: read as NDJSON all the same, line by line.
func storedAs(ct string) bool { return ct == "" || mediaTypeOf(ct, "application/octet-stream") }

// deletionsNotice is the file the manifest of an incremental export (with
// _since) lists among its errors for a token that does not see every
// record: the proxy's own, answered without the server (Proxy.forward).
var deletionsNotice = []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"suppressed","diagnostics":` +
	`"Deleted resources are not relayed to this token: its clearance is short of every label, and a deleted record's labels ` +
	`are gone with it. A client that keeps a copy of earlier exports should reconcile it with a full export."}]}` + "\n")

// exportFile replaces a file's body with the judged stream of its lines.
// The event is recorded by the caller before anything is sent; a second
// one follows when the file ends, naming the patients disclosed.
func (x *exchange) exportFile(resp *http.Response) (*refusal, error) {
	p := x.p
	switch {
	case resp.StatusCode != http.StatusOK:
		return refuse(http.StatusBadGateway, "invalid", "the FHIR server answered the export file with "+strconv.Itoa(resp.StatusCode)), nil
	case !mediaTypeOf(header(resp.Header, "Content-Type"), ndjsonType, "application/ndjson", "application/x-ndjson") &&
		!(x.in.stored && storedAs(header(resp.Header, "Content-Type"))):
		return refuse(http.StatusBadGateway, "not-supported", "the FHIR server answered the export file in a format the proxy cannot inspect"), nil
	case header(resp.Header, "Content-Encoding") != "":
		return refuse(http.StatusBadGateway, "not-supported", "the FHIR server answered compressed"), nil
	}
	ctx := resp.Request.Context()
	x.ev.Reason = "export file streamed: each resource judged as it passes"
	first := x.ev
	own := *x.a // the goroutine outlives the exchange, whose access is reused
	own.owners = maps.Clone(own.owners)
	p.readTargets(ctx, &own)
	own.targets.most = maxExportTargetReads
	after := first
	f := ndjsonFile{a: &own, typ: x.in.Type, deleted: x.in.deleted, d: disclosure{ev: &after, a: &own, most: maxExportPatients}}
	if p.Transform != nil && !x.in.deleted && x.in.Type != "OperationOutcome" {
		in := x.in
		f.transform = func(line []byte) ([]byte, error) {
			out, err := p.Transform(ctx, own.tok, in, line)
			if err != nil {
				p.logger().ErrorContext(ctx, "fhirproxy: Transform failed on an export file's line", "err", err)
			}
			return out, err
		}
	}
	p.pipeBody(ctx, resp, []string{ndjsonType}, func(upstream io.Reader, w io.Writer) error {
		f.w = bufio.NewWriterSize(w, 32<<10)
		return f.run(upstream, int(min(p.Limits.resp(), 1<<30)))
	}, func(err error, _ bool) *audit.Event {
		after.Labels = f.labels
		counts := strconv.Itoa(f.sent) + " resources sent, " + strconv.Itoa(f.removed) + " left out"
		switch {
		case errors.Is(err, io.ErrClosedPipe):
			after.Reason = "export file: the client stopped reading (" + counts + ")"
		case err != nil:
			after.Type, after.Outcome = audit.ResourceRefused, audit.Failure
			// (what was judged to go may not have reached the client: nothing
			// may have, not even the status, when the first line broke)
			after.Reason = "export file cut: " + ndjsonFailure(err) + " (" + strconv.Itoa(f.sent) + " resources judged to go before it, " +
				strconv.Itoa(f.removed) + " left out)"
		default:
			after.Reason = "export file sent (" + counts + ")"
		}
		if f.d.capped {
			after.Reason += "; the first " + strconv.Itoa(maxExportPatients) + " patients disclosed are named"
		}
		return &after
	})
	return nil, nil
}

// errNotNDJSON: a line of an export file is not one JSON resource.
var errNotNDJSON = errors.New("fhirproxy: an export file's line is not one JSON resource")

// errTransform: the host's Transform failed on, or made other than one
// JSON resource of, a line of an export file.
var errTransform = errors.New("fhirproxy: the host's Transform failed on an export file's line")

func ndjsonFailure(err error) string {
	switch {
	case errors.Is(err, bufio.ErrTooLong):
		return "a resource is larger than the proxy holds"
	case errors.Is(err, errNotNDJSON):
		return "the FHIR server sent a line that is not one JSON resource"
	case errors.Is(err, errTransform):
		return "the host's Transform failed on a resource"
	}
	return "the FHIR server's response failed"
}

// ndjsonFile judges the lines of one export file as they pass.
type ndjsonFile struct {
	a             *access
	typ           string // the file's type: every line must be one
	deleted       bool   // a file of deleted resources: Bundles of DELETE entries
	w             *bufio.Writer
	d             disclosure
	labels        []string
	sent, removed int
	// transform is the host's Transform for each line kept, as for any
	// answer that carries resources (nil: none, or an error or deletions
	// file, which carries none).
	transform func(line []byte) ([]byte, error)
	compact   bytes.Buffer
}

func (f *ndjsonFile) run(r io.Reader, limit int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), limit)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var pr projection
		s := jsonstrict.NewScanner(line)
		if err := pr.decode(s, nil, nil); err != nil || s.End() != nil {
			return errNotNDJSON
		}
		if f.judge(&pr, line) != keep {
			f.removed++
			continue
		}
		if f.typ == "OperationOutcome" && !f.a.hearsServer() {
			line = withheldOutcome(line, true) // the server's words (words.go)
		}
		if f.transform != nil {
			// After the proxy's own judgement, as for any answer; the line
			// it makes must be one JSON object, written on one line.
			out, err := f.transform(bytes.Clone(line))
			f.compact.Reset()
			if err != nil || jsonstrict.Check(out) != nil || json.Compact(&f.compact, out) != nil || f.compact.Len() == 0 || f.compact.Bytes()[0] != '{' {
				return errTransform
			}
			line = f.compact.Bytes()
		}
		if _, err := f.w.Write(line); err != nil {
			return err // the client has gone
		}
		_ = f.w.WriteByte('\n')
		f.sent++
		f.labels = addLabels(f.labels, &pr)
		f.d.add(&pr)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return f.w.Flush()
}

// judge keeps a line of the file's type that the access may see as any
// Bundle entry (a bound one as its records allow) and, for a type exported
// through constrained scopes, that matches their constraint (access.held);
// an error file's OperationOutcomes are the server's own (their words
// withheld from an access that does not hear them).
func (f *ndjsonFile) judge(pr *projection, line []byte) verdict {
	switch {
	case pr.ResourceType != f.typ:
		return drop
	case f.deleted:
		return f.deletions(line)
	case f.typ == "OperationOutcome":
		return keep
	case f.a.held != nil && !f.a.held.matches(line):
		return drop
	}
	v := f.a.judge(pr)
	if v == needsContext {
		v = f.a.targets.judge(f.a, pr)
	}
	return v
}

// deletions keeps a line of a file of deleted resources that is a Bundle
// whose entries are each a DELETE of Type/id (no resource), of a type the
// token exports with no constraint (the file goes only to a token that sees
// every record: followExport). Member names are read as they are.
func (f *ndjsonFile) deletions(line []byte) verdict {
	var b map[string]any
	if json.Unmarshal(line, &b) != nil {
		return drop
	}
	entries, _ := b["entry"].([]any)
	if len(entries) == 0 {
		return drop
	}
	for _, e := range entries {
		e, _ := e.(map[string]any)
		req, _ := e["request"].(map[string]any)
		url, _ := req["url"].(string)
		typ, id, _ := strings.Cut(url, "/")
		if len(e) != 1 || len(req) != 2 || req["method"] != "DELETE" || !knownType(typ) || !validID(id) {
			return drop
		}
		if held, ok := searchable(f.a, typ); !ok || held != nil {
			return drop
		}
	}
	return keep
}
