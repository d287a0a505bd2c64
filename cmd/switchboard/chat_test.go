package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/creack/pty"

	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// TestChatInTerminals runs two `switchboard chat` processes, Alice's on
// green and Bob's on blue, each in a pseudo-terminal of its own, and
// reads their screens the way a person would: Alice starts a chat with
// bob@blue.test and writes; it reaches Bob as a request; he accepts,
// opens it and answers her message; Alice reacts. Then Bob's client is
// started again with --dir alone and finds the chat where it was.
func TestChatInTerminals(t *testing.T) {
	ctx := context.Background()
	l, err := node.StartLocal(t.TempDir(), []string{"green.test", "blue.test"}, node.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	code := func(n *node.Node, handle string) string {
		u, c, err := provider.AddUser(ctx, n.Store, handle, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		// Reachable by every partner, as if they had turned it on.
		if err := n.Store.SetReachability(ctx, u.ID, store.ReachAll, nil); err != nil {
			t.Fatal(err)
		}
		return c
	}
	aliceDir, bobDir := t.TempDir(), t.TempDir()
	alice := startTerminal(t, "alice", "chat", "--server", l.Node(0).ClientURL, "--dir", aliceDir, "--code", code(l.Node(0), "alice"), "--device", "laptop")
	bob := startTerminal(t, "bob", "chat", "--server", l.Node(1).ClientURL, "--dir", bobDir, "--code", code(l.Node(1), "bob"))

	alice.see("alice@green.test", "No chats here yet")
	bob.see("bob@blue.test", "No chats here yet")

	// Alice starts a chat with Bob by his address and writes.
	alice.keys("n")
	alice.see("New chat with")
	alice.keys("bob@blue.test\r")
	alice.see("bob@blue.test  blue.test  [third-party]", "no messages yet")
	alice.keys("Hello from a terminal on green\r")
	alice.see("Hello from a terminal on green", "✓")

	// Bob gets a request, accepts it, reads it and answers.
	bob.see("Requests [1]")
	bob.keys("\t\t")
	bob.see("alice@green.test", "request", "Hello from a terminal on green")
	bob.keys("a")
	bob.see("request accepted", "No message requests.")
	bob.keys("\t\t")
	bob.see("alice@green.test", "Hello from a terminal on green")
	bob.keys("\r")
	bob.see("alice@green.test  green.test  [third-party]", "alice@green.test", "Hello from a terminal on green")
	alice.see("✓✓ read")
	bob.keys(keyUp + "r")
	bob.see("replying to alice@green.test")
	bob.keys("Hi Alice, this is Bob on blue\r")
	bob.see("┃ alice@green.test: Hello from a terminal on green", "Hi Alice, this is Bob on blue")
	alice.see("bob@blue.test", "Hi Alice, this is Bob on blue", "┃ you: Hello from a terminal on green")

	// Alice reacts to Bob's answer.
	alice.keys(keyUp + "+")
	alice.see("React with 1 👍")
	alice.keys("1")
	alice.see("👍 you")
	bob.see("👍 alice@green.test")

	alice.quit()
	bob.quit()

	// Later runs need only the directory.
	again := startTerminal(t, "bob again", "chat", "--dir", bobDir)
	again.see("No chats here yet", "1 chat in Third-party")
	again.keys("\t")
	again.see("alice@green.test", "Hi Alice, this is Bob on blue")
	again.quit()
}

const keyUp = "\x1b[A"

// terminal is one `switchboard chat` process in a pseudo-terminal, with
// a screen that follows what it draws.
type terminal struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	pty  *os.File
	vt   *vt
	done chan error
}

func startTerminal(t *testing.T, name string, args ...string) *terminal {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "SWITCHBOARD_RUN_MAIN=1", "TERM=xterm-256color", "COLORTERM=truecolor")
	const rows, cols = 30, 110
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, name: name, cmd: cmd, pty: f, vt: newVT(rows, cols), done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := f.Read(buf)
			term.vt.write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	go func() { term.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-term.done
		}
		f.Close()
	})
	return term
}

func (term *terminal) keys(s string) {
	term.t.Helper()
	if _, err := term.pty.WriteString(s); err != nil {
		term.t.Fatalf("%s: typing: %v", term.name, err)
	}
}

// see waits until the screen shows every string.
func (term *terminal) see(ss ...string) {
	term.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		screen := term.vt.text()
		missing := ""
		for _, s := range ss {
			if !strings.Contains(screen, s) {
				missing = s
				break
			}
		}
		if missing == "" {
			return
		}
		select {
		case err := <-term.done:
			term.done <- err
			term.t.Fatalf("%s: the client ended (%v) before showing %q; its screen:\n%s", term.name, err, missing, screen)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("%s: no %q on the screen:\n%s", term.name, missing, screen)
		}
	}
}

