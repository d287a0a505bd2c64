package partition_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/chatsim"
	"github.com/switchboard-chat/switchboard/test/faultproxy"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

const (
	defaultRounds = 1
	// baselineFor is the load before the first fault; faultFor how long
	// each fault lasts, healFor the load after each heal.
	baselineFor     = 1500 * time.Millisecond
	defaultFaultFor = 2500 * time.Millisecond
	healFor         = 1500 * time.Millisecond
	// sendPause is each sender's pause after an answer: a steady load
	// that leaves the two cores to the providers.
	sendPause = 20 * time.Millisecond
	// sendBound is the longest a device waits for one Send (its SDK
	// retries within it).
	sendBound = 20 * time.Second
	// drainBound is how long the devices get, after the load, to receive
	// every acknowledged message, with no help from the test.
	drainBound = 60 * time.Second
	// minHealthy is how many green–red messages must be delivered during
	// each fault between green and blue: the healthy partner is not
	// stalled by the broken one. A liveness floor, not a speed.
	minHealthy = 3
)

// phase is one fault, put on both proxies (green to blue's, blue to
// green's) for faultFor, then healed.
type phase struct {
	name  string
	dir   faultproxy.Direction
	fault func() faultproxy.Fault
}

var phases = []phase{
	{"delay both ways", faultproxy.Both, func() faultproxy.Fault {
		return faultproxy.Fault{Mode: faultproxy.Delay, Delay: 200 * time.Millisecond}
	}},
	{"delay answers only", faultproxy.Down, func() faultproxy.Fault {
		return faultproxy.Fault{Mode: faultproxy.Delay, Delay: 400 * time.Millisecond}
	}},
	{"drop", faultproxy.Both, func() faultproxy.Fault { return faultproxy.Fault{Mode: faultproxy.Drop} }},
	// Counted from the fault on (and from each new connection's start):
	// some resets land in a TLS handshake, most in a request.
	{"reset mid-request", faultproxy.Up, func() faultproxy.Fault {
		return faultproxy.Fault{Mode: faultproxy.Reset, Bytes: 200 + rand.Int64N(4000)}
	}},
	{"truncate answers", faultproxy.Down, func() faultproxy.Fault {
		return faultproxy.Fault{Mode: faultproxy.Truncate, Bytes: 100 + rand.Int64N(3000)}
	}},
	{"blackhole both ways", faultproxy.Both, func() faultproxy.Fault { return faultproxy.Fault{Mode: faultproxy.Blackhole} }},
	// Requests reach the partner, its answers are lost: what was applied
	// must not be applied twice when it is sent again.
	{"blackhole answers only", faultproxy.Down, func() faultproxy.Fault { return faultproxy.Fault{Mode: faultproxy.Blackhole} }},
}

// window is a stretch of the run, for the healthy partner's figures.
type window struct {
	name       string
	fault      bool
	start, end time.Time
}

