package fhirproxy_test

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// endToEndTokens are the tokens the end-to-end fuzz targets ask with, one
// of each shape the proxy judges differently: a patient app; a patient
// app under a constrained scope, every label cleared; a clinician under a
// constrained scope with the default clearance; a clinician who sees
// every label; a clinician whose chains the proxy resolves (the default
// clearance).
func endToEndTokens(fx *fixture) []string {
	return []string{
		fx.token("launch/patient patient/Observation.rs patient/Condition.rs patient/Patient.rs patient/Practitioner.rs patient/Provenance.rs", nil),
		fx.token("launch/patient patient/Observation.rs?category=laboratory patient/Patient.rs", everyLabel()),
		fx.token("user/Observation.rs?category=laboratory user/Patient.rs user/Practitioner.rs", nil),
		fx.token("user/Observation.rs user/Condition.rs user/Patient.rs user/Provenance.rs", everyLabel()),
		fx.token("user/Observation.rs user/Patient.rs", nil),
	}
}

// requestTarget reports whether s, after the base and a slash, is one
// request target written as it goes (no space, fragment or line break,
// valid UTF-8, so that it is also one JSON string): what the end-to-end
// fuzz targets can send two ways and compare.
func requestTarget(s string) bool {
	_, err := url.ParseRequestURI("/" + s)
	return err == nil && !strings.ContainsAny(s, " #\t\r\n") && !strings.HasPrefix(s, "/") && utf8.ValidString(s)
}
