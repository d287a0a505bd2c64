package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-chat/switchboard/bench"
)

func init() {
	commands["bench"] = command{summary: "measure providers under load: 'bench pairs|group|join|idle [flags]' (see 'bench -h')", run: runBench}
}

const benchUsage = `usage: switchboard bench WORKLOAD [flags]
       switchboard bench --check FILE

Starts providers in this process (--spawn: as 'switchboard serve'
processes; or uses running ones, --target), creates the users and devices
the workload needs, drives it, and prints a table: messages a second
delivered, end-to-end latency percentiles, errors, and the providers' CPU
and memory. Loopback only; bounded by --duration and --messages; stops by
itself. Progress goes to stderr.

Where the providers run:
  (default) in this process, beside the devices: quick, but the CPU and
          memory figures are of both together
  --spawn  as 'switchboard serve' child processes of this program (1 for
          pairs, 2 for --cross, 3 for group and join), each with its own
          data directory and configuration file, partners of one another
          through their trust files, rate limits off and the default body
          limits as in this process; fresh ones for each run; stopped when
          the bench ends. The figures are the providers' processes' alone:
          the figures to quote
  --target running providers (with --data, --pid to measure them)

Workloads:
  pairs   --pairs N devices chatting 1:1, both sides sending, on one
          provider (--cross: the two sides on two providers)
  group   one room of --members M devices over three providers, one
          sender, every other member receiving
  join    a room of --members M devices over three providers, then
          --joins K new devices invited one at a time (e2ee): how long
          until the committer merged, the new device joined and its first
          message was acknowledged, and every member processed the commit
  idle    --conns C devices holding their WebSocket stream open: memory
          per stream, time to open one

Load (pairs, group):
  open loop (default): --rate messages a second in all, spread over the
          senders; latency counts from each message's intended send time,
          so a provider that falls behind shows it
  saturation: --window W unacknowledged sends per sender at all times
Payloads (--payload, each run and reported separately):
  relay   devices post ready-made MLS PrivateMessages of --size bytes of
          ciphertext: the providers' path alone, no MLS work per message
  e2ee    every device encrypts and decrypts with the SDK (MIMI content
          with a --size byte body)

A message counts as delivered only when its receiving device has it (e2ee:
decrypted); the sender's acknowledgement means stored durably.
--check FILE reads a --json report and checks it is well formed and
complete (every message delivered once, no errors); it checks no timing.

Flags:
`

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nExamples:\n  switchboard bench pairs --pairs 50 --rate 500 --duration 30s --json out.json --charts charts/\n  switchboard bench pairs --cross --window 8 --payload relay\n  switchboard bench group --members 50 --rate 20\n  switchboard bench idle --conns 2000 --duration 10s\n  switchboard bench pairs --spawn --pairs 50 --rate 500 --payload relay\n  switchboard bench idle --spawn --conns 10000 --duration 10s\n  switchboard bench pairs --target http://127.0.0.1:8080 --data switchboard-data --pid 12345\n\ndocs/performance.md has the details and the figures measured.")
	}
	d := bench.Defaults("")
	pairs := fs.Int("pairs", d.Pairs, "pairs: how many pairs of devices")
	cross := fs.Bool("cross", false, "pairs: the two sides of each pair on different providers")
	members := fs.Int("members", d.Members, "group: devices in the room; join: before the first join")
	joins := fs.Int("joins", d.Joins, "join: devices invited one after another")
	conns := fs.Int("conns", d.Conns, "idle: streams held open")
	payload := fs.String("payload", "both", "relay, e2ee, or both (one run each)")
	size := fs.Int("size", d.Size, "payload bytes: relay ciphertext, e2ee body (at least 16)")
	rate := fs.Float64("rate", d.Rate, "open loop: messages a second, over all senders")
	window := fs.Int("window", 0, "saturation: unacknowledged sends per sender (instead of --rate)")
	deviceStorage := fs.String("device-storage", d.DeviceStorage, "where the SDK devices keep their state: disk (under --dir) or memory (/dev/shm; the devices stand for phones, each with its own disk, while here they would share one, fsyncs queued behind one another and the providers')")
	submit := fs.String("submit", d.Submit, "relay: how devices send, stream (send frames on their WebSocket) or http (a POST each)")
	duration := fs.Duration("duration", d.Duration, "how long the load runs (idle: how long the streams are held)")
	messages := fs.Int("messages", 0, "stop after this many messages in all (0: the duration alone)")
	drainFor := fs.Duration("drain", d.Drain, "how long to wait for deliveries after the last send")
	spawn := fs.Bool("spawn", false, "start the providers as 'switchboard serve' processes (their CPU and memory measured alone), not in this process")
	targets := fs.String("target", "", "running providers' client API URLs, comma-separated (default: start them in this process)")
	dataDirs := fs.String("data", "", "with --target: their data directories, comma-separated, where the bench adds its users as 'admin user add' does")
	stores := fs.String("store", "", `with --target: their stores if not "sqlite" (postgres://...), comma-separated`)
	pids := fs.String("pid", "", "with --target: their process IDs, comma-separated, to measure their CPU and memory")
	dir := fs.String("dir", "", "keep the providers' data and the devices' state here (default: a temporary directory, removed)")
	jsonOut := fs.String("json", "", "write every figure and the settings to this JSON file")
	charts := fs.String("charts", "", "write PNG charts (latency.png, throughput.png) into this directory")
	check := fs.String("check", "", "check a JSON report written by --json, and run nothing")
	var prof profiles
	fs.StringVar(&prof.cpu, "cpuprofile", "", "in-process runs: write a CPU profile of the measured phase (load and drain, not setup) to this file (go tool pprof)")
	fs.StringVar(&prof.mem, "memprofile", "", "in-process runs: write an allocation profile (heap and allocations since the start, setup included) to this file; with --spawn: the (first) provider's heap profile, and its goroutine profile to FILE.goroutine, with every stream open (idle) or at the end of the load (pairs, group)")
	fs.StringVar(&prof.mutex, "mutexprofile", "", "in-process runs: write a mutex contention profile of the measured phase to this file")
	fs.StringVar(&prof.block, "blockprofile", "", "in-process runs: write a blocking profile of the measured phase to this file (costs some speed)")
	// The workload comes first; flags may follow it.
	var workload string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		workload, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchboard bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *check != "" {
		return benchCheck(*check, workload, stdout, stderr)
	}
	if workload == "" {
		fs.Usage()
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["rate"] && set["window"] {
		fmt.Fprintln(stderr, "switchboard bench: --rate (open loop) and --window (saturation) exclude each other")
		return 2
	}
	s := bench.Defaults(workload)
	s.Pairs, s.Cross, s.Members, s.Joins, s.Conns = *pairs, *cross, *members, *joins, *conns
	s.Payloads, s.Size, s.Rate, s.Window, s.Submit = bench.ParsePayloads(*payload), *size, *rate, *window, *submit
	s.Duration, s.Messages, s.Drain, s.Dir, s.Spawn = *duration, *messages, *drainFor, *dir, *spawn
	s.DeviceStorage = *deviceStorage
	var err error
	if s.Targets, err = benchTargets(*targets, *dataDirs, *stores, *pids); err != nil {
		fmt.Fprintln(stderr, "switchboard bench:", err)
		return 2
	}
	if err := s.Validate(); err != nil {
		fmt.Fprintln(stderr, "switchboard", err)
		return 2
	}

	var serverProfiles string
	if s.Spawn && s.Workload != bench.WorkloadJoin && prof.mem != "" && prof.cpu == "" && prof.mutex == "" && prof.block == "" {
		if s.Workload != bench.WorkloadIdle && len(s.Payloads) != 1 {
			fmt.Fprintln(stderr, "switchboard bench: --memprofile saves the provider's profiles of one run: choose --payload relay or e2ee")
			return 2
		}
		serverProfiles, prof.mem = prof.mem, ""
	}
	if prof.any() && (len(s.Targets) > 0 || s.Spawn) {
		fmt.Fprintln(stderr, "switchboard bench: the profiles are of this process; with --target or --spawn, profile the providers themselves (serve --pprof: --spawn starts them with it, at the address in their logs)")
		return 2
	}
	if prof.any() && s.Workload != bench.WorkloadIdle && len(s.Payloads) != 1 {
		fmt.Fprintln(stderr, "switchboard bench: profiles cover one run: choose --payload relay or e2ee")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := bench.Options{Progress: stderr, ServerProfiles: serverProfiles}
	var profErr error
	if prof.any() {
		opts.Measured = func() func() {
			stopProf, err := prof.start()
			if err != nil {
				profErr = err
				return func() {}
			}
			return func() { profErr = stopProf() }
		}
	}
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			opts.Terminal = true
		}
	}
	rep, err := bench.Run(ctx, s, opts)
	if profErr != nil {
		fmt.Fprintln(stderr, "switchboard bench: profile:", profErr)
		return 1
	}
	if rep != nil && len(rep.Runs) > 0 {
		rep.WriteTable(stdout)
		if *jsonOut != "" {
			if werr := rep.WriteJSON(*jsonOut); werr != nil {
				fmt.Fprintln(stderr, "switchboard bench:", werr)
				return 1
			}
			fmt.Fprintf(stderr, "report: %s\n", *jsonOut)
		}
		if *charts != "" {
			paths, cerr := rep.WriteCharts(*charts)
			if cerr != nil {
				fmt.Fprintln(stderr, "switchboard bench:", cerr)
				return 1
			}
			for _, p := range paths {
				fmt.Fprintf(stderr, "chart: %s\n", p)
			}
		}
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "switchboard bench: interrupted; the figures above are of the part that ran")
		return 1
	}
	if err != nil {
		// The bench's own errors name it already.
		fmt.Fprintln(stderr, "switchboard bench:", strings.TrimPrefix(err.Error(), "bench: "))
		return 1
	}
	return 0
}

