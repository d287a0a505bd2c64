package mls

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// The secret tree of RFC 9420 §9: encryption_secret at the root, each child
// secret ExpandWithLabel(parent, "tree", "left"/"right", Nh), and at every
// leaf two hash ratchets (handshake and application) whose generations give
// single-use AEAD keys and nonces.
//
// Deletion (§9.2) is eager: deriving a leaf's ratchets deletes the secrets of
// the leaf and of every node on its path to the root, keeping only the
// siblings along the way; advancing a ratchet replaces its secret; a key is
// deleted as soon as it is consumed. What survives is only what later
// messages can still need: sibling subtrees, the current ratchet secrets, and
// keys of skipped generations within the out-of-order window.

// RatchetType selects one of a leaf's two hash ratchets. Handshake messages
// (proposals and commits) use the handshake ratchet and application messages
// the application ratchet; the framing code maps its ContentType onto this.
type RatchetType uint8

// The two ratchets of each leaf.
const (
	HandshakeRatchet   RatchetType = 1
	ApplicationRatchet RatchetType = 2
)

// String gives the ratchet's name, as used in error messages.
func (t RatchetType) String() string {
	switch t {
	case HandshakeRatchet:
		return "handshake"
	case ApplicationRatchet:
		return "application"
	}
	return fmt.Sprintf("RatchetType(%d)", uint8(t))
}

// Limits on how far a receiver's ratchet tracks reordered messages (the
// policy §15.3 asks applications to set).
const (
	// OutOfOrderWindow is how many generations behind a ratchet's newest
	// derived generation an unused key is kept (so at most 1001 keys). A message delayed past 1000
	// later messages from the same sender in the same epoch is refused: that
	// bounds the keys held per ratchet to about 1000 (≈ 60 KB), while ordinary
	// reordering on a network is a handful of messages.
	OutOfOrderWindow = 1000
	// MaxForwardJump is how many generations a single message may move a
	// receiver's ratchet forward. Without a limit a sender (or a corrupted
	// generation field) could make every receiver do up to 2^32 derivations;
	// with it a message costs at most about 3000 HKDF calls. It matches the
	// window, so every generation skipped by an accepted jump stays usable.
	MaxForwardJump = 1000
)

// Errors of the secret tree. Ratchet failures come as *GenerationError,
// which unwraps to one of the first four.
var (
	ErrGenerationUsed    = errors.New("mls: ratchet generation already used")
	ErrGenerationExpired = errors.New("mls: ratchet generation outside the out-of-order window")
	ErrGenerationTooFar  = errors.New("mls: ratchet generation too far ahead")
	ErrRatchetExhausted  = errors.New("mls: ratchet exhausted")
	ErrSecretTree        = errors.New("mls: secret tree")
)

// GenerationError says which generation of which ratchet could not be used,
// and why (Err is ErrGenerationUsed, ErrGenerationExpired,
// ErrGenerationTooFar or ErrRatchetExhausted).
type GenerationError struct {
	Err        error
	Leaf       LeafIndex
	Ratchet    RatchetType
	Generation uint32
	Next       uint64 // the first generation the ratchet had not yet derived
}

// Error says which generation of which ratchet failed and why, in words a
// log reader can act on.
func (e *GenerationError) Error() string {
	switch e.Err {
	case ErrGenerationUsed:
		return fmt.Sprintf("mls: generation %d of leaf %d's %s ratchet already used", e.Generation, e.Leaf, e.Ratchet)
	case ErrGenerationExpired:
		return fmt.Sprintf("mls: generation %d of leaf %d's %s ratchet is more than %d behind generation %d; its key was deleted",
			e.Generation, e.Leaf, e.Ratchet, OutOfOrderWindow, e.Next-1)
	case ErrGenerationTooFar:
		return fmt.Sprintf("mls: generation %d is more than %d ahead of leaf %d's %s ratchet (next generation %d)",
			e.Generation, MaxForwardJump, e.Leaf, e.Ratchet, e.Next)
	case ErrRatchetExhausted:
		return fmt.Sprintf("mls: leaf %d's %s ratchet has used all 2^32 generations", e.Leaf, e.Ratchet)
	}
	return fmt.Sprintf("mls: generation %d of leaf %d's %s ratchet: %v", e.Generation, e.Leaf, e.Ratchet, e.Err)
}

