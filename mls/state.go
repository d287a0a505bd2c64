package mls

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Persisting a member's group state (MarshalState, RestoreGroup).
//
// RFC 9420 leaves storage to implementations; this is Switchboard's own
// format, never sent on the wire. It holds every secret the member has for
// the group, so a client must store it encrypted at rest, and must always
// replace the stored copy after each use of the group: restoring an older
// copy brings back keys that were deleted for forward secrecy and ratchet
// positions that were already used, which re-opens replay of messages
// processed since. The package cannot detect such a rollback; only the
// client's storage can.
//
// Layout (TLS presentation language, as on the wire):
//
//	uint8 format = 1;
//	GroupStateBody body;
//	opaque checksum[32];          // SHA-256 of format and body
//
//	GroupStateBody:
//	  uint16 cipher_suite;
//	  GroupContext group_context;
//	  optional<Node> ratchet_tree<V>;
//	  uint32 own_leaf;
//	  opaque signature_private_key<V>;
//	  TreePrivate tree_private;
//	  EpochSecrets epoch_secrets;            // its own storage format
//	  SecretTree secret_tree;                // its own storage format
//	  opaque interim_transcript_hash<V>;
//	  opaque confirmation_tag<V>;
//	  struct { opaque ref<V>; Sender sender; Proposal proposal;
//	           opaque sent<V>; } proposals<V>;   // sent: own PrivateMessage
//	  struct { uint64 epoch; opaque psk<V>; } resumption_psks<V>;    // ascending
//	  struct { opaque public_key<V>; opaque private_key<V>;
//	           opaque signature_private_key<V>; } update_keys<V>;   // ascending
//	  uint8 removed;
//	  optional<ReInit> reinit;
//	  optional<PendingCommit> pending_commit;
//
//	TreePrivate:
//	  uint32 leaf; opaque leaf_key<V>;       // empty: no leaf key
//	  struct { uint32 node; opaque key<V>; } node_keys<V>;           // ascending
//
//	PendingCommit:
//	  AuthenticatedContent content;
//	  optional<PrivateMessage> private_message;
//	  optional<Node> ratchet_tree<V>;
//	  GroupContext group_context;
//	  TreePrivate tree_private;
//	  EpochSecrets epoch_secrets;
//	  opaque confirmation_tag<V>;
//	  optional<ReInit> reinit;
//	  optional<CommitSummary> summary;
//
//	CommitSummary:
//	  uint64 epoch; uint32 added<V>; uint32 removed<V>; uint32 updated<V>;
//	  optional<uint32> joined; uint8 removed_self; optional<ReInit> reinit;
//
// Private keys are in their canonical raw forms (SignaturePrivateKey.Bytes,
// HPKEPrivateKey.Bytes), and decoding insists on exactly those forms, so one
// state has one encoding. The checksum is not a defence against someone who
// can write the storage (they could recompute it, or swap in any other
// valid state): it catches truncation and bit rot, which would otherwise
// surface much later as an undecryptable message or a split group.

// stateFormat versions the encoding above. A new layout gets a new number,
// and RestoreGroup keeps reading the old ones.
const stateFormat = 1

// stateFormatTreeApart is the same layout without the top-level
// ratchet_tree, which MarshalStateApart returns on its own: the tree is
// most of a large group's state and changes only at commits, while the
// rest changes with every message. The GroupContext's tree hash names
// the tree the state goes with.
const stateFormatTreeApart = 2

// stateChecksumSize is the length of the trailing SHA-256 checksum.
const stateChecksumSize = sha256.Size

// ErrInvalidState reports saved group state that RestoreGroup cannot use:
// corrupted, truncated, of an unknown format, or inconsistent with itself.
// Every error of RestoreGroup and MarshalState wraps it, as a *StateError.
var ErrInvalidState = errors.New("mls: invalid group state")

// StateError says which part of saved group state was refused and why. It
// wraps both ErrInvalidState and the underlying reason (a codec error, a
// tree error, ErrConfirmationTag, …), so callers can test for either with
// errors.Is.
type StateError struct {
	// Part names the piece of state at fault, such as "ratchet tree" or
	// "pending commit: group context".
	Part string
	// Err is the underlying reason.
	Err error
}

