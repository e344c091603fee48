package smart

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/smartkit/smartkit/internal/jsonstrict"
)

// MaxTokenBytes bounds any JWT the server or Verifier parses; longer input is
// refused before decoding (parser exhaustion, CVE-2025-30204).
const MaxTokenBytes = 8 << 10

// joseHeader is the protected header as we police it, read from the raw
// segment so that nothing go-jose hides (x5c) or tolerates (duplicates)
// slips through.
type joseHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Jku  string          `json:"jku"`
	X5u  json.RawMessage `json:"x5u"`
	X5c  json.RawMessage `json:"x5c"`
	JWK  json.RawMessage `json:"jwk"`
	Crit json.RawMessage `json:"crit"`
}

// splitJWS checks the compact shape (exactly three non-empty segments,
// bounded size) and returns the decoded, strictly valid header and payload.
func splitJWS(raw string) (joseHeader, []byte, bool) {
	var h joseHeader
	if len(raw) == 0 || len(raw) > MaxTokenBytes || strings.Count(raw, ".") != 2 {
		return h, nil, false
	}
	hs, rest, _ := strings.Cut(raw, ".")
	ps, sig, _ := strings.Cut(rest, ".")
	if hs == "" || ps == "" || sig == "" {
		return h, nil, false
	}
	hb, err := base64.RawURLEncoding.DecodeString(hs)
	if err != nil || jsonstrict.Check(hb) != nil || json.Unmarshal(hb, &h) != nil {
		return h, nil, false
	}
	pb, err := base64.RawURLEncoding.DecodeString(ps)
	if err != nil || jsonstrict.Check(pb) != nil {
		return h, nil, false
	}
	return h, pb, true
}

// embeddedKeyMaterial reports header members that would let a token choose
// its own key: jwk, x5c, x5u. crit is refused too: we understand no extension.
func (h joseHeader) embeddedKeyMaterial() bool {
	return len(h.JWK) > 0 || len(h.X5c) > 0 || len(h.X5u) > 0 || len(h.Crit) > 0
}

// jwsHeader checks the compact shape and decodes only the header; the
// payload is read after the signature verifies.
func jwsHeader(raw string) (joseHeader, bool) {
	var h joseHeader
	if len(raw) == 0 || len(raw) > MaxTokenBytes || strings.Count(raw, ".") != 2 {
		return h, false
	}
	hs, rest, _ := strings.Cut(raw, ".")
	ps, sig, _ := strings.Cut(rest, ".")
	if hs == "" || ps == "" || sig == "" {
		return h, false
	}
	hb, err := base64.RawURLEncoding.DecodeString(hs)
	if err != nil || jsonstrict.Check(hb) != nil || json.Unmarshal(hb, &h) != nil {
		return h, false
	}
	return h, true
}