// benchCheck checks a report file.
func benchCheck(path, extra string, stdout, stderr io.Writer) int {
	if extra != "" {
		fmt.Fprintln(stderr, "switchboard bench: --check takes no workload")
		return 2
	}
	data, err := os.ReadFile(path) // #nosec G304 -- the report path given on the command line
	if err != nil {
		fmt.Fprintln(stderr, "switchboard bench:", err)
		return 1
	}
	rep, err := bench.Check(data)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard bench: %s: %v\n", path, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: a well-formed report of %d run(s), every message delivered once, no errors\n", path, len(rep.Runs))
	return 0
}

// benchTargets pairs up the comma-separated target flags.
func benchTargets(urls, dirs, stores, pids string) ([]bench.Target, error) {
	if urls == "" {
		if dirs != "" || stores != "" || pids != "" {
			return nil, errors.New("--data, --store and --pid go with --target")
		}
		return nil, nil
	}
	split := func(v string) []string {
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	u, d, st, p := split(urls), split(dirs), split(stores), split(pids)
	if len(d) != len(u) {
		return nil, fmt.Errorf("%d targets need %d data directories (--data), %d given", len(u), len(u), len(d))
	}
	if st != nil && len(st) != len(u) {
		return nil, fmt.Errorf("%d targets, %d stores: give one for each (sqlite for the default)", len(u), len(st))
	}
	if p != nil && len(p) != len(u) {
		return nil, fmt.Errorf("%d targets, %d process IDs: give one for each", len(u), len(p))
	}
	out := make([]bench.Target, len(u))
	for i := range u {
		out[i] = bench.Target{URL: strings.TrimSpace(u[i]), DataDir: strings.TrimSpace(d[i])}
		if st != nil && strings.TrimSpace(st[i]) != "sqlite" {
			out[i].Store = strings.TrimSpace(st[i])
		}
		if p != nil {
			n, err := strconv.Atoi(strings.TrimSpace(p[i]))
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("--pid %q: not a process ID", p[i])
			}
			out[i].PID = n
		}
	}
	return out, nil
}

