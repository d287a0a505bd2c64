package node_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bus/natstest"
	"github.com/switchboard-chat/switchboard/node"
	"github.com/switchboard-chat/switchboard/store"
	"github.com/switchboard-chat/switchboard/store/postgres/pgtest"
)

// Scale-out (docs/deploy.md): one provider run as three replicas over one
// PostgreSQL database and NATS, next to a provider run as one process on
// SQLite. Devices hold their streams on different replicas; what one
// replica accepts must reach, at once, a device whose stream is on
// another, and a replica's death must cost no message.

// balancer is a TCP load balancer in front of the replicas' federation
// listeners, as partners would reach a scaled-out provider: TLS passes
// through, and each connection goes to the next replica that answers.
type balancer struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []string
	next     int
}

func newBalancer(t *testing.T) *balancer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.forward(c)
		}
	}()
	return b
}

func (b *balancer) set(backends ...string) {
	b.mu.Lock()
	b.backends = backends
	b.mu.Unlock()
}

func (b *balancer) forward(c net.Conn) {
	defer c.Close()
	b.mu.Lock()
	backends := slices.Clone(b.backends)
	start := b.next
	b.next++
	b.mu.Unlock()
	for i := range backends {
		up, err := net.DialTimeout("tcp", backends[(start+i)%len(backends)], time.Second)
		if err != nil {
			continue // that replica is down: the next one
		}
		defer up.Close()
		go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
		io.Copy(c, up)
		return
	}
}

// cluster is green.test's three replicas and blue.test.
type cluster struct {
	t        *testing.T
	replicas []*node.Node // nil once aborted
	blue     *node.Node
	lb       *balancer
}

// trustFile writes a trust file naming one partner (or none), reached at
// endpoint, and reloads it in n if n is running.
func trustFile(t *testing.T, path string, n, partner *node.Node, endpoint string) {
	t.Helper()
	type entry struct {
		Domain   string `json:"domain"`
		Endpoint string `json:"endpoint"`
		CAPEM    string `json:"ca_pem"`
	}
	es := []entry{}
	if partner != nil {
		es = append(es, entry{partner.Domain, "https://" + endpoint, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: partner.CA.Certificate().Raw}))})
	}
	data, _ := json.Marshal(map[string]any{"partners": es})
	must(t, "writing "+path, os.WriteFile(path, data, 0o644))
	if n != nil {
		must(t, "reloading "+path, n.Trust.Reload())
	}
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	natsURL := natstest.URL(t)
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	var logger *slog.Logger
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	trustOf := func(n int) string {
		return filepath.Join(dir, []string{"green-1", "green-2", "green-3", "blue"}[n], "trust.json")
	}
	start := func(cfg node.Config) *node.Node {
		t.Helper()
		must(t, "data directory", os.MkdirAll(cfg.DataDir, 0o700))
		cfg.TrustFile = filepath.Join(cfg.DataDir, "trust.json")
		trustFile(t, cfg.TrustFile, nil, nil, "")
		cfg.Listen, cfg.FederationListen = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Outbox.MinBackoff, cfg.Outbox.MaxBackoff, cfg.Outbox.Rescan = testMinBackoff, testMaxBackoff, 200*time.Millisecond
		if logger != nil {
			cfg.Logger = logger.With("provider", cfg.Domain, "replica", cfg.BusName)
		}
		n, err := node.Start(cfg)
		if err != nil {
			t.Fatalf("starting %s %s: %v", cfg.Domain, cfg.BusName, err)
		}
		return n
	}
	cl := &cluster{t: t, lb: newBalancer(t)}
	// The replicas share the data directory's CA and keys: copies of
	// the first one's.
	green := filepath.Join(dir, "green-1")
	must(t, "green's data directory", os.MkdirAll(green, 0o700))
	_, err := node.LoadOrCreateCA(green, "green.test")
	must(t, "green's CA", err)
	for i, name := range []string{"green-1", "green-2", "green-3"} {
		data := filepath.Join(dir, name)
		if i > 0 {
			must(t, "copying the data directory", os.CopyFS(data, os.DirFS(green)))
		}
		cl.replicas = append(cl.replicas, start(node.Config{Domain: "green.test", DataDir: data,
			StoreDSN: dsn, Bus: natsURL, BusName: name, BusLeaseTTL: 2 * time.Second}))
	}
	cl.blue = start(node.Config{Domain: "blue.test", DataDir: filepath.Join(dir, "blue")})
	t.Cleanup(func() {
		for _, n := range append(slices.Clone(cl.replicas), cl.blue) {
			if n != nil {
				n.Close()
			}
		}
	})
	// Green's replicas reach blue directly; blue reaches green through
	// the balancer, whichever replica answers.
	var fed []string
	for i, r := range cl.replicas {
		fed = append(fed, r.FederationAddr)
		trustFile(t, trustOf(i), r, cl.blue, cl.blue.FederationAddr)
	}
	cl.lb.set(fed...)
	trustFile(t, trustOf(3), cl.blue, cl.replicas[0], cl.lb.ln.Addr().String())
	return cl
}

