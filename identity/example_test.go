package identity_test

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
)

// A provider issues a device credential; a peer that trusts the provider's
// CA verifies it against the device's MLS signature key.
func Example() {
	green, err := identity.NewCA("green.example")
	if err != nil {
		panic(err)
	}
	s, _ := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	key, _ := s.GenerateSignatureKey()
	cred, err := green.IssueDevice(s, key.PublicKey(), "alice", "phone", time.Now().Add(identity.DefaultDeviceValidity))
	if err != nil {
		panic(err)
	}

	// On another provider's client, with trust configuration from
	// federation:
	v, err := identity.NewVerifier(map[string]*x509.Certificate{"green.example": green.Certificate()})
	if err != nil {
		panic(err)
	}
	d, err := v.Verify(s, cred, key.PublicKey(), time.Now())
	fmt.Println(d.URI, d.User, err)

	other, _ := s.GenerateSignatureKey()
	_, err = v.Verify(s, cred, other.PublicKey(), time.Now())
	fmt.Println(err)
	// Output:
	// mimi://green.example/d/alice/phone mimi://green.example/u/alice <nil>
	// identity: credential for mimi://green.example/d/alice/phone: certificate key does not match the MLS signature key
}
