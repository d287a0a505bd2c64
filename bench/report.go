package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// ReportVersion is the version of the JSON report's layout.
const ReportVersion = 1

// Report is everything one `switchboard bench` invocation measured, with
// its settings: the JSON file's content.
type Report struct {
	Version  int          `json:"version"`
	Started  time.Time    `json:"started"`
	Settings SettingsJSON `json:"settings"`
	Machine  Machine      `json:"machine"`
	Runs     []*Result    `json:"runs"`
}

// SettingsJSON is Settings as the report gives them, durations in
// seconds.
type SettingsJSON struct {
	Workload string   `json:"workload"`
	Pairs    int      `json:"pairs,omitempty"`
	Cross    bool     `json:"cross,omitempty"`
	Members  int      `json:"members,omitempty"`
	Joins    int      `json:"joins,omitempty"`
	Conns    int      `json:"conns,omitempty"`
	Payloads []string `json:"payloads,omitempty"`
	Size     int      `json:"size_bytes,omitempty"`
	Mode     string   `json:"mode,omitempty"`
	Rate     float64  `json:"rate_per_second,omitempty"`
	Window   int      `json:"window,omitempty"`
	Submit   string   `json:"submit,omitempty"`
	// DeviceStorage is where the SDK devices kept their state.
	DeviceStorage string   `json:"device_storage,omitempty"`
	Duration      float64  `json:"duration_seconds"`
	Messages      int      `json:"messages,omitempty"`
	Drain         float64  `json:"drain_seconds"`
	InProcess     bool     `json:"in_process"`
	Spawned       bool     `json:"spawned,omitempty"`
	Targets       []Target `json:"targets,omitempty"`
}

func settingsJSON(s *Settings) SettingsJSON {
	j := SettingsJSON{Workload: s.Workload, Duration: s.Duration.Seconds(), Drain: s.Drain.Seconds(),
		InProcess: len(s.Targets) == 0 && !s.Spawn, Spawned: s.Spawn, Targets: s.Targets, DeviceStorage: s.DeviceStorage}
	switch s.Workload {
	case WorkloadPairs:
		j.Pairs, j.Cross = s.Pairs, s.Cross
	case WorkloadGroup:
		j.Members = s.Members
	case WorkloadJoin:
		j.Members, j.Joins, j.Size = s.Members, s.Joins, s.Size
		return j
	case WorkloadIdle:
		j.Conns = s.Conns
		return j
	}
	j.Payloads, j.Size, j.Messages, j.Submit = s.Payloads, s.Size, s.Messages, s.Submit
	j.Mode = modeOf(s)
	if s.Saturation() {
		j.Window = s.Window
	} else {
		j.Rate = s.Rate
	}
	return j
}

func modeOf(s *Settings) string {
	if s.Saturation() {
		return "saturation"
	}
	return "open-loop"
}

// Machine describes where the bench ran.
type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	MemBytes  int64  `json:"mem_bytes,omitempty"`
	GoVersion string `json:"go_version"`
}

func thisMachine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			m.MemBytes = kb * 1024
		}
	}
	return m
}

// Result is one run: one workload with one payload mode.
type Result struct {
	Workload  string   `json:"workload"`
	Payload   string   `json:"payload,omitempty"`
	Mode      string   `json:"mode,omitempty"`
	Providers []string `json:"providers"`
	Devices   int      `json:"devices"`
	// SetupSeconds is the time to create users and devices, rooms and
	// connections, before anything was measured.
	SetupSeconds float64 `json:"setup_seconds"`

	// The message workloads' figures.
	Messages *MessageFigures `json:"messages,omitempty"`
	// The idle workload's.
	Idle *IdleFigures `json:"idle,omitempty"`
	// The join workload's.
	Join *JoinFigures `json:"join,omitempty"`
	// Errors counts every error by where it happened and its stable code
	// (send:rate_limited, receive:stream_lost...).
	Errors map[string]int `json:"errors"`
	// Server is the providers' CPU and memory during the measured phase.
	Server Resources `json:"server"`
}

