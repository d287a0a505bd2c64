package mls

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Scenarios for persisting a member's group state: a client saves its group
// (MarshalState), restarts, restores it (RestoreGroup) and carries on as if
// nothing happened, and a damaged or inconsistent saved state is refused.

// stateMember is one client in these scenarios: its identity and its group.
type stateMember struct {
	name string
	id   Identity
	g    *Group
}

func stateSuite(t testing.TB, id CipherSuite) *Suite {
	t.Helper()
	s, err := SuiteFor(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stateNewMember(t testing.TB, s *Suite, name string) *stateMember {
	t.Helper()
	sig, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return &stateMember{name: name, id: Identity{Signer: sig, Credential: Credential{Type: CredentialBasic, Identity: []byte(name)}}}
}

func (m *stateMember) keyPackage(t testing.TB, s *Suite) *KeyPackagePrivate {
	t.Helper()
	kp, err := NewKeyPackage(s, m.id.Signer, m.id.Credential, KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// stateAliceAndBob runs the usual start of a group: Alice creates it and
// adds Bob with his KeyPackage; Bob joins from the Welcome (epoch 1).
func stateAliceAndBob(t testing.TB, s *Suite, config GroupConfig) (alice, bob *stateMember) {
	t.Helper()
	alice, bob = stateNewMember(t, s, "alice"), stateNewMember(t, s, "bob")
	var err error
	if alice.g, err = CreateGroup(s, []byte("switchboard state test"), alice.id, nil, config); err != nil {
		t.Fatal(err)
	}
	bob.g = stateAdd(t, s, alice, bob, config)
	return alice, bob
}

// stateAdd has committer add newcomer by KeyPackage; the committer merges
// its commit and the newcomer joins from the Welcome. Other members must
// process the commit themselves.
func stateAdd(t testing.TB, s *Suite, committer, newcomer *stateMember, config GroupConfig) *Group {
	t.Helper()
	kp := newcomer.keyPackage(t, s)
	res, err := committer.g.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalAdd, Add: kp.KeyPackage}}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := committer.g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	g, err := JoinFromWelcome(res.Welcome.Welcome, kp, nil, config)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// stateSend has from encrypt text and each receiver decrypt it.
func stateSend(t testing.TB, from *Group, text string, to ...*Group) {
	t.Helper()
	m, err := from.Encrypt([]byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range to {
		stateReceive(t, g, m, text)
	}
}

func stateReceive(t testing.TB, g *Group, m *MLSMessage, text string) {
	t.Helper()
	r, err := g.ProcessMessage(m)
	if err != nil {
		t.Fatalf("decrypting %q: %v", text, err)
	}
	if string(r.ApplicationData) != text {
		t.Fatalf("decrypted %q, want %q", r.ApplicationData, text)
	}
}

// stateCommit has committer commit and merge, and every other member process
// the commit; all must then share the epoch authenticator.
func stateCommit(t testing.TB, committer *Group, o CommitOptions, others ...*Group) *CommitResult {
	t.Helper()
	res, err := committer.Commit(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := committer.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	for _, g := range others {
		if _, err := g.ProcessMessage(res.Commit); err != nil {
			t.Fatalf("processing the commit of epoch %d: %v", committer.Epoch(), err)
		}
	}
	stateSameEpoch(t, append([]*Group{committer}, others...)...)
	return res
}

func stateSameEpoch(t testing.TB, groups ...*Group) {
	t.Helper()
	for _, g := range groups[1:] {
		if g.Epoch() != groups[0].Epoch() || !bytes.Equal(g.EpochAuthenticator(), groups[0].EpochAuthenticator()) {
			t.Fatalf("members disagree: epoch %d authenticator %x vs epoch %d authenticator %x",
				g.Epoch(), g.EpochAuthenticator(), groups[0].Epoch(), groups[0].EpochAuthenticator())
		}
	}
}

// stateRestart saves g, restores it with config as a fresh process would,
// and checks that saving the restored group gives the same bytes: nothing
// was lost or invented on the way.
func stateRestart(t testing.TB, g *Group, config GroupConfig) *Group {
	t.Helper()
	saved, err := g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	r, err := RestoreGroup(saved, config)
	if err != nil {
		t.Fatalf("restoring: %v", err)
	}
	again, err := r.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, saved) {
		t.Fatalf("the restored group saves differently (%d bytes, then %d)", len(saved), len(again))
	}
	if r.Epoch() != g.Epoch() || r.OwnLeaf() != g.OwnLeaf() || !bytes.Equal(r.EpochAuthenticator(), g.EpochAuthenticator()) {
		t.Fatalf("restored group is in epoch %d at leaf %d, want epoch %d at leaf %d", r.Epoch(), r.OwnLeaf(), g.Epoch(), g.OwnLeaf())
	}
	return r
}

func TestStateBobRestartsAndCarriesOn(t *testing.T) {
	for _, id := range SupportedSuites {
		t.Run(id.String(), func(t *testing.T) {
			s := stateSuite(t, id)
			alice, bob := stateAliceAndBob(t, s, GroupConfig{})
			stateSend(t, alice.g, "hello Bob", bob.g)
			stateSend(t, bob.g, "hello Alice", alice.g)

			// Alice sends four messages; Bob reads the first and third
			// before his client shuts down, so the key of the second is
			// kept for a late arrival.
			var m [4]*MLSMessage
			for i := range m {
				var err error
				if m[i], err = alice.g.Encrypt([]byte(fmt.Sprint("message ", i)), nil); err != nil {
					t.Fatal(err)
				}
			}
			stateReceive(t, bob.g, m[0], "message 0")
			stateReceive(t, bob.g, m[2], "message 2")

			bob.g = stateRestart(t, bob.g, GroupConfig{})

			stateReceive(t, bob.g, m[1], "message 1") // the kept out-of-order key
			stateReceive(t, bob.g, m[3], "message 3") // the ratchet goes on
			// Bob's own sending ratchet goes on too: were it back at the
			// start, Alice would see a generation used twice (and the AEAD
			// nonce would repeat).
			stateSend(t, bob.g, "back again", alice.g)

			// Alice's next commit refreshes the path to Bob's leaf, which
			// only his restored leaf key can decrypt.
			stateCommit(t, alice.g, CommitOptions{ForcePath: true}, bob.g)
			stateSend(t, alice.g, "new epoch", bob.g)
			// And Bob's restored signing key still signs.
			stateCommit(t, bob.g, CommitOptions{ForcePath: true}, alice.g)
			stateSend(t, bob.g, "still here", alice.g)
		})
	}
}

func TestStateRestoreDoesNotReopenReplay(t *testing.T) {
	s := stateSuite(t, X25519AES128GCMSHA256Ed25519)
	alice, bob := stateAliceAndBob(t, s, GroupConfig{})
	m, err := alice.g.Encrypt([]byte("read once"), nil)
	if err != nil {
		t.Fatal(err)
	}
	stateReceive(t, bob.g, m, "read once")

	bob.g = stateRestart(t, bob.g, GroupConfig{})

	// The delivery service (or an attacker) sends the message again after
	// Bob's restart: the restored ratchet remembers it was used.
	if _, err := bob.g.ProcessMessage(m); !errors.Is(err, ErrGenerationUsed) {
		t.Fatalf("replayed message after restore: got %v, want ErrGenerationUsed", err)
	}
}

func TestStatePendingCommitSurvivesARestart(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			s := stateSuite(t, X25519AES128GCMSHA256Ed25519)
			config := GroupConfig{EncryptHandshake: encrypted}
			alice, bob := stateAliceAndBob(t, s, config)
			charlie := stateNewMember(t, s, "charlie")

			// Bob commits to add Charlie and restarts before the delivery
			// service confirms the commit.
			kp := charlie.keyPackage(t, s)
			res, err := bob.g.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalAdd, Add: kp.KeyPackage}}, InlineTree: true})
			if err != nil {
				t.Fatal(err)
			}
			bob.g = stateRestart(t, bob.g, config)
			if !bob.g.HasPendingCommit() {
				t.Fatal("the pending commit was lost")
			}

			// The commit comes back: a PublicMessage commit is merged
			// explicitly, a PrivateMessage one is recognized when it is
			// received (which needs the saved PrivateMessage).
			var r *Received
			if encrypted {
				r, err = bob.g.ProcessMessage(res.Commit)
			} else {
				r, err = bob.g.MergePendingCommit()
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Commit == nil || r.Commit.Epoch != 2 || len(r.Commit.Added) != 1 || r.Commit.Added[0] != 2 {
				t.Fatalf("merged commit summary %+v, want epoch 2 adding leaf 2", r.Commit)
			}
			if bob.g.HasPendingCommit() {
				t.Fatal("still a pending commit after merging")
			}
			if _, err := alice.g.ProcessMessage(res.Commit); err != nil {
				t.Fatal(err)
			}
			if charlie.g, err = JoinFromWelcome(res.Welcome.Welcome, kp, nil, config); err != nil {
				t.Fatal(err)
			}
			stateSameEpoch(t, alice.g, bob.g, charlie.g)
			stateSend(t, bob.g, "welcome Charlie", alice.g, charlie.g)
			stateSend(t, charlie.g, "thanks", alice.g, bob.g)
		})
	}
}

