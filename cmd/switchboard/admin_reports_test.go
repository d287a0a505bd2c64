package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/federation"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// The operator's report queue on running providers: Bob (blue) abuses
// Alice (green) in her room; she reports him twice. Green's operator can
// neither warn nor suspend a user of blue, but can stop federating with
// blue; blue's operator, who got the reports too, warns Bob and then
// suspends him.

// admin runs `switchboard admin reports ARGS...` and returns its exit
// code and output.
func admin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"admin", "reports"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// device registers a user (made first) with one device on a node, and
// returns it with the directory its state is kept in.
func device(t *testing.T, n *node.Node, handle string) (*client.Client, string) {
	t.Helper()
	ctx := context.Background()
	u, code, err := provider.AddUser(ctx, n.Store, handle, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetReachability(ctx, u.ID, store.ReachAll, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := client.Register(ctx, n.ClientURL, code, "phone", dir, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, dir
}

// say sends a MIMI content text message naming its sender and room, as a
// Messenger does.
func say(t *testing.T, c *client.Client, room client.RoomID, text string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		// The device may not have joined the room yet: until it has, it
		// does not know the room's hub, part of the room's URI.
		if err := c.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		msg := content.Text(text)
		if err := msg.SetExtension(content.SenderURIKey, c.UserURI()); err != nil {
			t.Fatal(err)
		}
		if err := msg.SetExtension(content.RoomURIKey, c.RoomURI(room)); err != nil {
			t.Fatal(err)
		}
		data, err := msg.Encode()
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Send(context.Background(), room, data)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sending %q: %v", text, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hear waits for a message with the text and returns it.
func hear(t *testing.T, c *client.Client, room client.RoomID, text string) *client.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := c.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		for drained := false; !drained; {
			select {
			case e := <-c.Events():
				if m, ok := e.(*client.Message); ok && m.Room == room {
					if msg, err := content.Decode(m.Body); err == nil && msg.Text() == text {
						return m
					}
				}
			default:
				drained = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never heard %q", text)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// waitReports waits until the store holds n reports.
func waitReports(t *testing.T, st store.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rs, err := st.Reports(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reports, want %d", len(rs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdminReports(t *testing.T) {
	dir := t.TempDir()
	l, err := node.StartLocal(dir, []string{"green.test", "blue.test"}, node.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	green, blue := l.Node(0), l.Node(1)
	greenDir, blueDir := filepath.Join(dir, "green.test"), filepath.Join(dir, "blue.test")
	ctx := context.Background()
	alice, _ := device(t, green, "alice")
	bob, bobDir := device(t, blue, "bob")
	carol, _ := device(t, blue, "carol")

	if code, out, _ := admin(t, "--data", greenDir); code != 0 || !strings.Contains(out, "no reports") {
		t.Fatalf("empty queue: %d %q", code, out)
	}

	room, err := alice.CreateRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"bob@blue.test", "carol@blue.test"} {
		if err := alice.Invite(ctx, room, who); err != nil {
			t.Fatal(err)
		}
	}
	say(t, bob, room, "first insult")
	say(t, bob, room, "second insult")
	for _, text := range []string{"first insult", "second insult"} {
		m := hear(t, alice, room, text)
		if m.Frank == nil {
			t.Fatalf("%q came without a frank", text)
		}
		if _, err := alice.Report(ctx, room, client.AbuseReport{AllegedAbuser: "bob@blue.test", Note: "about " + text,
			Messages: []client.ReportedMessage{{Content: m.Body, Frank: *m.Frank}}}); err != nil {
			t.Fatalf("alice reports %q: %v", text, err)
		}
	}
	waitReports(t, green.Store, 2)
	waitReports(t, blue.Store, 2) // forwarded: bob is blue's user

	code, out, _ := admin(t, "list", "--data", greenDir)
	if code != 0 || !strings.Contains(out, "mimi://blue.test/u/bob") || !strings.Contains(out, "mimi://green.test/u/alice") || !strings.Contains(out, "open") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = admin(t, "show", "1", "--data", greenDir)
	if code != 0 || !strings.Contains(out, "first insult") || !strings.Contains(out, "about first insult") {
		t.Fatalf("show: %d\n%s", code, out)
	}

	t.Run("GreenCannotWarnOrSuspendBlueUsers", func(t *testing.T) {
		for _, verb := range []string{"warn", "suspend-user"} {
			code, _, errOut := admin(t, verb, "1", "--data", greenDir)
			if code != 1 || !strings.Contains(errOut, "only blue.test can") {
				t.Errorf("%s at green: %d %q, want a refusal naming blue.test", verb, code, errOut)
			}
		}
		if r, _ := green.Store.ReportByID(ctx, 1); r.State != store.ReportOpen {
			t.Errorf("a refused action marked the report %+v", r)
		}
	})

	t.Run("BlueWarnsBob", func(t *testing.T) {
		code, out, errOut := admin(t, "warn", "1", "--message", "Stop insulting people.", "--data", blueDir)
		if code != 0 || !strings.Contains(out, "bob warned") {
			t.Fatalf("warn: %d %q %q", code, out, errOut)
		}
		ns, err := bob.Notices(ctx)
		if err != nil || len(ns) != 1 || ns[0].Text != "Stop insulting people." || ns[0].Report != 1 {
			t.Fatalf("bob's notices: %+v, %v", ns, err)
		}
		if ns, _ := carol.Notices(ctx); len(ns) != 0 {
			t.Fatalf("carol got notices: %+v", ns)
		}
		if code, _, errOut := admin(t, "warn", "1", "--data", blueDir); code != 1 || !strings.Contains(errOut, "already handled") {
			t.Fatalf("warning twice: %d %q", code, errOut)
		}
		if _, out, _ := admin(t, "--data", blueDir); !strings.Contains(out, "warn ") {
			t.Fatalf("the list does not show the action:\n%s", out)
		}
	})

	t.Run("BlueSuspendsBob", func(t *testing.T) {
		if code, _, errOut := admin(t, "suspend-user", "2", "--data", blueDir); code != 0 {
			t.Fatalf("suspend-user: %d %q", code, errOut)
		}
		var ae *client.APIError
		// His session, his sends and a new sign-in are all refused: the
		// settings' routes at once, the busiest ones once the provider's
		// cache of his session is older than its bound (1 s, docs/api.md),
		// which a sync waits out (its inbox request is one of those; the
		// housekeeping after it is not, and is told apart by the error).
		if _, err := bob.Notices(ctx); !errors.As(err, &ae) || ae.Code != "suspended" || ae.Status != http.StatusForbidden {
			t.Fatalf("bob's session after suspension: %v, want 403 suspended", err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err := bob.Sync(ctx)
			if errors.As(err, &ae) && ae.Code == "suspended" && strings.HasPrefix(err.Error(), "client: sync: ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bob's syncs 10 s after his suspension: %v, want suspended", err)
			}
		}
		if _, err := bob.Send(ctx, room, []byte("third insult")); !errors.As(err, &ae) || ae.Code != "suspended" {
			t.Fatalf("bob sending after suspension: %v, want suspended", err)
		}
		bob.Close()
		if _, err := client.Open(ctx, blue.ClientURL, bobDir, client.Options{}); !errors.As(err, &ae) || ae.Code != "suspended" {
			t.Fatalf("bob signing in after suspension: %v, want suspended", err)
		}
		// Carol, on the same provider, is not affected.
		say(t, carol, room, "hello from carol")
		hear(t, alice, room, "hello from carol")
	})

	t.Run("GreenSuspendsBlueAsAPartner", func(t *testing.T) {
		trust := filepath.Join(greenDir, "trust.json")
		if code, _, errOut := admin(t, "suspend-partner", "1", "--data", greenDir); code != 1 || !strings.Contains(errOut, "--trust") {
			t.Fatalf("suspend-partner without the trust file: %d %q", code, errOut)
		}
		code, out, errOut := admin(t, "suspend-partner", "1", "--data", greenDir, "--trust", trust)
		if code != 0 || !strings.Contains(out, "blue.test suspended") {
			t.Fatalf("suspend-partner: %d %q %q", code, out, errOut)
		}
		// What SIGHUP does in serve.
		if err := green.Trust.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, err := green.Trust.Partner("blue.test"); !errors.Is(err, federation.ErrSuspendedPartner) {
			t.Fatalf("blue after suspend-partner: %v, want suspended", err)
		}
		// Carol's message is forwarded by blue to green, which no
		// longer federates with blue.
		var ae *client.APIError
		if _, err := carol.Send(ctx, room, []byte("anyone there?")); !errors.As(err, &ae) || ae.Code != "hub_unreachable" {
			t.Fatalf("carol's message to green's room after blue's suspension: %v, want hub_unreachable", err)
		}
		if r, _ := green.Store.ReportByID(ctx, 1); r.Action != "suspend-partner" || r.ActionNote != "blue.test" || r.Handled.IsZero() {
			t.Fatalf("report 1 at green: %+v", r)
		}
	})

	if code, _, errOut := admin(t, "dismiss", "2", "--data", greenDir); code != 0 {
		t.Fatalf("dismiss: %d %q", code, errOut)
	}
	if code, _, errOut := admin(t, "show", "99", "--data", greenDir); code != 1 || !strings.Contains(errOut, "no report 99") {
		t.Fatalf("show 99: %d %q", code, errOut)
	}
	if code, _, _ := admin(t, "frobnicate", "1", "--data", greenDir); code != 2 {
		t.Fatalf("an unknown action exits %d, want 2", code)
	}
}
