// Package chat is `switchboard chat`, the terminal client for people: a
// bubbletea program on a device's conversations (package conversations).
//
// The Model is pure: Update changes its state and returns commands, View
// draws it. Everything that touches the network or the disk is a tea.Cmd
// (commands.go) that bubbletea runs off the UI goroutine and whose answer
// comes back as a message; the Messenger's own notices reach the model
// the same way, through a command that waits on its Updates channel.
package chat

import (
	"slices"
	"strings"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/conversations"
)

type screen int

const (
	screenList screen = iota
	screenChat
	screenResults // search results
	screenSettings
	screenHelp
)

// folder is one tab of the conversation list.
type folder int

const (
	folderChats folder = iota
	folderThirdParty
	folderRequests
)

// mode is what keys do in a chat: write, or act on messages.
type mode int

const (
	modeCompose  mode = iota // keys go to the message being written
	modeNavigate             // ↑/↓ select a message; letters are commands
)

// promptKind is the question the bottom line asks, if any.
type promptKind int

const (
	promptNone promptKind = iota
	promptNewChat
	promptPick // one of several people a lookup found
	promptFile
	promptSave
	promptReact
	promptSearch
	promptDelete
)

// Reactions offered by number in the reaction prompt.
var quickReactions = []string{"👍", "❤️", "😂", "😮", "😢", "🙏"}

// Model is the terminal client's state.
type Model struct {
	ms     *conversations.Messenger
	me     string // this person's handle
	domain string

	width, height int
	screen        screen
	back          screen // where the help screen returns to

	// The conversation list.
	convs    []conversations.Conversation
	folder   folder
	listSel  int
	combined bool // third-party chats in the one inbox
	typingOn bool
	loaded   bool // conversations read at least once

	// Settings.
	settingsSel   int
	discoverKnown bool
	byHandle      bool
	byPhone       bool
	reachKnown    bool
	reachMode     string   // client.ReachOff, ReachAll or ReachSome
	reachPartners []string // for ReachSome

	// The open chat.
	room      client.RoomID
	entries   []conversations.Entry
	more      bool // older messages may exist
	loadingUp bool
	mode      mode
	sel       *content.ID // the selected message
	scroll    int         // lines scrolled back from the newest, nothing selected
	compose   textinput.Model
	replyTo   *conversations.Entry
	editing   *conversations.Entry
	typists   []string

	// The prompt.
	prompt  promptKind
	input   textinput.Model
	choices []string
	choice  int

	// Search results.
	query      string
	results    []conversations.Entry
	resultSel  int
	resultBack screen

	note    string // the status line
	noteErr bool
	offline error
}

// New makes the model of a Messenger's owner.
func New(ms *conversations.Messenger) *Model {
	c := ms.Client()
	m := &Model{ms: ms, me: c.User(), domain: c.Domain(), width: 80, height: 24, typingOn: true}
	m.compose = textinput.New()
	m.compose.Prompt = "> "
	m.compose.Placeholder = "write a message"
	m.compose.CharLimit = 4000
	m.input = textinput.New()
	m.input.CharLimit = 500
	return m
}

