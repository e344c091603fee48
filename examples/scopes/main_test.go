package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/smartkit/smartkit/scopes"
)

func TestExplain(t *testing.T) {
	var b strings.Builder
	if err := explain(&b, demo+" patient/Observation.sr"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`"patient/Observation.sr": permissions must be`,
		"This app asks to read health data, change the health record and keep access",
		"only category: laboratory results",
		"In SMART v2 terms: launch/patient openid fhirUser offline_access patient/Patient.rs",
		"patient/Condition.rs user/*.cruds",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if err := explain(&b, strings.Repeat("x", scopes.DefaultMaxLen+1)); !errors.Is(err, scopes.ErrTooLong) {
		t.Errorf("over-long input: %v", err)
	}
}
