package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/client"
)

// TestNoPlaintextAnywhere: Alice (green), Bob (blue) and Carol (red) talk
// in a group hosted by green and in a 1:1 room hosted by blue, every
// message carrying a marker no one else could produce. The devices read
// the marker (so the search below would see it if it were there); the
// providers never hold it: not in any file of their data directories
// (provider.db and its -wal and -shm, while running and after a clean
// stop), not in anything they log, even at debug level, and not in any
// federation request or answer between them, as read after TLS. Each
// place is searched for the marker's bytes and for its hex, base64 and
// decimal-bytes spellings.
func TestNoPlaintextAnywhere(t *testing.T) {
	var rnd [12]byte
	rand.Read(rnd[:])
	marker := "sbmark-" + hex.EncodeToString(rnd[:]) + "-plaintext"
	h := startHarness(t, "green.test", "blue.test", "red.test")
	alice, _ := h.enroll("green.test", "alice", "phone", client.Options{})
	bob, _ := h.enroll("blue.test", "bob", "phone", client.Options{})
	carol, _ := h.enroll("red.test", "carol", "phone", client.Options{})
	ctx := context.Background()

	group, err := alice.c.CreateRoom(ctx)
	must(t, "alice creates the group", err)
	must(t, "alice invites bob", alice.c.Invite(ctx, group, "bob@blue.test"))
	must(t, "alice invites carol", alice.c.Invite(ctx, group, "carol@red.test"))
	dm, err := bob.c.CreateRoom(ctx)
	must(t, "bob creates a 1:1 room", err)
	must(t, "bob invites alice", bob.c.Invite(ctx, dm, "alice@green.test"))

	inGroup := newConversation(t, group, alice, bob, carol)
	inDM := newConversation(t, dm, alice, bob)
	for i, p := range []*person{alice, bob, carol, alice} {
		inGroup.say(p, fmt.Sprintf("secret %d: %s", i, marker))
		inGroup.expect(alice, bob, carol)
	}
	inDM.say(bob, "just to you: "+marker)
	inDM.say(alice, "and back: "+marker)
	inDM.expect(alice, bob)
	h.settle("green.test", group)
	h.settle("blue.test", dm)

	// The control: the devices read the marker, and the search finds it
	// there, in every spelling.
	needles := spellings(marker)
	read := []byte(strings.Join(carol.messages(group), "\n"))
	for _, n := range needles {
		var spelt []byte
		switch n.how {
		case "bytes":
			spelt = read
		case "hex":
			spelt = []byte(hex.EncodeToString(read))
		case "base64 (std)":
			spelt = []byte(base64.StdEncoding.EncodeToString(read))
		case "base64 (url)":
			spelt = []byte(base64.URLEncoding.EncodeToString(read))
		case "decimal bytes":
			spelt = []byte(fmt.Sprint(read))
		}
		if !n.in(spelt) {
			t.Fatalf("the search does not find the marker's %s in Carol's messages spelt so", n.how)
		}
	}

	// The federation traffic: every request and answer between the
	// providers, headers and bodies.
	traffic := h.traffic.all(nil)
	var kinds []string
	for _, e := range traffic {
		kind, _, _ := strings.Cut(strings.TrimPrefix(e.Path, "/"), "/")
		kinds = append(kinds, e.From()+"->"+e.To+" "+kind)
		var b bytes.Buffer
		e.Header.Write(&b)
		b.Write(e.Body)
		e.RespHeader.Write(&b)
		b.Write(e.RespBody)
		if n := found(needles, b.Bytes()); n != "" {
			t.Errorf("the marker's %s is in a federation exchange %s -> %s %s", n, e.From(), e.To, e.Path)
		}
	}
	for _, want := range []string{"blue.test->green.test submitMessage", "red.test->green.test submitMessage",
		"green.test->blue.test notify", "green.test->red.test notify", "green.test->blue.test keyMaterial",
		"green.test->blue.test submitMessage", "blue.test->green.test notify"} {
		if !strings.Contains(strings.Join(kinds, "\n"), want) {
			t.Errorf("no %s was recorded: the search of the traffic saw only %v", want, kinds)
		}
	}

	// What the providers logged.
	logs := h.logs.Bytes()
	if !bytes.Contains(logs, []byte(`"provider":"red.test"`)) {
		t.Fatal("the providers logged nothing")
	}
	if n := found(needles, logs); n != "" {
		t.Errorf("the marker's %s is in the providers' logs", n)
	}

	// Every file of every data directory, while the providers run, and
	// again once they have stopped (and SQLite has checkpointed its WAL).
	handles := map[string]string{"green.test": "alice", "blue.test": "bob", "red.test": "carol"}
	searchDataDirs := func(when string) {
		for _, d := range h.domains {
			var files []string
			holdsHandle := false
			err := filepath.WalkDir(h.dataDir(d), func(path string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				files = append(files, fmt.Sprintf("%s (%d bytes)", e.Name(), len(data)))
				if n := found(needles, data); n != "" {
					t.Errorf("%s: the marker's %s is in %s", when, n, path)
				}
				if strings.HasPrefix(e.Name(), "provider.db") {
					holdsHandle = holdsHandle || bytes.Contains(data, []byte(handles[d]))
				}
				return nil
			})
			must(t, "searching "+d+"'s data directory", err)
			// The control: what is not secret, a user's handle, is there
			// to be found in the database.
			if !holdsHandle {
				t.Errorf("%s: %s's database does not hold its user %s's handle: was it searched?", when, d, handles[d])
			}
			if !slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, "provider.db ") }) {
				t.Errorf("%s: %s has no provider.db", when, d)
			}
			t.Logf("%s: searched %s: %s", when, d, strings.Join(files, ", "))
		}
	}
	searchDataDirs("running")
	must(t, "stopping the providers", h.l.Close())
	searchDataDirs("stopped")
}

// needle is one spelling of the marker.
type needle struct {
	how   string
	forms [][]byte // any of them found means found
}

func (n needle) in(data []byte) bool {
	for _, f := range n.forms {
		if bytes.Contains(data, f) {
			return true
		}
	}
	return false
}

// found returns how data spells the marker, or "".
func found(needles []needle, data []byte) string {
	for _, n := range needles {
		if n.in(data) {
			return n.how
		}
	}
	return ""
}

// spellings returns the ways the marker could be written down: its bytes,
// hex (either case), base64 in both alphabets at each of the three
// alignments it could have inside a longer encoded value, and the decimal
// list %v makes of a []byte.
func spellings(marker string) []needle {
	m := []byte(marker)
	out := []needle{{how: "bytes", forms: [][]byte{m}}}
	out = append(out, needle{how: "hex", forms: [][]byte{
		[]byte(hex.EncodeToString(m)), []byte(strings.ToUpper(hex.EncodeToString(m)))}})
	for _, enc := range []struct {
		how string
		e   *base64.Encoding
	}{{"base64 (std)", base64.RawStdEncoding}, {"base64 (url)", base64.RawURLEncoding}} {
		n := needle{how: enc.how}
		// Inside a longer value the marker starts at some offset; from
		// the next multiple of three on, whole groups of its bytes are
		// encoded on their own.
		for skip := range 3 {
			part := m[skip:]
			part = part[:len(part)/3*3]
			n.forms = append(n.forms, []byte(enc.e.EncodeToString(part)))
		}
		out = append(out, n)
	}
	dec := make([]string, len(m))
	for i, c := range m {
		dec[i] = strconv.Itoa(int(c))
	}
	out = append(out, needle{how: "decimal bytes", forms: [][]byte{[]byte(strings.Join(dec[1:len(dec)-1], " "))}})
	return out
}
