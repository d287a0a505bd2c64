package bench_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bench"
)

// The providers as `switchboard serve` processes (--spawn): the bench
// starts them from the switchboard binary, built here once as an operator
// would build it, makes them partners, runs the workload against them and
// stops them.

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// switchboardBinary builds cmd/switchboard once for the package's tests.
func switchboardBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			binErr = err
			return
		}
		if binDir, binErr = os.MkdirTemp("", "switchboard-bench-test-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "switchboard")
		// The test runs in the bench package's directory: the command is
		// beside it.
		out, err := exec.Command(goBin, "build", "-o", binPath, "../cmd/switchboard").CombinedOutput()
		if err != nil {
			binErr = errors.New("go build ../cmd/switchboard: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// spawned makes tiny settings run on spawned providers, keeping their
// data and logs in a directory of the test's.
func spawned(t *testing.T, workload string) bench.Settings {
	s := tiny(workload)
	s.Spawn, s.Binary, s.Dir = true, switchboardBinary(t), t.TempDir()
	return s
}

// checkStopped checks that every provider the runs started was stopped as
// a service manager stops one (SIGTERM: its log says it drained) and has
// exited.
func checkStopped(t *testing.T, dir string, want int) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	if len(logs) != want {
		t.Fatalf("%d provider logs in %s, want %d", len(logs), dir, want)
	}
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "shutting down") {
			t.Errorf("%s was not stopped gracefully; its log:\n%s", l, data)
		}
	}
}

func TestPairsOnASpawnedProvider(t *testing.T) {
	s := spawned(t, bench.WorkloadPairs)
	s.Payloads = []string{bench.PayloadRelay}
	rep := runTiny(t, s)
	if !rep.Settings.Spawned || rep.Settings.InProcess {
		t.Errorf("settings: spawned %v, in process %v", rep.Settings.Spawned, rep.Settings.InProcess)
	}
	r := rep.Runs[0]
	checkDelivered(t, r, 1)
	if len(r.Providers) != 1 || r.Providers[0] != "green.example" {
		t.Errorf("providers %v", r.Providers)
	}
	// The figures are the provider process's.
	if !r.Server.Measured || r.Server.PeakRSSBytes <= 0 || !strings.Contains(r.Server.Source, "spawned") {
		t.Errorf("server figures: %+v", r.Server)
	}
	// And its runtime's, read from its profiles with the devices still
	// connected: each device's stream holds goroutines in it.
	if r.Server.LiveGoHeapBytes <= 0 || r.Server.GoStackBytes <= 0 || r.Server.Goroutines < r.Devices {
		t.Errorf("runtime figures: %+v for %d devices", r.Server, r.Devices)
	}
	checkStopped(t, s.Dir, 1)
}

func TestPairsAcrossSpawnedProviders(t *testing.T) {
	s := spawned(t, bench.WorkloadPairs)
	// Each payload mode gets fresh providers; the message bound ends the
	// runs whatever the machine's speed.
	s.Cross, s.Window, s.Messages, s.Duration = true, 2, 20, 2*time.Minute
	rep := runTiny(t, s)
	if len(rep.Runs) != 2 {
		t.Fatalf("%d runs, want relay and e2ee", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		// Every message crossed from one provider to the other, over
		// mutual TLS between the processes.
		checkDelivered(t, r, 1)
		if len(r.Providers) != 2 {
			t.Errorf("%s: providers %v, want two", r.Name(), r.Providers)
		}
		if !r.Server.Measured || r.Server.PeakRSSBytes <= 0 {
			t.Errorf("%s: server figures: %+v", r.Name(), r.Server)
		}
	}
	checkStopped(t, s.Dir, 4)
}

func TestIdleStreamsOnASpawnedProvider(t *testing.T) {
	s := spawned(t, bench.WorkloadIdle)
	s.Duration = 500 * time.Millisecond
	rep := runTiny(t, s)
	f := rep.Runs[0].Idle
	if f == nil || f.Open != 20 {
		t.Fatalf("idle figures: %+v", f)
	}
	// The provider's own runtime figures, read from its profiles: each
	// stream holds goroutines in it.
	if f.HeapOpenBytes <= 0 || f.StackOpenBytes <= 0 || f.GoroutinesOpen < f.GoroutinesBefore+20 || f.Note != "the provider's process alone" {
		t.Errorf("memory figures: %+v", f)
	}
	checkStopped(t, s.Dir, 1)
}

// A provider that does not start fails the run with the path of its log,
// which is kept.
func TestASpawnedProviderThatFailsIsReported(t *testing.T) {
	s := tiny(bench.WorkloadPairs)
	s.Spawn, s.Dir = true, t.TempDir()
	s.Binary = filepath.Join(s.Dir, "not-switchboard")
	if err := os.WriteFile(s.Binary, []byte("#!/bin/sh\necho 'no such command' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := bench.Run(context.Background(), s, bench.Options{})
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), "logs are kept in") {
		t.Fatalf("Run = %v, want the provider's exit and its logs", err)
	}
	logs, _ := filepath.Glob(filepath.Join(s.Dir, "logs", "*.log"))
	if len(logs) != 1 {
		t.Fatalf("logs %v", logs)
	}
	if data, _ := os.ReadFile(logs[0]); !strings.Contains(string(data), "no such command") {
		t.Errorf("the log does not hold the provider's stderr: %q", data)
	}
}

// An idle run that cannot fit in the open files limit says so, with how
// many streams would, before it registers a device. In process both ends
// of each stream count against the one limit, so as many streams as the
// limit never fit.
func TestIdleBeyondTheOpenFilesLimitIsRefused(t *testing.T) {
	data, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Skip("no /proc/self/limits: the limit is not checked here")
	}
	var limit int
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				limit, _ = strconv.Atoi(f[0])
			}
		}
	}
	if limit <= 0 || limit > bench.MaxConns {
		t.Skipf("open files limit %d: more than --conns may ask", limit)
	}
	s := tiny(bench.WorkloadIdle)
	s.Conns, s.Dir = limit, t.TempDir()
	_, err = bench.Run(context.Background(), s, bench.Options{})
	if err == nil || !strings.Contains(err.Error(), "open files") || !strings.Contains(err.Error(), "use --conns") {
		t.Fatalf("Run = %v, want the open files limit and how many streams fit", err)
	}
}