// TestPartitionsAndSlowPartners: three providers, green.test, blue.test
// and red.test, as `switchboard serve` processes. Green hosts the rooms:
// Alice (green, phone and laptop) and Bob (blue, phone and laptop) in a
// 1:1; Carol (green) and Rita (red) in a 1:1; Alice, Bob and Rita in a
// group. Blue and green reach each other only through fault proxies, both
// ways; red reaches green directly. Everyone sends steadily while the
// link between green and blue is delayed, cut, reset, truncated and
// blackholed, both ways and one way, and healed after each fault.
// Afterwards every acknowledged message reached every other device of its
// room exactly once, at its seq, in the same order everywhere, with no
// decryption failure and no step by the test to bring blue back; and
// Carol and Rita kept talking during every fault.
func TestPartitionsAndSlowPartners(t *testing.T) {
	rounds := defaultRounds
	if v := os.Getenv("SWITCHBOARD_PARTITION_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SWITCHBOARD_PARTITION_ROUNDS=%q: want a count of rounds", v)
		}
		rounds = n
	}
	faultFor := defaultFaultFor
	if v := os.Getenv("SWITCHBOARD_PARTITION_FAULT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("SWITCHBOARD_PARTITION_FAULT=%q: want how long each fault lasts, such as 10s", v)
		}
		faultFor = d
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
	// data directory and CA, which the others' trust files name.
	codes := map[string]string{}
	for _, u := range []string{"alice@green.test", "carol@green.test", "bob@blue.test", "rita@red.test"} {
		handle, domain, _ := strings.Cut(u, "@")
		store := []string{"--data", path(strings.TrimSuffix(domain, ".test")), "--domain", domain}
		codes[u+"/phone"] = proctest.AddUser(t, bin, handle, store...)
		if handle == "alice" || handle == "bob" {
			codes[u+"/laptop"] = proctest.EnrollDevice(t, bin, handle, store...)
		}
	}
	providers := []string{"green", "blue", "red"}
	ports := map[string]string{}
	for _, name := range providers {
		ports[name], ports[name+"-fed"] = proctest.FreeAddr(t), proctest.FreeAddr(t)
	}
	// toGreen carries blue's requests to green, toBlue green's to blue.
	toGreen, err := faultproxy.New(ports["green-fed"])
	if err != nil {
		t.Fatal(err)
	}
	toBlue, err := faultproxy.New(ports["blue-fed"])
	if err != nil {
		t.Fatal(err)
	}
	proxies := []*faultproxy.Proxy{toGreen, toBlue}
	t.Cleanup(func() { toGreen.Close(); toBlue.Close() })
	endpoint := func(from, to string) string {
		switch {
		case from == "blue" && to == "green":
			return "https://" + toGreen.Addr()
		case from == "green" && to == "blue":
			return "https://" + toBlue.Addr()
		}
		return "https://" + ports[to+"-fed"]
	}
	config := func(self string) string {
		var partners []map[string]string
		for _, other := range providers {
			if other == self {
				continue
			}
			ca, err := os.ReadFile(filepath.Join(path(other), "ca.pem"))
			if err != nil {
				t.Fatal(err)
			}
			partners = append(partners, map[string]string{
				"domain": other + ".test", "endpoint": endpoint(self, other), "ca_pem": string(ca)})
		}
		trust := writeJSON(self+"-trust.json", map[string]any{"partners": partners})
		off := map[string]bool{"off": true}
		return writeJSON(self+".json", map[string]any{
			"domain": self + ".test", "data_dir": path(self),
			"listen": ports[self], "federation_listen": ports[self+"-fed"], "trust_file": trust,
			// The test is about the network, not about the rate limits.
			"rate_limits": map[string]any{"user": off, "room": off, "partner": off},
		})
	}
	procs := map[string]*proctest.Proc{}
	for _, name := range providers {
		procs[name] = proctest.Serve(t, bin, dir, name, "--config", config(name))
	}
	t.Logf("green, blue and red serving after %v", time.Since(began).Round(time.Millisecond))

	ctx := context.Background()
	dev := func(user, name string) *device {
		_, domain, _ := strings.Cut(user, "@")
		return register(t, user, name, procs[strings.TrimSuffix(domain, ".test")].Client, codes[user+"/"+name])
	}
	alice, aliceLaptop := dev("alice@green.test", "phone"), dev("alice@green.test", "laptop")
	carol := dev("carol@green.test", "phone")
	bob, bobLaptop := dev("bob@blue.test", "phone"), dev("bob@blue.test", "laptop")
	rita := dev("rita@red.test", "phone")
	everyone := []*device{alice, aliceLaptop, carol, bob, bobLaptop, rita}
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
			if err := host.Client().Invite(ctx, id, d.Address(host)); err != nil {
				t.Fatalf("%s invites %s: %v", host.Name, d.Name, err)
			}
		}
		epoch, err := host.Client().Epoch(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range append([]*device{host}, invitees...) {
			members[id] = append(members[id], d)
			if l := laptop[d]; l != nil {
				members[id] = append(members[id], l)
			}
		}
		for _, d := range members[id] {
			d.Joined(t, id, epoch)
		}
		return id
	}
	aliceBob := room(alice, bob)
	carolRita := room(carol, rita)
	group := room(alice, bob, rita)
	t.Logf("rooms ready after %v", time.Since(began).Round(time.Millisecond))

	// The load, until the last heal.
	sends := &chatsim.SendLog{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var senders sync.WaitGroup
	t.Cleanup(func() { stopLoad(); senders.Wait() })
	for d, rooms := range map[*device][]client.RoomID{
		alice: {aliceBob, group}, aliceLaptop: {group}, carol: {carolRita},
		bob: {aliceBob, group}, bobLaptop: {aliceBob}, rita: {carolRita, group, carolRita},
	} {
		senders.Go(func() { sendLoop(loadCtx, d, rooms, sends) })
	}
	loadBegan := time.Now()
	windows := []window{{name: "no fault", start: loadBegan}}
	mark := func(name string, fault bool) {
		now := time.Now()
		windows[len(windows)-1].end = now
		windows = append(windows, window{name: name, fault: fault, start: now})
	}
	time.Sleep(baselineFor)
	faults := 0
	for r := range rounds {
		for _, ph := range phases {
			f := ph.fault()
			for _, p := range proxies {
				p.Set(ph.dir, f)
			}
			faults++
			mark(ph.name, true)
			at := sends.Acked()
			time.Sleep(faultFor)
			for _, p := range proxies {
				p.Heal()
			}
			mark("after "+ph.name, false)
			t.Logf("round %d: %s (%v, %v) for %v from %d acknowledged messages; healed at %s", r+1, ph.name, ph.dir, f, faultFor, at, time.Now().UTC().Format("15:04:05.000"))
			time.Sleep(healFor)
		}
	}
	stopLoad()
	senders.Wait()
	windows[len(windows)-1].end = time.Now()
	loadTook := time.Since(loadBegan)

	all := sends.All()
	r := chatsim.Verify(t, chatsim.VerifyOptions{Devices: everyone, Members: members, Sends: all, DrainBound: drainBound})
	failed, stopped := map[string]int{}, 0
	for _, s := range all {
		switch {
		case s.Stopped:
			stopped++
		case s.Err != nil:
			failed[s.From.Name]++
		}
	}
	t.Logf("%d rounds, %d faults; %d messages sent (%d acknowledged, %d failed with their outcome unknown, %d of them stored all the same) in %v; %d deliveries checked; all delivered %v after the load; %v in all",
		rounds, faults, len(all), sends.Acked(), len(all)-sends.Acked(), r.StoredUnacked, loadTook.Round(time.Millisecond), r.Checked, r.Drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	t.Logf("failed sends by device, besides the %d cut off when the load stopped: %v", stopped, failed)
	for i, p := range proxies {
		s := p.Stats()
		t.Logf("proxy %s: %d connections, %d dropped, %d reset, %d truncated, %d closed at heal; bytes forwarded %d up %d down, discarded %d up %d down",
			[]string{"blue to green", "green to blue"}[i], s.Accepted, s.Dropped, s.Resets, s.Truncated, s.Healed,
			s.Forwarded[0], s.Forwarded[1], s.Discarded[0], s.Discarded[1])
	}
	healthy(t, windows, sends, carolRita, carol, rita)
	caughtUp(t, windows, sends, members, bob, bobLaptop)
}

// caughtUp reports, after each heal, how long blue's devices took to
// receive the messages acknowledged before it: how soon a partner that
// comes back catches up by itself.
func caughtUp(t *testing.T, windows []window, log *chatsim.SendLog, members chatsim.Members, devices ...*device) {
	t.Helper()
	at := map[*device]map[key]time.Time{}
	for _, d := range devices {
		at[d] = map[key]time.Time{}
		for _, m := range d.Deliveries() {
			at[d][key{m.Room, string(m.Body)}] = m.At
		}
	}
	sends := log.All()
	var names []string
	lasts := map[string][]time.Duration{}
	count := map[string]int{}
	for _, w := range windows {
		if w.fault || w.name == "no fault" {
			continue
		}
		heal, waiting, last := w.start, 0, time.Duration(0)
		for _, s := range sends {
			if s.Err != nil || !s.Ended.Before(heal) {
				continue
			}
			for _, d := range devices {
				if d == s.From || !slices.Contains(members[s.Room], d) {
					continue
				}
				if got, ok := at[d][key{s.Room, s.Text}]; ok && got.After(heal) {
					waiting++
					last = max(last, got.Sub(heal))
				}
			}
		}
		if _, ok := lasts[w.name]; !ok {
			names = append(names, w.name)
		}
		lasts[w.name] = append(lasts[w.name], last)
		count[w.name] += waiting
	}
	var b strings.Builder
	fmt.Fprintf(&b, "blue catching up after each heal: deliveries of messages acknowledged before the heal and received after it, and when the last came (median and worst over the rounds):\n")
	for _, name := range names {
		l := lasts[name]
		slices.Sort(l)
		fmt.Fprintf(&b, "  %-32s %6d deliveries, the last %v (median), %v (worst) after the heal\n", name, count[name], pct(l, 50), l[len(l)-1].Round(time.Millisecond))
	}
	t.Log(b.String())
}

// healthy reports, for each window of the run, the latency of the
// green–red messages delivered in it (from the sender's Send to the
// receiver's event), and fails if a fault window delivered fewer than
// minHealthy of them: traffic to a healthy partner must go on.
func healthy(t *testing.T, windows []window, log *chatsim.SendLog, room client.RoomID, devices ...*device) {
	t.Helper()
	began := map[key]time.Time{}
	for _, s := range log.All() {
		if s.Room == room {
			began[key{s.Room, s.Text}] = s.Began
		}
	}
	lat := make([][]time.Duration, len(windows))
	for _, d := range devices {
		for _, m := range d.Deliveries() {
			if m.Room != room {
				continue
			}
			b, ok := began[key{m.Room, string(m.Body)}]
			if !ok {
				continue
			}
			for i, w := range windows {
				if !m.At.Before(w.start) && m.At.Before(w.end) {
					lat[i] = append(lat[i], m.At.Sub(b))
					break
				}
			}
		}
	}
	// Each kind of window over every round: the figures; each window on
	// its own: the liveness check.
	var names []string
	byName := map[string][]time.Duration{}
	for i, w := range windows {
		if _, ok := byName[w.name]; !ok {
			names = append(names, w.name)
		}
		byName[w.name] = append(byName[w.name], lat[i]...)
		if w.fault && len(lat[i]) < minHealthy {
			t.Errorf("during %q (%v) only %d green–red messages were delivered: the healthy partner stalled", w.name, w.end.Sub(w.start).Round(time.Millisecond), len(lat[i]))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "green–red deliveries by window, over every round (latency from Send to the receiver's event):\n")
	fmt.Fprintf(&b, "  %-32s %6s %9s %9s %9s\n", "window", "count", "p50", "p99", "max")
	for _, name := range names {
		l := byName[name]
		slices.Sort(l)
		if len(l) == 0 {
			fmt.Fprintf(&b, "  %-32s %6d\n", name, 0)
			continue
		}
		fmt.Fprintf(&b, "  %-32s %6d %9v %9v %9v\n", name, len(l), pct(l, 50), pct(l, 99), l[len(l)-1].Round(time.Millisecond))
	}
	t.Log(b.String())
}

// pct is the p-th percentile of sorted l.
func pct(l []time.Duration, p int) time.Duration {
	i := (len(l)*p+99)/100 - 1
	return l[max(0, min(i, len(l)-1))].Round(time.Millisecond)
}