// Unwrap lets errors.Is match the reason.
func (e *GenerationError) Unwrap() error { return e.Err }

// RatchetKey is the AEAD key and nonce of one ratchet generation. Nonce is
// the key schedule's nonce; the framing code XORs the reuse guard into its
// first four bytes before use.
type RatchetKey struct {
	Generation uint32
	Key        []byte
	Nonce      []byte
}

func (k *RatchetKey) wipe() {
	clear(k.Key)
	clear(k.Nonce)
}

// ratchetEnd is one past the last generation a uint32 can name.
const ratchetEnd = uint64(1) << 32

// hashRatchet is one sender ratchet.
type hashRatchet struct {
	next   uint64                // first generation not yet derived; ratchetEnd when exhausted
	secret []byte                // ratchet_secret_[next]; nil when exhausted
	keys   map[uint32]RatchetKey // derived, unconsumed keys of generations < next
	low    uint64                // every generation below low has been evicted from keys
}

// leafRatchets are the two ratchets of a leaf whose secret has been consumed.
type leafRatchets struct {
	handshake, application hashRatchet
}

// SecretTree is one epoch's secret tree. It is not safe for concurrent use:
// group state is expected to be accessed under one lock.
type SecretTree struct {
	suite    *Suite
	leaves   uint32
	nodes    map[NodeIndex][]byte        // held node secrets not yet consumed
	ratchets map[LeafIndex]*leafRatchets // leaves whose ratchets have been started
}

// NewSecretTree builds the secret tree of an epoch from its encryption_secret
// and the leaf count of the ratchet tree. The secret is copied; the caller
// should then forget its own copy (see EpochSecrets.ForgetConsumed).
func NewSecretTree(s *Suite, encryptionSecret []byte, leaves uint32) (*SecretTree, error) {
	if len(encryptionSecret) != s.HashSize() {
		return nil, fmt.Errorf("%w: encryption_secret of %d bytes, want %d", ErrSecretTree, len(encryptionSecret), s.HashSize())
	}
	if leaves == 0 || leaves > 1<<31 {
		return nil, fmt.Errorf("%w: %d leaves", ErrSecretTree, leaves)
	}
	t := &SecretTree{
		suite:    s,
		leaves:   leaves,
		nodes:    map[NodeIndex][]byte{rootOf(leaves): append([]byte{}, encryptionSecret...)},
		ratchets: map[LeafIndex]*leafRatchets{},
	}
	return t, nil
}

// Suite returns the cipher suite the tree derives keys with.
func (t *SecretTree) Suite() *Suite { return t.suite }

// LeafCount returns the number of leaves the tree was built for.
func (t *SecretTree) LeafCount() uint32 { return t.leaves }

// hasLiveLeaf reports whether the subtree under x contains a leaf of the
// tree, not just padding; secrets of padding-only subtrees are never needed.
func (t *SecretTree) hasLiveLeaf(x NodeIndex) bool {
	first := uint64(x) - (uint64(1)<<level(x) - 1) // leftmost node below x
	return first/2 < uint64(t.leaves)
}

