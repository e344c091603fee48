package jsonstrict_test

import (
	"fmt"

	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// Check refuses what encoding/json would read ambiguously.
func ExampleCheck() {
	fmt.Println(jsonstrict.Check([]byte(`{"aud":"a","sub":"b"}`)))
	fmt.Println(jsonstrict.Check([]byte(`{"aud":"a","AUD":"b"}`)))
	// Output:
	// <nil>
	// jsonstrict: duplicate member "AUD" at offset 16
}

// A Scanner picks the members it needs in the pass that checks the rest.
func ExampleScanner() {
	s := jsonstrict.NewScanner([]byte(`{"resourceType":"Observation","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`))
	var ref string
	err := s.Object(func(name []byte) error {
		if string(name) != "subject" {
			return s.Skip()
		}
		return s.Object(func(name []byte) error {
			if string(name) != "reference" {
				return s.Skip()
			}
			v, err := s.String()
			ref = string(v)
			return err
		})
	})
	if err == nil {
		err = s.End()
	}
	fmt.Println(ref, err)
	// Output: Patient/p1 <nil>
}
