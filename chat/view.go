package chat

import (
	"fmt"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/conversations"
)

// View draws the model.
func (m *Model) View() tea.View {
	var lines []string
	switch m.screen {
	case screenChat:
		lines = m.chatView()
	case screenSettings:
		lines = m.settingsView()
	case screenResults:
		lines = m.resultsView()
	case screenHelp:
		lines = m.helpView()
	default:
		lines = m.listView()
	}
	for i, l := range lines {
		lines[i] = fit(l, m.width)
	}
	v := tea.NewView(strings.Join(lines, "\n"))
	v.AltScreen = true
	v.WindowTitle = "switchboard · " + m.me + "@" + m.domain
	return v
}

// fit cuts a line to the screen's width.
func fit(s string, w int) string {
	if lipgloss.Width(s) <= w {
		return s
	}
	return lipgloss.NewStyle().MaxWidth(w).Render(s)
}

// pad fills lines up to n, or keeps the last n.
func pad(lines []string, n int) []string {
	for len(lines) < n {
		lines = append(lines, "")
	}
	return lines[len(lines)-n:]
}

func (m *Model) titleBar(extra string) string {
	t := stTitle.Render("Switchboard") + " " + stHeader.Render(m.me) + stDomain.Render("@"+m.domain)
	if extra != "" {
		t += "  " + extra
	}
	if m.offline != nil {
		t += "  " + stError.Render("offline: "+m.offline.Error())
	}
	return t
}

// footer is the status line and the help line (or the prompt).
func (m *Model) footer(help string) []string {
	var out []string
	if m.prompt != promptNone {
		out = append(out, m.promptView()...)
	}
	status := ""
	if m.note != "" {
		if m.noteErr {
			status = stError.Render("✗ " + m.note)
		} else {
			status = stNote.Render(m.note)
		}
	}
	return append(out, status, stHelp.Render(help))
}

func (m *Model) promptView() []string {
	switch m.prompt {
	case promptDelete:
		return []string{stPrompt.Render("Delete this message for everyone? y/n")}
	case promptPick:
		out := []string{stPrompt.Render("Several people match; choose one (↑/↓, enter, esc):")}
		for i, c := range m.choices {
			mark := "  "
			if i == m.choice {
				mark = stGutterOn.Render("▸ ")
			}
			out = append(out, mark+c)
		}
		return out
	}
	q := map[promptKind]string{
		promptNewChat: "New chat with (address, handle or phone):",
		promptFile:    "Send file:",
		promptSave:    "Save to directory:",
		promptReact:   "React with " + quickList() + ", or type an emoji:",
		promptSearch:  "Search:",
	}[m.prompt]
	m.input.Prompt = "» "
	return []string{stPrompt.Render(q), m.input.View()}
}

func quickList() string {
	var b strings.Builder
	for i, r := range quickReactions {
		fmt.Fprintf(&b, "%d %s  ", i+1, r)
	}
	return strings.TrimSpace(b.String())
}

// ---- The conversation list ----

func (m *Model) folderName(f folder) string {
	switch f {
	case folderThirdParty:
		return "Third-party"
	case folderRequests:
		return "Requests"
	}
	if m.combined {
		return "Inbox"
	}
	return "Chats"
}

func (m *Model) listView() []string {
	out := []string{m.titleBar("")}
	var tabs []string
	for _, f := range m.folders() {
		unread, n := 0, 0
		for _, c := range m.convs {
			if m.folderOf(c) == f {
				unread += c.Unread
				n++
			}
		}
		label := m.folderName(f)
		switch {
		case f == folderRequests && n > 0:
			label += fmt.Sprintf(" [%d]", n)
		case f != folderRequests && unread > 0:
			label += fmt.Sprintf(" (%d)", unread)
		}
		if f == m.folder {
			tabs = append(tabs, stTabOn.Render(label))
		} else {
			tabs = append(tabs, stTabOff.Render(label))
		}
	}
	out = append(out, strings.Join(tabs, " "), "")
	help := "↑/↓ select · enter open · tab folder · n new chat · / search · , settings · ? help · q quit"
	if m.folder == folderRequests {
		help = "↑/↓ select · enter read · a accept · x decline · b block · tab folder · ? help · q quit"
	}
	foot := m.footer(help)
	room := m.height - len(out) - len(foot)
	vis := m.visible()
	var rows []string
	if len(vis) == 0 {
		switch {
		case !m.loaded:
			rows = append(rows, stFaint.Render("  loading…"))
		case m.folder == folderRequests:
			rows = append(rows, stFaint.Render("  No message requests."))
		default:
			rows = append(rows, stFaint.Render("  No chats here yet. Press n to start one, with bob@blue.example, a handle or a phone number."))
		}
		for _, f := range m.folders() {
			n := 0
			for _, c := range m.convs {
				if m.folderOf(c) == f {
					n++
				}
			}
			if f != m.folder && n > 0 {
				rows = append(rows, stFaint.Render(fmt.Sprintf("  %s in %s: tab shows %s.", plural(n, "chat"), m.folderName(f), map[bool]string{true: "it", false: "them"}[n == 1])))
			}
		}
	}
	selBot := 0
	for i, c := range vis {
		rows = append(rows, m.convRows(c, i == m.listSel)...)
		if i == m.listSel {
			selBot = len(rows)
		}
	}
	room = max(room, 1)
	if selBot > room {
		rows = rows[selBot-room:]
	}
	if len(rows) > room {
		rows = rows[:room]
	}
	for len(rows) < room {
		rows = append(rows, "")
	}
	out = append(out, rows...)
	return append(out, foot...)
}

