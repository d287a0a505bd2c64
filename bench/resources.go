package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server CPU and memory. Providers started in this process share it with
// the bench's own devices, so their figures are the whole process's:
// CPU time and resident memory from /proc/self, the Go heap from
// runtime/metrics. A target's are its process's alone, from /proc/PID,
// when its PID is given; otherwise they are not measured.

// Resources is what the providers used during a phase.
type Resources struct {
	// Source says whose figures these are and where they come from.
	Source string `json:"source"`
	// Measured is false when there was nothing to measure (targets given
	// without their PIDs).
	Measured bool `json:"measured"`
	// CPUSeconds is user and system CPU time; CPUCores that divided by
	// the wall time (1.0: one core busy throughout).
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUCores   float64 `json:"cpu_cores"`
	WallSecs   float64 `json:"wall_seconds"`
	// PeakRSSBytes is the highest resident memory sampled (summed over
	// the processes); PeakGoHeapBytes the highest Go heap (this process
	// only).
	PeakRSSBytes    int64 `json:"peak_rss_bytes"`
	PeakGoHeapBytes int64 `json:"peak_go_heap_bytes,omitempty"`
	// Spawned providers only (summed over them), at the end of the phase
	// with the devices still connected, after a garbage collection: the
	// Go heap's live objects, the goroutines' stacks, the goroutines.
	LiveGoHeapBytes int64 `json:"live_go_heap_bytes,omitempty"`
	GoStackBytes    int64 `json:"go_stack_bytes,omitempty"`
	Goroutines      int   `json:"goroutines,omitempty"`
}

// userHZ is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// Linux for every architecture Go supports).
const userHZ = 100

// procCPU is a process's user and system CPU time so far.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: unreadable %s", procPath(pid, "stat"))
	}
	f := strings.Fields(string(data[i+1:]))
	// After the name: state(0) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short %s", procPath(pid, "stat"))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: unreadable %s", procPath(pid, "stat"))
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// procRSS is a process's resident memory in bytes.
func procRSS(pid int) (int64, error) {
	data, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("bench: no VmRSS in %s", procPath(pid, "status"))
}

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + file
}

// goHeap is this process's heap objects, live and not yet swept.
func goHeap() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64()) // #nosec G115 -- a runtime/metrics counter, far below 2^63
}

// sampler watches the providers' processes during a phase.
type sampler struct {
	pids   []int // 0: this process
	source string

	startWall time.Time
	startCPU  []time.Duration

	mu       sync.Mutex
	peakRSS  []int64
	peakHeap int64

	stop chan struct{}
	done chan struct{}
}

// newSampler measures this process for in-process providers, or the
// targets' PIDs (none given: nothing).
func newSampler(e *env) *sampler {
	s := &sampler{}
	if e.local != nil {
		s.pids = []int{0}
		s.source = "this process, providers and bench devices together (/proc/self, runtime/metrics)"
		return s
	}
	for _, p := range e.provs {
		if p.pid == 0 {
			s.pids = nil
			s.source = "not measured: give each target's process ID (--pid)"
			return s
		}
		s.pids = append(s.pids, p.pid)
	}
	s.source = "the targets' processes (/proc/PID)"
	if e.kids != nil {
		s.source = "the providers' processes (switchboard serve, spawned; /proc/PID)"
	}
	return s
}

// start begins the phase: CPU time is counted from here, memory sampled
// every 100 ms.
func (s *sampler) start() {
	s.startWall = time.Now()
	s.startCPU = make([]time.Duration, len(s.pids))
	s.peakRSS = make([]int64, len(s.pids))
	for i, pid := range s.pids {
		s.startCPU[i], _ = procCPU(pid)
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
}

func (s *sampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, pid := range s.pids {
		if rss, err := procRSS(pid); err == nil {
			s.peakRSS[i] = max(s.peakRSS[i], rss)
		}
		if pid == 0 {
			s.peakHeap = max(s.peakHeap, goHeap())
		}
	}
}

// finish ends the phase and returns its figures.
func (s *sampler) finish() Resources {
	close(s.stop)
	<-s.done
	s.sample()
	r := Resources{Source: s.source, Measured: len(s.pids) > 0, WallSecs: time.Since(s.startWall).Seconds()}
	for i, pid := range s.pids {
		if cpu, err := procCPU(pid); err == nil {
			r.CPUSeconds += (cpu - s.startCPU[i]).Seconds()
		}
		r.PeakRSSBytes += s.peakRSS[i]
	}
	r.PeakGoHeapBytes = s.peakHeap
	if r.WallSecs > 0 {
		r.CPUCores = r.CPUSeconds / r.WallSecs
	}
	return r
}

// memoryNow is the providers' memory at this moment, after a garbage
// collection in this process: resident (summed over the processes) and
// Go heap (this process only).
func (s *sampler) memoryNow() (rss, heap int64) {
	runtime.GC()
	for _, pid := range s.pids {
		if r, err := procRSS(pid); err == nil {
			rss += r
		}
		if pid == 0 {
			heap = goHeap()
		}
	}
	return rss, heap
}

// procOpenFiles is a process's soft limit on open files (RLIMIT_NOFILE),
// from /proc/PID/limits; a Go program raises it to the hard limit at
// start.
func procOpenFiles(pid int) (int64, error) {
	data, err := os.ReadFile(procPath(pid, "limits"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				if f[0] == "unlimited" {
					return math.MaxInt64, nil
				}
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("bench: no open files limit in %s", procPath(pid, "limits"))
}

// goRuntime is a Go process's memory and goroutines, as a spawned
// provider serves them (serve --pprof): after a garbage collection, the
// heap's live objects and the goroutines' stacks.
type goRuntime struct {
	HeapAlloc  int64
	StackInuse int64
	Goroutines int
}

// readGoRuntime reads a spawned provider's runtime figures from its
// profiles: the heap profile's text form ends with runtime.MemStats
// ("# HeapAlloc = N", "# Stack = INUSE / SYS"; gc=1 collects first), and
// the goroutine profile's starts with "goroutine profile: total N".
func readGoRuntime(ctx context.Context, pprofURL string) (goRuntime, error) {
	var g goRuntime
	get := func(path string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", pprofURL+path, nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("bench: %s%s: %s", pprofURL, path, resp.Status)
		}
		return string(data), err
	}
	heap, err := get("/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return g, err
	}
	for _, line := range strings.Split(heap, "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			g.HeapAlloc, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "# Stack = "); ok {
			inuse, _, _ := strings.Cut(v, " /")
			g.StackInuse, _ = strconv.ParseInt(strings.TrimSpace(inuse), 10, 64)
		}
	}
	gr, err := get("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return g, err
	}
	first, _, _ := strings.Cut(gr, "\n")
	if v, ok := strings.CutPrefix(first, "goroutine profile: total "); ok {
		g.Goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
	}
	if g.HeapAlloc == 0 || g.Goroutines == 0 {
		return g, fmt.Errorf("bench: unreadable runtime figures at %s", pprofURL)
	}
	return g, nil
}

// saveProfile writes one of a spawned provider's profiles (name: heap,
// goroutine...) to path, in pprof's format.
func saveProfile(ctx context.Context, pprofURL, name, path string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", pprofURL+"/debug/pprof/"+name+"?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: %s profile: %s", name, resp.Status)
	}
	f, err := os.Create(path) // #nosec G304 -- the profile path the operator gave
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return err
	}
	return f.Close()
}
