package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Providers as `switchboard serve` processes (--spawn): the bench starts
// each one as an operator would, with a configuration file of its own,
// then makes them partners the documented way (docs/federation.md: each
// trust file lists the others' federation endpoint and CA, and SIGHUP
// reloads it), and uses them as it uses --target providers. Their CPU time
// and memory are then theirs alone, measured from /proc like a target's.

// spawnTimeout bounds how long a provider may take to start and say it
// is ready, and its partners to be configured.
const spawnTimeout = time.Minute

// child is one `switchboard serve` process started by the bench.
type child struct {
	domain    string
	dataDir   string
	trustFile string // "" without federation
	logPath   string
	cmd       *exec.Cmd
	exited    chan struct{}

	// What it printed once serving.
	clientURL string
	fedAddr   string
	pprofURL  string

	// reloaded receives a value each time its log says the trust file was
	// reloaded.
	reloaded chan struct{}
	stopOnce sync.Once
}

var (
	servingLine = regexp.MustCompile(`^Switchboard provider \S+ serving (\S+) `)
	fedLine     = regexp.MustCompile(`^Switchboard federation for \S+ serving https://(\S+) `)
	pprofLine   = regexp.MustCompile(`^Runtime profiles at (\S+)/debug/pprof/`)
)

// benchServeConfig is the configuration file of a spawned provider: the
// settings the in-process bench gives its providers (startEnv), in the
// keys of `serve`'s file.
func benchServeConfig(domain, dataDir, trustFile string) ([]byte, error) {
	off := map[string]bool{"off": true}
	cfg := map[string]any{
		"listen":   "127.0.0.1:0",
		"domain":   domain,
		"data_dir": dataDir,
		// The body limits are the defaults (max_commit_bytes takes a
		// commit to a room of 1,000); the bench measures capacity, not
		// the rate limits.
		"rate_limits": map[string]any{"user": off, "room": off, "partner": off},
		// Every simulated device connects from 127.0.0.1.
		"connection_limits": map[string]int{"per_source": -1, "total": -1},
	}
	if trustFile != "" {
		cfg["federation_listen"] = "127.0.0.1:0"
		cfg["trust_file"] = trustFile
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// spawnProviders starts n providers as child processes of bin, with data
// under dir and logs in logDir (named run-DOMAIN.log), and makes them
// partners of one another. On error, the ones started are stopped.
func spawnProviders(ctx context.Context, bin string, n int, dir, logDir, run string) ([]*child, error) {
	ctx, cancel := context.WithTimeout(ctx, spawnTimeout)
	defer cancel()
	var kids []*child
	fail := func(err error) ([]*child, error) {
		stopChildren(kids)
		return nil, err
	}
	for _, domain := range benchDomains[:n] {
		c, err := startChild(ctx, bin, domain, dir, filepath.Join(logDir, run+"-"+domain+".log"), n > 1)
		if err != nil {
			return fail(err)
		}
		kids = append(kids, c)
	}
	if n > 1 {
		if err := partner(ctx, kids); err != nil {
			return fail(err)
		}
	}
	return kids, nil
}

// startChild starts one provider and returns once it answers /readyz.
func startChild(ctx context.Context, bin, domain, dir, logPath string, federated bool) (*child, error) {
	data := filepath.Join(dir, domain)
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	c := &child{domain: domain, dataDir: data, exited: make(chan struct{}), reloaded: make(chan struct{}, 1)}
	if federated {
		// No partners yet: they are listed once every provider has its CA
		// and federation address.
		c.trustFile = filepath.Join(dir, domain+".trust.json")
		if err := os.WriteFile(c.trustFile, []byte(`{"partners": []}`), 0o600); err != nil {
			return nil, err
		}
	}
	cfg, err := benchServeConfig(domain, data, c.trustFile)
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, domain+".json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		return nil, err
	}
	c.logPath = logPath
	logFile, err := os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(bin, "serve", "--config", cfgFile, "--pprof", "127.0.0.1:0") // #nosec G204 -- bin is the switchboard binary the bench built or was given
	c.cmd.SysProcAttr = childAttr()
	c.cmd.Stderr = &logWatch{w: logFile, on: "SIGHUP: trust file reloaded", seen: c.reloaded}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		logFile.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		logFile.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return nil, fmt.Errorf("bench: starting %s (%s serve): %w", domain, bin, err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		announced := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if m := fedLine.FindStringSubmatch(line); m != nil {
				c.fedAddr = m[1]
			}
			if m := pprofLine.FindStringSubmatch(line); m != nil {
				c.pprofURL = m[1]
			}
			// The client API's line comes last.
			if m := servingLine.FindStringSubmatch(line); m != nil && !announced {
				c.clientURL, announced = m[1], true
				close(serving)
			}
		}
		c.cmd.Wait()
		logFile.Close() // #nosec G104 -- the process has exited; its log is complete
		close(c.exited)
	}()
	select {
	case <-serving:
	case <-c.exited:
		return nil, fmt.Errorf("bench: %s exited at start (%v); its log: %s", domain, c.cmd.ProcessState, c.logPath)
	case <-ctx.Done():
		c.stop()
		// Wrapped: an interrupted bench is no failure.
		return nil, fmt.Errorf("bench: %s did not start serving (%w); its log: %s", domain, ctx.Err(), c.logPath)
	}
	if err := c.waitReady(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitReady polls /readyz until the provider answers 200.
func (c *child) waitReady(ctx context.Context) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.clientURL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body) // #nosec G104 -- draining a health check's body
			resp.Body.Close()              // #nosec G104 -- draining a health check's body
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("bench: %s exited before it was ready (%v); its log: %s", c.domain, c.cmd.ProcessState, c.logPath)
		case <-ctx.Done():
			return fmt.Errorf("bench: %s not ready (%w); its log: %s", c.domain, ctx.Err(), c.logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// partner makes every provider a partner of every other, as their
// operators would: each writes its trust file with the others' federation
// endpoints and CA certificates (ca.pem of their data directories), then
// has its provider reload it with SIGHUP.
func partner(ctx context.Context, kids []*child) error {
	type entry struct {
		Domain   string `json:"domain"`
		Endpoint string `json:"endpoint"`
		CAPEM    string `json:"ca_pem"`
	}
	cas := make([]string, len(kids))
	for i, c := range kids {
		if c.fedAddr == "" {
			return fmt.Errorf("bench: %s did not say where it serves federation; its log: %s", c.domain, c.logPath)
		}
		ca, err := os.ReadFile(filepath.Join(c.dataDir, "ca.pem"))
		if err != nil {
			return fmt.Errorf("bench: %s's CA certificate: %w", c.domain, err)
		}
		cas[i] = string(ca)
	}
	for i, c := range kids {
		var partners []entry
		for j, o := range kids {
			if j != i {
				partners = append(partners, entry{Domain: o.domain, Endpoint: "https://" + o.fedAddr, CAPEM: cas[j]})
			}
		}
		data, err := json.MarshalIndent(map[string]any{"partners": partners}, "", "  ")
		if err != nil {
			return err
		}
		// Written whole, then renamed: the provider also re-reads the file
		// on its own every 30 seconds.
		if err := os.WriteFile(c.trustFile+".tmp", data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(c.trustFile+".tmp", c.trustFile); err != nil {
			return err
		}
		if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return fmt.Errorf("bench: SIGHUP to %s: %w", c.domain, err)
		}
	}
	for _, c := range kids {
		select {
		case <-c.reloaded:
		case <-c.exited:
			return fmt.Errorf("bench: %s exited (%v); its log: %s", c.domain, c.cmd.ProcessState, c.logPath)
		case <-ctx.Done():
			return fmt.Errorf("bench: %s did not reload its trust file (%w); its log: %s", c.domain, ctx.Err(), c.logPath)
		}
	}
	return nil
}

// stop ends the provider as a service manager does: SIGTERM, which
// drains, then SIGKILL if it has not exited within 10 seconds. It returns
// once the process is gone.
func (c *child) stop() {
	c.stopOnce.Do(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
	})
}

// stopChildren stops the providers at once and waits for them all.
func stopChildren(kids []*child) {
	var wg sync.WaitGroup
	for _, c := range kids {
		wg.Go(c.stop)
	}
	wg.Wait()
}

// logWatch writes a process's log to w and sends on seen (without
// blocking) each time a line holds on.
type logWatch struct {
	w    io.Writer
	on   string
	seen chan struct{}
	part []byte // a line not yet ended
}

func (l *logWatch) Write(b []byte) (int, error) {
	l.part = append(l.part, b...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		if strings.Contains(string(l.part[:i]), l.on) {
			select {
			case l.seen <- struct{}{}:
			default:
			}
		}
		l.part = l.part[i+1:]
	}
	return l.w.Write(b)
}

// benchBinary is the switchboard binary to spawn: the given one, or this
// process's own.
func benchBinary(s *Settings) (string, error) {
	if s.Binary != "" {
		return s.Binary, nil
	}
	bin, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("bench: finding this program to start providers with: %w", err)
	}
	return bin, nil
}

// errLogs adds where the providers' logs are kept to a run's error.
func errLogs(err error, logDir string) error {
	if err == nil || logDir == "" {
		return err
	}
	return fmt.Errorf("%w\nthe providers' logs are kept in %s", err, logDir)
}

// runtimeAtEnd adds the spawned providers' runtime figures to r (nothing
// for other providers), and saves the first one's profiles if profiles
// is set.
func (e *env) runtimeAtEnd(ctx context.Context, r *Resources, profiles string) error {
	rt, err := spawnedRuntime(ctx, e)
	if err != nil || rt == nil {
		return err
	}
	r.LiveGoHeapBytes, r.GoStackBytes, r.Goroutines = rt.HeapAlloc, rt.StackInuse, rt.Goroutines
	if profiles == "" {
		return nil
	}
	if err := saveProfile(ctx, e.provs[0].pprofURL, "heap", profiles); err != nil {
		return err
	}
	return saveProfile(ctx, e.provs[0].pprofURL, "goroutine", profiles+".goroutine")
}