// device registers a new device for handle on replica n (-1: blue),
// making the user first, reachable by partners, and opens its stream.
func (cl *cluster) device(n int, handle string) *person {
	cl.t.Helper()
	at := cl.blue
	if n >= 0 {
		at = cl.replicas[n]
	}
	p := personOn(cl.t, at, handle, "", store.ReachAll)
	p.stream()
	return p
}

// TestReplicasChatAndSurviveADeadReplica: Alice, Carol and Dave are on
// green.test, each with their stream on another of its three replicas;
// Bob is on blue.test. They chat 1:1 inside green, 1:1 across the two
// providers and in a group of all four. Then the replica Carol is on
// dies mid-conversation (no draining, no lease released); Carol's device
// reconnects to another replica, blue's requests go to the survivors
// through the balancer, and green's outbox to blue is taken over. Every
// device reads every message once, in order, each within seconds (by a
// wake-up, not the stream's 30 s re-read).
func TestReplicasChatAndSurviveADeadReplica(t *testing.T) {
	cl := startCluster(t)
	ctx := context.Background()
	alice, carol, dave := cl.device(0, "alice"), cl.device(1, "carol"), cl.device(2, "dave")
	bob := cl.device(-1, "bob")

	// 1:1 inside green, across replicas 1 and 2.
	ac, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites carol", alice.c.Invite(ctx, ac, "carol@green.test"))
	alice.send(ac, "hi Carol")
	carol.expect(ac, "alice@green.test: hi Carol")
	carol.send(ac, "hi Alice")
	alice.expect(ac, "carol@green.test: hi Alice")

	// 1:1 across providers: Dave (replica 3) and Bob (blue).
	db, err := dave.c.CreateRoom(ctx)
	must(t, "dave creates a room", err)
	must(t, "dave invites bob", dave.c.Invite(ctx, db, "bob@blue.test"))
	dave.send(db, "hello Bob")
	bob.expect(db, "dave@green.test: hello Bob")
	bob.send(db, "hello Dave")
	dave.expect(db, "bob@blue.test: hello Dave")

	// A group of all four, hosted by green.
	group, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates the group", err)
	for _, who := range []string{"carol@green.test", "dave@green.test", "bob@blue.test"} {
		must(t, "alice invites "+who, alice.c.Invite(ctx, group, who))
	}
	var said []string
	say := func(d *person, text string) {
		t.Helper()
		d.send(group, text)
		said = append(said, d.name+": "+text)
	}
	heard := func(d *person) []string {
		var out []string
		for _, s := range said {
			if !strings.HasPrefix(s, d.name+":") {
				out = append(out, s)
			}
		}
		return out
	}
	everyone := []*person{alice, carol, dave, bob}
	expectAll := func(ds ...*person) {
		t.Helper()
		for _, d := range ds {
			d.expect(group, heard(d)...)
		}
	}
	say(alice, "welcome all")
	expectAll(everyone...)
	say(bob, "bob from blue")
	say(carol, "carol on replica 2")
	say(dave, "dave on replica 3")
	expectAll(everyone...)

	// Replica 2 dies mid-conversation: Alice and Bob speak while it
	// is going down.
	var wg sync.WaitGroup
	wg.Go(func() { cl.replicas[1].Abort() })
	say(alice, "is anyone there?")
	say(bob, "still here")
	wg.Wait()
	cl.replicas[1] = nil
	cl.lb.set(cl.replicas[0].FederationAddr, cl.replicas[2].FederationAddr)
	say(dave, "replica 2 is gone")
	carol.moveTo(cl.replicas[0].ClientURL)
	say(carol, "carol, now on replica 1")
	say(bob, "welcome back Carol")
	say(alice, "1:1 too")
	expectAll(everyone...)

	// A room hosted by blue: green's devices' messages go to blue, and
	// each send returns once green's copy holds the message, which
	// blue's notify brings to whichever replica the balancer picks. The
	// replica waiting is woken by the bus, not by its 5 s timeout.
	bh, err := bob.c.CreateRoom(ctx)
	must(t, "bob creates a room on blue", err)
	must(t, "bob invites alice", bob.c.Invite(ctx, bh, "alice@green.test"))
	must(t, "bob invites dave", bob.c.Invite(ctx, bh, "dave@green.test"))
	bob.send(bh, "blue hosts this one")
	alice.expect(bh, "bob@blue.test: blue hosts this one")
	dave.expect(bh, "bob@blue.test: blue hosts this one")
	var onBlue []string
	for i, d := range []*person{alice, dave, alice, dave} {
		text := "forwarded " + string(rune('a'+i))
		began := time.Now()
		d.send(bh, text)
		if took := time.Since(began); took > 3*time.Second {
			t.Errorf("%s's message to a room on blue took %v: the replica was not woken by the notify", d.name, took)
		}
		onBlue = append(onBlue, d.name+": "+text)
	}
	bob.expect(bh, onBlue...)

	carol.send(ac, "back in our room")
	alice.expect(ac, "carol@green.test: hi Alice", "carol@green.test: back in our room")
	bob.send(db, "still with blue")
	dave.expect(db, "bob@blue.test: hello Dave", "bob@blue.test: still with blue")
	carol.expect(ac, "alice@green.test: hi Carol")
	bob.expect(db, "dave@green.test: hello Bob")
}

