package mls

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// These tests play groups of clients through the life of a group: creating
// it, adding and removing people, updating keys, joining from outside, and
// talking. After every commit all members must agree on the epoch
// authenticator, which proves they derived the same key schedule.

type member struct {
	name string
	g    *Group
	sig  *SignaturePrivateKey
}

type scenario struct {
	t       *testing.T
	s       *Suite
	config  GroupConfig
	members map[string]*member
}

func newScenario(t *testing.T, id CipherSuite, config GroupConfig) *scenario {
	t.Helper()
	s, err := SuiteFor(id)
	if err != nil {
		t.Fatal(err)
	}
	return &scenario{t: t, s: s, config: config, members: map[string]*member{}}
}

func (sc *scenario) identity(name string) (Identity, *SignaturePrivateKey) {
	sig, err := sc.s.GenerateSignatureKey()
	if err != nil {
		sc.t.Fatal(err)
	}
	return Identity{Signer: sig, Credential: Credential{Type: CredentialBasic, Identity: []byte(name)}}, sig
}

// create makes name the founder of a group.
func (sc *scenario) create(name string, exts Extensions) *member {
	sc.t.Helper()
	id, sig := sc.identity(name)
	g, err := CreateGroup(sc.s, []byte("room-"+name), id, exts, sc.config)
	if err != nil {
		sc.t.Fatalf("%s creates the group: %v", name, err)
	}
	m := &member{name: name, g: g, sig: sig}
	sc.members[name] = m
	return m
}

// keyPackage makes a KeyPackage for a client who is not yet a member.
func (sc *scenario) keyPackage(name string) *KeyPackagePrivate {
	sc.t.Helper()
	_, sig := sc.identity(name)
	kp, err := NewKeyPackage(sc.s, sig, Credential{Type: CredentialBasic, Identity: []byte(name)}, KeyPackageOptions{})
	if err != nil {
		sc.t.Fatal(err)
	}
	return kp
}

// commit has committer commit with o, delivers the commit to every other
// member, merges it for the committer, and welcomes the new members.
func (sc *scenario) commit(committer string, o CommitOptions, joiners map[string]*KeyPackagePrivate) *CommitResult {
	sc.t.Helper()
	c := sc.members[committer]
	res, err := c.g.Commit(o)
	if err != nil {
		sc.t.Fatalf("%s commits: %v", committer, err)
	}
	sc.broadcast(committer, res.Commit)
	if _, err := c.g.MergePendingCommit(); err != nil {
		sc.t.Fatalf("%s merges its commit: %v", committer, err)
	}
	for name, kp := range joiners {
		if res.Welcome == nil {
			sc.t.Fatalf("no Welcome for %s", name)
		}
		var tree TreeNodes
		if !o.InlineTree {
			tree = c.g.Tree().TreeNodes()
		}
		g, err := JoinFromWelcome(res.Welcome.Welcome, kp, tree, sc.config)
		if err != nil {
			sc.t.Fatalf("%s joins: %v", name, err)
		}
		sc.members[name] = &member{name: name, g: g, sig: kp.SignatureKey}
	}
	sc.agree()
	return res
}

// broadcast delivers msg (after a round trip through its wire encoding) to
// every member but the sender and returns what each received.
func (sc *scenario) broadcast(sender string, msg *MLSMessage) map[string]*Received {
	sc.t.Helper()
	wire := Marshal(msg)
	out := map[string]*Received{}
	for name, m := range sc.members {
		if name == sender || m.g.Removed() {
			continue
		}
		parsed, err := ParseMLSMessage(wire)
		if err != nil {
			sc.t.Fatalf("%s parses a message from %s: %v", name, sender, err)
		}
		r, err := m.g.ProcessMessage(parsed)
		if err != nil {
			sc.t.Fatalf("%s processes a message from %s: %v", name, sender, err)
		}
		out[name] = r
	}
	return out
}

