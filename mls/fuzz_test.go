package mls_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-chat/switchboard/mls"
	"github.com/switchboard-chat/switchboard/mls/mlstest"
)

// Each decoder must reject malformed input with an error, never a panic, and
// whatever it accepts must re-encode to exactly the bytes it read: the wire
// format is canonical, so two encodings of one value would be a bug.

// seedsFromMessages adds the official messages.json values under key as seeds.
func seedsFromMessages(f *testing.F, keys ...string) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 1})
	dir, err := mlstest.DefaultDir()
	if err != nil {
		return
	}
	data, err := os.ReadFile(filepath.Join(dir, "messages.json"))
	if err != nil {
		return
	}
	var cases []map[string]string
	if json.Unmarshal(data, &cases) != nil {
		return
	}
	for i, c := range cases {
		if i >= 20 {
			break
		}
		for _, k := range keys {
			if b, err := hex.DecodeString(c[k]); err == nil {
				f.Add(b)
			}
		}
	}
}

type wireValue interface {
	mls.Marshaler
	mls.Unmarshaler
}

func fuzzRoundTrip(t *testing.T, data []byte, v wireValue) {
	if err := mls.Unmarshal(data, v); err != nil {
		return
	}
	if got := mls.Marshal(v); !bytes.Equal(got, data) {
		t.Fatalf("accepted input re-encodes differently:\n in  %x\n out %x", data, got)
	}
}

func FuzzMLSMessage(f *testing.F) {
	seedsFromMessages(f, "mls_welcome", "mls_group_info", "mls_key_package",
		"public_message_application", "public_message_proposal", "public_message_commit", "private_message")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(mls.MLSMessage)) })
}

func FuzzKeyPackage(f *testing.F) {
	seedsFromMessages(f, "add_proposal")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(mls.KeyPackage)) })
}

func FuzzWelcome(f *testing.F) {
	seedsFromMessages(f, "mls_welcome")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4 {
			data = data[4:] // drop the MLSMessage header of the seeds
		}
		fuzzRoundTrip(t, data, new(mls.Welcome))
	})
}

func FuzzGroupInfo(f *testing.F) {
	seedsFromMessages(f, "mls_group_info")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4 {
			data = data[4:]
		}
		fuzzRoundTrip(t, data, new(mls.GroupInfo))
	})
}

func FuzzRatchetTree(f *testing.F) {
	seedsFromMessages(f, "ratchet_tree")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(mls.TreeNodes)) })
}

func FuzzCommit(f *testing.F) {
	seedsFromMessages(f, "commit", "group_secrets")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, new(mls.Commit))
		fuzzRoundTrip(t, data, new(mls.GroupSecrets))
	})
}

// FuzzCodec drives the codec's primitives in an order chosen by the input.
func FuzzCodec(f *testing.F) {
	f.Add([]byte{0x40, 0x25, 0x01, 0x02}, []byte{0, 1, 2, 3})
	f.Add([]byte{0x80, 0, 0x40, 0}, []byte{4, 5, 6})
	f.Fuzz(func(t *testing.T, data, ops []byte) {
		r := mls.NewReader(data)
		w := mls.NewWriter(len(data))
		for _, op := range ops {
			switch op % 7 {
			case 0:
				w.U8(r.U8())
			case 1:
				w.U16(r.U16())
			case 2:
				w.U32(r.U32())
			case 3:
				w.U64(r.U64())
			case 4:
				w.Opaque(r.Opaque())
			case 5:
				w.Bool(r.Bool())
			case 6:
				sub := r.Vector()
				rest := sub.Raw(sub.Remaining())
				w.Vector(func(w *mls.Writer) { w.Raw(rest) })
			}
		}
		if r.Err() != nil {
			return
		}
		consumed := data[:len(data)-r.Remaining()]
		if !bytes.Equal(w.Bytes(), consumed) {
			t.Fatalf("codec round trip: read %x, wrote %x", consumed, w.Bytes())
		}
	})
}

// FuzzProcessMessage feeds arbitrary messages to a member of a live group.
// Whatever arrives, the member must answer with an error or a result, never
// a panic, and a refused message must leave the group able to go on.
func FuzzProcessMessage(f *testing.F) {
	s, _ := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	newMember := func(name string) (mls.Identity, *mls.KeyPackagePrivate) {
		sig, _ := s.GenerateSignatureKey()
		cred := mls.Credential{Type: mls.CredentialBasic, Identity: []byte(name)}
		kp, err := mls.NewKeyPackage(s, sig, cred, mls.KeyPackageOptions{})
		if err != nil {
			f.Fatal(err)
		}
		return mls.Identity{Signer: sig, Credential: cred}, kp
	}
	aliceID, _ := newMember("alice")
	alice, err := mls.CreateGroup(s, []byte("fuzz-room"), aliceID, nil, mls.GroupConfig{})
	if err != nil {
		f.Fatal(err)
	}
	_, bobKP := newMember("bob")
	res, err := alice.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalAdd, Add: bobKP.KeyPackage}}, InlineTree: true})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := alice.MergePendingCommit(); err != nil {
		f.Fatal(err)
	}
	bobState := func() *mls.Group {
		bob, err := mls.JoinFromWelcome(res.Welcome.Welcome, bobKP, nil, mls.GroupConfig{})
		if err != nil {
			f.Fatal(err)
		}
		return bob
	}
	app, _ := alice.Encrypt([]byte("hello"), nil)
	_, carolKP := newMember("carol")
	prop, _, _ := alice.Propose(&mls.Proposal{Type: mls.ProposalAdd, Add: carolKP.KeyPackage}, nil)
	commit, _ := alice.Commit(mls.CommitOptions{})
	for _, m := range []*mls.MLSMessage{app, prop, commit.Commit} {
		f.Add(mls.Marshal(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := mls.ParseMLSMessage(data)
		if err != nil {
			return
		}
		bob := bobState()
		if _, err := bob.ProcessMessage(m); err != nil {
			// Refused: bob must still read alice's genuine message.
			if _, err := bob.ProcessMessage(app); err != nil && !bytes.Equal(data, mls.Marshal(app)) {
				t.Fatalf("after a refused message, the genuine one fails: %v", err)
			}
		}
	})
}
