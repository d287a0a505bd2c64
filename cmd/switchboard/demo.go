package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/store"
)

func init() {
	commands["demo"] = command{summary: "three providers on loopback and a guided encrypted conversation across them", run: runDemo}
}

// The demo's providers and people. Each provider is a separate deployment
// in all but process: its own data directory, CA, database, client API and
// federation listener, trusting the other two over mutual TLS.
var (
	demoDomains = []string{"green.example", "blue.example", "red.example"}
	demoPeople  = []struct {
		handle string
		node   int // index in demoDomains
	}{{"alice", 0}, {"bob", 1}, {"carol", 2}, {"dave", 2}}
)

const (
	// demoWait bounds each wait for something to arrive at a device.
	demoWait = 10 * time.Second
	// demoQuiet is how long a removed member is watched for a message
	// that must not reach her, after everyone else has read it.
	demoQuiet = 300 * time.Millisecond
	// demoLogName is the providers' log, in the data directory.
	demoLogName = "providers.log"
)

// runDemo is `switchboard demo`.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("demo", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchboard demo [--data DIR] [--exit]")
		fmt.Fprintln(stderr, "\nStarts three providers on loopback (green.example, blue.example, red.example),")
		fmt.Fprintln(stderr, "walks four people through chats across them, then keeps the providers running")
		fmt.Fprintln(stderr, "for other clients until Ctrl-C.")
		fmt.Fprintln(stderr)
		fl.PrintDefaults()
	}
	data := fl.String("data", "", "keep the providers' data and the demo's devices in `DIR`, and reuse them on the next run (default: a temporary directory, removed on exit)")
	exit := fl.Bool("exit", false, "stop after the walk-through instead of serving until Ctrl-C")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fl.NArg() > 0 {
		fl.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one kills at once.
		<-ctx.Done()
		stop()
	}()
	d := &demo{out: stdout}
	if err := d.run(ctx, *data, *exit); err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		fmt.Fprintln(stderr, "switchboard demo:", err)
		return 1
	}
	return 0
}

// demo is one run of the demo.
type demo struct {
	outMu sync.Mutex
	out   io.Writer

	dir    string
	l      *node.Local
	people map[string]*demoPerson // by handle

	// What the walk-through measured.
	sent       int
	deliveries []time.Duration
	searched   int // files searched for plaintext, per message
	scan       fileReader
	http       *http.Client // the devices'
}

// demoPerson is one device of one of the demo's users, running as any
// application would: Run keeps its WebSocket open, and a reader takes its
// events, noting when each arrived.
type demoPerson struct {
	d      *demo
	handle string
	addr   string // handle@domain
	node   int
	c      *client.Client

	mu      sync.Mutex
	events  []arrival
	changed chan struct{} // closed and replaced when an event arrives
	live    bool          // after the walk-through: print what arrives
}

type arrival struct {
	e  client.Event
	at time.Time
}

func (d *demo) printf(format string, a ...any) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	fmt.Fprintf(d.out, format, a...)
}

