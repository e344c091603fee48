// Package randid makes unguessable identifiers: launch ids, authorization
// codes, refresh tokens, token ids (jti), CSRF tokens. Each carries 256 bits
// from crypto/rand, well over the 128 bits RFC 6749 §10.10 and the SMART
// security baseline ask for, encoded as unpadded base64url so it is safe in
// URLs, forms and headers without escaping.
package randid

import (
	"crypto/rand"
	"encoding/base64"
)

// Bits is the entropy of every identifier New returns.
const Bits = 256

// Len is the length in characters of every identifier New returns.
const Len = (Bits/8*8 + 5) / 6 // base64.RawURLEncoding.EncodedLen(Bits / 8)

// New returns a fresh random identifier of [Bits] bits. crypto/rand never
// fails on supported platforms (it panics rather than return weak bytes).
func New() string {
	var b [Bits / 8]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Valid reports whether s has the shape New produces; it lets stores refuse
// malformed input before a lookup.
func Valid(s string) bool {
	if len(s) != Len {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