// ratchet returns the ratchet of one leaf, starting the leaf's ratchets (and
// consuming the node secrets on its path) the first time.
func (t *SecretTree) ratchet(leaf LeafIndex, rt RatchetType) (*hashRatchet, error) {
	if rt != HandshakeRatchet && rt != ApplicationRatchet {
		return nil, fmt.Errorf("%w: ratchet type %d", ErrSecretTree, uint8(rt))
	}
	if uint32(leaf) >= t.leaves {
		return nil, fmt.Errorf("%w: leaf %d outside a tree of %d leaves", ErrSecretTree, leaf, t.leaves)
	}
	lr := t.ratchets[leaf]
	if lr == nil {
		var err error
		if lr, err = t.startLeaf(leaf); err != nil {
			return nil, err
		}
	}
	if rt == HandshakeRatchet {
		return &lr.handshake, nil
	}
	return &lr.application, nil
}

func (t *SecretTree) startLeaf(leaf LeafIndex) (*leafRatchets, error) {
	s := t.suite
	target := leaf.Node()
	root := rootOf(t.leaves)
	// The nearest ancestor whose secret is still held; everything above it
	// was consumed on the way to some other leaf.
	x := target
	for {
		if _, ok := t.nodes[x]; ok {
			break
		}
		if x == root {
			return nil, fmt.Errorf("%w: no secret left on the path of leaf %d (state corrupted)", ErrSecretTree, leaf)
		}
		x = parentOf(x)
	}
	for x != target {
		secret := t.nodes[x]
		l, r := left(x), right(x)
		for _, c := range []struct {
			node NodeIndex
			side string
		}{{l, "left"}, {r, "right"}} {
			if t.hasLiveLeaf(c.node) {
				t.nodes[c.node] = s.ExpandWithLabel(secret, "tree", []byte(c.side), s.HashSize())
			}
		}
		clear(secret)
		delete(t.nodes, x)
		if isAncestor(l, target) {
			x = l
		} else {
			x = r
		}
	}
	secret := t.nodes[target]
	lr := &leafRatchets{
		handshake:   hashRatchet{secret: s.ExpandWithLabel(secret, "handshake", nil, s.HashSize())},
		application: hashRatchet{secret: s.ExpandWithLabel(secret, "application", nil, s.HashSize())},
	}
	clear(secret)
	delete(t.nodes, target)
	t.ratchets[leaf] = lr
	return lr, nil
}

// step derives the key and nonce of generation r.next and moves the ratchet
// secret on by one, deleting the old secret.
func (r *hashRatchet) step(s *Suite) RatchetKey {
	g := uint32(r.next) // #nosec G115 -- r.next < ratchetEnd (2^32), checked by the caller
	k := RatchetKey{
		Generation: g,
		Key:        s.DeriveTreeSecret(r.secret, "key", g, s.AEADKeySize()),
		Nonce:      s.DeriveTreeSecret(r.secret, "nonce", g, s.AEADNonceSize()),
	}
	old := r.secret
	r.next++
	if r.next < ratchetEnd {
		r.secret = s.DeriveTreeSecret(old, "secret", g, s.HashSize())
	} else {
		r.secret = nil
	}
	clear(old)
	return k
}

// windowStart is the oldest generation whose key may still be stored: the
// newest derived generation (next-1) minus OutOfOrderWindow.
func (r *hashRatchet) windowStart() uint64 {
	if r.next > OutOfOrderWindow+1 {
		return r.next - 1 - OutOfOrderWindow
	}
	return 0
}

// evict deletes stored keys that fell out of the window.
func (r *hashRatchet) evict() {
	limit := r.windowStart()
	if len(r.keys) > 0 {
		for g := r.low; g < limit; g++ {
			if k, ok := r.keys[uint32(g)]; ok { // #nosec G115 -- g < r.next <= ratchetEnd (2^32)
				k.wipe()
				delete(r.keys, uint32(g)) // #nosec G115 -- g < r.next <= ratchetEnd (2^32)
			}
		}
	}
	r.low = max(r.low, limit)
}