// run is the whole demo; everything it starts is stopped before it
// returns.
func (d *demo) run(ctx context.Context, data string, exit bool) error {
	temporary := data == ""
	if temporary {
		dir, err := os.MkdirTemp("", "switchboard-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		data = dir
	} else if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	// An absolute path, so that the commands printed below work from any
	// directory.
	data, err := filepath.Abs(data)
	if err != nil {
		return err
	}
	d.dir = data
	logFile, err := os.OpenFile(filepath.Join(data, demoLogName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- the demo's own data directory
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	log.Info("switchboard demo starting", "data", data)
	// The devices' diagnostics go to a log of their own: they are the
	// clients', not the providers'.
	if err := os.MkdirAll(filepath.Join(data, "devices"), 0o700); err != nil {
		return err
	}
	devLogFile, err := os.OpenFile(filepath.Join(data, "devices", "devices.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- the demo's own data directory
	if err != nil {
		return err
	}
	defer devLogFile.Close()
	devLog := slog.New(slog.NewTextHandler(devLogFile, &slog.HandlerOptions{Level: slog.LevelInfo}))

	started := time.Now()
	d.printf("Switchboard demo: three providers on loopback, four people, end-to-end encrypted chats across them.\n")
	if temporary {
		d.printf("Data: %s (temporary, removed on exit; --data DIR keeps it)\n", data)
	} else {
		d.printf("Data: %s\n", data)
	}
	d.printf("Provider logs: %s\n\n", filepath.Join(data, demoLogName))

	// The files searched for plaintext are closed only after the
	// providers' databases are (see fileReader).
	defer d.scan.close()
	d.l, err = node.StartLocal(data, demoDomains, node.LocalOptions{Logger: log})
	if err != nil {
		return fmt.Errorf("starting the providers: %w", err)
	}
	defer d.l.Close()
	d.printf("Providers (each with its own CA and database; federation over mutual TLS, each trusting the other two):\n")
	for _, n := range d.l.Nodes() {
		d.printf("  %-14s client API %-24s federation https://%s\n", n.Domain, n.ClientURL, n.FederationAddr)
	}

	d.printf("\nPeople (one device each; the device makes its own keys, the provider certifies them):\n")
	d.people = map[string]*demoPerson{}
	// The devices' connections are closed before the providers stop. A
	// connection left open that never carried a request (the HTTP
	// transport dials one for a request that then takes another, freed
	// meanwhile) holds up http.Server.Shutdown for 5 seconds.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d.http = &http.Client{Transport: tr, Timeout: time.Minute}
	defer tr.CloseIdleConnections()
	runCtx, stopRun := context.WithCancel(context.Background())
	var running, reading sync.WaitGroup
	defer func() {
		// Stop the streams, then the devices; the readers end when a
		// device's event channel closes.
		stopRun()
		running.Wait()
		for _, p := range d.people {
			p.c.Close() // #nosec G104 -- shutting down: nothing is left to do with a failed close
		}
		reading.Wait()
	}()
	for _, spec := range demoPeople {
		p, how, err := d.setUpPerson(ctx, spec.handle, spec.node, devLog)
		if err != nil {
			return fmt.Errorf("setting up %s@%s: %w", spec.handle, demoDomains[spec.node], err)
		}
		d.people[spec.handle] = p
		d.printf("  %-20s %s\n", p.addr, how)
		// The demo's people talk across providers: each lets every
		// partner reach them, as a person turns it on in a client.
		if err := p.c.SetReachability(ctx, client.ReachAll, nil); err != nil {
			return fmt.Errorf("%s allowing every partner provider: %w", p.addr, err)
		}
		running.Add(1)
		go func() {
			defer running.Done()
			p.c.Run(runCtx) // #nosec G104 -- Run returns ctx's error when the demo ends
		}()
		reading.Add(1)
		go func() {
			defer reading.Done()
			for e := range p.c.Events() {
				p.record(e)
			}
		}()
	}

	d.printf("Each person allows every partner provider to reach them (reachability \"all\"; until a user turns it on, no other provider reaches them).\n")

	d.printf("\nEvery message below is encrypted on the sender's device and decrypted on the receivers'.\n")
	d.printf("Latency: from Send until the receiving device has decrypted it (its WebSocket stream).\n")
	d.printf("Stored: each provider's copy of the message in its room log (store.RoomMessages): ciphertext only,\n")
	d.printf("        padded by the sender's device to a multiple of 32 bytes so that sizes hide lengths.\n")
	d.printf("Plaintext: the message text searched for in every provider's provider.db, -wal and -shm, and the providers' log.\n")

	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := d.walkThrough(wctx); err != nil {
		return err
	}
	d.summary(time.Since(started))
	if exit {
		return nil
	}
	d.connectHelp()
	for _, p := range d.people {
		p.mu.Lock()
		p.live = true
		p.mu.Unlock()
	}
	<-ctx.Done()
	d.printf("\nStopping: closing the devices and the providers.\n")
	return nil
}

// setUpPerson gives the demo a device of the user: the one kept in the
// data directory from an earlier run, or a new one (and the account, if
// there is none yet). how says which.
func (d *demo) setUpPerson(ctx context.Context, handle string, i int, log *slog.Logger) (*demoPerson, string, error) {
	n := d.l.Node(i)
	dir := filepath.Join(d.dir, "devices", handle+"@"+n.Domain)
	opts := client.Options{Logger: log.With("device", handle+"@"+n.Domain), HTTPClient: d.http}
	p := &demoPerson{d: d, handle: handle, addr: handle + "@" + n.Domain, node: i, changed: make(chan struct{})}
	var err error
	if _, serr := os.Stat(filepath.Join(dir, "device.json")); serr == nil {
		if p.c, err = client.Open(ctx, n.ClientURL, dir, opts); err != nil {
			return nil, "", err
		}
		return p, fmt.Sprintf("device %q reopened (from an earlier run)", p.c.Device()), nil
	}
	// A new device. The account may exist already, when the data
	// directory outlived the device's own directory.
	device, how := "demo", "new account; device %q registered"
	var code string
	u, err := n.Store.UserByHandle(ctx, handle)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, code, err = provider.AddUser(ctx, n.Store, handle, "", time.Hour); err != nil {
			return nil, "", err
		}
	case err != nil:
		return nil, "", err
	default:
		devs, err := n.Store.DevicesOfUser(ctx, u.ID)
		if err != nil {
			return nil, "", err
		}
		device, how = "demo-"+strconv.Itoa(len(devs)+1), "existing account; new device %q registered"
		if code, err = provider.AddEnrollment(ctx, n.Store, u.ID, time.Hour); err != nil {
			return nil, "", err
		}
	}
	if p.c, err = client.Register(ctx, n.ClientURL, code, device, dir, opts); err != nil {
		return nil, "", err
	}
	return p, fmt.Sprintf(how, device), nil
}

// record keeps an event with the time it arrived, wakes whoever waits,
// and after the walk-through prints what other clients sent.
func (p *demoPerson) record(e client.Event) {
	now := time.Now()
	p.mu.Lock()
	live := p.live
	if !live {
		// Kept for the walk-through's waits; afterwards no one waits.
		p.events = append(p.events, arrival{e, now})
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.mu.Unlock()
	if !live {
		return
	}
	switch e := e.(type) {
	case *client.Message:
		p.d.printf("[%s] %s decrypted from %s@%s: %s\n", now.Format("15:04:05"), p.addr, e.Sender.User, e.Sender.Domain, describe(e.Body))
	case *client.RoomJoined:
		p.d.printf("[%s] %s joined room %s\n", now.Format("15:04:05"), p.addr, e.Room)
	case *client.RemovedFromRoom:
		p.d.printf("[%s] %s was removed from room %s\n", now.Format("15:04:05"), p.addr, e.Room)
	case *client.DeliveryFailed:
		p.d.printf("[%s] %s could not read message %d of room %s: %v\n", now.Format("15:04:05"), p.addr, e.Seq, e.Room, e.Err)
	}
}

// find returns the arrival time of the first event that match accepts.
func (p *demoPerson) find(match func(client.Event) bool) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.events {
		if match(a.e) {
			return a.at, true
		}
	}
	return time.Time{}, false
}

// await waits until an event that match accepts has arrived, and returns
// when it did. A message of the room that the device could not read ends
// the wait with an error: it would never be the one awaited.
func (p *demoPerson) await(ctx context.Context, room client.RoomID, what string, match func(client.Event) bool) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, demoWait)
	defer cancel()
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		if at, ok := p.find(match); ok {
			return at, nil
		}
		var failed *client.DeliveryFailed
		p.find(func(e client.Event) bool {
			f, ok := e.(*client.DeliveryFailed)
			if ok && f.Room == room {
				failed = f
			}
			return ok && f.Room == room
		})
		if failed != nil {
			return time.Time{}, fmt.Errorf("%s could not read message %d of the room: %v", p.addr, failed.Seq, failed.Err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s: no %s after %s", p.addr, what, demoWait)
		}
	}
}

func joined(room client.RoomID) func(client.Event) bool {
	return func(e client.Event) bool {
		j, ok := e.(*client.RoomJoined)
		return ok && j.Room == room
	}
}

func removed(room client.RoomID) func(client.Event) bool {
	return func(e client.Event) bool {
		r, ok := e.(*client.RemovedFromRoom)
		return ok && r.Room == room
	}
}

func message(room client.RoomID, text string) func(client.Event) bool {
	return func(e client.Event) bool {
		m, ok := e.(*client.Message)
		if !ok || m.Room != room {
			return false
		}
		msg, err := content.Decode(m.Body)
		return err == nil && msg.Text() == text
	}
}

// describe shows a received MIMI content message: its text, or what kind
// of message it is (a reaction, a delivered report, ...).
func describe(body []byte) string {
	msg, err := content.Decode(body)
	switch {
	case err != nil:
		return fmt.Sprintf("(not a MIMI content message: %v)", err)
	case msg.Kind() == content.KindText:
		return strconv.Quote(msg.Text())
	case msg.Kind() == content.KindMedia:
		return "(" + msg.Body.ContentType + ")"
	}
	return fmt.Sprintf("(%s) %q", msg.Kind(), msg.Text())
}

// walkThrough is the guided conversation. Message texts are long enough
// that finding one in a file by chance is out of the question.
func (d *demo) walkThrough(ctx context.Context) error {
	alice, bob, carol, dave := d.people["alice"], d.people["bob"], d.people["carol"], d.people["dave"]

	d.printf("\nStep 1. A 1:1 chat between %s and %s\n", alice.addr, bob.addr)
	dm, err := d.createRoom(ctx, alice)
	if err != nil {
		return err
	}
	if err := d.inviteOnly(ctx, alice, dm, bob); err != nil {
		return err
	}
	if err := d.say(ctx, alice, dm, "Hi Bob, this is Alice writing from green.example.", []*demoPerson{bob}, nil); err != nil {
		return err
	}
	if err := d.showRequest(ctx, bob, alice, dm); err != nil {
		return err
	}
	if err := d.say(ctx, bob, dm, "Hello Alice! Bob here, answering from blue.example.", []*demoPerson{alice}, nil); err != nil {
		return err
	}

	d.printf("\nStep 2. A group across all three providers: %s, %s and %s\n", alice.addr, bob.addr, carol.addr)
	group, err := d.createRoom(ctx, alice)
	if err != nil {
		return err
	}
	if err := d.invite(ctx, alice, group, bob, carol); err != nil {
		return err
	}
	if err := d.say(ctx, alice, group, "Welcome to the group, Bob and Carol: three providers, one room.", []*demoPerson{bob, carol}, nil); err != nil {
		return err
	}
	if err := d.say(ctx, bob, group, "Bob in the group, still on blue.example.", []*demoPerson{alice, carol}, nil); err != nil {
		return err
	}
	if err := d.say(ctx, carol, group, "Carol joining in from red.example.", []*demoPerson{alice, bob}, nil); err != nil {
		return err
	}

	d.printf("\nStep 3. The members change: %s is added, %s removed\n", dave.addr, carol.addr)
	if err := d.invite(ctx, alice, group, dave); err != nil {
		return err
	}
	start := time.Now()
	if err := alice.c.Remove(ctx, group, carol.addr); err != nil {
		return fmt.Errorf("%s removing %s: %w", alice.addr, carol.addr, err)
	}
	at, err := carol.await(ctx, group, "notice of her removal", removed(group))
	if err != nil {
		return err
	}
	d.printf("  %s removes %s; carol's device is told she was removed (after %s)\n", alice.handle, carol.addr, ms(at.Sub(start)))
	if err := d.say(ctx, dave, group, "Dave from red.example says hello to the group.", []*demoPerson{alice, bob}, []*demoPerson{carol}); err != nil {
		return err
	}
	if err := d.say(ctx, alice, group, "Carol has left us; this one is for Bob and Dave only.", []*demoPerson{bob, dave}, []*demoPerson{carol}); err != nil {
		return err
	}
	members, err := alice.c.Members(group)
	if err != nil {
		return err
	}
	d.printf("  members now, as alice's device sees the group: %s\n", strings.Join(members, ", "))
	return nil
}

func (d *demo) createRoom(ctx context.Context, by *demoPerson) (client.RoomID, error) {
	room, err := by.c.CreateRoom(ctx)
	if err != nil {
		return "", fmt.Errorf("%s creating a room: %w", by.addr, err)
	}
	d.printf("  %s creates room %s, hosted by %s (its hub)\n", by.handle, shortRoom(room), demoDomains[by.node])
	return room, nil
}

// invite adds the people to the room, one Invite each, waits until each
// new device has processed its Welcome, and has each accept the message
// request that the room is for them if the inviter is new to them.
func (d *demo) invite(ctx context.Context, by *demoPerson, room client.RoomID, people ...*demoPerson) error {
	if err := d.inviteOnly(ctx, by, room, people...); err != nil {
		return err
	}
	for _, p := range people {
		reqs, err := p.c.Requests(ctx)
		if err != nil {
			return fmt.Errorf("%s listing message requests: %w", p.addr, err)
		}
		for _, q := range reqs {
			if q.Room != room {
				continue
			}
			if err := p.c.AcceptRequest(ctx, q.Peer, q.Room); err != nil {
				return fmt.Errorf("%s accepting %s's request: %w", p.addr, q.Peer, err)
			}
			d.printf("  %s's provider holds it as a message request from %s (first contact); %s accepts\n", p.handle, by.addr, p.handle)
		}
	}
	return nil
}

// showRequest is the walk-through of a first contact from another
// platform: the recipient's provider holds the room as a message request,
// the sender hears nothing back until the recipient accepts, and
// accepting tells the sender's provider (MIMI updateConsent).
func (d *demo) showRequest(ctx context.Context, p, from *demoPerson, room client.RoomID) error {
	reqs, err := p.c.Requests(ctx)
	if err != nil {
		return fmt.Errorf("%s listing message requests: %w", p.addr, err)
	}
	var found *client.Request
	for i := range reqs {
		if reqs[i].Room == room {
			found = &reqs[i]
		}
	}
	if found == nil {
		// With --data, a later run finds the two already in contact.
		d.printf("  no message request: %s accepted %s in an earlier run (the acceptance is kept)\n", p.handle, from.addr)
		return nil
	}
	d.printf("  message request: %s's provider (%s) holds the room as a first contact from %s;\n", p.handle, demoDomains[p.node], found.Peer)
	d.printf("    %s's device shows it under requests; %s learns nothing (no delivered or read mark) until %s answers\n", p.handle, from.handle, p.handle)
	if err := p.c.AcceptRequest(ctx, found.Peer, room); err != nil {
		return fmt.Errorf("%s accepting the request: %w", p.addr, err)
	}
	left, err := p.c.Requests(ctx)
	if err != nil {
		return err
	}
	d.printf("  %s accepts: the chat moves to the inbox (%d requests left); %s is told with MIMI updateConsent (grant)\n", p.handle, len(left), demoDomains[from.node])
	d.printf("    (declining would drop the room for %s and tell %s nothing; blocking also refuses %s's key material and messages everywhere)\n", p.handle, from.handle, from.handle)
	return nil
}

// inviteOnly adds the people to the room, one Invite each, and waits until
// each new device has processed its Welcome.
func (d *demo) inviteOnly(ctx context.Context, by *demoPerson, room client.RoomID, people ...*demoPerson) error {
	for _, p := range people {
		start := time.Now()
		if err := by.c.Invite(ctx, room, p.addr); err != nil {
			return fmt.Errorf("%s inviting %s: %w", by.addr, p.addr, err)
		}
		at, err := p.await(ctx, room, "Welcome to the room", joined(room))
		if err != nil {
			return err
		}
		d.printf("  %s invites %s; %s's device joins the MLS group from its Welcome (after %s)\n", by.handle, p.addr, p.handle, ms(at.Sub(start)))
	}
	return nil
}

// say sends one message and reports its delivery to each of to, its
// absence at each of notTo, each provider's stored copy, and the search
// for its plaintext.
func (d *demo) say(ctx context.Context, from *demoPerson, room client.RoomID, text string, to, notTo []*demoPerson) error {
	d.printf("  %s: %q\n", from.addr, text)
	start := time.Now()
	// A MIMI content message, as every Switchboard client sends.
	body, err := content.Text(text).Encode()
	if err != nil {
		return err
	}
	id, err := from.c.Send(ctx, room, body)
	if err != nil {
		return fmt.Errorf("%s sending to room %s: %w", from.addr, shortRoom(room), err)
	}
	d.sent++
	seq, err := strconv.ParseInt(string(id[strings.LastIndexByte(string(id), '/')+1:]), 10, 64)
	if err != nil {
		return fmt.Errorf("message id %q: %v", id, err)
	}
	for _, p := range to {
		at, err := p.await(ctx, room, fmt.Sprintf("message %q", text), message(room, text))
		if err != nil {
			return err
		}
		lat := at.Sub(start)
		d.deliveries = append(d.deliveries, lat)
		d.printf("    delivered  %-20s decrypted after %s\n", p.addr, ms(lat))
	}
	if len(notTo) > 0 {
		// Everyone else has it: had it been sent to them, it would be
		// there by now or very soon.
		if err := sleep(ctx, demoQuiet); err != nil {
			return err
		}
		for _, p := range notTo {
			if _, got := p.find(message(room, text)); got {
				return fmt.Errorf("%s decrypted %q after being removed from the room", p.addr, text)
			}
			d.printf("    not to     %-20s nothing arrived (removed from the room)\n", p.addr)
		}
	}
	if err := d.reportStored(ctx, room, seq, len(text)); err != nil {
		return err
	}
	found, err := d.findPlaintext(text)
	if err != nil {
		return err
	}
	if len(found) > 0 {
		d.printf("    plaintext found: YES, in %s\n", strings.Join(found, ", "))
		return fmt.Errorf("the text of a message is in a provider's files: %s", strings.Join(found, ", "))
	}
	d.printf("    plaintext found: no (%d files searched)\n", d.searched)
	return nil
}

// reportStored prints each provider's copy of message seq of the room:
// the hub's log, or a follower's copy of it, or none when no user of that
// provider is in the room.
func (d *demo) reportStored(ctx context.Context, room client.RoomID, seq int64, textLen int) error {
	var parts []string
	for _, n := range d.l.Nodes() {
		r, err := n.Store.Room(ctx, string(room))
		if errors.Is(err, store.ErrNotFound) {
			parts = append(parts, n.Domain+" nothing (not in the room)")
			continue
		} else if err != nil {
			return fmt.Errorf("%s: reading room %s: %w", n.Domain, shortRoom(room), err)
		}
		role := "follower"
		if r.Hub == "" {
			role = "hub"
		}
		m, ok, err := storedMessage(ctx, n.Store, string(room), seq)
		if err != nil {
			return fmt.Errorf("%s: reading the log of room %s: %w", n.Domain, shortRoom(room), err)
		}
		if !ok {
			parts = append(parts, fmt.Sprintf("%s (%s) no copy", n.Domain, role))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s (%s) %d B", n.Domain, role, len(m.Payload)))
	}
	d.printf("    stored     seq %d, ciphertext for a %d-byte text: %s\n", seq, textLen, strings.Join(parts, ", "))
	return nil
}

// storeReader is what reportStored reads of a provider's store.
type storeReader interface {
	RoomMessages(ctx context.Context, roomID string, after int64, limit int) ([]store.Message, error)
}

// storedMessage reads message seq of a room's log. A follower's copy may
// trail its devices by a moment (the hub's notify is written before the
// devices are told, but the sender's own provider hears of the message
// last), so it is looked for for up to a second.
func storedMessage(ctx context.Context, st storeReader, room string, seq int64) (store.Message, bool, error) {
	deadline := time.Now().Add(time.Second)
	for {
		msgs, err := st.RoomMessages(ctx, room, 0, 1000)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Message{}, false, err
		}
		if i := slices.IndexFunc(msgs, func(m store.Message) bool { return m.Seq == seq }); i >= 0 {
			return msgs[i], true, nil
		}
		if time.Now().After(deadline) {
			return store.Message{}, false, nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return store.Message{}, false, err
		}
	}
}

// findPlaintext searches every provider's database files and the
// providers' log for text, and returns the files that hold it.
func (d *demo) findPlaintext(text string) ([]string, error) {
	var files []string
	for _, domain := range demoDomains {
		db := filepath.Join(d.dir, domain, "provider.db")
		files = append(files, db, db+"-wal", db+"-shm")
	}
	files = append(files, filepath.Join(d.dir, demoLogName))
	var found []string
	d.searched = 0
	for _, f := range files {
		data, ok, err := d.scan.read(f)
		if err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		d.searched++
		if bytes.Contains(data, []byte(text)) {
			rel, _ := filepath.Rel(d.dir, f)
			found = append(found, rel)
		}
	}
	if d.searched == 0 {
		return nil, errors.New("no provider database to search")
	}
	return found, nil
}

// fileReader reads files that SQLite has open in this process, without
// breaking SQLite's locks. Locks on a file are POSIX advisory locks, which
// belong to the process, and closing any descriptor of the file drops
// them all, whichever descriptor took them. A database read with
// os.ReadFile would thus lose the provider's shared lock on its -shm file;
// the next process to close the database (`switchboard admin` run beside
// the demo) would then believe itself the last user, checkpoint and reset
// the WAL under the running provider, whose next read fails with "disk
// I/O error (522)". So each file is opened once and read in place, and
// closed only after the providers' stores are.
type fileReader struct {
	mu    sync.Mutex
	files map[string]*os.File
}

// read returns the file's content; ok is false if it does not exist.
func (r *fileReader) read(path string) (data []byte, ok bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.files[path]
	if f == nil {
		f, err = os.Open(path) // #nosec G304 -- a log file of the demo's own data directory
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		} else if err != nil {
			return nil, false, err
		}
		if r.files == nil {
			r.files = map[string]*os.File{}
		}
		r.files[path] = f
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	data = make([]byte, fi.Size())
	n, err := f.ReadAt(data, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	return data[:n], true, nil
}

func (r *fileReader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.files {
		f.Close() // #nosec G104 -- log files opened for reading
	}
	r.files = nil
}

func (d *demo) summary(took time.Duration) {
	lats := slices.Clone(d.deliveries)
	slices.Sort(lats)
	d.printf("\nDone in %s: %d messages sent, %d deliveries decrypted", ms(took), d.sent, len(lats))
	if len(lats) > 0 {
		d.printf(" (latency min %s, median %s, max %s)", ms(lats[0]), ms(lats[len(lats)/2]), ms(lats[len(lats)-1]))
	}
	d.printf(".\nplaintext found: no (no message text in any provider's database files or log)\n")
}

// connectHelp tells how to reach the running providers with another
// client.
func (d *demo) connectHelp() {
	green := d.l.Node(0)
	greenDir := filepath.Join(d.dir, green.Domain)
	d.printf("\nThe providers keep running until Ctrl-C. Connect another client to them:\n\n")
	for _, n := range d.l.Nodes() {
		d.printf("  %-14s client API %s\n", n.Domain, n.ClientURL)
	}
	d.printf("\n  Add users in another terminal while the demo runs (each command prints a one-time enrollment code):\n\n")
	d.printf("    go run ./cmd/switchboard admin user add erin --domain %s --data %s\n", green.Domain, greenDir)
	d.printf("    go run ./cmd/switchboard admin user add frank --domain %s --data %s\n\n", green.Domain, greenDir)
	d.printf("  Let their two devices chat through %s:\n\n", green.Domain)
	d.printf("    go run ./examples/twodevices -server %s -alice ERIN-CODE -bob FRANK-CODE\n\n", green.ClientURL)
	d.printf("  Or register a device with the Go SDK (package client) and invite the demo's people,\n")
	d.printf("  e.g. \"bob@blue.example\": their devices are online and print what they decrypt here.\n")
	d.printf("    client.Register(ctx, %q, CODE, \"laptop\", DIR, client.Options{})\n", green.ClientURL)
	d.printf("\n  Or run a business inbox on %s that customers on the other providers write to\n", green.Domain)
	d.printf("  (README, \"Answer customers from one inbox\"):\n\n")
	d.printf("    go run ./cmd/switchboard admin user add shop --domain %s --data %s\n", green.Domain, greenDir)
	d.printf("    go run ./cmd/switchboard inbox --server %s --code SHOP-CODE --data DIR\n\n", green.ClientURL)
	d.printf("  Each provider's data directory is %s/DOMAIN; a new run gets new ports.\n", d.dir)
	d.printf("\nPress Ctrl-C to stop.\n")
}

// ms prints a duration rounded for people: 12.3ms, 1.52s.
func ms(d time.Duration) string {
	if d >= time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

// shortRoom abbreviates a room ID for the walk-through's lines.
func shortRoom(r client.RoomID) string {
	if len(r) > 8 {
		return string(r[:8]) + "…"
	}
	return string(r)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
