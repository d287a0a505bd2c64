package provider_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, to read the provider's database as an outsider

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/identity"
	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/sqlite"
)

// The scenarios run a real provider: package provider on the SQLite store
// in a temporary data directory, served by net/http on a loopback port
// chosen by the kernel. A testProvider can be stopped and started again on
// the same data directory and address, as an operator restarting
// `switchboard serve` would.

const domain = "green.test"

// testProvider is one provider's data directory and, while it runs, its
// store, server and listener.
type testProvider struct {
	t    testing.TB
	dir  string
	ca   *identity.CA
	cfg  provider.Config
	logs *logBuffer
	// wrap, if set, wraps the store the next start hands to the server
	// (the drain scenario holds a submit in flight with it).
	wrap func(store.Store) store.Store

	addr  string // kept across restarts, so clients need not be told
	url   string
	st    *sqlite.Store
	srv   *provider.Server
	hs    *http.Server
	serve chan error
}

// logBuffer collects the provider's log output, safe for the server's
// goroutines to write while the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// newProvider starts a provider on a fresh data directory. Its log, at
// debug level, goes to p.logs.
func newProvider(t testing.TB, cfg provider.Config) *testProvider {
	t.Helper()
	return newProviderWith(t, cfg, nil)
}

// newProviderWith is newProvider with the store wrapped by wrap at every
// start.
func newProviderWith(t testing.TB, cfg provider.Config, wrap func(store.Store) store.Store) *testProvider {
	t.Helper()
	cfg.Domain = domain
	ca, err := identity.NewCA(domain)
	if err != nil {
		t.Fatal(err)
	}
	p := &testProvider{t: t, dir: t.TempDir(), ca: ca, cfg: cfg, logs: &logBuffer{}, wrap: wrap}
	p.start()
	t.Cleanup(func() {
		if p.srv != nil {
			p.stop()
		}
	})
	return p
}

// start opens the data directory and serves it, on the address of the
// previous run if there was one.
func (p *testProvider) start() {
	p.t.Helper()
	st, err := sqlite.Open(filepath.Join(p.dir, "provider.db"))
	if err != nil {
		p.t.Fatal(err)
	}
	var s store.Store = st
	if p.wrap != nil {
		s = p.wrap(st)
	}
	log := slog.New(slog.NewTextHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := provider.New(p.cfg, s, p.ca, log)
	if err != nil {
		p.t.Fatal(err)
	}
	ln := p.listen()
	p.st, p.srv, p.serve = st, srv, make(chan error, 1)
	p.hs = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { p.serve <- p.hs.Serve(ln) }()
	p.addr = ln.Addr().String()
	p.url = "http://" + p.addr
}

// listen takes port 0 the first time and the same port afterwards. The
// old listener is closed by then; the retries cover the moment the kernel
// takes to let go of it.
func (p *testProvider) listen() net.Listener {
	p.t.Helper()
	if p.addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.t.Fatal(err)
		}
		return ln
	}
	var err error
	for range 100 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("listening again on %s: %v", p.addr, err)
	return nil
}

// stop shuts the provider down the way `switchboard serve` does on
// SIGTERM: drain (refuse new work, close streams), let in-flight requests
// finish, then close the store.
func (p *testProvider) stop() {
	p.t.Helper()
	p.srv.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.hs.Shutdown(ctx); err != nil {
		p.t.Errorf("shutdown: %v", err)
	}
	if err := <-p.serve; !errors.Is(err, http.ErrServerClosed) {
		p.t.Errorf("serve: %v", err)
	}
	if err := p.srv.StreamsDone(ctx); err != nil {
		p.t.Errorf("waiting for the streams: %v", err)
	}
	if err := p.st.Close(); err != nil {
		p.t.Errorf("closing the store: %v", err)
	}
	p.srv = nil
}

func (p *testProvider) restart() {
	p.t.Helper()
	p.stop()
	p.start()
}