// agree checks that every remaining member is in the same epoch with the
// same authenticator, tree and exported secret.
func (sc *scenario) agree() {
	sc.t.Helper()
	var first *member
	for _, m := range sc.members {
		if m.g.Removed() {
			continue
		}
		if first == nil {
			first = m
			continue
		}
		a, b := first.g, m.g
		if a.Epoch() != b.Epoch() {
			sc.t.Fatalf("%s is in epoch %d, %s in epoch %d", first.name, a.Epoch(), m.name, b.Epoch())
		}
		if !bytes.Equal(a.EpochAuthenticator(), b.EpochAuthenticator()) {
			sc.t.Fatalf("%s and %s disagree on the epoch authenticator of epoch %d", first.name, m.name, a.Epoch())
		}
		if !bytes.Equal(a.Tree().TreeHash(), b.Tree().TreeHash()) {
			sc.t.Fatalf("%s and %s disagree on the tree", first.name, m.name)
		}
		ea, _ := a.Export("test", nil, 32)
		eb, _ := b.Export("test", nil, 32)
		if !bytes.Equal(ea, eb) {
			sc.t.Fatalf("%s and %s export different secrets", first.name, m.name)
		}
	}
}

// say has sender send text and checks every other member reads it.
func (sc *scenario) say(sender, text string) {
	sc.t.Helper()
	msg, err := sc.members[sender].g.Encrypt([]byte(text), []byte("aad"))
	if err != nil {
		sc.t.Fatalf("%s encrypts: %v", sender, err)
	}
	for name, r := range sc.broadcast(sender, msg) {
		if string(r.ApplicationData) != text || r.ContentType != ContentApplication {
			sc.t.Fatalf("%s read %q from %s, want %q", name, r.ApplicationData, sender, text)
		}
	}
}

func add(kps ...*KeyPackagePrivate) []*Proposal {
	var ps []*Proposal
	for _, kp := range kps {
		ps = append(ps, &Proposal{Type: ProposalAdd, Add: kp.KeyPackage})
	}
	return ps
}

func TestTwoPeopleChatInEverySuite(t *testing.T) {
	for _, id := range SupportedSuites {
		t.Run(id.String(), func(t *testing.T) {
			sc := newScenario(t, id, GroupConfig{})
			sc.create("alice", nil)
			bob := sc.keyPackage("bob")
			sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})
			sc.say("alice", "hi bob")
			sc.say("bob", "hi alice")
			sc.commit("bob", CommitOptions{}, nil) // an empty commit refreshes bob's path
			sc.say("alice", "still here")
		})
	}
}

func TestGroupGrowsChangesKeysAndShrinks(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted-handshake=%v", encrypt), func(t *testing.T) {
			sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{EncryptHandshake: encrypt, PaddingBlock: 32})
			sc.create("alice", nil)
			bob, carol, dave := sc.keyPackage("bob"), sc.keyPackage("carol"), sc.keyPackage("dave")
			// The tree goes to the joiners out of band here.
			sc.commit("alice", CommitOptions{Proposals: add(bob, carol, dave)}, map[string]*KeyPackagePrivate{"bob": bob, "carol": carol, "dave": dave})
			sc.say("carol", "hello all")

			// Bob refreshes his leaf by proposal; Carol commits it by reference.
			up, err := sc.members["bob"].g.NewUpdateProposal(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			msg, _, err := sc.members["bob"].g.Propose(up, nil)
			if err != nil {
				t.Fatal(err)
			}
			sc.broadcast("bob", msg)
			sc.commit("carol", CommitOptions{}, nil)
			sc.say("bob", "new keys")

			// Alice removes Dave; Dave learns it and can no longer send.
			daveLeaf := sc.members["dave"].g.OwnLeaf()
			res, err := sc.members["alice"].g.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalRemove, Remove: daveLeaf}}})
			if err != nil {
				t.Fatal(err)
			}
			got := sc.broadcast("alice", res.Commit)
			if !got["dave"].Commit.RemovedSelf {
				t.Fatal("dave was not told he was removed")
			}
			if _, err := sc.members["alice"].g.MergePendingCommit(); err != nil {
				t.Fatal(err)
			}
			if _, err := sc.members["dave"].g.Encrypt([]byte("let me in"), nil); !errors.Is(err, ErrGroupClosed) {
				t.Fatalf("removed dave could still encrypt: %v", err)
			}
			delete(sc.members, "dave")
			sc.agree()
			sc.say("alice", "dave has left")
			if n := len(sc.members["bob"].g.Members()); n != 3 {
				t.Fatalf("bob sees %d members, want 3", n)
			}
		})
	}
}

