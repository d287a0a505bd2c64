package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bench"
)

// Each workload run tiny on providers in this process: the report must
// be well formed, and every message acknowledged by a provider must have
// reached every recipient device exactly once. Nothing here asserts a
// timing.

func tiny(workload string) bench.Settings {
	s := bench.Defaults(workload)
	s.Pairs, s.Members, s.Conns = 2, 4, 20
	s.Rate, s.Duration = 30, time.Second
	// Generous: a loaded machine may be slow, but not lose messages.
	s.Drain = 30 * time.Second
	return s
}

// runTiny runs s, writes the report as JSON and checks it as
// `switchboard bench --check` does.
func runTiny(t *testing.T, s bench.Settings) *bench.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, s, bench.Options{})
	if err != nil {
		t.Fatalf("bench %s: %v", s.Workload, err)
	}
	path := filepath.Join(t.TempDir(), "report.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatalf("the report is not JSON:\n%s", data)
	}
	back, err := bench.Check(data)
	if err != nil {
		t.Fatalf("the report does not check:\n%v\n%s", err, data)
	}
	if len(back.Runs) != len(rep.Runs) {
		t.Fatalf("the JSON has %d runs, the report %d", len(back.Runs), len(rep.Runs))
	}
	return back
}

// checkDelivered checks a message run's counts exactly: recipients is
// how many devices each message goes to.
func checkDelivered(t *testing.T, r *bench.Result, recipients int) {
	t.Helper()
	m := r.Messages
	if m == nil {
		t.Fatalf("%s: no message figures", r.Name())
	}
	if m.Sent == 0 || m.Sent != m.Attempted || m.SendErrors != 0 {
		t.Errorf("%s: %d of %d sends acknowledged, %d failed", r.Name(), m.Sent, m.Attempted, m.SendErrors)
	}
	if want := m.Sent * recipients; m.Expected != want || m.Delivered != want {
		t.Errorf("%s: %d sent to %d recipients each: %d deliveries expected, %d delivered, want %d", r.Name(), m.Sent, recipients, m.Expected, m.Delivered, want)
	}
	if m.Duplicates != 0 || m.Unknown != 0 || m.Missing != 0 {
		t.Errorf("%s: %d duplicates, %d unknown, %d missing", r.Name(), m.Duplicates, m.Unknown, m.Missing)
	}
	if m.Latency.Count != int64(m.Delivered) || m.Latency.P50 <= 0 || m.Latency.Max < m.Latency.P99 {
		t.Errorf("%s: latency %+v for %d deliveries", r.Name(), m.Latency, m.Delivered)
	}
	if len(r.Errors) != 0 {
		t.Errorf("%s: errors %v", r.Name(), r.Errors)
	}
}

