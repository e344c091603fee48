package pkce

import (
	"strings"
	"testing"
)

func TestVectors(t *testing.T) {
	// RFC 7636 Appendix B.
	if got := S256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Fatalf("S256 = %q", got)
	}
	if !Verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM") {
		t.Fatal("RFC 7636 vector does not verify")
	}
}

func TestRefusals(t *testing.T) {
	good := "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	ch := S256(good)
	for _, v := range []string{"", good[:42], strings.Repeat("a", 129), good[:42] + "+", good[:42] + " "} {
		if Verify(v, S256(v)) {
			t.Errorf("malformed verifier %q verified", v)
		}
	}
	if Verify(good, ch[:42]+"A") || Verify(good[:42]+"Y", ch) {
		t.Error("mismatch verified")
	}
	if ValidChallenge(good+"=") || ValidChallenge(strings.Repeat("+", 43)) || !ValidChallenge(ch) {
		t.Error("ValidChallenge is wrong")
	}
	if !ValidVerifier(strings.Repeat("~", 128)) {
		t.Error("128 unreserved characters refused")
	}
}