// MessageFigures are a pairs or group run's measurements.
type MessageFigures struct {
	// Attempted sends; Sent were acknowledged by the provider (stored
	// durably); SendErrors were refused or failed.
	Attempted  int `json:"attempted"`
	Sent       int `json:"sent"`
	SendErrors int `json:"send_errors"`
	// Expected deliveries of the acknowledged messages (one per recipient
	// device), Delivered of them (each once), Missing when the drain
	// ended; Duplicates were had twice by the same device, Unknown carried
	// no sender of this run.
	Expected   int `json:"expected_deliveries"`
	Delivered  int `json:"delivered"`
	Missing    int `json:"missing"`
	Duplicates int `json:"duplicates"`
	Unknown    int `json:"unknown"`
	// DeliveredUnacked were deliveries of messages whose send call failed
	// (stored all the same: a lost answer); they are not expected.
	DeliveredUnacked int `json:"delivered_unacknowledged"`
	// LoadSeconds is the load phase; SentPerSecond is acknowledged sends
	// over the time to the last acknowledgement, DeliveredPerSecond
	// deliveries over the time to the last delivery.
	LoadSeconds        float64 `json:"load_seconds"`
	SentPerSecond      float64 `json:"sent_per_second"`
	DeliveredPerSecond float64 `json:"delivered_per_second"`
	// Latency is end to end: from the intended send time (open loop) or
	// the send call (saturation) until the receiving device had the
	// message. AckLatency is from the send call to the provider's
	// acknowledgement.
	Latency     Latency      `json:"latency"`
	AckLatency  Latency      `json:"ack_latency"`
	Percentiles []Percentile `json:"latency_percentiles"`
	// PerSecond is the run second by second, from the start of the load.
	PerSecond []SecondFigures `json:"per_second"`
}

// SecondFigures is one second of a run.
type SecondFigures struct {
	Second    int     `json:"second"`
	Sent      int     `json:"sent"`
	Delivered int     `json:"delivered"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
}

// IdleFigures are an idle run's measurements.
type IdleFigures struct {
	Conns int `json:"conns"`
	// Open is how many streams were still open at the end of the hold.
	Open int `json:"open"`
	// Connect is the time to open a stream (WebSocket handshake).
	Connect Latency `json:"connect"`
	// Memory of the providers (see Server.Source) before the streams
	// opened and with all of them open, after a garbage collection, and
	// the difference per stream.
	RSSBeforeBytes   int64   `json:"rss_before_bytes"`
	RSSOpenBytes     int64   `json:"rss_open_bytes"`
	RSSPerConnBytes  float64 `json:"rss_per_conn_bytes"`
	HeapBeforeBytes  int64   `json:"go_heap_before_bytes,omitempty"`
	HeapOpenBytes    int64   `json:"go_heap_open_bytes,omitempty"`
	HeapPerConnBytes float64 `json:"go_heap_per_conn_bytes,omitempty"`
	// With spawned providers, from their runtime (serve --pprof): the
	// goroutines' stacks and the goroutines themselves, before and open.
	StackBeforeBytes  int64   `json:"go_stack_before_bytes,omitempty"`
	StackOpenBytes    int64   `json:"go_stack_open_bytes,omitempty"`
	StackPerConnBytes float64 `json:"go_stack_per_conn_bytes,omitempty"`
	GoroutinesBefore  int     `json:"goroutines_before,omitempty"`
	GoroutinesOpen    int     `json:"goroutines_open,omitempty"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn,omitempty"`
	// Note says what the per-connection figure includes.
	Note string `json:"note"`
}

// errorTotal adds up a run's errors.
func (r *Result) errorTotal() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Name is the run's short name: workload and payload.
func (r *Result) Name() string {
	if r.Payload == "" {
		return r.Workload
	}
	return r.Workload + " " + r.Payload
}

