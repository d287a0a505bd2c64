package diskfull_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/switchboard-chat/switchboard/client"
	"github.com/switchboard-chat/switchboard/test/chatsim"
	"github.com/switchboard-chat/switchboard/test/proctest"
)

// diskSize is the small filesystem's size: the provider's store, with its
// WAL, fits in it with room to spare until the test fills the rest.
const diskSize = "8m"

// send sends text once (30 s at most) and records what d was told.
func send(ctx context.Context, log *chatsim.SendLog, d *device, room client.RoomID, text string) chatsim.Sent {
	s := chatsim.Send(ctx, d, room, text, 30*time.Second)
	log.Add(s)
	return s
}

// TestDiskFillsUpUnderChat: Alice (phone) and Bob (phone and laptop)
// chat on green.test, a `switchboard serve` process whose data directory
// is on a small filesystem. The filesystem fills up (a filler file) while
// they keep sending. Every send is then either acknowledged, and later
// delivered, or refused with storage_full (507, Retry-After) and never
// delivered; the provider keeps running and serving reads: the streams
// deliver what was stored, settings and attachments are read, an
// attachment upload is refused, and nothing half-written appears in the
// data directory. The filler is deleted: without a restart, sends work
// again, the refused ones sent again go through, Bob's laptop opens, and
// every acknowledged message reaches every other device once, in order,
// at the seq its sender was told. The provider is stopped, the database
// passes PRAGMA integrity_check, and after a restart on the same data
// everything is there and the chat goes on.
func TestDiskFillsUpUnderChat(t *testing.T) {
	disk := smallDisk(t, diskSize)
	began := time.Now()
	bin := proctest.BuildBinary(t)
	logs := t.TempDir()
	data := filepath.Join(disk, "green")
	storeArgs := []string{"--data", data, "--domain", "green.test"}
	aliceCode := proctest.AddUser(t, bin, "alice", storeArgs...)
	bobCode := proctest.AddUser(t, bin, "bob", storeArgs...)
	laptopCode := proctest.EnrollDevice(t, bin, "bob", storeArgs...)
	// Blue, green's partner, has room enough.
	blueData := filepath.Join(logs, "blue")
	daveCode := proctest.AddUser(t, bin, "dave", "--data", blueData, "--domain", "blue.test")
	fedAddr := map[string]string{"green": proctest.FreeAddr(t), "blue": proctest.FreeAddr(t)}
	config := func(name, dataDir, partner, partnerData string) string {
		ca, err := os.ReadFile(filepath.Join(partnerData, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		trust, _ := json.Marshal(map[string]any{"partners": []map[string]string{
			{"domain": partner + ".test", "endpoint": "https://" + fedAddr[partner], "ca_pem": string(ca)}}})
		trustFile := filepath.Join(logs, name+"-trust.json")
		off := map[string]bool{"off": true}
		cfg, _ := json.Marshal(map[string]any{
			"domain": name + ".test", "data_dir": dataDir, "listen": "127.0.0.1:0",
			"federation_listen": fedAddr[name], "trust_file": trustFile,
			// The test is about the disk, not the rate limits.
			"rate_limits": map[string]any{"user": off, "room": off, "partner": off},
		})
		cfgFile := filepath.Join(logs, name+".json")
		if err := errors.Join(os.WriteFile(trustFile, trust, 0o600), os.WriteFile(cfgFile, cfg, 0o600)); err != nil {
			t.Fatal(err)
		}
		return cfgFile
	}
	cfgFile := config("green", data, "blue", blueData)
	proc := proctest.Serve(t, bin, logs, "green", "--config", cfgFile)
	blue := proctest.Serve(t, bin, logs, "blue", "--config", config("blue", blueData, "green", data))

	ctx := context.Background()
	// Alice's phone has a small disk of its own, which fills up at the
	// end.
	alice := registerIn(t, smallDisk(t, "4m"), "alice/phone", proc.Client, aliceCode, "phone")
	bob := register(t, "bob/phone", proc.Client, bobCode, "phone")
	laptop := register(t, "bob/laptop", proc.Client, laptopCode, "laptop")
	dave := register(t, "dave/phone", blue.Client, daveCode, "phone")
	everyone := []*device{alice, bob, laptop, dave}
	for _, d := range []*device{alice, dave} {
		if err := d.Client().SetReachability(ctx, client.ReachAll, nil); err != nil {
			t.Fatal(err)
		}
	}
	room, err := alice.Client().CreateRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Client().Invite(ctx, room, "bob"); err != nil {
		t.Fatal(err)
	}
	epoch, err := alice.Client().Epoch(room)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{alice, bob, laptop} {
		d.Joined(t, room, epoch)
	}
	// Dave, on blue, has a room with Alice: blue hosts it, and green
	// follows it for Alice.
	daveRoom, err := dave.Client().CreateRoom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := dave.Client().Invite(ctx, daveRoom, "alice@green.test"); err != nil {
		t.Fatal(err)
	}
	daveEpoch, err := dave.Client().Epoch(daveRoom)
	if err != nil {
		t.Fatal(err)
	}
	alice.Joined(t, daveRoom, daveEpoch)
	members := map[client.RoomID][]*device{room: {alice, bob, laptop}, daveRoom: {alice, dave}}
	greenRoom := map[client.RoomID][]*device{room: members[room]}
	photo := make([]byte, 48<<10)
	crand.Read(photo)
	att, err := alice.Client().Upload(ctx, bytes.NewReader(photo), "image/jpeg", "photo.jpg")
	if err != nil {
		t.Fatalf("uploading a photo: %v", err)
	}

	// Chat while there is room: every send is stored.
	sends := &chatsim.SendLog{}
	for i := range 6 {
		for _, d := range []*device{alice, bob} {
			if s := send(ctx, sends, d, room, fmt.Sprintf("%s %d", d.Name, i)); s.Err != nil {
				t.Fatalf("%s sends %q before the disk is full: %v", d.Name, s.Text, s.Err)
			}
		}
		if s := send(ctx, sends, dave, daveRoom, fmt.Sprintf("%s %d", dave.Name, i)); s.Err != nil {
			t.Fatalf("%s sends %q: %v", dave.Name, s.Text, s.Err)
		}
	}
	// Bob closes his laptop's app: he opens it again while the disk is
	// full. His phone's stream is closed (the app open, signed in) while
	// Alice writes a little more: it opens again once the disk is full,
	// to read what was stored.
	laptop.Close()
	bob.PauseStream()
	for i := range 3 {
		if s := send(ctx, sends, alice, room, fmt.Sprintf("%s %d for later", alice.Name, i)); s.Err != nil {
			t.Fatalf("%s sends %q: %v", alice.Name, s.Text, s.Err)
		}
	}

	filler, size := fill(t, disk)
	t.Logf("the filesystem is full: a filler of %d KiB, %d bytes free (setup took %v)",
		size>>10, freeSpace(disk), time.Since(began).Round(time.Millisecond))

	// Bob's phone opens its stream again, signed in as it was, and reads
	// what Alice wrote before the disk filled up.
	bob.ResumeStream()
	waitDelivered(t, []*device{bob}, greenRoom, sends, "on the full disk, the stream opened again")

	// Alice and Bob keep sending, each in turn, until several sends have
	// been refused (or a bound passes).
	var refused atomic.Int32
	before := len(sends.All())
	fullCtx, stopFull := context.WithTimeout(ctx, 25*time.Second)
	var senders sync.WaitGroup
	for _, d := range []*device{alice, bob} {
		senders.Go(func() {
			for i := 100; fullCtx.Err() == nil && refused.Load() < 4; i++ {
				s := send(ctx, sends, d, room, fmt.Sprintf("%s %d", d.Name, i))
				if s.Err == nil {
					continue
				}
				var ae *client.APIError
				if !errors.Is(s.Err, client.ErrStorageFull) || !errors.As(s.Err, &ae) || ae.Status != http.StatusInsufficientStorage || ae.RetryAfter <= 0 {
					t.Errorf("%s's %q on a full disk: %v; want storage_full (507) with a Retry-After", d.Name, s.Text, s.Err)
					return
				}
				refused.Add(1)
			}
		})
	}
	senders.Wait()
	stopFull()
	fullSends, fullAcked := 0, 0
	for _, s := range sends.All()[before:] {
		fullSends++
		if s.Err == nil {
			fullAcked++
		}
	}
	if refused.Load() == 0 {
		t.Fatalf("no send was refused in 25 s on a full disk (%d sent)", fullSends)
	}
	t.Logf("on the full disk: %d sends, %d acknowledged, %d refused with storage_full", fullSends, fullAcked, refused.Load())

	// Dave writes to Alice: blue stores it, and green, full, refuses the
	// copy blue's outbox hands it with storage_full, which blue retries
	// later.
	for i := range 2 {
		if s := send(ctx, sends, dave, daveRoom, fmt.Sprintf("%s %d", dave.Name, 100+i)); s.Err != nil {
			t.Errorf("%s sends %q to a room his provider hosts while green is full: %v", dave.Name, s.Text, s.Err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for proctest.LogCount(logs, "blue", `storage_full`) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if proctest.LogCount(logs, "blue", `storage_full`) == 0 {
		t.Errorf("blue's outbox was never refused with storage_full by green on its full disk")
	}

	// Reads go on while the disk is full.
	if proc.Exited() {
		t.Fatal("the provider exited when its disk filled up")
	}
	resp, err := http.Get(proc.Client + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("readyz on a full disk: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	if _, _, err := alice.Client().Reachability(ctx); err != nil {
		t.Errorf("Alice reads her reachability on a full disk: %v", err)
	}
	if _, err := bob.Client().Blocked(ctx); err != nil {
		t.Errorf("Bob reads whom he blocked on a full disk: %v", err)
	}
	if got, err := bob.Client().Download(ctx, att); err != nil || !bytes.Equal(got, photo) {
		t.Errorf("Bob downloads Alice's photo on a full disk: %d bytes, %v", len(got), err)
	}
	// The streams deliver every message that was stored, the disk still
	// full.
	waitDelivered(t, []*device{alice, bob}, greenRoom, sends, "on the full disk")
	// An upload is refused (or, while the WAL still has a gap that fits
	// it, stored: then it must download later).
	var uploaded []client.Attachment
	uploadRefused := false
	for range 5 {
		a, err := alice.Client().Upload(ctx, bytes.NewReader(photo), "image/jpeg", "again.jpg")
		if err == nil {
			uploaded = append(uploaded, a)
			continue
		}
		if !errors.Is(err, client.ErrStorageFull) {
			t.Fatalf("an upload on a full disk: %v, want storage_full", err)
		}
		uploadRefused = true
		break
	}
	if !uploadRefused {
		t.Errorf("5 uploads of 48 KiB on a full disk were all stored")
	}
	// Bob opens his laptop's app: signing in stores a session, which
	// may be refused; then he opens it once there is room.
	laptopOpen := false
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := laptop.Open(octx, proc.Client); err == nil {
		laptopOpen = true
		t.Logf("Bob's laptop signed in on the full disk")
	} else if !errors.Is(err, client.ErrStorageFull) {
		t.Errorf("Bob's laptop opened on a full disk: %v, want storage_full if anything", err)
	}
	cancel()
	// A new provider's first start on the full disk fails clearly and
	// leaves no half of its CA behind.
	other := filepath.Join(disk, "other")
	out, err := exec.Command(bin, "admin", "user", "add", "carol", "--data", other, "--domain", "other.test").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no space left on device") {
		t.Errorf("admin user add on a full disk: %v, %s; want a failure saying no space left on device", err, out)
	}
	checkNoHalfFiles(t, disk)
	if fs, _ := filepath.Glob(filepath.Join(other, "ca*.pem")); len(fs) != 0 {
		t.Errorf("a refused first start left %v", fs)
	}
	if proc.Exited() {
		t.Fatal("the provider exited on a full disk")
	}

	// Space returns.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, s := range sends.All() {
		if s.Err != nil {
			again := send(ctx, sends, s.From, s.Room, s.Text+" again")
			if again.Err != nil {
				t.Errorf("%s sends %q again once there is room: %v", s.From.Name, again.Text, again.Err)
			}
		}
	}
	for _, d := range []*device{alice, bob} {
		if s := send(ctx, sends, d, room, d.Name+" after"); s.Err != nil {
			t.Errorf("%s sends once there is room: %v", d.Name, s.Err)
		}
	}
	if !laptopOpen {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := laptop.Open(octx, proc.Client); err != nil {
			t.Fatalf("Bob's laptop opens once there is room: %v", err)
		}
		cancel()
	}
	if _, err := alice.Client().Upload(ctx, bytes.NewReader(photo), "image/jpeg", "third.jpg"); err != nil {
		t.Errorf("an upload once there is room: %v", err)
	}
	for _, a := range uploaded {
		if got, err := bob.Client().Download(ctx, a); err != nil || !bytes.Equal(got, photo) {
			t.Errorf("an upload acknowledged on the full disk downloads as %d bytes, %v", len(got), err)
		}
	}
	if out, err := exec.Command(bin, "admin", "user", "add", "carol", "--data", other, "--domain", "other.test").CombinedOutput(); err != nil {
		t.Errorf("admin user add once there is room: %v\n%s", err, out)
	}
	waitDelivered(t, everyone, members, sends, "once there is room")
	if proc.Exited() {
		t.Fatal("the provider exited")
	}

	// Stopped, the database is sound and holds what was acknowledged.
	for _, d := range []*device{alice, bob, laptop} {
		d.Close()
	}
	proc.Stop()
	checkDatabase(t, filepath.Join(data, "provider.db"), room, sends)

	// Started again on the same data, the chat goes on.
	proc = proctest.Serve(t, bin, logs, "green", "--config", cfgFile)
	for _, d := range []*device{alice, bob, laptop} {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := d.Open(octx, proc.Client); err != nil {
			t.Fatalf("%s opens after the restart: %v", d.Name, err)
		}
		cancel()
	}
	for _, d := range []*device{alice, bob} {
		if s := send(ctx, sends, d, room, d.Name+" after the restart"); s.Err != nil {
			t.Errorf("%s sends after the restart: %v", d.Name, s.Err)
		}
	}
	if s := send(ctx, sends, dave, daveRoom, dave.Name+" after the restart"); s.Err != nil {
		t.Errorf("%s sends after green's restart: %v", dave.Name, s.Err)
	}
	waitDelivered(t, everyone, members, sends, "after the restart")

	// Alice's phone has no space left: a message whose state (the
	// ratchet's used key) cannot be saved is not sent, and says so; one
	// Bob sends her meanwhile is not lost.
	phoneFiller, _ := fill(t, alice.Dir)
	if s := send(ctx, sends, alice, room, "alice/phone on a full phone"); s.Err == nil {
		t.Errorf("Alice's full phone reported %q sent at seq %d, though it could not save its state", s.Text, s.Seq)
	} else if !errors.Is(s.Err, syscall.ENOSPC) {
		t.Errorf("Alice's full phone: %v; want an error that matches ENOSPC, for the app to say so", s.Err)
	}
	if s := send(ctx, sends, bob, room, "bob/phone to a full phone"); s.Err != nil {
		t.Errorf("Bob sends to Alice's full phone: %v", s.Err)
	}
	waitDelivered(t, []*device{laptop}, greenRoom, sends, "with Alice's phone full")
	checkNoHalfFiles(t, alice.Dir)
	if err := os.Remove(phoneFiller); err != nil {
		t.Fatal(err)
	}
	if s := send(ctx, sends, alice, room, "alice/phone on a full phone again"); s.Err != nil {
		t.Errorf("Alice sends again once her phone has room: %v", s.Err)
	}
	checked := waitDelivered(t, everyone, members, sends, "once Alice's phone has room")
	all := sends.All()
	acked := 0
	for _, s := range all {
		if s.Err == nil {
			acked++
		}
	}
	t.Logf("%d messages sent, %d acknowledged, %d refused; %d deliveries checked; %v in all",
		len(all), acked, len(all)-acked, checked, time.Since(began).Round(time.Millisecond))
}

// waitDelivered waits until each device has every acknowledged message of
// the others' (30 s at most), then checks what each received: each
// acknowledged message once, at the seq its sender was told, in seq order,
// and no message whose send was refused. It returns the deliveries
// checked.
func waitDelivered(t *testing.T, devices []*device, members map[client.RoomID][]*device, sends *chatsim.SendLog, when string) int {
	t.Helper()
	var all []chatsim.Sent
	for _, s := range sends.All() {
		if members[s.Room] != nil {
			all = append(all, s)
		}
	}
	in := func(d *device, room client.RoomID) bool { return slices.Contains(members[room], d) }
	missing := func(d *device) []string {
		have := map[string]bool{}
		for _, m := range d.Received() {
			have[string(m.Body)] = true
		}
		var out []string
		for _, s := range all {
			if s.Err == nil && s.From != d && in(d, s.Room) && !have[s.Text] {
				out = append(out, s.Text)
			}
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range devices {
		for len(missing(d)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if m := missing(d); len(m) > 0 {
			t.Errorf("%s: %s, %d acknowledged messages never arrived, such as %q", when, d.Name, len(m), m[0])
		}
	}
	byText := map[string]chatsim.Sent{}
	for _, s := range all {
		byText[s.Text] = s
	}
	checked := 0
	for _, d := range devices {
		seen := map[string]bool{}
		last := map[client.RoomID]int64{}
		for _, m := range d.Received() {
			if members[m.Room] == nil {
				continue
			}
			text := string(m.Body)
			s, ok := byText[text]
			switch {
			case !ok:
				t.Errorf("%s: %s read %q, which nobody sent", when, d.Name, text)
			case s.Err != nil:
				t.Errorf("%s: %s read %q at seq %d, whose send was refused (%v): a refusal must mean not stored", when, d.Name, text, m.Seq, s.Err)
			case s.From == d:
				t.Errorf("%s: %s read its own %q", when, d.Name, text)
			case seen[text]:
				t.Errorf("%s: %s read %q twice", when, d.Name, text)
			case m.Seq != s.Seq:
				t.Errorf("%s: %s read %q at seq %d; its sender was told %d", when, d.Name, text, m.Seq, s.Seq)
			case s.Room != m.Room:
				t.Errorf("%s: %s read %q in room %s; it was sent to %s", when, d.Name, text, m.Room, s.Room)
			case m.Seq <= last[m.Room]:
				t.Errorf("%s: %s read %q at seq %d after seq %d", when, d.Name, text, m.Seq, last[m.Room])
			}
			seen[text], last[m.Room] = true, max(last[m.Room], m.Seq)
			checked++
		}
		if bad := d.Failures(); len(bad) > 0 {
			t.Errorf("%s: %s failed to read %d messages, such as: %s", when, d.Name, len(bad), bad[0])
		}
	}
	return checked
}

// checkNoHalfFiles fails if the small disk holds a temporary file: a
// write that the full disk cut short must not be left behind.
func checkNoHalfFiles(t *testing.T, disk string) {
	t.Helper()
	filepath.WalkDir(disk, func(path string, e os.DirEntry, err error) error {
		if err == nil && strings.Contains(e.Name(), ".tmp") {
			t.Errorf("a temporary file is left on the full disk: %s", path)
		}
		return nil
	})
}

// checkDatabase opens the stopped provider's database: PRAGMA
// integrity_check is ok, and the room's log holds exactly the messages
// that were acknowledged, at their seqs.
func checkDatabase(t *testing.T, path string, room client.RoomID, sends *chatsim.SendLog) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check of the database after the disk was full: %q %v", ok, err)
	}
	want := map[int64]bool{}
	for _, s := range sends.All() {
		if s.Err == nil && s.Room == room {
			want[s.Seq] = true
		}
	}
	rows, err := db.Query(`SELECT seq FROM room_messages WHERE room_id = ? AND kind = 'application'`, string(room))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var seq int64
		rows.Scan(&seq)
		if !want[seq] {
			t.Errorf("the room's log holds a message at seq %d that no send was told of", seq)
		}
		n++
	}
	if n != len(want) {
		t.Errorf("the room's log holds %d messages; %d were acknowledged", n, len(want))
	}
}