// convRows are a conversation's two lines in the list.
func (m *Model) convRows(c conversations.Conversation, sel bool) []string {
	mark := "  "
	name := stHeader.Render(m.convTitle(c))
	if sel {
		mark = stGutterOn.Render("▸ ")
		name = stSelected.Render(m.convTitle(c))
	}
	first := mark + name + "  " + stDomain.Render(m.providers(c))
	if c.Request {
		first += "  " + stRequest.Render("request")
	}
	if c.Last != nil {
		first += "  " + stFaint.Render(stamp(c.Last.Sent))
	}
	if c.Unread > 0 {
		first += "  " + stUnread.Render(fmt.Sprint(c.Unread))
	}
	second := "    "
	switch {
	case c.Last == nil && c.Request && c.Inviter != "":
		second += stFaint.Render(c.Inviter + " added you")
	case c.Last == nil:
		second += stFaint.Render("no messages yet")
	default:
		who := c.Last.Sender
		if c.Last.Own {
			who = "you"
		}
		second += stFaint.Render(who+": ") + oneLine(entryText(c.Last))
		if c.Last.Own {
			second += " " + statusMark(c.Last.Status)
		}
	}
	return []string{first, second}
}

// convTitle names a conversation by its other members.
func (m *Model) convTitle(c conversations.Conversation) string {
	if len(c.Members) == 0 {
		return "(only you)"
	}
	return strings.Join(c.Members, ", ")
}

// providers names the other people's providers (this one's for people
// here).
func (m *Model) providers(c conversations.Conversation) string {
	ds := slices.Clone(c.Domains)
	for _, u := range c.Members {
		if !strings.Contains(u, "@") && !slices.Contains(ds, m.domain) {
			ds = append(ds, m.domain)
		}
	}
	return strings.Join(ds, ", ")
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 60 {
		s = string(r[:59]) + "…"
	}
	return s
}

func entryText(e *conversations.Entry) string {
	switch {
	case e.Deleted:
		return "(deleted)"
	case e.File != nil:
		return "📎 " + e.File.Filename
	}
	return e.Text
}

// stamp is a message's time: the clock today, the date before.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.Local()
	now := time.Now()
	if y, mo, d := now.Date(); t.Year() == y && t.Month() == mo && t.Day() == d {
		return t.Format("15:04")
	}
	if t.Year() == now.Year() {
		return t.Format("Jan 2 15:04")
	}
	return t.Format("Jan 2 2006 15:04")
}

func statusMark(s conversations.Status) string {
	switch s {
	case conversations.StatusSent:
		return stFaint.Render("✓ sent")
	case conversations.StatusDelivered:
		return stFaint.Render("✓✓ delivered")
	case conversations.StatusRead:
		return stRead.Render("✓✓ read")
	}
	return ""
}

// ---- A chat ----

// chatFooter is what is under the messages: typing, what is being
// answered or edited, the message being written or a prompt, the status
// and the keys.
func (m *Model) chatFooter() []string {
	var out []string
	typing := ""
	if m.typingOn && len(m.typists) > 0 {
		verb := " is typing…"
		if len(m.typists) > 1 {
			verb = " are typing…"
		}
		typing = stFaint.Render(strings.Join(m.typists, ", ") + verb)
	}
	out = append(out, typing)
	switch {
	case m.editing != nil:
		out = append(out, stPrompt.Render("editing: ")+stQuote.Render(oneLine(m.editing.Text))+stFaint.Render("  (esc cancels)"))
	case m.replyTo != nil:
		out = append(out, stPrompt.Render("replying to "+m.senderName(m.replyTo)+": ")+stQuote.Render(oneLine(entryText(m.replyTo)))+stFaint.Render("  (esc cancels)"))
	}
	var help string
	switch {
	case m.isRequest():
		out = append(out, stRequest.Render("A message request. a accept · x decline · b block"))
		help = "↑/↓ select · a accept · x decline · b block · esc back · ctrl+c quit"
	case m.mode == modeCompose:
		if m.prompt == promptNone {
			out = append(out, m.compose.View())
		}
		help = "enter send · ↑ select a message (then r e d + s f) · pgup/pgdn scroll · esc back · ctrl+c quit"
	default:
		if m.prompt == promptNone {
			out = append(out, stFaint.Render("  enter or i to write"))
		}
		help = "↑/↓ select · r reply · e edit · d delete · + react · f send file · s save file · / search · n new chat · enter write · esc back · ? help"
	}
	return append(out, m.footer(help)...)
}

