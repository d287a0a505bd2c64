package bench

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// dialers is how many idle streams are being opened at once.
const dialers = 32

// runIdle opens a stream for each of Conns devices, measures the
// providers' memory with all of them open, and holds them for the
// duration. With spawned providers, profiles (if set) is where the
// provider's heap and goroutine profiles are written with every stream
// open.
func runIdle(ctx context.Context, s *Settings, dir string, p *progress, profiles string) (*Result, error) {
	setupStart := time.Now()
	p.line("idle: starting the provider and registering %d devices", s.Conns)
	e, err := startEnv(ctx, s, 1, dir)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if err := checkOpenFiles(e, s.Conns); err != nil {
		return nil, err
	}
	devs := make([]*device, s.Conns)
	err = parallel(ctx, s.Conns, 2*setupWorkers, func(ctx context.Context, i int) error {
		d, err := e.newRawDevice(ctx, e.provs[i%len(e.provs)], "i"+strconv.Itoa(i))
		devs[i] = d
		if err == nil {
			// The registration's connection is let go (an open file at
			// either end until the stream opens), and the stream comes
			// from a source address of its own.
			d.raw.tr.CloseIdleConnections()
			if dial := streamDialer(d.p.url, i, s.Conns); dial != nil {
				d.raw.tr.DialContext = dial
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	run := &Result{Workload: WorkloadIdle, Devices: s.Conns, Errors: map[string]int{}}
	for _, pr := range e.provs {
		run.Providers = append(run.Providers, pr.domain)
	}
	smp := newSampler(e)
	f := &IdleFigures{Conns: s.Conns}
	f.RSSBeforeBytes, f.HeapBeforeBytes = smp.memoryNow()
	before, err := spawnedRuntime(ctx, e)
	if err != nil {
		return nil, err
	}

	p.line("idle: opening %d streams", s.Conns)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		connect = newHist()
		open    atomic.Int64
		wg      sync.WaitGroup
		ready   sync.WaitGroup
		slots   = make(chan struct{}, dialers)
	)
	for _, d := range devs {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			start := time.Now()
			connected := false
			err := d.raw.stream(sctx, func() {
				mu.Lock()
				recordHist(connect, time.Since(start))
				mu.Unlock()
				connected = true
				open.Add(1)
				<-slots
				ready.Done()
			}, func(*streamFrame, time.Time) {})
			mu.Lock()
			if err != nil {
				run.Errors["stream:"+errorCode(err)]++
			}
			mu.Unlock()
			if connected {
				open.Add(-1)
			} else {
				<-slots
				ready.Done()
			}
		}()
	}
	ready.Wait()
	// An idle device holds its stream and nothing else: the keep-alive
	// connections left from registering and signing in are closed, or
	// the figure would be theirs as much as the stream's.
	for _, d := range devs {
		d.raw.close()
	}
	run.SetupSeconds = time.Since(setupStart).Seconds()
	// Let the providers finish registering the streams before memory is
	// read.
	time.Sleep(time.Second)
	f.RSSOpenBytes, f.HeapOpenBytes = smp.memoryNow()
	opened, err := spawnedRuntime(ctx, e)
	if err != nil {
		return nil, err
	}
	if before != nil {
		f.HeapBeforeBytes, f.HeapOpenBytes = before.HeapAlloc, opened.HeapAlloc
		f.StackBeforeBytes, f.StackOpenBytes = before.StackInuse, opened.StackInuse
		f.GoroutinesBefore, f.GoroutinesOpen = before.Goroutines, opened.Goroutines
	}
	if n := float64(open.Load()); n > 0 && smp.pids != nil {
		f.RSSPerConnBytes = float64(f.RSSOpenBytes-f.RSSBeforeBytes) / n
		f.HeapPerConnBytes = float64(f.HeapOpenBytes-f.HeapBeforeBytes) / n
		f.StackPerConnBytes = float64(f.StackOpenBytes-f.StackBeforeBytes) / n
		f.GoroutinesPerConn = float64(f.GoroutinesOpen-f.GoroutinesBefore) / n
	}
	if profiles != "" && len(e.kids) > 0 {
		for _, name := range []string{"heap", "goroutine"} {
			path := profiles
			if name == "goroutine" {
				path += ".goroutine"
			}
			if err := saveProfile(ctx, e.provs[0].pprofURL, name, path); err != nil {
				return nil, err
			}
		}
	}
	f.Note = "the target's process alone"
	if len(e.kids) > 0 {
		f.Note = "the provider's process alone"
	}
	if e.local != nil {
		f.Note = "both ends of each stream: providers and devices share this process"
	}

	smp.start()
	holdStart := time.Now()
	stopProgress := p.watch("idle", s.Duration, func() time.Duration { return time.Since(holdStart) }, func() string {
		return fmt.Sprintf("%d of %d streams open", open.Load(), s.Conns)
	})
	select {
	case <-time.After(s.Duration):
	case <-ctx.Done():
	}
	f.Open = int(open.Load())
	run.Server = smp.finish()
	stopProgress()
	cancel()
	wg.Wait()
	mu.Lock()
	f.Connect = summarize(connect)
	mu.Unlock()
	run.Idle = f
	return run, ctx.Err()
}

// spawnedRuntime is the Go runtime figures of the spawned provider (nil
// for others: this process's heap is read by the sampler, a target's is
// not known).
func spawnedRuntime(ctx context.Context, e *env) (*goRuntime, error) {
	if len(e.kids) == 0 {
		return nil, nil
	}
	var sum goRuntime
	for _, p := range e.provs {
		g, err := readGoRuntime(ctx, p.pprofURL)
		if err != nil {
			return nil, err
		}
		sum.HeapAlloc += g.HeapAlloc
		sum.StackInuse += g.StackInuse
		sum.Goroutines += g.Goroutines
	}
	return &sum, nil
}

// fileHeadroom is the open files a process needs besides its streams:
// listeners, the store, logs, connections of the setup.
const fileHeadroom = 200

// checkOpenFiles refuses, with a clear message, a number of streams that
// cannot fit in the open files limit of the bench or of a provider: each
// stream is an open file at both of its ends.
func checkOpenFiles(e *env, conns int) error {
	own, err := procOpenFiles(0)
	if err != nil {
		return nil // not Linux: nothing to read the limit from
	}
	need := int64(conns) + fileHeadroom
	if e.local != nil {
		// Both ends in this process.
		need = 2*int64(conns) + fileHeadroom
	}
	fits := func(limit int64) int64 {
		if e.local != nil {
			return max((limit-fileHeadroom)/2, 0)
		}
		return max(limit-fileHeadroom, 0)
	}
	if need > own {
		where := "the bench's devices"
		if e.local != nil {
			where = "the devices and the provider, both in this process"
		}
		return fmt.Errorf("bench: idle: %d streams need about %d open files for %s; this process may open %d (RLIMIT_NOFILE, see ulimit -n): use --conns %d or fewer, or raise the limit",
			conns, need, where, own, fits(own))
	}
	for _, p := range e.provs {
		if p.pid == 0 {
			continue
		}
		limit, err := procOpenFiles(p.pid)
		if err != nil {
			continue
		}
		perProv := int64(conns)/int64(len(e.provs)) + fileHeadroom
		if perProv > limit {
			return fmt.Errorf("bench: idle: %d streams need about %d open files in the provider %s (process %d), which may open %d (RLIMIT_NOFILE of its process): use --conns %d or fewer, or raise its limit",
				conns, perProv, p.domain, p.pid, limit, (limit-fileHeadroom)*int64(len(e.provs)))
		}
	}
	return nil
}

// streamsPerSource is how many streams open from one loopback source
// address: a source address and the provider's address and port leave
// about 28,000 ephemeral ports (Linux's default range), part of them
// held by the setup's closed connections for a minute (TIME_WAIT).
const streamsPerSource = 10_000

// streamDialer spreads the streams of a large idle run (more than
// streamsPerSource) over the loopback source addresses 127.0.0.2,
// 127.0.0.3... (Linux routes all of 127.0.0.0/8 to the loopback
// interface), so that ephemeral ports do not run out: device i of conns
// dials from its share. It returns nil when one address does, or when
// the provider is not on an IPv4 loopback address.
func streamDialer(providerURL string, i, conns int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if conns <= streamsPerSource {
		return nil
	}
	u, err := url.Parse(providerURL)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil
	}
	sources := (conns + streamsPerSource - 1) / streamsPerSource
	src := net.IPv4(127, 0, 0, byte(2+i%sources)) // #nosec G115 -- one source per 10,000 streams: below 254 sources for any count a machine can open
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return d.DialContext
}

// connsPerDevice is the connections a pairs or group device holds to its
// provider during the load: its stream, and at least one for its HTTP
// sends.
const connsPerDevice = 2

// openFilesWarning says, before a pairs or group run sets up its devices,
// when their connections will not fit in the open files limit of a
// provider or of this process: the provider then refuses connections
// ("accept: too many open files" in its log) and sends fail. It is a
// warning, not a refusal: the count is an estimate.
func openFilesWarning(e *env, devices int) string {
	own, err := procOpenFiles(0)
	if err != nil {
		return ""
	}
	need := int64(devices*connsPerDevice) + fileHeadroom
	if e.local != nil {
		need *= 2 // both ends in this process
	}
	if need > own {
		return fmt.Sprintf("warning: %d devices hold about %d connections each, about %d open files in this process, whose limit is %d: expect failed connections (fewer devices, or raise the limit: ulimit -n)",
			devices, connsPerDevice, need, own)
	}
	perProv := int64(devices*connsPerDevice)/int64(len(e.provs)) + fileHeadroom
	for _, p := range e.provs {
		if p.pid == 0 {
			continue
		}
		if limit, err := procOpenFiles(p.pid); err == nil && perProv > limit {
			return fmt.Sprintf("warning: %d devices hold about %d connections each to their providers, about %d open files in %s (process %d), whose limit is %d: expect refused connections and failed sends (fewer devices, or raise its limit)",
				devices, connsPerDevice, perProv, p.domain, p.pid, limit)
		}
	}
	return ""
}
