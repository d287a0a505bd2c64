package mlsinterop

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestSilentConnectionIsClosed: something connects to the interop
// client's gRPC port and never sends HTTP/2's preface. The server closes
// the connection once its handshake timeout has passed, rather than
// holding it for as long as the other side likes.
func TestSilentConnectionIsClosed(t *testing.T) {
	old := handshakeTimeout
	handshakeTimeout = time.Second
	defer func() { handshakeTimeout = old }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(NewClient())
	go srv.Serve(ln)
	defer srv.Stop()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("PRI * HTTP/2.0\r\n")) // half the preface
	// Not a timed assertion: a bound so that a server that never closes
	// the connection fails the test instead of hanging it.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a connection without its preface open for a minute")
	}
}