func (m *Model) chatView() []string {
	c := m.current()
	title := ""
	if c != nil {
		title = stHeader.Render(m.convTitle(*c)) + "  " + stDomain.Render(m.providers(*c))
		if c.ThirdParty {
			title += "  " + stFaint.Render("[third-party]")
		}
	}
	out := []string{m.titleBar(""), title}
	foot := m.chatFooter()
	h := max(m.height-len(out)-len(foot), 1)
	body, selStart, selEnd := m.messageLines(m.width)
	// The first line says whether there is more to read back.
	note := "beginning of the chat"
	switch {
	case len(m.entries) == 0:
		note = "no messages yet"
	case m.loadingUp:
		note = "loading older messages…"
	case m.more:
		note = "↑ older messages: pgup"
	}
	body = append([]string{stFaint.Render("  · " + note + " ·")}, body...)
	total := len(body)
	start := max(0, total-h-m.scroll)
	if selStart >= 0 {
		selStart, selEnd = selStart+1, selEnd+1
		start = max(0, total-h)
		if selEnd > start+h {
			start = selEnd - h
		}
		if selStart < start {
			start = selStart
		}
	}
	end := min(total, start+h)
	win := append([]string(nil), body[start:end]...)
	for len(win) < h {
		win = append([]string{""}, win...)
	}
	return append(append(out, win...), foot...)
}

// chatHeight is how many lines the messages have.
func (m *Model) chatHeight() int {
	return max(m.height-2-len(m.chatFooter()), 1)
}

// senderName is how a message's sender is shown.
func (m *Model) senderName(e *conversations.Entry) string {
	if e.Own {
		return "you"
	}
	return m.fullName(e.Sender)
}

// fullName gives a user with their provider.
func (m *Model) fullName(u string) string {
	if strings.Contains(u, "@") {
		return u
	}
	return u + "@" + m.domain
}

// messageLines renders every loaded message and says where the selected
// one is (-1 when none).
func (m *Model) messageLines(width int) (lines []string, selStart, selEnd int) {
	selStart, selEnd = -1, -1
	textWidth := max(width-4, 10)
	for i := range m.entries {
		e := &m.entries[i]
		sel := m.sel != nil && *m.sel == e.ID
		var block []string
		// The header: who, when, how far it got.
		var who string
		if e.Own {
			who = stOwn.Render("you")
		} else {
			name := m.fullName(e.Sender)
			at := strings.LastIndexByte(name, '@')
			who = stOther.Render(name[:at]) + stDomain.Render(name[at:])
		}
		head := who + "  " + stFaint.Render(stamp(e.Sent))
		if e.Own {
			head += "  " + statusMark(e.Status)
		}
		if !e.Expires.IsZero() {
			head += "  " + stMarker.Render("⏱ until "+stamp(e.Expires))
		}
		block = append(block, head)
		if e.ReplyTo != nil {
			block = append(block, stQuote.Render("┃ "+m.quote(*e.ReplyTo)))
		}
		switch {
		case e.Deleted:
			block = append(block, stMarker.Render("(message deleted)"))
		case e.File != nil:
			line := "📎 " + e.File.Filename
			if e.File.Size >= gcmTag {
				line += stFaint.Render(" (" + size(e.File.Size-gcmTag) + ")")
			}
			if sel {
				line += stFaint.Render("  s saves it")
			}
			block = append(block, line)
		default:
			text := lipgloss.Wrap(e.Text, textWidth, " ")
			tl := strings.Split(text, "\n")
			if e.Edited {
				tl[len(tl)-1] += " " + stMarker.Render("(edited)")
			}
			block = append(block, tl...)
		}
		if len(e.Reactions) > 0 && !e.Deleted {
			var rs []string
			for _, emoji := range slices.Sorted(mapKeys(e.Reactions)) {
				var names []string
				for _, u := range e.Reactions[emoji] {
					if u == m.me {
						names = append(names, "you")
					} else {
						names = append(names, m.fullName(u))
					}
				}
				rs = append(rs, emoji+" "+strings.Join(names, ", "))
			}
			block = append(block, stFaint.Render(strings.Join(rs, "  ·  ")))
		}
		gutter := "  "
		if sel {
			gutter = stGutterOn.Render("▌ ")
			selStart = len(lines)
		}
		for j, l := range block {
			if j == 0 {
				lines = append(lines, gutter+l)
			} else {
				lines = append(lines, gutter+"  "+l)
			}
		}
		if sel {
			selEnd = len(lines)
		}
	}
	return lines, selStart, selEnd
}

