package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
)

// TestMain lets a test run the switchboard command as a process of its
// own, the way an operator runs `switchboard admin` beside a running
// demo: the test binary plays the command when SWITCHBOARD_RUN_MAIN is 1.
func TestMain(m *testing.M) {
	if os.Getenv("SWITCHBOARD_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// switchboardProcess runs `switchboard ARGS...` in a separate process and
// returns its output.
func switchboardProcess(t *testing.T, args ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "SWITCHBOARD_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDemo runs `switchboard demo --exit` twice on one data directory:
// the first run makes the accounts and devices, the second reuses them.
// Each shows every step, a latency for every delivery, each provider's
// stored ciphertext, and no plaintext anywhere.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	for i, reuse := range []string{"new account", "reopened"} {
		var out, errOut bytes.Buffer
		start := time.Now()
		code := runDemo([]string{"--exit", "--data", dir}, &out, &errOut)
		text := out.String()
		if code != 0 {
			t.Fatalf("run %d: exit %d\nstderr: %s\nstdout:\n%s", i+1, code, errOut.String(), text)
		}
		t.Logf("run %d took %s", i+1, time.Since(start))
		checks := []struct {
			what string
			n    int
		}{
			{reuse, 4},
			{"Each person allows every partner provider to reach them", 1},
			{"Step 1. A 1:1 chat between alice@green.example and bob@blue.example", 1},
			{"Step 2. A group across all three providers", 1},
			{"Step 3. The members change: dave@red.example is added, carol@red.example removed", 1},
			{"invites bob@blue.example; bob's device joins", 2},
			{"invites carol@red.example; carol's device joins", 1},
			{"invites dave@red.example; dave's device joins", 1},
			{"carol's device is told she was removed", 1},
			// Seven messages: two in the 1:1, three in the group, two
			// after the change of members.
			{"\n    stored     seq ", 7},
			{"\n    plaintext found: no (10 files searched)", 7},
			{"\nplaintext found: no", 1},
			{"red.example nothing (not in the room)", 2},
			{"red.example (follower)", 5},
			{"not to     carol@red.example", 2},
			{"members now, as alice's device sees the group: alice, bob@blue.example, dave@red.example", 1},
			{"7 messages sent, 12 deliveries decrypted", 1},
		}
		for _, c := range checks {
			if got := strings.Count(text, c.what); got != c.n {
				t.Errorf("run %d: %q appears %d times, want %d", i+1, c.what, got, c.n)
			}
		}
		// Every delivery has its latency; every message is followed by
		// its deliveries.
		latency := regexp.MustCompile(`(?m)^    delivered  \S+@\S+ +decrypted after [0-9.]+(µs|ms|s)$`)
		if got := len(latency.FindAllString(text, -1)); got != 12 {
			t.Errorf("run %d: %d deliveries with a latency, want 12", i+1, got)
		}
		if strings.Contains(text, "YES") || errOut.Len() > 0 {
			t.Errorf("run %d: stderr %q", i+1, errOut.String())
		}
		if t.Failed() {
			t.Fatalf("output of run %d:\n%s", i+1, text)
		}
	}
	// The providers' logs went to their file, not to the output.
	if log, err := os.ReadFile(filepath.Join(dir, demoLogName)); err != nil || !bytes.Contains(log, []byte("provider=blue.example")) {
		t.Errorf("providers' log: %v, %d bytes", err, len(log))
	}
}

// TestDemoServesOtherClients leaves the demo running after its
// walk-through, as `switchboard demo` does without --exit, and connects a
// client the way the demo tells a person to: a user added with
// `switchboard admin user add` from another process on the running
// provider's data directory, a device registered at the printed URL,
// inviting the demo's people on other providers, whose devices print what
// they decrypt. The running providers must not notice the other process
// in their databases (see fileReader). Stopping the demo removes its
// temporary directory.
func TestDemoServesOtherClients(t *testing.T) {
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- (&demo{out: out}).run(ctx, "", false) }()

	out.waitFor(t, done, "Press Ctrl-C to stop.")
	text := out.String()
	dataDir := regexp.MustCompile(`(?m)^Data: (\S+) \(temporary`).FindStringSubmatch(text)
	greenURL := regexp.MustCompile(`(?m)^  green\.example +client API (http://\S+)$`).FindStringSubmatch(text)
	if dataDir == nil || greenURL == nil {
		t.Fatalf("no data directory or green's client API in:\n%s", text)
	}
	// The very command the demo prints.
	cmd := regexp.MustCompile(`go run \./cmd/switchboard (admin user add erin .*)`).FindStringSubmatch(text)
	if cmd == nil {
		t.Fatalf("no admin command in:\n%s", text)
	}
	erinCode := enrollmentCode(switchboardProcess(t, strings.Fields(cmd[1])...))
	// And the same on blue, whose rooms then have followers on the two
	// others.
	ginaCode := enrollmentCode(switchboardProcess(t, "admin", "user", "add", "gina", "--domain", "blue.example", "--data", filepath.Join(dataDir[1], "blue.example")))
	blueURL := regexp.MustCompile(`(?m)^  blue\.example +client API (http://\S+)$`).FindStringSubmatch(text)[1]

	newcomer(t, ctx, greenURL[1], erinCode, "Erin, a newcomer on green, says hi to Bob", "bob@blue.example")
	out.waitFor(t, done, `bob@blue.example decrypted from erin@green.example: "Erin, a newcomer on green, says hi to Bob"`)
	newcomer(t, ctx, blueURL, ginaCode, "Gina, from blue, to Alice and Dave", "alice@green.example", "dave@red.example")
	out.waitFor(t, done, `alice@green.example decrypted from gina@blue.example: "Gina, from blue, to Alice and Dave"`)
	out.waitFor(t, done, `dave@red.example decrypted from gina@blue.example: "Gina, from blue, to Alice and Dave"`)

	// The admin process shared the database with the running provider
	// without disturbing it.
	if log, err := os.ReadFile(filepath.Join(dataDir[1], demoLogName)); err != nil || bytes.Contains(log, []byte("level=ERROR")) {
		t.Errorf("the providers' log (%v):\n%s", err, log)
	}

	cancel() // Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the demo ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the demo did not stop")
	}
	if _, err := os.Stat(dataDir[1]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary data directory is still there (%v)", err)
	}
}

// enrollmentCode picks the code out of `switchboard admin user add`'s
// output: its last word.
func enrollmentCode(out string) string {
	fields := strings.Fields(out)
	return fields[len(fields)-1]
}

// newcomer registers a device with code at the provider, creates a room,
// invites the people and sends them text.
func newcomer(t *testing.T, ctx context.Context, url, code, text string, people ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// The device's connections are closed before the demo stops: one
	// left open unused would hold up the providers' shutdown for 5
	// seconds.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	c, err := client.Register(ctx, url, code, "laptop", t.TempDir(), client.Options{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("registering with code %s at %s: %v", code, url, err)
	}
	defer c.Close()
	room, err := c.CreateRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range people {
		if err := c.Invite(ctx, room, p); err != nil {
			t.Fatalf("%s inviting %s: %v", c.User(), p, err)
		}
	}
	body, err := content.Text(text).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, room, body); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is the demo's output, written by its goroutines and read by
// the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the output holds s; the demo ending first, or 20
// seconds passing, fails the test.
func (b *syncBuffer) waitFor(t *testing.T, done <-chan error, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), s) {
		select {
		case err := <-done:
			t.Fatalf("the demo ended (%v) before printing %q:\n%s", err, s, b.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", s, b.String())
		}
	}
}
