package mls

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// These tests sit inside the package so that they can encrypt arbitrary
// plaintexts (sealPrivate) and reach UnprotectPrivate's parsing of
// PrivateMessageContent with inputs no honest sender would produce.

type frFixture struct {
	s                *Suite
	sender, receiver *SecretTree
	sds              []byte
}

func newFrFixture(t testing.TB) *frFixture {
	t.Helper()
	s, err := SuiteFor(X25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	enc := bytes.Repeat([]byte{0x11}, s.HashSize())
	sender, err := NewSecretTree(s, enc, 2)
	if err != nil {
		t.Fatal(err)
	}
	receiver, err := NewSecretTree(s, enc, 2)
	if err != nil {
		t.Fatal(err)
	}
	return &frFixture{s: s, sender: sender, receiver: receiver, sds: bytes.Repeat([]byte{0x22}, s.HashSize())}
}

// seal encrypts pt as the PrivateMessageContent of a message from leaf 1.
func (f *frFixture) seal(t testing.TB, ct ContentType, pt []byte) *PrivateMessage {
	t.Helper()
	m, err := sealPrivate(f.s, f.sender, f.sds, 1, ct, []byte("group"), 3, []byte("aad"), bytes.Clone(pt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// privateContentSeeds are valid and nearly valid PrivateMessageContent
// encodings of each content type.
func privateContentSeeds() [][2][]byte {
	enc := func(ct ContentType, c *FramedContent, auth FramedContentAuthData, tail ...byte) [2][]byte {
		w := NewWriter(64)
		c.ContentType = ct
		c.marshalBody(w)
		auth.marshal(w, ct)
		return [2][]byte{{byte(ct)}, append(w.Bytes(), tail...)}
	}
	sig := FramedContentAuthData{Signature: bytes.Repeat([]byte{7}, 64), ConfirmationTag: bytes.Repeat([]byte{8}, 32)}
	commit := &Commit{Proposals: []ProposalOrRef{{Proposal: &Proposal{Type: ProposalRemove, Remove: 2}}, {Reference: []byte{1, 2, 3}}}}
	return [][2][]byte{
		enc(ContentApplication, &FramedContent{ApplicationData: []byte("hello")}, sig),
		enc(ContentApplication, &FramedContent{ApplicationData: []byte("hello")}, sig, 0, 0, 0, 0),
		enc(ContentApplication, &FramedContent{ApplicationData: []byte("hello")}, sig, 0, 0, 1),
		enc(ContentProposal, &FramedContent{Proposal: &Proposal{Type: ProposalRemove, Remove: 5}}, sig),
		enc(ContentProposal, &FramedContent{Proposal: &Proposal{Type: ProposalPSK, PSK: &PreSharedKeyID{Type: PSKExternal, ID: []byte("x"), Nonce: make([]byte, 32)}}}, sig, 0),
		enc(ContentCommit, &FramedContent{Commit: commit}, sig),
		enc(ContentCommit, &FramedContent{Commit: &Commit{}}, sig, 0, 0),
		{{byte(ContentApplication)}, {}},
		{{byte(ContentCommit)}, {0x40}},
	}
}

// FuzzPrivateMessageContent feeds arbitrary plaintexts, properly encrypted,
// to UnprotectPrivate. It must never panic; it must refuse malformed content
// as ErrFraming without spending the generation; and whatever it accepts
// must be the canonical encoding of what it returns, followed by zero
// padding only, with the generation then spent.
func FuzzPrivateMessageContent(f *testing.F) {
	for _, seed := range privateContentSeeds() {
		f.Add(seed[0][0], seed[1])
	}
	f.Fuzz(func(t *testing.T, ctByte byte, pt []byte) {
		fx := newFrFixture(t)
		ct := ContentType(1 + ctByte%3)
		m := fx.seal(t, ct, pt)
		a, err := UnprotectPrivate(fx.s, m, fx.receiver, fx.sds)
		if err != nil {
			if !errors.Is(err, ErrFraming) {
				t.Fatalf("malformed content refused for a reason other than framing: %v", err)
			}
			if _, again := UnprotectPrivate(fx.s, m, fx.receiver, fx.sds); errors.Is(again, ErrGenerationUsed) {
				t.Fatal("malformed content spent the generation")
			}
			return
		}
		w := NewWriter(len(pt))
		a.Content.marshalBody(w)
		a.Auth.marshal(w, ct)
		enc := w.Bytes()
		if len(enc) > len(pt) || !bytes.Equal(enc, pt[:len(enc)]) {
			t.Fatalf("accepted content re-encodes differently:\n in  %x\n out %x", pt, enc)
		}
		for _, b := range pt[len(enc):] {
			if b != 0 {
				t.Fatalf("accepted non-zero padding in %x", pt)
			}
		}
		if a.Content.ContentType != ct || a.Content.Sender != (Sender{Type: SenderMember, Leaf: 1}) || a.WireFormat != WireFormatPrivateMessage {
			t.Fatalf("header not rebuilt from the message: %+v", a.Content)
		}
		if _, err := UnprotectPrivate(fx.s, m, fx.receiver, fx.sds); !errors.Is(err, ErrGenerationUsed) {
			t.Fatalf("accepted message replayed: %v", err)
		}
	})
}

// Non-zero padding is refused as malformed (§6.3.1), and the refusal does not
// spend the key.
func TestPrivateMessageNonZeroPadding(t *testing.T) {
	fx := newFrFixture(t)
	seed := privateContentSeeds()[2] // "hello" with padding 00 00 01
	m := fx.seal(t, ContentType(seed[0][0]), seed[1])
	for range 2 {
		_, err := UnprotectPrivate(fx.s, m, fx.receiver, fx.sds)
		if !errors.Is(err, ErrPadding) || !strings.Contains(err.Error(), "padding contains a non-zero byte") {
			t.Fatalf("got %v, want ErrPadding", err)
		}
	}
}

// Content with trailing bytes that parse as padding only when zero, and a
// truncated body, are told apart.
func TestPrivateMessageContentTruncated(t *testing.T) {
	fx := newFrFixture(t)
	seed := privateContentSeeds()[5] // a commit
	m := fx.seal(t, ContentCommit, seed[1][:len(seed[1])-1])
	if _, err := UnprotectPrivate(fx.s, m, fx.receiver, fx.sds); !errors.Is(err, ErrFraming) || !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated commit: %v", err)
	}
}
