package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// Group is one member's state of an MLS group in its current epoch: the
// public ratchet tree and GroupContext every member agrees on, and this
// member's secrets. A Group is not safe for concurrent use.
//
// The lifecycle: CreateGroup or JoinFromWelcome or JoinExternal make one;
// ProcessMessage handles what others send (application data, proposals,
// commits); Propose*, Commit and Encrypt make what this member sends.
type Group struct {
	suite  *Suite
	ctx    GroupContext
	tree   *RatchetTree
	priv   *TreePrivateState
	self   LeafIndex
	signer *SignaturePrivateKey

	secrets         *EpochSecrets
	keys            *SecretTree
	interimHash     []byte // interim transcript hash after the last commit
	confirmationTag []byte // of the commit that began this epoch

	// proposals received (or sent) in this epoch, by reference.
	proposals []cachedProposal
	// resumption holds this group's resumption PSKs of recent epochs.
	resumption map[uint64][]byte

	pending *pendingCommit // this member's own commit, until it is merged
	// updateKeys holds the private keys of this member's Update proposals.
	updateKeys map[string]updateKey
	config     GroupConfig

	// removed is set when a commit removed this member: the group can no
	// longer be used. reinit is set after a commit with a ReInit proposal.
	removed bool
	reinit  *ReInit

	// past holds recent epochs' keys for late application messages,
	// oldest first.
	past []pastEpoch

	// successorPSK is set only while the first commit of a branched or
	// reinitialized group is built.
	successorPSK *PSKInput
}

// GroupConfig holds a member's choices that other members do not see.
type GroupConfig struct {
	// EncryptHandshake sends proposals and commits as PrivateMessage,
	// hiding the group's membership changes from the delivery service.
	EncryptHandshake bool
	// PaddingBlock pads PrivateMessage contents to a multiple of this many
	// bytes (0 or 1: no padding), to hide message lengths.
	PaddingBlock int
	// ResumptionEpochs is how many past epochs' resumption PSKs are kept
	// (default 8).
	ResumptionEpochs int
	// PSKs supplies external PSKs and resumption PSKs of other groups.
	PSKs PSKStore
	// PastEpochs is how many earlier epochs' keys are kept to read
	// application messages that arrive after a commit (default 2; -1
	// keeps none). Only keys of messages not yet read are kept, and they
	// are not saved with the group's state.
	PastEpochs int
	// Now gives the time for KeyPackage lifetime checks; nil skips them.
	// (The official vectors carry fixed lifetimes, so tests leave it nil.)
	Now func() uint64
}

func (c *GroupConfig) resumptionEpochs() int {
	if c.ResumptionEpochs <= 0 {
		return 8
	}
	return c.ResumptionEpochs
}

func (c *GroupConfig) now() uint64 {
	if c.Now == nil {
		return 0
	}
	return c.Now()
}

// PSKStore looks up pre-shared keys by their identifiers.
type PSKStore interface {
	ExternalPSK(id []byte) ([]byte, bool)
	ResumptionPSK(groupID []byte, epoch uint64) ([]byte, bool)
}

// PSKMap is an in-memory PSKStore.
type PSKMap struct {
	External   map[string][]byte
	Resumption map[string][]byte // keyed by resumptionKey(groupID, epoch)
}

func resumptionKey(groupID []byte, epoch uint64) string {
	return fmt.Sprintf("%x/%d", groupID, epoch)
}

// AddExternal stores an external PSK.
func (m *PSKMap) AddExternal(id, psk []byte) {
	if m.External == nil {
		m.External = map[string][]byte{}
	}
	m.External[string(id)] = append([]byte{}, psk...)
}

// AddResumption stores a resumption PSK of a group's epoch.
func (m *PSKMap) AddResumption(groupID []byte, epoch uint64, psk []byte) {
	if m.Resumption == nil {
		m.Resumption = map[string][]byte{}
	}
	m.Resumption[resumptionKey(groupID, epoch)] = append([]byte{}, psk...)
}

