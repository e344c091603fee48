package fhirproxy

import (
	"net/http"
	"strings"

	dtpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/smartkit/smartkit/internal/r4"
)

// A resource the proxy forwards as a write (create, update, a batch
// entry's resource) must be valid against the R4 base specification
// (internal/r4, google/fhir/go's parser), checked off the read path after
// the checks that matter to security (so their refusals keep their codes),
// and refused with 400 and the path of the first problem, never forwarded.

// validR4 returns the resource, typed, or the refusal for one that is not
// valid R4. The reason names a path and a rule, not the content.
func validR4(body []byte) (proto.Message, *refusal) {
	m, err := r4.Parse(body)
	if err == nil {
		return m, nil
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return nil, refuse(http.StatusBadRequest, "invalid", "the resource is not valid FHIR R4: "+strings.ToValidUTF8(msg, ""))
}

// logicalPatientRef reports whether a resource (typed by validR4) holds a
// reference that may be to a patient and carries an identifier (a logical
// reference), anywhere in it, contained resources too. A patient app's
// Observation whose subject is Patient/p1 with another patient's record
// number as its identifier is in p1's compartment, and a search by
// subject:identifier finds it as that other patient's: a record placed in
// a chart it was not written for. The proxy cannot tell whose an
// identifier is, so with patient context a reference to a patient is by
// its id alone (checkContent). A reference whose type or literal target is
// another type (a Practitioner with its NPI) may carry one.
func logicalPatientRef(m protoreflect.Message) bool {
	if r, ok := m.Interface().(*dtpb.Reference); ok {
		return r.GetIdentifier() != nil && mayBePatient(r)
	}
	if a, ok := m.Interface().(*anypb.Any); ok { // a contained resource
		inner, err := a.UnmarshalNew()
		return err != nil || logicalPatientRef(inner.ProtoReflect()) // one the proxy cannot read counts
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			for i, l := 0, v.List(); i < l.Len() && !found; i++ {
				found = logicalPatientRef(l.Get(i).Message())
			}
		} else {
			found = logicalPatientRef(v.Message())
		}
		return !found
	})
	return found
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