// Error describes the part and the reason.
func (e *StateError) Error() string {
	return fmt.Sprintf("%v: %s: %v", ErrInvalidState, e.Part, e.Err)
}

// Unwrap returns ErrInvalidState and the reason, for errors.Is and errors.As.
func (e *StateError) Unwrap() []error { return []error{ErrInvalidState, e.Err} }

func stateErr(part string, err error) error { return &StateError{Part: part, Err: err} }

func stateErrf(part, format string, args ...any) error {
	return &StateError{Part: part, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidValue}, args...)...)}
}

// MarshalState encodes everything this member needs to continue in the group
// exactly where it is (see the layout above), so that a client can persist
// the group across restarts and resume it with RestoreGroup. The
// GroupConfig is not included: it holds functions and a PSK store, which
// the client supplies again on restore.
//
// The result contains all of the member's secrets for the group. Store it
// encrypted, and overwrite it after every operation on the group: an old
// copy is a rollback (see the comment at the top of state.go).
func (g *Group) MarshalState() ([]byte, error) {
	return g.marshalState(true)
}

// MarshalStateApart is MarshalState without the ratchet tree, which
// MarshalTree encodes on its own: a client that stores the tree apart
// rewrites it only when it changes (TreeHash says when), at commits, while
// the rest changes with every message. RestoreGroupApart takes the two
// back. The tree holds no secrets; the state holds all of them, and the
// rules of MarshalState apply to it.
func (g *Group) MarshalStateApart() ([]byte, error) {
	return g.marshalState(false)
}

// MarshalTree encodes the current epoch's ratchet tree as the
// ratchet_tree extension does.
func (g *Group) MarshalTree() []byte { return Marshal(g.tree.TreeNodes()) }

// TreeHash is the hash of the current epoch's ratchet tree, from the
// GroupContext.
func (g *Group) TreeHash() []byte { return slices.Clone(g.ctx.TreeHash) }

func (g *Group) marshalState(withTree bool) ([]byte, error) {
	if g == nil || g.suite == nil || g.tree == nil || g.priv == nil || g.signer == nil || g.secrets == nil || g.keys == nil {
		return nil, stateErrf("group", "incomplete group")
	}
	w := NewWriter(4096)
	if withTree {
		w.U8(stateFormat)
	} else {
		w.U8(stateFormatTreeApart)
	}
	w.U16(uint16(g.suite.ID))
	g.ctx.MarshalMLS(w)
	if withTree {
		g.tree.TreeNodes().MarshalMLS(w)
	}
	w.U32(uint32(g.self))
	w.Opaque(g.signer.Bytes())
	if err := marshalTreePrivate(w, g.priv); err != nil {
		return nil, stateErr("tree private keys", err)
	}
	g.secrets.MarshalMLS(w)
	g.keys.MarshalMLS(w)
	w.Opaque(g.interimHash)
	w.Opaque(g.confirmationTag)
	w.Vector(func(w *Writer) {
		for i := range g.proposals {
			c := &g.proposals[i]
			w.Opaque(c.ref)
			c.sender.MarshalMLS(w)
			c.proposal.MarshalMLS(w)
			w.Opaque(c.sent)
		}
	})
	w.Vector(func(w *Writer) {
		for _, e := range slices.Sorted(maps.Keys(g.resumption)) {
			w.U64(e)
			w.Opaque(g.resumption[e])
		}
	})
	var keyErr error
	w.Vector(func(w *Writer) {
		for _, pub := range slices.Sorted(maps.Keys(g.updateKeys)) {
			u := g.updateKeys[pub]
			raw, err := u.key.Bytes()
			if err != nil {
				keyErr = err
				return
			}
			w.Opaque([]byte(pub))
			w.Opaque(raw)
			w.Opaque(u.signer.Bytes())
		}
	})
	if keyErr != nil {
		return nil, stateErr("update keys", keyErr)
	}
	w.Bool(g.removed)
	marshalOptionalReInit(w, g.reinit)
	w.Optional(g.pending != nil, func(w *Writer) { keyErr = marshalPendingCommit(w, g.pending) })
	if keyErr != nil {
		return nil, stateErr("pending commit", keyErr)
	}
	sum := sha256.Sum256(w.Bytes())
	w.Raw(sum[:])
	return w.Bytes(), nil
}

