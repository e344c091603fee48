package fhirproxy

import (
	"net/http"
	"strings"

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

// walk calls visit with each message a resource typed by validR4 holds,
// depth first, with the field that holds it (extensions too), and goes
// inside it when visit says so. A contained resource is unpacked and
// walked as a message of its own type; one that cannot be is visited as
// unreadable, so that a check counts it.
func walk(m protoreflect.Message, visit func(fd protoreflect.FieldDescriptor, sub protoreflect.Message) bool) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		each := func(sub protoreflect.Message) {
			if a, ok := sub.Interface().(*anypb.Any); ok { // a contained resource
				inner, err := a.UnmarshalNew()
				if err != nil {
					visit(fd, unreadable.ProtoReflect())
					return
				}
				sub = inner.ProtoReflect()
			}
			if visit(fd, sub) {
				walk(sub, visit)
			}
		}
		if fd.IsList() {
			for i, l := 0, v.List(); i < l.Len(); i++ {
				each(l.Get(i).Message())
			}
		} else {
			each(v.Message())
		}
		return true
	})
}

// unreadable is what walk visits in place of a contained resource it
// cannot unpack.
var unreadable = &anypb.Any{TypeUrl: "unreadable"}
