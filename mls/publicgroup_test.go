package mls

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// These tests run rooms as Switchboard will: every handshake message goes
// through a hub that follows the group with a PublicGroup, checks the
// message, applies it, and only then hands it to the members. After every
// commit the hub must agree with the members on the GroupContext, which
// covers the epoch, the tree hash and the confirmed transcript hash.

// hubbed is a scenario whose handshake messages pass through a hub.
type hubbed struct {
	*scenario
	hub *PublicGroup
}

// newHubbed has founder create a group with exts and the hub follow it from
// the founder's epoch-0 GroupInfo, as the founder uploads it when it
// registers the room.
func newHubbed(t *testing.T, id CipherSuite, config GroupConfig, founder string, exts Extensions) *hubbed {
	t.Helper()
	sc := newScenario(t, id, config)
	m := sc.create(founder, exts)
	info, err := m.g.GroupInfo(true, false)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseMLSMessage(Marshal(info))
	if err != nil {
		t.Fatal(err)
	}
	hub, err := NewPublicGroup(parsed.GroupInfo, nil)
	if err != nil {
		t.Fatalf("the hub follows the new room: %v", err)
	}
	h := &hubbed{scenario: sc, hub: hub}
	h.follows()
	return h
}

// check has the hub check msg, as received from the wire.
func (h *hubbed) check(msg *MLSMessage) (*PublicUpdate, error) {
	parsed, err := ParseMLSMessage(Marshal(msg))
	if err != nil {
		h.t.Fatalf("the hub parses a message: %v", err)
	}
	return h.hub.Check(parsed)
}

// deliver has the hub check and apply msg, then hands it to the members.
func (h *hubbed) deliver(sender string, msg *MLSMessage) *PublicUpdate {
	h.t.Helper()
	u, err := h.check(msg)
	if err != nil {
		h.t.Fatalf("the hub refuses a message from %s: %v", sender, err)
	}
	if err := h.hub.Apply(u); err != nil {
		h.t.Fatalf("the hub applies a message from %s: %v", sender, err)
	}
	h.broadcast(sender, msg)
	return u
}

// commit is scenario.commit through the hub: joiners get the tree from the
// hub, and the hub checks the committer's new GroupInfo.
func (h *hubbed) commit(committer string, o CommitOptions, joiners map[string]*KeyPackagePrivate) (*CommitResult, *PublicUpdate) {
	h.t.Helper()
	c := h.members[committer]
	res, err := c.g.Commit(o)
	if err != nil {
		h.t.Fatalf("%s commits: %v", committer, err)
	}
	u := h.deliver(committer, res.Commit)
	if _, err := c.g.MergePendingCommit(); err != nil {
		h.t.Fatalf("%s merges its commit: %v", committer, err)
	}
	for name, kp := range joiners {
		g, err := JoinFromWelcome(res.Welcome.Welcome, kp, h.hub.Tree().TreeNodes(), h.config)
		if err != nil {
			h.t.Fatalf("%s joins with the hub's tree: %v", name, err)
		}
		h.members[name] = &member{name: name, g: g, sig: kp.SignatureKey}
	}
	if err := h.hub.CheckGroupInfo(res.GroupInfo.GroupInfo); err != nil {
		h.t.Fatalf("the hub refuses %s's GroupInfo: %v", committer, err)
	}
	h.agree()
	h.follows()
	return res, u
}

// follows checks that the hub is where every remaining member is.
func (h *hubbed) follows() {
	h.t.Helper()
	hub := h.hub.Context()
	for name, m := range h.members {
		if m.g.Removed() {
			continue
		}
		mc := m.g.Context()
		switch {
		case hub.Epoch != mc.Epoch:
			h.t.Fatalf("the hub is in epoch %d, %s in epoch %d", hub.Epoch, name, mc.Epoch)
		case !bytes.Equal(hub.TreeHash, mc.TreeHash):
			h.t.Fatalf("epoch %d: the hub and %s disagree on the tree hash", hub.Epoch, name)
		case !bytes.Equal(hub.ConfirmedTranscriptHash, mc.ConfirmedTranscriptHash):
			h.t.Fatalf("epoch %d: the hub and %s disagree on the confirmed transcript hash", hub.Epoch, name)
		case !bytes.Equal(Marshal(&hub), Marshal(&mc)):
			h.t.Fatalf("epoch %d: the hub and %s disagree on the GroupContext", hub.Epoch, name)
		case !bytes.Equal(Marshal(h.hub.Tree()), Marshal(m.g.Tree())):
			h.t.Fatalf("epoch %d: the hub and %s disagree on the tree", hub.Epoch, name)
		}
	}
}

