// Package mlsinterop connects Switchboard's MLS implementation to the IETF
// MLS working group's interoperability framework: Client serves the
// framework's gRPC service (mls_client.proto) on top of package mls, and
// Runner plays the framework's scenario files against any set of such
// clients, ours or other implementations'.
package mlsinterop