func marshalTreePrivate(w *Writer, p *TreePrivateState) error {
	w.U32(uint32(p.Leaf))
	var leafKey []byte
	if p.LeafKey != nil {
		var err error
		if leafKey, err = p.LeafKey.Bytes(); err != nil {
			return err
		}
	}
	w.Opaque(leafKey)
	var err error
	w.Vector(func(w *Writer) {
		for _, x := range p.Nodes() {
			raw, e := p.keys[x].Bytes()
			if e != nil {
				err = e
				return
			}
			w.U32(uint32(x))
			w.Opaque(raw)
		}
	})
	return err
}

func marshalOptionalReInit(w *Writer, r *ReInit) {
	w.Optional(r != nil, func(w *Writer) {
		p := Proposal{Type: ProposalReInit, ReInit: r}
		p.MarshalBody(w)
	})
}

func marshalPendingCommit(w *Writer, p *pendingCommit) error {
	if p.content == nil || p.tree == nil || p.priv == nil || p.secrets == nil {
		return fmt.Errorf("%w: incomplete pending commit", ErrInvalidValue)
	}
	p.content.MarshalMLS(w)
	w.Optional(p.private != nil, func(w *Writer) { p.private.MarshalMLS(w) })
	p.tree.TreeNodes().MarshalMLS(w)
	p.ctx.MarshalMLS(w)
	if err := marshalTreePrivate(w, p.priv); err != nil {
		return err
	}
	p.secrets.MarshalMLS(w)
	w.Opaque(p.confirmationTag)
	marshalOptionalReInit(w, p.reinit)
	w.Optional(p.summary != nil, func(w *Writer) {
		s := p.summary
		w.U64(s.Epoch)
		for _, list := range [][]LeafIndex{s.Added, s.Removed, s.Updated} {
			w.Vector(func(w *Writer) {
				for _, l := range list {
					w.U32(uint32(l))
				}
			})
		}
		w.Optional(s.Joined != nil, func(w *Writer) { w.U32(uint32(*s.Joined)) })
		w.Bool(s.RemovedSelf)
		marshalOptionalReInit(w, s.ReInit)
	})
	return nil
}

// RestoreGroup rebuilds a Group from MarshalState's output, with config for
// the member's local choices (which are not saved). It checks that the
// state is whole and consistent before returning it: the checksum and
// format; the suite; the tree hash against the GroupContext; the own leaf;
// the signing key and every private tree key against the public keys in the
// tree; the confirmation tag and interim transcript hash against the epoch
// secrets and GroupContext; the secret tree's size against the ratchet
// tree; and the same for a pending commit, whose signature and transcript
// hash must also verify. Anything wrong is reported as a *StateError
// wrapping ErrInvalidState; no input makes it panic.
//
// Proposals cached for the next commit are checked only for shape here:
// applying a commit validates each of them again anyway, and validating
// them now could refuse a whole group because, say, a KeyPackage expired
// while the client was offline.
func RestoreGroup(data []byte, config GroupConfig) (*Group, error) {
	return restoreGroup(data, stateFormat, nil, config)
}

// RestoreGroupApart is RestoreGroup for MarshalStateApart's two parts. The
// tree must be the one whose hash the state's GroupContext holds; any
// other is refused as the wrong tree.
func RestoreGroupApart(state, tree []byte, config GroupConfig) (*Group, error) {
	if tree == nil {
		tree = []byte{}
	}
	return restoreGroup(state, stateFormatTreeApart, tree, config)
}

// restoreGroup reads a state of the given format; tree is the tree's
// encoding for a state that was saved without it, nil for one with it.
func restoreGroup(data []byte, format byte, tree []byte, config GroupConfig) (*Group, error) {
	body, err := openState(data, format)
	if err != nil {
		return nil, err
	}
	d := &stateDecoder{r: NewReader(body), apart: tree}
	g := d.group(config)
	if d.err != nil {
		return nil, d.err
	}
	if g == nil {
		return nil, stateErrf("group", "undecodable")
	}
	if err := d.r.Finish(); err != nil {
		return nil, stateErr("group", err)
	}
	return g, nil
}

