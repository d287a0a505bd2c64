package console_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/conversations"
	"github.com/switchboard-chat/switchboard/inbox"
	"github.com/switchboard-chat/switchboard/inbox/console"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

// The console's tests run a whole business: two real providers on
// loopback (the business on shop.test, its customers on blue.test), the
// business account's Messenger, a real Desk with its SQLite store, and
// the console over HTTP. Customers are real SDK users with Messengers.

const (
	adminPassword = "admin-password-1"
	agentPassword = "agent-password-1"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// business is the providers, the Desk and the console under test.
type business struct {
	t       testing.TB
	l       *node.Local
	desk    *inbox.Desk
	dir     string // the Desk's directory
	clock   *clock
	console *httptest.Server
	admin   inbox.Agent // "ada", an admin
	agent   inbox.Agent // "sam", an agent
	address string      // the business account's address as customers name it
}

func ok(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// messenger registers handle (with a verified phone number, if not "")
// on n and opens a Messenger for its device, reachable by every partner
// provider.
func messenger(t testing.TB, n *node.Node, handle, phone string) *conversations.Messenger {
	t.Helper()
	ctx := context.Background()
	u, code, err := provider.AddUser(ctx, n.Store, handle, phone, time.Hour)
	ok(t, "adding "+handle, err)
	ok(t, "reachability", n.Store.SetReachability(ctx, u.ID, store.ReachAll, nil))
	dir := t.TempDir()
	c, err := client.Register(ctx, n.ClientURL, code, "device", dir, client.Options{})
	ok(t, "registering "+handle, err)
	m, err := conversations.Open(c, dir, conversations.Options{})
	ok(t, "opening the messenger of "+handle, err)
	t.Cleanup(func() { m.Close(); c.Close() })
	return m
}

// newBusiness starts the providers, the business account's Desk (run
// until the test ends) and the console with opts.
func newBusiness(t testing.TB, opts console.Options) *business {
	t.Helper()
	l, err := node.StartLocal(t.TempDir(), []string{"shop.test", "blue.test", "green.test"}, node.LocalOptions{})
	ok(t, "providers", err)
	t.Cleanup(func() { l.Close() })
	m := messenger(t, l.Node(0), "acme", "")
	clk := &clock{now: time.Now()}
	dir := t.TempDir()
	desk, err := inbox.Open(context.Background(), inbox.Config{Dir: dir, Messenger: m, Now: clk.Now})
	ok(t, "opening the desk", err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { desk.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); desk.Close() })

	b := &business{t: t, l: l, desk: desk, dir: dir, clock: clk, address: "acme@shop.test"}
	b.admin, err = desk.AddAgent(ctx, "ada", "Ada Admin", adminPassword, inbox.RoleAdmin)
	ok(t, "adding the admin", err)
	b.agent, err = desk.AddAgent(ctx, "sam", "Sam Agent", agentPassword, inbox.RoleAgent)
	ok(t, "adding the agent", err)
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	b.console = httptest.NewServer(console.New(desk, opts))
	t.Cleanup(b.console.Close)
	return b
}

// customer is a person on blue.test (or green.test) writing to the business.
type customer struct {
	t       testing.TB
	b       *business
	m       *conversations.Messenger
	room    client.RoomID
	address string
}

func (b *business) customer(handle string) *customer {
	b.t.Helper()
	return &customer{t: b.t, b: b, m: messenger(b.t, b.l.Node(1), handle, ""), address: handle + "@blue.test"}
}

// customerOn is a customer on provider i (1 blue.test, 2 green.test)
// with a verified phone number.
func (b *business) customerOn(i int, handle, phone string) *customer {
	b.t.Helper()
	n := b.l.Node(i)
	m := messenger(b.t, n, handle, phone)
	// Findable by the number: only then does the credential carry it.
	ok(b.t, handle+" allows phone lookups", m.Client().SetDiscovery(context.Background(), false, true))
	return &customer{t: b.t, b: b, m: m, address: handle + "@" + n.Domain}
}

// writes sends text to the business, opening a room with it first.
func (c *customer) writes(text string) *conversations.Entry {
	c.t.Helper()
	ctx := context.Background()
	if c.room == "" {
		room, err := c.m.Client().CreateRoom(ctx)
		ok(c.t, "creating a room", err)
		ok(c.t, "inviting the business", c.m.Client().Invite(ctx, room, c.b.address))
		c.room = room
	}
	e, err := c.m.Send(ctx, c.room, text)
	ok(c.t, "writing to the business", err)
	return e
}

// waitFor syncs the customer until cond holds on their history.
func (c *customer) waitFor(what string, cond func([]conversations.Entry) bool) []conversations.Entry {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok(c.t, "syncing", c.m.Sync(context.Background()))
		es, err := c.m.History(context.Background(), c.room, 0, 200)
		ok(c.t, "reading the history", err)
		if cond(es) {
			return es
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s waited in vain for %s; history %+v", c.address, what, es)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// conversation waits until the Desk lists the customer's conversation.
func (c *customer) conversation() inbox.Conversation {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cs, err := c.b.desk.List(context.Background(), inbox.Filter{})
		ok(c.t, "listing", err)
		for _, conv := range cs {
			if conv.Customer == c.address && conv.Last != nil {
				return conv
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the desk never listed %s's conversation: %+v", c.address, cs)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// browser is an agent's browser: a cookie jar, no redirects followed,
// same-origin headers as a current browser sends them.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
}

func (b *business) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: b.t, base: b.console.URL, c: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is an answer: status, Location and body.
type page struct {
	status   int
	location string
	body     string
	header   http.Header
}

func (br *browser) do(req *http.Request) page {
	br.t.Helper()
	if req.Header.Get("Sec-Fetch-Site") == "" {
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := br.c.Do(req)
	ok(br.t, req.Method+" "+req.URL.Path, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	ok(br.t, "reading "+req.URL.Path, err)
	return page{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(body), header: resp.Header}
}

func (br *browser) get(path string) page {
	br.t.Helper()
	req, err := http.NewRequest(http.MethodGet, br.base+path, nil)
	ok(br.t, "request", err)
	return br.do(req)
}

func (br *browser) post(path string, form url.Values) page {
	br.t.Helper()
	req, err := http.NewRequest(http.MethodPost, br.base+path, strings.NewReader(form.Encode()))
	ok(br.t, "request", err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", br.base)
	return br.do(req)
}

// login signs in and expects to land on the list.
func (br *browser) login(login, password string) {
	br.t.Helper()
	p := br.post("/login", url.Values{"login": {login}, "password": {password}})
	if p.status != http.StatusSeeOther || p.location != "/" {
		br.t.Fatalf("signing in as %s: %d %q %s", login, p.status, p.location, p.body)
	}
}

// events opens the SSE stream and returns the event names as they come.
func (br *browser) events(ctx context.Context) <-chan string {
	br.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, br.base+"/events", nil)
	ok(br.t, "request", err)
	c := *br.c
	c.Timeout = 0
	resp, err := c.Do(req)
	ok(br.t, "opening the event stream", err)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		br.t.Fatalf("the event stream answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if name, found := strings.CutPrefix(sc.Text(), "event: "); found {
				ch <- name
			}
		}
	}()
	return ch
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

// count is how many times re matches s.
func count(s, re string) int { return len(regexp.MustCompile(re).FindAllStringIndex(s, -1)) }