func TestStateKeepsProposalsAndUpdateKeys(t *testing.T) {
	s := stateSuite(t, P256AES128GCMSHA256P256)
	alice, bob := stateAliceAndBob(t, s, GroupConfig{})
	charlie := stateNewMember(t, s, "charlie")

	// Bob proposes to update his leaf (with a new signing key, too); the
	// private half waits in his state until someone commits the update.
	newSigner, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	update, err := bob.g.NewUpdateProposal(newSigner, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, _, err := bob.g.Propose(update, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.ProcessMessage(msg); err != nil {
		t.Fatal(err)
	}
	// Alice proposes to add Charlie; Bob caches the proposal.
	kp := charlie.keyPackage(t, s)
	msg, _, err = alice.g.Propose(&Proposal{Type: ProposalAdd, Add: kp.KeyPackage}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.ProcessMessage(msg); err != nil {
		t.Fatal(err)
	}

	bob.g = stateRestart(t, bob.g, GroupConfig{})

	// Alice commits both proposals by reference: Bob must still know the
	// add proposal and the private key of his update.
	res := stateCommit(t, alice.g, CommitOptions{InlineTree: true}, bob.g)
	if charlie.g, err = JoinFromWelcome(res.Welcome.Welcome, kp, nil, GroupConfig{}); err != nil {
		t.Fatal(err)
	}
	stateSameEpoch(t, alice.g, bob.g, charlie.g)
	if !bytes.Equal(bob.g.Tree().Leaf(bob.g.OwnLeaf()).SignatureKey, newSigner.PublicKey()) {
		t.Fatal("Bob's leaf does not carry his new signing key")
	}
	// Bob signs with the new key from now on.
	stateSend(t, bob.g, "updated", alice.g, charlie.g)
	stateCommit(t, bob.g, CommitOptions{ForcePath: true}, alice.g, charlie.g)
}

func TestStateKeepsResumptionPSKs(t *testing.T) {
	s := stateSuite(t, X25519AES128GCMSHA256Ed25519)
	alice, bob := stateAliceAndBob(t, s, GroupConfig{})
	stateCommit(t, alice.g, CommitOptions{ForcePath: true}, bob.g) // epoch 2
	stateCommit(t, bob.g, CommitOptions{ForcePath: true}, alice.g) // epoch 3

	bob.g = stateRestart(t, bob.g, GroupConfig{})

	// Alice injects the resumption PSK of epoch 1: Bob finds it among his
	// restored PSKs, not in any PSK store.
	psk := NewResumptionPSKID(s, ResumptionApplication, alice.g.GroupID(), 1)
	stateCommit(t, alice.g, CommitOptions{Proposals: []*Proposal{{Type: ProposalPSK, PSK: &psk}}}, bob.g)
}

func TestStateExternalJoinerRestarts(t *testing.T) {
	s := stateSuite(t, P384AES256GCMSHA384P384)
	alice, bob := stateAliceAndBob(t, s, GroupConfig{})
	dave := stateNewMember(t, s, "dave")
	info, err := alice.g.GroupInfo(true, true)
	if err != nil {
		t.Fatal(err)
	}
	var msg *MLSMessage
	if dave.g, msg, err = JoinExternal(info.GroupInfo, dave.id, ExternalJoinOptions{}, GroupConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{alice.g, bob.g} {
		if _, err := g.ProcessMessage(msg); err != nil {
			t.Fatal(err)
		}
	}
	dave.g = stateRestart(t, dave.g, GroupConfig{})
	stateSameEpoch(t, alice.g, bob.g, dave.g)
	stateSend(t, dave.g, "joined from outside", alice.g, bob.g)
	stateCommit(t, alice.g, CommitOptions{ForcePath: true}, bob.g, dave.g)
	stateCommit(t, dave.g, CommitOptions{ForcePath: true}, alice.g, bob.g)
}

func TestStateRemovedAndReInitStay(t *testing.T) {
	s := stateSuite(t, X25519AES128GCMSHA256Ed25519)

	t.Run("removed", func(t *testing.T) {
		alice, bob := stateAliceAndBob(t, s, GroupConfig{})
		res, err := alice.g.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalRemove, Remove: bob.g.OwnLeaf()}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.g.ProcessMessage(res.Commit); err != nil {
			t.Fatal(err)
		}
		bob.g = stateRestart(t, bob.g, GroupConfig{})
		if !bob.g.Removed() {
			t.Fatal("restored Bob forgot he was removed")
		}
		if _, err := bob.g.Encrypt([]byte("anyone?"), nil); !errors.Is(err, ErrGroupClosed) {
			t.Fatalf("sending after removal: got %v, want ErrGroupClosed", err)
		}
	})

	t.Run("reinit", func(t *testing.T) {
		alice, bob := stateAliceAndBob(t, s, GroupConfig{})
		reinit := &ReInit{GroupID: []byte("the next group"), Version: MLS10, CipherSuite: s.ID}
		stateCommit(t, alice.g, CommitOptions{Proposals: []*Proposal{{Type: ProposalReInit, ReInit: reinit}}}, bob.g)
		bob.g = stateRestart(t, bob.g, GroupConfig{})
		if got := bob.g.PendingReInit(); got == nil || !bytes.Equal(got.GroupID, reinit.GroupID) || got.CipherSuite != s.ID {
			t.Fatalf("restored reinit %+v, want %+v", got, reinit)
		}
		if _, err := bob.g.Encrypt([]byte("anyone?"), nil); !errors.Is(err, ErrGroupClosed) {
			t.Fatalf("sending after reinit: got %v, want ErrGroupClosed", err)
		}
	})
}

// stateSamples returns saved states of several kinds: a lone creator, a
// member after joining, one with cached proposals and update keys, one with
// a pending commit sent encrypted, a removed member.
func stateSamples(t testing.TB) map[string][]byte {
	t.Helper()
	s := stateSuite(t, X25519AES128GCMSHA256Ed25519)
	out := map[string][]byte{}
	save := func(name string, g *Group) {
		b, err := g.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	lone := stateNewMember(t, s, "lone")
	g, err := CreateGroup(s, []byte("lone group"), lone.id, nil, GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	save("creator", g)

	config := GroupConfig{EncryptHandshake: true}
	alice, bob := stateAliceAndBob(t, s, config)
	stateSend(t, alice.g, "hi", bob.g)
	save("joined", bob.g)

	update, err := bob.g.NewUpdateProposal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.g.Propose(update, nil); err != nil {
		t.Fatal(err)
	}
	msg, _, err := alice.g.Propose(&Proposal{Type: ProposalAdd, Add: stateNewMember(t, s, "charlie").keyPackage(t, s).KeyPackage}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.ProcessMessage(msg); err != nil {
		t.Fatal(err)
	}
	save("proposals", bob.g)

	if _, err := alice.g.Commit(CommitOptions{InlineTree: true}); err != nil {
		t.Fatal(err)
	}
	save("pending", alice.g)

	res, err := alice.g.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalRemove, Remove: bob.g.OwnLeaf()}}, OnlyByValue: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.ProcessMessage(res.Commit); err != nil {
		t.Fatal(err)
	}
	save("removed", bob.g)
	return out
}

func TestStateRestoreRefusesDamagedBytes(t *testing.T) {
	for name, saved := range stateSamples(t) {
		t.Run(name, func(t *testing.T) {
			refused := func(what string, data []byte) {
				t.Helper()
				g, err := RestoreGroup(data, GroupConfig{})
				if err == nil || g != nil {
					t.Fatalf("%s: restored", what)
				}
				var se *StateError
				if !errors.Is(err, ErrInvalidState) || !errors.As(err, &se) {
					t.Fatalf("%s: got %v, want a *StateError wrapping ErrInvalidState", what, err)
				}
			}
			if _, err := RestoreGroup(saved, GroupConfig{}); err != nil {
				t.Fatal(err)
			}
			refused("nil", nil)
			for n := range len(saved) {
				refused(fmt.Sprintf("truncated to %d bytes", n), saved[:n])
			}
			refused("trailing byte", append(bytes.Clone(saved), 0))
			for i := range saved {
				for bit := range 8 {
					b := bytes.Clone(saved)
					b[i] ^= 1 << bit
					refused(fmt.Sprintf("bit %d of byte %d flipped", bit, i), b)
				}
			}
		})
	}
}

// stateReseal replaces the checksum of saved state, as someone who edits the
// bytes on purpose could: what the checksum cannot catch, the consistency
// checks must.
func stateReseal(body []byte) []byte {
	sum := sha256.Sum256(body)
	return append(bytes.Clone(body), sum[:]...)
}

func TestStateRestoreRefusesTruncationBehindAValidChecksum(t *testing.T) {
	for name, saved := range stateSamples(t) {
		body := saved[:len(saved)-sha256.Size]
		for n := range len(body) {
			if _, err := RestoreGroup(stateReseal(body[:n]), GroupConfig{}); !errors.Is(err, ErrInvalidState) {
				t.Fatalf("%s truncated to %d bytes: got %v, want ErrInvalidState", name, n, err)
			}
		}
	}
}

func TestStateRestoreRefusesInconsistentState(t *testing.T) {
	s := stateSuite(t, X25519AES128GCMSHA256Ed25519)
	alice, bob := stateAliceAndBob(t, s, GroupConfig{})
	stateCommit(t, alice.g, CommitOptions{ForcePath: true}, bob.g)
	oldSecrets := bob.g.secrets.Clone() // of epoch 2
	stateCommit(t, alice.g, CommitOptions{ForcePath: true}, bob.g)
	if _, err := bob.g.Commit(CommitOptions{ForcePath: true}); err != nil {
		t.Fatal(err)
	}
	saved, err := bob.g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, err := s.GenerateHPKEKey()
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte) []byte { c := bytes.Clone(b); c[0] ^= 1; return c }

	for _, c := range []struct {
		name   string
		part   string // the StateError's Part must contain this
		damage func(g *Group)
	}{
		{"tree hash", "ratchet tree", func(g *Group) { g.ctx.TreeHash = flip(g.ctx.TreeHash) }},
		{"own leaf outside the tree", "own leaf", func(g *Group) { g.self = 9; g.priv.Leaf = 9 }},
		{"own leaf is Alice's", "signature key", func(g *Group) { g.self = 0; g.priv.Leaf = 0 }},
		{"another signing key", "signature key", func(g *Group) { g.signer = otherSigner }},
		{"another leaf key", "tree private keys", func(g *Group) { g.priv.LeafKey = otherKey }},
		{"another node key", "tree private keys", func(g *Group) { g.priv.keys[1] = otherKey }},
		{"no leaf key", "tree private keys", func(g *Group) { g.priv.LeafKey = nil }},
		{"secrets of another epoch", "confirmation tag", func(g *Group) { g.secrets = oldSecrets }},
		{"missing membership key", "epoch secrets", func(g *Group) { g.secrets.MembershipKey = nil }},
		{"secret tree of another size", "secret tree", func(g *Group) {
			g.keys, _ = NewSecretTree(s, RandomBytes(s.HashSize()), 4)
		}},
		{"confirmation tag", "confirmation tag", func(g *Group) { g.confirmationTag = flip(g.confirmationTag) }},
		{"interim transcript hash", "interim transcript hash", func(g *Group) { g.interimHash = flip(g.interimHash) }},
		{"resumption PSK from the future", "resumption PSKs", func(g *Group) { g.resumption[g.ctx.Epoch+1] = RandomBytes(s.HashSize()) }},
		{"resumption PSK of this epoch", "resumption PSKs", func(g *Group) { g.resumption[g.ctx.Epoch] = RandomBytes(s.HashSize()) }},
		{"proposal reference", "cached proposals", func(g *Group) {
			g.proposals = append(g.proposals, cachedProposal{ref: []byte{1}, proposal: &Proposal{Type: ProposalRemove}, sender: Sender{Type: SenderMember}})
		}},
		{"proposal from a non-member", "cached proposals", func(g *Group) {
			g.proposals = append(g.proposals, cachedProposal{ref: RandomBytes(s.HashSize()), proposal: &Proposal{Type: ProposalRemove}, sender: Sender{Type: SenderMember, Leaf: 5}})
		}},
		{"pending commit of another epoch", "pending commit", func(g *Group) { g.pending.ctx.Epoch++ }},
		{"pending commit's data", "pending commit: signature", func(g *Group) { g.pending.content.Content.AuthenticatedData = []byte("x") }},
		{"pending commit's tag", "pending commit: confirmation tag", func(g *Group) { g.pending.confirmationTag = flip(g.pending.confirmationTag) }},
		{"pending commit's keys", "pending commit: tree private keys", func(g *Group) { g.pending.priv = g.priv }},
		{"pending commit's secrets", "pending commit: confirmation tag", func(g *Group) {
			g.pending.secrets, _ = NewEpochSecrets(s, RandomBytes(s.HashSize()), nil, nil, Marshal(&g.pending.ctx))
		}},
		{"pending commit's forgotten secrets", "pending commit: epoch secrets", func(g *Group) { g.pending.secrets.ForgetConsumed() }},
		{"pending commit's tree", "pending commit: ratchet tree", func(g *Group) { g.pending.tree = g.tree }},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := RestoreGroup(saved, GroupConfig{})
			if err != nil {
				t.Fatal(err)
			}
			c.damage(g)
			damaged, err := g.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			_, err = RestoreGroup(damaged, GroupConfig{})
			var se *StateError
			if !errors.Is(err, ErrInvalidState) || !errors.As(err, &se) {
				t.Fatalf("got %v, want a *StateError wrapping ErrInvalidState", err)
			}
			if !strings.Contains(se.Part, c.part) {
				t.Fatalf("refused for %q (%v), want a complaint about %q", se.Part, err, c.part)
			}
		})
	}
}

func TestStateRestoreRefusesUnknownFormat(t *testing.T) {
	saved := stateSamples(t)["joined"]
	b := bytes.Clone(saved)
	b[0] = 2
	_, err := RestoreGroup(stateReseal(b[:len(b)-sha256.Size]), GroupConfig{})
	if !errors.Is(err, ErrInvalidState) || !strings.Contains(err.Error(), "format 2") {
		t.Fatalf("got %v, want an unknown-format error", err)
	}
}

// A client that keeps the tree apart from the rest of the state restores
// the same group from the two parts, with or without a pending commit;
// the tree of another epoch is refused, and neither format passes for
// the other.
func TestStateTreeApart(t *testing.T) {
	s := stateSuite(t, X25519AES128GCMSHA256Ed25519)
	alice, bob := stateAliceAndBob(t, s, GroupConfig{})
	oldState, err := bob.g.MarshalStateApart()
	if err != nil {
		t.Fatal(err)
	}
	oldTree := bob.g.MarshalTree()
	whole, err := bob.g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if len(oldState)+len(oldTree) != len(whole) {
		t.Errorf("state %d + tree %d bytes apart, %d together", len(oldState), len(oldTree), len(whole))
	}
	stateSend(t, alice.g, "before", bob.g)
	stateCommit(t, alice.g, CommitOptions{ForcePath: true}, bob.g)

	// Bob commits and restarts before he hears whether he won: the pending
	// commit (with its own new tree) is in the state part.
	if _, err := bob.g.Commit(CommitOptions{ForcePath: true}); err != nil {
		t.Fatal(err)
	}
	state, err := bob.g.MarshalStateApart()
	if err != nil {
		t.Fatal(err)
	}
	tree := bob.g.MarshalTree()
	g, err := RestoreGroupApart(state, tree, GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if !g.HasPendingCommit() || !bytes.Equal(g.TreeHash(), bob.g.TreeHash()) {
		t.Fatal("the restored group lost its pending commit or its tree")
	}
	g.ClearPendingCommit()
	bob.g = g
	stateSend(t, bob.g, "after", alice.g)
	stateSend(t, alice.g, "and back", bob.g)

	for name, try := range map[string]func() error{
		"the tree of an earlier epoch": func() error { _, err := RestoreGroupApart(state, oldTree, GroupConfig{}); return err },
		"no tree":                      func() error { _, err := RestoreGroupApart(state, nil, GroupConfig{}); return err },
		"the tree with a byte more":    func() error { _, err := RestoreGroupApart(state, append(tree, 0), GroupConfig{}); return err },
		"a whole state as a part":      func() error { _, err := RestoreGroupApart(whole, tree, GroupConfig{}); return err },
		"a part as a whole state":      func() error { _, err := RestoreGroup(state, GroupConfig{}); return err },
	} {
		if err := try(); !errors.Is(err, ErrInvalidState) {
			t.Errorf("%s: %v, want ErrInvalidState", name, err)
		}
	}
}