// enroll makes the user on first use, as `switchboard admin user add`
// does, and returns a one-time code for a new device.
func (p *testProvider) enroll(handle string) string {
	p.t.Helper()
	ctx := context.Background()
	if u, err := p.st.UserByHandle(ctx, handle); err == nil {
		code, err := provider.AddEnrollment(ctx, p.st, u.ID, 0)
		if err != nil {
			p.t.Fatal(err)
		}
		return code
	}
	u, code, err := provider.AddUser(ctx, p.st, handle, "", 0)
	if err != nil {
		p.t.Fatal(err)
	}
	// Reachable by every partner, as if the user had said so.
	if err := p.st.SetReachability(ctx, u.ID, store.ReachAll, nil); err != nil {
		p.t.Fatal(err)
	}
	return code
}

// response is a raw HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request sends one raw request. contentType "" sends none; token ""
// sends no Authorization header.
func (p *testProvider) request(method, path, token, contentType string, body []byte) response {
	p.t.Helper()
	req, err := http.NewRequest(method, p.url+path, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// call sends a JSON request (in nil: no body), expects success and decodes
// the answer into out (nil: ignored).
func (p *testProvider) call(method, path, token string, in, out any) {
	p.t.Helper()
	var body []byte
	ct := ""
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			p.t.Fatal(err)
		}
		ct = "application/json"
	}
	r := p.request(method, path, token, ct, body)
	if r.status >= 300 {
		p.t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			p.t.Fatalf("%s %s: %v in %s", method, path, err, r.body)
		}
	}
}

// apiError is the documented error body.
type apiError struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// expectError checks a response against docs/api.md's error contract:
// the status, the stable code, a message, and a request ID that is also in
// the X-Request-ID header and in the provider's log with the details.
func (p *testProvider) expectError(r response, status int, code string) {
	p.t.Helper()
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil {
		p.t.Fatalf("want %d %s, got %d with a body that is not an error: %q", status, code, r.status, r.body)
	}
	if r.status != status || e.Error.Code != code {
		p.t.Fatalf("want %d %s, got %d %s: %s", status, code, r.status, e.Error.Code, e.Error.Message)
	}
	if strings.TrimSpace(e.Error.Message) == "" {
		p.t.Errorf("%s: empty message", code)
	}
	if e.Error.RequestID == "" || r.header.Get("X-Request-ID") != e.Error.RequestID {
		p.t.Errorf("%s: request_id %q, X-Request-ID header %q", code, e.Error.RequestID, r.header.Get("X-Request-ID"))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		p.t.Errorf("%s: Content-Type %q", code, ct)
	}
	if !bytes.Contains(p.logs.Bytes(), []byte("request_id="+e.Error.RequestID)) {
		p.t.Errorf("%s: request %s is not in the provider's log", code, e.Error.RequestID)
	}
}

// dump renders every row of every table of the provider's database, read
// from the file by a connection of its own, so that a test can show that
// a refused request changed nothing at all.
func (p *testProvider) dump() string {
	p.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(p.dir, "provider.db")+"?mode=ro")
	if err != nil {
		p.t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		p.t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 5 {
		p.t.Fatalf("the database has only the tables %v", tables)
	}
	var out strings.Builder
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			p.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				p.t.Fatal(err)
			}
			var line strings.Builder
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = hex.EncodeToString(b)
				}
				fmt.Fprintf(&line, " %s=%v", cols[i], v)
			}
			lines = append(lines, line.String())
		}
		if err := rows.Err(); err != nil {
			p.t.Fatal(err)
		}
		rows.Close()
		slices.Sort(lines)
		fmt.Fprintf(&out, "%s (%d rows)\n", table, len(lines))
		for _, l := range lines {
			out.WriteString(l + "\n")
		}
	}
	return out.String()
}

// rawDevice is a device driven over raw HTTP with package mls, for
// requests no well-behaved SDK would send.
type rawDevice struct {
	p       *testProvider
	name    string
	authKey ed25519.PrivateKey
	token   string
	suite   *mls.Suite
	signer  *mls.SignaturePrivateKey
	cred    mls.Credential
}

