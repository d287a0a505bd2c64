package mls

import (
	"errors"
	"fmt"
	"slices"
)

// The ratchet tree of RFC 9420 §4 and §7, kept as the array of nodes of a
// complete binary tree (Appendix C): leaves at even indices, parents at odd
// ones, blanks as empty slots. The array always holds 2^(d+1)-1 nodes; the
// wire form (TreeNodes) drops the trailing blanks.
//
// Each node caches its tree hash (§7.8). Every change to a node clears the
// cache of that node and of its ancestors only, so after a commit that
// touches one direct path the root hash costs O(log n) hashes, not O(n):
// a 10,000-member group must not rehash the whole tree for every commit.
//
// Nodes stored in the tree are never modified in place: a change replaces the
// LeafNode or ParentNode value. So a *LeafNode or *ParentNode handed out by an
// accessor or by TreeNodes stays a stable snapshot, but callers must not
// modify it themselves (Clone it first).

// Errors about ratchet trees. Every error of this file wraps one of them (or
// one of the codec's decoding errors) and says which node or leaf is at fault.
var (
	// ErrInvalidTree reports a tree whose shape or contents are malformed:
	// a trailing blank, a node of the wrong kind for its position, unmerged
	// leaves that are unsorted or outside their parent's subtree.
	ErrInvalidTree = errors.New("mls: invalid ratchet tree")
	// ErrParentHash reports a parent hash that does not verify (§7.9.2).
	ErrParentHash = errors.New("mls: parent hash mismatch")
	// ErrInvalidLeafNode reports a leaf node that fails validation (§7.3).
	ErrInvalidLeafNode = errors.New("mls: invalid leaf node")
	// ErrInvalidUpdatePath reports an UpdatePath that does not fit the tree
	// or whose secrets do not match its public keys (§7.6).
	ErrInvalidUpdatePath = errors.New("mls: invalid update path")
)

// maxTreeLeaves bounds the width of a tree. Leaf indices are uint32 on the
// wire; capping at 2^30 keeps every node index (< 2^31) within uint32.
const maxTreeLeaves = 1 << 30

// treeSlot is one position of the tree array.
type treeSlot struct {
	leaf   *LeafNode   // set only at leaf positions
	parent *ParentNode // set only at parent positions
	hash   []byte      // cached tree hash; nil when not yet computed or stale
	// occupied caches whether the subtree under this node has a non-blank
	// node (occUnknown when stale), so that resolutions skip blank regions,
	// such as the padding right of the last member, without walking them.
	occupied uint8
}

const (
	occUnknown uint8 = iota
	occEmpty
	occNonEmpty
)

func (n *treeSlot) blank() bool { return n.leaf == nil && n.parent == nil }

// RatchetTree is the public state of a group's ratchet tree for one cipher
// suite. It is not safe for concurrent use: even reads fill the hash cache.
type RatchetTree struct {
	suite   *Suite
	nodes   []treeSlot   // len = 2*LeafCount()-1, LeafCount a power of two
	members *memberIndex // built on first use, then kept up to date
}

