package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSelfSignedTLSKeyIsPrivate: the client API's self-signed key, made
// by `switchboard serve` when no certificate is configured, is 0600.
func TestSelfSignedTLSKeyIsPrivate(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls-key.pem")
	if err := selfSign("green.example", cert, key); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("%s has mode %v, want 0600", key, got)
	}
}
