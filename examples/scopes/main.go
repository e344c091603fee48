// Command scopes explains a SMART scope string in plain language, the way a
// consent screen built on smartkit would, and points out invalid scopes.
//
//	go run ./examples/scopes
//	go run ./examples/scopes "launch/patient openid fhirUser patient/Observation.rs?category=laboratory"
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/smartkit/smartkit/scopes"
)

const demo = "launch/patient openid fhirUser offline_access patient/Patient.rs " +
	"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory " +
	"patient/Condition.read user/*.cruds"

func main() {
	in := demo
	if len(os.Args) > 1 {
		in = strings.Join(os.Args[1:], " ")
	}
	if err := explain(os.Stdout, in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// explain writes the plain-language reading of a scope string. Invalid
// tokens are listed with their reason and left out of the explanation, as a
// lenient server would; limits make the whole string fail.
func explain(w io.Writer, in string) error {
	set, err := scopes.ParseLenient(in)
	var se *scopes.SetError
	switch {
	case errors.As(err, &se):
		fmt.Fprintln(w, "Not understood (a server would drop these):")
		for _, e := range se.Errs {
			fmt.Fprintf(w, "  %q: %s\n", e.Scope, e.Reason)
		}
		fmt.Fprintln(w)
	case err != nil:
		return err
	}
	d := scopes.DescribeSet(set)
	fmt.Fprintln(w, d.Summary)
	fmt.Fprintln(w)
	for _, item := range d.Items {
		fmt.Fprintf(w, "  %-40s %s\n", item.Scope, item.Text)
	}
	if set.Version() == scopes.V1 {
		fmt.Fprintf(w, "\nIn SMART v2 terms: %s\n", set.V2())
	}
	return nil
}
