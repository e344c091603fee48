package fhirproxy

import (
	"net/http"
	"strings"

	"google.golang.org/protobuf/proto"

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
