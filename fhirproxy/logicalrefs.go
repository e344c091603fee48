package fhirproxy

import (
	"slices"

	"github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	dtpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/smartkit/smartkit/internal/r4"
)

// logicalPatientRefs calls found with each reference in a resource (typed
// by validR4) that may be to a patient and carries an identifier (a
// logical reference), anywhere in it, contained resources and extensions
// too, until found returns false. A patient app's Observation whose
// subject is Patient/p1 with another patient's record number as its
// identifier is in p1's compartment, and a search by subject:identifier
// finds it as that other patient's: a record placed in a chart it was not
// written for. The proxy cannot tell whose an identifier is, so with
// patient context a reference to a patient is by its id alone
// (checkReferences), but for one the stored version holds as it is.
//
// A reference may be to a patient where its element admits Patient (the
// model's valid reference types name Patient, or any Resource; an
// extension's value admits anything) and it does not name another type:
// it names a Patient, or its type says Patient, or it has no type and no
// reference to another type (an identifier alone, an absolute URL, a
// contained one). A Practitioner's NPI, or a device's serial number where
// only devices are admitted, may go.
func logicalPatientRefs(m protoreflect.Message, found func(*dtpb.Reference) bool) bool {
	if a, ok := m.Interface().(*anypb.Any); ok { // a contained resource
		inner, err := a.UnmarshalNew()
		if err != nil {
			return found(&dtpb.Reference{Identifier: &dtpb.Identifier{}}) // one the proxy cannot read counts
		}
		return logicalPatientRefs(inner.ProtoReflect(), found)
	}
	more := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		visit := func(sub protoreflect.Message) {
			if r, ok := sub.Interface().(*dtpb.Reference); ok {
				if r.GetIdentifier() != nil && admitsPatient(fd) && mayBePatient(r) {
					more = found(r)
				}
				return
			}
			more = logicalPatientRefs(sub, found)
		}
		if fd.IsList() {
			for i, l := 0, v.List(); i < l.Len() && more; i++ {
				visit(l.Get(i).Message())
			}
		} else {
			visit(v.Message())
		}
		return more
	})
	return more
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

// newLogicalPatientRef reports whether the written resource holds a
// logical reference that may be to a patient (logicalPatientRefs) that the
// stored version (nil for a create) does not hold as it is.
func newLogicalPatientRef(written proto.Message, stored []byte) bool {
	var had map[string]bool
	fresh := false
	logicalPatientRefs(written.ProtoReflect(), func(r *dtpb.Reference) bool {
		if had == nil {
			had = map[string]bool{}
			if stored != nil {
				if prev, err := r4.Parse(stored); err == nil {
					logicalPatientRefs(prev.ProtoReflect(), func(r *dtpb.Reference) bool { had[logicalRefKey(r)] = true; return true })
				}
			}
		}
		fresh = !had[logicalRefKey(r)]
		return !fresh
	})
	return fresh
}
