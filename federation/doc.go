// Package federation connects Switchboard providers after the MIMI protocol:
// providers talk to each other over HTTPS with mutual TLS
// (draft-ietf-mimi-protocol §"Transport layer"), each authenticated by a
// certificate that names its domain.
//
// The trust side of the package decides who may talk to us and what they
// may claim. A provider's TLS certificate comes from its identity CA
// (IssueProviderCertificate). A trust configuration file lists the partner
// providers, each with its CA certificate or the pin of its key, and can be
// changed — partners added, suspended or removed — while the provider runs
// (LoadTrust, Trust.Reload, Trust.Watch). ServerTLSConfig and
// ClientTLSConfig check every handshake against the configuration as it is
// at that moment; RequirePartner checks it again on every request, so a
// suspension applies even to a connection that is already open.
// CheckSpeaksFor keeps a partner to its own users, and ReplayGuard refuses
// requests seen before or stamped too far from now.
//
// The wire side: the MIMI protocol (draft-ietf-mimi-protocol) by which a
// room's hub and its follower providers fetch key material, submit and fan
// out messages, update rooms, ask for consent, look users up and report
// abuse. The wire_*.go files hold the bodies of the MIMI endpoints, encoded
// in the TLS presentation language exactly as the draft writes them, with
// the mls package's codec: every type has MarshalMLS and UnmarshalMLS, so
// mls.Marshal and mls.Unmarshal encode and decode them. directory.go holds
// the /.well-known/mimi-protocol-directory document.
//
// The calling side sends requests to partners through a Transport: Peers
// over HTTPS with mutual TLS, or Loopback to handlers in the same process
// for tests and the demo. Classify sorts the outcome into delivered,
// retryable and permanent, and the Outbox delivers its entries through
// Peers.OutboxSender, retrying in order until each is accepted: to a
// partner whose directory offers it, several in one batch request
// (batch.go, wire_batch.go; RunBatch is the receiving side).
//
// docs/federation.md describes the trust file, the certificates and the
// request headers; lists the endpoints and the choices made where the
// draft is open; and says how requests are sent, classified and retried.
package federation
