package mls_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/mls"
)

// group is a toy epoch of a group: what a sender and a receiver at
// different leaves share, plus each one's own secret tree.
type group struct {
	s        *mls.Suite
	ctx      *mls.GroupContext
	sig      *mls.SignaturePrivateKey // the sender's
	encrypt  []byte
	sds      []byte
	member   []byte // membership key
	sender   *mls.SecretTree
	receiver *mls.SecretTree
	leaves   uint32
	from     mls.LeafIndex
}

func newGroup(t testing.TB, leaves uint32, from mls.LeafIndex) *group {
	t.Helper()
	s, err := mls.SuiteFor(mls.X25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	g := &group{
		s:   s,
		sig: sig,
		ctx: &mls.GroupContext{
			Version: mls.MLS10, CipherSuite: s.ID, GroupID: []byte("switchboard group"), Epoch: 7,
			TreeHash: bytes.Repeat([]byte{1}, s.HashSize()), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, s.HashSize()),
		},
		encrypt: mls.RandomBytes(s.HashSize()),
		sds:     mls.RandomBytes(s.HashSize()),
		member:  mls.RandomBytes(s.HashSize()),
		leaves:  leaves,
		from:    from,
	}
	g.sender = g.tree(t)
	g.receiver = g.tree(t)
	return g
}

func (g *group) tree(t testing.TB) *mls.SecretTree {
	t.Helper()
	tree, err := mls.NewSecretTree(g.s, g.encrypt, g.leaves)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func (g *group) content(ct mls.ContentType, data []byte) *mls.FramedContent {
	c := &mls.FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch,
		Sender:            mls.Sender{Type: mls.SenderMember, Leaf: g.from},
		AuthenticatedData: []byte("aad"),
		ContentType:       ct,
	}
	switch ct {
	case mls.ContentApplication:
		c.ApplicationData = data
	case mls.ContentProposal:
		c.Proposal = &mls.Proposal{Type: mls.ProposalRemove, Remove: 3}
	case mls.ContentCommit:
		c.Commit = &mls.Commit{Proposals: []mls.ProposalOrRef{{Reference: bytes.Repeat([]byte{9}, 32)}}}
	}
	return c
}

