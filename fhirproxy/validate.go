package fhirproxy

import (
	"net/http"
	"strings"
	"sync"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

// A resource the proxy forwards as a write (create, update, a batch
// entry's resource) must be valid against the R4 base specification:
// required elements present, no unknown elements, codes from their value
// sets, ids and primitives well formed. It is checked with google/fhir/go's
// R4 parser, off the read path, after the checks that matter to security
// (so their refusals keep their codes), and refused with 400 and the path
// of the first problem, never forwarded.

var r4Parser = sync.OnceValues(func() (*jsonformat.Unmarshaller, error) {
	return jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
})

// validR4 reports why a resource is not valid R4, or nil. The reason names
// a path and a rule, not the content.
func validR4(body []byte) error {
	u, err := r4Parser()
	if err != nil {
		return err
	}
	_, err = u.UnmarshalR4(body)
	return err
}

// invalidResource is the refusal for a resource validR4 rejects.
func invalidResource(err error) *refusal {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return refuse(http.StatusBadRequest, "invalid", "the resource is not valid FHIR R4: "+strings.ToValidUTF8(msg, ""))
}