// leafOf returns a member's current leaf index.
func (h *hubbed) leafOf(name string) LeafIndex { return h.members[name].g.OwnLeaf() }

// who names the client of a leaf node by its basic credential.
func who(l *LeafNode) string {
	if l == nil {
		return "<blank>"
	}
	return string(l.Credential.Identity)
}

func changes(cs []MemberChange) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%d:%s", c.Leaf, who(c.LeafNode)))
	}
	return strings.Join(out, ",")
}

var hubSuites = []CipherSuite{X25519AES128GCMSHA256Ed25519, P256AES128GCMSHA256P256}

func TestPublicGroupFollowsARoom(t *testing.T) {
	for _, id := range hubSuites {
		t.Run(id.String(), func(t *testing.T) {
			// Every member holds an external PSK the hub never sees.
			psks := &PSKMap{}
			psks.AddExternal([]byte("room-psk"), []byte("0123456789abcdef"))
			s, _ := SuiteFor(id)
			hubSig, err := s.GenerateSignatureKey()
			if err != nil {
				t.Fatal(err)
			}
			senders := Marshal(ExternalSenders{{SignatureKey: hubSig.PublicKey(), Credential: Credential{Type: CredentialBasic, Identity: []byte("hub.example")}}})
			h := newHubbed(t, id, GroupConfig{PSKs: psks}, "alice", Extensions{{Type: ExtExternalSenders, Data: senders}})
			alice := Sender{Type: SenderMember, Leaf: 0}

			// Alice adds Bob and Carol.
			bob, carol := h.keyPackage("bob"), h.keyPackage("carol")
			_, u := h.commit("alice", CommitOptions{Proposals: add(bob, carol)}, map[string]*KeyPackagePrivate{"bob": bob, "carol": carol})
			if got := changes(u.Added); got != "1:bob,2:carol" || u.NewEpoch != 1 || u.Sender != alice || who(u.SenderLeaf) != "alice" {
				t.Fatalf("adds: %s, epoch %d, sender %+v %s", got, u.NewEpoch, u.Sender, who(u.SenderLeaf))
			}
			for _, a := range u.Added {
				if a.Proposer != alice || a.KeyPackage == nil {
					t.Fatalf("add of leaf %d proposed by %+v", a.Leaf, a.Proposer)
				}
			}
			if u.CommitterLeaf != nil || len(u.Proposals) != 2 || u.Proposals[0].Ref != nil {
				t.Fatalf("an add-only commit: committer leaf %v, proposals %+v", u.CommitterLeaf, u.Proposals)
			}

			// Application messages are only routed.
			msg, err := h.members["carol"].g.Encrypt([]byte("hello"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if gid, epoch, ct, ok := MessageEpoch(msg); !ok || !bytes.Equal(gid, h.hub.GroupID()) || epoch != 1 || ct != ContentApplication {
				t.Fatalf("MessageEpoch of an application message: %x %d %v %v", gid, epoch, ct, ok)
			}
			if _, err := h.check(msg); !errors.Is(err, ErrNotPublic) {
				t.Fatalf("the hub checked a PrivateMessage: %v", err)
			}
			h.say("carol", "hello")

			// Bob updates by proposal; Carol commits it by reference.
			up, err := h.members["bob"].g.NewUpdateProposal(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			pmsg, ref, err := h.members["bob"].g.Propose(up, nil)
			if err != nil {
				t.Fatal(err)
			}
			u = h.deliver("bob", pmsg)
			if u.ContentType != ContentProposal || !bytes.Equal(u.ProposalRef, ref) || who(u.SenderLeaf) != "bob" || u.Proposal.Type != ProposalUpdate {
				t.Fatalf("bob's update proposal: %+v", u)
			}
			_, u = h.commit("carol", CommitOptions{}, nil)
			if got := changes(u.Updated); got != "1:bob" || !bytes.Equal(u.Updated[0].LeafNode.EncryptionKey, up.Update.EncryptionKey) {
				t.Fatalf("updated: %s", got)
			}
			if !bytes.Equal(u.Proposals[0].Ref, ref) || u.Proposals[0].Sender.Leaf != 1 || who(u.CommitterLeaf) != "carol" {
				t.Fatalf("carol's commit: proposals %+v, committer leaf %s", u.Proposals, who(u.CommitterLeaf))
			}

			// Dave asks to join; Alice commits his proposal.
			dave := h.keyPackage("dave")
			nm, err := NewMemberAddProposal(h.s, h.hub.GroupID(), h.hub.Epoch(), dave, nil)
			if err != nil {
				t.Fatal(err)
			}
			if u = h.deliver("dave", nm); u.Sender.Type != SenderNewMemberProposal || u.SenderLeaf != nil {
				t.Fatalf("dave's proposal: sender %+v", u.Sender)
			}
			_, u = h.commit("alice", CommitOptions{}, map[string]*KeyPackagePrivate{"dave": dave})
			if got := changes(u.Added); got != "3:dave" || u.Added[0].Proposer.Type != SenderNewMemberProposal {
				t.Fatalf("dave's add: %s by %+v", got, u.Added[0].Proposer)
			}

			// The hub, an external sender, proposes removing Dave; Bob commits.
			rm, err := ExternalProposal(h.s, h.hub.GroupID(), h.hub.Epoch(), 0, hubSig, &Proposal{Type: ProposalRemove, Remove: h.leafOf("dave")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			h.deliver("hub", rm)
			_, u = h.commit("bob", CommitOptions{}, nil)
			if got := changes(u.Removed); got != "3:dave" || u.Removed[0].Proposer != (Sender{Type: SenderExternal, Index: 0}) {
				t.Fatalf("dave's removal: %s by %+v", got, u.Removed[0].Proposer)
			}
			delete(h.members, "dave")

			// Eve joins by external commit, with the hub's tree.
			info, err := h.members["bob"].g.GroupInfo(false, true)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.hub.CheckGroupInfo(info.GroupInfo); err != nil {
				t.Fatalf("the hub refuses bob's GroupInfo: %v", err)
			}
			eveID, eveSig := h.identity("eve")
			eve, ec, err := JoinExternal(info.GroupInfo, eveID, ExternalJoinOptions{Tree: h.hub.Tree().TreeNodes()}, h.config)
			if err != nil {
				t.Fatal(err)
			}
			u = h.deliver("eve", ec)
			if u.Joined == nil || u.Joined.Leaf != eve.OwnLeaf() || who(u.Joined.LeafNode) != "eve" || u.Sender.Type != SenderNewMemberCommit {
				t.Fatalf("eve's external commit: joined %+v, sender %+v", u.Joined, u.Sender)
			}
			h.members["eve"] = &member{name: "eve", g: eve, sig: eveSig}
			h.agree()
			h.follows()

			// A PSK the hub does not have, then new group extensions.
			psk := NewExternalPSKID(h.s, []byte("room-psk"))
			h.commit("eve", CommitOptions{Proposals: []*Proposal{{Type: ProposalPSK, PSK: &psk}}}, nil)
			rc := Marshal(&RequiredCapabilities{Credentials: []CredentialType{CredentialBasic}})
			exts := Extensions{{Type: ExtExternalSenders, Data: senders}, {Type: ExtRequiredCapabilities, Data: rc}}
			h.commit("alice", CommitOptions{Proposals: []*Proposal{{Type: ProposalGroupContextExtensions, Extensions: exts}}}, nil)
			if got := h.hub.Context().Extensions; len(got) != 2 || got[1].Type != ExtRequiredCapabilities {
				t.Fatalf("the hub's extensions: %+v", got)
			}

			// Alice removes Carol.
			_, u = h.commit("alice", CommitOptions{Proposals: []*Proposal{{Type: ProposalRemove, Remove: h.leafOf("carol")}}}, nil)
			if got := changes(u.Removed); got != "2:carol" || who(u.CommitterLeaf) != "alice" {
				t.Fatalf("carol's removal: %s", got)
			}
			delete(h.members, "carol")
			h.say("eve", "bye carol")

			var names []string
			for _, l := range h.hub.Members() {
				names = append(names, who(l))
			}
			slices.Sort(names)
			if got := strings.Join(names, ","); got != "alice,bob,eve" {
				t.Fatalf("the hub's members: %s", got)
			}
		})
	}
}

// signedCommit makes a commit as member g would send it, whatever it holds:
// properly signed and tagged, with a random confirmation tag (which the hub
// cannot check).
func signedCommit(t *testing.T, g *Group, sender Sender, signer *SignaturePrivateKey, commit *Commit) *MLSMessage {
	t.Helper()
	content := &FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: sender, ContentType: ContentCommit, Commit: commit}
	a, err := SignContent(g.suite, signer, WireFormatPublicMessage, content, &g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.Auth.ConfirmationTag = RandomBytes(g.suite.HashSize())
	pm, err := ProtectPublic(g.suite, a, g.secrets.MembershipKey, &g.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, Public: pm}
}

func TestPublicGroupRefusesBadHandshakes(t *testing.T) {
	h := newHubbed(t, X25519AES128GCMSHA256Ed25519, GroupConfig{}, "alice", nil)
	bob, carol := h.keyPackage("bob"), h.keyPackage("carol")
	h.commit("alice", CommitOptions{Proposals: add(bob, carol)}, map[string]*KeyPackagePrivate{"bob": bob, "carol": carol})
	h.commit("bob", CommitOptions{}, nil) // gives the tree parent nodes, so paths have nodes
	a, b := h.members["alice"].g, h.members["bob"].g
	bobSender := Sender{Type: SenderMember, Leaf: b.OwnLeaf()}

	// refused checks that the hub refuses msg with want and is unchanged.
	refused := func(what string, msg *MLSMessage, want error, text string) {
		t.Helper()
		before := h.hub.MarshalState()
		_, err := h.check(msg)
		if !errors.Is(err, want) || !strings.Contains(fmt.Sprint(err), text) {
			t.Fatalf("%s: got %v, want %v (%q)", what, err, want, text)
		}
		if !bytes.Equal(before, h.hub.MarshalState()) {
			t.Fatalf("%s changed the hub", what)
		}
		t.Logf("%s: %v", what, err)
	}

	// Forged signatures: altered content, and a commit signed by Carol in
	// Bob's name.
	dave := h.keyPackage("dave")
	prop, _, err := b.Propose(&Proposal{Type: ProposalAdd, Add: dave.KeyPackage}, []byte("from bob"))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := ParseMLSMessage(Marshal(prop))
	forged.Public.Content.AuthenticatedData = []byte("from eve")
	refused("altered proposal", forged, ErrSignature, "")
	refused("commit signed by another member", signedCommit(t, b, bobSender, h.members["carol"].sig, &Commit{}), ErrSignature, "")

	// The genuine proposal, then a replay of it.
	h.deliver("bob", prop)
	refused("replayed proposal", prop, ErrInvalidProposal, "already accepted")

	// Invalid proposal lists, properly signed by Bob.
	carolLeaf := h.leafOf("carol")
	rm := &Proposal{Type: ProposalRemove, Remove: carolLeaf}
	refused("two removes of one leaf", signedCommit(t, b, bobSender, b.signer, &Commit{Proposals: []ProposalOrRef{{Proposal: rm}, {Proposal: rm}}}), ErrInvalidProposal, "more than one update or remove")
	refused("a remove of the committer", signedCommit(t, b, bobSender, b.signer, &Commit{Proposals: []ProposalOrRef{{Proposal: &Proposal{Type: ProposalRemove, Remove: b.OwnLeaf()}}}}), ErrInvalidProposal, "remove of the committer")
	psk := NewExternalPSKID(h.s, []byte("x"))
	twice := []ProposalOrRef{{Proposal: &Proposal{Type: ProposalPSK, PSK: &psk}}, {Proposal: &Proposal{Type: ProposalPSK, PSK: &psk}}}
	refused("a PSK twice", signedCommit(t, b, bobSender, b.signer, &Commit{Proposals: twice}), ErrInvalidProposal, "listed twice")
	refused("an unknown reference", signedCommit(t, b, bobSender, b.signer, &Commit{Proposals: []ProposalOrRef{{Reference: RandomBytes(32)}}}), ErrInvalidCommit, "unknown proposal reference")
	refused("a remove without a path", signedCommit(t, b, bobSender, b.signer, &Commit{Proposals: []ProposalOrRef{{Proposal: rm}}}), ErrInvalidCommit, "require a path")

	// A path whose keys do not match its leaf's parent hash.
	res, err := b.Commit(CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	b.ClearPendingCommit()
	path := *res.Commit.Public.Content.Commit.Path
	path.Nodes = slices.Clone(path.Nodes)
	_, other, _ := h.s.GenerateHPKEKey()
	path.Nodes[0].EncryptionKey = other
	refused("a path with a bad parent hash", signedCommit(t, b, bobSender, b.signer, &Commit{Path: &path}), ErrParentHash, "")

	// Senders that may not send this.
	refused("a non-member leaf", signedCommit(t, b, Sender{Type: SenderMember, Leaf: 9}, b.signer, &Commit{}), ErrInvalidSender, "not a member")
	ext, err := ExternalProposal(h.s, a.GroupID(), a.Epoch(), 0, b.signer, &Proposal{Type: ProposalRemove, Remove: carolLeaf}, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused("an external sender the group does not list", ext, ErrInvalidSender, "external sender 0 of 0")
	app := &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, Public: &PublicMessage{Content: FramedContent{
		GroupID: a.GroupID(), Epoch: a.Epoch(), Sender: bobSender, ContentType: ContentApplication, ApplicationData: []byte("hi"),
	}, Auth: FramedContentAuthData{Signature: []byte{1}}, MembershipTag: []byte{1}}}
	refused("application data in the clear", app, ErrInvalidSender, "application data")
	other2, _ := ExternalProposal(h.s, []byte("another room"), a.Epoch(), 0, b.signer, &Proposal{Type: ProposalRemove, Remove: 1}, nil)
	refused("another group's message", other2, ErrWrongGroup, "")
	welcome := &MLSMessage{Version: MLS10, WireFormat: WireFormatKeyPackage, KeyPackage: dave.KeyPackage}
	refused("a KeyPackage", welcome, ErrNotPublic, "")

	// Dueling commits: both check against this epoch; the first applied
	// wins, and the second is refused at Apply and at Check.
	epoch := h.hub.Epoch()
	oldInfo, err := a.GroupInfo(true, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.hub.CheckGroupInfo(oldInfo.GroupInfo); err != nil {
		t.Fatalf("the current GroupInfo with its tree: %v", err)
	}
	ra, err := a.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ua, err := h.check(ra.Commit)
	if err != nil {
		t.Fatal(err)
	}
	ub, err := h.check(rb.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.hub.Apply(ua); err != nil {
		t.Fatal(err)
	}
	before := h.hub.MarshalState()
	if err := h.hub.Apply(ub); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("the second commit of epoch %d applied: %v", epoch, err)
	}
	if !bytes.Equal(before, h.hub.MarshalState()) {
		t.Fatal("a refused Apply changed the hub")
	}
	if err := h.hub.CheckGroupInfo(oldInfo.GroupInfo); !errors.Is(err, ErrInvalidWelcome) {
		t.Fatalf("a GroupInfo of the previous epoch: %v", err)
	}
	refused("the second commit of an epoch", rb.Commit, ErrWrongEpoch, fmt.Sprintf("commit for epoch %d in epoch %d", epoch, epoch+1))
	refused("the first commit again", ra.Commit, ErrWrongEpoch, "")
	refused("a proposal of the old epoch", prop, ErrWrongEpoch, fmt.Sprintf("proposal for epoch %d in epoch %d", epoch, epoch+1))
	h.broadcast("alice", ra.Commit)
	if _, err := a.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	h.agree()
	h.follows()
	if err := h.hub.Apply(&PublicUpdate{ContentType: ContentCommit}); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("a made-up update: %v", err)
	}
}

func TestPublicGroupStateRoundTrip(t *testing.T) {
	h := newHubbed(t, P256AES128GCMSHA256P256, GroupConfig{}, "alice", nil)
	bob := h.keyPackage("bob")
	h.commit("alice", CommitOptions{Proposals: add(bob)}, map[string]*KeyPackagePrivate{"bob": bob})
	carol := h.keyPackage("carol")
	prop, _, err := h.members["bob"].g.Propose(&Proposal{Type: ProposalAdd, Add: carol.KeyPackage}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.deliver("bob", prop)

	saved := h.hub.MarshalState()
	restored, err := RestorePublicGroup(saved)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if again := restored.MarshalState(); !bytes.Equal(again, saved) {
		t.Fatal("a restored hub saves differently")
	}
	// The restored hub follows on: the cached proposal is committed by
	// reference.
	h.hub = restored
	_, u := h.commit("alice", CommitOptions{}, map[string]*KeyPackagePrivate{"carol": carol})
	if changes(u.Added) != "2:carol" {
		t.Fatalf("the restored hub saw adds %s", changes(u.Added))
	}

	// Broken states are refused, never half-restored.
	saved = h.hub.MarshalState()
	member, err := h.members["bob"].g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	resum := func(b []byte) []byte {
		body := b[:len(b)-sha256.Size]
		sum := sha256.Sum256(body)
		return append(slices.Clip(body), sum[:]...)
	}
	flipped := slices.Clone(saved)
	flipped[len(flipped)/2] ^= 1
	badSuite := slices.Clone(saved)
	badSuite[2] = 0x04 // X448: not supported
	for name, data := range map[string][]byte{
		"empty":               nil,
		"a member's state":    member,
		"truncated":           saved[:len(saved)-1],
		"a flipped bit":       flipped,
		"unsupported suite":   resum(badSuite),
		"trailing data":       resum(append(slices.Clone(saved), 0)),
		"format byte changed": append([]byte{stateFormat}, saved[1:]...),
	} {
		if _, err := RestorePublicGroup(data); !errors.Is(err, ErrInvalidState) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := RestoreGroup(saved, GroupConfig{}); !errors.Is(err, ErrInvalidState) {
		t.Errorf("RestoreGroup of a hub's state: %v", err)
	}
}

func TestPublicGroupClosesAfterReInit(t *testing.T) {
	h := newHubbed(t, X25519AES128GCMSHA256Ed25519, GroupConfig{}, "alice", nil)
	bob := h.keyPackage("bob")
	h.commit("alice", CommitOptions{Proposals: add(bob)}, map[string]*KeyPackagePrivate{"bob": bob})
	reinit := &ReInit{GroupID: []byte("room-v2"), Version: MLS10, CipherSuite: P256AES128GCMSHA256P256}
	_, u := h.commit("bob", CommitOptions{Proposals: []*Proposal{{Type: ProposalReInit, ReInit: reinit}}}, nil)
	if u.ReInit == nil || !bytes.Equal(h.hub.PendingReInit().GroupID, reinit.GroupID) {
		t.Fatal("the hub did not note the reinit")
	}
	restored, err := RestorePublicGroup(h.hub.MarshalState())
	if err != nil || restored.PendingReInit() == nil {
		t.Fatalf("a reinitialized hub restored: %v", err)
	}
	a := h.members["alice"].g
	late := signedCommit(t, a, Sender{Type: SenderMember, Leaf: 0}, a.signer, &Commit{})
	for _, p := range []*PublicGroup{h.hub, restored} {
		if _, err := p.Check(late); !errors.Is(err, ErrGroupClosed) {
			t.Fatalf("a commit after reinit: %v", err)
		}
	}
}

func TestNewPublicGroupChecksWhatItIsGiven(t *testing.T) {
	sc := newScenario(t, X25519AES128GCMSHA256Ed25519, GroupConfig{})
	alice := sc.create("alice", nil)
	bob := sc.keyPackage("bob")
	sc.commit("alice", CommitOptions{Proposals: add(bob), InlineTree: true}, map[string]*KeyPackagePrivate{"bob": bob})
	info := func(inline bool) *GroupInfo {
		m, err := alice.g.GroupInfo(inline, false)
		if err != nil {
			t.Fatal(err)
		}
		parsed, _ := ParseMLSMessage(Marshal(m))
		return parsed.GroupInfo
	}
	if _, err := NewPublicGroup(info(false), alice.g.Tree().TreeNodes()); err != nil {
		t.Fatalf("tree given out of band: %v", err)
	}
	if _, err := NewPublicGroup(info(false), nil); !errors.Is(err, ErrInvalidWelcome) {
		t.Fatalf("no tree: %v", err)
	}
	lone := sc.create("lone", nil)
	if _, err := NewPublicGroup(info(false), lone.g.Tree().TreeNodes()); !errors.Is(err, ErrInvalidWelcome) {
		t.Fatalf("another group's tree: %v", err)
	}
	bad := info(true)
	bad.Signature[0] ^= 1
	if _, err := NewPublicGroup(bad, nil); !errors.Is(err, ErrInvalidWelcome) || !errors.Is(err, ErrSignature) {
		t.Fatalf("a forged GroupInfo: %v", err)
	}
	bad = info(true)
	bad.Signer = 1 // bob did not sign it
	if _, err := NewPublicGroup(bad, nil); !errors.Is(err, ErrSignature) {
		t.Fatalf("GroupInfo with the wrong signer: %v", err)
	}
	if _, _, _, ok := MessageEpoch(&MLSMessage{Version: MLS10, WireFormat: WireFormatKeyPackage, KeyPackage: bob.KeyPackage}); ok {
		t.Fatal("MessageEpoch read a KeyPackage")
	}
}

// publicStateSamples returns saved hub states for the fuzzer's corpus.
func publicStateSamples(t testing.TB) [][]byte {
	t.Helper()
	s, _ := SuiteFor(X25519AES128GCMSHA256Ed25519)
	sig, _ := s.GenerateSignatureKey()
	g, err := CreateGroup(s, []byte("fuzz room"), Identity{Signer: sig, Credential: Credential{Type: CredentialBasic, Identity: []byte("alice")}}, nil, GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := g.GroupInfo(true, false)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := NewPublicGroup(info.GroupInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := [][]byte{hub.MarshalState()}
	bsig, _ := s.GenerateSignatureKey()
	kp, err := NewKeyPackage(s, bsig, Credential{Type: CredentialBasic, Identity: []byte("bob")}, KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prop, _, err := g.Propose(&Proposal{Type: ProposalAdd, Add: kp.KeyPackage}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*MLSMessage{prop} {
		u, err := hub.Check(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := hub.Apply(u); err != nil {
			t.Fatal(err)
		}
	}
	out = append(out, hub.MarshalState())
	res, err := g.Commit(CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := hub.Check(res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Apply(u); err != nil {
		t.Fatal(err)
	}
	return append(out, hub.MarshalState())
}

// FuzzRestorePublicGroup feeds RestorePublicGroup mutations of real saved
// hub states. Any input must restore or fail with ErrInvalidState, never
// panic; an accepted state must save back to the same bytes. As in
// FuzzRestoreGroup, each input is tried as given and with a correct
// checksum appended, so that mutations get past the checksum.
func FuzzRestorePublicGroup(f *testing.F) {
	for _, saved := range publicStateSamples(f) {
		f.Add(saved[:len(saved)-sha256.Size])
	}
	f.Add([]byte{})
	f.Add([]byte{publicStateFormat})
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := RestorePublicGroup(body); err != nil && !errors.Is(err, ErrInvalidState) {
			t.Fatalf("error not wrapping ErrInvalidState: %v", err)
		}
		sum := sha256.Sum256(body)
		data := append(slices.Clip(body), sum[:]...)
		p, err := RestorePublicGroup(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("error not wrapping ErrInvalidState: %v", err)
			}
			return
		}
		if again := p.MarshalState(); !bytes.Equal(again, data) {
			t.Fatalf("accepted state saves differently:\n in  %x\n out %x", data, again)
		}
	})
}

// BenchmarkPublicGroupCheckCommit measures the hub's check of a commit in a
// group of 1,000 members built by one big add (so all parents are blank and
// a path is encrypted to every member, the largest commits).
func BenchmarkPublicGroupCheckCommit(b *testing.B) {
	bg := newBenchGroup(b, 1000)
	info, err := bg.alice.GroupInfo(true, false)
	if err != nil {
		b.Fatal(err)
	}
	hub, err := NewPublicGroup(info.GroupInfo, nil)
	if err != nil {
		b.Fatal(err)
	}
	sig, _ := bg.s.GenerateSignatureKey()
	kp, err := NewKeyPackage(bg.s, sig, Credential{Type: CredentialBasic, Identity: []byte("newcomer")}, KeyPackageOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    CommitOptions
	}{
		{"add-one-member", CommitOptions{Proposals: []*Proposal{{Type: ProposalAdd, Add: kp.KeyPackage}}}},
		{"empty-with-path", CommitOptions{ForcePath: true}},
	} {
		res, err := bg.alice.Commit(c.o)
		if err != nil {
			b.Fatal(err)
		}
		bg.alice.ClearPendingCommit()
		msg, err := ParseMLSMessage(Marshal(res.Commit))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := hub.Check(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