// Init reads the settings and the conversations and starts listening.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(loadSettings(m.ms), loadConversations(m.ms), waitUpdates(m.ms), tick())
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = max(msg.Width, 20), max(msg.Height, 8)
		m.compose.SetWidth(m.width - 4)
		m.input.SetWidth(m.width - 4)
		return m, nil
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case tea.PasteMsg:
		if m.prompt != promptNone {
			var cmd tea.Cmd
			m.input, cmd = m.input.Update(msg)
			return m, cmd
		}
		if m.screen == screenChat && m.mode == modeCompose {
			var cmd tea.Cmd
			m.compose, cmd = m.compose.Update(msg)
			return m, cmd
		}
		return m, nil
	case updatesMsg:
		m.offline = nil
		return m, tea.Batch(m.refresh(msg), waitUpdates(m.ms))
	case tickMsg:
		cmds := []tea.Cmd{tick()}
		if m.screen == screenChat && m.typingOn {
			cmds = append(cmds, loadTypists(m.ms, m.room))
		}
		return m, tea.Batch(cmds...)
	case ConnectionMsg:
		m.offline = msg.Err
		return m, nil
	case convsMsg:
		if msg.err != nil {
			m.fail(msg.err)
			return m, nil
		}
		m.convs, m.loaded = msg.convs, true
		m.clampList()
		return m, nil
	case historyMsg:
		return m, m.gotHistory(msg)
	case settingsMsg:
		if msg.err != nil {
			m.fail(msg.err)
		}
		m.combined, m.typingOn = msg.combined, msg.typing
		if m.combined && m.folder == folderThirdParty {
			m.folder = folderChats
		}
		m.clampList()
		return m, nil
	case discoveryMsg:
		if msg.err != nil {
			m.fail(msg.err)
			return m, nil
		}
		m.discoverKnown, m.byHandle, m.byPhone = true, msg.byHandle, msg.byPhone
		return m, nil
	case reachabilityMsg:
		if msg.err != nil {
			m.fail(msg.err)
			return m, nil
		}
		m.reachKnown, m.reachMode, m.reachPartners = true, msg.mode, msg.partners
		return m, nil
	case typistsMsg:
		if msg.room == m.room {
			m.typists = msg.names
		}
		return m, nil
	case doneMsg:
		if msg.err != nil {
			m.fail(msg.err)
		} else if msg.note != "" {
			m.say(msg.note)
		}
		return m, nil
	case openMsg:
		m.prompt = promptNone
		cmd := m.open(msg.room, nil)
		if msg.note != "" {
			m.say(msg.note)
		}
		return m, cmd
	case choicesMsg:
		m.prompt, m.choices, m.choice = promptPick, msg.matches, 0
		m.say("several people match " + msg.query)
		return m, nil
	case searchMsg:
		if msg.err != nil {
			m.fail(msg.err)
			return m, nil
		}
		m.query, m.results, m.resultSel = msg.query, msg.results, 0
		if m.screen != screenResults {
			m.resultBack = m.screen
		}
		m.screen = screenResults
		return m, nil
	}
	// Anything else (the cursor's blink) belongs to the focused input.
	var cmd tea.Cmd
	if m.prompt != promptNone {
		m.input, cmd = m.input.Update(msg)
	} else if m.screen == screenChat && m.mode == modeCompose {
		m.compose, cmd = m.compose.Update(msg)
	}
	return m, cmd
}

func (m *Model) say(note string) { m.note, m.noteErr = note, false }

func (m *Model) fail(err error) { m.note, m.noteErr = err.Error(), true }

// refresh reloads what the updates concern.
func (m *Model) refresh(us updatesMsg) tea.Cmd {
	cmds := []tea.Cmd{loadConversations(m.ms)}
	if m.screen == screenChat || m.screen == screenHelp && m.back == screenChat {
		for _, u := range us {
			if u.Room != m.room {
				continue
			}
			if m.typingOn {
				cmds = append(cmds, loadTypists(m.ms, m.room))
			}
			if u.Kind != "typing" {
				cmds = append(cmds, m.reload(nil))
				break
			}
		}
	}
	return tea.Batch(cmds...)
}

// current is the open chat's conversation, if the list has it.
func (m *Model) current() *conversations.Conversation {
	for i := range m.convs {
		if m.convs[i].Room == m.room {
			return &m.convs[i]
		}
	}
	return nil
}

// isRequest says whether the open chat is still a message request.
func (m *Model) isRequest() bool {
	c := m.current()
	return c != nil && c.Request
}

// reload reads the open chat's messages again: as many as are loaded, and
// what came since.
func (m *Model) reload(focus *content.ID) tea.Cmd {
	return loadHistory(m.ms, m.room, max(historyPage, len(m.entries)+historyPage/2), !m.isRequest(), focus)
}

