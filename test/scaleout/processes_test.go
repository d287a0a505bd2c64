package scaleout_test

import (
	"bytes"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// balancer is a TCP load balancer: each connection goes to the backend
// with the fewest open connections that accepts it (a dead one refuses),
// bytes pass through untouched (TLS too). It counts, per backend, the
// connections it forwarded and which of them carry a stream (a request
// for /v1/stream, which may come first or after other requests on a
// kept-alive connection), to see where the devices are.
type balancer struct {
	ln net.Listener

	mu       sync.Mutex
	backends map[string]*backend // by replica name
}

type backend struct {
	addr              string
	open, openStreams int // connections open now, and of those streams
	accepted, streams int // connections forwarded since set, and of those streams
}

func newBalancer(t *testing.T) *balancer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, backends: map[string]*backend{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.forward(c)
		}
	}()
	return b
}

func (b *balancer) addr() string { return b.ln.Addr().String() }

// set points the backend name at addr (a started or restarted replica),
// counting from zero.
func (b *balancer) set(name, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends[name] = &backend{addr: addr}
}

// counts returns a copy of a backend's counters.
func (b *balancer) counts(name string) backend {
	b.mu.Lock()
	defer b.mu.Unlock()
	return *b.backends[name]
}

func (b *balancer) forward(c net.Conn) {
	defer c.Close()
	b.mu.Lock()
	var order []*backend
	for _, be := range b.backends {
		order = append(order, be)
	}
	b.mu.Unlock()
	for len(order) > 0 {
		// The least loaded first; a refusal (a dead replica) moves on.
		b.mu.Lock()
		i := 0
		for j, be := range order {
			if be.open < order[i].open {
				i = j
			}
		}
		be := order[i]
		b.mu.Unlock()
		order = slices.Delete(order, i, i+1)
		up, err := net.DialTimeout("tcp", be.addr, time.Second)
		if err != nil {
			continue
		}
		b.mu.Lock()
		be.open++
		be.accepted++
		b.mu.Unlock()
		isStream := false
		defer func() {
			b.mu.Lock()
			be.open--
			if isStream {
				be.openStreams--
			}
			b.mu.Unlock()
		}()
		defer up.Close()
		go func() {
			io.Copy(c, up)
			c.(*net.TCPConn).CloseWrite()
		}()
		// The client's bytes: a request for the stream begins a read,
		// since a client writes each request at once, then waits.
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if !isStream && bytes.HasPrefix(buf[:n], []byte("GET /v1/stream")) {
					isStream = true
					b.mu.Lock()
					be.openStreams++
					be.streams++
					b.mu.Unlock()
				}
				if _, werr := up.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
}
