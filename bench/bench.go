package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options are how a run shows its progress.
type Options struct {
	// Progress receives progress lines (nil: none). Terminal redraws one
	// line with a bar instead of printing a line every few seconds.
	Progress io.Writer
	Terminal bool
	// Measured, if set, is called as each run's measured phase (the load
	// and the drain) begins, and the function it returns as it ends: the
	// command's profiles cover that phase and not the setup.
	Measured func() (end func())
	// ServerProfiles, with spawned providers, is the file where the (first)
	// provider's heap profile is written, and with ".goroutine" added its
	// goroutine profile: idle, with every stream open; pairs and group, at
	// the end of the load and drain, the devices still connected (one
	// payload mode: a second run would overwrite them).
	ServerProfiles string
}

// joinTimeout bounds how long the devices of a room of n may take to
// join it before the load starts. In this process every device does its
// own MLS work on the machine's few cores: each joiner checks every
// member's leaf (signature and credential), so a room's joining costs
// grow with n*n; the bound grows with n.
func joinTimeout(n int) time.Duration { return 2*time.Minute + time.Duration(n)*600*time.Millisecond }

// Run runs the workload of s once per payload mode (idle: once) and
// returns the report. Each run starts its own providers (or uses the
// targets) and stops them after.
func Run(ctx context.Context, s Settings, opts Options) (rep *Report, err error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Spawn {
		// The spawned providers' logs outlive a failed run, to be read.
		if s.Dir != "" {
			s.logDir = filepath.Join(s.Dir, "logs")
			err = os.MkdirAll(s.logDir, 0o700)
		} else {
			s.logDir, err = os.MkdirTemp("", "switchboard-bench-logs-")
		}
		if err != nil {
			return nil, err
		}
		defer func() {
			// An interrupted run is no failure to look into.
			failed := err != nil && !errors.Is(err, context.Canceled)
			if !failed && s.Dir == "" {
				os.RemoveAll(s.logDir)
			}
			if failed {
				err = errLogs(err, s.logDir)
			}
		}()
	}
	rep = &Report{Version: ReportVersion, Started: time.Now().UTC(), Settings: settingsJSON(&s), Machine: thisMachine()}
	base := s.Dir
	if base == "" {
		tmp, err := os.MkdirTemp("", "switchboard-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		base = tmp
	}
	p := &progress{w: opts.Progress, terminal: opts.Terminal}
	if opts.Measured == nil {
		opts.Measured = func() func() { return func() {} }
	}
	if s.Workload == WorkloadIdle {
		end := opts.Measured()
		r, err := runIdle(ctx, &s, filepath.Join(base, "idle"), p, opts.ServerProfiles)
		end()
		if r != nil {
			rep.Runs = append(rep.Runs, r)
		}
		return rep, err
	}
	if s.Workload == WorkloadJoin {
		r, err := runJoin(ctx, &s, filepath.Join(base, "join"), p)
		if r != nil {
			rep.Runs = append(rep.Runs, r)
		}
		return rep, err
	}
	for _, payload := range s.Payloads {
		r, err := runMessages(ctx, &s, payload, filepath.Join(base, s.Workload+"-"+payload), p, opts.Measured, opts.ServerProfiles)
		if r != nil {
			rep.Runs = append(rep.Runs, r)
		}
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// runMessages runs a pairs or group workload with one payload mode.
func runMessages(ctx context.Context, s *Settings, payload, dir string, p *progress, measured func() func(), serverProfile string) (*Result, error) {
	name := s.Workload + " " + payload
	setupStart := time.Now()
	p.line("%s: starting providers and setting up devices", name)
	e, err := startEnv(ctx, s, s.providers(), dir)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if warning := openFilesWarning(e, s.devices()); warning != "" {
		p.line("%s: %s", name, warning)
	}
	rooms, err := setupRooms(ctx, s, e)
	if err != nil {
		return nil, err
	}
	ref := &trackerRef{}
	sendFns, stop, err := startMembers(ctx, payload, s.Size, s.Submit, e, rooms, ref)
	if err != nil {
		return nil, err
	}
	defer stop()
	devices := 0
	for _, r := range rooms {
		devices += len(r.members)
	}
	if err := waitJoined(ctx, rooms, joinTimeout(devices)); err != nil {
		return nil, err
	}

	run := &Result{Workload: s.Workload, Payload: payload, Mode: modeOf(s), SetupSeconds: time.Since(setupStart).Seconds()}
	for _, pr := range e.provs {
		run.Providers = append(run.Providers, pr.domain)
	}
	tr := newTracker()
	var senders []*sender
	for _, r := range rooms {
		run.Devices += len(r.members)
		for _, m := range r.members {
			if f := sendFns[m]; f != nil {
				senders = append(senders, &sender{id: uint32(m.idx), send: f}) // #nosec G115 -- a device index, below the device count
				tr.recipients[uint32(m.idx)] = len(r.members) - 1              // #nosec G115 -- a device index, below the device count
			}
		}
	}
	for i, q := range quotas(s.Messages, len(senders)) {
		senders[i].quota = q
	}

	endMeasured := measured()
	smp := newSampler(e)
	smp.start()
	// The tracker's clock starts now: every intended send time counts
	// from here.
	tr.start = time.Now()
	ref.set(tr)
	stopProgress := p.watch(name, s.Duration, tr.since, func() string {
		sent, delivered, errs := tr.progress()
		return fmt.Sprintf("sent %d, delivered %d, errors %d", sent, delivered, errs)
	})
	// Sends still waiting when the run is over are given up.
	lctx, cancel := context.WithTimeout(ctx, s.Duration+s.Drain+time.Minute)
	defer cancel()
	if s.Saturation() {
		saturate(lctx, tr, senders, s.Window, s.Duration)
	} else {
		openLoop(lctx, tr, senders, s.Rate, s.Duration)
	}
	loadSecs := tr.since().Seconds()
	drain(lctx, tr, s.Drain)
	run.Server = smp.finish()
	if err := e.runtimeAtEnd(ctx, &run.Server, serverProfile); err != nil {
		p.line("%s: the providers' runtime figures: %v", name, err)
	}
	endMeasured()
	stopProgress()
	stop()

	tr.mu.Lock()
	defer tr.mu.Unlock()
	m := &MessageFigures{
		Attempted: tr.attempted, Sent: len(tr.acked), Expected: tr.expected, Delivered: tr.deliveredAcked,
		Missing: tr.expected - tr.deliveredAcked, Duplicates: tr.duplicates, Unknown: tr.unknown,
		DeliveredUnacked: tr.deliveries - tr.deliveredAcked, LoadSeconds: loadSecs,
		Latency: summarize(tr.latency), AckLatency: summarize(tr.ack), Percentiles: distribution(tr.latency),
	}
	m.SendErrors = m.Attempted - m.Sent
	if tr.lastAck > 0 {
		m.SentPerSecond = float64(m.Sent) / tr.lastAck.Seconds()
	}
	if tr.lastDelivery > 0 {
		m.DeliveredPerSecond = float64(tr.deliveries) / tr.lastDelivery.Seconds()
	}
	for i, sec := range tr.seconds {
		f := SecondFigures{Second: i, Sent: sec.sent, Delivered: sec.delivered}
		if sec.latency.TotalCount() > 0 {
			f.P50, f.P99 = ms(sec.latency.ValueAtQuantile(50)), ms(sec.latency.ValueAtQuantile(99))
		}
		m.PerSecond = append(m.PerSecond, f)
	}
	run.Messages = m
	run.Errors = maps.Clone(tr.errors)
	// An interrupted run still reports what it measured, and says so.
	return run, ctx.Err()
}

// progress shows what a run is doing on stderr: a redrawn bar on a
// terminal, a plain line every few seconds otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	mu       sync.Mutex
}

func (p *progress) line(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// watch shows a run's progress until the returned function is called:
// the time since its start against its duration, and status.
func (p *progress) watch(name string, dur time.Duration, since func() time.Duration, status func() string) func() {
	if p.w == nil {
		return func() {}
	}
	every := 2 * time.Second
	if p.terminal {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	show := func(final bool) {
		el := since()
		st := status()
		p.mu.Lock()
		defer p.mu.Unlock()
		phase := "load"
		if el >= dur {
			phase = "drain"
		}
		if final {
			phase = "done"
		}
		if p.terminal {
			const width = 30
			n := min(int(float64(width)*el.Seconds()/dur.Seconds()), width)
			fmt.Fprintf(p.w, "\r\033[K%s [%s%s] %5.1fs/%gs %-5s %s",
				name, strings.Repeat("#", n), strings.Repeat("-", width-n), el.Seconds(), dur.Seconds(), phase, st)
			if final {
				fmt.Fprintln(p.w)
			}
			return
		}
		fmt.Fprintf(p.w, "%s: %.1fs of %gs, %s: %s\n", name, el.Seconds(), dur.Seconds(), phase, st)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				show(true)
				return
			case <-t.C:
				show(false)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

// Names of the workloads and payloads, for help texts.
var (
	Workloads = []string{WorkloadPairs, WorkloadGroup, WorkloadJoin, WorkloadIdle}
	Payloads  = []string{PayloadRelay, PayloadE2EE}
)

// ParsePayloads reads a payload list: "relay", "e2ee", "relay,e2ee" or
// "both".
func ParsePayloads(v string) []string {
	if v == "both" {
		return slices.Clone(Payloads)
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
