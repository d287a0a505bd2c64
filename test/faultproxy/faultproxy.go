// Package faultproxy is a TCP proxy on loopback that a test controls while
// it runs, to put a network fault between two programs: it delays, drops,
// resets, truncates or blackholes the bytes of one direction or both, and
// heals again. It knows nothing of what it carries (TLS passes through
// untouched), so what the programs see is what a real network does to
// them: slow links, refused connections, resets, answers cut short,
// connections that hang.
//
// Directions are named from the proxy's client: Up is what the client
// sends (requests), Down what the server sends back (answers). A fault on
// one direction only is a one-way partition; the dangerous case for
// exactly-once delivery is requests reaching the server while its answers
// are lost (Blackhole on Down).
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Direction says which bytes of a connection a fault applies to.
type Direction int

const (
	Up   Direction = 1 << iota // client to server: requests
	Down                       // server to client: answers
	Both = Up | Down
)

func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	case Both:
		return "both ways"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Mode is what happens to a direction's bytes.
type Mode int

const (
	// Pass forwards bytes as they come.
	Pass Mode = iota
	// Delay forwards every chunk Delay later than it was read, in order;
	// the connection's throughput is not otherwise limited.
	Delay
	// Drop closes (with a reset) every connection at once, new ones as
	// they are accepted and open ones when the fault is set: the partner
	// is unreachable. It affects whole connections, whichever direction
	// it is set on.
	Drop
	// Reset forwards Bytes more bytes of the direction, counted from when
	// the fault was set (or the connection opened, if later), then resets
	// the connection both ways (SO_LINGER 0 and close: an RST).
	Reset
	// Truncate forwards Bytes more bytes of the direction, counted as
	// Reset counts, then closes the connection both ways normally.
	Truncate
	// Blackhole reads the direction's bytes and forwards none of them;
	// the connection stays open and hangs.
	Blackhole
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Delay:
		return "delay"
	case Drop:
		return "drop"
	case Reset:
		return "reset"
	case Truncate:
		return "truncate"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Fault is a direction's mode and its parameter.
type Fault struct {
	Mode  Mode
	Delay time.Duration // for Delay
	Bytes int64         // for Reset and Truncate
}

func (f Fault) String() string {
	switch f.Mode {
	case Delay:
		return fmt.Sprintf("delay %v", f.Delay)
	case Reset, Truncate:
		return fmt.Sprintf("%v after %d bytes", f.Mode, f.Bytes)
	}
	return f.Mode.String()
}

// Stats counts what the proxy did since it started.
type Stats struct {
	Accepted  int64 // connections accepted
	Dropped   int64 // connections closed by Drop
	Resets    int64 // connections reset by Reset
	Truncated int64 // connections closed by Truncate
	Healed    int64 // broken connections closed by Heal
	// Forwarded and Discarded count bytes: indexed 0 for Up, 1 for Down.
	Forwarded, Discarded [2]int64
}

// Proxy forwards the connections it accepts on Addr to its target.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	faults [2]Fault // Up, Down
	gen    [2]int64 // bumped when a direction's fault changes
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup

	accepted, dropped, resets, truncated, healed atomic.Int64
	forwarded, discarded                         [2]atomic.Int64
}

// New listens on a free loopback port and forwards to target (host:port),
// passing everything until told otherwise.
func New(target string) (*Proxy, error) {
	return Listen("127.0.0.1:0", target)
}

// Listen is New on a given address.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set puts fault on the direction(s) d. Drop closes the open connections
// at once; other modes apply to the bytes read from now on, in open
// connections as in new ones.
func (p *Proxy) Set(d Direction, f Fault) {
	p.mu.Lock()
	for i := range 2 {
		if d&(1<<i) != 0 {
			p.faults[i] = f
			p.gen[i]++
		}
	}
	var kill []*conn
	if f.Mode == Drop {
		for c := range p.conns {
			kill = append(kill, c)
		}
	}
	p.mu.Unlock()
	for _, c := range kill {
		p.dropped.Add(1)
		c.reset()
	}
}

// Heal makes both directions pass again and closes every connection a
// fault has broken (bytes discarded, or cut off), so that the programs
// notice at once and connect again. Delayed bytes already read are still
// delivered late.
func (p *Proxy) Heal() {
	p.mu.Lock()
	for i := range 2 {
		p.faults[i] = Fault{}
		p.gen[i]++
	}
	var kill []*conn
	for c := range p.conns {
		if c.broken.Load() {
			kill = append(kill, c)
		}
	}
	p.mu.Unlock()
	for _, c := range kill {
		p.healed.Add(1)
		c.close()
	}
}

