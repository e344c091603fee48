package fhirproxy

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	dtpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/smartkit/smartkit/internal/r4"
)

// admitsPatient reports whether a Reference element may name a Patient,
// by the model's valid reference types (none recorded: any).
func admitsPatient(fd protoreflect.FieldDescriptor) bool {
	types, _ := proto.GetExtension(fd.Options(), annotations_go_proto.E_ValidReferenceType).([]string)
	return len(types) == 0 || slices.Contains(types, "Patient") || slices.Contains(types, "Resource")
}

// mayBePatient reports whether a reference may be to a Patient: it names
// one, or its type says Patient, or nothing names another type (no type,
// and no literal reference, or only an absolute URL or a contained one).
func mayBePatient(r *dtpb.Reference) bool {
	if r.GetPatientId() != nil {
		return true
	}
	if t := r.GetType().GetValue(); t != "" {
		return t == "Patient" || t == "http://hl7.org/fhir/StructureDefinition/Patient"
	}
	switch r.GetReference().(type) {
	case nil, *dtpb.Reference_Uri, *dtpb.Reference_Fragment, *dtpb.Reference_ResourceId:
		return true
	}
	return false
}

// checkOwnIdentifiers allows the logical references, new in a write with
// patient context, that are to the patient itself: each has no literal
// reference or Patient/<patient>'s, and an identifier (system and value)
// the patient's own Patient record holds, as read from the FHIR server
// now. An EHR-launched app may write the patient's record number beside
// the reference, as the EHR itself does. Any other identifier could be
// another patient's, and is refused; so is any when the access may not
// read the patient's record (the answer would tell which identifiers it
// holds).
func (p *Proxy) checkOwnIdentifiers(ctx context.Context, a *access, refs []*dtpb.Reference) *refusal {
	refused := refuse(http.StatusForbidden, "forbidden", "with patient context a reference to a patient is by its id alone, or carries "+
		"an identifier the patient's own record holds: another identifier in it (a logical reference) could be another patient's")
	want := make([][2]string, 0, len(refs))
	for _, r := range refs {
		id, ok := ownIdentifier(r, a.patient)
		if !ok {
			return refused
		}
		want = append(want, id)
	}
	if !a.readable("Patient") {
		return refused
	}
	key := "identifiers\x00" + string(a.ctx) + "\x00" + a.patient
	held := a.entries.identifiers(key)
	if held == nil {
		if !a.entries.spend() {
			return tooManyReads()
		}
		ref := "Patient/" + a.patient
		st, pr, body, err := p.fetch(ctx, ref, "")
		if err != nil {
			return refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
		}
		if st != http.StatusOK || pr.ResourceType+"/"+pr.ID != ref {
			return refused
		}
		if a.judge(pr) != keep { // the patient's, readable, within the clearance
			return refused
		}
		if held, err = patientIdentifiers(body); err != nil {
			return refused
		}
		a.entries.keepIdentifiers(key, held)
	}
	for _, id := range want {
		if !held[id] {
			return refused
		}
	}
	return nil
}

// ownIdentifier is the identifier (system and value) of a logical
// reference in the form one to the in-context patient itself may take:
// its literal reference, if any, is Patient/<patient> (no other form, no
// version), and its identifier has a system and a value. ok is false for
// any other form.
func ownIdentifier(r *dtpb.Reference, patient string) (id [2]string, ok bool) {
	switch ref := r.GetReference().(type) {
	case nil:
	case *dtpb.Reference_PatientId:
		if ref.PatientId.GetValue() != patient || ref.PatientId.GetHistory() != nil {
			return id, false
		}
	default:
		return id, false
	}
	id = [2]string{r.GetIdentifier().GetSystem().GetValue(), r.GetIdentifier().GetValue().GetValue()}
	return id, id[0] != "" && id[1] != ""
}

// patientIdentifiers are the identifiers (system and value) a stored
// Patient holds.
func patientIdentifiers(stored []byte) (map[[2]string]bool, error) {
	m, err := r4.Parse(stored)
	if err != nil {
		return nil, err
	}
	ids := map[[2]string]bool{}
	for _, id := range m.GetPatient().GetIdentifier() {
		if sys, v := id.GetSystem().GetValue(), id.GetValue().GetValue(); sys != "" && v != "" {
			ids[[2]string{sys, v}] = true
		}
	}
	return ids, nil
}

// logicalRecordRef is a logical reference (one carrying an identifier)
// that cannot be to a patient: the type it names, if anything says (its
// type, its literal reference's type, or the one type its element
// admits), and whether its element may name a record of a compartment
// type when nothing says.
type logicalRecordRef struct {
	ref              *dtpb.Reference
	typ              string
	maybeCompartment bool
}

// recordRef reads what a logical reference in the element fd names.
func recordRef(fd protoreflect.FieldDescriptor, r *dtpb.Reference) logicalRecordRef {
	types, _ := proto.GetExtension(fd.Options(), annotations_go_proto.E_ValidReferenceType).([]string)
	l := logicalRecordRef{ref: r}
	switch t := r.GetType().GetValue(); {
	case t != "":
		l.typ = strings.TrimPrefix(t, "http://hl7.org/fhir/StructureDefinition/")
	case literalType(r) != "":
		l.typ = literalType(r)
	case len(types) == 1 && types[0] != "Resource":
		l.typ = types[0]
	}
	l.maybeCompartment = len(types) == 0 || slices.ContainsFunc(types, func(t string) bool {
		return namedByIdentifier(t) || t == "Resource"
	})
	return l
}