func (m *PSKMap) ExternalPSK(id []byte) ([]byte, bool) {
	p, ok := m.External[string(id)]
	return p, ok
}

func (m *PSKMap) ResumptionPSK(groupID []byte, epoch uint64) ([]byte, bool) {
	p, ok := m.Resumption[resumptionKey(groupID, epoch)]
	return p, ok
}

type cachedProposal struct {
	ref      []byte
	proposal *Proposal
	sender   Sender
	// sent is the PrivateMessage of this member's own encrypted proposal,
	// so that it is recognised when the delivery service echoes it back
	// (this member cannot decrypt its own message: its key is used up).
	sent []byte
}

// Errors about group operations. Every error returned by Group methods wraps
// one of these or an error of the layers below (framing, tree, codec).
var (
	// ErrWrongEpoch reports a message for another epoch than the group's.
	ErrWrongEpoch = errors.New("mls: wrong epoch")
	// ErrWrongGroup reports a message for another group.
	ErrWrongGroup = errors.New("mls: wrong group")
	// ErrInvalidProposal reports a proposal or proposal list that RFC 9420
	// §12.1–12.2 forbids.
	ErrInvalidProposal = errors.New("mls: invalid proposal")
	// ErrInvalidCommit reports a commit that cannot be applied.
	ErrInvalidCommit = errors.New("mls: invalid commit")
	// ErrInvalidWelcome reports a Welcome or GroupInfo that cannot be used.
	ErrInvalidWelcome = errors.New("mls: invalid welcome")
	// ErrInvalidSender reports a sender that may not send this message.
	ErrInvalidSender = errors.New("mls: invalid sender")
	// ErrMissingPSK reports a pre-shared key the member does not hold.
	ErrMissingPSK = errors.New("mls: missing pre-shared key")
	// ErrGroupClosed reports use of a group this member was removed from or
	// that was reinitialized.
	ErrGroupClosed = errors.New("mls: group no longer usable")
	// ErrPendingCommit reports an operation that conflicts with this member's
	// own unmerged commit.
	ErrPendingCommit = errors.New("mls: pending commit")
)

// Suite returns the group's cipher suite.
func (g *Group) Suite() *Suite { return g.suite }

// GroupID returns the group's identifier.
func (g *Group) GroupID() []byte { return g.ctx.GroupID }

// Epoch returns the current epoch number.
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// Context returns a copy of the current GroupContext.
func (g *Group) Context() GroupContext {
	var c GroupContext
	if err := Unmarshal(Marshal(&g.ctx), &c); err != nil {
		panic("mls: group context does not round-trip: " + err.Error())
	}
	return c
}

// Tree returns the public ratchet tree. Callers must not modify it.
func (g *Group) Tree() *RatchetTree { return g.tree }

// OwnLeaf returns this member's leaf index.
func (g *Group) OwnLeaf() LeafIndex { return g.self }

// EpochAuthenticator returns the epoch authenticator (§8.7), which members
// can compare out of band to detect a split group.
func (g *Group) EpochAuthenticator() []byte { return g.secrets.EpochAuthenticator }

// ResumptionPSK returns this epoch's resumption PSK.
func (g *Group) ResumptionPSK() []byte { return g.secrets.ResumptionPSK }

// Export derives a secret for the application (MLS-Exporter, §8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	return g.secrets.Export(label, context, length)
}

// Config returns the member's configuration of this group.
func (g *Group) Config() GroupConfig { return g.config }

// Removed reports whether a commit removed this member from the group.
func (g *Group) Removed() bool { return g.removed }

// PendingReInit returns the ReInit proposal committed in the last epoch,
// if any: the group must then be replaced by a new one.
func (g *Group) PendingReInit() *ReInit { return g.reinit }