// NewRatchetTree builds a tree from its wire form (§12.4.3.3), padding it on
// the right with blanks to a complete tree. It refuses a tree whose last node
// is blank (the sender must truncate), a node of the wrong kind for its
// position, and unmerged leaves that are unsorted, repeated, blank or outside
// their node's subtree. The tree keeps the given nodes; the caller must not
// modify them afterwards.
func NewRatchetTree(s *Suite, nodes TreeNodes) (*RatchetTree, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: no cipher suite", ErrInvalidTree)
	}
	n := len(nodes)
	switch {
	case n == 0:
		return nil, fmt.Errorf("%w: no nodes", ErrInvalidTree)
	case nodes[n-1] == nil:
		return nil, fmt.Errorf("%w: last node %d is blank", ErrInvalidTree, n-1)
	case n%2 == 0:
		// The last non-blank node of a valid tree is always a leaf: a parent
		// is set only if its right subtree has a non-blank node.
		return nil, fmt.Errorf("%w: %d nodes: the last node is at a parent position", ErrInvalidTree, n)
	case n/2+1 > maxTreeLeaves:
		return nil, fmt.Errorf("%w: %d nodes is too many", ErrInvalidTree, n)
	}
	leaves := uint32(1)
	for nodeWidth(leaves) < uint32(n) { // #nosec G115 -- n is bounded above
		leaves *= 2
	}
	t := &RatchetTree{suite: s, nodes: make([]treeSlot, nodeWidth(leaves))}
	for i, node := range nodes {
		if node == nil {
			continue
		}
		x := NodeIndex(i)
		switch {
		case node.Leaf != nil && node.Parent != nil:
			return nil, fmt.Errorf("%w: node %d is both a leaf and a parent", ErrInvalidTree, x)
		case node.Leaf == nil && node.Parent == nil:
			return nil, fmt.Errorf("%w: node %d is empty but not blank", ErrInvalidTree, x)
		case x.IsLeaf() && node.Leaf == nil:
			return nil, fmt.Errorf("%w: node %d: parent node at a leaf position", ErrInvalidTree, x)
		case !x.IsLeaf() && node.Parent == nil:
			return nil, fmt.Errorf("%w: node %d: leaf node at a parent position", ErrInvalidTree, x)
		}
		t.nodes[i] = treeSlot{leaf: node.Leaf, parent: node.Parent}
	}
	for i := range t.nodes {
		p := t.nodes[i].parent
		if p == nil {
			continue
		}
		x := NodeIndex(i)
		for j, l := range p.UnmergedLeaves {
			if j > 0 && l <= p.UnmergedLeaves[j-1] {
				return nil, fmt.Errorf("%w: node %d: unmerged leaves not in increasing order", ErrInvalidTree, x)
			}
			if uint64(l) >= uint64(leaves) || !isAncestor(x, l.Node()) {
				return nil, fmt.Errorf("%w: node %d: unmerged leaf %d is not below it", ErrInvalidTree, x, l)
			}
			if t.nodes[l.Node()].leaf == nil {
				return nil, fmt.Errorf("%w: node %d: unmerged leaf %d is blank", ErrInvalidTree, x, l)
			}
		}
	}
	return t, nil
}

// ParseRatchetTree decodes a serialized optional<Node> ratchet_tree<V> and
// builds the tree from it.
func ParseRatchetTree(s *Suite, data []byte) (*RatchetTree, error) {
	var nodes TreeNodes
	if err := Unmarshal(data, &nodes); err != nil {
		return nil, fmt.Errorf("ratchet tree: %w", err)
	}
	return NewRatchetTree(s, nodes)
}

// NewRatchetTreeWithLeaf returns the one-member tree of a new group (§11).
func NewRatchetTreeWithLeaf(s *Suite, leaf *LeafNode) *RatchetTree {
	return &RatchetTree{suite: s, nodes: []treeSlot{{leaf: cloneLeafNode(leaf)}}}
}

// Suite returns the cipher suite the tree hashes with.
func (t *RatchetTree) Suite() *Suite { return t.suite }

// LeafCount returns the width of the tree in leaves, blank or not: always a
// power of two.
func (t *RatchetTree) LeafCount() uint32 { return uint32(len(t.nodes)+1) / 2 } // #nosec G115 -- the node count is bounded when the tree is read or grown

// MemberCount returns the number of non-blank leaves.
func (t *RatchetTree) MemberCount() int {
	n := 0
	for i := 0; i < len(t.nodes); i += 2 {
		if t.nodes[i].leaf != nil {
			n++
		}
	}
	return n
}

// Members lists the indices of the non-blank leaves in increasing order.
func (t *RatchetTree) Members() []LeafIndex {
	var out []LeafIndex
	for i := 0; i < len(t.nodes); i += 2 {
		if t.nodes[i].leaf != nil {
			out = append(out, NodeIndex(i).Leaf())
		}
	}
	return out
}

