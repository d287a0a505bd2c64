package browser_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/inbox"
	"github.com/switchboard-chat/switchboard/inbox/console"
	"github.com/switchboard-chat/switchboard/inboxserve"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
)

// chromiumPath is Debian's Chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// requireEnv is set by .ci/run: there, a missing browser or npm package
// fails the test instead of skipping it.
const requireEnv = "SWITCHBOARD_BROWSER_TEST"

// needTools skips (or, under requireEnv, fails) when the browser, node or
// the npm package is missing.
func needTools(t *testing.T) string {
	t.Helper()
	var missing []string
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = append(missing, chromiumPath+" (apt-get install chromium)")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (apt-get install nodejs npm)")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "the npm package playwright-core (run 'npm ci' in test/browser)")
	}
	if len(missing) > 0 {
		msg := "the browser test needs " + strings.Join(missing, ", ")
		if os.Getenv(requireEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return nodeBin
}

// customer is a person writing to the business from another provider,
// with a real SDK device and Messenger.
type customer struct {
	t       *testing.T
	address string
	ms      *conversations.Messenger
	room    client.RoomID
}

func newCustomer(t *testing.T, n *node.Node, handle, phone string) *customer {
	t.Helper()
	ctx := context.Background()
	// A new user's settings: reachable by nobody on another provider.
	// Writing to the business is enough for its answers to come back.
	_, code, err := provider.AddUser(ctx, n.Store, handle, phone, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := client.Register(ctx, n.ClientURL, code, "phone", dir, client.Options{})
	if err != nil {
		t.Fatalf("registering %s on %s: %v", handle, n.Domain, err)
	}
	ms, err := conversations.Open(c, dir, conversations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { ms.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done; ms.Close(); c.Close() })
	return &customer{t: t, address: handle + "@" + n.Domain, ms: ms}
}

// write starts a conversation with the business and sends text.
func (c *customer) write(business, text string) {
	c.t.Helper()
	ctx := context.Background()
	cl := c.ms.Client()
	room, err := cl.CreateRoom(ctx)
	if err != nil {
		c.t.Fatalf("%s: create room: %v", c.address, err)
	}
	if err := cl.Invite(ctx, room, business); err != nil {
		c.t.Fatalf("%s: invite %s: %v", c.address, business, err)
	}
	if _, err := c.ms.Send(ctx, room, text); err != nil {
		c.t.Fatalf("%s: send: %v", c.address, err)
	}
	c.room = room
}

// received lists the texts the customer read from others in its room.
func (c *customer) received() []string {
	c.t.Helper()
	es, err := c.ms.History(context.Background(), c.room, 0, 100)
	if err != nil {
		c.t.Fatalf("%s: history: %v", c.address, err)
	}
	var out []string
	for _, e := range es {
		if !e.Own && e.Text != "" {
			out = append(out, e.Text)
		}
	}
	return out
}

// lines reads the script's stdout line by line.
type lines struct {
	mu  sync.Mutex
	all []string
	ch  chan string
}

func readLines(r io.Reader) *lines {
	l := &lines{ch: make(chan string, 64)}
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			l.mu.Lock()
			l.all = append(l.all, s.Text())
			l.mu.Unlock()
			l.ch <- s.Text()
		}
		close(l.ch)
	}()
	return l
}

