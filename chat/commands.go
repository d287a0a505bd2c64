package chat

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/conversations"
)

// This file is everything the model asks of the Messenger: each request is
// a tea.Cmd, run by bubbletea off the UI goroutine, whose answer comes back
// to Update as one of the messages below. The model itself never waits on
// the network or the disk.

// callTimeout bounds one request to the provider.
const callTimeout = 30 * time.Second

// Settings kept in the Messenger's history (SetSetting).
const (
	// SettingThirdParty is "combined" for one inbox with third-party
	// chats, anything else for a folder of their own.
	SettingThirdParty = "chat.third_party"
	// SettingTyping is "off" when typing indicators are turned off.
	SettingTyping = "chat.typing"
)

// historyPage is how many messages one History call reads.
const historyPage = 50

// ---- Messages that come back to Update ----

// updatesMsg carries the Messenger's notices, gathered: one or more.
type updatesMsg []conversations.Update

// ConnectionMsg tells the model the Messenger's stream stopped (Err) or
// works again (nil). The program's owner sends it.
type ConnectionMsg struct{ Err error }

type convsMsg struct {
	convs []conversations.Conversation
	err   error
}

type historyMsg struct {
	room    client.RoomID
	entries []conversations.Entry
	more    bool // older messages may exist
	older   bool // a page of older messages, to put before the loaded ones
	focus   *content.ID
	err     error
}

type settingsMsg struct {
	combined bool
	typing   bool
	err      error
}

type discoveryMsg struct {
	byHandle, byPhone bool
	err               error
}

// reachabilityMsg is the user's third-party reachability, as the provider
// keeps it (docs/reachability.md).
type reachabilityMsg struct {
	mode     string
	partners []string
	err      error
}

type typistsMsg struct {
	room  client.RoomID
	names []string
}

// doneMsg is the outcome of an action: a note for the status line, or
// an error.
type doneMsg struct {
	note string
	err  error
}

// openMsg opens a chat (after it was made, or found).
type openMsg struct {
	room client.RoomID
	note string
}

// choicesMsg offers the people a lookup found.
type choicesMsg struct {
	query   string
	matches []string
}

type searchMsg struct {
	query   string
	results []conversations.Entry
	err     error
}

// ---- The adapter: Messenger updates as tea messages ----

// waitUpdates waits for the next update and gathers whatever else is
// already queued with it, so that a burst redraws once.
func waitUpdates(ms *conversations.Messenger) tea.Cmd {
	return func() tea.Msg {
		u := <-ms.Updates()
		batch := updatesMsg{u}
		for len(batch) < 256 {
			select {
			case u := <-ms.Updates():
				batch = append(batch, u)
			default:
				return batch
			}
		}
		return batch
	}
}

// tickEvery is how often the typing line is brought up to date (an
// indicator lapses without a notice).
const tickEvery = time.Second

type tickMsg struct{}

func tick() tea.Cmd {
	return tea.Tick(tickEvery, func(time.Time) tea.Msg { return tickMsg{} })
}

// ---- Commands ----

func ctxCall() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

func loadConversations(ms *conversations.Messenger) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		cs, err := ms.Conversations(ctx)
		return convsMsg{convs: cs, err: err}
	}
}

func loadSettings(ms *conversations.Messenger) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		tp, err := ms.Setting(ctx, SettingThirdParty)
		if err != nil {
			return settingsMsg{err: err}
		}
		ty, err := ms.Setting(ctx, SettingTyping)
		return settingsMsg{combined: tp == "combined", typing: ty != "off", err: err}
	}
}

func saveSetting(ms *conversations.Messenger, key, value, note string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		return doneMsg{note: note, err: ms.SetSetting(ctx, key, value)}
	}
}

func loadDiscovery(ms *conversations.Messenger) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		h, p, err := ms.Client().Discovery(ctx)
		return discoveryMsg{byHandle: h, byPhone: p, err: err}
	}
}

func setDiscovery(ms *conversations.Messenger, byHandle, byPhone bool) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		if err := ms.Client().SetDiscovery(ctx, byHandle, byPhone); err != nil {
			return discoveryMsg{err: err}
		}
		h, p, err := ms.Client().Discovery(ctx)
		return discoveryMsg{byHandle: h, byPhone: p, err: err}
	}
}

func loadReachability(ms *conversations.Messenger) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		mode, partners, err := ms.Client().Reachability(ctx)
		return reachabilityMsg{mode: mode, partners: partners, err: err}
	}
}

// setReachability turns reachability by every partner on or off; the
// provider keeps it, so it holds for every device and across restarts.
func setReachability(ms *conversations.Messenger, mode string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		if err := ms.Client().SetReachability(ctx, mode, nil); err != nil {
			return reachabilityMsg{err: err}
		}
		mode, partners, err := ms.Client().Reachability(ctx)
		return reachabilityMsg{mode: mode, partners: partners, err: err}
	}
}