// Width returns the number of nodes in the (padded) tree array.
func (t *RatchetTree) Width() uint32 { return uint32(len(t.nodes)) } // #nosec G115 -- the node count is bounded when the tree is read or grown

// Root returns the root's node index.
func (t *RatchetTree) Root() NodeIndex { return rootOf(t.LeafCount()) }

func (t *RatchetTree) has(x NodeIndex) bool { return uint64(x) < uint64(len(t.nodes)) }

// Leaf returns the leaf node at l, or nil if it is blank or outside the tree.
// The result must not be modified.
func (t *RatchetTree) Leaf(l LeafIndex) *LeafNode {
	if uint64(l) >= uint64(t.LeafCount()) {
		return nil
	}
	return t.nodes[l.Node()].leaf
}

// Parent returns the parent node at x, or nil if it is blank, a leaf position
// or outside the tree. The result must not be modified.
func (t *RatchetTree) Parent(x NodeIndex) *ParentNode {
	if !t.has(x) {
		return nil
	}
	return t.nodes[x].parent
}

// Blank reports whether node x is blank (or outside the tree).
func (t *RatchetTree) Blank(x NodeIndex) bool { return !t.has(x) || t.nodes[x].blank() }

// EncryptionKey returns the HPKE public key of node x, nil if it is blank.
func (t *RatchetTree) EncryptionKey(x NodeIndex) []byte {
	if !t.has(x) {
		return nil
	}
	switch n := &t.nodes[x]; {
	case n.leaf != nil:
		return n.leaf.EncryptionKey
	case n.parent != nil:
		return n.parent.EncryptionKey
	}
	return nil
}

// TreeNodes returns the wire form of the tree, truncated after the last
// non-blank node. The nodes are shared with the tree and must not be modified.
func (t *RatchetTree) TreeNodes() TreeNodes {
	last := len(t.nodes) - 1
	for last > 0 && t.nodes[last].blank() {
		last--
	}
	out := make(TreeNodes, last+1)
	for i := range out {
		switch n := &t.nodes[i]; {
		case n.leaf != nil:
			out[i] = &Node{Leaf: n.leaf}
		case n.parent != nil:
			out[i] = &Node{Parent: n.parent}
		}
	}
	return out
}

// MarshalMLS writes the tree as optional<Node> ratchet_tree<V>.
func (t *RatchetTree) MarshalMLS(w *Writer) { t.TreeNodes().MarshalMLS(w) }

// Clone returns a deep copy of the tree: no node value is shared.
func (t *RatchetTree) Clone() *RatchetTree {
	c := &RatchetTree{suite: t.suite, nodes: make([]treeSlot, len(t.nodes))}
	if t.members != nil {
		c.members = t.members.clone()
	}
	for i := range t.nodes {
		n := &t.nodes[i]
		// Cached hashes are never written in place, only replaced, so the
		// copy may share them.
		c.nodes[i].hash, c.nodes[i].occupied = n.hash, n.occupied
		if n.leaf != nil {
			c.nodes[i].leaf = cloneLeafNode(n.leaf)
		}
		if n.parent != nil {
			c.nodes[i].parent = n.parent.Clone()
		}
	}
	return c
}

// CloneShared returns a copy of the tree that shares its node values with t.
// That is safe because the tree never modifies a node value in place (a
// change replaces it), so a change to either tree never shows in the other.
// It is much cheaper than Clone for the provisional tree of each commit; use
// Clone when the copy's nodes may be handed to code that modifies them.
func (t *RatchetTree) CloneShared() *RatchetTree {
	c := &RatchetTree{suite: t.suite, nodes: slices.Clone(t.nodes)}
	if t.members != nil {
		c.members = t.members.clone()
	}
	return c
}