// next waits for the line starting with prefix and returns the rest.
func (l *lines) next(t *testing.T, prefix string, stderr *syncBuffer, deadline time.Time) string {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case s, ok := <-l.ch:
			if !ok {
				t.Fatalf("the browser script ended before %q; its stderr:\n%s", prefix, stderr)
			}
			if rest, found := strings.CutPrefix(s, prefix); found {
				return strings.TrimSpace(rest)
			}
		case <-timer.C:
			t.Fatalf("no %q from the browser script in time; its stderr:\n%s", prefix, stderr)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAgentAnswersTwoPlatforms: the shop's inbox runs on green.test as
// `switchboard inbox` runs it. An agent logs in with a real Chromium; Bob
// (blue.test) and Carol (red.test) write in; both conversations appear in
// the open list without a reload; the agent opens Bob's, assigns it to
// herself, replies, adds a note and a label and resolves it. Bob's SDK
// receives the reply decrypted, and never the note.
func TestAgentAnswersTwoPlatforms(t *testing.T) {
	nodeBin := needTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	deadline := time.Now().Add(60 * time.Second)

	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test", "red.test"}, node.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	green := l.Node(0)

	// The operator adds the business account; the inbox registers with
	// its enrollment code, as `switchboard inbox --code` does.
	_, code, err := provider.AddUser(ctx, green.Store, "shop", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The inbox's log is shown when the test fails.
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the inbox's log:\n%s", logs)
		}
	})
	in, err := inboxserve.Start(ctx, inboxserve.Options{
		Dir: t.TempDir(), Server: green.ClientURL, Code: code, Listen: "127.0.0.1:0", Log: logger,
		Handler: func(d *inbox.Desk) http.Handler { return console.New(d, console.Options{Log: logger}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	if in.Admin == nil || in.Account != "shop@green.test" {
		t.Fatalf("first start: admin %v, account %s", in.Admin, in.Account)
	}
	runCtx, stopInbox := context.WithCancel(ctx)
	inboxDone := make(chan error, 1)
	go func() { inboxDone <- in.Run(runCtx) }()
	t.Cleanup(func() {
		stopInbox()
		if err := <-inboxDone; err != nil {
			t.Errorf("the inbox stopped with %v", err)
		}
	})

	bob := newCustomer(t, l.Node(1), "bob", "+41 44 668 18 00")
	carol := newCustomer(t, l.Node(2), "carol", "")
	const asked = "Where is my parcel? Order 1042."

	shots := os.Getenv("SWITCHBOARD_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join("screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, nodeBin, "inbox.mjs")
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+in.URL,
		"INBOX_LOGIN="+in.Admin.Login,
		"INBOX_PASSWORD="+in.Admin.Password,
		"CUSTOMERS="+bob.address+","+carol.address,
		"ANSWER="+bob.address,
		"ASKED="+asked,
		"SHOTS="+shots,
		"PROFILE="+t.TempDir(),
		"CHROMIUM="+chromiumPath,
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := readLines(stdout)
	waited := false
	defer func() {
		if !waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()

	out.next(t, "READY", stderr, deadline)
	// Both customers write in while the agent looks at the list.
	bob.write(in.Account, asked)
	carol.write(in.Account, "Do you ship to Berlin?")

	reply := out.next(t, "REPLY ", stderr, deadline)
	note := out.next(t, "NOTE ", stderr, deadline)
	out.next(t, "DONE", stderr, deadline)
	waited = true
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the browser script: %v; its stderr:\n%s", err, stderr)
	}
	if reply == "" || note == "" {
		t.Fatalf("reply %q, note %q", reply, note)
	}

	// Bob's device decrypts the reply the agent typed; the note never
	// leaves the business.
	for {
		got := bob.received()
		if contains(got, reply) {
			if contains(got, note) {
				t.Errorf("bob received the internal note: %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob did not receive the reply %q; he has %q", reply, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, got := range [][]string{bob.received(), carol.received()} {
		for _, s := range got {
			if strings.Contains(s, "Internal:") {
				t.Errorf("a customer received the note: %q", s)
			}
		}
	}

	// The Desk agrees with what the browser did.
	convs, err := in.Desk.List(ctx, inbox.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	byCustomer := map[string]inbox.Conversation{}
	for _, c := range convs {
		byCustomer[c.Customer] = c
	}
	b, ok := byCustomer[bob.address]
	if !ok || byCustomer[carol.address].ID == 0 {
		t.Fatalf("conversations: %v", convs)
	}
	if b.Status != inbox.StatusResolved || b.Assignee == 0 || !contains(b.Labels, "shipping") {
		t.Errorf("bob's conversation: status %s, assignee %d, labels %v", b.Status, b.Assignee, b.Labels)
	}
	if c := byCustomer[carol.address]; c.Status != inbox.StatusOpen {
		t.Errorf("carol's conversation: status %s", c.Status)
	}
	for _, f := range []string{"list.png", "conversation.png"} {
		if st, err := os.Stat(filepath.Join(shots, f)); err != nil || st.Size() == 0 {
			t.Errorf("screenshot %s: %v", f, err)
		}
	}
	t.Logf("screenshots in %s", mustAbs(shots))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return fmt.Sprint(p)
}
