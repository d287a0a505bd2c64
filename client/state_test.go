package client

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/mls"
)

func TestAuthSignatureInput(t *testing.T) {
	challenge := []byte{0x00, 0x01, 0xfe, 0xff}
	got := authSignatureInput("green.example", challenge)
	want := append([]byte("switchboard auth v1\ngreen.example\n"), 0x00, 0x01, 0xfe, 0xff)
	if !bytes.Equal(got, want) {
		t.Fatalf("signature input %q, want %q", got, want)
	}
	// And a signature over it verifies as the provider checks it.
	_, key, _ := ed25519.GenerateKey(nil)
	sig := ed25519.Sign(key, got)
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), want, sig) {
		t.Fatal("signature does not verify")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := writeFileAtomic(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, []byte("two")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "two" {
		t.Fatalf("read %q, %v", data, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(entries))
	}
	// A write that cannot happen leaves the old contents and no debris.
	if err := writeFileAtomic(filepath.Join(dir, "missing", "f.json"), []byte("x")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if data, _ := os.ReadFile(path); string(data) != "two" {
		t.Fatalf("old contents lost: %q", data)
	}
}

func TestStateRoundTrip(t *testing.T) {
	st := store{dir: t.TempDir()}
	if err := st.init(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.loadDevice(); !errors.Is(err, ErrNoState) {
		t.Fatalf("empty directory: %v, want ErrNoState", err)
	}
	dev := &deviceState{Domain: "green.example", User: "alice", Device: "phone", DeviceID: 7, AuthKey: bytes.Repeat([]byte{1}, 32), Suite: 1, SignatureKey: bytes.Repeat([]byte{2}, 32)}
	if err := st.saveDevice(dev); err != nil {
		t.Fatal(err)
	}
	got, err := st.loadDevice()
	if err != nil || got.User != "alice" || got.DeviceID != 7 || !bytes.Equal(got.AuthKey, dev.AuthKey) || got.Version != stateVersion {
		t.Fatalf("device %+v, %v", got, err)
	}

	if c, err := st.loadCursor(); err != nil || c != 0 {
		t.Fatalf("no cursor yet: %d, %v", c, err)
	}
	if err := st.saveCursor(118); err != nil {
		t.Fatal(err)
	}
	if c, err := st.loadCursor(); err != nil || c != 118 {
		t.Fatalf("cursor %d, %v", c, err)
	}

	kps := []keyPackageState{{Ref: []byte{1}, KeyPackage: []byte{2}, InitKey: []byte{3}, EncryptionKey: []byte{4}, LastResort: true, NotAfter: 99}}
	if err := st.saveKeyPackages(kps); err != nil {
		t.Fatal(err)
	}
	if got, err := st.loadKeyPackages(); err != nil || len(got) != 1 || !got[0].LastResort || got[0].NotAfter != 99 {
		t.Fatalf("key packages %+v, %v", got, err)
	}

	room := &roomState{Room: "abc-_DEF", LastSeq: 42, Group: []byte("state"), Pending: &pendingPost{Seq: 43, ClientID: "id", Message: []byte("m")}}
	if err := st.saveRoom(room); err != nil {
		t.Fatal(err)
	}
	// Debris of an interrupted write is ignored and cleaned up.
	debris := filepath.Join(st.roomsDir(), ".other.json.tmp-123")
	os.WriteFile(debris, []byte("{"), 0o600)
	rooms, err := st.loadRooms()
	if err != nil || len(rooms) != 1 {
		t.Fatalf("rooms %v, %v", rooms, err)
	}
	r := rooms["abc-_DEF"]
	if r.LastSeq != 42 || string(r.Group) != "state" || r.Pending == nil || r.Pending.Seq != 43 {
		t.Fatalf("room %+v", r)
	}
	if _, err := os.Stat(debris); !os.IsNotExist(err) {
		t.Fatal("temporary file left behind")
	}

	// Unsafe room IDs never become paths.
	for _, id := range []RoomID{"", "../x", "a/b", "a.b", RoomID(strings.Repeat("a", 200))} {
		if err := st.saveRoom(&roomState{Room: id}); err == nil {
			t.Errorf("room id %q stored", id)
		}
	}
}

func TestStateVersionRefused(t *testing.T) {
	st := store{dir: t.TempDir()}
	st.init()
	os.WriteFile(filepath.Join(st.dir, cursorFileName), []byte(`{"version": 2, "cursor": 5}`), 0o600)
	if _, err := st.loadCursor(); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("future version: %v", err)
	}
	os.WriteFile(filepath.Join(st.dir, deviceFileName), []byte(`{"version": 1, `), 0o600)
	if _, err := st.loadDevice(); err == nil {
		t.Fatal("torn device file accepted")
	}
}

func TestAPIErrorIs(t *testing.T) {
	e := &APIError{Status: 409, Code: "wrong_epoch", Message: "m", RequestID: "r"}
	if !errors.Is(e, ErrWrongEpoch) || errors.Is(e, ErrConflict) {
		t.Fatal("code sentinel mismatch")
	}
	if !strings.Contains(e.Error(), "wrong_epoch") || !strings.Contains(e.Error(), "r") {
		t.Fatalf("message %q", e.Error())
	}
	// A body that is not the provider's error format still gets a code.
	resp := &http.Response{StatusCode: 503}
	if err := decodeAPIError(resp, []byte("<html>bad gateway</html>")); !errors.Is(err, ErrUnavailable) || !retryable(err) {
		t.Fatalf("plain 503: %v", err)
	}
	if retryable(e) {
		t.Fatal("wrong_epoch is not retryable as is")
	}
}

func TestEventQueueDeliversAfterClose(t *testing.T) {
	q := newEventQueue()
	q.push(&RoomJoined{Room: "a"}, &RoomJoined{Room: "b"})
	q.close()
	q.push(&RoomJoined{Room: "c"}) // after close: dropped
	var got []RoomID
	for e := range q.out {
		got = append(got, e.EventRoom())
	}
	if len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("got %v", got)
	}
}

func TestKeyPackageStateRoundTrip(t *testing.T) {
	s, _ := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	sig, _ := s.GenerateSignatureKey()
	c := &Client{suite: s, signer: sig, cred: mls.Credential{Type: mls.CredentialBasic, Identity: []byte("x")}}
	kp, err := c.newKeyPackage(false)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := c.keyPackagePrivate(kp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(priv.KeyPackage.Ref(s), kp.Ref) {
		t.Fatal("ref changed")
	}
	if b, _ := priv.InitKey.Bytes(); !bytes.Equal(b, kp.InitKey) {
		t.Fatal("init key changed")
	}
}

// stateGroups makes a room of n members over MLS alone (basic
// credentials): alice's group and bob's, the others only in the tree.
func stateGroups(t *testing.T, n int) (alice, bob *mls.Group) {
	t.Helper()
	s, _ := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	member := func(name string) (mls.Identity, *mls.KeyPackagePrivate) {
		sig, err := s.GenerateSignatureKey()
		if err != nil {
			t.Fatal(err)
		}
		id := mls.Identity{Signer: sig, Credential: mls.Credential{Type: mls.CredentialBasic, Identity: []byte(name)}}
		kp, err := mls.NewKeyPackage(s, sig, id.Credential, mls.KeyPackageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return id, kp
	}
	aliceID, _ := member("alice")
	alice, err := mls.CreateGroup(s, []byte("room-1"), aliceID, nil, mls.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, bobKP := member("bob")
	props := []*mls.Proposal{{Type: mls.ProposalAdd, Add: bobKP.KeyPackage}}
	for i := 2; i < n; i++ {
		_, kp := member(fmt.Sprint("member", i))
		props = append(props, &mls.Proposal{Type: mls.ProposalAdd, Add: kp.KeyPackage})
	}
	res, err := alice.Commit(mls.CommitOptions{Proposals: props, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	if bob, err = mls.JoinFromWelcome(res.Welcome.Welcome, bobKP, nil, mls.GroupConfig{}); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

// roomFiles lists the files of the rooms directory.
func roomFiles(t *testing.T, st *store) []string {
	t.Helper()
	entries, err := os.ReadDir(st.roomsDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A device in a room of 30 saves its tree apart from its secrets: sending
// and receiving messages rewrite only the small room file, a commit writes
// a new tree, and a restart at any point, including between the tree's
// write and the room file's, finds a consistent state that never uses a
// key twice.
func TestStateTreeStoredApart(t *testing.T) {
	alice, bob := stateGroups(t, 30)
	st := &store{dir: t.TempDir()}
	if err := st.init(); err != nil {
		t.Fatal(err)
	}
	c := &Client{store: *st}
	r := &roomEntry{st: &roomState{Room: "room-1"}, g: bob}
	if err := c.saveRoomLocked(r); err != nil {
		t.Fatal(err)
	}
	if files := roomFiles(t, st); len(files) != 2 {
		t.Fatalf("room files %v: want the room and its tree", files)
	}
	treePath := filepath.Join(st.roomsDir(), treeFileName("room-1", r.tree))
	treeBefore, err := os.Stat(treePath)
	if err != nil {
		t.Fatal(err)
	}
	roomInfo, err := os.Stat(filepath.Join(st.roomsDir(), "room-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("room of 30: room file %d bytes, tree file %d", roomInfo.Size(), treeBefore.Size())
	if roomInfo.Size() >= treeBefore.Size() {
		t.Errorf("room file %d bytes, tree %d: the secrets should be the small part", roomInfo.Size(), treeBefore.Size())
	}

	// bob receives a message and sends one: the tree file is not rewritten.
	m, _ := alice.Encrypt([]byte("hi"), nil)
	if _, err := bob.ProcessMessage(m); err != nil {
		t.Fatal(err)
	}
	first, err := bob.Encrypt([]byte("first"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.saveRoomLocked(r); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(treePath); err != nil || !os.SameFile(treeBefore, after) {
		t.Fatalf("a send rewrote the tree file (%v)", err)
	}

	// The device restarts after its send: its ratchet goes on from there,
	// so the next message uses the next key (alice reads both).
	restart := func() *roomEntry {
		t.Helper()
		rooms, err := st.loadRooms()
		if err != nil {
			t.Fatal(err)
		}
		loaded := rooms["room-1"]
		g, err := c.restoreGroup(loaded)
		if err != nil {
			t.Fatal(err)
		}
		return &roomEntry{st: loaded, g: g, tree: loaded.Tree}
	}
	r = restart()
	second, err := r.g.Encrypt([]byte("second"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []*mls.MLSMessage{first, second} {
		if _, err := alice.ProcessMessage(msg); err != nil {
			t.Fatalf("alice reads bob's messages across his restart: %v", err)
		}
	}
	if err := c.saveRoomLocked(r); err != nil {
		t.Fatal(err)
	}

	// A commit changes the tree. The device crashes after writing the new
	// tree and before the room file: it restarts in the old epoch with the
	// old tree, the new tree is removed as left-over, and the commit,
	// delivered again, is processed again.
	res, err := alice.Commit(mls.CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	oldEpoch := r.g.Epoch()
	if _, err := r.g.ProcessMessage(res.Commit); err != nil {
		t.Fatal(err)
	}
	newHash := hex.EncodeToString(r.g.TreeHash())
	if err := st.saveTree("room-1", newHash, r.g.MarshalTree()); err != nil {
		t.Fatal(err)
	}
	r = restart()
	if r.g.Epoch() != oldEpoch || len(roomFiles(t, st)) != 2 {
		t.Fatalf("after a crash between tree and room file: epoch %d (want %d), files %v", r.g.Epoch(), oldEpoch, roomFiles(t, st))
	}
	if _, err := r.g.ProcessMessage(res.Commit); err != nil {
		t.Fatalf("the commit delivered again: %v", err)
	}
	if err := c.saveRoomLocked(r); err != nil {
		t.Fatal(err)
	}
	if files := roomFiles(t, st); len(files) != 2 || r.tree != newHash || !slices.Contains(files, treeFileName("room-1", newHash)) {
		t.Fatalf("after the commit: files %v, tree %s", files, r.tree)
	}
	r = restart()
	m, _ = alice.Encrypt([]byte("new epoch"), nil)
	if _, err := r.g.ProcessMessage(m); err != nil {
		t.Fatalf("bob after the commit and a restart: %v", err)
	}

	// A room that leaves removes its tree.
	r.st.Removed, r.g = true, nil
	if err := c.saveRoomLocked(r); err != nil {
		t.Fatal(err)
	}
	if files := roomFiles(t, st); len(files) != 1 {
		t.Fatalf("files of a room left: %v", files)
	}
}

// A room file of the first layout (the whole MLS state, tree included)
// loads, and the next save writes the new layout.
func TestStateRoomFileOfFirstLayoutLoads(t *testing.T) {
	alice, bob := stateGroups(t, 5)
	st := &store{dir: t.TempDir()}
	if err := st.init(); err != nil {
		t.Fatal(err)
	}
	whole, err := bob.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.saveRoom(&roomState{Room: "room-1", LastSeq: 7, Group: whole}); err != nil {
		t.Fatal(err)
	}
	c := &Client{store: *st}
	rooms, err := st.loadRooms()
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.restoreGroup(rooms["room-1"])
	if err != nil {
		t.Fatalf("a room file of the first layout: %v", err)
	}
	r := &roomEntry{st: rooms["room-1"], g: g}
	if err := c.saveRoomLocked(r); err != nil {
		t.Fatal(err)
	}
	rooms, err = st.loadRooms()
	if err != nil || rooms["room-1"].Tree == "" || rooms["room-1"].LastSeq != 7 {
		t.Fatalf("after a save: %+v, %v", rooms["room-1"], err)
	}
	if g, err = c.restoreGroup(rooms["room-1"]); err != nil {
		t.Fatal(err)
	}
	m, _ := alice.Encrypt([]byte("still here"), nil)
	if _, err := g.ProcessMessage(m); err != nil {
		t.Fatal(err)
	}
}
