package node_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/node"
)

// TestSlowHeadersAreCutOff: a client connects to a provider's client API,
// and another to its federation listener, and each sends the start of a
// request a byte at a time (on the federation listener, the start of a
// TLS handshake), then nothing more. The provider closes both connections
// once its ReadHeaderTimeout (10 s, which also bounds the handshake) has
// passed, rather than keeping them for as long as the client likes.
func TestSlowHeadersAreCutOff(t *testing.T) {
	h := startHarness(t, "green.test")
	halfRequests(t, h.node("green.test"), time.Minute, func(t *testing.T, listener string, err error) {
		// Not a timed assertion: a bound so that a provider that never
		// closes the connection fails the test instead of hanging it.
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%s kept a connection with half a request open for a minute", listener)
		}
	})
}

// TestConfiguredHeaderTimeoutIsUsed: an operator who sets a longer header
// timeout (node.Config.Timeouts, serve's timeouts.read_header_seconds)
// gets it on both listeners: a connection sending half a request is still
// open well after the default 10 s would have closed it. (Here load can
// only delay a close, never bring it forward.)
func TestConfiguredHeaderTimeoutIsUsed(t *testing.T) {
	h := startHarnessWith(t, func(cfg *node.Config) { cfg.Timeouts.ReadHeader = time.Hour }, "green.test")
	wait := node.DefaultTimeouts.ReadHeader + 3*time.Second
	halfRequests(t, h.node("green.test"), wait, func(t *testing.T, listener string, err error) {
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("%s closed a connection with half a request within %v (%v), though its header timeout is an hour", listener, wait, err)
		}
	})
}

// halfRequests sends the start of a request, a byte at a time, to the
// client API and the federation listener (there the start of a TLS
// handshake record, its length still to come), reads until the provider
// closes the connection or wait has passed, and hands check how the read
// ended.
func halfRequests(t *testing.T, n *node.Node, wait time.Duration, check func(t *testing.T, listener string, err error)) {
	api := strings.TrimPrefix(strings.TrimPrefix(n.ClientURL, "http://"), "https://")
	for _, c := range []struct {
		name, addr string
		start      []byte
	}{
		{"the client API", api, []byte("GET /v1/me HTT")},
		{"the federation listener", n.FederationAddr, []byte{0x16, 0x03, 0x01, 0x00}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, b := range c.start {
				if _, err := conn.Write([]byte{b}); err != nil {
					t.Fatal(err)
				}
			}
			conn.SetReadDeadline(time.Now().Add(wait))
			_, err = io.ReadAll(conn)
			check(t, c.name, err)
		})
	}
}