// Members returns the leaf index and leaf node of every member.
func (g *Group) Members() map[LeafIndex]*LeafNode {
	out := map[LeafIndex]*LeafNode{}
	for _, l := range g.tree.Members() {
		out[l] = g.tree.Leaf(l)
	}
	return out
}

func (g *Group) usable() error {
	switch {
	case g.removed:
		return fmt.Errorf("%w: this member was removed in epoch %d", ErrGroupClosed, g.ctx.Epoch)
	case g.reinit != nil:
		return fmt.Errorf("%w: the group was reinitialized in epoch %d", ErrGroupClosed, g.ctx.Epoch)
	}
	return nil
}

// requiredCapabilities reads the required_capabilities extension, if any.
func requiredCapabilities(exts Extensions) (*RequiredCapabilities, error) {
	data, ok := exts.Find(ExtRequiredCapabilities)
	if !ok {
		return &RequiredCapabilities{}, nil
	}
	var rc RequiredCapabilities
	if err := Unmarshal(data, &rc); err != nil {
		return nil, fmt.Errorf("required_capabilities extension: %w", err)
	}
	return &rc, nil
}

// leafCheck returns the leaf validation parameters for a group whose
// GroupContext extensions are exts.
func (v groupView) leafCheck(exts Extensions) (LeafNodeCheck, error) {
	rc, err := requiredCapabilities(exts)
	if err != nil {
		return LeafNodeCheck{}, err
	}
	return LeafNodeCheck{
		GroupID:             v.ctx.GroupID,
		RequiredExtensions:  rc.Extensions,
		RequiredProposals:   rc.Proposals,
		RequiredCredentials: rc.Credentials,
		Now:                 v.now,
	}, nil
}

// externalSenders reads the external_senders extension, if any.
func externalSenders(exts Extensions) (ExternalSenders, error) {
	data, ok := exts.Find(ExtExternalSenders)
	if !ok {
		return nil, nil
	}
	var es ExternalSenders
	if err := Unmarshal(data, &es); err != nil {
		return nil, fmt.Errorf("external_senders extension: %w", err)
	}
	return es, nil
}

// Identity is what a client brings to a group: its signing key, credential
// and capabilities.
type Identity struct {
	Signer         *SignaturePrivateKey
	Credential     Credential
	Capabilities   *Capabilities // nil: DefaultCapabilities
	LeafExtensions Extensions
}

func (id *Identity) capabilities() Capabilities {
	if id.Capabilities != nil {
		return *id.Capabilities
	}
	return DefaultCapabilities()
}

// CreateGroup starts a group with this client as its only member, in epoch 0
// (§11). extensions become the GroupContext extensions (for example
// required_capabilities or external_senders).
func CreateGroup(s *Suite, groupID []byte, id Identity, extensions Extensions, config GroupConfig) (*Group, error) {
	if id.Signer == nil {
		return nil, fmt.Errorf("%w: no signing key", ErrInvalidCommit)
	}
	encKey, encPub, err := s.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	leaf := &LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  id.Signer.PublicKey(),
		Credential:    id.Credential,
		Capabilities:  id.capabilities(),
		Source:        SourceKeyPackage,
		Lifetime:      Lifetime{NotBefore: 0, NotAfter: ^uint64(0)},
		Extensions:    id.LeafExtensions,
	}
	if err := leaf.Sign(s, id.Signer, nil, 0); err != nil {
		return nil, err
	}
	g := &Group{
		suite:  s,
		tree:   NewRatchetTreeWithLeaf(s, leaf),
		priv:   NewTreePrivateState(0, encKey),
		self:   0,
		signer: id.Signer,
		config: config,
		ctx: GroupContext{
			Version:     MLS10,
			CipherSuite: s.ID,
			GroupID:     append([]byte{}, groupID...),
			Epoch:       0,
			Extensions:  extensions,
		},
		resumption: map[uint64][]byte{},
	}
	check, err := g.view().leafCheck(extensions)
	if err != nil {
		return nil, err
	}
	check.Leaf, check.Tree, check.InTree = 0, g.tree, true
	if err := ValidateLeafNode(s, leaf, &check); err != nil {
		return nil, fmt.Errorf("creator's leaf: %w", err)
	}
	if err := checkExtensionsSupported(g.tree, extensions); err != nil {
		return nil, err
	}
	g.ctx.TreeHash = g.tree.TreeHash()
	g.ctx.ConfirmedTranscriptHash = []byte{}
	secrets, err := NewEpochSecrets(s, RandomBytes(s.HashSize()), nil, nil, Marshal(&g.ctx))
	if err != nil {
		return nil, err
	}
	tag := ConfirmationTag(s, secrets.ConfirmationKey, g.ctx.ConfirmedTranscriptHash)
	if err := g.enterEpoch(secrets, tag); err != nil {
		return nil, err
	}
	return g, nil
}

