package fhirproxy

import (
	"strings"

	dtpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// writtenRefs is what the reference and identity checks of a write read
// from a resource typed by validR4, anywhere in it (contained resources
// and extensions too), in one walk (readWrittenRefs); the stored version's
// are read the same way, once, and what it holds as it is may be written
// again (since).
type writtenRefs struct {
	// patientRefs are the references that may be to a patient and carry an
	// identifier (logical references). A patient app's Observation whose
	// subject is Patient/p1 with another patient's record number as its
	// identifier is in p1's compartment, and a search by
	// subject:identifier finds it as that other patient's: a record placed
	// in a chart it was not written for. The proxy cannot tell whose an
	// identifier is, so with patient context a reference to a patient is
	// by its id alone, or to the patient itself by an identifier its
	// record holds (checkOwnIdentifiers). A reference may be to a patient
	// where its element admits Patient (admitsPatient) and it does not name
	// another type (mayBePatient). A contained resource the proxy cannot
	// read counts as one with an empty identifier.
	patientRefs []*dtpb.Reference
	// recordRefs are the other logical references (checkLogicalRecords).
	recordRefs []logicalRecordRef
	// containedPatients are the contained Patients, each deterministically
	// encoded. With patient context the record is the patient's: a Patient
	// inside it is another person's record (a performer, say, with that
	// person's name and record number) filed in this patient's chart, which
	// servers that index contained resources find by a search on that
	// person's identifiers.
	containedPatients []string
	// urls are the attachments' urls that may name a record on this server
	// (mayNameRecord): a DocumentReference's content, a Media's, a
	// Patient's photo. A viewer fetches the document from its url, so one
	// naming another patient's Binary would show that patient's document
	// as this record's; and a write that passes when it names a record and
	// fails when it names none would tell that the record exists. So
	// checkReferencedRecords reads them as references. A contained
	// resource the proxy cannot read counts as an odd url.
	urls []string
}

// readWrittenRefs reads a typed resource's writtenRefs.
func readWrittenRefs(m protoreflect.Message) writtenRefs {
	var w writtenRefs
	walk(m, func(fd protoreflect.FieldDescriptor, sub protoreflect.Message) bool {
		switch x := sub.Interface().(type) {
		case *anypb.Any: // walk unpacks every other: one it could not (unreadable) counts in every check
			w.patientRefs = append(w.patientRefs, &dtpb.Reference{Identifier: &dtpb.Identifier{}})
			w.urls = append(w.urls, "\x00unreadable")
			return false
		case *dtpb.Reference:
			switch {
			case x.GetIdentifier() == nil:
			case admitsPatient(fd) && mayBePatient(x):
				w.patientRefs = append(w.patientRefs, x)
			default:
				w.recordRefs = append(w.recordRefs, recordRef(fd, x))
			}
			return false
		case *dtpb.Attachment:
			if u := x.GetUrl().GetValue(); u != "" && mayNameRecord(u) {
				w.urls = append(w.urls, u)
			}
			return false
		case *rpb.ContainedResource:
			// A contained resource is a ContainedResource in an Any in a
			// contained field (walk unpacks it).
			if fd.Name() == "contained" && x.GetPatient() != nil {
				w.containedPatients = append(w.containedPatients, logicalRefKey(x.GetPatient()))
			}
		}
		return true
	})
	return w
}

// since is what w holds that stored (the stored version's) does not hold
// as it is: what an update or patch writes anew. An app that sends back
// the record it read writes nothing anew.
func (w writtenRefs) since(stored writtenRefs) writtenRefs {
	had := map[string]bool{}
	for _, r := range stored.patientRefs {
		had[logicalRefKey(r)] = true
	}
	for _, l := range stored.recordRefs {
		had[logicalRefKey(l.ref)] = true
	}
	for _, k := range stored.containedPatients {
		had["contained\x00"+k] = true
	}
	for _, u := range stored.urls {
		had["url\x00"+u] = true
	}
	return writtenRefs{
		patientRefs:       deleteHad(w.patientRefs, func(r *dtpb.Reference) string { return logicalRefKey(r) }, had),
		recordRefs:        deleteHad(w.recordRefs, func(l logicalRecordRef) string { return logicalRefKey(l.ref) }, had),
		containedPatients: deleteHad(w.containedPatients, func(k string) string { return "contained\x00" + k }, had),
		urls:              deleteHad(w.urls, func(u string) string { return "url\x00" + u }, had),
	}
}

// deleteHad is list without the items whose key had holds.
func deleteHad[T any](list []T, key func(T) string, had map[string]bool) []T {
	var out []T
	for _, v := range list {
		if !had[key(v)] {
			out = append(out, v)
		}
	}
	return out
}

// anyIdentity reports whether w holds anything the patient-context
// identity checks read.
func (w writtenRefs) anyIdentity() bool {
	return len(w.patientRefs) > 0 || len(w.recordRefs) > 0 || len(w.containedPatients) > 0
}

// mayNameRecord reports whether an attachment's url may name a record on
// this server: it is relative, absolute with an authority, or a urn. One
// with a scheme but no authority (cid:, mailto:, data:) names nothing here.
func mayNameRecord(u string) bool {
	scheme, _, ok := strings.Cut(u, ":")
	return !ok || scheme == "" || strings.ContainsAny(scheme, "/?#") || strings.EqualFold(scheme, "urn") || strings.Contains(u, "://")
}

// logicalRefKey is a reference (or a contained resource) as compared with
// the stored version's: its whole content, deterministically encoded.
func logicalRefKey(m proto.Message) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	return string(b)
}
