package node_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
)

// A source of connections, for the tests of the connection limits: the
// loopback addresses 127.0.0.X stand in for the addresses of different
// machines.
type source struct {
	t    *testing.T
	ip   string
	addr string // the client API's host:port
}

// dial opens a TCP connection from the source.
func (s source) dial() net.Conn {
	s.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(s.ip)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("dialling from %s: %v", s.ip, err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// rawAnswer is the provider's answer on a raw connection, or the error
// that came instead.
type rawAnswer struct {
	status     int
	code       string
	retryAfter string
	closed     bool // the provider closed the connection after answering
	err        error
}

// ask sends a request on c and reads the answer; upgrade asks for a
// WebSocket, as a device opening its stream does.
func ask(c net.Conn, path string, upgrade bool) rawAnswer {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	req := "GET " + path + " HTTP/1.1\r\nHost: green.test\r\n"
	if upgrade {
		req += "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		return rawAnswer{err: err}
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return rawAnswer{err: err}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return rawAnswer{err: err}
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(body, &e)
	a := rawAnswer{status: resp.StatusCode, code: e.Error.Code, retryAfter: resp.Header.Get("Retry-After"), closed: resp.Close}
	if a.closed {
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			a.err = errors.New("the connection stayed open after Connection: close")
		}
	}
	return a
}

// TestAFloodOfConnectionsFromOneAddressIsRefused: alice and bob chat on
// green, whose client API lets one source hold 16 connections. Someone
// at 127.0.0.2 opens 16 and keeps them. Their next connection is answered
// 429 too_many_connections (with Retry-After, and closed), a WebSocket
// upgrade included, before anything else is looked at; a few more are
// kept that long, and past that margin a connection is closed without a
// word. Meanwhile another address is served, and alice and bob, from
// theirs, go on chatting. Once the flood's connections close, 127.0.0.2 is
// served again.
func TestAFloodOfConnectionsFromOneAddressIsRefused(t *testing.T) {
	const perSource = 16
	h := startHarnessWith(t, func(cfg *node.Config) {
		cfg.Provider.Connections = provider.ConnLimits{PerSource: perSource, Total: 1000}
	}, "green.test")
	ctx := context.Background()
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("green.test", "bob", "phone", client.Options{})
	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, room, "bob"))
	alice.stream()
	bob.stream()
	cv := newConversation(t, room, alice, bob)
	cv.say(alice, "before the flood")
	cv.expect(bob)

	addr := strings.TrimPrefix(h.node("green.test").ClientURL, "http://")
	flood, other := source{t, "127.0.0.2", addr}, source{t, "127.0.0.3", addr}
	var held []net.Conn
	for i := range perSource {
		c := flood.dial()
		if a := ask(c, "/healthz", false); a.err != nil || a.status != http.StatusOK || a.closed {
			t.Fatalf("connection %d from the flood's address, within the limit: %+v", i+1, a)
		}
		held = append(held, c)
	}

	for _, upgrade := range []bool{false, true} {
		a := ask(flood.dial(), "/v1/stream", upgrade)
		if a.err != nil || a.status != http.StatusTooManyRequests || a.code != "too_many_connections" || a.retryAfter == "" || !a.closed {
			t.Errorf("a connection past the limit (upgrade %v): %+v, want 429 too_many_connections with Retry-After, then closed", upgrade, a)
		}
	}
	// The margin: connections kept long enough to be answered. They hold
	// their places until they close.
	margin := 4
	for range margin {
		held = append(held, flood.dial())
	}
	if a := ask(flood.dial(), "/healthz", false); a.err == nil {
		t.Errorf("a connection past the limit and its margin was answered: %+v, want it closed unanswered", a)
	}

	if a := ask(other.dial(), "/v1/provider", false); a.err != nil || a.status != http.StatusOK {
		t.Errorf("another address during the flood: %+v, want 200", a)
	}
	cv.say(bob, "during the flood")
	cv.say(alice, "still here")
	cv.expect(alice, bob)

	metrics := ask(other.dial(), "/metrics", false)
	if metrics.status != http.StatusOK {
		t.Fatalf("metrics: %+v", metrics)
	}
	for _, c := range held {
		c.Close()
	}
	waitFor(t, "127.0.0.2 is served again", func() bool {
		a := ask(flood.dial(), "/v1/provider", false)
		return a.err == nil && a.status == http.StatusOK
	})
}

// TestTheProvidersConnectionLimit: a provider that may hold 8 client
// connections in all holds 8 from one address; the next, from any
// address, is answered 503 too_many_connections, and the refusals are
// counted in /metrics once there is room to ask.
func TestTheProvidersConnectionLimit(t *testing.T) {
	h := startHarnessWith(t, func(cfg *node.Config) {
		cfg.Provider.Connections = provider.ConnLimits{PerSource: -1, Total: 8}
	}, "green.test")
	addr := strings.TrimPrefix(h.node("green.test").ClientURL, "http://")
	busy, other := source{t, "127.0.0.4", addr}, source{t, "127.0.0.5", addr}
	var held []net.Conn
	for range 8 {
		c := busy.dial()
		if a := ask(c, "/healthz", false); a.status != http.StatusOK {
			t.Fatalf("within the limit: %+v", a)
		}
		held = append(held, c)
	}
	for _, s := range []source{busy, other} {
		if a := ask(s.dial(), "/v1/provider", false); a.status != http.StatusServiceUnavailable || a.code != "too_many_connections" || !a.closed {
			t.Errorf("from %s past the provider's limit: %+v, want 503 too_many_connections, then closed", s.ip, a)
		}
	}
	held[0].Close()
	var body string
	defer func() {
		if t.Failed() {
			t.Logf("last answer:\n%s", body)
		}
	}()
	waitFor(t, "a place is free and the metrics show the refusals", func() bool {
		c := other.dial()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: green.test\r\nConnection: close\r\n\r\n")
		data, _ := io.ReadAll(c)
		c.Close()
		body = string(data)
		// Two refusals above, and any of these tries made before the
		// provider had seen the connection close.
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, `switchboard_connections_refused_total{limit="total"} `); ok {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				return err == nil && n >= 2
			}
		}
		return false
	})
}

// TestConnectionLimitUnderTLS: the limits count connections under the
// client API's TLS, and the refusal is answered inside it, where a device
// can read it: two TLS connections from 127.0.0.6 are served, the third
// is answered 429 too_many_connections over TLS.
func TestConnectionLimitUnderTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, "a key", err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "green.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, "a certificate", err)
	cert, err := x509.ParseCertificate(der)
	must(t, "parsing it", err)
	n, err := node.Start(node.Config{Domain: "green.test", DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		ClientTLS: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS13},
		Provider:  provider.Config{Connections: provider.ConnLimits{PerSource: 2, Total: 100}}})
	must(t, "starting green", err)
	t.Cleanup(func() { n.Close() })
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	src := source{t, "127.0.0.6", strings.TrimPrefix(n.ClientURL, "https://")}
	dial := func() net.Conn {
		c := tls.Client(src.dial(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
		t.Cleanup(func() { c.Close() })
		return c
	}
	for i := range 2 {
		if a := ask(dial(), "/healthz", false); a.err != nil || a.status != http.StatusOK {
			t.Fatalf("TLS connection %d, within the limit: %+v", i+1, a)
		}
	}
	if a := ask(dial(), "/v1/stream", true); a.err != nil || a.status != http.StatusTooManyRequests || a.code != "too_many_connections" || !a.closed {
		t.Errorf("a TLS connection past the limit: %+v, want 429 too_many_connections, then closed", a)
	}
}
