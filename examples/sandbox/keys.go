package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"

	"github.com/smartkit/smartkit/smart"
)

// Keys live in the data directory as PKCS #8 PEM files, generated on first
// start and kept, so tokens and registrations survive a restart.

// loadKeys reads the sandbox's signing keys, generating them on first start.
func loadKeys(dir string) ([]smart.SigningKey, error) {
	path := filepath.Join(dir, "signing-keys.pem")
	stored, err := readKeys(path)
	if errors.Is(err, os.ErrNotExist) {
		keys, err := smart.GenerateKeys()
		if err != nil {
			return nil, err
		}
		signers := make([]crypto.Signer, len(keys))
		for i, k := range keys {
			signers[i] = k.Signer
		}
		return keys, writeKeys(path, signers...)
	}
	if err != nil {
		return nil, err
	}
	var keys []smart.SigningKey
	for _, k := range stored {
		switch k.(type) {
		case *ecdsa.PrivateKey:
			keys = append(keys, smart.SigningKey{Signer: k, Algorithm: smart.ES256})
		case *rsa.PrivateKey:
			keys = append(keys, smart.SigningKey{Signer: k, Algorithm: smart.RS256})
		}
	}
	return keys, nil
}

// loadBackendKey reads the example backend's ES384 key, generating it on
// first start.
func loadBackendKey(path string) (*ecdsa.PrivateKey, error) {
	stored, err := readKeys(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return k, writeKeys(path, k)
	}
	if err != nil {
		return nil, err
	}
	if ec, ok := stored[0].(*ecdsa.PrivateKey); ok && len(stored) == 1 {
		return ec, nil
	}
	return nil, errors.New("sandbox: the backend key file must hold one EC key")
}

// readKeys parses every PKCS #8 private key in a PEM file.
func readKeys(path string) ([]crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []crypto.Signer
	for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New("sandbox: " + path + " holds a key that cannot sign")
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("sandbox: no keys in " + path)
	}
	return out, nil
}

// writeKeys stores keys as PKCS #8 PEM, readable by the owner only.
func writeKeys(path string, keys ...crypto.Signer) error {
	var out []byte
	for _, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return err
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	}
	return os.WriteFile(path, out, 0o600)
}
