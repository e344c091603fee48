package r4_test

import (
	"fmt"

	"github.com/smartkit/smartkit/internal/r4"
)

func ExampleParse() {
	_, err := r4.Parse([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"weight"}}`))
	fmt.Println(err)
	_, err = r4.Parse([]byte(`{"resourceType":"Observation","status":"final"}`))
	fmt.Println(err)
	// Output:
	// <nil>
	// error at "Observation": missing required field "code"
}
