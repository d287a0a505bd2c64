package proctest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildBinary builds cmd/switchboard once into a temporary directory, from
// the module's root, as an operator would.
func BuildBinary(t *testing.T) string {
	t.Helper()
	bin, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Admin runs a `switchboard admin` command and returns its output.
func Admin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"admin"}, args...)...).CombinedOutput() // #nosec G204 -- the binary this package built
	if err != nil {
		t.Fatalf("switchboard admin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// AddUser makes a user with `switchboard admin user add` and returns the
// enrollment code it prints for the first device.
func AddUser(t *testing.T, bin, handle string, storeArgs ...string) string {
	t.Helper()
	out := Admin(t, bin, append([]string{"user", "add", handle}, storeArgs...)...)
	m := enrollmentCode.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no enrollment code in the output of admin user add %s:\n%s", handle, out)
	}
	return m[1]
}

// EnrollDevice makes an enrollment code for another device of a user
// with `switchboard admin user enroll` and returns it.
func EnrollDevice(t *testing.T, bin, handle string, storeArgs ...string) string {
	t.Helper()
	out := Admin(t, bin, append([]string{"user", "enroll", handle}, storeArgs...)...)
	m := enrollmentCode.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no enrollment code in the output of admin user enroll %s:\n%s", handle, out)
	}
	return m[1]
}

// enrollmentCode finds the code in what `admin user add` and `admin user
// enroll` print.
var enrollmentCode = regexp.MustCompile(`single use\):\s+(\S+)`)

// Proc is one `switchboard serve` process, with the addresses it printed.
type Proc struct {
	Name    string
	Client  string // the client API's base URL
	FedAddr string // the federation listener's address
	BusName string // its name on the bus, if any

	cmd      *exec.Cmd
	exited   chan struct{}
	log      *os.File
	stopOnce sync.Once
}

var (
	servingLine = regexp.MustCompile(`^Switchboard provider \S+ serving (\S+) `)
	fedLine     = regexp.MustCompile(`^Switchboard federation for \S+ serving https://(\S+) `)
	busLine     = regexp.MustCompile(`^Replica name on the bus: (\S+)`)
)

// Serve starts `switchboard serve` with args and returns once it serves.
// Its output goes to a log file in logDir (and to stderr with
// SWITCHBOARD_TEST_LOG set), shown at the end if the test failed; it is
// stopped with SIGTERM when the test ends.
func Serve(t *testing.T, bin, logDir, name string, args ...string) *Proc {
	t.Helper()
	return ServeEnv(t, bin, logDir, name, nil, args...)
}

// ServeEnv is Serve with env added to the process's environment (such as
// a crash point, SWITCHBOARD_CRASH_AT).
func ServeEnv(t *testing.T, bin, logDir, name string, env []string, args ...string) *Proc {
	t.Helper()
	// A restart's log goes beside the first one's: NAME.log, NAME.2.log...
	logName := filepath.Join(logDir, name+".log")
	for i := 2; ; i++ {
		if _, err := os.Stat(logName); os.IsNotExist(err) {
			break
		}
		logName = filepath.Join(logDir, fmt.Sprintf("%s.%d.log", name, i))
	}
	logFile, err := os.Create(logName) // #nosec G304 -- a log file in the test's own directory
	if err != nil {
		t.Fatal(err)
	}
	var logOut io.Writer = logFile
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		logOut = io.MultiWriter(logFile, PrefixWriter{name, os.Stderr})
	}
	p := &Proc{Name: name, exited: make(chan struct{}), log: logFile}
	p.cmd = exec.Command(bin, append([]string{"serve"}, args...)...) // #nosec G204 -- the binary this package built
	p.cmd.Stderr = logOut
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
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
				p.FedAddr = m[1]
			}
			if m := busLine.FindStringSubmatch(line); m != nil {
				p.BusName = m[1]
			}
			// The client API's line comes last.
			if m := servingLine.FindStringSubmatch(line); m != nil && !announced {
				p.Client, announced = m[1], true
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
		p.Stop()
		if t.Failed() {
			ShowLog(t, p)
		}
	})
	select {
	case <-ready:
	case <-p.exited:
		ShowLog(t, p)
		t.Fatalf("%s exited at start: %v", name, p.cmd.ProcessState)
	case <-time.After(30 * time.Second):
		ShowLog(t, p)
		t.Fatalf("%s did not say it was serving within 30s", name)
	}
	return p
}

// Exited says whether the process has ended, by itself or stopped.
func (p *Proc) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Kill ends the process the way a crash does: SIGKILL, nothing drained.
func (p *Proc) Kill() {
	p.stopOnce.Do(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
}

// Stop ends the process as a service manager does: SIGTERM, which drains,
// then SIGKILL if it has not exited within 15 seconds.
func (p *Proc) Stop() {
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

// ShowLog logs the end of a process's log.
func ShowLog(t *testing.T, p *Proc) {
	data, err := os.ReadFile(p.log.Name())
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	t.Logf("the last lines of %s's log (%s):\n  %s", p.Name, p.log.Name(), strings.Join(lines, "\n  "))
}

// LogCount counts the lines of a process's logs (every start of it)
// that contain s.
func LogCount(dir, name, s string) int {
	n := 0
	files, _ := filepath.Glob(filepath.Join(dir, name+".*log"))
	for _, f := range files {
		data, _ := os.ReadFile(f) // #nosec G304 -- a log file this package wrote
		n += bytes.Count(data, []byte(s))
	}
	return n
}

// PrefixWriter echoes a process's output with its name.
type PrefixWriter struct {
	Name string
	W    io.Writer
}

func (p PrefixWriter) Write(b []byte) (int, error) {
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) > 0 {
			fmt.Fprintf(p.W, "%s: %s", p.Name, line)
		}
	}
	return len(b), nil
}