// WriteTable prints the report's figures as a table.
func (rep *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var idle []*Result
	msgs := false
	for _, r := range rep.Runs {
		if r.Messages == nil {
			if r.Idle != nil {
				idle = append(idle, r)
			}
			continue
		}
		if !msgs {
			fmt.Fprintln(tw, "run\tmode\tsent/s\tdelivered/s\tp50\tp90\tp99\tp99.9\tmax\terrors\tmissing\tserver CPU\tserver mem\t")
			msgs = true
		}
		m := r.Messages
		mode := r.Mode
		if rep.Settings.Mode == "open-loop" {
			mode = fmt.Sprintf("open %g/s", rep.Settings.Rate)
		} else if rep.Settings.Mode == "saturation" {
			mode = fmt.Sprintf("window %d", rep.Settings.Window)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", r.Name(), mode,
			m.SentPerSecond, m.DeliveredPerSecond, fmtMs(m.Latency.P50), fmtMs(m.Latency.P90), fmtMs(m.Latency.P99),
			fmtMs(m.Latency.P999), fmtMs(m.Latency.Max), r.errorTotal(), m.Missing, fmtCPU(r.Server), fmtMem(r.Server))
	}
	tw.Flush() // #nosec G104 -- a text summary; a failed write shows on the terminal
	for _, r := range rep.Runs {
		if r.Messages != nil && r.Server.LiveGoHeapBytes > 0 {
			fmt.Fprintf(w, "%s: at the end, devices connected: %s live Go heap, %s of stacks, %d goroutines\n",
				r.Name(), fmtBytes(float64(r.Server.LiveGoHeapBytes)), fmtBytes(float64(r.Server.GoStackBytes)), r.Server.Goroutines)
		}
	}
	for _, r := range idle {
		f := r.Idle
		fmt.Fprintf(w, "idle: %d streams opened, %d still open after the hold; connect p50 %s, p99 %s, max %s\n",
			f.Conns, f.Open, fmtMs(f.Connect.P50), fmtMs(f.Connect.P99), fmtMs(f.Connect.Max))
		if r.Server.Measured {
			fmt.Fprintf(w, "  memory per stream: %s resident", fmtBytes(f.RSSPerConnBytes))
			if f.HeapOpenBytes > 0 {
				fmt.Fprintf(w, ", %s Go heap", fmtBytes(f.HeapPerConnBytes))
			}
			if f.StackOpenBytes > 0 {
				fmt.Fprintf(w, ", %s goroutine stacks (%.2f goroutines)", fmtBytes(f.StackPerConnBytes), f.GoroutinesPerConn)
			}
			fmt.Fprintf(w, " (%s)\n  server while holding them: %s, peak %s resident\n", f.Note, fmtCPU(r.Server), fmtBytes(float64(r.Server.PeakRSSBytes)))
		}
		if n := r.errorTotal(); n > 0 {
			fmt.Fprintf(w, "  errors: %d %v\n", n, r.Errors)
		}
	}
	for _, r := range rep.Runs {
		if r.Join != nil {
			writeJoin(w, r)
		}
	}
	if len(rep.Runs) > 0 {
		fmt.Fprintf(w, "server CPU and memory: %s\n", rep.Runs[0].Server.Source)
	}
}

// writeJoin prints a join run: one line per measure, from the Invite
// call.
func writeJoin(w io.Writer, r *Result) {
	f := r.Join
	fmt.Fprintf(w, "join: %d joins to a room of %d over %d providers (%d at the end); members reached the new epoch %d of %d times; setup %.1fs\n",
		f.Joins, f.Members, len(r.Providers), f.Members+f.Joins, f.MembersReached, f.MembersExpected, r.SetupSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "from the Invite call until\tcount\tp50\tp90\tp99\tmax\t")
	for _, l := range []struct {
		name string
		l    Latency
	}{
		{"the committer merged", f.Commit},
		{"the new device joined", f.Welcome},
		{"its first message acknowledged", f.JoinedAndSent},
		{"every member processed the commit", f.AllMembers},
		{"each member processed it", f.EachMember},
	} {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", l.name, l.l.Count, fmtMs(l.l.P50), fmtMs(l.l.P90), fmtMs(l.l.P99), fmtMs(l.l.Max))
	}
	tw.Flush() // #nosec G104 -- a text summary; a failed write shows on the terminal
	fmt.Fprintf(w, "  server while joining: %s, peak %s; errors: %d", fmtCPU(r.Server), fmtMem(r.Server), r.errorTotal())
	if r.errorTotal() > 0 {
		fmt.Fprintf(w, " %v", r.Errors)
	}
	fmt.Fprintln(w)
}

func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fs", v/1000)
}

func fmtCPU(r Resources) string {
	if !r.Measured {
		return "-"
	}
	return fmt.Sprintf("%.2f cores", r.CPUCores)
}

func fmtMem(r Resources) string {
	if !r.Measured {
		return "-"
	}
	return fmtBytes(float64(r.PeakRSSBytes))
}

func fmtBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// WriteJSON writes the report to a file.
func (rep *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o600)
}

// ErrReport is what every problem Check finds wraps.
var ErrReport = errors.New("bench: report check failed")

