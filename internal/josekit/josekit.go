// Package josekit holds the go-jose plumbing smartkit's signers share:
// signing with any crypto.Signer (an HSM or KMS key through go-jose's
// OpaqueSigner, in-memory keys directly) and signing a JSON payload in one
// pass.
package josekit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/json"
	"fmt"
	"math/big"

	jose "github.com/go-jose/go-jose/v4"
)

// NewSigner signs with in-memory keys directly and with any other
// crypto.Signer through an opaque adapter, always with typ and kid set.
func NewSigner(s crypto.Signer, kid, alg, typ string) (jose.Signer, error) {
	var key any
	switch k := s.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		key = jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: alg}
	default:
		key = &opaque{signer: s, kid: kid, alg: jose.SignatureAlgorithm(alg)}
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	return jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
}

// opaque adapts a crypto.Signer (HSM, KMS) to go-jose.
type opaque struct {
	signer crypto.Signer
	kid    string
	alg    jose.SignatureAlgorithm
}

func (o *opaque) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: o.signer.Public(), KeyID: o.kid, Algorithm: string(o.alg), Use: "sig"}
}

func (o *opaque) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{o.alg} }

func (o *opaque) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	var h crypto.Hash
	var opts crypto.SignerOpts
	switch alg {
	case jose.ES256, jose.RS256:
		h = crypto.SHA256
	case jose.PS256:
		h = crypto.SHA256
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	case jose.ES384, jose.RS384:
		h = crypto.SHA384
	case jose.EdDSA:
		return o.signer.Sign(rand.Reader, payload, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("smart: unsupported algorithm %s", alg)
	}
	if opts == nil {
		opts = h
	}
	d := h.New()
	d.Write(payload)
	sig, err := o.signer.Sign(rand.Reader, d.Sum(nil), opts)
	if err != nil || (alg != jose.ES256 && alg != jose.ES384) {
		return sig, err
	}
	// crypto.Signer returns ASN.1 DER for ECDSA; JWS wants r||s (RFC 7518 §3.4).
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(sig, &rs); err != nil {
		return nil, err
	}
	size := 32
	if alg == jose.ES384 {
		size = 48
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}

// SignJSON signs the JSON encoding of claims as a compact JWS: go-jose's
// Signer over one json.Marshal.
func SignJSON(signer jose.Signer, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
