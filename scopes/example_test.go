package scopes_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/smartkit/smartkit/scopes"
)

func ExampleParse() {
	s, err := scopes.Parse("patient/Observation.rs?category=laboratory")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Kind(), s.Context(), s.Type(), s.Perms(), s.Constraint())

	v1, _ := scopes.Parse("user/*.read")
	fmt.Println(v1.Version(), v1.Perms(), v1.V2())
	// Output:
	// resource patient Observation rs [{category laboratory}]
	// v1 rs user/*.rs
}

func ExampleParseSet() {
	_, err := scopes.ParseSet("openid patient/Observation.sr patient/Patient.rs?name=")
	var se *scopes.SetError
	if errors.As(err, &se) {
		for _, e := range se.Errs {
			fmt.Printf("token %d %q: %s\n", e.Index, e.Scope, e.Reason)
		}
	}
	// Output:
	// token 1 "patient/Observation.sr": permissions must be a non-empty subset of cruds in that order, or read, write, *
	// token 2 "patient/Patient.rs?name=": query constraint with an empty value
}

func ExampleParseLenient() {
	set, err := scopes.ParseLenient("launch openid patient/Observation.dus patient/Patient.r")
	fmt.Println(set)
	fmt.Println(err)
	// Output:
	// launch openid patient/Patient.r
	// scopes: invalid scope "patient/Observation.dus" (token 2): permissions must be a non-empty subset of cruds in that order, or read, write, *
}

func ExampleSet_Check() {
	set := scopes.MustParseSet("patient/Patient.r patient/Observation.rs?category=laboratory")

	read := scopes.Access{Context: scopes.Patient, Type: "Patient", Perms: scopes.Read}
	fmt.Println("read Patient:", set.Check(read).Allowed)

	search := scopes.Access{Context: scopes.Patient, Type: "Observation", Perms: scopes.Search}
	d := set.Check(search)
	fmt.Println("search Observation:", d.Allowed, "constrained:", d.Constrained())
	for sc := range d.Constraints() {
		fmt.Println("  results must match", sc.Constraint())
	}

	search.Params = []scopes.Param{{Name: "category", Value: "laboratory"}}
	d = set.Check(search)
	fmt.Println("search Observation?category=laboratory outright:", set.Allows(search), "carried:", d.Carried())

	write := scopes.Access{Context: scopes.Patient, Type: "Patient", Perms: scopes.Update}
	fmt.Println("update Patient:", set.Check(write).Allowed)
	// Output:
	// read Patient: true
	// search Observation: true constrained: true
	//   results must match [{category laboratory}]
	// search Observation?category=laboratory outright: true carried: true
	// update Patient: false
}

func ExampleSet_Intersect() {
	requested := scopes.MustParseSet("launch/patient openid fhirUser patient/*.cruds")
	clientAllowed := scopes.MustParseSet("launch/patient openid fhirUser patient/Observation.rs patient/Condition.rs")
	userApproved := scopes.MustParseSet("launch/patient openid fhirUser patient/Observation.rs")
	fmt.Println(requested.Intersect(clientAllowed).Intersect(userApproved))
	// Output: launch/patient openid fhirUser patient/Observation.rs
}

func ExampleSet_Narrow() {
	granted := scopes.MustParseSet("offline_access patient/Observation.rs patient/Condition.rs")

	narrower, err := granted.Narrow(scopes.MustParseSet("patient/Observation.r"))
	fmt.Println(narrower, err)

	_, err = granted.Narrow(scopes.MustParseSet("patient/Observation.rs patient/*.cruds"))
	fmt.Println(err)
	// Output:
	// patient/Observation.r <nil>
	// scopes: "patient/*.cruds" is not covered by the granted scopes
}

func ExampleDescribeSet() {
	set := scopes.MustParseSet("launch/patient offline_access patient/Observation.rs?category=laboratory patient/*.write")
	d := scopes.DescribeSet(set)
	fmt.Println(d.Summary)
	for _, item := range d.Items {
		fmt.Println("-", item.Text)
	}
	// Output:
	// This app asks to read health data, change the health record and keep access when you are not using it.
	// - Know which patient you are working with.
	// - Keep access when you are not using the app, until you revoke it.
	// - Read and search observations (vital signs, lab results and other measurements) (only category: laboratory results) about the patient in context.
	// - Add, change and delete all kinds of health data about the patient in context. This includes kinds of data added in the future.
}

func ExampleWording() {
	w := scopes.English()
	w.Patient = "you"
	w.Types["Observation"] = "test results"
	sc, _ := scopes.Parse("patient/Observation.read")
	fmt.Println(w.Describe(sc).Text)
	// Output: Read and search test results about you.
}