// enterEpoch installs the secrets of the epoch in g.ctx and derives what
// follows from them: the secret tree, the interim transcript hash, the kept
// resumption PSK.
func (g *Group) enterEpoch(secrets *EpochSecrets, confirmationTag []byte) error {
	keys, err := NewSecretTree(g.suite, secrets.EncryptionSecret, g.tree.LeafCount())
	if err != nil {
		return err
	}
	g.secrets = secrets
	g.keys = keys
	g.confirmationTag = append([]byte{}, confirmationTag...)
	g.interimHash = InterimTranscriptHash(g.suite, g.ctx.ConfirmedTranscriptHash, confirmationTag)
	g.proposals = nil
	if g.resumption == nil {
		g.resumption = map[uint64][]byte{}
	}
	g.resumption[g.ctx.Epoch] = secrets.ResumptionPSK
	keep := uint64(g.config.resumptionEpochs()) // #nosec G115 -- a small positive count of epochs
	for e := range g.resumption {
		if e+keep <= g.ctx.Epoch {
			delete(g.resumption, e)
		}
	}
	secrets.ForgetConsumed()
	return nil
}

// checkExtensionsSupported verifies that every member supports every
// non-default GroupContext extension and the required capabilities.
func checkExtensionsSupported(tree *RatchetTree, exts Extensions) error {
	rc, err := requiredCapabilities(exts)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
	}
	for _, l := range tree.Members() {
		caps := &tree.Leaf(l).Capabilities
		for _, e := range exts {
			if !isDefaultExtension(e.Type) && !slices.Contains(caps.Extensions, e.Type) {
				return fmt.Errorf("%w: leaf %d does not support group extension 0x%04x", ErrInvalidProposal, l, uint16(e.Type))
			}
		}
		for _, e := range rc.Extensions {
			if !isDefaultExtension(e) && !slices.Contains(caps.Extensions, e) {
				return fmt.Errorf("%w: leaf %d lacks required extension 0x%04x", ErrInvalidProposal, l, uint16(e))
			}
		}
		for _, p := range rc.Proposals {
			if !isDefaultProposal(p) && !slices.Contains(caps.Proposals, p) {
				return fmt.Errorf("%w: leaf %d lacks required proposal 0x%04x", ErrInvalidProposal, l, uint16(p))
			}
		}
		for _, c := range rc.Credentials {
			if !slices.Contains(caps.Credentials, c) {
				return fmt.Errorf("%w: leaf %d lacks required credential 0x%04x", ErrInvalidProposal, l, uint16(c))
			}
		}
	}
	return nil
}

// findLeaf finds the member whose leaf node equals leaf byte for byte.
func findLeaf(tree *RatchetTree, leaf *LeafNode) (LeafIndex, bool) {
	want := Marshal(leaf)
	for _, l := range tree.Members() {
		if bytes.Equal(Marshal(tree.Leaf(l)), want) {
			return l, true
		}
	}
	return 0, false
}
