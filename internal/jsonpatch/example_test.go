package jsonpatch_test

import (
	"fmt"

	"github.com/smartkit/smartkit/internal/jsonpatch"
)

// A patch is parsed once, strictly, and applied as parsed; a failed test
// applies nothing.
func ExamplePatch_Apply() {
	doc := []byte(`{"resourceType":"Observation","status":"final","valueQuantity":{"value":64.0}}`)
	patch, err := jsonpatch.Parse([]byte(`[{"op":"test","path":"/valueQuantity/value","value":64},{"op":"replace","path":"/status","value":"amended"}]`))
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := patch.Apply(doc)
	fmt.Println(string(out), err)

	stale, _ := jsonpatch.Parse([]byte(`[{"op":"test","path":"/status","value":"preliminary"},{"op":"remove","path":"/status"}]`))
	_, err = stale.Apply(doc)
	fmt.Println(err)
	// Output:
	// {"resourceType":"Observation","status":"amended","valueQuantity":{"value":64.0}} <nil>
	// jsonpatch: operation 0: the test of "/status" failed
}

// Parse refuses a text another reader could take for another patch.
func ExampleParse() {
	_, err := jsonpatch.Parse([]byte(`[{"op":"add","path":"/status","value":"final","Value":"entered-in-error"}]`))
	fmt.Println(err)
	// Output:
	// jsonpatch: not a JSON Patch
}
