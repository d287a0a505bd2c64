package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An operator runs a short bench with a report and charts, then checks
// the report as CI does.
func TestBenchCommandWritesAReportThatChecks(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "bench.json")
	var out, errOut bytes.Buffer
	code := run([]string{"bench", "pairs", "--pairs", "2", "--rate", "20", "--duration", "1s", "--drain", "30s",
		"--payload", "relay", "--json", report, "--charts", filepath.Join(dir, "charts")}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"delivered/s", "p99.9", "pairs relay", "open 20/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
	// Not a terminal: progress comes as plain lines.
	if strings.Contains(errOut.String(), "\r") || !strings.Contains(errOut.String(), "pairs relay: ") {
		t.Errorf("progress on stderr:\n%q", errOut.String())
	}
	for _, f := range []string{report, filepath.Join(dir, "charts", "latency.png"), filepath.Join(dir, "charts", "throughput.png")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"bench", "--check", report}, &out, &errOut); code != 0 {
		t.Fatalf("--check: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "every message delivered once") {
		t.Errorf("--check said:\n%s", out.String())
	}
}

// An operator profiles a short run to see where its time goes: each
// profile is written, gzipped as pprof writes them.
func TestBenchCommandWritesProfiles(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	files := map[string]string{}
	args := []string{"bench", "pairs", "--pairs", "2", "--rate", "20", "--duration", "1s", "--drain", "30s", "--payload", "relay"}
	for _, kind := range []string{"cpu", "mem", "mutex", "block"} {
		files[kind] = filepath.Join(dir, kind+".pprof")
		args = append(args, "--"+kind+"profile", files[kind])
	}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	for kind, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
			t.Errorf("the %s profile: %d bytes, %v", kind, len(data), err)
		}
	}
}

func TestBenchCommandRefusesBadInput(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.json")
	os.WriteFile(broken, []byte(`{"version": 1, "runs": [`), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"bench"}, 2, "usage: switchboard bench"},
		{[]string{"bench", "storm"}, 2, "unknown workload"},
		{[]string{"bench", "pairs", "--rate", "10", "--window", "4"}, 2, "exclude each other"},
		{[]string{"bench", "pairs", "--target", "http://192.0.2.7:8080", "--data", "d"}, 2, "not a loopback address"},
		{[]string{"bench", "pairs", "--target", "http://127.0.0.1:8080"}, 2, "data directories"},
		{[]string{"bench", "pairs", "--pid", "12"}, 2, "go with --target"},
		{[]string{"bench", "pairs", "--payload", "plain"}, 2, "unknown payload"},
		{[]string{"bench", "pairs", "--duration", "2h"}, 2, "duration"},
		{[]string{"bench", "pairs", "--cpuprofile", filepath.Join(t.TempDir(), "cpu")}, 2, "profiles cover one run"},
		{[]string{"bench", "pairs", "--payload", "relay", "--memprofile", "m", "--target", "http://127.0.0.1:8080", "--data", "d"}, 2, "profile the providers themselves"},
		{[]string{"bench", "pairs", "--spawn", "--target", "http://127.0.0.1:8080", "--data", "d"}, 2, "choose one"},
		{[]string{"bench", "pairs", "--spawn", "--payload", "relay", "--cpuprofile", "c"}, 2, "serve --pprof"},
		{[]string{"bench", "--check", broken}, 1, "not a report"},
		{[]string{"bench", "--check", filepath.Join(t.TempDir(), "none.json")}, 1, "no such file"},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit %d saying %q", tc.args, code, errOut.String(), tc.code, tc.says)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"bench", "-h"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "saturation") || !strings.Contains(errOut.String(), "-spawn") {
		t.Errorf("-h: exit %d\n%s", code, errOut.String())
	}
}