func (m *Model) gotHistory(msg historyMsg) tea.Cmd {
	if msg.room != m.room {
		return nil
	}
	if msg.err != nil {
		m.fail(msg.err)
	}
	if msg.older {
		m.loadingUp = false
		if len(msg.entries) > 0 && len(m.entries) > 0 && msg.entries[len(msg.entries)-1].Seq < m.entries[0].Seq {
			m.entries = append(msg.entries, m.entries...)
		}
		m.more = msg.more
		return nil
	}
	if msg.entries != nil || msg.err == nil {
		m.entries, m.more = msg.entries, msg.more
	}
	if msg.focus != nil {
		id := *msg.focus
		m.sel, m.mode = &id, modeNavigate
		m.compose.Blur()
	}
	if m.sel != nil && m.index(*m.sel) < 0 {
		m.sel = nil
	}
	return nil
}

// index finds a loaded message.
func (m *Model) index(id content.ID) int {
	return slices.IndexFunc(m.entries, func(e conversations.Entry) bool { return e.ID == id })
}

func (m *Model) selected() *conversations.Entry {
	if m.sel == nil {
		return nil
	}
	if i := m.index(*m.sel); i >= 0 {
		return &m.entries[i]
	}
	return nil
}

// open shows a chat, with a message selected if focus is set.
func (m *Model) open(room client.RoomID, focus *content.ID) tea.Cmd {
	if m.room != room {
		m.entries, m.more, m.typists = nil, false, nil
	}
	m.screen, m.room, m.sel, m.scroll = screenChat, room, nil, 0
	m.replyTo, m.editing, m.loadingUp = nil, nil, false
	m.compose.Reset()
	var cmds []tea.Cmd
	if m.isRequest() {
		// A request is read without telling its sender, and answered
		// before anything is written.
		m.mode = modeNavigate
		m.compose.Blur()
	} else {
		m.mode = modeCompose
		cmds = append(cmds, m.compose.Focus())
	}
	cmds = append(cmds, m.reload(focus))
	if m.typingOn {
		cmds = append(cmds, loadTypists(m.ms, room))
	}
	return tea.Batch(cmds...)
}

// ---- The conversation list ----

// visible lists the conversations of the current folder.
func (m *Model) visible() []conversations.Conversation {
	var out []conversations.Conversation
	for _, c := range m.convs {
		if m.folderOf(c) == m.folder {
			out = append(out, c)
		}
	}
	return out
}

func (m *Model) folderOf(c conversations.Conversation) folder {
	switch {
	case c.Request:
		return folderRequests
	case c.ThirdParty && !m.combined:
		return folderThirdParty
	}
	return folderChats
}

func (m *Model) folders() []folder {
	if m.combined {
		return []folder{folderChats, folderRequests}
	}
	return []folder{folderChats, folderThirdParty, folderRequests}
}

func (m *Model) clampList() {
	n := len(m.visible())
	m.listSel = max(0, min(m.listSel, n-1))
}

func (m *Model) listSelected() *conversations.Conversation {
	v := m.visible()
	if m.listSel < 0 || m.listSel >= len(v) {
		return nil
	}
	return &v[m.listSel]
}

// ---- Keys ----

func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	if k.String() == "ctrl+c" {
		return tea.Quit
	}
	if m.prompt != promptNone {
		return m.promptKey(k)
	}
	switch m.screen {
	case screenHelp:
		m.screen = m.back
		return nil
	case screenSettings:
		return m.settingsKey(k)
	case screenResults:
		return m.resultsKey(k)
	case screenChat:
		return m.chatKey(k)
	}
	return m.listKey(k)
}

func (m *Model) help() {
	m.back, m.screen = m.screen, screenHelp
}

func (m *Model) ask(kind promptKind, placeholder, value string) tea.Cmd {
	m.prompt = kind
	m.input.Reset()
	m.input.Placeholder = placeholder
	m.input.SetValue(value)
	m.input.CursorEnd()
	m.compose.Blur()
	return m.input.Focus()
}