// NextKey returns the key and nonce of the next unused generation of one of
// the member's own ratchets, for encrypting a message. The generation counts
// as consumed at once: a key must never encrypt twice, even if sending fails.
func (t *SecretTree) NextKey(leaf LeafIndex, rt RatchetType) (RatchetKey, error) {
	r, err := t.ratchet(leaf, rt)
	if err != nil {
		return RatchetKey{}, err
	}
	if r.next >= ratchetEnd {
		return RatchetKey{}, &GenerationError{Err: ErrRatchetExhausted, Leaf: leaf, Ratchet: rt, Generation: ^uint32(0), Next: r.next}
	}
	k := r.step(t.suite)
	r.evict()
	return k, nil
}

// Key returns the key and nonce of a generation of a sender's ratchet, for
// decrypting a message, moving the ratchet forward if needed and keeping the
// keys of skipped generations for reordered messages. The key is not yet
// consumed, so a forged or corrupted message cannot burn it: call Consume
// once decryption succeeds.
//
// A generation already consumed, one more than OutOfOrderWindow behind the
// newest generation derived, or one more than MaxForwardJump past the next
// underived generation is refused with a *GenerationError.
func (t *SecretTree) Key(leaf LeafIndex, rt RatchetType, generation uint32) (RatchetKey, error) {
	r, err := t.ratchet(leaf, rt)
	if err != nil {
		return RatchetKey{}, err
	}
	g := uint64(generation)
	if g < r.next {
		if k, ok := r.keys[generation]; ok {
			return k, nil
		}
		reason := ErrGenerationUsed
		if g < r.windowStart() {
			reason = ErrGenerationExpired
		}
		return RatchetKey{}, &GenerationError{Err: reason, Leaf: leaf, Ratchet: rt, Generation: generation, Next: r.next}
	}
	if g-r.next > MaxForwardJump {
		return RatchetKey{}, &GenerationError{Err: ErrGenerationTooFar, Leaf: leaf, Ratchet: rt, Generation: generation, Next: r.next}
	}
	if r.keys == nil {
		r.keys = map[uint32]RatchetKey{}
	}
	for r.next <= g {
		k := r.step(t.suite)
		r.keys[k.Generation] = k
	}
	r.evict()
	return r.keys[generation], nil
}

// Consume deletes the key of a generation returned by Key, after it has
// decrypted a message, so that a replay of that message is refused. The
// slices of the RatchetKey are zeroed.
func (t *SecretTree) Consume(leaf LeafIndex, rt RatchetType, generation uint32) error {
	if t.ratchets[leaf] == nil {
		// Nothing was looked up for this leaf: do not start its ratchets
		// (and consume its path) just to report that.
		return fmt.Errorf("%w: consume generation %d of leaf %d, whose ratchets are not started", ErrSecretTree, generation, leaf)
	}
	r, err := t.ratchet(leaf, rt)
	if err != nil {
		return err
	}
	k, ok := r.keys[generation]
	if !ok {
		reason := ErrGenerationUsed
		if uint64(generation) < r.windowStart() {
			reason = ErrGenerationExpired
		}
		return &GenerationError{Err: reason, Leaf: leaf, Ratchet: rt, Generation: generation, Next: r.next}
	}
	k.wipe()
	delete(r.keys, generation)
	return nil
}

// Wipe zeroes and drops every secret the tree holds, for when the epoch's
// keys are no longer wanted at all. The tree is unusable afterwards.
func (t *SecretTree) Wipe() {
	for x, sec := range t.nodes {
		clear(sec)
		delete(t.nodes, x)
	}
	for _, lr := range t.ratchets {
		for _, r := range []*hashRatchet{&lr.handshake, &lr.application} {
			clear(r.secret)
			r.secret = nil
			r.next = ratchetEnd
			for g, k := range r.keys {
				k.wipe()
				delete(r.keys, g)
			}
		}
	}
}