// Strand blackholes every open connection for good, both ways, while new
// connections pass as the faults say: what a NAT or load balancer that
// loses a connection's state does, leaving its ends to find out on their
// own. Heal closes the stranded connections that lost bytes.
func (p *Proxy) Strand() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.stranded.Store(true)
	}
}

// Faults returns the current fault of each direction.
func (p *Proxy) Faults() (up, down Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults[0], p.faults[1]
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	s := Stats{Accepted: p.accepted.Load(), Dropped: p.dropped.Load(), Resets: p.resets.Load(),
		Truncated: p.truncated.Load(), Healed: p.healed.Load()}
	for i := range 2 {
		s.Forwarded[i], s.Discarded[i] = p.forwarded[i].Load(), p.discarded[i].Load()
	}
	return s
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) fault(dir int) (Fault, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults[dir], p.gen[dir]
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		drop := p.faults[0].Mode == Drop || p.faults[1].Mode == Drop
		closed := p.closed
		p.mu.Unlock()
		if drop || closed {
			if drop {
				p.dropped.Add(1)
			}
			rst(client)
			continue
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

// conn is one proxied connection: the client's and the server's sides.
type conn struct {
	client, server net.Conn
	broken         atomic.Bool // a fault lost or cut some of its bytes
	stranded       atomic.Bool // Strand: blackholed both ways for good
	once           sync.Once
}

// reset closes both sides with an RST.
func (c *conn) reset() {
	c.broken.Store(true)
	c.once.Do(func() {
		rst(c.client)
		if c.server != nil {
			rst(c.server)
		}
	})
}

// close closes both sides normally.
func (c *conn) close() {
	c.once.Do(func() {
		c.client.Close()
		if c.server != nil {
			c.server.Close()
		}
	})
}

func rst(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // on a failure the close below is a plain FIN: the test sees a cut connection either way
	}
	nc.Close()
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		// The target is down: the client sees its connection reset, as
		// it would be refused without a proxy.
		rst(client)
		return
	}
	c := &conn{client: client, server: server}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	var pumps sync.WaitGroup
	pumps.Go(func() { p.pump(c, 0, client, server) })
	pumps.Go(func() { p.pump(c, 1, server, client) })
	pumps.Wait()
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// chunk is bytes read from one side, due to be written to the other, or
// (end set) the fault's last act on the connection, after the bytes before
// it: as the kernel would have sent them before the RST or FIN.
type chunk struct {
	data []byte
	due  time.Time
	end  Mode // Reset or Truncate
}

// pump carries one direction (dir 0 Up, 1 Down) of c from src to dst,
// applying that direction's fault to every chunk read.
func (p *Proxy) pump(c *conn, dir int, src, dst net.Conn) {
	// The writer is a goroutine of its own so that a delay holds back
	// the bytes, not the reading: latency, not a narrower pipe.
	out := make(chan chunk, 1024)
	var writer sync.WaitGroup
	writer.Go(func() {
		for ch := range out {
			switch ch.end {
			case Reset:
				c.reset()
				continue
			case Truncate:
				c.broken.Store(true)
				c.close()
				continue
			}
			if wait := time.Until(ch.due); wait > 0 {
				time.Sleep(wait)
			}
			if _, err := dst.Write(ch.data); err != nil {
				c.close()
				continue // drain
			}
			p.forwarded[dir].Add(int64(len(ch.data)))
		}
		// The source ended: end the other side's writing half, as a
		// plain TCP path passes the FIN on.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // a connection already gone needs no FIN
		}
	})
	defer writer.Wait()
	defer close(out)

	var gen int64 = -1
	var budget int64 // bytes left before Reset or Truncate acts
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f, g := p.fault(dir)
			if g != gen {
				gen, budget = g, f.Bytes
			}
			data := buf[:n]
			if c.stranded.Load() {
				f.Mode = Blackhole
			}
			switch f.Mode {
			case Pass, Drop:
				out <- chunk{data: clone(data)}
			case Delay:
				out <- chunk{data: clone(data), due: time.Now().Add(f.Delay)}
			case Blackhole:
				c.broken.Store(true)
				p.discarded[dir].Add(int64(n))
			case Reset, Truncate:
				pass := min(int64(n), budget)
				budget -= pass
				if pass > 0 {
					out <- chunk{data: clone(data[:pass])}
				}
				if pass < int64(n) {
					p.discarded[dir].Add(int64(n) - pass)
					c.broken.Store(true)
					if f.Mode == Reset {
						p.resets.Add(1)
					} else {
						p.truncated.Add(1)
					}
					out <- chunk{end: f.Mode}
					return
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.close()
			}
			return
		}
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
