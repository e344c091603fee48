package fhirproxy

import (
	"context"
	"net/http"
	"slices"

	"github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	dtpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/smartkit/smartkit/internal/r4"
)

// logicalPatientRefs calls found with each reference in a resource (typed
// by validR4) that may be to a patient and carries an identifier (a
// logical reference), anywhere in it, contained resources and extensions
// too, and with an empty one for a contained resource it cannot read. A
// patient app's Observation whose subject is Patient/p1 with another
// patient's record number as its identifier is in p1's compartment, and a
// search by subject:identifier finds it as that other patient's: a record
// placed in a chart it was not written for. The proxy cannot tell whose
// an identifier is, so with patient context a reference to a patient is
// by its id alone (checkReferences), but for one the stored version holds
// as it is and one to the patient itself by an identifier its record
// holds (checkOwnIdentifiers).
//
// A reference may be to a patient where its element admits Patient (the
// model's valid reference types name Patient, or any Resource; an
// extension's value admits anything) and it does not name another type:
// it names a Patient, or its type says Patient, or it has no type and no
// reference to another type (an identifier alone, an absolute URL, a
// contained one). A Practitioner's NPI, or a device's serial number where
// only devices are admitted, may go.
func logicalPatientRefs(m protoreflect.Message, found func(*dtpb.Reference)) {
	walk(m, func(fd protoreflect.FieldDescriptor, sub protoreflect.Message) bool {
		if sub.Interface() == unreadable {
			found(&dtpb.Reference{Identifier: &dtpb.Identifier{}}) // what the proxy cannot read counts
			return false
		}
		r, ok := sub.Interface().(*dtpb.Reference)
		if ok && r.GetIdentifier() != nil && admitsPatient(fd) && mayBePatient(r) {
			found(r)
		}
		return !ok
	})
}

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

// logicalRefKey is a logical reference as compared with the stored
// version's: its whole content, deterministically encoded.
func logicalRefKey(r *dtpb.Reference) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	return string(b)
}

// newLogicalPatientRefs returns the logical references that may be to a
// patient (logicalPatientRefs) the written resource holds and the stored
// version (nil for a create) does not hold as they are.
func newLogicalPatientRefs(written proto.Message, stored []byte) []*dtpb.Reference {
	var had map[string]bool
	var fresh []*dtpb.Reference
	logicalPatientRefs(written.ProtoReflect(), func(r *dtpb.Reference) {
		if had == nil {
			had = map[string]bool{}
			if stored != nil {
				if prev, err := r4.Parse(stored); err == nil {
					logicalPatientRefs(prev.ProtoReflect(), func(r *dtpb.Reference) { had[logicalRefKey(r)] = true })
				}
			}
		}
		if !had[logicalRefKey(r)] {
			fresh = append(fresh, r)
		}
	})
	return fresh
}

// newContainedPatient reports whether the written resource contains a
// Patient (anywhere in it) that the stored version (nil for a create) does
// not contain as it is. With patient context the record is the patient's:
// a Patient inside it is another person's record (a performer, say, with
// that person's name and record number) filed in this patient's chart,
// which servers that index contained resources find by a search on that
// person's identifiers. An EHR-written one may be sent back as read.
func newContainedPatient(written proto.Message, stored []byte) bool {
	contained := func(m proto.Message) map[string]bool {
		found := map[string]bool{}
		walk(m.ProtoReflect(), func(fd protoreflect.FieldDescriptor, sub protoreflect.Message) bool {
			// A contained resource is a ContainedResource in an Any in a
			// contained field (walk unpacks it).
			if c, ok := sub.Interface().(*rpb.ContainedResource); ok && fd.Name() == "contained" && c.GetPatient() != nil {
				b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c.GetPatient())
				found[string(b)] = true
			}
			return true
		})
		return found
	}
	fresh := contained(written)
	if len(fresh) == 0 {
		return false
	}
	var had map[string]bool
	if stored != nil {
		if prev, err := r4.Parse(stored); err == nil {
			had = contained(prev)
		}
	}
	for k := range fresh {
		if !had[k] {
			return true
		}
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
		if conf, tags := pr.labels(); !a.clearance.Allows(conf, tags) || a.judge(pr) != keep {
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
