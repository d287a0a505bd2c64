package chat_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/switchboard-chat/switchboard/chat"
	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// The model driven as bubbletea drives it, key by key, against real
// Messengers of people on two real providers (loopback, mutual TLS
// between them). A screen is the model's View with its styling removed.

// user is one person: their device, Messenger (running its stream) and
// the model on its screen.
type user struct {
	t    *testing.T
	name string
	ms   *conversations.Messenger
	dir  string
	d    *driver
}

func newUser(t *testing.T, ctx context.Context, n *node.Node, handle string) *user {
	t.Helper()
	account, code, err := provider.AddUser(ctx, n.Store, handle, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Reachable by every partner, as if they had turned it on.
	if err := n.Store.SetReachability(ctx, account.ID, store.ReachAll, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := client.Register(ctx, n.ClientURL, code, "laptop", dir, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := chat.OpenMessenger(ctx, c, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { ms.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done; ms.Close(); c.Close() })
	u := &user{t: t, name: handle, ms: ms, dir: dir}
	u.d = newDriver(t, handle, chat.New(ms))
	return u
}

// driver plays bubbletea's part: it runs each command in a goroutine
// and feeds what it returns back to Update, one message at a time, on the
// test's goroutine.
type driver struct {
	t    *testing.T
	name string
	m    tea.Model
	msgs chan tea.Msg
}

// drivers are every model of the running test: each runs all the time,
// as each person's program would, so waiting on one pumps them all.
var drivers []*driver

func newDriver(t *testing.T, name string, m tea.Model) *driver {
	d := &driver{t: t, name: name, m: m, msgs: make(chan tea.Msg, 4096)}
	drivers = append(drivers, d)
	t.Cleanup(func() { drivers = nil })
	d.handle(tea.WindowSizeMsg{Width: 110, Height: 40})
	d.run(m.Init())
	return d
}

func (d *driver) run(cmd tea.Cmd) {
	if cmd != nil {
		go func() { d.msgs <- cmd() }()
	}
}

func (d *driver) handle(msg tea.Msg) {
	switch msg := msg.(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			d.run(c)
		}
	default:
		var cmd tea.Cmd
		d.m, cmd = d.m.Update(msg)
		d.run(cmd)
	}
}

// pump handles what has arrived for every model, without waiting.
func (d *driver) pump() {
	for _, o := range drivers {
		if o != d {
			o.pump1()
		}
	}
	d.pump1()
}

func (d *driver) pump1() {
	for {
		select {
		case msg := <-d.msgs:
			d.handle(msg)
		default:
			return
		}
	}
}

var ansiSeq = regexp.MustCompile(`\x1b\[[0-9;:?<=>]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)`)

// screen is the view as plain text.
func (d *driver) screen() string {
	d.pump()
	return ansiSeq.ReplaceAllString(d.m.View().Content, "")
}

// waitFor handles messages until the screen satisfies cond. The bound is
// generous: on a loaded 2-core CI machine, with every package's tests
// running at once, a delivered report once took longer than 15 s to show.
func (d *driver) waitFor(what string, cond func(string) bool) string {
	d.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		if s := d.screen(); cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: waited in vain for %s; the screen:\n%s", d.name, what, d.screen())
		}
		select {
		case msg := <-d.msgs:
			d.handle(msg)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// see waits until the screen shows every string.
func (d *driver) see(ss ...string) string {
	d.t.Helper()
	return d.waitFor(strings.Join(ss, " and "), func(s string) bool {
		for _, x := range ss {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	})
}

// notSee waits until the screen shows none of the strings.
func (d *driver) notSee(ss ...string) string {
	d.t.Helper()
	return d.waitFor("no "+strings.Join(ss, ", "), func(s string) bool {
		for _, x := range ss {
			if strings.Contains(s, x) {
				return false
			}
		}
		return true
	})
}

var keyCodes = map[string]rune{
	"enter": tea.KeyEnter, "esc": tea.KeyEscape, "tab": tea.KeyTab, "up": tea.KeyUp, "down": tea.KeyDown,
	"pgup": tea.KeyPgUp, "pgdown": tea.KeyPgDown, "backspace": tea.KeyBackspace,
}

// press sends keys: names of special keys, or single characters.
func (d *driver) press(keys ...string) {
	d.t.Helper()
	for _, k := range keys {
		var msg tea.KeyPressMsg
		switch {
		case keyCodes[k] != 0:
			msg = tea.KeyPressMsg{Code: keyCodes[k]}
		case k == "ctrl+u":
			msg = tea.KeyPressMsg{Code: 'u', Mod: tea.ModCtrl}
		case len([]rune(k)) == 1:
			msg = tea.KeyPressMsg{Code: []rune(k)[0], Text: k}
		default:
			d.t.Fatalf("no key %q", k)
		}
		if msg.String() != k {
			d.t.Fatalf("key %q reads as %q", k, msg.String())
		}
		d.pump()
		d.handle(msg)
	}
}

// write types text, character by character.
func (d *driver) write(text string) {
	for _, r := range text {
		d.handle(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

// TestChatModel: Alice on green and Bob on blue, each with the client on
// their screen. Alice starts a chat by Bob's address; it reaches Bob as
// a request, apart from his chats, until he accepts it. Then they write,
// reply, react, edit and delete, see delivered and read marks and typing,
// send and save a file and search; Bob's choice of one inbox outlives a
// restart of the client.
func TestChatModel(t *testing.T) {
	ctx := context.Background()
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	alice := newUser(t, ctx, l.Node(0), "alice")
	bob := newUser(t, ctx, l.Node(1), "bob")
	a, b := alice.d, bob.d

	a.see("No chats here yet")
	b.see("No chats here yet")

	// Alice starts a chat with Bob by his address, and writes.
	a.press("n")
	a.see("New chat with")
	a.write("bob@blue.test")
	a.press("enter")
	a.see("bob@blue.test  blue.test  [third-party]", "no messages yet")
	a.write("Hi Bob! Lunch on Friday?")
	a.press("enter")
	a.see("Hi Bob! Lunch on Friday?", "✓")

	// Bob's list: nothing in his chats, a request in Requests.
	b.see("Requests [1]")
	if s := b.screen(); strings.Contains(s, "alice@green.test") {
		t.Fatalf("the request shows among bob's chats:\n%s", s)
	}
	b.press("tab") // Third-party
	b.notSee("alice@green.test")
	b.press("tab") // Requests
	b.see("alice@green.test", "green.test", "request", "Hi Bob! Lunch on Friday?")
	// Bob's device has it, but a request reports nothing back until it
	// is accepted (docs/consent.md): Alice still sees it only sent.
	b.pump()
	a.pump()
	if s := a.screen(); strings.Contains(s, "delivered") {
		t.Fatalf("alice sees a request delivered before bob accepted it:\n%s", s)
	}

	// Accepting moves it to his third-party chats, and Alice sees it
	// delivered, not yet read.
	b.press("a")
	b.see("request accepted", "No message requests.")
	a.see("✓✓ delivered")
	b.press("tab", "tab") // Chats, then Third-party
	b.see("alice@green.test", "Hi Bob! Lunch on Friday?")
	b.press("enter")
	b.see("alice@green.test  green.test  [third-party]", "Hi Bob! Lunch on Friday?")
	// Opening it reads it.
	a.see("✓✓ read")

	// Bob answers Alice's message; Alice sees him typing, then the reply
	// with its quote.
	b.press("up", "r")
	b.see("replying to alice@green.test: Hi Bob! Lunch on Friday?")
	b.write("Friday works. Noon?")
	a.see("bob@blue.test is typing…")
	b.press("enter")
	a.see("Friday works. Noon?", "┃ you: Hi Bob! Lunch on Friday?")
	a.notSee("is typing…")

	// Alice reacts to the reply.
	a.press("up", "+")
	a.see("React with 1 👍")
	a.press("1") // a quick reaction needs no enter
	a.see("👍 you")
	b.see("👍 alice@green.test")

	// Alice edits her first message, then deletes it.
	a.press("up")
	a.press("up", "e")
	a.see("editing: Hi Bob! Lunch on Friday?")
	a.press("ctrl+u")
	a.write("Hi Bob! Lunch on Thursday?")
	a.press("enter")
	b.see("Hi Bob! Lunch on Thursday? (edited)")
	b.see("┃ alice@green.test: Hi Bob! Lunch on Thursday?")
	a.press("up", "up", "d")
	a.see("Delete this message for everyone? y/n")
	a.press("y")
	b.see("(message deleted)")
	b.notSee("Lunch on Thursday")

	// A file: Alice sends it by its path, Bob saves it to a directory.
	menu := filepath.Join(t.TempDir(), "menu.txt")
	if err := os.WriteFile(menu, []byte("soup, bread, salad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.see("(message deleted)", "> write a message") // back to writing
	a.press("up", "f")
	a.see("Send file:")
	a.write(menu)
	a.press("enter")
	a.see("sent menu.txt")
	b.see("📎 menu.txt (19 B)")
	saveDir := t.TempDir()
	b.press("up", "s")
	b.see("Save to directory:")
	b.write(saveDir)
	b.press("enter")
	b.see("saved " + filepath.Join(saveDir, "menu.txt"))
	if got, err := os.ReadFile(filepath.Join(saveDir, "menu.txt")); err != nil || string(got) != "soup, bread, salad\n" {
		t.Errorf("the saved file: %q, %v", got, err)
	}

	// Bob searches his history and opens the match in its chat.
	b.see("> write a message") // back to writing after saving
	b.press("up", "/")
	b.write("noon")
	b.press("enter")
	b.see(`Search: "noon", 1 found`, "you: Friday works. Noon?")
	b.press("enter")
	b.see("▌ you", "Friday works. Noon?")

	// Scrolling back loads older pages of the history.
	b.press("esc", "esc")
	for i := range 60 {
		if _, err := alice.ms.Send(ctx, mustRoom(t, alice.ms), "filler "+string(rune('A'+i%26))); err != nil {
			t.Fatal(err)
		}
	}
	b.see("Third-party (60)", "filler")
	b.press("enter")
	b.see("filler H")
	if s := b.screen(); strings.Contains(s, "beginning of the chat") {
		t.Fatalf("all of the history is on one screen:\n%s", s)
	}
	for i := 0; !strings.Contains(b.screen(), "beginning of the chat"); i++ {
		if i == 20 {
			t.Fatalf("paging back did not reach the beginning:\n%s", b.screen())
		}
		b.press("pgup")
		b.waitFor("a moment", func(string) bool { return true })
		time.Sleep(50 * time.Millisecond)
	}
	b.see("beginning of the chat", "Friday works. Noon?")

	// Bob keeps third-party chats in the one inbox, and the choice
	// outlives the client.
	b.press("esc", "esc")
	b.press(",")
	b.see("Third-party chats: in a folder of their own")
	b.press("enter")
	// The row at once; the note once the choice is kept.
	b.see("Third-party chats: in the one inbox", "third-party chats are in the one inbox")
	b.press("esc")
	b.see("Inbox", "alice@green.test")
	b.notSee("Third-party")
	// And turns typing indicators off, which is kept too.
	b.press(",", "down", "enter")
	b.see("Typing indicators: off", "typing indicators off") // the second, once kept
	if v, err := bob.ms.Setting(ctx, chat.SettingTyping); err != nil || v != "off" {
		t.Errorf("the typing setting is kept as %q (%v)", v, err)
	}
	b.press("esc")

	restarted := newDriver(t, "bob again", chat.New(bob.ms))
	restarted.see("Inbox", "alice@green.test", "filler")
	restarted.notSee("Third-party")
	restarted.press(",")
	restarted.see("Third-party chats: in the one inbox", "Typing indicators: off")
}

func mustRoom(t *testing.T, ms *conversations.Messenger) client.RoomID {
	t.Helper()
	rooms := ms.Client().Rooms()
	if len(rooms) != 1 {
		t.Fatalf("rooms: %v", rooms)
	}
	return rooms[0]
}

// TestRequestsDeclineAndBlock: a request can be declined or its sender
// blocked, from the list.
func TestRequestsDeclineAndBlock(t *testing.T) {
	ctx := context.Background()
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	carol := newUser(t, ctx, l.Node(0), "carol")
	dave := newUser(t, ctx, l.Node(0), "dave")
	bob := newUser(t, ctx, l.Node(1), "bob")
	b := bob.d
	for _, u := range []*user{carol, dave} {
		room, err := u.ms.Client().CreateRoom(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.ms.Client().Invite(ctx, room, "bob@blue.test"); err != nil {
			t.Fatal(err)
		}
		if _, err := u.ms.Send(ctx, room, "hello from "+u.name); err != nil {
			t.Fatal(err)
		}
	}
	b.see("Requests [2]")
	b.press("tab", "tab")
	b.see("hello from carol", "hello from dave")
	// Reading a request does not tell its sender.
	for !strings.Contains(b.screen(), "▸ carol@green.test") {
		b.press("down")
	}
	b.press("enter")
	b.see("A message request. a accept · x decline · b block", "hello from carol")
	b.press("x")
	b.see("request declined")
	b.notSee("hello from carol")
	b.see("▸ dave@green.test")
	b.press("b")
	b.see("blocked dave@green.test", "No message requests.")
	b.press("tab")
	b.see("No chats here yet")
}
