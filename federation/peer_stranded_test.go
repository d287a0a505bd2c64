package federation

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/test/faultproxy"
)

// TestPeersLeaveAStrandedConnection: green talks to blue over one kept-
// alive HTTP/2 connection, which the network between them then loses
// without telling either end (a NAT or load balancer forgets it). The
// next request goes out on it and hears nothing. Green's health check
// notices the silence and closes the connection, failing that request as
// unreachable well before its deadline, and the request after it goes over
// a new connection, instead of every request waiting out its deadline on
// a dead connection for as long as the kernel keeps it.
func TestPeersLeaveAStrandedConnection(t *testing.T) {
	e := newPeerEnv(t, "peers", PeerOptions{Timeout: time.Minute, PingAfter: 2 * time.Second})
	proxy, err := faultproxy.New(e.blueSrv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	e.blueEntry.Endpoint = "https://" + proxy.Addr()
	e.setGreenTrust(e.blueEntry)
	post := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		resp, err := e.tr.Post(ctx, "blue.example", "/hello", []byte("body"), nil)
		if err == nil && resp.Status != 201 {
			t.Fatalf("blue answered %d", resp.Status)
		}
		return err
	}
	if err := post(); err != nil {
		t.Fatalf("the first request: %v", err)
	}
	if err := post(); err != nil {
		t.Fatalf("the second request: %v", err)
	}
	if n := proxy.Stats().Accepted; n != 1 {
		t.Fatalf("%d connections for two requests: want one kept alive", n)
	}

	proxy.Strand()
	err = post()
	if pe := asPeerError(t, err); pe.Code != CodeUnreachable {
		t.Errorf("the request on the stranded connection: %v; want unreachable (the connection closed by the health check), not a timeout", err)
	}
	if err := post(); err != nil {
		t.Errorf("the request after: %v; want it answered over a new connection", err)
	}
	if n := proxy.Stats().Accepted; n != 2 {
		t.Errorf("%d connections in all: want a second one after the stranded one", n)
	}
}