func mapKeys(m map[string][]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// quote is the first line of the message answered.
func (m *Model) quote(id content.ID) string {
	if i := m.index(id); i >= 0 {
		e := &m.entries[i]
		return m.senderName(e) + ": " + oneLine(entryText(e))
	}
	return "an earlier message"
}

// gcmTag is what encryption adds to a file (client.Attachment.Size).
const gcmTag = 16

func size(n uint64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// ---- Settings, search results, help ----

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func (m *Model) settingsView() []string {
	out := []string{m.titleBar(stHeader.Render("Settings")), ""}
	tp := "in a folder of their own"
	if m.combined {
		tp = "in the one inbox"
	}
	dh, dp := "…", "…"
	if m.discoverKnown {
		dh, dp = onOff(m.byHandle), onOff(m.byPhone)
	}
	reach := "…"
	if m.reachKnown {
		switch m.reachMode {
		case client.ReachAll:
			reach = "all partner providers"
		case client.ReachSome:
			reach = "only " + strings.Join(m.reachPartners, ", ")
		default:
			reach = "off"
		}
	}
	items := []struct{ name, value, note string }{
		{"Third-party chats", tp, "chats with people on other providers"},
		{"Typing indicators", onOff(m.typingOn), "sending and showing them; fully applied at the next start"},
		{"Findable by handle", dh, "people on partner providers can find you by your handle"},
		{"Findable by phone", dp, "…and by your phone number, if your provider has one for you"},
		{"Reachable from other providers", reach, "people on partner providers can invite and message you; off stops them at once"},
	}
	for i, it := range items {
		mark := "  "
		name := it.name
		if i == m.settingsSel {
			mark = stGutterOn.Render("▸ ")
			name = stSelected.Render(name)
		}
		out = append(out, mark+name+": "+stHeader.Render(it.value), "    "+stFaint.Render(it.note))
	}
	foot := m.footer("↑/↓ select · enter or space change · esc back")
	return append(pad(out, max(m.height-len(foot), len(out))), foot...)
}

func (m *Model) resultsView() []string {
	out := []string{m.titleBar(stHeader.Render(fmt.Sprintf("Search: %q, %d found", m.query, len(m.results)))), ""}
	foot := m.footer("↑/↓ select · enter open in its chat · / search again · esc back")
	room := max(m.height-len(out)-len(foot), 1)
	var rows []string
	if len(m.results) == 0 {
		rows = append(rows, stFaint.Render("  nothing found"))
	}
	for i, e := range m.results {
		mark := "  "
		if i == m.resultSel {
			mark = stGutterOn.Render("▸ ")
		}
		title := string(e.Room)
		for _, c := range m.convs {
			if c.Room == e.Room {
				title = m.convTitle(c)
			}
		}
		rows = append(rows, mark+stHeader.Render(title)+"  "+stFaint.Render(stamp(e.Sent)),
			"    "+stFaint.Render(m.senderName(&e)+": ")+oneLine(e.Text))
	}
	start := max(0, 2*m.resultSel+2-room)
	rows = rows[min(start, len(rows)):]
	if len(rows) > room {
		rows = rows[:room]
	}
	return append(append(out, pad(rows, room)...), foot...)
}

// Keys is the help screen's text: every key of the client.
const Keys = `In the list of chats
  ↑/↓ (k/j)   select a chat            enter    open it
  tab         next folder: Chats, Third-party, Requests (or one Inbox)
  n           new chat: bob@blue.example, a handle (bob) or a phone number
  /           search every chat        ,        settings
  a / x / b   accept, decline or block a message request
  q, ctrl+c   quit

In a chat, writing
  enter       send                     esc      cancel a reply or edit; back
  ↑           select a message         pgup/pgdn  scroll back through history

In a chat, with a message selected
  ↑/↓         select another           enter, i   write
  r           reply to it              e        edit it (yours)
  d           delete it for everyone (yours)
  +           react (1-6 or any emoji; again to withdraw)
  s           save its file (to a directory; default the current one)
  f           send a file              /, ctrl+f  search
  esc         back to writing

Marks: ✓ sent (the hub has it) · ✓✓ delivered · ✓✓ read`

func (m *Model) helpView() []string {
	out := []string{m.titleBar(stHeader.Render("Keys")), ""}
	out = append(out, strings.Split(Keys, "\n")...)
	return append(out, "", stHelp.Render("any key: back"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
