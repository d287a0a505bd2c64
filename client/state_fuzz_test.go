package client

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-chat/switchboard/mls"
)

// stateFixture is a device's complete state directory as the client
// writes it: the device, one KeyPackage, the cursor, a room stored whole
// and a room stored apart from its tree.
type stateFixture struct {
	names []string // relative to the directory
	files map[string][]byte
}

func newStateFixture(f *testing.F) *stateFixture {
	s, err := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	if err != nil {
		f.Fatal(err)
	}
	sig, err := s.GenerateSignatureKey()
	if err != nil {
		f.Fatal(err)
	}
	authSeed := make([]byte, 32)
	rand.Read(authSeed)
	cred := mls.Credential{Type: mls.CredentialBasic, Identity: []byte("alice")}
	dev := deviceState{Version: stateVersion, Domain: "green.example", User: "alice", Device: "laptop", DeviceID: 7,
		AuthKey: authSeed, Suite: uint16(s.ID), SignatureKey: sig.Bytes(), Credential: mls.Marshal(&cred),
		DeviceURI: "mimi://green.example/d/alice/laptop", UserURI: "mimi://green.example/u/alice"}
	kp, err := mls.NewKeyPackage(s, sig, cred, mls.KeyPackageOptions{})
	if err != nil {
		f.Fatal(err)
	}
	initKey, _ := kp.InitKey.Bytes()
	encKey, _ := kp.EncryptionKey.Bytes()
	kps := keyPackagesFile{Version: stateVersion, KeyPackages: []keyPackageState{{Ref: kp.KeyPackage.Ref(s),
		KeyPackage:    mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage}),
		InitKey:       initKey,
		EncryptionKey: encKey,
		NotAfter:      kp.KeyPackage.LeafNode.Lifetime.NotAfter}}}
	fx := &stateFixture{files: map[string][]byte{}}
	put := func(name string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		fx.names = append(fx.names, name)
		fx.files[name] = append(b, '\n')
	}
	put(deviceFileName, dev)
	put(keyPackagesFileName, kps)
	put(cursorFileName, cursorFile{Version: stateVersion, Cursor: 42})
	whole, err := mls.CreateGroup(s, []byte("room-whole"), mls.Identity{Signer: sig, Credential: cred}, nil, mls.GroupConfig{})
	if err != nil {
		f.Fatal(err)
	}
	wholeState, err := whole.MarshalState()
	if err != nil {
		f.Fatal(err)
	}
	apart, err := mls.CreateGroup(s, []byte("room-apart"), mls.Identity{Signer: sig, Credential: cred}, nil, mls.GroupConfig{})
	if err != nil {
		f.Fatal(err)
	}
	apartState, err := apart.MarshalStateApart()
	if err != nil {
		f.Fatal(err)
	}
	idWhole := RoomID(base64.RawURLEncoding.EncodeToString(whole.GroupID()))
	idApart := RoomID(base64.RawURLEncoding.EncodeToString(apart.GroupID()))
	hash := hex.EncodeToString(apart.TreeHash())
	put(filepath.Join(roomsDirName, string(idWhole)+".json"), roomState{Version: stateVersion, Room: idWhole, LastSeq: 3, Group: wholeState})
	put(filepath.Join(roomsDirName, string(idApart)+".json"), roomState{Version: stateVersion, Room: idApart, Hub: "blue.example",
		LastSeq: 9, Group: apartState, Tree: hash, Pending: &pendingPost{}})
	tree := filepath.Join(roomsDirName, treeFileName(idApart, hash))
	fx.names = append(fx.names, tree)
	fx.files[tree] = apart.MarshalTree()
	return fx
}

