package main

import (
	"crypto"
	"os"
	"path/filepath"
	"testing"
)

func TestKeysAreGeneratedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	first, err := loadKeys(dir)
	if err != nil || len(first) != 2 {
		t.Fatalf("first start: %d keys, %v", len(first), err)
	}
	again, err := loadKeys(dir)
	if err != nil || len(again) != len(first) {
		t.Fatalf("second start: %d keys, %v", len(again), err)
	}
	for i := range first {
		if again[i].Algorithm != first[i].Algorithm || !again[i].Signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(first[i].Signer.Public()) {
			t.Errorf("key %d changed across a restart", i)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "signing-keys.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key file: %v %v", fi.Mode(), err)
	}

	path := filepath.Join(dir, "backend-key.pem")
	b1, err := loadBackendKey(path)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := loadBackendKey(path)
	if err != nil || !b1.Equal(b2) {
		t.Fatalf("backend key changed across a restart: %v", err)
	}
	// A signing-key file is not a backend key file.
	if _, err := loadBackendKey(filepath.Join(dir, "signing-keys.pem")); err == nil {
		t.Error("a file of two keys was accepted as the backend key")
	}
}