func (m *Model) listKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "q":
		return tea.Quit
	case "?":
		m.help()
	case "up", "k":
		m.listSel = max(0, m.listSel-1)
	case "down", "j":
		m.listSel = min(len(m.visible())-1, m.listSel+1)
		m.listSel = max(m.listSel, 0)
	case "tab", "shift+tab":
		fs := m.folders()
		i := slices.Index(fs, m.folder)
		if k.String() == "tab" {
			i = (i + 1) % len(fs)
		} else {
			i = (i + len(fs) - 1) % len(fs)
		}
		m.folder, m.listSel = fs[i], 0
	case "enter", "right", "l":
		if c := m.listSelected(); c != nil {
			return m.open(c.Room, nil)
		}
	case "n":
		return m.ask(promptNewChat, "bob@blue.example, bob or +41 44 668 18 00", "")
	case "/":
		return m.ask(promptSearch, "text to find in every chat", "")
	case ",", "s":
		m.screen, m.settingsSel = screenSettings, 0
		return tea.Batch(loadDiscovery(m.ms), loadReachability(m.ms))
	case "a", "x", "b":
		if c := m.listSelected(); c != nil && c.Request {
			return m.answerRequest(k.String(), c)
		}
	}
	return nil
}

// answerRequest accepts, declines or blocks a message request.
func (m *Model) answerRequest(key string, c *conversations.Conversation) tea.Cmd {
	room := c.Room
	switch key {
	case "a":
		if m.screen == screenChat {
			m.mode = modeCompose
			return tea.Batch(accept(m.ms, room), m.compose.Focus(), loadHistory(m.ms, room, max(historyPage, len(m.entries)), true, nil))
		}
		return accept(m.ms, room)
	case "x":
		m.screen = screenList
		return decline(m.ms, room)
	case "b":
		who := c.Members
		if c.Inviter != "" {
			who = []string{c.Inviter}
		}
		m.screen = screenList
		return block(m.ms, room, who)
	}
	return nil
}

func (m *Model) settingsKey(k tea.KeyPressMsg) tea.Cmd {
	const n = 5
	switch k.String() {
	case "esc", "q", "left", ",":
		m.screen = screenList
		m.clampList()
	case "?":
		m.help()
	case "up", "k":
		m.settingsSel = (m.settingsSel + n - 1) % n
	case "down", "j", "tab":
		m.settingsSel = (m.settingsSel + 1) % n
	case "enter", "space", " ":
		switch m.settingsSel {
		case 0:
			m.combined = !m.combined
			if m.combined && m.folder == folderThirdParty {
				m.folder = folderChats
			}
			v, note := "folder", "third-party chats have a folder of their own"
			if m.combined {
				v, note = "combined", "third-party chats are in the one inbox"
			}
			return saveSetting(m.ms, SettingThirdParty, v, note)
		case 1:
			m.typingOn = !m.typingOn
			v, note := "on", "typing indicators on (both ways from the next start)"
			if !m.typingOn {
				v, note = "off", "typing indicators off"
				m.typists = nil
			}
			return saveSetting(m.ms, SettingTyping, v, note)
		case 2:
			if m.discoverKnown {
				return setDiscovery(m.ms, !m.byHandle, m.byPhone)
			}
		case 3:
			if m.discoverKnown {
				return setDiscovery(m.ms, m.byHandle, !m.byPhone)
			}
		case 4:
			// Off, or every partner; a choice of some partners is
			// turned off here, and made with another client.
			if m.reachKnown {
				if m.reachMode == client.ReachOff {
					return setReachability(m.ms, client.ReachAll)
				}
				return setReachability(m.ms, client.ReachOff)
			}
		}
	}
	return nil
}

func (m *Model) resultsKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "esc", "q", "left":
		m.screen = m.resultBack
	case "?":
		m.help()
	case "up", "k":
		m.resultSel = max(0, m.resultSel-1)
	case "down", "j":
		m.resultSel = max(0, min(len(m.results)-1, m.resultSel+1))
	case "/":
		return m.ask(promptSearch, "text to find in every chat", m.query)
	case "enter":
		if m.resultSel < len(m.results) {
			e := m.results[m.resultSel]
			id := e.ID
			return m.open(e.Room, &id)
		}
	}
	return nil
}

