// Package jsonpatch reads and applies JSON Patch documents (RFC 6902), for
// the two places in smartkit that apply one: fhirproxy, which applies a
// patient app's patch itself, to the stored version it judged, so that
// what is written is what it checked (the FHIR server's own reading of the
// patch never matters); and the sandbox's FHIR data server, which takes
// PATCH as FHIR servers do.
//
// Parse reads a patch strictly and is the only reader: a patch is what it
// returns, and Apply applies exactly that, so the check of a patch and its
// application cannot read the text two ways. Parse refuses what a lenient
// reader could take for another patch (member names equal under case
// folding, a member twice, an operation without the members its op
// requires, a pointer that is not one). Apply works on a decoded copy,
// keeps numbers as written, compares them by value in a test (1.50 equals
// 15e-1), and bounds what a small patch can cost (MaxOps operations; what
// copies duplicate in all).
package jsonpatch