// stateDecoder reads group state, remembering the first failure together
// with the part of the state it was reading.
type stateDecoder struct {
	r   *Reader
	err error
	// apart is the ratchet tree's encoding when the state was saved
	// without it (nil: the tree is in the state).
	apart []byte
}

// check records the reader's error, if any, as a failure of part.
func (d *stateDecoder) check(part string) bool {
	if d.err != nil {
		return false
	}
	if err := d.r.Err(); err != nil {
		d.err = stateErr(part, err)
		return false
	}
	return true
}

func (d *stateDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *stateDecoder) group(config GroupConfig) *Group {
	r := d.r
	id := CipherSuite(r.U16())
	if !d.check("cipher suite") {
		return nil
	}
	s, err := SuiteFor(id)
	if err != nil {
		d.fail(stateErr("cipher suite", err))
		return nil
	}
	g := &Group{suite: s, config: config}
	g.ctx.UnmarshalMLS(r)
	if !d.check("group context") {
		return nil
	}
	if g.ctx.CipherSuite != s.ID {
		d.fail(stateErrf("group context", "suite %v in a state of suite %v", g.ctx.CipherSuite, s.ID))
		return nil
	}
	if d.apart != nil {
		g.tree = d.treeApart(s, g.ctx.TreeHash)
	} else {
		g.tree = d.tree(s, "ratchet tree", g.ctx.TreeHash)
	}
	g.self = LeafIndex(r.U32())
	g.signer = d.signer(s, "signature key")
	if d.err != nil || !d.check("own leaf") {
		return nil
	}

	g.priv = d.treePrivate(s, "tree private keys")
	g.secrets = new(EpochSecrets)
	g.secrets.UnmarshalMLS(r)
	if !d.check("epoch secrets") {
		return nil
	}
	g.keys = new(SecretTree)
	g.keys.UnmarshalMLS(r)
	if !d.check("secret tree") {
		return nil
	}
	g.interimHash = r.OpaqueCopy()
	g.confirmationTag = r.OpaqueCopy()
	if !d.check("transcript") {
		return nil
	}
	g.proposals = d.proposals()
	g.resumption = d.resumption(s)
	g.updateKeys = d.updateKeys(s)
	g.removed = r.Bool()
	g.reinit = d.optionalReInit()
	if !d.check("flags") {
		return nil
	}
	if err := g.checkRestored(); err != nil {
		d.fail(err)
		return nil
	}
	if r.Optional() {
		g.pending = d.pendingCommit(g)
	}
	if !d.check("pending commit") {
		return nil
	}
	return g
}

// tree reads a ratchet tree and checks its hash against the GroupContext's,
// which ties the public keys below to what the other members agreed on.
func (d *stateDecoder) tree(s *Suite, part string, treeHash []byte) *RatchetTree {
	var nodes TreeNodes
	nodes.UnmarshalMLS(d.r)
	if !d.check(part) {
		return nil
	}
	t, err := NewRatchetTree(s, nodes)
	if err != nil {
		d.fail(stateErr(part, err))
		return nil
	}
	if h := t.TreeHash(); !bytes.Equal(h, treeHash) {
		d.fail(stateErrf(part, "tree hash %x does not match the group context's %x", h, treeHash))
		return nil
	}
	return t
}

// treeApart reads the tree stored apart from the state, whole, and checks
// it as tree does.
func (d *stateDecoder) treeApart(s *Suite, treeHash []byte) *RatchetTree {
	const part = "ratchet tree (stored apart)"
	state := d.r
	d.r = NewReader(d.apart)
	t := d.tree(s, part, treeHash)
	if d.err == nil {
		if err := d.r.Finish(); err != nil {
			d.fail(stateErr(part, err))
			t = nil
		}
	}
	d.r = state
	return t
}