// quit presses ctrl+c and waits for the client to end well.
func (term *terminal) quit() {
	term.t.Helper()
	term.keys("\x03")
	select {
	case err := <-term.done:
		term.done <- err
		if err != nil {
			term.t.Fatalf("%s: the client ended with %v; its screen:\n%s", term.name, err, term.vt.text())
		}
	case <-time.After(10 * time.Second):
		term.t.Fatalf("%s: the client did not quit on ctrl+c", term.name)
	}
}

// vt is as much of a terminal emulator as reading a bubbletea program's
// screen needs: a grid of cells, the cursor, the scroll region, and the
// control sequences that move, erase, insert, delete and scroll. Colours
// and modes are read and ignored.
type vt struct {
	mu         sync.Mutex
	rows, cols int
	grid       [][]string // a cell's text; "" is the second half of a wide character
	row, col   int
	savedR     int
	savedC     int
	top, bot   int // the scroll region, inclusive
	last       string
	pending    []byte // an incomplete sequence or character
	wrapNext   bool
}

func newVT(rows, cols int) *vt {
	v := &vt{rows: rows, cols: cols, bot: rows - 1}
	v.grid = make([][]string, rows)
	for i := range v.grid {
		v.grid[i] = blankRow(cols)
	}
	return v
}

func blankRow(n int) []string {
	r := make([]string, n)
	for i := range r {
		r[i] = " "
	}
	return r
}