func (m *Model) chatKey(k tea.KeyPressMsg) tea.Cmd {
	s := k.String()
	// Keys that work in both modes.
	switch s {
	case "ctrl+f":
		return m.ask(promptSearch, "text to find in every chat", "")
	case "pgup":
		m.scroll += max(1, m.chatHeight()-2)
		m.sel = nil
		return m.maybeOlder()
	case "pgdown":
		m.scroll = max(0, m.scroll-max(1, m.chatHeight()-2))
		m.sel = nil
		return nil
	case "up":
		return m.moveSel(-1)
	case "down":
		if m.mode == modeNavigate {
			return m.moveSel(+1)
		}
		return nil
	}
	if m.mode == modeCompose {
		return m.composeKey(k)
	}
	switch s {
	case "esc", "q":
		if m.sel != nil && !m.isRequest() {
			return m.startCompose()
		}
		m.screen = screenList
		return nil
	case "left":
		m.screen = screenList
		return nil
	case "k":
		return m.moveSel(-1)
	case "j":
		return m.moveSel(+1)
	case "?":
		m.help()
		return nil
	case "/":
		return m.ask(promptSearch, "text to find in every chat", "")
	case "n":
		return m.ask(promptNewChat, "bob@blue.example, bob or +41 44 668 18 00", "")
	}
	if c := m.current(); c != nil && c.Request {
		switch s {
		case "a", "x", "b":
			return m.answerRequest(s, c)
		}
		m.say("a message request: a accept, x decline, b block")
		return nil
	}
	switch s {
	case "enter", "i":
		return m.startCompose()
	case "f":
		return m.ask(promptFile, "path of the file to send", "")
	}
	e := m.selected()
	if e == nil {
		return nil
	}
	switch s {
	case "r":
		if e.Deleted {
			m.fail(errString("a deleted message cannot be answered"))
			return nil
		}
		m.replyTo, m.editing = e, nil
		return m.startCompose()
	case "e":
		if !e.Own || e.Deleted || e.File != nil {
			m.fail(errString("only your own text messages can be edited"))
			return nil
		}
		m.editing, m.replyTo = e, nil
		cmd := m.startCompose()
		m.compose.SetValue(e.Text)
		m.compose.CursorEnd()
		return cmd
	case "d":
		if !e.Own || e.Deleted {
			m.fail(errString("only your own messages can be deleted"))
			return nil
		}
		m.prompt = promptDelete
		return nil
	case "+", "=":
		if e.Deleted {
			return nil
		}
		return m.ask(promptReact, "1-6 or an emoji", "")
	case "s":
		if e.File == nil || e.Deleted {
			m.fail(errString("the selected message has no file"))
			return nil
		}
		return m.ask(promptSave, "directory (default: the current one)", "")
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

func (m *Model) startCompose() tea.Cmd {
	m.mode, m.sel, m.scroll = modeCompose, nil, 0
	return m.compose.Focus()
}

// moveSel moves the selection by one message; past the newest, back to
// writing.
func (m *Model) moveSel(d int) tea.Cmd {
	if len(m.entries) == 0 {
		return nil
	}
	i := len(m.entries)
	if m.sel != nil {
		if j := m.index(*m.sel); j >= 0 {
			i = j
		}
	}
	i += d
	if i >= len(m.entries) {
		if m.isRequest() {
			m.sel = nil
			return nil
		}
		return m.startCompose()
	}
	i = max(0, i)
	id := m.entries[i].ID
	m.sel, m.scroll = &id, 0
	if m.mode == modeCompose {
		m.mode = modeNavigate
		m.compose.Blur()
	}
	if i < 3 {
		return m.maybeOlder()
	}
	return nil
}

// maybeOlder loads the page before the oldest loaded message, once.
func (m *Model) maybeOlder() tea.Cmd {
	if !m.more || m.loadingUp || len(m.entries) == 0 {
		return nil
	}
	m.loadingUp = true
	return loadOlder(m.ms, m.room, m.entries[0].Seq)
}

func (m *Model) composeKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "esc":
		if m.replyTo != nil || m.editing != nil {
			m.replyTo, m.editing = nil, nil
			m.compose.Reset()
			return nil
		}
		m.screen = screenList
		return nil
	case "enter":
		text := strings.TrimSpace(m.compose.Value())
		if text == "" {
			return nil
		}
		m.compose.Reset()
		m.scroll = 0
		switch {
		case m.editing != nil:
			id := m.editing.ID
			m.editing = nil
			return sendEdit(m.ms, m.room, id, text)
		case m.replyTo != nil:
			id := m.replyTo.ID
			m.replyTo = nil
			return sendReply(m.ms, m.room, id, text)
		}
		return sendText(m.ms, m.room, text)
	}
	before := m.compose.Value()
	var cmd tea.Cmd
	m.compose, cmd = m.compose.Update(k)
	if m.typingOn && m.compose.Value() != before && m.compose.Value() != "" && m.editing == nil {
		return tea.Batch(cmd, sendTyping(m.ms, m.room))
	}
	return cmd
}

