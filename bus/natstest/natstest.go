// Package natstest gives tests a NATS server with JetStream, as
// store/postgres/pgtest gives them PostgreSQL: the machine's shared server
// (URL), or a private one of the test's own that it may stop and start
// again (Start), for what a NATS restart does to the replicas of a
// provider.
package natstest

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultURL is the NATS tests use when SWITCHBOARD_NATS is not set: the
// machine's own server, which .ci/run starts.
const DefaultURL = "nats://127.0.0.1:4222"

// requireEnv set to 1 turns a missing service into a failure (.ci/run
// sets it).
const requireEnv = "SWITCHBOARD_REQUIRE_SERVICES"

// URL is the shared NATS server's URL, $SWITCHBOARD_NATS or DefaultURL.
// When nothing answers there the test is skipped, saying why, unless
// SWITCHBOARD_REQUIRE_SERVICES=1, which makes it fail instead. Tests on
// the shared server keep apart by using domains of their own.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("SWITCHBOARD_NATS")
	if u == "" {
		u = DefaultURL
	}
	p, err := url.Parse(u)
	if err == nil {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", p.Host, 2*time.Second); err == nil { // #nosec G704 -- the NATS address of the test's own configuration
			c.Close()
			return u
		}
	}
	missing(t, "no NATS server at "+u+" (set SWITCHBOARD_NATS to one, or start one: nats-server -js; .ci/run starts it): "+err.Error())
	return ""
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s (required: %s=1)", why, requireEnv)
	}
	t.Skip("skipping: " + why)
}

// Server is a nats-server run by the test, with JetStream on a store
// directory of its own that outlives restarts, on a port that stays the
// same, so that clients reconnect to it as they would to a restarted
// production server. It is stopped when the test ends.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	stderr bytes.Buffer
}

// Start runs a private nats-server ($SWITCHBOARD_NATS_SERVER, else
// nats-server on the PATH or in /usr/sbin). Without the binary the test
// is skipped, saying why, or fails under SWITCHBOARD_REQUIRE_SERVICES=1.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("SWITCHBOARD_NATS_SERVER")
	path, err := exec.LookPath(bin)
	if bin == "" {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		if path, err = exec.LookPath("nats-server"); err != nil {
			path, err = exec.LookPath("/usr/sbin/nats-server")
		}
	}
	if err != nil {
		missing(t, "no nats-server binary to run a private server (install nats-server or set SWITCHBOARD_NATS_SERVER): "+err.Error())
	}
	// A free port, kept for every restart.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{t: t, bin: path, port: port, dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's client URL, the same across restarts.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Start starts the server again after Stop, on the same port and store
// directory, and returns once it accepts connections. It does nothing if
// the server is running.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	s.stderr.Reset()
	cmd := exec.Command(s.bin, "-a", "127.0.0.1", "-p", fmt.Sprint(s.port), "-js", "-sd", s.dir) // #nosec G204 -- the nats-server found on PATH, with arguments of its own
	cmd.Stdout, cmd.Stderr = &s.stderr, &s.stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("nats-server on port %d exited at start: %s", s.port, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited // its output is complete
			s.cmd = nil
			s.t.Fatalf("nats-server on port %d did not accept connections within 10s: %s", s.port, s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down as an operator or a service manager would:
// SIGTERM, so that JetStream flushes its store, then SIGKILL if it has
// not exited within 10 seconds. It does nothing if the server is stopped.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}
