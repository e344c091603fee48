// Package jsonstrict checks that a JSON text is one the whole stack will
// read the same way: well formed, valid UTF-8, no duplicate object members
// (compared after unescaping), nesting within a depth limit. encoding/json
// accepts duplicates and lets the last one win, which lets an attacker make
// two parsers disagree about a token or resource; this package refuses them.
//
// Check validates a text that will then be decoded with encoding/json,
// which also matches member names case-insensitively: it refuses names that
// are equal under Unicode case folding too ("aud" and "AUD"). Scanner reads
// a text value by value, with names matched exactly (as FHIR and JavaScript
// match them), so a caller can pick out the few members it needs in the same
// pass that proves the text strict, from a byte slice or from a stream read
// through a bounded window.
package jsonstrict