func TestSomeoneJoinsFromOutside(t *testing.T) {
	for _, id := range SupportedSuites {
		t.Run(id.String(), func(t *testing.T) {
			sc := newScenario(t, id, GroupConfig{})
			sc.create("alice", nil)
			bob := sc.keyPackage("bob")
			sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})

			info, err := sc.members["bob"].g.GroupInfo(true, true)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseMLSMessage(Marshal(info))
			if err != nil {
				t.Fatal(err)
			}
			eveID, eveSig := sc.identity("eve")
			eve, commit, err := JoinExternal(parsed.GroupInfo, eveID, ExternalJoinOptions{}, sc.config)
			if err != nil {
				t.Fatalf("eve joins from outside: %v", err)
			}
			got := sc.broadcast("eve", commit)
			if got["alice"].Commit.Joined == nil || *got["alice"].Commit.Joined != eve.OwnLeaf() {
				t.Fatalf("alice did not see eve join at leaf %d", eve.OwnLeaf())
			}
			sc.members["eve"] = &member{name: "eve", g: eve, sig: eveSig}
			sc.agree()
			sc.say("eve", "hello from outside")
			sc.commit("alice", CommitOptions{}, nil)
			sc.say("bob", "welcome eve")
		})
	}
}

func TestHubProposesAsExternalSender(t *testing.T) {
	sc := newScenario(t, P256AES128GCMSHA256P256, GroupConfig{})
	hubSig, err := sc.s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	senders := ExternalSenders{{SignatureKey: hubSig.PublicKey(), Credential: Credential{Type: CredentialBasic, Identity: []byte("hub.example")}}}
	sc.create("alice", Extensions{{Type: ExtExternalSenders, Data: Marshal(senders)}})
	bob, carol := sc.keyPackage("bob"), sc.keyPackage("carol")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})

	// The hub proposes adding Carol; Bob commits; Carol is welcomed.
	a := sc.members["alice"].g
	msg, err := ExternalProposal(sc.s, a.GroupID(), a.Epoch(), 0, hubSig, &Proposal{Type: ProposalAdd, Add: carol.KeyPackage}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range sc.broadcast("hub", msg) {
		if r.Sender.Type != SenderExternal {
			t.Fatalf("%s saw sender %v", name, r.Sender)
		}
	}
	sc.commit("bob", CommitOptions{InlineTree: true}, map[string]*KeyPackagePrivate{"carol": carol})

	// An impostor with another key is refused.
	mallory, _ := sc.s.GenerateSignatureKey()
	forged, err := ExternalProposal(sc.s, a.GroupID(), a.Epoch(), 0, mallory, &Proposal{Type: ProposalRemove, Remove: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.members["alice"].g.ProcessMessage(forged); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged hub proposal: %v", err)
	}
	// A hub may not propose updates at all.
	if _, err := ExternalProposal(sc.s, a.GroupID(), a.Epoch(), 0, hubSig, &Proposal{Type: ProposalUpdate}, nil); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("external update proposal: %v", err)
	}
}

func TestPreSharedKeysEnterTheKeySchedule(t *testing.T) {
	psks := &PSKMap{}
	psks.AddExternal([]byte("shared-secret"), []byte("0123456789abcdef"))
	sc := newScenario(t, X25519ChaCha20Poly1305SHA256Ed25519, GroupConfig{PSKs: psks})
	sc.create("alice", nil)
	bob := sc.keyPackage("bob")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})

	ext := NewExternalPSKID(sc.s, []byte("shared-secret"))
	res := NewResumptionPSKID(sc.s, ResumptionApplication, sc.members["alice"].g.GroupID(), sc.members["alice"].g.Epoch())
	sc.commit("bob", CommitOptions{Proposals: []*Proposal{{Type: ProposalPSK, PSK: &ext}, {Type: ProposalPSK, PSK: &res}}}, nil)
	sc.say("alice", "keyed with psks")

	// A member without the PSK cannot follow.
	carol := sc.keyPackage("carol")
	unknown := NewExternalPSKID(sc.s, []byte("nobody-has-this"))
	if _, err := sc.members["alice"].g.Commit(CommitOptions{Proposals: append(add(carol), &Proposal{Type: ProposalPSK, PSK: &unknown})}); !errors.Is(err, ErrMissingPSK) {
		t.Fatalf("commit with an unknown PSK: %v", err)
	}
}

func TestStaleAndDuelingCommits(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	sc.create("alice", nil)
	bob := sc.keyPackage("bob")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})

	// Alice and Bob commit at once; the delivery service takes Alice's.
	ra, err := sc.members["alice"].g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := sc.members["bob"].g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.members["bob"].g.ProcessMessage(ra.Commit); err != nil {
		t.Fatalf("bob processes the winning commit: %v", err)
	}
	if sc.members["bob"].g.HasPendingCommit() {
		t.Fatal("bob still holds his losing commit")
	}
	if _, err := sc.members["alice"].g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	sc.agree()
	_, err = sc.members["alice"].g.ProcessMessage(rb.Commit)
	if !errors.Is(err, ErrWrongEpoch) || !strings.Contains(err.Error(), "commit for epoch 1 in epoch 2") {
		t.Fatalf("the losing commit: %v", err)
	}
	// A commit delivered twice is refused the second time.
	if _, err := sc.members["bob"].g.ProcessMessage(ra.Commit); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("replayed commit: %v", err)
	}
}