// newRawDevice registers a device of the user with a fresh enrollment
// code, signs in and obtains its MLS credential. It uploads no
// KeyPackages.
func (p *testProvider) newRawDevice(handle, name string) *rawDevice {
	p.t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	p.call("POST", "/v1/devices", "", map[string]any{
		"enrollment_code": p.enroll(handle), "device_name": name, "auth_key": []byte(pub),
	}, nil)
	suite, err := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	if err != nil {
		p.t.Fatal(err)
	}
	signer, err := suite.GenerateSignatureKey()
	if err != nil {
		p.t.Fatal(err)
	}
	d := &rawDevice{p: p, name: handle + "/" + name, authKey: priv, suite: suite, signer: signer}
	d.signIn()
	var resp struct {
		Credential []byte `json:"credential"`
	}
	p.call("POST", "/v1/me/credentials", d.token, map[string]any{"cipher_suite": 1, "signature_key": signer.PublicKey()}, &resp)
	if err := mls.Unmarshal(resp.Credential, &d.cred); err != nil {
		p.t.Fatal(err)
	}
	return d
}

// signIn answers a challenge with the device's auth key.
func (d *rawDevice) signIn() {
	d.p.t.Helper()
	pub := d.authKey.Public().(ed25519.PublicKey)
	var ch struct {
		Challenge []byte `json:"challenge"`
	}
	d.p.call("POST", "/v1/auth/challenge", "", map[string]any{"auth_key": []byte(pub)}, &ch)
	sig := ed25519.Sign(d.authKey, provider.SignInMessage(domain, ch.Challenge))
	var sess struct {
		Token string `json:"token"`
	}
	d.p.call("POST", "/v1/auth/session", "", map[string]any{"auth_key": []byte(pub), "challenge": ch.Challenge, "signature": sig}, &sess)
	d.token = sess.Token
}

// keyPackage makes a KeyPackage signed with the device's key and carrying
// the given credential (normally the device's own).
func (d *rawDevice) keyPackage(cred mls.Credential, signer *mls.SignaturePrivateKey) []byte {
	d.p.t.Helper()
	kp, err := mls.NewKeyPackage(d.suite, signer, cred, mls.KeyPackageOptions{})
	if err != nil {
		d.p.t.Fatal(err)
	}
	return mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage})
}

// uploadKeyPackages stores n fresh KeyPackages of the device.
func (d *rawDevice) uploadKeyPackages(n int) {
	d.p.t.Helper()
	var kps [][]byte
	for range n {
		kps = append(kps, d.keyPackage(d.cred, d.signer))
	}
	d.p.call("POST", "/v1/me/keypackages", d.token, map[string]any{"key_packages": kps}, nil)
}

// createRoom makes a room with the device as its only member, returning
// the device's group (in epoch 0) and the room's ID.
func (d *rawDevice) createRoom() (*mls.Group, string) {
	d.p.t.Helper()
	g, err := mls.CreateGroup(d.suite, mls.RandomBytes(16), mls.Identity{Signer: d.signer, Credential: d.cred}, nil,
		mls.GroupConfig{Now: func() uint64 { return uint64(time.Now().Unix()) }})
	if err != nil {
		d.p.t.Fatal(err)
	}
	info, err := g.GroupInfo(false, true)
	if err != nil {
		d.p.t.Fatal(err)
	}
	var resp struct {
		Room struct {
			ID string `json:"id"`
		} `json:"room"`
	}
	d.p.call("POST", "/v1/rooms", d.token, map[string]any{"group_info": mls.Marshal(info), "ratchet_tree": mls.Marshal(g.Tree().TreeNodes())}, &resp)
	return g, resp.Room.ID
}

// submit posts a message to a room as raw JSON.
func (d *rawDevice) submit(room, clientID string, msg []byte) response {
	d.p.t.Helper()
	body, _ := json.Marshal(map[string]any{"client_id": clientID, "message": msg})
	return d.p.request("POST", "/v1/rooms/"+room+"/messages", d.token, "application/json", body)
}

// view is what a device can learn of its state over the API: its fresh
// KeyPackages, its queue, and each given room's epoch, members and log.
func (d *rawDevice) view(rooms ...string) string {
	d.p.t.Helper()
	var out strings.Builder
	get := func(path string) {
		r := d.p.request("GET", path, d.token, "", nil)
		fmt.Fprintf(&out, "GET %s: %d %s", path, r.status, r.body)
	}
	get("/v1/me/keypackages")
	get("/v1/inbox?limit=1000")
	for _, room := range rooms {
		get("/v1/rooms/" + room)
		get("/v1/rooms/" + room + "/messages?limit=1000")
	}
	return out.String()
}

