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
	green := h.node("green.test")
	api := strings.TrimPrefix(strings.TrimPrefix(green.ClientURL, "http://"), "https://")
	for _, c := range []struct {
		name, addr string
		start      []byte
	}{
		{"the client API", api, []byte("GET /v1/me HTT")},
		// The start of a TLS handshake record, its length still to come.
		{"the federation listener", green.FederationAddr, []byte{0x16, 0x03, 0x01, 0x00}},
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
			// Not a timed assertion: a bound so that a provider that
			// never closes the connection fails the test instead of
			// hanging it.
			conn.SetReadDeadline(time.Now().Add(time.Minute))
			_, err = io.ReadAll(conn)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("%s kept a connection with half a request open for a minute", c.name)
			}
		})
	}
}

// TestConfiguredHeaderTimeoutIsUsed: an operator who sets a longer header
// timeout (node.Config.Timeouts, serve's timeouts.read_header_seconds)
// gets it on both listeners: a connection sending half a request is still
// open well after the default 10 s would have closed it. (Here load can
// only delay a close, never bring it forward.)
func TestConfiguredHeaderTimeoutIsUsed(t *testing.T) {
	h := startHarnessWith(t, func(cfg *node.Config) { cfg.Timeouts.ReadHeader = time.Hour }, "green.test")
	green := h.node("green.test")
	api := strings.TrimPrefix(strings.TrimPrefix(green.ClientURL, "http://"), "https://")
	for _, c := range []struct {
		name, addr string
		start      []byte
	}{
		{"the client API", api, []byte("GET /v1/me HTT")},
		{"the federation listener", green.FederationAddr, []byte{0x16, 0x03, 0x01, 0x00}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(c.start); err != nil {
				t.Fatal(err)
			}
			wait := node.DefaultTimeouts.ReadHeader + 3*time.Second
			conn.SetReadDeadline(time.Now().Add(wait))
			_, err = io.ReadAll(conn)
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Fatalf("%s closed a connection with half a request within %v (%v), though its header timeout is an hour", c.name, wait, err)
			}
		})
	}
}
