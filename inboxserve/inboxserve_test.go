package inboxserve_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/inbox"
	"github.com/switchboard-chat/switchboard/inbox/console"
	"github.com/switchboard-chat/switchboard/inboxserve"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
)

func consoleHandler(d *inbox.Desk) http.Handler { return console.New(d, console.Options{}) }

// TestFirstRunThenReopen: the operator adds the shop's account on
// green.test and starts the inbox with its enrollment code. The first
// start registers the device, makes the account reachable and findable by
// handle, and creates the admin with a password that logs in. Stopped
// and started again without the code, it reopens the same account and
// makes no second admin. A code for an inbox that has a device, or no
// code for one that has none, is refused.
func TestFirstRunThenReopen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	green := l.Node(0)
	_, code, err := provider.AddUser(ctx, green.Store, "shop", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := inboxserve.Options{Dir: dir, Server: green.ClientURL, Code: code, Listen: "127.0.0.1:0", Admin: "boss", Handler: consoleHandler}

	in, err := inboxserve.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !in.Registered || in.Account != "shop@green.test" || in.Admin == nil || in.Admin.Login != "boss" || len(in.Admin.Password) < 20 {
		t.Fatalf("first start: registered %v, account %s, admin %+v", in.Registered, in.Account, in.Admin)
	}
	if _, err := in.Desk.Login(ctx, "boss", in.Admin.Password); err != nil {
		t.Errorf("the printed password does not log in: %v", err)
	}
	if mode, _, err := in.Client.Reachability(ctx); err != nil || mode != client.ReachAll {
		t.Errorf("reachability %q, %v; want all partners", mode, err)
	}
	if byHandle, byPhone, err := in.Client.Discovery(ctx); err != nil || !byHandle || byPhone {
		t.Errorf("discovery by handle %v, by phone %v, %v", byHandle, byPhone, err)
	}
	var welcome strings.Builder
	in.PrintWelcome(&welcome)
	for _, want := range []string{in.URL, "login:    boss", "password: " + in.Admin.Password, "shop@green.test"} {
		if !strings.Contains(welcome.String(), want) {
			t.Errorf("the welcome does not say %q:\n%s", want, welcome.String())
		}
	}

	// The console answers while Run runs, and Run ends when asked.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(runCtx) }()
	resp, err := http.Get(in.URL + "login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /login: %s", resp.Status)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := in.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := http.Get(in.URL + "login"); err == nil {
		t.Errorf("the console still answers after Run ended")
	}

	// A second start with the code is a mistake: the device exists.
	if _, err := inboxserve.Start(ctx, opts); err == nil || !strings.Contains(err.Error(), "already holds the business device") {
		t.Errorf("second start with a code: %v", err)
	}
	// Without it, everything comes back from the directory.
	opts.Code, opts.Server = "", ""
	again, err := inboxserve.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Registered || again.Admin != nil || again.Account != "shop@green.test" {
		t.Errorf("reopened: registered %v, admin %+v, account %s", again.Registered, again.Admin, again.Account)
	}
	agents, err := again.Desk.Agents(ctx)
	if err != nil || len(agents) != 1 || agents[0].Login != "boss" {
		t.Errorf("agents after reopening: %+v, %v", agents, err)
	}

	// A directory without a device needs a code (and a server).
	if _, err := inboxserve.Start(ctx, inboxserve.Options{Dir: t.TempDir(), Server: green.ClientURL, Listen: "127.0.0.1:0", Handler: consoleHandler}); err == nil || !strings.Contains(err.Error(), "--code") {
		t.Errorf("no code: %v", err)
	}
	if _, err := inboxserve.Start(ctx, inboxserve.Options{Dir: t.TempDir(), Listen: "127.0.0.1:0", Handler: consoleHandler}); err == nil || !strings.Contains(err.Error(), "--server URL --code CODE") {
		t.Errorf("no server: %v", err)
	}
	// A used code is the provider's refusal, passed on.
	if _, err := inboxserve.Start(ctx, inboxserve.Options{Dir: t.TempDir(), Server: green.ClientURL, Code: code, Listen: "127.0.0.1:0", Handler: consoleHandler}); !errors.Is(err, client.ErrGone) {
		t.Errorf("used code: %v, want gone", err)
	}
}

// TestConsoleCutsOffASlowBody: someone who reaches the console's address
// starts a login form and sends its body a byte at a time, then stops.
// Once the body timeout has passed the console closes the connection,
// instead of holding it (and a goroutine) for as long as they like. The
// console's event stream, a request without a body, is not cut.
func TestConsoleCutsOffASlowBody(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := node.StartLocal(t.TempDir(), []string{"green.test"}, node.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	_, code, err := provider.AddUser(ctx, l.Node(0).Store, "shop", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inboxserve.Start(ctx, inboxserve.Options{Dir: t.TempDir(), Server: l.Node(0).ClientURL, Code: code,
		Listen: "127.0.0.1:0", Handler: consoleHandler, BodyTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(runCtx) }()
	defer func() {
		stop()
		<-done
		in.Close()
	}()

	conn, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(in.URL, "http://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: console\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nl")
	// Not a timed assertion: a bound so that a console that never closes
	// the connection fails the test instead of hanging it.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the console kept a connection with a tenth of a body open for a minute")
	}
}