// sdkDevice is a device run by the Go SDK, with everything it received.
type sdkDevice struct {
	*client.Client
	t   testing.TB
	mu  sync.Mutex
	evs []client.Event
}

// newSDKDevice registers a device of the user with the SDK.
func (p *testProvider) newSDKDevice(ctx context.Context, handle, name string) *sdkDevice {
	p.t.Helper()
	c, err := client.Register(ctx, p.url, p.enroll(handle), name, p.t.TempDir(), client.Options{KeyPackageBatch: 12})
	if err != nil {
		p.t.Fatalf("register %s/%s: %v", handle, name, err)
	}
	d := &sdkDevice{Client: c, t: p.t}
	go func() {
		for ev := range c.Events() {
			d.mu.Lock()
			d.evs = append(d.evs, ev)
			d.mu.Unlock()
		}
	}()
	p.t.Cleanup(func() { c.Close() })
	return d
}

func (d *sdkDevice) sync(ctx context.Context) {
	d.t.Helper()
	if err := d.Sync(ctx); err != nil {
		d.t.Fatalf("%s: sync: %v", d.User(), err)
	}
}

func (d *sdkDevice) send(ctx context.Context, room client.RoomID, body string) {
	d.t.Helper()
	if _, err := d.Send(ctx, room, []byte(body)); err != nil {
		d.t.Fatalf("%s: send %q: %v", d.User(), body, err)
	}
}

// messages returns "sender: body" for the room's messages in the order
// received, failing the test if one came twice or out of the hub's order.
func (d *sdkDevice) messages(room client.RoomID) []string {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	var last int64
	seen := map[client.MessageID]bool{}
	for _, ev := range d.evs {
		switch m := ev.(type) {
		case *client.Message:
			if m.Room != room {
				continue
			}
			if seen[m.ID] {
				d.t.Errorf("%s: message %s delivered twice", d.User(), m.ID)
			}
			if m.Seq <= last {
				d.t.Errorf("%s: message seq %d after %d", d.User(), m.Seq, last)
			}
			seen[m.ID], last = true, m.Seq
			out = append(out, m.Sender.User+": "+string(m.Body))
		case *client.DeliveryFailed:
			d.t.Errorf("%s: delivery failed in %s at seq %d: %v", d.User(), m.Room, m.Seq, m.Err)
		}
	}
	return out
}

// joined reports whether the device was added to the room.
func (d *sdkDevice) joined(room client.RoomID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.ContainsFunc(d.evs, func(ev client.Event) bool {
		j, ok := ev.(*client.RoomJoined)
		return ok && j.Room == room
	})
}

// eventually polls cond until it holds, failing the test after a while.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectMessages waits until the device has received as many messages in
// the room as want, then compares them.
func expectMessages(t *testing.T, d *sdkDevice, room client.RoomID, want []string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to have %d messages", d.User(), len(want)), func() bool {
		return len(d.messages(room)) >= len(want)
	})
	if got := d.messages(room); !slices.Equal(got, want) {
		t.Fatalf("%s got\n%q\nwant\n%q", d.User(), got, want)
	}
}

// metric reads one sample of /metrics whose line starts with name and
// contains every label given; it reports whether there was one.
func (p *testProvider) metric(name string, labels ...string) (float64, bool) {
	p.t.Helper()
	r := p.request("GET", "/metrics", "", "", nil)
	for line := range strings.Lines(string(r.body)) {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		if !all(labels, func(l string) bool { return strings.Contains(line, l) }) {
			continue
		}
		var v float64
		f := strings.Fields(line)
		fmt.Sscan(f[len(f)-1], &v)
		return v, true
	}
	return 0, false
}

func all[T any](list []T, f func(T) bool) bool {
	for _, x := range list {
		if !f(x) {
			return false
		}
	}
	return true
}