// cloneLeafNode deep-copies a leaf field by field. LeafNode.Clone does the
// same by a wire round trip, which is several times slower; cloning a large
// tree copies thousands of leaves.
func cloneLeafNode(l *LeafNode) *LeafNode {
	c := *l
	c.EncryptionKey = slices.Clone(l.EncryptionKey)
	c.SignatureKey = slices.Clone(l.SignatureKey)
	c.Credential.Identity = slices.Clone(l.Credential.Identity)
	if l.Credential.Certificates != nil {
		c.Credential.Certificates = make([][]byte, len(l.Credential.Certificates))
		for i, cert := range l.Credential.Certificates {
			c.Credential.Certificates[i] = slices.Clone(cert)
		}
	}
	c.Capabilities.Versions = slices.Clone(l.Capabilities.Versions)
	c.Capabilities.CipherSuites = slices.Clone(l.Capabilities.CipherSuites)
	c.Capabilities.Extensions = slices.Clone(l.Capabilities.Extensions)
	c.Capabilities.Proposals = slices.Clone(l.Capabilities.Proposals)
	c.Capabilities.Credentials = slices.Clone(l.Capabilities.Credentials)
	c.ParentHash = slices.Clone(l.ParentHash)
	if l.Extensions != nil {
		c.Extensions = make(Extensions, len(l.Extensions))
		for i, e := range l.Extensions {
			c.Extensions[i] = Extension{Type: e.Type, Data: slices.Clone(e.Data)}
		}
	}
	c.Signature = slices.Clone(l.Signature)
	return &c
}

// touch clears the cached tree hash of x and of every ancestor of x, which
// are exactly the hashes that cover x.
func (t *RatchetTree) touch(x NodeIndex) {
	n := t.LeafCount()
	r := rootOf(n)
	t.nodes[x].hash, t.nodes[x].occupied = nil, occUnknown
	for x != r {
		x = parentOf(x)
		t.nodes[x].hash, t.nodes[x].occupied = nil, occUnknown
	}
}

func (t *RatchetTree) setLeaf(l LeafIndex, leaf *LeafNode) {
	x := l.Node()
	if t.members != nil {
		t.members.account(t.nodes[x].leaf, -1)
		t.members.account(leaf, 1)
	}
	t.nodes[x].leaf = leaf
	t.touch(x)
}

func (t *RatchetTree) setParent(x NodeIndex, p *ParentNode) {
	t.nodes[x].parent = p
	t.touch(x)
}

// blankPath blanks the direct path of leaf l (not the leaf itself).
func (t *RatchetTree) blankPath(l LeafIndex) {
	for _, x := range directPath(l.Node(), t.LeafCount()) {
		t.nodes[x].parent = nil
		t.nodes[x].hash, t.nodes[x].occupied = nil, occUnknown
	}
}

// Resolution returns the resolution of node x (§4.1.1): the nearest non-blank
// nodes covering its subtree, each non-blank parent followed by its unmerged
// leaves, left to right.
func (t *RatchetTree) Resolution(x NodeIndex) []NodeIndex {
	if !t.has(x) {
		return nil
	}
	return t.appendResolution(nil, x)
}

func (t *RatchetTree) appendResolution(out []NodeIndex, x NodeIndex) []NodeIndex {
	n := &t.nodes[x]
	switch {
	case n.leaf != nil:
		return append(out, x)
	case n.parent != nil:
		out = append(out, x)
		for _, l := range n.parent.UnmergedLeaves {
			out = append(out, l.Node())
		}
		return out
	case x.IsLeaf() || t.emptyResolution(x):
		return out
	}
	out = t.appendResolution(out, left(x))
	return t.appendResolution(out, right(x))
}

// emptyResolution reports whether the subtree under x is all blank. It stops
// at the first non-blank node and caches its answer for blank parents, so
// after the first call it is O(1) until a change below x.
func (t *RatchetTree) emptyResolution(x NodeIndex) bool {
	n := &t.nodes[x]
	if !n.blank() {
		return false
	}
	if x.IsLeaf() {
		return true
	}
	switch n.occupied {
	case occEmpty:
		return true
	case occNonEmpty:
		return false
	}
	empty := t.emptyResolution(left(x)) && t.emptyResolution(right(x))
	n.occupied = occNonEmpty
	if empty {
		n.occupied = occEmpty
	}
	return empty
}

