package bus_test

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bus"
)

// privateNATS runs a nats-server of the test's own (so that it can be
// restarted without disturbing anyone), on a fixed free port and a store
// directory that outlives restarts. It skips without the binary.
type privateNATS struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPrivateNATS(t *testing.T) *privateNATS {
	t.Helper()
	bin := os.Getenv("SWITCHBOARD_NATS_SERVER")
	if bin == "" {
		bin = "nats-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		if _, e := os.Stat("/usr/sbin/nats-server"); e == nil {
			path = "/usr/sbin/nats-server"
		} else {
			msg := "skipping: no nats-server binary to restart (set SWITCHBOARD_NATS_SERVER): " + err.Error()
			if os.Getenv("SWITCHBOARD_REQUIRE_SERVICES") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &privateNATS{t: t, bin: path, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *privateNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *privateNATS) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "-a", "127.0.0.1", "-p", fmt.Sprint(s.port), "-js", "-sd", s.dir)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port)); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("nats-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop shuts the server down as a restart by an operator or a service
// manager would (SIGTERM: JetStream flushes its store first).
func (s *privateNATS) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
		s.cmd = nil
	}
}

// NATS is killed and started again: meanwhile nothing crosses and no
// lease can be taken (an error, not a refusal); afterwards the replicas'
// connections and subscriptions are back by themselves, wake-ups cross
// again, and a lease whose holder kept renewing is still held.
func TestNATSRestart(t *testing.T) {
	srv := startPrivateNATS(t)
	const ttl = 8 * time.Second
	dial := func(name string) *bus.NATS {
		b, err := bus.DialNATS(bus.NATSOptions{URL: srv.url(), Domain: "green.test", Name: name, LeaseTTL: ttl, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	a, b := dial("a"), dial("b")
	wb := watch(b)
	b.NATSConn().Flush()
	a.WakeDevices([]int64{1})
	wb.wait(t, []int64{1})
	heldA, _, ok, err := a.Acquire(t.Context(), "blue.test")
	if err != nil || !ok {
		t.Fatalf("A could not take a free lease: ok=%v err=%v", ok, err)
	}

	srv.stop()
	if _, _, ok, err := b.Acquire(t.Context(), "red.test"); ok || err == nil {
		t.Fatalf("with NATS down, Acquire gave ok=%v err=%v; want an error", ok, err)
	}
	srv.start()

	// Back well within the TTL: A's lease survived on disk and A renews it.
	deadline := time.Now().Add(10 * time.Second)
	for !a.NATSConn().IsConnected() || !b.NATSConn().IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the buses did not reconnect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.NATSConn().Flush()
	a.WakeDevices([]int64{2})
	wb.wait(t, []int64{1, 2})
	if heldA.Err() != nil {
		t.Fatal("A gave its lease up over a restart well within the TTL")
	}
	if _, _, ok, err := b.Acquire(t.Context(), "blue.test"); err != nil || ok {
		t.Fatalf("B took blue.test from A after the restart: ok=%v err=%v", ok, err)
	}
	time.Sleep(ttl / 2) // A renews across the restart
	if heldA.Err() != nil {
		t.Fatal("A lost its lease over a restart shorter than the TTL")
	}
	if _, _, ok, err := b.Acquire(t.Context(), "red.test"); err != nil || !ok {
		t.Fatalf("after the restart B could not take a free lease: ok=%v err=%v", ok, err)
	}
}

// testLogger shows the buses' logs with SWITCHBOARD_TEST_LOG set.
func testLogger() *slog.Logger {
	if os.Getenv("SWITCHBOARD_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
