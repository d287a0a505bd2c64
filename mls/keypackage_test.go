package mls

import (
	"errors"
	"testing"
)

func newTestKeyPackage(t testing.TB, s *Suite, name string) *KeyPackagePrivate {
	t.Helper()
	sig, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := NewKeyPackage(s, sig, Credential{Type: CredentialBasic, Identity: []byte(name)}, KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestKeyPackageIsValidForEverySuite(t *testing.T) {
	for _, id := range SupportedSuites {
		s, _ := SuiteFor(id)
		kp := newTestKeyPackage(t, s, "alice")
		var back KeyPackage
		if err := Unmarshal(Marshal(kp.KeyPackage), &back); err != nil {
			t.Fatalf("suite %v: round trip: %v", id, err)
		}
		if err := ValidateKeyPackage(s, &back, uint64(timeNow().Unix())); err != nil {
			t.Errorf("suite %v: fresh key package refused: %v", id, err)
		}
	}
}

func TestTamperedKeyPackageIsRefused(t *testing.T) {
	s, _ := SuiteFor(X25519AES128GCMSHA256Ed25519)
	kp := newTestKeyPackage(t, s, "mallory")
	kp.KeyPackage.LeafNode.Credential.Identity = []byte("alice")
	if err := ValidateKeyPackage(s, kp.KeyPackage, 0); !errors.Is(err, ErrInvalidKeyPackage) {
		t.Fatalf("tampered credential accepted or wrong error: %v", err)
	}
	other, _ := SuiteFor(P256AES128GCMSHA256P256)
	if err := ValidateKeyPackage(other, newTestKeyPackage(t, s, "bob").KeyPackage, 0); !errors.Is(err, ErrInvalidKeyPackage) {
		t.Fatalf("key package of another suite accepted: %v", err)
	}
}

func TestGREASEValuesAreRecognised(t *testing.T) {
	for _, v := range greaseValues {
		if !IsGREASE(v) {
			t.Errorf("0x%04x not recognised as GREASE", v)
		}
	}
	for _, v := range []uint16{1, 2, 0x0A0B, 0x0B0A, 0xFAFA} {
		if IsGREASE(v) {
			t.Errorf("0x%04x taken for GREASE", v)
		}
	}
}

func BenchmarkKeyPackageCreation(b *testing.B) {
	for _, id := range SupportedSuites {
		s, _ := SuiteFor(id)
		sig, _ := s.GenerateSignatureKey()
		b.Run(id.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := NewKeyPackage(s, sig, Credential{Type: CredentialBasic, Identity: []byte("bench")}, KeyPackageOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