// signer reads a signing key, insisting on the canonical form Bytes writes.
func (d *stateDecoder) signer(s *Suite, part string) *SignaturePrivateKey {
	raw := d.r.Opaque()
	if !d.check(part) {
		return nil
	}
	k, err := s.ParseSignaturePrivateKey(raw)
	if err != nil {
		d.fail(stateErr(part, err))
		return nil
	}
	if !bytes.Equal(k.Bytes(), raw) {
		d.fail(stateErrf(part, "signature key not in canonical form"))
		return nil
	}
	return k
}

// hpkeKey parses an HPKE private key, insisting on the canonical form
// Bytes writes (X25519 keys are clamped, NIST scalars full width).
func hpkeKey(s *Suite, raw []byte) (HPKEPrivateKey, error) {
	k, err := s.ParseHPKEPrivateKey(raw)
	if err != nil {
		return nil, err
	}
	if b, err := k.Bytes(); err != nil || !bytes.Equal(b, raw) {
		return nil, fmt.Errorf("%w: HPKE private key not in canonical form", ErrInvalidValue)
	}
	return k, nil
}

func (d *stateDecoder) treePrivate(s *Suite, part string) *TreePrivateState {
	r := d.r
	leaf := LeafIndex(r.U32())
	leafRaw := r.Opaque()
	if !d.check(part) {
		return nil
	}
	p := NewTreePrivateState(leaf, nil)
	if len(leafRaw) > 0 {
		k, err := hpkeKey(s, leafRaw)
		if err != nil {
			d.fail(stateErr(part+": leaf key", err))
			return nil
		}
		p.LeafKey = k
	}
	prev := int64(-1)
	r.Each(func(r *Reader) {
		x := r.U32()
		raw := r.Opaque()
		if r.Err() != nil || d.err != nil {
			return
		}
		if int64(x) <= prev || NodeIndex(x).IsLeaf() {
			r.Failf("node key for node %d out of order or at a leaf", x)
			return
		}
		prev = int64(x)
		k, err := hpkeKey(s, raw)
		if err != nil {
			d.fail(stateErr(fmt.Sprintf("%s: node %d", part, x), err))
			r.Fail(err)
			return
		}
		p.keys[NodeIndex(x)] = k
	})
	if !d.check(part) {
		return nil
	}
	return p
}

func (d *stateDecoder) proposals() []cachedProposal {
	var out []cachedProposal
	d.r.Each(func(r *Reader) {
		var c cachedProposal
		c.ref = r.OpaqueCopy()
		c.sender.UnmarshalMLS(r)
		c.proposal = new(Proposal)
		c.proposal.UnmarshalMLS(r)
		if sent := r.OpaqueCopy(); len(sent) > 0 {
			c.sent = sent
		}
		if r.Err() == nil {
			out = append(out, c)
		}
	})
	d.check("cached proposals")
	return out
}

func (d *stateDecoder) resumption(s *Suite) map[uint64][]byte {
	out := map[uint64][]byte{}
	first := true
	var prev uint64
	d.r.Each(func(r *Reader) {
		e := r.U64()
		psk := r.OpaqueCopy()
		switch {
		case r.Err() != nil:
		case !first && e <= prev:
			r.Failf("resumption PSK epochs out of order at %d", e)
		case len(psk) != s.HashSize():
			r.Failf("resumption PSK of epoch %d has %d bytes", e, len(psk))
		default:
			out[e] = psk
			prev, first = e, false
		}
	})
	d.check("resumption PSKs")
	return out
}

func (d *stateDecoder) updateKeys(s *Suite) map[string]updateKey {
	var out map[string]updateKey
	var prev []byte
	d.r.Each(func(r *Reader) {
		pub := r.OpaqueCopy()
		keyRaw := r.Opaque()
		sigRaw := r.Opaque()
		if r.Err() != nil {
			return
		}
		if prev != nil && bytes.Compare(pub, prev) <= 0 {
			r.Failf("update keys out of order")
			return
		}
		prev = pub
		key, err := hpkeKey(s, keyRaw)
		if err != nil {
			r.Fail(err)
			return
		}
		if !bytes.Equal(key.PublicKey().Bytes(), pub) {
			r.Failf("update key does not match its public key")
			return
		}
		signer, err := s.ParseSignaturePrivateKey(sigRaw)
		if err != nil {
			r.Fail(err)
			return
		}
		if !bytes.Equal(signer.Bytes(), sigRaw) {
			r.Failf("update signature key not in canonical form")
			return
		}
		if out == nil {
			out = map[string]updateKey{}
		}
		out[string(pub)] = updateKey{key: key, signer: signer}
	})
	d.check("update keys")
	return out
}

