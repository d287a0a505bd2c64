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
// The calling side sends requests to partners through a Transport: Peers
// over HTTPS with mutual TLS, or Loopback to handlers in the same process
// for tests and the demo. Classify sorts the outcome into delivered,
// retryable and permanent, and the Outbox delivers its entries through
// Peers.OutboxSender, retrying in order until each is accepted.
//
// docs/federation.md describes the trust file, the certificates, the
// request headers, and how requests are sent, classified and retried.
package federation
