package smart

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/smartkit/smartkit/internal/josekit"
)

// JWS algorithms the server signs and verifies with. HMAC and "none" are
// never accepted anywhere.
const (
	ES256 = "ES256"
	ES384 = "ES384"
	RS256 = "RS256"
	RS384 = "RS384"
	PS256 = "PS256"
	EdDSA = "EdDSA"
)

// A SigningKey is a key the server signs tokens with. Signer may be an
// in-memory key (*ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey) or
// any crypto.Signer backed by an HSM or KMS.
type SigningKey struct {
	ID        string        // kid; "" means the RFC 7638 thumbprint of the public key
	Signer    crypto.Signer // required
	Algorithm string        // ES256, ES384, RS256, RS384, PS256 or EdDSA; "" picks ES256/ES384/RS256/EdDSA from the key
}

// A PublicKey is a verification-only key still published in the JWKS, such
// as the previous signing key during a rotation.
type PublicKey struct {
	ID        string
	Key       crypto.PublicKey
	Algorithm string
}

// KeySet holds the server's keys. Signing keys are current: for each
// algorithm the first one signs. Retired keys are only published, so tokens
// signed before a rotation keep verifying until they expire. A KeySet is safe
// for concurrent use; Rotate replaces the keys atomically.
type KeySet struct {
	mu      sync.RWMutex
	signing []*signingKey
	public  map[string]*verifyKey // kid → key, current and retired
	jwks    []byte
}

type signingKey struct {
	kid    string
	alg    string
	access jose.Signer // typ "at+jwt" (RFC 9068)
	plain  jose.Signer // typ "JWT", for id_tokens
	pub    crypto.PublicKey
}

type verifyKey struct {
	kid string
	alg string
	key crypto.PublicKey
}

// NewKeySet builds a KeySet from current signing keys and retired public keys.
func NewKeySet(signing []SigningKey, retired ...PublicKey) (*KeySet, error) {
	ks := &KeySet{}
	if err := ks.Rotate(signing, retired...); err != nil {
		return nil, err
	}
	return ks, nil
}

// GenerateKeys makes an ES256 and an RS256 key in memory, for tests and the
// sandbox. Production hosts supply their own keys, ideally HSM-backed.
func GenerateKeys() ([]SigningKey, error) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return []SigningKey{{Signer: ec, Algorithm: ES256}, {Signer: rk, Algorithm: RS256}}, nil
}

// Rotate replaces the key set: signing become the current keys and retired
// the published-only ones. To rotate without downtime, pass the new key as
// signing and the old one's public half as retired until the longest-lived
// token signed by it has expired.
func (ks *KeySet) Rotate(signing []SigningKey, retired ...PublicKey) error {
	var sks []*signingKey
	public := map[string]*verifyKey{}
	var jwks jose.JSONWebKeySet
	add := func(kid, alg string, pub crypto.PublicKey) error {
		if _, dup := public[kid]; dup {
			return fmt.Errorf("smart: duplicate key id %q", kid)
		}
		public[kid] = &verifyKey{kid: kid, alg: alg, key: pub}
		jwks.Keys = append(jwks.Keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
		return nil
	}
	for _, k := range signing {
		if k.Signer == nil {
			return errors.New("smart: signing key without a Signer")
		}
		pub := k.Signer.Public()
		alg := k.Algorithm
		if alg == "" {
			alg = defaultAlg(pub)
		}
		if !algFits(alg, pub) {
			return fmt.Errorf("smart: algorithm %q does not fit a %T key", alg, pub)
		}
		kid := k.ID
		if kid == "" {
			var err error
			if kid, err = thumbprint(pub); err != nil {
				return err
			}
		}
		access, err := newJoseSigner(k.Signer, kid, alg, "at+jwt")
		if err != nil {
			return err
		}
		plain, err := newJoseSigner(k.Signer, kid, alg, "JWT")
		if err != nil {
			return err
		}
		if err := add(kid, alg, pub); err != nil {
			return err
		}
		sks = append(sks, &signingKey{kid: kid, alg: alg, access: access, plain: plain, pub: pub})
	}
	for _, k := range retired {
		if k.Key == nil || !algFits(k.Algorithm, k.Key) {
			return fmt.Errorf("smart: retired key %q: algorithm %q does not fit a %T key", k.ID, k.Algorithm, k.Key)
		}
		if err := add(k.ID, k.Algorithm, k.Key); err != nil {
			return err
		}
	}
	b, err := json.Marshal(jwks)
	if err != nil {
		return err
	}
	ks.mu.Lock()
	ks.signing, ks.public, ks.jwks = sks, public, b
	ks.mu.Unlock()
	return nil
}

// signer returns the current signing key for alg, or nil.
func (ks *KeySet) signer(alg string) *signingKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	for _, k := range ks.signing {
		if k.alg == alg {
			return k
		}
	}
	return nil
}

// Has reports whether the set can sign with alg.
func (ks *KeySet) Has(alg string) bool { return ks.signer(alg) != nil }

// Key returns the public key published under kid and its algorithm.
func (ks *KeySet) Key(kid string) (crypto.PublicKey, string, bool) {
	ks.mu.RLock()
	k, ok := ks.public[kid]
	ks.mu.RUnlock()
	if !ok {
		return nil, "", false
	}
	return k.key, k.alg, true
}

// JWKS returns the published JSON Web Key Set: current and retired public keys.
func (ks *KeySet) JWKS() []byte {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.jwks
}

func defaultAlg(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			return ES384
		}
		return ES256
	case *rsa.PublicKey:
		return RS256
	case ed25519.PublicKey:
		return EdDSA
	}
	return ""
}

func algFits(alg string, pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return alg == ES256 && k.Curve == elliptic.P256() || alg == ES384 && k.Curve == elliptic.P384()
	case *rsa.PublicKey:
		return (alg == RS256 || alg == RS384 || alg == PS256) && k.N.BitLen() >= 2048
	case ed25519.PublicKey:
		return alg == EdDSA
	}
	return false
}

func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func newJoseSigner(s crypto.Signer, kid, alg, typ string) (jose.Signer, error) {
	return josekit.NewSigner(s, kid, alg, typ)
}

// JWKSKeys is a KeySource over a JSON Web Key Set, for resource servers that
// receive the authorization server's JWKS rather than share its KeySet.
type JWKSKeys struct {
	keys map[string]*verifyKey
}

// ParseJWKS reads a JWKS document into JWKSKeys. Keys without a kid, private
// keys and keys whose alg does not fit them are refused.
func ParseJWKS(b []byte) (*JWKSKeys, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, err
	}
	out := &JWKSKeys{keys: map[string]*verifyKey{}}
	for _, k := range set.Keys {
		alg := k.Algorithm
		if alg == "" {
			alg = defaultAlg(k.Key)
		}
		if k.KeyID == "" || !k.IsPublic() || !algFits(alg, k.Key) {
			return nil, fmt.Errorf("smart: JWKS key %q is unusable", k.KeyID)
		}
		out.keys[k.KeyID] = &verifyKey{kid: k.KeyID, alg: alg, key: k.Key}
	}
	return out, nil
}

// Key returns the public key published under kid and its algorithm.
func (j *JWKSKeys) Key(kid string) (crypto.PublicKey, string, bool) {
	k, ok := j.keys[kid]
	if !ok {
		return nil, "", false
	}
	return k.key, k.alg, true
}
