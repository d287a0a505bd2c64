package provider

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// Connection limits (docs/ratelimits.md, "Connections"). The rate limits
// count requests; a client that opens connections and keeps them (idle
// keep-alives, WebSocket streams, TLS handshakes it never finishes) costs
// descriptors, buffers and goroutines without making any. The limiter
// counts the client API's open connections, all together and per source
// address, at the listener, under TLS, so a stream (a hijacked connection)
// counts until it closes.
//
// A connection past a limit is still accepted, up to a margin, so that
// its first request can be answered clearly: 429 too_many_connections
// (the source's limit) or 503 too_many_connections (the provider's), with
// Retry-After and Connection: close, before any WebSocket upgrade. Past
// the margin a connection is closed at once, unanswered: a flood cannot
// make the provider hold more than the limit and the margin.

// ConnLimits bound the client API's open connections. A zero field takes
// its default; a negative one switches that limit off.
type ConnLimits struct {
	// Total bounds all open connections of the listener.
	Total int
	// PerSource bounds the open connections of one source: one IPv4
	// address, or one IPv6 /64 (what one subscriber is usually given).
	PerSource int
}

// The defaults: a person's devices hold a stream each and now and then a
// second connection for a request, so 1,000 leaves room for many people
// behind one NAT, and 20,000 streams (about 16 KiB each, and a goroutine)
// fit a small machine. Behind a balancer that hides the clients'
// addresses every connection has the balancer's: switch PerSource off
// there and limit at the balancer (docs/deploy.md).
const (
	defaultConnTotal     = 20000
	defaultConnPerSource = 1000
)

// connMargin is how many connections past a limit are kept long enough to
// be answered: for a source, its limit's tenth (at least 4, at most 64);
// for the listener, its tenth (at least 16, at most 1,024).
func connMargin(limit, lo, hi int) int {
	return min(max(limit/10, lo), hi)
}

func (c *ConnLimits) fill(d ConnLimits) {
	if c.Total == 0 {
		c.Total = d.Total
	}
	if c.PerSource == 0 {
		c.PerSource = d.PerSource
	}
}

// connLimiter counts the open connections of one listener.
type connLimiter struct {
	s        *Server
	limits   ConnLimits
	mu       sync.Mutex
	total    int
	bySource map[netip.Addr]int
}

// LimitListener wraps the client API's listener (under its TLS, if any)
// with the connection limits; the http.Server serving it must take
// ConnContext, so that requests on a connection past a limit are refused.
// With both limits off it returns ln.
func (s *Server) LimitListener(ln net.Listener) net.Listener {
	if s.cfg.Connections.Total < 0 && s.cfg.Connections.PerSource < 0 {
		return ln
	}
	return &limitedListener{Listener: ln, l: &connLimiter{s: s, limits: s.cfg.Connections, bySource: map[netip.Addr]int{}}}
}

type limitedListener struct {
	net.Listener
	l *connLimiter
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		over, ok := ll.l.admit(src)
		if !ok {
			// Past the margin: nothing is read or written.
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: ll.l, src: src, over: over}, nil
	}
}

// sourceOf is what the per-source limit counts by: the IPv4 address, or
// the IPv6 address's /64.
func sourceOf(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// admit counts a new connection from src. over names the limit it is
// past ("" for none), and ok is false past the margin too, when it is
// not counted and must be closed.
func (l *connLimiter) admit(src netip.Addr) (over string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.bySource[src]
	switch {
	case l.limits.Total >= 0 && l.total >= l.limits.Total:
		over = "total"
		if l.total >= l.limits.Total+connMargin(l.limits.Total, 16, 1024) {
			l.s.metrics.connRefused.WithLabelValues(over).Inc()
			return over, false
		}
	case l.limits.PerSource >= 0 && n >= l.limits.PerSource:
		over = "source"
		if n >= l.limits.PerSource+connMargin(l.limits.PerSource, 4, 64) {
			l.s.metrics.connRefused.WithLabelValues(over).Inc()
			return over, false
		}
	}
	l.total++
	l.bySource[src] = n + 1
	l.s.metrics.connsOpen.Inc()
	return over, true
}

func (l *connLimiter) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.bySource[src] - 1; n > 0 {
		l.bySource[src] = n
	} else {
		delete(l.bySource, src)
	}
	l.s.metrics.connsOpen.Dec()
}

// limitedConn is a counted connection; over is the limit it was past when
// accepted.
type limitedConn struct {
	net.Conn
	l     *connLimiter
	src   netip.Addr
	over  string
	close sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.close.Do(func() { c.l.release(c.src) })
	return err
}

type overLimitKey struct{}

// ConnContext is the client API's http.Server.ConnContext: it marks the
// requests of a connection accepted past a limit.
func (s *Server) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*limitedConn); ok && lc.over != "" {
		return context.WithValue(ctx, overLimitKey{}, lc.over)
	}
	return ctx
}

// overLimit refuses a request of a connection past a limit, if it is one.
func (s *Server) overLimit(w http.ResponseWriter, r *http.Request) bool {
	over, _ := r.Context().Value(overLimitKey{}).(string)
	if over == "" {
		return false
	}
	s.metrics.connRefused.WithLabelValues(over).Inc()
	// The answer ends the connection, which frees its place.
	w.Header().Set("Connection", "close")
	s.refuseConn.ServeHTTP(w, r)
	return true
}

// errTooManyConnections refuses a connection past a limit: the source's
// (429) or the provider's (503).
func errTooManyConnections(over string, limits ConnLimits) *Error {
	if over == "total" {
		return &Error{Code: "too_many_connections", Status: http.StatusServiceUnavailable, retryAfter: 5,
			Message: fmt.Sprintf("the provider holds its most connections (%d); try again later", limits.Total)}
	}
	return &Error{Code: "too_many_connections", Status: http.StatusTooManyRequests, retryAfter: 5,
		Message: fmt.Sprintf("this address holds the most connections one source may (%d); close some, or try again later", limits.PerSource)}
}