// write lays the fixture out in dir, with the file of index which (modulo
// the number of files) replaced by data; it returns that file's name.
func (fx *stateFixture) write(t *testing.T, dir string, which uint8, data []byte) string {
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, roomsDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	target := fx.names[int(which)%len(fx.names)]
	for _, name := range fx.names {
		b := fx.files[name]
		if name == target {
			b = data
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return target
}

// FuzzStateFiles replaces one file of a device's state directory (the
// device, its KeyPackages, the cursor, a room, a room's tree) with
// whatever a crash, a full disk or another program could leave there, and
// opens the state as Open does before it goes to the network. Never a
// panic; a refused state leaves the file as it was (so that nothing is
// lost that a person could still recover) and nothing running; a state
// that opens lists its rooms, each with a group of its own ID.
func FuzzStateFiles(f *testing.F) {
	fx := newStateFixture(f)
	for i, name := range fx.names {
		f.Add(uint8(i), fx.files[name])
		f.Add(uint8(i), []byte(`{"version":2}`))
		f.Add(uint8(i), []byte(`{"version":1}`))
		f.Add(uint8(i), []byte(``))
		f.Add(uint8(i), fx.files[name][:len(fx.files[name])/2])
	}
	f.Add(uint8(0), bytes.Replace(fx.files[deviceFileName], []byte(`"cipher_suite":1`), []byte(`"cipher_suite":99`), 1))
	f.Add(uint8(2), []byte(`{"version":1,"cursor":-5}`))
	f.Add(uint8(3), []byte(`{"version":1,"room":"other","group":"AAAA"}`))
	f.Add(uint8(4), []byte(`{"version":1,"room":"x","tree":"../../etc"}`))
	dir := filepath.Join(f.TempDir(), "state")
	opts := Options{}
	opts.fill()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := fx.write(t, dir, which, data)
		st := store{dir: dir}
		dev, err := st.loadDevice()
		var c *Client
		if err == nil {
			c, err = restore(&api{}, st, dev, opts)
		}
		if err != nil {
			if got, rerr := os.ReadFile(filepath.Join(dir, name)); rerr != nil || !bytes.Equal(got, data) {
				t.Fatalf("refused state (%v) lost %s", err, name)
			}
			return
		}
		for _, id := range c.Rooms() {
			r := c.rooms[id]
			if r.g != nil && !roomMatchesGroup(id, r.g.GroupID()) {
				t.Fatalf("room %s holds the group %x", id, r.g.GroupID())
			}
		}
		c.events.close()
	})
}

// FuzzDecodeAPIError reads whatever a provider, or a proxy before it,
// could answer with an error status. Never a panic; always an *APIError
// with the status and a code; a Retry-After is at most an hour; a message
// taken from the body is cut on a character boundary, so UTF-8 stays
// UTF-8.
func FuzzDecodeAPIError(f *testing.F) {
	f.Add(409, "", []byte(`{"error":{"code":"wrong_epoch","message":"epoch 3","request_id":"ab12"}}`))
	f.Add(429, "30", []byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
	f.Add(503, "99999999999", []byte("<html>Service Unavailable</html>"))
	f.Add(502, "-3", []byte("a"+strings.Repeat("ü", 150)))
	f.Add(400, "", []byte(`{"error":{"code":"","message":"no code"}}`))
	f.Add(418, "", []byte(nil))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		resp := &http.Response{StatusCode: status, Header: http.Header{}}
		resp.Header.Set("Retry-After", retryAfter)
		err := decodeAPIError(resp, body)
		var e *APIError
		if !errors.As(err, &e) {
			t.Fatalf("%T %v is not an *APIError", err, err)
		}
		if e.Status != status || e.Code == "" {
			t.Fatalf("status %d read as %d, code %q", status, e.Status, e.Code)
		}
		if e.RetryAfter < 0 || e.RetryAfter > time.Hour {
			t.Fatalf("Retry-After %q read as %v", retryAfter, e.RetryAfter)
		}
		if utf8.Valid(body) && !utf8.ValidString(e.Message) {
			t.Fatalf("UTF-8 body cut inside a character: %q", e.Message)
		}
	})
}