// Clone returns a deep copy, so that a message can be tried against a copy
// of group state, or a state snapshot kept, without sharing buffers.
func (t *SecretTree) Clone() *SecretTree {
	c := &SecretTree{
		suite:    t.suite,
		leaves:   t.leaves,
		nodes:    make(map[NodeIndex][]byte, len(t.nodes)),
		ratchets: make(map[LeafIndex]*leafRatchets, len(t.ratchets)),
	}
	for x, sec := range t.nodes {
		c.nodes[x] = append([]byte{}, sec...)
	}
	for l, lr := range t.ratchets {
		c.ratchets[l] = &leafRatchets{handshake: lr.handshake.clone(), application: lr.application.clone()}
	}
	return c
}

func (r *hashRatchet) clone() hashRatchet {
	c := hashRatchet{next: r.next, low: r.low}
	if r.secret != nil {
		c.secret = append([]byte{}, r.secret...)
	}
	if r.keys != nil {
		c.keys = make(map[uint32]RatchetKey, len(r.keys))
		for g, k := range r.keys {
			c.keys[g] = RatchetKey{Generation: k.Generation, Key: append([]byte{}, k.Key...), Nonce: append([]byte{}, k.Nonce...)}
		}
	}
	return c
}

// secretTreeFormat versions the storage encoding below, which is
// Switchboard's own, not part of the MLS wire protocol.
const secretTreeFormat = 1

// MarshalMLS writes the tree's state for local storage of group state:
//
//	uint8 format = 1; uint16 cipher_suite; uint32 leaf_count;
//	struct { uint32 node; opaque secret<V>; } nodes<V>;          // ascending
//	struct { uint32 leaf; Ratchet handshake, application; } leaves<V>; // ascending
//	Ratchet: uint64 next; opaque secret<V>;
//	         struct { uint32 generation; opaque key<V>; opaque nonce<V>; } keys<V>; // ascending
//
// The output is deterministic, so equal states encode equally.
func (t *SecretTree) MarshalMLS(w *Writer) {
	w.U8(secretTreeFormat)
	var id CipherSuite
	if t.suite != nil {
		id = t.suite.ID
	}
	w.U16(uint16(id))
	w.U32(t.leaves)
	w.Vector(func(w *Writer) {
		for _, x := range slices.Sorted(maps.Keys(t.nodes)) {
			w.U32(uint32(x))
			w.Opaque(t.nodes[x])
		}
	})
	w.Vector(func(w *Writer) {
		for _, l := range slices.Sorted(maps.Keys(t.ratchets)) {
			w.U32(uint32(l))
			t.ratchets[l].handshake.marshal(w)
			t.ratchets[l].application.marshal(w)
		}
	})
}

func (r *hashRatchet) marshal(w *Writer) {
	w.U64(r.next)
	w.Opaque(r.secret)
	w.Vector(func(w *Writer) {
		for _, g := range slices.Sorted(maps.Keys(r.keys)) {
			k := r.keys[g]
			w.U32(g)
			w.Opaque(k.Key)
			w.Opaque(k.Nonce)
		}
	})
}