func TestTamperedCommitChangesNothing(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	sc.create("alice", nil)
	bob := sc.keyPackage("bob")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})
	res, err := sc.members["alice"].g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := sc.members["bob"].g.EpochAuthenticator()
	res.Commit.Public.Auth.ConfirmationTag[0] ^= 1
	if _, err := sc.members["bob"].g.ProcessMessage(res.Commit); err == nil {
		t.Fatal("tampered commit accepted")
	}
	if sc.members["bob"].g.Epoch() != 1 || !bytes.Equal(before, sc.members["bob"].g.EpochAuthenticator()) {
		t.Fatal("a refused commit changed bob's state")
	}
	res.Commit.Public.Auth.ConfirmationTag[0] ^= 1
	if _, err := sc.members["bob"].g.ProcessMessage(res.Commit); err != nil {
		t.Fatalf("the genuine commit after a tampered copy: %v", err)
	}
}

func TestReInitClosesTheGroup(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	sc.create("alice", nil)
	bob := sc.keyPackage("bob")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})
	reinit := &ReInit{GroupID: []byte("room-alice-v2"), Version: MLS10, CipherSuite: P256AES128GCMSHA256P256}
	sc.commit("bob", CommitOptions{Proposals: []*Proposal{{Type: ProposalReInit, ReInit: reinit}}}, nil)
	for name, m := range sc.members {
		if r := m.g.PendingReInit(); r == nil || !bytes.Equal(r.GroupID, reinit.GroupID) {
			t.Fatalf("%s did not note the reinit", name)
		}
		if _, err := m.g.Encrypt([]byte("x"), nil); !errors.Is(err, ErrGroupClosed) {
			t.Fatalf("%s could still send after reinit: %v", name, err)
		}
	}
}

func TestEchoedProposalIsCachedOnce(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	sc.create("alice", nil)
	bob, carol := sc.keyPackage("bob"), sc.keyPackage("carol")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})
	msg, _, err := sc.members["alice"].g.Propose(&Proposal{Type: ProposalAdd, Add: carol.KeyPackage}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The delivery service echoes alice's proposal to her and sends it to bob twice.
	for _, name := range []string{"alice", "bob", "bob"} {
		if _, err := sc.members[name].g.ProcessMessage(msg); err != nil {
			t.Fatalf("%s processes the proposal: %v", name, err)
		}
	}
	sc.commit("bob", CommitOptions{InlineTree: true}, map[string]*KeyPackagePrivate{"carol": carol})
	sc.say("carol", "added once")
}

func TestReInitMovesTheGroupToANewSuite(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	sc.create("alice", nil)
	bob := sc.keyPackage("bob")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})
	reinit := &ReInit{GroupID: []byte("room-alice-p256"), Version: MLS10, CipherSuite: P256AES128GCMSHA256P256}
	sc.commit("bob", CommitOptions{Proposals: []*Proposal{{Type: ProposalReInit, ReInit: reinit}}}, nil)

	// Bob makes a KeyPackage in the new suite; Alice starts the new group.
	old := sc.members
	p256 := newScenario(t, P256AES128GCMSHA256P256, GroupConfig{})
	bobNew := p256.keyPackage("bob")
	aliceID, aliceSig := p256.identity("alice")
	aliceNew, res, err := old["alice"].g.ReInitSuccessor(aliceID, []*KeyPackage{bobNew.KeyPackage}, CommitOptions{})
	if err != nil {
		t.Fatalf("alice starts the new group: %v", err)
	}
	psks := &PSKMap{}
	oldBob := old["bob"].g
	psk, ok := oldBob.ResumptionPSKOf(oldBob.Epoch())
	if !ok {
		t.Fatal("bob kept no resumption PSK")
	}
	psks.AddResumption(oldBob.GroupID(), oldBob.Epoch(), psk)
	bobGroup, err := JoinFromWelcome(res.Welcome.Welcome, bobNew, aliceNew.Tree().TreeNodes(), GroupConfig{PSKs: psks})
	if err != nil {
		t.Fatalf("bob joins the new group: %v", err)
	}
	p256.members["alice"] = &member{name: "alice", g: aliceNew, sig: aliceSig}
	p256.members["bob"] = &member{name: "bob", g: bobGroup, sig: bobNew.SignatureKey}
	p256.agree()
	p256.say("bob", "same people, new suite")

	// Without the old group's PSK the Welcome is useless.
	if _, err := JoinFromWelcome(res.Welcome.Welcome, bobNew, aliceNew.Tree().TreeNodes(), GroupConfig{}); !errors.Is(err, ErrMissingPSK) {
		t.Fatalf("join without the reinit PSK: %v", err)
	}
}