func (d *stateDecoder) optionalReInit() *ReInit {
	r := d.r
	if !r.Optional() {
		return nil
	}
	p := Proposal{Type: ProposalReInit}
	p.UnmarshalBody(r)
	if r.Err() != nil {
		return nil
	}
	return p.ReInit
}

func (d *stateDecoder) leafList() []LeafIndex {
	var out []LeafIndex
	d.r.Each(func(r *Reader) {
		l := LeafIndex(r.U32())
		if r.Err() == nil {
			out = append(out, l)
		}
	})
	return out
}

func (d *stateDecoder) pendingCommit(g *Group) *pendingCommit {
	r, s := d.r, g.suite
	p := &pendingCommit{content: new(AuthenticatedContent)}
	p.content.UnmarshalMLS(r)
	if r.Optional() {
		p.private = new(PrivateMessage)
		p.private.UnmarshalMLS(r)
	}
	if !d.check("pending commit: content") {
		return nil
	}
	var nodes TreeNodes
	nodes.UnmarshalMLS(r)
	p.ctx.UnmarshalMLS(r)
	if !d.check("pending commit: tree and group context") {
		return nil
	}
	t, err := NewRatchetTree(s, nodes)
	if err != nil {
		d.fail(stateErr("pending commit: ratchet tree", err))
		return nil
	}
	if h := t.TreeHash(); !bytes.Equal(h, p.ctx.TreeHash) {
		d.fail(stateErrf("pending commit: ratchet tree", "tree hash %x does not match the group context's %x", h, p.ctx.TreeHash))
		return nil
	}
	p.tree = t
	p.priv = d.treePrivate(s, "pending commit: tree private keys")
	if d.err != nil {
		return nil
	}
	p.secrets = new(EpochSecrets)
	p.secrets.UnmarshalMLS(r)
	p.confirmationTag = r.OpaqueCopy()
	p.reinit = d.optionalReInit()
	if r.Optional() {
		sum := &CommitSummary{Epoch: r.U64()}
		sum.Added = d.leafList()
		sum.Removed = d.leafList()
		sum.Updated = d.leafList()
		if r.Optional() {
			l := LeafIndex(r.U32())
			sum.Joined = &l
		}
		sum.RemovedSelf = r.Bool()
		sum.ReInit = d.optionalReInit()
		p.summary = sum
	}
	if !d.check("pending commit") {
		return nil
	}
	if err := g.checkPending(p); err != nil {
		d.fail(err)
		return nil
	}
	return p
}

// checkSecretsPresent insists on the epoch secrets a member cannot
// continue without: sender data and membership keys to read and write
// messages, the confirmation key and init secret for the next commit, and
// the two that accessors hand out. (Exporter and external secrets may be
// forgotten on purpose; Export and ExternalKeyPair report that themselves.)
func checkSecretsPresent(part string, e *EpochSecrets) error {
	for _, f := range []struct {
		name  string
		value []byte
	}{
		{"sender_data_secret", e.SenderDataSecret},
		{"membership_key", e.MembershipKey},
		{"confirmation_key", e.ConfirmationKey},
		{"init_secret", e.InitSecret},
		{"resumption_psk", e.ResumptionPSK},
		{"epoch_authenticator", e.EpochAuthenticator},
	} {
		if len(f.value) == 0 {
			return stateErrf(part, "%s is missing", f.name)
		}
	}
	return nil
}