func (v *vt) text() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	for _, r := range v.grid {
		b.WriteString(strings.TrimRight(strings.Join(r, ""), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

func (v *vt) write(p []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	data := append(v.pending, p...)
	v.pending = nil
	for i := 0; i < len(data); {
		n := v.step(data[i:])
		if n == 0 { // incomplete: wait for more
			v.pending = append([]byte(nil), data[i:]...)
			return
		}
		i += n
	}
}

// step interprets one character or sequence at the start of b and says
// how many bytes it took (0: b ends inside it).
func (v *vt) step(b []byte) int {
	switch c := b[0]; {
	case c == 0x1b:
		return v.escape(b)
	case c == '\r':
		v.col, v.wrapNext = 0, false
	case c == '\n', c == 0x0b, c == 0x0c:
		v.lineFeed()
	case c == '\b':
		v.col, v.wrapNext = max(0, v.col-1), false
	case c == '\t':
		v.col = min(v.cols-1, (v.col/8+1)*8)
	case c < 0x20 || c == 0x7f:
	default:
		r, size := decodeRune(b)
		if size == 0 {
			return 0
		}
		v.put(string(r))
		return size
	}
	return 1
}

func decodeRune(b []byte) (rune, int) {
	n := 1
	switch {
	case b[0] >= 0xf0:
		n = 4
	case b[0] >= 0xe0:
		n = 3
	case b[0] >= 0xc0:
		n = 2
	}
	if len(b) < n {
		return 0, 0
	}
	rs := []rune(string(b[:n]))
	return rs[0], n
}

// put writes a character at the cursor. A combining character or a
// variation selector joins the cell before.
func (v *vt) put(s string) {
	w := lipgloss.Width(s)
	if w == 0 {
		if v.col > 0 {
			c := v.col - 1
			if v.wrapNext {
				c = v.col
			}
			v.grid[v.row][c] += s
		}
		return
	}
	if v.wrapNext || v.col+w > v.cols {
		v.col, v.wrapNext = 0, false
		v.lineFeed()
	}
	v.grid[v.row][v.col] = s
	if w == 2 && v.col+1 < v.cols {
		v.grid[v.row][v.col+1] = ""
	}
	v.last = s
	v.col += w
	if v.col >= v.cols {
		v.col, v.wrapNext = v.cols-1, true
	}
}

func (v *vt) lineFeed() {
	v.wrapNext = false
	if v.row == v.bot {
		v.scrollUp(1)
	} else if v.row < v.rows-1 {
		v.row++
	}
}

func (v *vt) scrollUp(n int) {
	for range n {
		copy(v.grid[v.top:v.bot+1], v.grid[v.top+1:v.bot+1])
		v.grid[v.bot] = blankRow(v.cols)
	}
}

func (v *vt) scrollDown(n int) {
	for range n {
		copy(v.grid[v.top+1:v.bot+1], v.grid[v.top:v.bot])
		v.grid[v.top] = blankRow(v.cols)
	}
}

func (v *vt) escape(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '[':
		return v.csi(b)
	case ']', 'P', '_', '^', 'X': // strings, up to BEL or ST
		for i := 2; i < len(b); i++ {
			if b[i] == 0x07 {
				return i + 1
			}
			if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '\\' {
				return i + 2
			}
		}
		return 0
	case '(', ')', '*', '+', '#', ' ', '%':
		if len(b) < 3 {
			return 0
		}
		return 3
	case '7':
		v.savedR, v.savedC = v.row, v.col
	case '8':
		v.row, v.col = v.savedR, v.savedC
	case 'M':
		if v.row == v.top {
			v.scrollDown(1)
		} else if v.row > 0 {
			v.row--
		}
	case 'D':
		v.lineFeed()
	case 'E':
		v.col = 0
		v.lineFeed()
	case 'c':
		*v = *newVT(v.rows, v.cols)
	}
	return 2
}

func (v *vt) csi(b []byte) int {
	end := -1
	for i := 2; i < len(b); i++ {
		if b[i] >= 0x40 && b[i] <= 0x7e {
			end = i
			break
		}
	}
	if end < 0 {
		return 0
	}
	body, final := string(b[2:end]), b[end]
	private := body != "" && strings.ContainsRune("?<=>", rune(body[0]))
	if private {
		if (body == "?1049h" || body == "?1049l" || body == "?47h" || body == "?47l") && final != 'p' {
			v.erase(0, 0, v.rows-1, v.cols-1)
		}
		return end + 1
	}
	body = strings.TrimRight(body, " !\"#$%&'()*+,-./")
	var ps []int
	for _, f := range strings.Split(body, ";") {
		f, _, _ = strings.Cut(f, ":")
		n, _ := strconv.Atoi(f)
		ps = append(ps, n)
	}
	p := func(i, def int) int {
		if i < len(ps) && ps[i] > 0 {
			return ps[i]
		}
		return def
	}
	v.wrapNext = false
	switch final {
	case 'H', 'f':
		v.row, v.col = clamp(p(0, 1)-1, v.rows), clamp(p(1, 1)-1, v.cols)
	case 'A':
		v.row = max(0, v.row-p(0, 1))
	case 'B', 'e':
		v.row = min(v.rows-1, v.row+p(0, 1))
	case 'C', 'a':
		v.col = min(v.cols-1, v.col+p(0, 1))
	case 'D':
		v.col = max(0, v.col-p(0, 1))
	case 'E':
		v.row, v.col = min(v.rows-1, v.row+p(0, 1)), 0
	case 'F':
		v.row, v.col = max(0, v.row-p(0, 1)), 0
	case 'G', '`':
		v.col = clamp(p(0, 1)-1, v.cols)
	case 'd':
		v.row = clamp(p(0, 1)-1, v.rows)
	case 'K':
		switch p(0, 0) {
		case 0:
			v.erase(v.row, v.col, v.row, v.cols-1)
		case 1:
			v.erase(v.row, 0, v.row, v.col)
		case 2:
			v.erase(v.row, 0, v.row, v.cols-1)
		}
	case 'J':
		switch p(0, 0) {
		case 0:
			v.erase(v.row, v.col, v.rows-1, v.cols-1)
		case 1:
			v.erase(0, 0, v.row, v.col)
		case 2, 3:
			v.erase(0, 0, v.rows-1, v.cols-1)
		}
	case 'X':
		v.erase(v.row, v.col, v.row, min(v.cols-1, v.col+p(0, 1)-1))
	case '@':
		n := min(p(0, 1), v.cols-v.col)
		r := v.grid[v.row]
		copy(r[v.col+n:], r[v.col:])
		for i := v.col; i < v.col+n; i++ {
			r[i] = " "
		}
	case 'P':
		n := min(p(0, 1), v.cols-v.col)
		r := v.grid[v.row]
		copy(r[v.col:], r[v.col+n:])
		for i := v.cols - n; i < v.cols; i++ {
			r[i] = " "
		}
	case 'L', 'M':
		if v.row >= v.top && v.row <= v.bot {
			top := v.top
			v.top = v.row
			if final == 'L' {
				v.scrollDown(p(0, 1))
			} else {
				v.scrollUp(p(0, 1))
			}
			v.top = top
			v.col = 0
		}
	case 'S':
		v.scrollUp(p(0, 1))
	case 'T':
		v.scrollDown(p(0, 1))
	case 'r':
		v.top, v.bot = clamp(p(0, 1)-1, v.rows), clamp(p(1, v.rows)-1, v.rows)
		v.row, v.col = 0, 0
	case 'b':
		for range p(0, 1) {
			v.put(v.last)
		}
	case 's':
		v.savedR, v.savedC = v.row, v.col
	case 'u':
		v.row, v.col = v.savedR, v.savedC
	}
	return end + 1
}

func (v *vt) erase(r0, c0, r1, c1 int) {
	for r := r0; r <= r1 && r < v.rows; r++ {
		from, to := 0, v.cols-1
		if r == r0 {
			from = c0
		}
		if r == r1 {
			to = c1
		}
		for c := from; c <= to && c < v.cols; c++ {
			v.grid[r][c] = " "
		}
	}
}

func clamp(v, n int) int { return max(0, min(v, n-1)) }