func TestBranchStartsASubgroup(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	sc.create("alice", nil)
	bob, carol := sc.keyPackage("bob"), sc.keyPackage("carol")
	sc.commit("alice", CommitOptions{Proposals: add(bob, carol), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob, "carol": carol})

	bob2 := sc.keyPackage("bob")
	alice := sc.members["alice"].g
	sub, res, err := alice.Branch([]byte("side-room"), nil, []*KeyPackage{bob2.KeyPackage}, CommitOptions{InlineTree: true})
	if err != nil {
		t.Fatalf("alice branches: %v", err)
	}
	b := sc.members["bob"].g
	psk, _ := b.ResumptionPSKOf(b.Epoch())
	psks := &PSKMap{}
	psks.AddResumption(b.GroupID(), b.Epoch(), psk)
	bobSub, err := JoinFromWelcome(res.Welcome.Welcome, bob2, nil, GroupConfig{PSKs: psks})
	if err != nil {
		t.Fatalf("bob joins the branch: %v", err)
	}
	if !bytes.Equal(sub.EpochAuthenticator(), bobSub.EpochAuthenticator()) || sub.Epoch() != 1 {
		t.Fatal("alice and bob disagree on the branch")
	}
	sc.say("carol", "the main room goes on") // the original group is untouched
}

func TestExternalJoinWithPSKReplacingAnOldDevice(t *testing.T) {
	psks := &PSKMap{}
	psks.AddExternal([]byte("room-psk"), []byte("fedcba9876543210"))
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{PSKs: psks})
	sc.create("alice", nil)
	bob := sc.keyPackage("bob")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})

	// Bob lost his device; he rejoins from outside, removing his old leaf.
	info, err := sc.members["alice"].g.GroupInfo(true, true)
	if err != nil {
		t.Fatal(err)
	}
	old := sc.members["bob"].g.OwnLeaf()
	id, sig := sc.identity("bob")
	psk := NewExternalPSKID(sc.s, []byte("room-psk"))
	bob2, commit, err := JoinExternal(info.GroupInfo, id, ExternalJoinOptions{Resync: &old, PSKs: []PreSharedKeyID{psk}}, sc.config)
	if err != nil {
		t.Fatalf("bob rejoins: %v", err)
	}
	delete(sc.members, "bob")
	got := sc.broadcast("bob2", commit)
	if r := got["alice"].Commit; len(r.Removed) != 1 || r.Removed[0] != old {
		t.Fatalf("alice saw removed %v, want leaf %d", r.Removed, old)
	}
	sc.members["bob"] = &member{name: "bob", g: bob2, sig: sig}
	sc.agree()
	sc.say("bob", "back again")
}

func TestLateMessagesOfThePreviousEpochAreRead(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	sc.create("alice", nil)
	bob := sc.keyPackage("bob")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})
	alice, b := sc.members["alice"].g, sc.members["bob"].g
	early, _ := alice.Encrypt([]byte("sent before the commit"), nil)
	sc.commit("alice", CommitOptions{}, nil)
	sc.commit("alice", CommitOptions{}, nil)
	r, err := b.ProcessMessage(early)
	if err != nil || string(r.ApplicationData) != "sent before the commit" {
		t.Fatalf("late message: %v", err)
	}
	if _, err := b.ProcessMessage(early); err == nil {
		t.Fatal("a late message was read twice")
	}
	// Three commits later its keys are gone.
	old, _ := alice.Encrypt([]byte("too old"), nil)
	for range 3 {
		sc.commit("alice", CommitOptions{}, nil)
	}
	if _, err := b.ProcessMessage(old); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("message three epochs late: %v", err)
	}
}