// checkRestored checks that the parts of a decoded group agree with each
// other, so that a restored group fails now rather than at some later
// message.
func (g *Group) checkRestored() error {
	s := g.suite
	leaf := g.tree.Leaf(g.self)
	switch {
	case uint64(g.self) >= uint64(g.tree.LeafCount()):
		return stateErrf("own leaf", "leaf %d outside a tree of %d leaves", g.self, g.tree.LeafCount())
	case leaf == nil && !g.removed:
		return stateErrf("own leaf", "leaf %d is blank but the member was not removed", g.self)
	case leaf != nil && !bytes.Equal(leaf.SignatureKey, g.signer.PublicKey()):
		return stateErrf("signature key", "does not match the signature key of leaf %d", g.self)
	}
	if g.priv.Leaf != g.self {
		return stateErrf("tree private keys", "for leaf %d, own leaf is %d", g.priv.Leaf, g.self)
	}
	if g.priv.LeafKey == nil && !g.removed {
		return stateErrf("tree private keys", "no leaf key")
	}
	if err := g.priv.CheckConsistent(g.tree); err != nil {
		return stateErr("tree private keys", err)
	}
	if g.secrets.Suite() != s {
		return stateErrf("epoch secrets", "suite %v in a state of suite %v", g.secrets.Suite().ID, s.ID)
	}
	if err := checkSecretsPresent("epoch secrets", g.secrets); err != nil {
		return err
	}
	if g.keys.Suite() != s {
		return stateErrf("secret tree", "suite %v in a state of suite %v", g.keys.Suite().ID, s.ID)
	}
	if g.keys.LeafCount() != g.tree.LeafCount() {
		return stateErrf("secret tree", "%d leaves, the ratchet tree has %d", g.keys.LeafCount(), g.tree.LeafCount())
	}
	// The confirmation tag is a MAC under this epoch's confirmation key of
	// the GroupContext's transcript hash: checking it ties the secrets to
	// the context, so a state spliced from two epochs is refused.
	if err := VerifyConfirmationTag(s, g.secrets.ConfirmationKey, g.ctx.ConfirmedTranscriptHash, g.confirmationTag); err != nil {
		return stateErr("confirmation tag", err)
	}
	if want := InterimTranscriptHash(s, g.ctx.ConfirmedTranscriptHash, g.confirmationTag); !bytes.Equal(g.interimHash, want) {
		return stateErrf("interim transcript hash", "does not follow from the group context and confirmation tag")
	}
	for i := range g.proposals {
		c := &g.proposals[i]
		if len(c.ref) != s.HashSize() {
			return stateErrf("cached proposals", "proposal %d: reference of %d bytes", i, len(c.ref))
		}
		if !mayPropose(c.sender.Type, c.proposal.Type) {
			return stateErrf("cached proposals", "proposal %d: sender type %d may not propose type 0x%04x", i, c.sender.Type, uint16(c.proposal.Type))
		}
		if c.sender.Type == SenderMember && g.tree.Leaf(c.sender.Leaf) == nil {
			return stateErrf("cached proposals", "proposal %d: sender leaf %d is not a member", i, c.sender.Leaf)
		}
	}
	for e := range g.resumption {
		if e > g.ctx.Epoch {
			return stateErrf("resumption PSKs", "epoch %d is after the current epoch %d", e, g.ctx.Epoch)
		}
	}
	if psk, ok := g.resumption[g.ctx.Epoch]; ok && !bytes.Equal(psk, g.secrets.ResumptionPSK) {
		return stateErrf("resumption PSKs", "this epoch's PSK differs from the epoch secrets'")
	}
	return nil
}

