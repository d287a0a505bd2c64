package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/test/faultproxy"
)

// echoServer echoes every connection, and keeps for each what it read,
// so a test can tell what reached the server.
type echoServer struct {
	ln   net.Listener
	mu   sync.Mutex
	got  []*bytes.Buffer
	done []chan struct{} // closed when the connection has ended
	wg   sync.WaitGroup
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf, done := &bytes.Buffer{}, make(chan struct{})
			s.mu.Lock()
			s.got, s.done = append(s.got, buf), append(s.done, done)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer close(done)
				defer c.Close()
				b := make([]byte, 4096)
				for {
					n, err := c.Read(b)
					if n > 0 {
						s.mu.Lock()
						buf.Write(b[:n])
						s.mu.Unlock()
						if _, werr := c.Write(b[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// conn i's bytes, once it has ended (or after a generous bound).
func (s *echoServer) ended(t *testing.T, i int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		if i < len(s.done) {
			done := s.done[i]
			s.mu.Unlock()
			select {
			case <-done:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("the server's connection %d did not end", i)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.got[i].String()
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("the server never saw connection %d", i)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// received is what the server's connection i has read so far.
func (s *echoServer) received(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.got) {
		return ""
	}
	return s.got[i].String()
}

func setup(t *testing.T) (*echoServer, *faultproxy.Proxy) {
	t.Helper()
	s := newEchoServer(t)
	p, err := faultproxy.New(s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return s, p
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads back as many bytes, or fails.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

// refused connects, writes and reads: the error of whichever step failed
// (a reset can come as soon as the connect).
func refused(p *faultproxy.Proxy) (string, error) {
	c, err := net.DialTimeout("tcp", p.Addr(), 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.Write([]byte("anyone?"))
	return readAll(c)
}

// readAll reads until the connection ends and returns what came and how
// it ended.
func readAll(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b bytes.Buffer
	_, err := io.Copy(&b, c)
	return b.String(), err
}

func TestPassForwardsBothWays(t *testing.T) {
	_, p := setup(t)
	c := dial(t, p)
	for _, msg := range []string{"hello", strings.Repeat("x", 100_000), "bye"} {
		roundTrip(t, c, msg)
	}
	if s := p.Stats(); s.Forwarded[0] != 100_008 || s.Forwarded[1] != 100_008 || s.Accepted != 1 {
		t.Errorf("stats %+v: want 100008 bytes each way over one connection", s)
	}
}

// A delayed answer comes intact and in order, no sooner than the delay
// after its request was sent (a lower bound, which load cannot break).
func TestDelayHoldsBackOneDirection(t *testing.T) {
	_, p := setup(t)
	c := dial(t, p)
	roundTrip(t, c, "warm")
	const delay = 150 * time.Millisecond
	p.Set(faultproxy.Down, faultproxy.Fault{Mode: faultproxy.Delay, Delay: delay})
	for i := range 3 {
		began := time.Now()
		roundTrip(t, c, strings.Repeat(string(rune('a'+i)), 5000))
		if took := time.Since(began); took < delay {
			t.Errorf("round trip %d took %v with answers delayed %v", i, took, delay)
		}
	}
	p.Heal()
	roundTrip(t, c, "healed: the delayed connection still works")
}

// Drop resets open connections and every new one.
func TestDropClosesConnections(t *testing.T) {
	s, p := setup(t)
	open := dial(t, p)
	roundTrip(t, open, "before")
	p.Set(faultproxy.Both, faultproxy.Fault{Mode: faultproxy.Drop})
	if _, err := readAll(open); err == nil {
		t.Error("an open connection survived Drop")
	}
	if got, err := refused(p); err == nil {
		t.Errorf("a new connection under Drop read %q: want a reset", got)
	}
	p.Heal()
	roundTrip(t, dial(t, p), "after")
	s.mu.Lock()
	n := len(s.got)
	s.mu.Unlock()
	if n != 2 {
		t.Errorf("the server saw %d connections: want the one before Drop and the one after", n)
	}
	if st := p.Stats(); st.Dropped != 2 {
		t.Errorf("%d connections dropped: want 2", st.Dropped)
	}
}

// Reset on Up passes the first bytes of a request, then resets both ends:
// the server has part of it, the client a reset.
func TestResetMidRequest(t *testing.T) {
	s, p := setup(t)
	c := dial(t, p)
	roundTrip(t, c, "hi")
	p.Set(faultproxy.Up, faultproxy.Fault{Mode: faultproxy.Reset, Bytes: 10})
	c.Write([]byte("0123456789abcdefghij"))
	got, err := readAll(c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the client read %q then %v: want a connection reset", got, err)
	}
	if at := s.ended(t, 0); at != "hi0123456789" {
		t.Errorf("the server read %q: want the first 10 bytes of the request after hi", at)
	}
	if st := p.Stats(); st.Resets != 1 {
		t.Errorf("%d resets: want 1", st.Resets)
	}
}

// Truncate on Down passes the first bytes of an answer, then closes.
func TestTruncateAnswer(t *testing.T) {
	s, p := setup(t)
	c := dial(t, p)
	p.Set(faultproxy.Down, faultproxy.Fault{Mode: faultproxy.Truncate, Bytes: 6})
	c.Write([]byte("a whole answer"))
	got, _ := readAll(c)
	if got != "a whol" {
		t.Errorf("the client read %q: want the first 6 bytes", got)
	}
	if at := s.ended(t, 0); at != "a whole answer" {
		t.Errorf("the server read %q: want the whole request", at)
	}
}

// Blackhole on Down: the request reaches the server, the answer never
// comes back, and the connection hangs until Heal closes it.
func TestBlackholeAnswersOnly(t *testing.T) {
	s, p := setup(t)
	c := dial(t, p)
	roundTrip(t, c, "first")
	p.Set(faultproxy.Down, faultproxy.Fault{Mode: faultproxy.Blackhole})
	c.Write([]byte("second"))
	deadline := time.Now().Add(10 * time.Second)
	for s.received(0) != "firstsecond" {
		if time.Now().After(deadline) {
			t.Fatalf("the server read %q: want the request to pass", s.received(0))
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var ne net.Error
	if n, err := c.Read(make([]byte, 10)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("the client read %d bytes, %v: want nothing (a timeout)", n, err)
	}
	p.Heal()
	if _, err := readAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("after Heal the blackholed connection ended with %v", err)
	}
	if st := p.Stats(); st.Healed != 1 || st.Discarded[1] != int64(len("second")) {
		t.Errorf("stats %+v: want one connection healed and the answer discarded", st)
	}
	roundTrip(t, dial(t, p), "a new connection passes")
}

// Blackhole both ways: nothing reaches the server, nothing comes back,
// new connections included.
func TestBlackholeBothWays(t *testing.T) {
	s, p := setup(t)
	p.Set(faultproxy.Both, faultproxy.Fault{Mode: faultproxy.Blackhole})
	c := dial(t, p)
	c.Write([]byte("lost"))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var ne net.Error
	if n, err := c.Read(make([]byte, 10)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("the client read %d bytes, %v: want nothing (a timeout)", n, err)
	}
	p.Heal()
	readAll(c)
	if got := s.ended(t, 0); got != "" {
		t.Errorf("the server read %q through a blackhole", got)
	}
}

// One way, the other: requests are lost, answers would pass.
func TestBlackholeRequestsOnly(t *testing.T) {
	s, p := setup(t)
	c := dial(t, p)
	roundTrip(t, c, "ok")
	p.Set(faultproxy.Up, faultproxy.Fault{Mode: faultproxy.Blackhole})
	c.Write([]byte("lost"))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := c.Read(make([]byte, 10)); n != 0 {
		t.Errorf("read %d bytes through a blackholed request", n)
	}
	p.Heal()
	readAll(c)
	if got := s.ended(t, 0); got != "ok" {
		t.Errorf("the server read %q: want only what came before the blackhole", got)
	}
	if up, down := p.Faults(); up.Mode != faultproxy.Pass || down.Mode != faultproxy.Pass {
		t.Errorf("after Heal the faults are %v and %v", up, down)
	}
}

// The target down: connections through the proxy are reset.
func TestTargetDown(t *testing.T) {
	// Port 1 (tcpmux) has no listener on a test machine.
	p, err := faultproxy.New("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got, err := refused(p); err == nil {
		t.Errorf("read %q through a proxy to nothing: want a reset", got)
	}
}

// Strand blackholes the open connections only: a new one passes.
func TestStrandBlackholesOpenConnections(t *testing.T) {
	s, p := setup(t)
	old := dial(t, p)
	roundTrip(t, old, "before")
	p.Strand()
	old.Write([]byte("lost"))
	roundTrip(t, dial(t, p), "a new connection passes")
	old.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := old.Read(make([]byte, 10)); n != 0 {
		t.Errorf("read %d bytes on a stranded connection", n)
	}
	p.Heal()
	readAll(old)
	if got := s.ended(t, 0); got != "before" {
		t.Errorf("the server read %q on the stranded connection: want only what came before", got)
	}
}
