package chaos_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/chatsim"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// The crashes: each comes at a random moment within killWindow of the
// last restart (or of the start of the load), and the provider stays down
// for a random time up to maxDown: often shorter than the SDK's retries
// of a send (about 1.5 s), which then succeed, sometimes longer, so that
// sends fail with their outcome unknown to the sender (stored or not).
const (
	defaultKills = 3
	minUp        = 500 * time.Millisecond
	killWindow   = 2 * time.Second
	maxDown      = 2500 * time.Millisecond
	// sendPause is each sender's pause after an answer: a steady load
	// that leaves the two cores to the providers.
	sendPause = 20 * time.Millisecond
	// drainBound is how long the devices get, after the load, to receive
	// every acknowledged message.
	drainBound = 30 * time.Second
)

// TestProvidersKilledUnderLoad: Alice and Carol are on green.test, Bob and
// Dave on blue.test; Alice and Bob have a laptop too. Green hosts two 1:1
// rooms across the providers (Alice and Bob, Carol and Dave) and a group
// of all four; blue hosts another group of all four. Everyone sends, in
// turn to each of their rooms, while green, blue, or both at once are
// killed with SIGKILL and started again, and at each crash someone's app
// is closed from before it until after the restart. Devices reconnect by
// themselves; a send cut off by a crash is retried by the SDK with its
// client_id, or fails (its outcome unknown to the sender). Afterwards
// every acknowledged message has reached every other member's device once,
// at the seq its sender was told, and each device read each room in seq
// order, so every device sees each room in the same order.
func TestProvidersKilledUnderLoad(t *testing.T) {
	kills := defaultKills
	if v := os.Getenv("SWITCHBOARD_CHAOS_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SWITCHBOARD_CHAOS_KILLS=%q: want a count of kills", v)
		}
		kills = n
	}
	began := time.Now()
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

	// The users first: the first admin command makes each provider's
	// data directory and CA, which the other's trust file names.
	// Alice and Bob have a second device each.
	codes := map[string]string{}
	for _, u := range []string{"alice@green.test", "carol@green.test", "bob@blue.test", "dave@blue.test"} {
		handle, domain, _ := strings.Cut(u, "@")
		store := []string{"--data", path(strings.TrimSuffix(domain, ".test")), "--domain", domain}
		codes[u+"/phone"] = proctest.AddUser(t, bin, handle, store...)
		if handle == "alice" || handle == "bob" {
			codes[u+"/laptop"] = proctest.EnrollDevice(t, bin, handle, store...)
		}
	}
	// Fixed ports, so that a restarted provider is where its devices and
	// its partner look for it.
	ports := map[string]string{}
	for _, name := range []string{"green", "green-fed", "blue", "blue-fed"} {
		ports[name] = proctest.FreeAddr(t)
	}
	config := func(domain, self, partnerDomain, partner string) string {
		ca, err := os.ReadFile(filepath.Join(path(partner), "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		trust := writeJSON(self+"-trust.json", map[string]any{"partners": []map[string]string{
			{"domain": partnerDomain, "endpoint": "https://" + ports[partner+"-fed"], "ca_pem": string(ca)}}})
		off := map[string]bool{"off": true}
		return writeJSON(self+".json", map[string]any{
			"domain": domain, "data_dir": path(self),
			"listen": ports[self], "federation_listen": ports[self+"-fed"], "trust_file": trust,
			// The test is about crashes, not about the rate limits.
			"rate_limits": map[string]any{"user": off, "room": off, "partner": off},
		})
	}
	configs := map[string]string{
		"green": config("green.test", "green", "blue.test", "blue"),
		"blue":  config("blue.test", "blue", "green.test", "green"),
	}
	procs := map[string]*proctest.Proc{}
	for _, name := range []string{"green", "blue"} {
		procs[name] = proctest.Serve(t, bin, dir, name, "--config", configs[name])
	}
	t.Logf("green and blue serving after %v", time.Since(began).Round(time.Millisecond))

	ctx := context.Background()
	dev := func(user, name string) *device {
		_, domain, _ := strings.Cut(user, "@")
		return register(t, user, name, procs[strings.TrimSuffix(domain, ".test")].Client, codes[user+"/"+name])
	}
	alice, aliceLaptop := dev("alice@green.test", "phone"), dev("alice@green.test", "laptop")
	carol := dev("carol@green.test", "phone")
	bob, bobLaptop := dev("bob@blue.test", "phone"), dev("bob@blue.test", "laptop")
	dave := dev("dave@blue.test", "phone")
	everyone := []*device{alice, aliceLaptop, carol, bob, bobLaptop, dave}
	laptop := map[*device]*device{alice: aliceLaptop, bob: bobLaptop}

	members := chatsim.Members{}
	room := func(host *device, invitees ...*device) client.RoomID {
		t.Helper()
		id, err := host.Client().CreateRoom(ctx)
		if err != nil {
			t.Fatalf("%s creates a room: %v", host.Name, err)
		}
		// A new room holds every device of its maker's user already.
		for _, d := range invitees {
			if err := host.Client().Invite(ctx, id, d.Address(host.Device)); err != nil {
				t.Fatalf("%s invites %s: %v", host.Name, d.Name, err)
			}
		}
		epoch, err := host.Client().Epoch(id)
		if err != nil {
			t.Fatal(err)
		}
		// Each user's devices: the host's other one too.
		for _, d := range append([]*device{host}, invitees...) {
			members[id] = append(members[id], d.Device)
			if l := laptop[d]; l != nil {
				members[id] = append(members[id], l.Device)
			}
		}
		for _, d := range members[id] {
			d.Joined(t, id, epoch)
		}
		return id
	}
	aliceBob := room(alice, bob)
	carolDave := room(carol, dave)
	group := room(alice, carol, bob, dave)
	blueGroup := room(bob, dave, alice, carol)
	t.Logf("rooms ready after %v", time.Since(began).Round(time.Millisecond))

	// The load, until the crashes are over.
	sends := &chatsim.SendLog{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var senders sync.WaitGroup
	t.Cleanup(func() { stopLoad(); senders.Wait() })
	for d, rooms := range map[*device][]client.RoomID{
		alice: {aliceBob, group, blueGroup}, bob: {aliceBob, group, blueGroup},
		carol: {carolDave, group, blueGroup}, dave: {carolDave, group, blueGroup},
		aliceLaptop: {aliceBob, group}, bobLaptop: {group, blueGroup},
	} {
		senders.Go(func() {
			if err := d.sendLoop(loadCtx, rooms, sends); err != nil {
				t.Error(err)
			}
		})
	}
	loadBegan := time.Now()

	// The crashes: green, then blue, then both at once (a power cut), and
	// again; each at a random moment.
	var downFor time.Duration
	for k := range kills {
		names := [][]string{{"green"}, {"blue"}, {"green", "blue"}}[k%3]
		// A device, chosen at random, has its app closed from before
		// the crash until after the restart.
		away := everyone[rand.N(len(everyone))]
		away.away.Store(true)
		time.Sleep(minUp + rand.N(killWindow))
		at, before := time.Since(loadBegan), sends.Acked()
		for _, name := range names {
			procs[name].Kill()
		}
		killed := time.Now()
		time.Sleep(rand.N(maxDown))
		for _, name := range names {
			procs[name] = proctest.Serve(t, bin, dir, name, "--config", configs[name])
		}
		down := time.Since(killed)
		downFor += down
		time.Sleep(rand.N(minUp))
		away.away.Store(false)
		t.Logf("crash %d: %s killed %v into the load at %d acknowledged messages; serving again %v later; %s's app closed meanwhile",
			k+1, strings.Join(names, " and "), at.Round(time.Millisecond), before, down.Round(time.Millisecond), away.Name)
	}
	// A last stretch of load with both up.
	time.Sleep(time.Second)
	stopLoad()
	senders.Wait()
	loadTook := time.Since(loadBegan)

	sims := make([]*chatsim.Device, len(everyone))
	for i, d := range everyone {
		sims[i] = d.Device
	}
	r := chatsim.Verify(t, chatsim.VerifyOptions{Devices: sims, Members: members, Sends: sends.All(), DrainBound: drainBound})
	t.Logf("drained %v after the load ended", r.Drained.Round(time.Millisecond))
	shown := 0
	for _, s := range sends.All() {
		if s.Err != nil && shown < 5 {
			t.Logf("for example, %s's %q in room %s failed: %v", s.From.Name, s.Text, s.Room, s.Err)
			shown++
		}
	}
	disconnects, closed := 0, 0
	for _, d := range everyone {
		disconnects += d.Log.Count("stream disconnected")
		closed += int(d.awayTimes.Load())
	}
	all := sends.All()
	t.Logf("%d crashes (providers down %v in all); %d messages sent (%d acknowledged, %d failed with their outcome unknown, %d of them stored all the same) in %v; %d deliveries checked; %d stream reconnections; %d apps closed across a crash; %v in all",
		kills, downFor.Round(time.Millisecond), len(all), sends.Acked(), len(all)-sends.Acked(), r.StoredUnacked, loadTook.Round(time.Millisecond), r.Checked, disconnects, closed, time.Since(began).Round(time.Millisecond))
}