func TestPairsOnOneProviderBothPayloadsOpenLoop(t *testing.T) {
	rep := runTiny(t, tiny(bench.WorkloadPairs))
	if len(rep.Runs) != 2 || rep.Runs[0].Payload != bench.PayloadRelay || rep.Runs[1].Payload != bench.PayloadE2EE {
		t.Fatalf("want a relay run and an e2ee run, got %d runs", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		checkDelivered(t, r, 1)
		// Both sides of each of the two pairs send: 30 messages a second
		// for a second is 30 due, within a message or so of rounding.
		if m := r.Messages; m.Attempted < 28 || m.Attempted > 32 {
			t.Errorf("%s: %d messages sent at 30/s for 1s", r.Name(), m.Attempted)
		}
		if len(r.Providers) != 1 || r.Devices != 4 || !r.Server.Measured {
			t.Errorf("%s: providers %v, %d devices, server measured %v", r.Name(), r.Providers, r.Devices, r.Server.Measured)
		}
	}
}

func TestPairsAcrossProvidersSaturation(t *testing.T) {
	s := tiny(bench.WorkloadPairs)
	// The message bound, not the duration, ends this run, whatever the
	// machine's speed.
	s.Cross, s.Window, s.Messages, s.Duration = true, 2, 40, 2*time.Minute
	rep := runTiny(t, s)
	for _, r := range rep.Runs {
		checkDelivered(t, r, 1)
		if len(r.Providers) != 2 {
			t.Errorf("%s: providers %v, want two", r.Name(), r.Providers)
		}
		if r.Messages.Attempted != 40 {
			t.Errorf("%s: %d messages sent, the bound is 40", r.Name(), r.Messages.Attempted)
		}
	}
	if rep.Settings.Mode != "saturation" || rep.Settings.Window != 2 || rep.Settings.Submit != bench.SubmitStream {
		t.Errorf("settings in the report: %+v", rep.Settings)
	}
}

// Relay devices post over HTTP when told to, instead of sending on their
// streams (the comparison docs/performance.md makes).
func TestPairsSubmittingOverHTTP(t *testing.T) {
	s := tiny(bench.WorkloadPairs)
	s.Payloads, s.Submit, s.Window, s.Messages, s.Duration = []string{bench.PayloadRelay}, bench.SubmitHTTP, 2, 20, 2*time.Minute
	rep := runTiny(t, s)
	for _, r := range rep.Runs {
		checkDelivered(t, r, 1)
	}
	if rep.Settings.Submit != bench.SubmitHTTP {
		t.Errorf("settings in the report: %+v", rep.Settings)
	}
}

// The group's devices keep their state in memory (as large rooms are
// measured: docs/performance.md), and nothing of it is left after.
func TestGroupOverThreeProviders(t *testing.T) {
	s := tiny(bench.WorkloadGroup)
	s.Messages = 12
	s.DeviceStorage = bench.StorageMemory
	before, _ := filepath.Glob("/dev/shm/switchboard-bench-devices-*")
	rep := runTiny(t, s)
	for _, r := range rep.Runs {
		checkDelivered(t, r, s.Members-1)
		if len(r.Providers) != 3 || r.Devices != s.Members {
			t.Errorf("%s: providers %v, %d devices", r.Name(), r.Providers, r.Devices)
		}
	}
	if rep.Settings.DeviceStorage != bench.StorageMemory {
		t.Errorf("the report says the devices' state was on %q", rep.Settings.DeviceStorage)
	}
	if after, _ := filepath.Glob("/dev/shm/switchboard-bench-devices-*"); len(after) > len(before) {
		t.Errorf("the devices' state was left in /dev/shm: %v", after)
	}
}

// Three devices join a room of five over three providers, one after
// another: each time the committer merged, the new device joined and
// sent, and every member already in the room reached the new epoch.
func TestJoinsToARoomOverThreeProviders(t *testing.T) {
	s := tiny(bench.WorkloadJoin)
	s.Members, s.Joins = 5, 3
	rep := runTiny(t, s)
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want one", len(rep.Runs))
	}
	r := rep.Runs[0]
	f := r.Join
	if f == nil || f.Members != 5 || f.Joins != 3 || len(f.PerJoin) != 3 {
		t.Fatalf("join figures: %+v", f)
	}
	// The committer waits for none but the others: 4, then 5, then 6.
	if f.MembersExpected != 4+5+6 || f.MembersReached != f.MembersExpected || f.EachMember.Count != 15 {
		t.Errorf("%d of %d members reached the new epoch, %d latencies", f.MembersReached, f.MembersExpected, f.EachMember.Count)
	}
	for i, j := range f.PerJoin {
		if j.RoomSize != 5+i || j.MembersWaited != 4+i {
			t.Errorf("join %d: room of %d, waited for %d", i+1, j.RoomSize, j.MembersWaited)
		}
		if i > 0 && j.Epoch != f.PerJoin[i-1].Epoch+1 {
			t.Errorf("join %d: epoch %d after %d: want one commit per join", i+1, j.Epoch, f.PerJoin[i-1].Epoch)
		}
		// The steps happen in this order, whatever their durations.
		if !(j.CommitMs > 0 && j.WelcomeMs > 0 && j.WelcomeMs <= j.JoinedSentMs && j.AllMembersMs > 0) {
			t.Errorf("join %d: %+v", i+1, j)
		}
	}
	for _, l := range []bench.Latency{f.Commit, f.Welcome, f.JoinedAndSent, f.AllMembers} {
		if l.Count != 3 || l.P50 <= 0 || l.Max < l.P50 {
			t.Errorf("latency %+v for 3 joins", l)
		}
	}
	if len(r.Providers) != 3 || r.Devices != 8 || r.Payload != bench.PayloadE2EE || len(r.Errors) != 0 || !r.Server.Measured {
		t.Errorf("providers %v, %d devices, payload %q, errors %v", r.Providers, r.Devices, r.Payload, r.Errors)
	}
	var out strings.Builder
	rep.WriteTable(&out)
	if !strings.Contains(out.String(), "every member processed the commit") {
		t.Errorf("the table has no join lines:\n%s", out.String())
	}

	paths, err := rep.WriteCharts(t.TempDir())
	if err != nil || len(paths) != 1 || filepath.Base(paths[0]) != "join.png" {
		t.Errorf("join charts: %v, %v", paths, err)
	}

	// A join report that lost a member does not check.
	good, _ := json.Marshal(rep)
	var spoilt bench.Report
	json.Unmarshal(good, &spoilt)
	spoilt.Runs[0].Join.MembersReached--
	data, _ := json.Marshal(&spoilt)
	if _, err := bench.Check(data); !errors.Is(err, bench.ErrReport) {
		t.Errorf("a join that missed a member: Check = %v, want ErrReport", err)
	}
}