// loadHistory reads the newest messages of a room, at least limit, and
// reports them read when the person has the room open and accepted it.
// With focus, it reads back until that message is loaded.
func loadHistory(ms *conversations.Messenger, room client.RoomID, limit int, markRead bool, focus *content.ID) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		es, err := ms.History(ctx, room, 0, limit)
		if err != nil {
			return historyMsg{room: room, err: err}
		}
		more := len(es) >= limit
		if focus != nil {
			for pages := 0; more && pages < 40 && !slices.ContainsFunc(es, func(e conversations.Entry) bool { return e.ID == *focus }); pages++ {
				older, err := ms.History(ctx, room, es[0].Seq, historyPage)
				if err != nil {
					return historyMsg{room: room, err: err}
				}
				more = len(older) >= historyPage
				es = append(older, es...)
			}
		}
		if markRead {
			if err := ms.MarkRead(ctx, room); err != nil {
				return historyMsg{room: room, entries: es, more: more, focus: focus, err: err}
			}
		}
		return historyMsg{room: room, entries: es, more: more, focus: focus}
	}
}

// loadOlder reads the page of messages before seq.
func loadOlder(ms *conversations.Messenger, room client.RoomID, before int64) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		es, err := ms.History(ctx, room, before, historyPage)
		return historyMsg{room: room, entries: es, more: len(es) >= historyPage, older: true, err: err}
	}
}

func loadTypists(ms *conversations.Messenger, room client.RoomID) tea.Cmd {
	return func() tea.Msg {
		names := ms.Typists(room)
		slices.Sort(names)
		return typistsMsg{room: room, names: names}
	}
}

func act(note string, f func(ctx context.Context) error) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		if err := f(ctx); err != nil {
			return doneMsg{err: err}
		}
		return doneMsg{note: note}
	}
}

func sendText(ms *conversations.Messenger, room client.RoomID, text string) tea.Cmd {
	return act("", func(ctx context.Context) error {
		_, err := ms.Send(ctx, room, text)
		return err
	})
}

func sendReply(ms *conversations.Messenger, room client.RoomID, to content.ID, text string) tea.Cmd {
	return act("", func(ctx context.Context) error {
		_, err := ms.Reply(ctx, room, to, text)
		return err
	})
}

func sendEdit(ms *conversations.Messenger, room client.RoomID, id content.ID, text string) tea.Cmd {
	return act("edited", func(ctx context.Context) error { return ms.Edit(ctx, room, id, text) })
}

func sendDelete(ms *conversations.Messenger, room client.RoomID, id content.ID) tea.Cmd {
	return act("deleted", func(ctx context.Context) error { return ms.Delete(ctx, room, id) })
}

// toggleReaction adds a reaction, or withdraws it if this person had
// already reacted with that emoji.
func toggleReaction(ms *conversations.Messenger, room client.RoomID, to content.ID, emoji string, had bool) tea.Cmd {
	if had {
		return act("reaction "+emoji+" withdrawn", func(ctx context.Context) error { return ms.Unreact(ctx, room, to, emoji) })
	}
	return act("", func(ctx context.Context) error { return ms.React(ctx, room, to, emoji) })
}

func sendTyping(ms *conversations.Messenger, room client.RoomID) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		ms.Typing(ctx, room) // #nosec G104 -- best effort: a lost indicator is harmless
		return nil
	}
}

// expandPath turns a leading ~ into the home directory.
func expandPath(p string) string {
	p = strings.TrimSpace(p)
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// maxFile bounds what the client sends (the provider has its own limit).
const maxFile = 100 << 20

func sendFile(ms *conversations.Messenger, room client.RoomID, path string) tea.Cmd {
	path = expandPath(path)
	return func() tea.Msg {
		f, err := os.Open(path) // #nosec G304 -- the file the user asked to send
		if err != nil {
			return doneMsg{err: err}
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return doneMsg{err: err}
		}
		if st.IsDir() {
			return doneMsg{err: fmt.Errorf("%s is a directory", path)}
		}
		if st.Size() > maxFile {
			return doneMsg{err: fmt.Errorf("%s is larger than %d MB", path, maxFile>>20)}
		}
		name := filepath.Base(path)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := ms.SendFile(ctx, room, f, name, mime.TypeByExtension(filepath.Ext(name))); err != nil {
			return doneMsg{err: err}
		}
		return doneMsg{note: "sent " + name}
	}
}

// saveFile downloads a message's file into dir under its own name (made
// safe), never over an existing file.
func saveFile(ms *conversations.Messenger, room client.RoomID, id content.ID, dir string) tea.Cmd {
	dir = expandPath(dir)
	if dir == "" {
		dir = "."
	}
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		data, att, err := ms.SaveFile(ctx, room, id)
		if err != nil {
			return doneMsg{err: err}
		}
		name := safeName(att.Filename)
		ext := filepath.Ext(name)
		stem := strings.TrimSuffix(name, ext)
		for i := 1; ; i++ {
			path := filepath.Join(dir, name)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the path the user typed, written with O_EXCL
			if errors.Is(err, os.ErrExist) && i < 1000 {
				name = fmt.Sprintf("%s (%d)%s", stem, i, ext)
				continue
			}
			if err != nil {
				return doneMsg{err: err}
			}
			_, err = f.Write(data)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(path)
				return doneMsg{err: err}
			}
			return doneMsg{note: fmt.Sprintf("saved %s (%d bytes)", path, len(data))}
		}
	}
}

