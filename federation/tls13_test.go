package federation

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestOnlyTLS13BetweenProviders: a partner with a good certificate that
// offers at most TLS 1.2 is refused at the handshake, and so is a partner
// server that answers with at most TLS 1.2: neither side falls back.
func TestOnlyTLS13BetweenProviders(t *testing.T) {
	green, blue := newTestProvider(t, "green.example"), newTestProvider(t, "blue.example")

	t.Run("a TLS 1.2 client", func(t *testing.T) {
		gs := startFedServer(t, green, blue.entry(t))
		cfg := ClientTLSConfig(blue.cert, newDialer(t, blue, green.entry(t)).trust, "green.example")
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		res := get(c, gs.srv.URL)
		if res.err == nil || !strings.Contains(res.err.Error(), "protocol version") {
			t.Fatalf("blue → green over TLS 1.2: %+v, want a protocol version alert", res)
		}
	})

	t.Run("a TLS 1.2 server", func(t *testing.T) {
		gs := startFedServer(t, green, blue.entry(t))
		old := httptest.NewUnstartedServer(gs.srv.Config.Handler)
		old.TLS = ServerTLSConfig(green.cert, gs.trust)
		old.TLS.MinVersion, old.TLS.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		old.Config.ErrorLog = log.New(io.Discard, "", 0) // the refusal is the point
		old.StartTLS()
		t.Cleanup(old.Close)
		res := get(newDialer(t, blue, green.entry(t)).client(t, "green.example"), old.URL)
		if res.err == nil || !strings.Contains(res.err.Error(), "protocol version") {
			t.Fatalf("blue → green's TLS 1.2 server: %+v, want a protocol version alert", res)
		}
	})
}