func TestIdleStreamsStayOpen(t *testing.T) {
	s := tiny(bench.WorkloadIdle)
	s.Duration = 500 * time.Millisecond
	rep := runTiny(t, s)
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs", len(rep.Runs))
	}
	f := rep.Runs[0].Idle
	if f == nil || f.Conns != 20 || f.Open != 20 || f.Connect.Count != 20 {
		t.Fatalf("idle figures: %+v", f)
	}
	if f.RSSOpenBytes <= 0 || f.HeapOpenBytes <= 0 || !strings.Contains(f.Note, "both ends") {
		t.Errorf("memory figures: %+v", f)
	}
}

// A report that lost a message, or whose counts disagree, does not
// check: the check is what CI relies on.
func TestCheckRefusesIncompleteReports(t *testing.T) {
	s := tiny(bench.WorkloadPairs)
	s.Payloads, s.Messages = []string{bench.PayloadRelay}, 6
	rep := runTiny(t, s)
	good, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(*bench.Report){
		"a message missing": func(r *bench.Report) { r.Runs[0].Messages.Delivered--; r.Runs[0].Messages.Missing++ },
		"a duplicate":       func(r *bench.Report) { r.Runs[0].Messages.Duplicates = 1 },
		"counts disagree":   func(r *bench.Report) { r.Runs[0].Messages.Expected++ },
		"an error":          func(r *bench.Report) { r.Runs[0].Errors = map[string]int{"send:rate_limited": 1} },
		"no runs":           func(r *bench.Report) { r.Runs = nil },
		"another version":   func(r *bench.Report) { r.Version = 99 },
		"percentiles out of order": func(r *bench.Report) {
			r.Runs[0].Messages.Latency.P99 = r.Runs[0].Messages.Latency.Max + 1
		},
	} {
		var r bench.Report
		if err := json.Unmarshal(good, &r); err != nil {
			t.Fatal(err)
		}
		spoil(&r)
		data, _ := json.Marshal(&r)
		if _, err := bench.Check(data); !errors.Is(err, bench.ErrReport) {
			t.Errorf("%s: Check = %v, want ErrReport", name, err)
		}
	}
	for _, bad := range []string{"", "{", `{"version": 1, "runs": []} {}`, "[]"} {
		if _, err := bench.Check([]byte(bad)); !errors.Is(err, bench.ErrReport) {
			t.Errorf("Check(%q) = %v, want ErrReport", bad, err)
		}
	}
}