// safeName keeps a sender's file name from naming another directory.
func safeName(name string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	if name == "." || name == "/" || name == ".." || name == "" {
		return "file"
	}
	return strings.TrimLeft(name, ".")
}

func accept(ms *conversations.Messenger, room client.RoomID) tea.Cmd {
	return act("request accepted", func(ctx context.Context) error { return ms.Accept(ctx, room) })
}

func decline(ms *conversations.Messenger, room client.RoomID) tea.Cmd {
	return act("request declined", func(ctx context.Context) error { return ms.Decline(ctx, room) })
}

func block(ms *conversations.Messenger, room client.RoomID, users []string) tea.Cmd {
	return act("blocked "+strings.Join(users, ", "), func(ctx context.Context) error {
		for _, u := range users {
			if err := ms.Block(ctx, room, u); err != nil {
				return err
			}
		}
		return ms.Decline(ctx, room)
	})
}

func search(ms *conversations.Messenger, query string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		rs, err := ms.Search(ctx, query, 100)
		return searchMsg{query: query, results: rs, err: err}
	}
}

// findPeople turns what the person typed into someone to chat with: a
// full address is taken as it is; a handle alone or a phone number is
// looked up here and at every partner provider. One match starts the
// chat; several are offered.
func findPeople(ms *conversations.Messenger, query string) tea.Cmd {
	query = strings.TrimSpace(query)
	return func() tea.Msg {
		if query == "" {
			return doneMsg{}
		}
		if at := strings.LastIndexByte(query, '@'); at > 0 && at < len(query)-1 && !strings.HasPrefix(strings.ToLower(query), "tel:") {
			return startChat(ms, query)()
		}
		ctx, cancel := ctxCall()
		defer cancel()
		found, err := ms.Client().Lookup(ctx, query)
		if err != nil {
			return doneMsg{err: err}
		}
		switch len(found) {
		case 0:
			return doneMsg{err: fmt.Errorf("nobody found for %q (people are found only if they allow it; a full address like bob@blue.example always works)", query)}
		case 1:
			return startChat(ms, found[0])()
		}
		return choicesMsg{query: query, matches: found}
	}
}

// localName names a user as the Messenger does: a handle alone for this
// provider's users.
func localName(c *client.Client, addr string) string {
	addr = strings.TrimSpace(addr)
	if at := strings.LastIndexByte(addr, '@'); at >= 0 && strings.EqualFold(addr[at+1:], c.Domain()) {
		return strings.ToLower(addr[:at])
	}
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return addr[:at] + "@" + strings.ToLower(addr[at+1:])
	}
	return addr
}

// startChat opens the 1:1 chat with a person: the one there is, or a new
// room (hosted by this person's provider) with them invited.
func startChat(ms *conversations.Messenger, addr string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := ctxCall()
		defer cancel()
		who := localName(ms.Client(), addr)
		if who == ms.Client().User() {
			return doneMsg{err: errors.New("that is you")}
		}
		cs, err := ms.Conversations(ctx)
		if err != nil {
			return doneMsg{err: err}
		}
		for _, c := range cs {
			if len(c.Members) == 1 && c.Members[0] == who {
				return openMsg{room: c.Room}
			}
		}
		room, err := ms.Client().CreateRoom(ctx)
		if err != nil {
			return doneMsg{err: err}
		}
		if err := ms.Client().Invite(ctx, room, who); err != nil {
			ms.Decline(ctx, room) // #nosec G104 -- hide the empty room; the invite error is the one to report
			return doneMsg{err: fmt.Errorf("inviting %s: %w", who, err)}
		}
		// The person started it: not a request on this side.
		if err := ms.Accept(ctx, room); err != nil {
			return doneMsg{err: err}
		}
		return openMsg{room: room, note: "new chat with " + who}
	}
}