// afterAction goes back to writing once something was done to a message:
// letters typed next are a message, not commands.
func (m *Model) afterAction() tea.Cmd {
	if m.screen != screenChat || m.isRequest() {
		return nil
	}
	return m.startCompose()
}

func (m *Model) closePrompt() tea.Cmd {
	m.prompt = promptNone
	m.input.Blur()
	if m.screen == screenChat && m.mode == modeCompose {
		return m.compose.Focus()
	}
	return nil
}

func (m *Model) promptKey(k tea.KeyPressMsg) tea.Cmd {
	s := k.String()
	if m.prompt == promptDelete {
		e := m.selected()
		m.closePrompt()
		if (s == "y" || s == "Y") && e != nil {
			return tea.Batch(sendDelete(m.ms, m.room, e.ID), m.afterAction())
		}
		m.say("not deleted")
		return nil
	}
	if m.prompt == promptPick {
		switch s {
		case "esc":
			return m.closePrompt()
		case "up", "k":
			m.choice = max(0, m.choice-1)
		case "down", "j":
			m.choice = min(len(m.choices)-1, m.choice+1)
		case "enter":
			who := m.choices[m.choice]
			m.closePrompt()
			m.say("starting a chat with " + who + "…")
			return startChat(m.ms, who)
		}
		return nil
	}
	// A quick reaction's digit, typed into an empty prompt, is the whole
	// answer: no enter needed.
	if m.prompt == promptReact && m.input.Value() == "" && len(s) == 1 && s[0] >= '1' && s[0] <= '0'+byte(len(quickReactions)) { // #nosec G115 -- a handful of quick reactions
		m.input.SetValue(s)
		s = "enter"
	}
	switch s {
	case "esc":
		return m.closePrompt()
	case "enter":
		kind, value := m.prompt, strings.TrimSpace(m.input.Value())
		m.closePrompt()
		cmd := m.submit(kind, value)
		if kind == promptFile || kind == promptSave || kind == promptReact {
			return tea.Batch(cmd, m.afterAction())
		}
		if m.screen == screenChat && m.mode == modeCompose {
			return tea.Batch(cmd, m.compose.Focus())
		}
		return cmd
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return cmd
}

// submit acts on a prompt's answer.
func (m *Model) submit(kind promptKind, value string) tea.Cmd {
	switch kind {
	case promptNewChat:
		if value == "" {
			return nil
		}
		m.say("looking for " + value + "…")
		return findPeople(m.ms, value)
	case promptSearch:
		if value == "" {
			return nil
		}
		return search(m.ms, value)
	case promptFile:
		if value == "" {
			return nil
		}
		m.say("sending " + value + "…")
		return sendFile(m.ms, m.room, value)
	case promptSave:
		if e := m.selected(); e != nil {
			m.say("saving " + e.File.Filename + "…")
			return saveFile(m.ms, m.room, e.ID, value)
		}
	case promptReact:
		e := m.selected()
		if e == nil || value == "" {
			return nil
		}
		emoji := value
		if len(value) == 1 && value[0] >= '1' && value[0] <= '0'+byte(len(quickReactions)) { // #nosec G115 -- a handful of quick reactions
			emoji = quickReactions[value[0]-'1']
		}
		return toggleReaction(m.ms, m.room, e.ID, emoji, slices.Contains(e.Reactions[emoji], m.me))
	}
	return nil
}