// literalType is the resource type a reference's literal reference names
// (Encounter for Encounter/e1), or "".
func literalType(r *dtpb.Reference) string {
	m := r.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("reference"))
	if fd == nil {
		return ""
	}
	name, ok := strings.CutSuffix(string(fd.Name()), "_id")
	if !ok || name == "resource" {
		return ""
	}
	var b strings.Builder
	for part := range strings.SplitSeq(name, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	if !knownType(b.String()) {
		return ""
	}
	return b.String()
}

// namedByIdentifier reports whether a logical reference to a record of
// type typ must name the patient's records (checkLogicalRecords): the
// compartment's types but Device, which a write may name by its serial
// number or UDI wherever it is (an app's own reader may be on no server,
// and a device is not another patient's record the way a visit is).
func namedByIdentifier(typ string) bool {
	_, ok := compartment[typ]
	return ok && typ != "Device"
}

// maxLogicalMatches is how many records an identifier in a logical
// reference may name on this server (it names one record, as a rule), and
// logicalPages how many pages of their search the proxy reads.
const maxLogicalMatches, logicalPages = 10, 3

// checkLogicalRecords checks the logical references to records other than
// patients, new in a write with patient context (writtenRefs.recordRefs).
// One to a record of the compartment's types (an Observation's encounter
// by its visit number) places the record under whatever a search by that
// identifier finds (encounter:identifier): named by another patient's
// encounter's number, it would be filed under that patient's visit. So
// its identifier (system and value) must name, on this server, records
// the access may see, all the patient's, at least one; a search finds
// them with the proxy's credential. Another patient's record, a withheld
// one and none are refused alike (403), or the answer would tell which
// identifiers other patients' records carry. A reference whose type
// nothing names, in an element that may name a record of a compartment
// type, is refused; one to another type (a Practitioner by its NPI) goes.
// Each identifier is searched once, and a write may name at most
// maxReferencedRecords records by identifier, as by reference.
func (p *Proxy) checkLogicalRecords(ctx context.Context, a *access, refs []logicalRecordRef) *refusal {
	refused := func(what string) *refusal {
		return refuse(http.StatusForbidden, "forbidden", "with patient context a reference's identifier must name this patient's records on this server; "+what)
	}
	type search struct{ typ, sys, val, key string }
	var todo []search
	for _, l := range refs {
		if l.typ == "" {
			if l.maybeCompartment {
				return refused("this one does not say the type of record it names (set its type)")
			}
			continue
		}
		if !namedByIdentifier(l.typ) {
			continue
		}
		sys, val := l.ref.GetIdentifier().GetSystem().GetValue(), l.ref.GetIdentifier().GetValue().GetValue()
		if sys == "" || val == "" || !a.readable(l.typ) {
			return refused("this one's is not a system and value of records the token may read")
		}
		key := "logical\x00" + string(a.ctx) + "\x00" + a.patient + "\x00" + l.typ + "\x00" + sys + "|" + val
		if a.entries != nil && a.entries.seen[key] || slices.ContainsFunc(todo, func(s search) bool { return s.key == key }) {
			continue
		}
		todo = append(todo, search{l.typ, sys, val, key})
	}
	if len(todo) > maxReferencedRecords { // each is a search
		return refuse(http.StatusBadRequest, "too-costly", "a record written here may name at most "+itoa(maxReferencedRecords)+" records by identifier (each is checked)")
	}
	for _, l := range todo {
		notMine := refused("this one's names a " + l.typ + " that is not one the token may see of this patient's, or none")
		// Pages as large as a chain's (chainLimit): one holds them all.
		query := "identifier=" + url.QueryEscape(tokenEscape(l.sys)+"|"+tokenEscape(l.val)) + "&_count=" + strconv.Itoa(chainLimit+1)
		found, mine := 0, true
		for page, n := p.upstreamURL(l.typ, query), 0; page != ""; n++ {
			// A server may link a next page that holds nothing more; past
			// a few pages the identifier names too many records anyway.
			own := false
			if page, own = p.ownPage(page); n == logicalPages || !own {
				return notMine
			}
			if !a.entries.spend() {
				return tooManyReads()
			}
			st, body, _, err := p.getURL(ctx, page)
			if err != nil {
				return refuse(http.StatusBadGateway, "transient", "the FHIR server is unavailable")
			}
			next, more, ok := readSearchPage(body, func(e *bundleEntry) {
				if !e.hasRes || e.notMatch || e.res.ResourceType != l.typ {
					return
				}
				found++
				mine = mine && e.res.inCompartment(a) && a.judgeEntry(e, body[e.resStart:e.resEnd]) == keep
			})
			if st != http.StatusOK || !ok || more && next == "" || found > maxLogicalMatches {
				return notMine
			}
			page = next
		}
		if found == 0 || !mine {
			return notMine
		}
		if a.entries != nil {
			a.entries.seen[l.key] = true
		}
	}
	return nil
}

// tokenEscape escapes a token search's system or code as FHIR search
// escapes them: a backslash before a backslash, |, a comma and $.
var tokenEscape = strings.NewReplacer(`\`, `\\`, `|`, `\|`, `,`, `\,`, `$`, `\$`).Replace