// send signs and encrypts application data with the sender's tree.
func (g *group) send(t testing.TB, data []byte, padding int) *mls.PrivateMessage {
	t.Helper()
	a, err := mls.SignContent(g.s, g.sig, mls.WireFormatPrivateMessage, g.content(mls.ContentApplication, data), g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mls.ProtectPrivate(g.s, a, g.sender, g.sds, padding)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// receive decrypts with the receiver's tree and verifies the signature.
func (g *group) receive(m *mls.PrivateMessage) (*mls.AuthenticatedContent, error) {
	a, err := mls.UnprotectPrivate(g.s, m, g.receiver, g.sds)
	if err != nil {
		return nil, err
	}
	if err := a.VerifySignature(g.s, g.sig.PublicKey(), g.ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func clonePM(m *mls.PrivateMessage) *mls.PrivateMessage {
	c := *m
	c.Ciphertext = bytes.Clone(m.Ciphertext)
	c.AuthenticatedData = bytes.Clone(m.AuthenticatedData)
	c.EncryptedSenderData = bytes.Clone(m.EncryptedSenderData)
	return &c
}

func TestPrivateMessageRoundTrip(t *testing.T) {
	g := newGroup(t, 5, 3)
	for _, ct := range []mls.ContentType{mls.ContentApplication, mls.ContentProposal, mls.ContentCommit} {
		for _, padding := range []int{0, 1, 1000} {
			a, err := mls.SignContent(g.s, g.sig, mls.WireFormatPrivateMessage, g.content(ct, []byte("hello")), g.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ct == mls.ContentCommit {
				a.Auth.ConfirmationTag = mls.ConfirmationTag(g.s, g.member, g.ctx.ConfirmedTranscriptHash)
			}
			m, err := mls.ProtectPrivate(g.s, a, g.sender, g.sds, padding)
			if err != nil {
				t.Fatal(err)
			}
			// Through the wire encoding, as a receiver gets it.
			msg, err := mls.ParseMLSMessage(mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatPrivateMessage, Private: m}))
			if err != nil {
				t.Fatal(err)
			}
			got, err := g.receive(msg.Private)
			if err != nil {
				t.Fatalf("%v, padding %d: %v", ct, padding, err)
			}
			if got.WireFormat != mls.WireFormatPrivateMessage ||
				!bytes.Equal(mls.Marshal(got), mls.Marshal(a)) {
				t.Fatalf("%v, padding %d: received content differs from sent", ct, padding)
			}
		}
	}
}

// A ciphertext or AAD modified in transit is refused without consuming the
// generation's key, so the genuine message still decrypts afterwards.
func TestPrivateMessageTamperedKeepsKey(t *testing.T) {
	g := newGroup(t, 4, 1)
	m := g.send(t, bytes.Repeat([]byte("x"), 100), 0)

	tampers := map[string]func(*mls.PrivateMessage){
		// The last byte is in the AEAD tag, beyond the sender-data sample,
		// so sender data still decrypts and the content check is reached.
		"ciphertext tag": func(m *mls.PrivateMessage) { m.Ciphertext[len(m.Ciphertext)-1] ^= 1 },
		"authenticated data": func(m *mls.PrivateMessage) {
			m.AuthenticatedData = append(m.AuthenticatedData, '!')
		},
		// The first byte is in the sample: the sender data no longer decrypts.
		"ciphertext sample": func(m *mls.PrivateMessage) { m.Ciphertext[0] ^= 0x80 },
		"sender data":       func(m *mls.PrivateMessage) { m.EncryptedSenderData[2] ^= 4 },
	}
	for name, tamper := range tampers {
		bad := clonePM(m)
		tamper(bad)
		_, err := g.receive(bad)
		if !errors.Is(err, mls.ErrCrypto) {
			t.Fatalf("%s tampered: got %v, want a decryption failure", name, err)
		}
	}
	a, err := g.receive(m)
	if err != nil {
		t.Fatalf("genuine message after tampered copies: %v", err)
	}
	if !bytes.Equal(a.Content.ApplicationData, bytes.Repeat([]byte("x"), 100)) {
		t.Fatal("wrong plaintext")
	}
}

// A PrivateMessage delivered twice is refused the second time.
func TestPrivateMessageReplayRefused(t *testing.T) {
	g := newGroup(t, 2, 0)
	m := g.send(t, []byte("once"), 0)
	if _, err := g.receive(m); err != nil {
		t.Fatal(err)
	}
	_, err := g.receive(m)
	if !errors.Is(err, mls.ErrGenerationUsed) {
		t.Fatalf("replay: got %v, want ErrGenerationUsed", err)
	}
}

// Messages delivered out of order within the window all decrypt.
func TestPrivateMessageOutOfOrder(t *testing.T) {
	g := newGroup(t, 3, 2)
	var sent []*mls.PrivateMessage
	for i := range 8 {
		sent = append(sent, g.send(t, fmt.Appendf(nil, "message %d", i), i))
	}
	for _, i := range []int{3, 0, 7, 1, 2, 6, 4, 5} {
		a, err := g.receive(sent[i])
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := fmt.Sprintf("message %d", i); string(a.Content.ApplicationData) != want {
			t.Fatalf("got %q, want %q", a.Content.ApplicationData, want)
		}
	}
}

// Sender data naming a leaf outside the receiver's tree is refused before
// any ratchet is touched.
func TestPrivateMessageSenderOutsideTree(t *testing.T) {
	g := newGroup(t, 8, 6)
	m := g.send(t, []byte("hi"), 0)
	small := newGroup(t, 4, 0)
	small.sds, small.encrypt = g.sds, g.encrypt
	small.receiver = small.tree(t)
	_, err := mls.UnprotectPrivate(g.s, m, small.receiver, g.sds)
	if !errors.Is(err, mls.ErrFraming) || !strings.Contains(err.Error(), "leaf 6 in a tree of 4 leaves") {
		t.Fatalf("got %v", err)
	}
}

func TestPrivateMessageRefusesNonMembers(t *testing.T) {
	g := newGroup(t, 2, 0)
	c := g.content(mls.ContentProposal, nil)
	c.Sender = mls.Sender{Type: mls.SenderExternal, Index: 0}
	a, err := mls.SignContent(g.s, g.sig, mls.WireFormatPrivateMessage, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mls.ProtectPrivate(g.s, a, g.sender, g.sds, 0); !errors.Is(err, mls.ErrFraming) {
		t.Fatalf("external sender as PrivateMessage: %v", err)
	}
	// Content signed for a PublicMessage cannot be sent privately: the
	// wire format is under the signature.
	a, err = mls.SignContent(g.s, g.sig, mls.WireFormatPublicMessage, g.content(mls.ContentProposal, nil), g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mls.ProtectPrivate(g.s, a, g.sender, g.sds, 0); !errors.Is(err, mls.ErrFraming) {
		t.Fatalf("public-signed content as PrivateMessage: %v", err)
	}
}

func (g *group) public(t *testing.T, ct mls.ContentType) *mls.PublicMessage {
	t.Helper()
	a, err := mls.SignContent(g.s, g.sig, mls.WireFormatPublicMessage, g.content(ct, nil), g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ct == mls.ContentCommit {
		a.Auth.ConfirmationTag = bytes.Repeat([]byte{5}, g.s.HashSize())
	}
	m, err := mls.ProtectPublic(g.s, a, g.member, g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPublicMessageMembershipTag(t *testing.T) {
	g := newGroup(t, 4, 2)
	for _, ct := range []mls.ContentType{mls.ContentProposal, mls.ContentCommit} {
		m := g.public(t, ct)
		if err := m.VerifyMembershipTag(g.s, g.member, g.ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Authenticated().VerifySignature(g.s, g.sig.PublicKey(), g.ctx); err != nil {
			t.Fatal(err)
		}
		err := m.VerifyMembershipTag(g.s, mls.RandomBytes(g.s.HashSize()), g.ctx)
		if !errors.Is(err, mls.ErrMembershipTag) || !strings.Contains(err.Error(), "for leaf 2") {
			t.Fatalf("wrong membership key: %v", err)
		}
		other := *g.ctx
		other.Epoch++
		if err := m.VerifyMembershipTag(g.s, g.member, &other); !errors.Is(err, mls.ErrMembershipTag) {
			t.Fatalf("other epoch's context: %v", err)
		}
		if err := m.Authenticated().VerifySignature(g.s, g.sig.PublicKey(), &other); !errors.Is(err, mls.ErrSignature) {
			t.Fatalf("signature under other epoch's context: %v", err)
		}
		m.Content.AuthenticatedData = []byte("changed")
		if err := m.VerifyMembershipTag(g.s, g.member, g.ctx); !errors.Is(err, mls.ErrMembershipTag) {
			t.Fatalf("modified content: %v", err)
		}
	}
}

func TestPublicMessageRefusesApplication(t *testing.T) {
	g := newGroup(t, 2, 1)
	a, err := mls.SignContent(g.s, g.sig, mls.WireFormatPublicMessage, g.content(mls.ContentApplication, []byte("secret")), g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mls.ProtectPublic(g.s, a, g.member, g.ctx); !errors.Is(err, mls.ErrPublicApplication) {
		t.Fatalf("got %v, want ErrPublicApplication", err)
	}
}

// External senders sign without a GroupContext and carry no membership tag.
func TestPublicMessageExternalSender(t *testing.T) {
	g := newGroup(t, 2, 1)
	c := g.content(mls.ContentProposal, nil)
	c.Sender = mls.Sender{Type: mls.SenderExternal, Index: 1}
	a, err := mls.SignContent(g.s, g.sig, mls.WireFormatPublicMessage, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mls.ProtectPublic(g.s, a, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.MembershipTag != nil {
		t.Fatal("external sender got a membership tag")
	}
	if err := m.VerifyMembershipTag(g.s, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Authenticated().VerifySignature(g.s, g.sig.PublicKey(), nil); err != nil {
		t.Fatal(err)
	}
	// A member's content needs the context.
	if _, err := mls.SignContent(g.s, g.sig, mls.WireFormatPublicMessage, g.content(mls.ContentProposal, nil), nil); !errors.Is(err, mls.ErrFraming) {
		t.Fatalf("member content without context: %v", err)
	}
}

func TestCommitNeedsConfirmationTag(t *testing.T) {
	g := newGroup(t, 2, 1)
	a, err := mls.SignContent(g.s, g.sig, mls.WireFormatPublicMessage, g.content(mls.ContentCommit, nil), g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mls.ProtectPublic(g.s, a, g.member, g.ctx); !errors.Is(err, mls.ErrFraming) {
		t.Fatalf("commit without confirmation tag: %v", err)
	}
}

func TestTranscriptHashes(t *testing.T) {
	g := newGroup(t, 2, 1)
	a, err := mls.SignContent(g.s, g.sig, mls.WireFormatPublicMessage, g.content(mls.ContentCommit, nil), g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	confirmed, err := mls.ConfirmedTranscriptHash(g.s, nil, a)
	if err != nil {
		t.Fatal(err)
	}
	key := mls.RandomBytes(g.s.HashSize())
	a.Auth.ConfirmationTag = mls.ConfirmationTag(g.s, key, confirmed)
	if err := mls.VerifyConfirmationTag(g.s, key, confirmed, a.Auth.ConfirmationTag); err != nil {
		t.Fatal(err)
	}
	if err := mls.VerifyConfirmationTag(g.s, mls.RandomBytes(g.s.HashSize()), confirmed, a.Auth.ConfirmationTag); !errors.Is(err, mls.ErrConfirmationTag) {
		t.Fatalf("wrong key: %v", err)
	}
	// The confirmation tag is not part of the confirmed hash, only the interim.
	again, _ := mls.ConfirmedTranscriptHash(g.s, nil, a)
	if !bytes.Equal(again, confirmed) {
		t.Fatal("confirmed transcript hash depends on the confirmation tag")
	}
	if bytes.Equal(mls.InterimTranscriptHash(g.s, confirmed, a.Auth.ConfirmationTag), mls.InterimTranscriptHash(g.s, confirmed, key)) {
		t.Fatal("interim transcript hash ignores the confirmation tag")
	}
	p, err := mls.SignContent(g.s, g.sig, mls.WireFormatPublicMessage, g.content(mls.ContentProposal, nil), g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mls.ConfirmedTranscriptHash(g.s, nil, p); !errors.Is(err, mls.ErrNotCommit) {
		t.Fatalf("proposal in transcript: %v", err)
	}
}

func TestWelcomeRoundTrip(t *testing.T) {
	g := newGroup(t, 3, 0)
	s := g.s
	var kps []*mls.KeyPackagePrivate
	for i := range 3 {
		sig, err := s.GenerateSignatureKey()
		if err != nil {
			t.Fatal(err)
		}
		kp, err := mls.NewKeyPackage(s, sig, mls.Credential{Type: mls.CredentialBasic, Identity: fmt.Appendf(nil, "joiner %d", i)}, mls.KeyPackageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	info := &mls.GroupInfo{GroupContext: *g.ctx, ConfirmationTag: bytes.Repeat([]byte{3}, s.HashSize()), Signer: 0}
	if err := info.Sign(s, g.sig); err != nil {
		t.Fatal(err)
	}
	welcomeSecret := mls.RandomBytes(s.HashSize())
	members := []mls.NewMemberSecrets{
		{KeyPackage: kps[0].KeyPackage, Secrets: mls.GroupSecrets{JoinerSecret: bytes.Repeat([]byte{10}, s.HashSize())}},
		{KeyPackage: kps[1].KeyPackage, Secrets: mls.GroupSecrets{JoinerSecret: bytes.Repeat([]byte{11}, s.HashSize()), PathSecret: []byte("path")}},
	}
	w, err := mls.SealWelcome(s, welcomeSecret, info, members)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mls.ParseMLSMessage(mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatWelcome, Welcome: w}))
	if err != nil {
		t.Fatal(err)
	}
	w = msg.Welcome
	for i, m := range members {
		gs, err := mls.FindWelcomeSecrets(s, w, kps[i].KeyPackage.Ref(s), kps[i].InitKey)
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		if !bytes.Equal(mls.Marshal(gs), mls.Marshal(&m.Secrets)) {
			t.Fatalf("member %d: group secrets differ", i)
		}
	}
	// Another member's init key cannot open an entry.
	if _, err := mls.FindWelcomeSecrets(s, w, kps[0].KeyPackage.Ref(s), kps[1].InitKey); !errors.Is(err, mls.ErrCrypto) {
		t.Fatalf("wrong init key: %v", err)
	}
	if _, err := mls.FindWelcomeSecrets(s, w, kps[2].KeyPackage.Ref(s), kps[2].InitKey); !errors.Is(err, mls.ErrNotInWelcome) {
		t.Fatalf("key package not in the Welcome: %v", err)
	}
	gi, err := mls.OpenGroupInfo(s, w, welcomeSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := gi.VerifySignature(s, g.sig.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mls.Marshal(gi), mls.Marshal(info)) {
		t.Fatal("group info differs")
	}
	if _, err := mls.OpenGroupInfo(s, w, mls.RandomBytes(s.HashSize())); !errors.Is(err, mls.ErrCrypto) {
		t.Fatalf("wrong welcome secret: %v", err)
	}
}

// Benchmarks of one application message of suite 1 (X25519, AES-128-GCM,
// SHA-256, Ed25519) through the whole pipeline a client runs: encrypt is
// SignContent + ProtectPrivate + MLSMessage encoding; decrypt is MLSMessage
// decoding + UnprotectPrivate + VerifySignature; roundtrip is both.
func BenchmarkApplicationMessage(b *testing.B) {
	sizes := []struct {
		name string
		n    int
	}{{"100B", 100}, {"10KB", 10 * 1024}}
	encode := func(g *group, data []byte) []byte {
		a, err := mls.SignContent(g.s, g.sig, mls.WireFormatPrivateMessage, g.content(mls.ContentApplication, data), g.ctx)
		if err != nil {
			b.Fatal(err)
		}
		m, err := mls.ProtectPrivate(g.s, a, g.sender, g.sds, 0)
		if err != nil {
			b.Fatal(err)
		}
		return mls.Marshal(&mls.MLSMessage{Version: mls.MLS10, WireFormat: mls.WireFormatPrivateMessage, Private: m})
	}
	decode := func(g *group, wire []byte, n int) {
		msg, err := mls.ParseMLSMessage(wire)
		if err != nil {
			b.Fatal(err)
		}
		a, err := g.receive(msg.Private)
		if err != nil {
			b.Fatal(err)
		}
		if len(a.Content.ApplicationData) != n {
			b.Fatal("wrong length")
		}
	}
	for _, op := range []string{"encrypt", "decrypt", "roundtrip"} {
		b.Run(op, func(b *testing.B) {
			for _, sz := range sizes {
				b.Run(sz.name, func(b *testing.B) {
					g := newGroup(b, 2, 1)
					data := bytes.Repeat([]byte{'m'}, sz.n)
					b.SetBytes(int64(sz.n))
					b.ReportAllocs()
					switch op {
					case "encrypt":
						for b.Loop() {
							encode(g, data)
						}
					case "roundtrip":
						for b.Loop() {
							decode(g, encode(g, data), sz.n)
						}
					case "decrypt":
						// Messages are made in untimed batches: each
						// generation decrypts only once.
						const batch = 256
						var queue [][]byte
						b.ResetTimer()
						for range b.N {
							if len(queue) == 0 {
								b.StopTimer()
								for range batch {
									queue = append(queue, encode(g, data))
								}
								b.StartTimer()
							}
							decode(g, queue[0], sz.n)
							queue = queue[1:]
						}
					}
				})
			}
		})
	}
}