// TestReplicaThatMissedACommitTakesTheNewEpoch: Alice (replica 1) and
// Carol (replica 2) chat, so replica 2 has the room in memory; Alice
// invites Dave through replica 1, which moves the room to a new epoch.
// Carol's next message, in the new epoch, goes through replica 2, whose
// copy of the room is an epoch behind: it must take the message as the
// store has the room, not refuse it as wrong_epoch for good.
func TestReplicaThatMissedACommitTakesTheNewEpoch(t *testing.T) {
	cl := startCluster(t)
	ctx := context.Background()
	alice, carol, dave := cl.device(0, "alice"), cl.device(1, "carol"), cl.device(2, "dave")
	room, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates a room", err)
	must(t, "alice invites carol", alice.c.Invite(ctx, room, "carol"))
	alice.send(room, "one")
	carol.expect(room, "alice@green.test: one")
	carol.send(room, "two")
	alice.expect(room, "carol@green.test: two")

	must(t, "alice invites dave", alice.c.Invite(ctx, room, "dave"))
	dave.joined(room)
	epoch, err := alice.c.Epoch(room)
	must(t, "alice's epoch", err)
	waitFor(t, "carol's device to take the commit", func() bool {
		e, err := carol.c.Epoch(room)
		return err == nil && e == epoch
	})
	carol.send(room, "three")
	alice.expect(room, "carol@green.test: two", "carol@green.test: three")
	dave.expect(room, "carol@green.test: three")

	// Alice and Carol now talk at once through their two replicas, each
	// of whose cached room is behind after every message of the other's:
	// the hub reads the room again and takes every message, and no send
	// is refused to its device as wrong_epoch (which would make the
	// device encrypt and send it again).
	var wg sync.WaitGroup
	var fromAlice, fromCarol []string
	for i := range 15 {
		fromAlice = append(fromAlice, fmt.Sprintf("alice@green.test: a%d", i))
		fromCarol = append(fromCarol, fmt.Sprintf("carol@green.test: c%d", i))
	}
	wg.Go(func() {
		for i := range 15 {
			alice.send(room, fmt.Sprintf("a%d", i))
		}
	})
	wg.Go(func() {
		for i := range 15 {
			carol.send(room, fmt.Sprintf("c%d", i))
		}
	})
	wg.Wait()
	waitFor(t, "dave to read all 31 messages", func() bool { return len(dave.messages(room)) == 31 })
	got := dave.messages(room)[1:]
	var gotAlice, gotCarol []string
	for _, m := range got {
		if strings.HasPrefix(m, "alice@") {
			gotAlice = append(gotAlice, m)
		} else {
			gotCarol = append(gotCarol, m)
		}
	}
	if !slices.Equal(gotAlice, fromAlice) || !slices.Equal(gotCarol, fromCarol) {
		t.Fatalf("dave read, in room order:\n  %s", strings.Join(got, "\n  "))
	}
	for i, r := range cl.replicas {
		if n := metric(t, r.ClientURL, `switchboard_requests_total{code="wrong_epoch",handler="submit"}`); n != 0 {
			t.Errorf("replica %d refused %v submits as wrong_epoch", i+1, n)
		}
	}
}

// metric reads one counter from a provider's /metrics (0 when absent).
func metric(t *testing.T, clientURL, series string) float64 {
	t.Helper()
	resp, err := http.Get(clientURL + "/metrics")
	must(t, "metrics", err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			must(t, "metric "+series, err)
			return f
		}
	}
	return 0
}
