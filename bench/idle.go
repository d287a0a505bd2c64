package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// dialers is how many idle streams are being opened at once.
const dialers = 32

// runIdle opens a stream for each of Conns devices, measures the
// providers' memory with all of them open, and holds them for the
// duration.
func runIdle(ctx context.Context, s *Settings, dir string, p *progress) (*Result, error) {
	setupStart := time.Now()
	p.line("idle: starting the provider and registering %d devices", s.Conns)
	e, err := startEnv(s, 1, dir)
	if err != nil {
		return nil, err
	}
	defer e.close()
	devs := make([]*device, s.Conns)
	err = parallel(ctx, s.Conns, 2*setupWorkers, func(ctx context.Context, i int) error {
		d, err := e.newRawDevice(ctx, e.provs[i%len(e.provs)], "i"+strconv.Itoa(i))
		devs[i] = d
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
	if n := float64(open.Load()); n > 0 && smp.pids != nil {
		f.RSSPerConnBytes = float64(f.RSSOpenBytes-f.RSSBeforeBytes) / n
		f.HeapPerConnBytes = float64(f.HeapOpenBytes-f.HeapBeforeBytes) / n
	}
	f.Note = "the target's process alone"
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