// Check reads a JSON report and checks that it is well formed and
// consistent, and that every run was complete: every acknowledged
// message delivered to every recipient exactly once, no errors, every
// idle stream open to the end. It checks no timing.
func Check(data []byte) (*Report, error) {
	var rep Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("%w: not a report: %v", ErrReport, err)
	}
	// More() would let a stray "}" or "]" pass: only the end may follow.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the report", ErrReport)
	}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if rep.Version != ReportVersion {
		fail("version %d, want %d", rep.Version, ReportVersion)
	}
	if len(rep.Runs) == 0 {
		fail("no runs")
	}
	for i, r := range rep.Runs {
		if r == nil {
			fail("run %d: null", i+1)
			continue
		}
		name := fmt.Sprintf("run %d (%s)", i+1, r.Name())
		if len(r.Providers) == 0 {
			fail("%s: no providers", name)
		}
		if n := r.errorTotal(); n > 0 {
			fail("%s: %d errors %v", name, n, r.Errors)
		}
		switch r.Workload {
		case WorkloadPairs, WorkloadGroup:
			checkMessages(name, r, fail)
		case WorkloadJoin:
			checkJoin(name, r, fail)
		case WorkloadIdle:
			if r.Idle == nil {
				fail("%s: no idle figures", name)
				continue
			}
			if r.Idle.Conns < 1 || r.Idle.Open != r.Idle.Conns {
				fail("%s: %d of %d streams open at the end", name, r.Idle.Open, r.Idle.Conns)
			}
			if r.Idle.Connect.Count != int64(r.Idle.Conns) {
				fail("%s: %d connect times for %d streams", name, r.Idle.Connect.Count, r.Idle.Conns)
			}
		default:
			fail("%s: unknown workload %q", name, r.Workload)
		}
	}
	if len(problems) > 0 {
		return &rep, fmt.Errorf("%w:\n  %s", ErrReport, strings.Join(problems, "\n  "))
	}
	return &rep, nil
}

// checkJoin checks that every join completed: the new device joined and
// sent, and every existing member reached the new epoch.
func checkJoin(name string, r *Result, fail func(string, ...any)) {
	f := r.Join
	if f == nil {
		fail("%s: no join figures", name)
		return
	}
	if f.Joins < 1 || len(f.PerJoin) != f.Joins {
		fail("%s: %d joins, %d listed", name, f.Joins, len(f.PerJoin))
	}
	for _, l := range []Latency{f.Commit, f.Welcome, f.JoinedAndSent, f.AllMembers} {
		if l.Count != int64(f.Joins) {
			fail("%s: %d latencies for %d joins", name, l.Count, f.Joins)
			break
		}
	}
	if f.MembersReached != f.MembersExpected || f.EachMember.Count != int64(f.MembersExpected) {
		fail("%s: %d of %d members reached the new epoch (%d latencies)", name, f.MembersReached, f.MembersExpected, f.EachMember.Count)
	}
	want := 0
	for i, j := range f.PerJoin {
		if j.Join != i+1 || j.RoomSize != f.Members+i || j.MembersWaited != j.RoomSize-1 {
			fail("%s: join %d: number %d, room of %d, %d members waited for", name, i+1, j.Join, j.RoomSize, j.MembersWaited)
		}
		want += j.MembersWaited
	}
	if want != f.MembersExpected {
		fail("%s: the joins waited for %d members, %d expected", name, want, f.MembersExpected)
	}
}

func checkMessages(name string, r *Result, fail func(string, ...any)) {
	m := r.Messages
	if m == nil {
		fail("%s: no message figures", name)
		return
	}
	if r.Payload != PayloadRelay && r.Payload != PayloadE2EE {
		fail("%s: unknown payload %q", name, r.Payload)
	}
	if m.Sent < 1 {
		fail("%s: nothing sent", name)
	}
	if m.Sent+m.SendErrors != m.Attempted {
		fail("%s: %d sent and %d failed of %d attempted", name, m.Sent, m.SendErrors, m.Attempted)
	}
	if m.Delivered+m.Missing != m.Expected {
		fail("%s: %d delivered and %d missing of %d expected", name, m.Delivered, m.Missing, m.Expected)
	}
	if m.Missing != 0 || m.Duplicates != 0 || m.Unknown != 0 {
		fail("%s: %d missing, %d duplicated, %d unknown deliveries", name, m.Missing, m.Duplicates, m.Unknown)
	}
	if m.Latency.Count != int64(m.Delivered) {
		fail("%s: %d latencies for %d deliveries", name, m.Latency.Count, m.Delivered)
	}
	l := m.Latency
	if !(l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		fail("%s: latency percentiles out of order: %+v", name, l)
	}
	for i := 1; i < len(m.Percentiles); i++ {
		if m.Percentiles[i].Percentile <= m.Percentiles[i-1].Percentile || m.Percentiles[i].Ms < m.Percentiles[i-1].Ms {
			fail("%s: latency distribution out of order at %g%%", name, m.Percentiles[i].Percentile)
			break
		}
	}
	sent, delivered := 0, 0
	for _, s := range m.PerSecond {
		sent += s.Sent
		delivered += s.Delivered
	}
	if sent != m.Sent || delivered != m.Delivered+m.DeliveredUnacked {
		fail("%s: per-second figures add up to %d sent and %d delivered", name, sent, delivered)
	}
}
