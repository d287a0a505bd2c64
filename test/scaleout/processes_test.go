package scaleout_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// What the scenario runs: the binary, its processes and the load balancer.

// buildBinary builds cmd/switchboard once into a temporary directory, from
// the module's root, as an operator would.
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to build switchboard: %v", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("finding the module root (go env GOMOD): %v %s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "switchboard")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/switchboard")
	build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/switchboard: %v\n%s", err, out)
	}
	return bin
}

// admin runs a `switchboard admin` command and returns its output.
func admin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"admin"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard admin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// addUser makes a user with `switchboard admin user add` and returns the
// enrollment code it prints for the first device.
func addUser(t *testing.T, bin, handle string, storeArgs ...string) string {
	t.Helper()
	out := admin(t, bin, append([]string{"user", "add", handle}, storeArgs...)...)
	m := regexp.MustCompile(`single use\):\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no enrollment code in the output of admin user add %s:\n%s", handle, out)
	}
	return m[1]
}

// proc is one `switchboard serve` process, with the addresses it printed.
type proc struct {
	name     string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      *os.File
	client   string // the client API's base URL
	fedAddr  string // the federation listener's address
	busName  string // its name on the bus, if any
	stopOnce sync.Once
}

var (
	servingLine = regexp.MustCompile(`^Switchboard provider \S+ serving (\S+) `)
	fedLine     = regexp.MustCompile(`^Switchboard federation for \S+ serving https://(\S+) `)
	busLine     = regexp.MustCompile(`^Replica name on the bus: (\S+)`)
)

// serve starts `switchboard serve` with args and returns once it serves.
// Its output goes to a log file in logDir (and to stderr with
// SWITCHBOARD_TEST_LOG set), shown at the end if the test failed; it is
// stopped with SIGTERM when the test ends.
func serve(t *testing.T, bin, logDir, name string, args ...string) *proc {
	t.Helper()
	// A restart's log goes beside the first one's: NAME.log, NAME.2.log...
	logName := filepath.Join(logDir, name+".log")
	for i := 2; ; i++ {
		if _, err := os.Stat(logName); os.IsNotExist(err) {
			break
		}
		logName = filepath.Join(logDir, fmt.Sprintf("%s.%d.log", name, i))
	}
	logFile, err := os.Create(logName)
	if err != nil {
		t.Fatal(err)
	}
	var logOut io.Writer = logFile
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		logOut = io.MultiWriter(logFile, prefixWriter{name, os.Stderr})
	}
	p := &proc{name: name, exited: make(chan struct{}), log: logFile}
	p.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	p.cmd.Stderr = logOut
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	ready := make(chan struct{})
	var lines sync.WaitGroup
	lines.Go(func() {
		s := bufio.NewScanner(stdout)
		announced := false
		for s.Scan() {
			line := s.Text()
			fmt.Fprintln(logOut, line)
			if m := fedLine.FindStringSubmatch(line); m != nil {
				p.fedAddr = m[1]
			}
			if m := busLine.FindStringSubmatch(line); m != nil {
				p.busName = m[1]
			}
			// The client API's line comes last.
			if m := servingLine.FindStringSubmatch(line); m != nil && !announced {
				p.client, announced = m[1], true
				close(ready)
			}
		}
	})
	go func() {
		lines.Wait()
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			showLog(t, p)
		}
	})
	select {
	case <-ready:
	case <-p.exited:
		showLog(t, p)
		t.Fatalf("%s exited at start: %v", name, p.cmd.ProcessState)
	case <-time.After(30 * time.Second):
		showLog(t, p)
		t.Fatalf("%s did not say it was serving within 30s", name)
	}
	return p
}

// kill ends the process the way a crash does: SIGKILL, nothing drained.
func (p *proc) kill() {
	p.stopOnce.Do(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
}

// stop ends the process as a service manager does: SIGTERM, which drains,
// then SIGKILL if it has not exited within 15 seconds.
func (p *proc) stop() {
	p.stopOnce.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// showLog logs the end of a process's log.
func showLog(t *testing.T, p *proc) {
	data, err := os.ReadFile(p.log.Name())
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	t.Logf("the last lines of %s's log (%s):\n  %s", p.name, p.log.Name(), strings.Join(lines, "\n  "))
}

// logCount counts the lines of a process's logs (every start of it)
// that contain s.
func logCount(dir, name, s string) int {
	n := 0
	files, _ := filepath.Glob(filepath.Join(dir, name+".*log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		n += bytes.Count(data, []byte(s))
	}
	return n
}

// prefixWriter echoes a process's output with its name.
type prefixWriter struct {
	name string
	w    io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) > 0 {
			fmt.Fprintf(p.w, "%s: %s", p.name, line)
		}
	}
	return len(b), nil
}

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
