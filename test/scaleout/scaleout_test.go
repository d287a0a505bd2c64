package scaleout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/bus/natstest"
	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/store/postgres/pgtest"
	"github.com/switchboard-chat/switchboard/test/chatsim"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// The load: senders stop once this many messages are acknowledged, and
// the disruptions come at these counts, so that each happens while
// messages are in flight.
const (
	totalMessages = 300
	killAt        = 60  // a replica is killed
	natsRestartAt = 140 // NATS is restarted
	restartAt     = 200 // the killed replica is started again
)

// leaseTTL is green's bus_lease_ttl_seconds: a killed replica's lease on
// sending to blue.test passes to another replica within about this long.
const leaseTTL = 3

// TestScaledOutProviderSurvivesAKilledReplica: Alice, Carol and Dave are
// on green.test, three `switchboard serve` replicas on PostgreSQL and NATS
// behind a load balancer; Bob and Erin are on blue.test, one process on
// SQLite. Alice and Bob chat 1:1 in a room green hosts, all five in a
// group green hosts, and Erin, Bob, Carol and Dave in a group blue hosts,
// each sending again 50 ms after each answer. Mid-conversation the
// replica holding the most streams is killed with SIGKILL: its devices
// reconnect through the balancer, and sends it cut off are retried by the
// SDK. Then NATS restarts, then the killed replica starts again and Carol
// and Dave reopen their apps, whose connections the balancer gives to it.
// At the end, every acknowledged message has reached every other member's
// device exactly once, at the seq its sender was told, in order, by
// wake-ups over the restarted NATS.
func TestScaledOutProviderSurvivesAKilledReplica(t *testing.T) {
	began := time.Now()
	dsn := pgtest.DSN(t) // before the processes: its schema is dropped after they stop
	nats := natstest.Start(t)
	bin := proctest.BuildBinary(t)
	t.Logf("built switchboard in %v", time.Since(began).Round(time.Millisecond))
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	writeJSON := func(name string, v any) string {
		t.Helper()
		data, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(path(name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path(name)
	}
	clientLB, fedLB := newBalancer(t), newBalancer(t)

	// The operator's steps (docs/deploy.md). The users come first: the
	// first admin command makes each provider's data directory and CA.
	greenStore := []string{"--data", path("green-1"), "--domain", "green.test", "--store", dsn}
	blueStore := []string{"--data", path("blue"), "--domain", "blue.test"}
	codes := map[string]string{}
	for _, h := range []string{"alice", "carol", "dave"} {
		codes[h+"@green.test"] = proctest.AddUser(t, bin, h, greenStore...)
	}
	for _, h := range []string{"bob", "erin"} {
		codes[h+"@blue.test"] = proctest.AddUser(t, bin, h, blueStore...)
	}
	// Each provider trusts the other's CA; blue reaches green through
	// the balancer, whichever replica answers.
	trust := func(name, domain, endpoint, caDir string) string {
		ca, err := os.ReadFile(filepath.Join(caDir, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return writeJSON(name, map[string]any{"partners": []map[string]string{
			{"domain": domain, "endpoint": "https://" + endpoint, "ca_pem": string(ca)}}})
	}
	blueConfig := writeJSON("blue.json", map[string]any{
		"domain": "blue.test", "listen": "127.0.0.1:0", "data_dir": path("blue"),
		"federation_listen": "127.0.0.1:0", "trust_file": trust("blue-trust.json", "green.test", fedLB.addr(), path("green-1")),
	})
	blue := proctest.Serve(t, bin, dir, "blue", "--config", blueConfig)
	// One configuration file for every replica of green; on one host
	// each has its own data directory (--data), and the ports are
	// picked at start (127.0.0.1:0).
	greenConfig := writeJSON("green.json", map[string]any{
		"domain": "green.test", "listen": "127.0.0.1:0",
		"federation_listen": "127.0.0.1:0", "trust_file": trust("green-trust.json", "blue.test", blue.FedAddr, path("blue")),
		"store": dsn, "bus": nats.URL(), "bus_lease_ttl_seconds": leaseTTL,
	})
	startGreen := func(name string) *proctest.Proc {
		t.Helper()
		p := proctest.Serve(t, bin, dir, name, "--config", greenConfig, "--data", path(name), "--replica", name)
		clientLB.set(name, strings.TrimPrefix(p.Client, "http://"))
		fedLB.set(name, p.FedAddr)
		return p
	}
	green := map[string]*proctest.Proc{"green-1": startGreen("green-1")}
	// The other replicas get a copy of the data directory the first
	// start completed (CA and federation key).
	for _, name := range []string{"green-2", "green-3"} {
		if err := os.CopyFS(path(name), os.DirFS(path("green-1"))); err != nil {
			t.Fatalf("copying green's data directory: %v", err)
		}
		green[name] = startGreen(name)
	}
	t.Logf("green (3 replicas) and blue serving after %v", time.Since(began).Round(time.Millisecond))

	// The people, green's through the balancer.
	ctx := context.Background()
	greenURL := "http://" + clientLB.addr()
	alice := register(t, "alice@green.test", greenURL, codes)
	carol := register(t, "carol@green.test", greenURL, codes)
	dave := register(t, "dave@green.test", greenURL, codes)
	bob := register(t, "bob@blue.test", blue.Client, codes)
	erin := register(t, "erin@blue.test", blue.Client, codes)
	everyone := []*device{alice, carol, dave, bob, erin}

	members := chatsim.Members{}
	room := func(host *device, invitees ...*device) client.RoomID {
		t.Helper()
		id, err := host.Client().CreateRoom(ctx)
		if err != nil {
			t.Fatalf("%s creates a room: %v", host.Name, err)
		}
		for _, d := range invitees {
			if err := host.Client().Invite(ctx, id, d.Address(host.Device)); err != nil {
				t.Fatalf("%s invites %s: %v", host.Name, d.Name, err)
			}
		}
		epoch, err := host.Client().Epoch(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range invitees {
			d.Joined(t, id, epoch)
		}
		members[id] = []*chatsim.Device{host.Device}
		for _, d := range invitees {
			members[id] = append(members[id], d.Device)
		}
		return id
	}
	dm := room(alice, bob)                            // hosted by green, 1:1 across providers
	greenGroup := room(alice, carol, dave, bob, erin) // hosted by green
	blueGroup := room(erin, bob, carol, dave)         // hosted by blue
	t.Logf("rooms ready after %v", time.Since(began).Round(time.Millisecond))

	// The load: everyone sends, in turn to each of their rooms, until
	// totalMessages are acknowledged.
	var acked atomic.Int64
	sends := &chatsim.SendLog{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var senders sync.WaitGroup
	t.Cleanup(func() { stopLoad(); senders.Wait() })
	for d, rooms := range map[*device][]client.RoomID{
		alice: {dm, greenGroup}, bob: {dm, greenGroup, blueGroup},
		carol: {greenGroup, blueGroup}, dave: {greenGroup, blueGroup}, erin: {greenGroup, blueGroup},
	} {
		senders.Go(func() { d.sendLoop(t, loadCtx, rooms, &acked, sends) })
	}
	loadBegan := time.Now()
	waitAcked := func(n int64, next string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for acked.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("the load stalled at %d acknowledged messages (waiting for %d, before %s); %d sends failed", acked.Load(), n, next, sends.Failed())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// The replica holding the most streams dies.
	waitAcked(killAt, "the kill")
	victim := ""
	for _, name := range []string{"green-1", "green-2", "green-3"} {
		if victim == "" || clientLB.counts(name).openStreams > clientLB.counts(victim).openStreams {
			victim = name
		}
	}
	cut := clientLB.counts(victim).openStreams
	if cut == 0 {
		t.Fatal("no device has its stream on any of green's replicas")
	}
	green[victim].Kill()
	t.Logf("%s killed at %d acknowledged messages, %v into the load: %d streams cut", victim, acked.Load(), time.Since(loadBegan).Round(time.Millisecond), cut)

	waitAcked(natsRestartAt, "the NATS restart")
	nats.Stop()
	nats.Start()
	t.Logf("NATS restarted at %d acknowledged messages", acked.Load())

	// The killed replica comes back; Carol and Dave reopen their apps,
	// and the balancer gives new connections to the least loaded
	// replica: the one just started, at first.
	waitAcked(restartAt, "the restart")
	green[victim] = startGreen(victim)
	carol.reopen.Store(true)
	dave.reopen.Store(true)
	t.Logf("%s started again at %d acknowledged messages", victim, acked.Load())

	waitAcked(totalMessages, "the end of the load")
	// Each sender stops by itself once the count is reached (a reopen
	// asked for in time is carried out first). On a slow machine the
	// restart can come after the last sender stopped: the apps are then
	// reopened here.
	senders.Wait()
	for _, d := range []*device{carol, dave} {
		if d.reopen.Swap(false) {
			d.reopenApp(t, ctx)
		}
	}
	if carol.reopened.Load() == 0 || dave.reopened.Load() == 0 {
		t.Fatal("carol and dave did not reopen their apps")
	}
	stopLoad()
	loadTook := time.Since(loadBegan)
	// The reopened apps' connections reach it.
	if back := clientLB.counts(victim); back.accepted == 0 {
		t.Errorf("%s took no connection after its restart", victim)
	} else {
		t.Logf("%s took %d connections after its restart, %d of them streams", victim, back.accepted, back.streams)
	}

	// Every device gets what it should, exactly once, in order.
	sims := make([]*chatsim.Device, len(everyone))
	for i, d := range everyone {
		sims[i] = d.Device
	}
	// Bounded below the streams' 30 s re-read of their queues: the last
	// messages, sent well after NATS restarted, must come by wake-ups
	// over it.
	r := chatsim.Verify(t, chatsim.VerifyOptions{Devices: sims, Members: members, Sends: sends.All(), DrainBound: 20 * time.Second,
		Hint: " (wake-ups between replicas lost?)"})
	t.Logf("every device had every message %v after the load ended", r.Drained.Round(time.Millisecond))
	checked := r.Checked
	disconnects := 0
	for _, d := range everyone {
		disconnects += d.disconnects()
	}
	// A replica whose cached copy of a room is behind another replica's
	// write reads the room again rather than refuse the message; what is
	// still refused as wrong_epoch (the SDK then sends it again) is shown.
	wrongEpoch := 0
	for _, name := range []string{"green-1", "green-2", "green-3"} {
		wrongEpoch += proctest.LogCount(dir, name, `"code":"wrong_epoch"`)
	}
	t.Logf("%d messages sent (%d acknowledged, %d failed) in %v; %d deliveries checked; %d stream reconnections; %d submits refused as wrong_epoch by green; %v in all",
		len(sends.All()), acked.Load(), sends.Failed(), loadTook.Round(time.Millisecond), checked, disconnects, wrongEpoch, time.Since(began).Round(time.Millisecond))
}

// device is a person's app on one device (chatsim.Device) whose sender
// may be asked to close and reopen it.
type device struct {
	*chatsim.Device
	// reopen asks the sender to close the app and open it again before
	// its next message; reopened counts the times it has.
	reopen   atomic.Bool
	reopened atomic.Int32
}

func register(t *testing.T, name, url string, codes map[string]string) *device {
	t.Helper()
	// Reachable from the partner provider (a new user is not).
	return &device{Device: chatsim.Register(t, chatsim.Config{URL: url, Code: codes[name], User: name, Device: "phone", Name: name, Reachable: true})}
}

func (d *device) disconnects() int { return d.Log.Count("stream disconnected") }

// reopenApp closes the app and opens it again, through the balancer.
func (d *device) reopenApp(t *testing.T, ctx context.Context) bool {
	d.Close()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := d.Open(octx, d.URL)
	cancel()
	if err != nil {
		t.Errorf("%s: reopening the app: %v", d.Name, err)
		return false
	}
	d.reopened.Add(1)
	return true
}

// sendLoop sends numbered messages to rooms in turn, as fast as the
// provider acknowledges them, until ctx ends or totalMessages are
// acknowledged. A send is one client.Send: whatever it retries (a
// request cut off by a dying replica), it does as it would in an app.
func (d *device) sendLoop(t *testing.T, ctx context.Context, rooms []client.RoomID, acked *atomic.Int64, log *chatsim.SendLog) {
	// A reopen asked for near the end is still carried out.
	for i := 0; ctx.Err() == nil && (acked.Load() < totalMessages || d.reopen.Load()); i++ {
		if d.reopen.Swap(false) && !d.reopenApp(t, ctx) {
			return
		}
		s := chatsim.Send(ctx, d.Device, rooms[i%len(rooms)], fmt.Sprintf("%s #%d", d.Name, i), 30*time.Second)
		if ctx.Err() != nil {
			return // the load ended during this send: it counts for nothing
		}
		if s.Err == nil {
			acked.Add(1)
		} else {
			t.Errorf("%s: sending %q failed: %v", d.Name, s.Text, s.Err)
		}
		log.Add(s)
	}
}