// profiles are the runtime profiles a bench run writes (empty: not
// written), for finding where an in-process run spends its time.
type profiles struct{ cpu, mem, mutex, block string }

func (p profiles) any() bool { return p.cpu != "" || p.mem != "" || p.mutex != "" || p.block != "" }

// start turns on what the profiles need; the function it returns writes
// them and turns it off again.
func (p profiles) start() (func() error, error) {
	var cpu *os.File
	if p.cpu != "" {
		f, err := os.Create(p.cpu)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close() // #nosec G104 -- on an error path: the first error is the one returned
			return nil, err
		}
		cpu = f
	}
	if p.mutex != "" {
		runtime.SetMutexProfileFraction(5)
	}
	if p.block != "" {
		runtime.SetBlockProfileRate(int(10 * time.Microsecond)) // a sample per 10 µs blocked
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		if p.mem != "" {
			runtime.GC() // the heap profile is as of the last GC
			errs = append(errs, writeProfile("allocs", p.mem))
		}
		if p.mutex != "" {
			errs = append(errs, writeProfile("mutex", p.mutex))
			runtime.SetMutexProfileFraction(0)
		}
		if p.block != "" {
			errs = append(errs, writeProfile("block", p.block))
			runtime.SetBlockProfileRate(0)
		}
		return errors.Join(errs...)
	}, nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path) // #nosec G304 -- the profile path given on the command line
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close() // #nosec G104 -- on an error path: the first error is the one returned
		return fmt.Errorf("%s profile: %w", name, err)
	}
	return f.Close()
}
