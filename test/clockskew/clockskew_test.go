package clockskew_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/clock"
	"github.com/switchboard-chat/switchboard/content"
	"github.com/switchboard-chat/switchboard/provider"
	"github.com/switchboard-chat/switchboard/test/chatsim"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// defaultSkew is N: green's clock runs N ahead of the real one, blue's N
// behind, so the two providers disagree by 2N. SWITCHBOARD_CLOCKSKEW_N
// sets another (a Go duration).
const defaultSkew = 7 * time.Minute

// perSender is how many messages each device sends to each of its rooms.
const perSender = 15

// TestProvidersAndDevicesWithSkewedClocks: green.test's clock is N ahead,
// blue.test's N behind; Alice (phone and laptop) and Carol are on green,
// Bob (phone and laptop) and Dave on blue, and their devices' clocks are
// each off in their own way: some agree with their provider, some are
// ahead of or behind it by N, so a KeyPackage or a credential can be made
// 3N ahead of the clock that checks it. They find each other through
// discovery, make rooms hosted on either provider and add members across
// them, send to every room at once, share an attachment, sign in, and run
// into rate limits. Nothing is refused because of the clocks: every
// message is delivered once and in the hub's order to every other device,
// a session lives as long as its provider says, and a rate limit bites and
// lets go again.
func TestProvidersAndDevicesWithSkewedClocks(t *testing.T) {
	n := defaultSkew
	if v := os.Getenv("SWITCHBOARD_CLOCKSKEW_N"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			t.Fatalf("SWITCHBOARD_CLOCKSKEW_N=%q: want a duration such as 10m", v)
		}
		n = d
	}
	began := time.Now()
	bin := proctest.BuildBinary(t)
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
	providerSkew := map[string]time.Duration{"green": n, "blue": -n}

	// A mistyped skew is refused, not taken for none.
	mistyped := exec.Command(bin, "admin", "user", "add", "zoe", "--data", path("nowhere"), "--domain", "nowhere.test")
	mistyped.Env = append(os.Environ(), clock.EnvSkew+"=7")
	if out, err := mistyped.CombinedOutput(); err == nil || !strings.Contains(string(out), "not a duration") {
		t.Fatalf("with %s=7 (no unit), switchboard admin said %q (%v); want a refusal", clock.EnvSkew, out, err)
	}
	if _, err := os.Stat(path("nowhere")); err == nil {
		t.Errorf("with a mistyped %s, switchboard admin still made a data directory", clock.EnvSkew)
	}

	// Each provider's admin commands and server run with its clock: the
	// CA, made by the first admin command, is dated by it too. The
	// variable is read by the child processes only (this process's clock
	// was fixed when it started).
	codes := map[string]string{}
	users := map[string][]string{"green": {"alice", "carol", "erin"}, "blue": {"bob", "dave", "frank"}}
	for _, p := range []string{"green", "blue"} {
		t.Setenv(clock.EnvSkew, providerSkew[p].String())
		store := []string{"--data", path(p), "--domain", p + ".test"}
		for _, u := range users[p] {
			codes[u+"/phone"] = proctest.AddUser(t, bin, u, store...)
			if u == "alice" || u == "bob" {
				codes[u+"/laptop"] = proctest.EnrollDevice(t, bin, u, store...)
			}
		}
	}
	ports := map[string]string{}
	for _, name := range []string{"green", "green-fed", "blue", "blue-fed"} {
		ports[name] = proctest.FreeAddr(t)
	}
	config := func(self, partner string) string {
		ca, err := os.ReadFile(filepath.Join(path(partner), "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		trust := writeJSON(self+"-trust.json", map[string]any{"partners": []map[string]string{
			{"domain": partner + ".test", "endpoint": "https://" + ports[partner+"-fed"], "ca_pem": string(ca)}}})
		// Discovery limits small enough to run into: three at once, then
		// one every five seconds.
		small := map[string]int{"every_ms": 5000, "burst": 3}
		return writeJSON(self+".json", map[string]any{
			"domain": self + ".test", "data_dir": path(self),
			"listen": ports[self], "federation_listen": ports[self+"-fed"], "trust_file": trust,
			"rate_limits": map[string]any{"discovery_user": small, "discovery_partner": small},
		})
	}
	procs := map[string]*proctest.Proc{}
	for _, p := range []string{"green", "blue"} {
		cfg := config(p, map[string]string{"green": "blue", "blue": "green"}[p])
		t.Setenv(clock.EnvSkew, providerSkew[p].String())
		procs[p] = proctest.Serve(t, bin, dir, p, "--config", cfg)
	}
	t.Logf("green.test serving with its clock %v off, blue.test %v off, after %v", providerSkew["green"], providerSkew["blue"], time.Since(began).Round(time.Millisecond))

	ctx := context.Background()
	dev := func(user, name string, skew time.Duration) *device {
		handle, domain, _ := strings.Cut(user, "@")
		return register(t, user, name, procs[strings.TrimSuffix(domain, ".test")].Client, codes[handle+"/"+name], skew)
	}
	// Device clocks, against the real one: Alice's phone is right (N
	// behind green), her laptop 2N ahead (N ahead of green, 3N ahead of
	// blue), Carol's phone agrees with green; Bob's phone is N ahead (2N
	// ahead of blue), his laptop 2N behind (N behind blue, 3N behind
	// green), Dave's phone agrees with blue.
	alice, aliceLaptop := dev("alice@green.test", "phone", 0), dev("alice@green.test", "laptop", 2*n)
	carol := dev("carol@green.test", "phone", n)
	bob, bobLaptop := dev("bob@blue.test", "phone", n), dev("bob@blue.test", "laptop", -2*n)
	dave := dev("dave@blue.test", "phone", -n)
	everyone := []*device{alice, aliceLaptop, carol, bob, bobLaptop, dave}
	other := map[*device]*device{alice: aliceLaptop, aliceLaptop: alice, bob: bobLaptop, bobLaptop: bob}
	t.Logf("six devices registered after %v", time.Since(began).Round(time.Millisecond))

	// Discovery across the providers: a request stamped by green's clock
	// is checked by blue's, 2N apart, and the other way round.
	for _, c := range []struct {
		who   *device
		query string
		want  string
	}{
		{alice, "bob", "bob@blue.test"},
		{bobLaptop, "carol@green.test", "carol@green.test"},
		{dave, "dave", "dave"},
	} {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		found, err := c.who.Client().Lookup(lctx, c.query)
		cancel()
		if err != nil {
			t.Fatalf("%s looks up %q: %v", c.who.Name, c.query, err)
		}
		if !slices.ContainsFunc(found, func(s string) bool { return s == c.want || s == c.want+"@"+domainOf(c.who) }) {
			t.Fatalf("%s looked up %q and found %v, not %s", c.who.Name, c.query, found, c.want)
		}
	}

	// Rooms on both hubs, each with members of both providers: adding
	// them claims KeyPackages made by clocks up to 3N ahead of the
	// provider and devices that check them.
	members := chatsim.Members{}
	room := func(host *device, invitees ...*device) client.RoomID {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		id, err := host.Client().CreateRoom(rctx)
		if err != nil {
			t.Fatalf("%s creates a room: %v", host.Name, err)
		}
		// A new room holds every device of its maker's user already.
		var addrs []string
		for _, d := range invitees {
			addrs = append(addrs, d.Address(host))
		}
		for _, a := range addrs {
			if err := host.Client().Invite(rctx, id, a); err != nil {
				t.Fatalf("%s invites %s to room %s: %v", host.Name, a, id, err)
			}
		}
		epoch, err := host.Client().Epoch(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range append([]*device{host}, invitees...) {
			members[id] = append(members[id], d)
			if o := other[d]; o != nil {
				members[id] = append(members[id], o)
			}
		}
		for _, d := range members[id] {
			waitFor(t, 30*time.Second, fmt.Sprintf("%s to join room %s at epoch %d", d.Name, id, epoch), func() bool {
				e, err := d.Client().Epoch(id)
				return err == nil && e == epoch
			})
		}
		return id
	}
	aliceBob := room(aliceLaptop, bobLaptop)
	greenGroup := room(carol, alice, bob, dave)
	blueGroup := room(bobLaptop, dave, alice, carol)
	daveCarol := room(dave, carol)
	rooms := []client.RoomID{aliceBob, greenGroup, blueGroup, daveCarol}
	t.Logf("four rooms made after %v", time.Since(began).Round(time.Millisecond))

	// Everyone sends to each of their rooms at once, perSender each.
	sends := &chatsim.SendLog{}
	var senders sync.WaitGroup
	for _, d := range everyone {
		var mine []client.RoomID
		for _, r := range rooms {
			if slices.Contains(members[r], d) {
				mine = append(mine, r)
			}
		}
		senders.Go(func() {
			for i := range perSender {
				for _, r := range mine {
					s := chatsim.Send(ctx, d, r, fmt.Sprintf("%s #%d in %s", d.Name, i, r), 60*time.Second)
					if s.Err != nil {
						t.Errorf("%s sends %q: %v", d.Name, s.Text, s.Err)
						continue
					}
					sends.Add(s)
				}
			}
		})
	}
	senders.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Every device gets every message of its rooms sent by another, once,
	// at the seq its sender was told, in seq order, and reads them all.
	sent := len(sends.All())
	checked := chatsim.Verify(t, chatsim.VerifyOptions{Devices: everyone, Members: members, Sends: sends.All(), DrainBound: 60 * time.Second}).Checked
	t.Logf("%d messages sent, %d deliveries checked: each once, in the hub's order, after %v", sent, checked, time.Since(began).Round(time.Millisecond))

	// A message is dated by the reader's own provider, which stored it
	// for the device, whatever the hub's, sender's or reader's clock
	// says: Alice reads blue's room by green's clock, Dave by blue's.
	for _, c := range []struct {
		d    *device
		skew time.Duration
	}{{alice, n}, {dave, -n}} {
		for _, m := range c.d.Received() {
			if m.Room != blueGroup {
				continue
			}
			if off := time.Until(m.Time); off > c.skew+time.Minute || off < c.skew-5*time.Minute {
				t.Errorf("a message of blue's room read by %s is dated %v, %v from the real time; its provider's clock is %v off", c.d.Name, m.Time, off, c.skew)
			}
			break
		}
	}

	// Bob sends a MIMI text message, which is franked, to the room blue
	// hosts, and Alice (on green, her phone's clock N behind green's)
	// reports it: green checks blue's frank, which carries blue's
	// acceptance time, and passes the report on.
	abusive, err := content.Text("a message to report").WithSender(bob.Client().UserURI()).WithRoom(bob.Client().RoomURI(blueGroup)).Encode()
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = bob.Client().Send(sctx, blueGroup, abusive)
	cancel()
	if err != nil {
		t.Fatalf("Bob sends a MIMI text message: %v", err)
	}
	var reported *client.Message
	waitFor(t, 30*time.Second, "Alice to receive Bob's MIMI message", func() bool {
		for _, m := range alice.Received() {
			if bytes.Equal(m.Body, abusive) {
				reported = m
				return true
			}
		}
		return false
	})
	if reported.Frank == nil {
		t.Fatal("Bob's MIMI message reached Alice without a frank")
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	reportID, err := alice.Client().Report(rctx, blueGroup, client.AbuseReport{AllegedAbuser: "bob@blue.test", Note: "clock skew test",
		Messages: []client.ReportedMessage{{Content: reported.Body, Frank: *reported.Frank}}})
	cancel()
	if err != nil {
		t.Fatalf("Alice reports a message of Bob's: %v", err)
	}
	t.Logf("Alice reported a message of Bob's in blue's room (report %d)", reportID)

	attachments(t, ctx, bob, aliceLaptop, providerSkew["blue"])
	sessions(t, procs, codes, providerSkew)
	rateLimits(t, ctx, carol, dave)

	// Nothing was refused for its time on the way: no replay refusal, no
	// certificate out of its validity.
	for _, p := range []string{"green", "blue"} {
		for _, s := range []string{"replay", "valid only from", "not valid until", "does not contain now"} {
			if c := proctest.LogCount(dir, p, s); c > 0 {
				t.Errorf("%s's log says %q %d times", p, s, c)
			}
		}
	}
	for _, d := range everyone {
		for _, s := range []string{"does not contain now", "not valid until", "expired"} {
			if l := d.Log.Lines(s); len(l) > 0 {
				t.Errorf("%s's log: %s", d.Name, l[0])
			}
		}
	}

	// Hours are beyond what is tolerated: blue restarts with its clock
	// two hours behind. Green's TLS certificate, dated an hour back by
	// green's clock, is not yet valid by blue's, and blue's federation
	// listener refuses it, which is also how this test knows that the TLS
	// check reads the skewed clock. Alice is told the partner did not
	// answer, and blue's log says why. (Alice asks: Carol has spent her
	// lookups above.)
	procs["blue"].Stop()
	t.Setenv(clock.EnvSkew, (-2 * time.Hour).String())
	procs["blue"] = proctest.Serve(t, bin, dir, "blue", "--config", path("blue.json"))
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = alice.Client().Lookup(lctx, "dave@blue.test")
	cancel()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "partner_unreachable" {
		t.Errorf("with blue's clock 2 hours behind, Alice's lookup at blue gave %v, want partner_unreachable", err)
	}
	if c := proctest.LogCount(dir, "blue", "the certificate of green.test is valid only from"); c == 0 {
		t.Errorf("with its clock 2 hours behind, blue's log does not say that green's certificate is not yet valid")
	}
	t.Logf("with blue 2 hours behind: %v", err)
	t.Logf("N = %v; %v in all", n, time.Since(began).Round(time.Millisecond))
}

// attachments: from uploads a file to its provider, to downloads it
// through its own (the partner fetches it over federation), and the
// file's expiry is dated by the uploader's provider's clock.
func attachments(t *testing.T, ctx context.Context, from, to *device, uploaderSkew time.Duration) {
	t.Helper()
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	file := bytes.Repeat([]byte("a photo of the whiteboard "), 2000)
	a, err := from.Client().Upload(actx, bytes.NewReader(file), "image/png", "board.png")
	if err != nil {
		t.Fatalf("%s uploads a file: %v", from.Name, err)
	}
	got, err := to.Client().Download(actx, a)
	if err != nil {
		t.Fatalf("%s downloads %s's file: %v", to.Name, from.Name, err)
	}
	if !bytes.Equal(got, file) {
		t.Fatalf("%s downloaded %d bytes that are not the %d %s uploaded", to.Name, len(got), len(file), from.Name)
	}
	// Kept 30 days (the default retention) by the uploader's provider's
	// clock.
	want := time.Now().Add(uploaderSkew + 30*24*time.Hour)
	if off := a.Expires.Sub(want); off > time.Minute || off < -5*time.Minute {
		t.Errorf("the file expires at %v, %v from 30 days on the uploader's provider's clock", a.Expires, off)
	}
	t.Logf("%s downloaded %s's %d-byte file through the partner; it expires %v", to.Name, from.Name, len(file), a.Expires.UTC().Format(time.RFC3339))
}

// sessions: a device of a user on each provider signs in, by the API as
// docs/api.md gives it, and is given a session of 30 days by its
// provider's clock (neither cut short nor lengthened by the skew), which
// works at once.
func sessions(t *testing.T, procs map[string]*proctest.Proc, codes map[string]string, skew map[string]time.Duration) {
	t.Helper()
	for p, user := range map[string]string{"green": "erin", "blue": "frank"} {
		base := procs[p].Client
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		if code, err := post(base, "/v1/devices", "", map[string]any{"enrollment_code": codes[user+"/phone"], "device_name": "tablet", "auth_key": []byte(pub)}, nil); err != nil {
			t.Fatalf("%s registers on %s: %v (%d)", user, p, err, code)
		}
		var ch struct {
			Challenge []byte    `json:"challenge"`
			Expires   time.Time `json:"expires"`
		}
		if _, err := post(base, "/v1/auth/challenge", "", map[string]any{"auth_key": []byte(pub)}, &ch); err != nil {
			t.Fatalf("%s asks %s for a challenge: %v", user, p, err)
		}
		var sess struct {
			Token   string    `json:"token"`
			Expires time.Time `json:"expires"`
		}
		signed := time.Now()
		sig := ed25519.Sign(priv, provider.SignInMessage(p+".test", ch.Challenge))
		if _, err := post(base, "/v1/auth/session", "", map[string]any{"auth_key": []byte(pub), "challenge": ch.Challenge, "signature": sig}, &sess); err != nil {
			t.Fatalf("%s signs in on %s: %v", user, p, err)
		}
		// 30 days from the moment of sign-in on the provider's clock.
		want := signed.Add(skew[p] + 30*24*time.Hour)
		if off := sess.Expires.Sub(want); off < -time.Minute || off > 5*time.Minute {
			t.Errorf("%s's session on %s expires at %v, %v from 30 days on %s's clock", user, p, sess.Expires, off, p)
		}
		if code, err := get(base, "/v1/me", sess.Token); err != nil {
			t.Errorf("%s's fresh session on %s is refused: %v (%d)", user, p, err, code)
		}
		t.Logf("%s signed in on %s: session until %v (provider's clock %v off)", user, p, sess.Expires.UTC().Format(time.RFC3339), skew[p])
	}
}

// rateLimits: Carol, on green, looks up Dave at blue until a limit stops
// her (her own discovery limit at green, or green's at blue), waits as
// long as she is told, and is let through again; Dave does the same on
// his own provider. The providers' clocks are 2N apart.
func rateLimits(t *testing.T, ctx context.Context, carol, dave *device) {
	t.Helper()
	for _, c := range []struct {
		who   *device
		query string
	}{{carol, "dave@blue.test"}, {dave, "dave"}} {
		var refused *client.APIError
		tries := 0
		for tries = 1; tries <= 50 && refused == nil; tries++ {
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := c.who.Client().Lookup(lctx, c.query)
			cancel()
			if err != nil && !errors.As(err, &refused) {
				t.Fatalf("%s looks up %q: %v", c.who.Name, c.query, err)
			}
		}
		if refused == nil {
			t.Fatalf("%s looked up %q 50 times and no limit stopped it", c.who.Name, c.query)
		}
		if !errors.Is(refused, client.ErrRateLimited) || refused.RetryAfter <= 0 || refused.RetryAfter > time.Minute {
			t.Fatalf("%s's lookup %d was refused with %v (Retry-After %v), not rate_limited with a short Retry-After", c.who.Name, tries, refused, refused.RetryAfter)
		}
		time.Sleep(refused.RetryAfter)
		var err error
		waitFor(t, 30*time.Second, fmt.Sprintf("%s's lookups to be let through again", c.who.Name), func() bool {
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err = c.who.Client().Lookup(lctx, c.query)
			cancel()
			return err == nil
		})
		t.Logf("%s was stopped at lookup %d (Retry-After %v: %v) and let through again after waiting", c.who.Name, tries-1, refused.RetryAfter, refused.Message)
	}
}

func post(base, route, token string, in, out any) (int, error) {
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, base+route, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return do(req, token, out)
}

func get(base, route, token string) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, base+route, nil)
	return do(req, token, nil)
}

func do(req *http.Request, token string, out any) (int, error) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, data)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(data, out)
	}
	return resp.StatusCode, nil
}

func domainOf(d *device) string {
	_, domain, _ := strings.Cut(d.User, "@")
	return domain
}

// waitFor polls cond until it holds, failing the test after bound.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", bound, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