// FilteredDirectPath returns the filtered direct path of leaf l (§4.1.2),
// nearest first, and beside each of its nodes the child of that node on l's
// copath, whose resolution receives that node's path secret.
func (t *RatchetTree) FilteredDirectPath(l LeafIndex) (path, copath []NodeIndex) {
	n := t.LeafCount()
	if uint64(l) >= uint64(n) {
		return nil, nil
	}
	x := l.Node()
	r := rootOf(n)
	for x != r {
		s := siblingOf(x)
		x = parentOf(x)
		if !t.emptyResolution(s) {
			path = append(path, x)
			copath = append(copath, s)
		}
	}
	return path, copath
}

// AddLeaf places a new member's leaf (§7.7): in the leftmost blank leaf, or,
// if there is none, in the first leaf of a new right half after doubling the
// tree. The new leaf becomes unmerged at every non-blank node above it. The
// tree stores a copy of leaf.
func (t *RatchetTree) AddLeaf(leaf *LeafNode) (LeafIndex, error) {
	n := t.LeafCount()
	var l LeafIndex
	found := false
	for i := uint32(0); i < n; i++ {
		if t.nodes[2*i].leaf == nil {
			l, found = LeafIndex(i), true
			break
		}
	}
	if !found {
		if n >= maxTreeLeaves {
			return 0, fmt.Errorf("%w: tree is full at %d leaves", ErrInvalidTree, n)
		}
		t.extend()
		l = LeafIndex(n)
	}
	t.setLeaf(l, cloneLeafNode(leaf))
	for _, x := range directPath(l.Node(), t.LeafCount()) {
		p := t.nodes[x].parent
		if p == nil {
			continue
		}
		q := p.Clone()
		i, _ := slices.BinarySearch(q.UnmergedLeaves, l)
		q.UnmergedLeaves = slices.Insert(q.UnmergedLeaves, i, l)
		t.setParent(x, q)
	}
	return l, nil
}

// extend doubles the tree: the old tree becomes the left subtree of a new
// blank root whose right subtree is all blank. Node indices do not change,
// and neither do the hashes of the old nodes.
func (t *RatchetTree) extend() {
	grown := make([]treeSlot, 2*len(t.nodes)+1)
	copy(grown, t.nodes)
	t.nodes = grown
}

// RemoveLeaf removes a member (§7.7): blanks its leaf and direct path, then
// truncates the tree while its right half is all blank.
func (t *RatchetTree) RemoveLeaf(l LeafIndex) error {
	if t.Leaf(l) == nil {
		return fmt.Errorf("%w: remove: leaf %d is blank or outside the tree", ErrInvalidTree, l)
	}
	t.setLeaf(l, nil)
	t.blankPath(l)
	t.truncate()
	return nil
}

// truncate halves the tree while the right subtree of the root has no
// non-blank leaf (§12.1.3 counts leaves only; its parents are blank anyway in
// a valid tree, since removing a leaf blanks its direct path). The left half
// keeps its indices and cached hashes.
func (t *RatchetTree) truncate() {
	for len(t.nodes) > 1 {
		half := len(t.nodes) / 2
		for i := half + 1; i < len(t.nodes); i += 2 {
			if t.nodes[i].leaf != nil {
				return
			}
		}
		t.nodes = slices.Clip(t.nodes[:half])
	}
}

// UpdateLeaf replaces member l's leaf (an Update proposal, §12.1.2) and
// blanks its direct path. The tree stores a copy of leaf.
func (t *RatchetTree) UpdateLeaf(l LeafIndex, leaf *LeafNode) error {
	if t.Leaf(l) == nil {
		return fmt.Errorf("%w: update: leaf %d is blank or outside the tree", ErrInvalidTree, l)
	}
	t.setLeaf(l, cloneLeafNode(leaf))
	t.blankPath(l)
	return nil
}