// checkPending checks a decoded pending commit against the group it was
// made in: it must be this member's signed commit of the current epoch,
// leading to the next epoch by the transcript hash, with secrets whose
// confirmation tag matches and private keys that match its tree.
func (g *Group) checkPending(p *pendingCommit) error {
	s := g.suite
	c := &p.content.Content
	self := Sender{Type: SenderMember, Leaf: g.self}
	switch {
	case c.ContentType != ContentCommit || c.Commit == nil:
		return stateErrf("pending commit: content", "a %v, not a commit", c.ContentType)
	case c.Sender != self:
		return stateErrf("pending commit: content", "sent by %s, not this member", c.Sender.describe())
	case !bytes.Equal(c.GroupID, g.ctx.GroupID) || c.Epoch != g.ctx.Epoch:
		return stateErrf("pending commit: content", "for group %x epoch %d, the group is %x epoch %d", c.GroupID, c.Epoch, g.ctx.GroupID, g.ctx.Epoch)
	case (p.private != nil) != (p.content.WireFormat == WireFormatPrivateMessage):
		return stateErrf("pending commit: content", "wire format %d does not match the presence of a PrivateMessage", p.content.WireFormat)
	case p.content.WireFormat != WireFormatPrivateMessage && p.content.WireFormat != WireFormatPublicMessage:
		return stateErrf("pending commit: content", "wire format %d", p.content.WireFormat)
	}
	if m := p.private; m != nil && (!bytes.Equal(m.GroupID, g.ctx.GroupID) || m.Epoch != g.ctx.Epoch || m.ContentType != ContentCommit) {
		return stateErrf("pending commit: private message", "does not carry a commit of this group and epoch")
	}
	if err := p.content.VerifySignature(s, g.signer.PublicKey(), &g.ctx); err != nil {
		return stateErr("pending commit: signature", err)
	}
	next := &p.ctx
	switch {
	case next.Version != g.ctx.Version || next.CipherSuite != g.ctx.CipherSuite || !bytes.Equal(next.GroupID, g.ctx.GroupID):
		return stateErrf("pending commit: group context", "version, suite or group differs from the group's")
	case next.Epoch != g.ctx.Epoch+1:
		return stateErrf("pending commit: group context", "epoch %d after epoch %d", next.Epoch, g.ctx.Epoch)
	}
	confirmed, err := ConfirmedTranscriptHash(s, g.interimHash, p.content)
	if err != nil {
		return stateErr("pending commit: transcript", err)
	}
	if !bytes.Equal(confirmed, next.ConfirmedTranscriptHash) {
		return stateErrf("pending commit: transcript", "the commit does not lead to the saved confirmed transcript hash")
	}
	if p.tree.Leaf(g.self) == nil || !bytes.Equal(p.tree.Leaf(g.self).SignatureKey, g.signer.PublicKey()) {
		return stateErrf("pending commit: ratchet tree", "own leaf %d is blank or has another signature key", g.self)
	}
	if p.priv.Leaf != g.self || p.priv.LeafKey == nil {
		return stateErrf("pending commit: tree private keys", "not those of leaf %d", g.self)
	}
	if err := p.priv.CheckConsistent(p.tree); err != nil {
		return stateErr("pending commit: tree private keys", err)
	}
	if p.secrets.Suite() != s {
		return stateErrf("pending commit: epoch secrets", "suite %v in a state of suite %v", p.secrets.Suite().ID, s.ID)
	}
	if err := checkSecretsPresent("pending commit: epoch secrets", p.secrets); err != nil {
		return err
	}
	if len(p.secrets.EncryptionSecret) == 0 {
		// Merging builds the next epoch's secret tree from it.
		return stateErrf("pending commit: epoch secrets", "encryption_secret is missing")
	}
	if !bytes.Equal(p.content.Auth.ConfirmationTag, p.confirmationTag) {
		return stateErrf("pending commit: confirmation tag", "differs from the commit's")
	}
	if err := VerifyConfirmationTag(s, p.secrets.ConfirmationKey, next.ConfirmedTranscriptHash, p.confirmationTag); err != nil {
		return stateErr("pending commit: confirmation tag", err)
	}
	return nil
}

// openState checks a saved state's format byte and checksum and returns
// the encoded state between them.
func openState(data []byte, format byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, stateErrf("format", "no data")
	}
	if data[0] != format {
		return nil, stateErrf("format", "unknown state format %d", data[0])
	}
	if len(data) < 1+stateChecksumSize {
		return nil, stateErr("checksum", fmt.Errorf("%w: %d bytes", ErrTruncated, len(data)))
	}
	body, sum := data[:len(data)-stateChecksumSize], data[len(data)-stateChecksumSize:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return nil, stateErrf("checksum", "checksum mismatch: the state is truncated or corrupted")
	}
	return body[1:], nil
}
