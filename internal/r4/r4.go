package r4

import (
	"sync"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

var parser = sync.OnceValues(func() (*jsonformat.Unmarshaller, error) {
	return jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
})

// Parse returns the resource b holds, typed, or why it is not valid R4.
func Parse(b []byte) (*rpb.ContainedResource, error) {
	u, err := parser()
	if err != nil {
		return nil, err
	}
	return u.UnmarshalR4(b)
}
