// Package identity gives Switchboard devices their MLS credentials and
// checks other members' credentials: MIMI URIs for providers, users and
// devices (draft-mahy-mimi-identity), a provider's credential authority that
// issues X.509 device certificates, and a Verifier that authenticates a
// member's credential against the issuing provider's CA certificate.
//
// A device's MLS credential is an X.509 credential (RFC 9420 §5.3) whose
// leaf certificate's subject public key is the device's MLS signature key
// and whose subjectAltName holds the device URI mimi://DOMAIN/d/USER/DEVICE
// and the user URI mimi://DOMAIN/u/USER. Peers trust each provider's CA for
// that provider's domain only. docs/identity.md explains the choices.
//
// The package imports only mls of ours and the standard library.
package identity