func TestNoProposalCanJamTheGroup(t *testing.T) {
	psks := &PSKMap{}
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{PSKs: psks})
	sc.create("alice", nil)
	bob, carol := sc.keyPackage("bob"), sc.keyPackage("carol")
	sc.commit("alice", CommitOptions{Proposals: add(bob, carol), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob, "carol": carol})
	propose := func(name string, p *Proposal) {
		t.Helper()
		msg, _, err := sc.members[name].g.Propose(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		sc.broadcast(name, msg)
	}
	update := func(name string) *Proposal {
		t.Helper()
		p, err := sc.members[name].g.NewUpdateProposal(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Two Updates from bob and a PSK nobody holds: carol still commits,
	// taking bob's latest Update and leaving the PSK out.
	propose("bob", update("bob"))
	propose("bob", update("bob"))
	unknown := NewExternalPSKID(sc.s, []byte("nobody-holds-this"))
	propose("bob", &Proposal{Type: ProposalPSK, PSK: &unknown})
	res := sc.commit("carol", CommitOptions{}, nil)
	if n := len(res.Commit.Public.Content.Commit.Proposals); n != 1 {
		t.Fatalf("carol's commit carries %d proposals, want bob's latest update only", n)
	}
	sc.say("bob", "my new keys work")

	// An Update from bob cannot stop alice from removing him.
	propose("bob", update("bob"))
	bobLeaf := sc.members["bob"].g.OwnLeaf()
	res, err := sc.members["alice"].g.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalRemove, Remove: bobLeaf}}})
	if err != nil {
		t.Fatalf("removing bob after his update: %v", err)
	}
	if got := sc.broadcast("alice", res.Commit); !got["bob"].Commit.RemovedSelf {
		t.Fatal("bob was not removed")
	}
	if _, err := sc.members["alice"].g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	delete(sc.members, "bob")
	sc.agree()
}

func TestRefusedCommitKeepsTheSigningKey(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	sc.create("alice", nil)
	bob := sc.keyPackage("bob")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})
	b := sc.members["bob"].g
	newSig, _ := sc.s.GenerateSignatureKey()
	up, err := b.NewUpdateProposal(newSig, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, _, err := b.Propose(up, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc.broadcast("bob", msg)
	a := sc.members["alice"].g
	res, err := a.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A commit with a bad confirmation tag but a valid membership tag: bob
	// refuses it, and must not have switched to his new key.
	pm := res.Commit.Public
	pm.Auth.ConfirmationTag[0] ^= 1
	pm.MembershipTag = membershipTag(sc.s, a.secrets.MembershipKey, &pm.Content, &pm.Auth, &a.ctx)
	oldKey := b.signer.PublicKey()
	if _, err := b.ProcessMessage(res.Commit); err == nil {
		t.Fatal("a commit with a bad confirmation tag was accepted")
	}
	if !bytes.Equal(b.signer.PublicKey(), oldKey) {
		t.Fatal("a refused commit switched bob's signing key")
	}
}

func TestPathReusingAKeyIsRefused(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	sc.create("alice", nil)
	bob, carol := sc.keyPackage("bob"), sc.keyPackage("carol")
	sc.commit("alice", CommitOptions{Proposals: add(bob, carol), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob, "carol": carol})
	a := sc.members["alice"].g
	res, err := a.Commit(CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	a.ClearPendingCommit()
	path := res.Commit.Public.Content.Commit.Path
	// Alice's new leaf takes the key of the first node of her path (the
	// parent hashes do not cover it), re-signed so the leaf still verifies.
	path.LeafNode.EncryptionKey = path.Nodes[0].EncryptionKey
	if err := path.LeafNode.Sign(sc.s, a.signer, a.ctx.GroupID, a.self); err != nil {
		t.Fatal(err)
	}
	b := sc.members["bob"].g
	tree := b.tree.CloneShared()
	check, _ := b.view().leafCheck(b.ctx.Extensions)
	if err := tree.ApplyUpdatePath(a.self, path, nil, check); !errors.Is(err, ErrInvalidUpdatePath) {
		t.Fatalf("a path reusing its own key: %v", err)
	}
	// A path node taking a key that is elsewhere in the tree is refused too.
	path2 := *path
	path2.Nodes = append([]UpdatePathNode{}, path.Nodes...)
	path2.Nodes[0].EncryptionKey = b.tree.Leaf(b.self).EncryptionKey
	if err := b.tree.CloneShared().ApplyUpdatePath(a.self, &path2, nil, check); err == nil {
		t.Fatal("a path node with bob's leaf key was accepted")
	}
}