func TestSettingsOutOfBoundsAreRefused(t *testing.T) {
	for name, change := range map[string]func(*bench.Settings){
		"unknown workload":    func(s *bench.Settings) { s.Workload = "storm" },
		"no pairs":            func(s *bench.Settings) { s.Pairs = 0 },
		"cross for a group":   func(s *bench.Settings) { s.Workload, s.Cross = bench.WorkloadGroup, true },
		"unknown payload":     func(s *bench.Settings) { s.Payloads = []string{"plain"} },
		"payload twice":       func(s *bench.Settings) { s.Payloads = []string{"relay", "relay"} },
		"size below header":   func(s *bench.Settings) { s.Size = 8 },
		"size over the limit": func(s *bench.Settings) { s.Size = bench.MaxSize + 1 },
		"no rate":             func(s *bench.Settings) { s.Rate = 0 },
		"endless":             func(s *bench.Settings) { s.Duration = time.Hour },
		"unknown submit":      func(s *bench.Settings) { s.Submit = "carrier pigeon" },
		"remote target": func(s *bench.Settings) {
			s.Targets = []bench.Target{{URL: "http://192.0.2.1:8080", DataDir: "x"}}
		},
		"target without data": func(s *bench.Settings) {
			s.Targets = []bench.Target{{URL: "http://127.0.0.1:8080"}}
		},
		"join of nobody":      func(s *bench.Settings) { s.Workload, s.Joins = bench.WorkloadJoin, 0 },
		"join to a huge room": func(s *bench.Settings) { s.Workload, s.Members = bench.WorkloadJoin, bench.MaxMembers+1 },
		"spawn and targets": func(s *bench.Settings) {
			s.Spawn, s.Targets = true, []bench.Target{{URL: "http://127.0.0.1:8080", DataDir: "x"}}
		},
		"cross with one target": func(s *bench.Settings) {
			s.Cross, s.Targets = true, []bench.Target{{URL: "http://127.0.0.1:8080", DataDir: "x"}}
		},
	} {
		s := bench.Defaults(bench.WorkloadPairs)
		change(&s)
		if err := s.Validate(); !errors.Is(err, bench.ErrSettings) {
			t.Errorf("%s: Validate = %v, want ErrSettings", name, err)
		}
		if _, err := bench.Run(context.Background(), s, bench.Options{}); !errors.Is(err, bench.ErrSettings) {
			t.Errorf("%s: Run = %v, want ErrSettings", name, err)
		}
	}
}

func TestChartsAreWritten(t *testing.T) {
	s := tiny(bench.WorkloadPairs)
	s.Payloads, s.Messages = []string{bench.PayloadRelay}, 10
	rep := runTiny(t, s)
	paths, err := rep.WriteCharts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("charts: %v", paths)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil || len(data) < 8 || string(data[1:4]) != "PNG" {
			t.Errorf("%s is not a PNG (%v)", p, err)
		}
	}
}

// BenchmarkJoin runs the join workload at a few room sizes, for a CPU
// profile of the whole of it, setup included (go test -bench Join
// -benchtime 1x -cpuprofile cpu.out ./bench/; -bench Join/100 for one
// size). The figures are reported as metrics, in milliseconds.
func BenchmarkJoin(b *testing.B) {
	for _, members := range []int{100, 300, 1000} {
		b.Run(strconv.Itoa(members), func(b *testing.B) {
			for range b.N {
				s := bench.Defaults(bench.WorkloadJoin)
				s.Members, s.Joins = members, 5
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
				rep, err := bench.Run(ctx, s, bench.Options{Progress: os.Stderr})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				r := rep.Runs[0]
				b.ReportMetric(r.SetupSeconds, "setup-s")
				b.ReportMetric(r.Join.Commit.P50, "commit-p50-ms")
				b.ReportMetric(r.Join.JoinedAndSent.P50, "joined-sent-p50-ms")
				b.ReportMetric(r.Join.AllMembers.P50, "all-members-p50-ms")
			}
		})
	}
}