// UnmarshalMLS reads what MarshalMLS wrote and checks that the state is one
// the tree could have reached: sizes match the suite, indices are in range
// and ascending, stored keys lie inside the window, and no held secret is
// the ancestor of another held secret or of a started leaf (which would mean
// a consumed secret had come back).
func (t *SecretTree) UnmarshalMLS(r *Reader) {
	*t = SecretTree{}
	if v := r.U8(); r.Err() == nil && v != secretTreeFormat {
		r.Failf("secret tree format %d", v)
		return
	}
	id := CipherSuite(r.U16())
	leaves := r.U32()
	if r.Err() != nil {
		return
	}
	s, err := SuiteFor(id)
	if err != nil {
		r.Fail(err)
		return
	}
	if leaves == 0 || leaves > 1<<31 {
		r.Failf("secret tree of %d leaves", leaves)
		return
	}
	t.suite, t.leaves = s, leaves
	t.nodes = map[NodeIndex][]byte{}
	t.ratchets = map[LeafIndex]*leafRatchets{}
	maxNode := uint64(rootOf(leaves)) * 2
	prev := int64(-1)
	r.Each(func(r *Reader) {
		x := r.U32()
		sec := r.OpaqueCopy()
		switch {
		case r.Err() != nil:
		case int64(x) <= prev:
			r.Failf("secret tree nodes out of order at %d", x)
		case uint64(x) > maxNode || !t.hasLiveLeaf(NodeIndex(x)):
			r.Failf("secret tree node %d outside a tree of %d leaves", x, leaves)
		case len(sec) != s.HashSize():
			r.Failf("secret tree node %d secret of %d bytes", x, len(sec))
		default:
			t.nodes[NodeIndex(x)] = sec
			prev = int64(x)
		}
	})
	prev = -1
	r.Each(func(r *Reader) {
		l := r.U32()
		if r.Err() != nil {
			return
		}
		if int64(l) <= prev || l >= leaves {
			r.Failf("secret tree leaf %d out of order or range", l)
			return
		}
		prev = int64(l)
		lr := &leafRatchets{}
		lr.handshake.unmarshal(r, s)
		lr.application.unmarshal(r, s)
		t.ratchets[LeafIndex(l)] = lr
	})
	if r.Err() != nil {
		return
	}
	root := rootOf(leaves)
	for x := range t.nodes {
		for a := x; a != root; {
			a = parentOf(a)
			if _, ok := t.nodes[a]; ok {
				r.Failf("secret tree holds both node %d and its ancestor %d", x, a)
				return
			}
		}
	}
	for l := range t.ratchets {
		for a := l.Node(); ; a = parentOf(a) {
			if _, ok := t.nodes[a]; ok {
				r.Failf("secret tree holds node %d above started leaf %d", a, l)
				return
			}
			if a == root {
				break
			}
		}
	}
}

func (h *hashRatchet) unmarshal(r *Reader, s *Suite) {
	h.next = r.U64()
	h.secret = r.OpaqueCopy()
	if r.Err() != nil {
		return
	}
	switch {
	case h.next > ratchetEnd:
		r.Failf("ratchet generation %d", h.next)
		return
	case h.next < ratchetEnd && len(h.secret) != s.HashSize():
		r.Failf("ratchet secret of %d bytes", len(h.secret))
		return
	case h.next == ratchetEnd && len(h.secret) != 0:
		r.Failf("exhausted ratchet with a secret")
		return
	}
	if h.next == ratchetEnd {
		h.secret = nil
	}
	h.low = h.windowStart()
	prev := int64(-1)
	r.Each(func(r *Reader) {
		g := r.U32()
		key := r.OpaqueCopy()
		nonce := r.OpaqueCopy()
		switch {
		case r.Err() != nil:
		case int64(g) <= prev || uint64(g) >= h.next || uint64(g) < h.low:
			r.Failf("stored ratchet key for generation %d (next %d) out of order or window", g, h.next)
		case len(key) != s.AEADKeySize() || len(nonce) != s.AEADNonceSize():
			r.Failf("stored ratchet key of %d bytes, nonce of %d", len(key), len(nonce))
		default:
			if h.keys == nil {
				h.keys = map[uint32]RatchetKey{}
			}
			h.keys[g] = RatchetKey{Generation: g, Key: key, Nonce: nonce}
			prev = int64(g)
		}
	})
}

// SenderDataKeyNonce derives the key and nonce that protect a
// PrivateMessage's SenderData (§6.3.2). They depend on a sample of the
// content ciphertext (its first Nh bytes, or all of it if shorter) so that
// each message's sender data is encrypted under a fresh key and nonce.
func SenderDataKeyNonce(s *Suite, senderDataSecret, ciphertext []byte) (key, nonce []byte) {
	sample := ciphertext[:min(len(ciphertext), s.HashSize())]
	return s.ExpandWithLabel(senderDataSecret, "key", sample, s.AEADKeySize()),
		s.ExpandWithLabel(senderDataSecret, "nonce", sample, s.AEADNonceSize())
}
