package node_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/store/postgres/pgtest"
)

// pgProxy is a TCP relay between a provider and PostgreSQL that the test
// can cut, as a network partition or a database restart would.
type pgProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func startPGProxy(t *testing.T, target string) *pgProxy {
	p := &pgProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *pgProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
}

// down closes the listener and every relayed connection: new connections
// are refused and open ones break.
func (p *pgProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// up listens again on the same address.
func (p *pgProxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// TestProviderOnPostgres: green.test keeps its data in PostgreSQL, blue.test
// in the embedded SQLite store, and their users chat as usual. Then
// green's database becomes unreachable: Alice's requests fail with 503
// unavailable and a Retry-After, not an internal error; once it is back,
// green recovers by itself and the conversation goes on.
func TestProviderOnPostgres(t *testing.T) {
	u, err := url.Parse(pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startPGProxy(t, u.Host)
	u.Host = proxy.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{
		Configure: func(c *node.Config) {
			if c.Domain == "green.test" {
				c.StoreDSN = u.String()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	alice := newPerson(t, l, 0, "alice")
	bob := newPerson(t, l, 1, "bob")
	ctx := context.Background()

	dm, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, dm, "bob@blue.test"))
	alice.send(dm, "hello from PostgreSQL")
	bob.expect(dm, "alice@green.test: hello from PostgreSQL")
	bob.send(dm, "hello from SQLite")
	alice.expect(dm, "bob@blue.test: hello from SQLite")

	proxy.down()
	_, err = alice.c.Notices(ctx)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "unavailable" || ae.Status != 503 || ae.RetryAfter <= 0 {
		t.Fatalf("a request while green's database is down: %v, want 503 unavailable with Retry-After", err)
	}

	proxy.up()
	waitFor(t, "green to reach its database again", func() bool {
		_, err := alice.c.Notices(ctx)
		return err == nil
	})
	alice.send(dm, "back again")
	bob.expect(dm, "alice@green.test: hello from PostgreSQL", "alice@green.test: back again")
}
