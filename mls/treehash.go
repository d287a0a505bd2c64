package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// Tree hashes (§7.8) and parent hashes (§7.9).

// TreeHash returns the tree hash of the root, the value a GroupContext
// carries. Only stale cached hashes are recomputed.
func (t *RatchetTree) TreeHash() []byte { return t.hashNode(t.Root()) }

// NodeTreeHash returns the tree hash of node x, or nil if x is outside the
// tree.
func (t *RatchetTree) NodeTreeHash(x NodeIndex) []byte {
	if !t.has(x) {
		return nil
	}
	return t.hashNode(x)
}

// invalidateHashes drops every cached hash, forcing a full recomputation
// (for benchmarks and tests of the cache).
func (t *RatchetTree) invalidateHashes() {
	for i := range t.nodes {
		t.nodes[i].hash = nil
	}
}

func (t *RatchetTree) hashNode(x NodeIndex) []byte {
	n := &t.nodes[x]
	if n.hash != nil {
		return n.hash
	}
	var h []byte
	if x.IsLeaf() {
		h = t.suite.Hash(leafHashInput(x.Leaf(), n.leaf))
	} else {
		h = t.suite.Hash(parentHashInput(n.parent, t.hashNode(left(x)), t.hashNode(right(x))))
	}
	n.hash = h
	return h
}

// leafHashInput is TreeHashInput for a leaf: node_type leaf, then
// LeafNodeHashInput {leaf_index, optional<LeafNode>}.
func leafHashInput(l LeafIndex, leaf *LeafNode) []byte {
	w := NewWriter(512)
	w.U8(uint8(NodeTypeLeaf))
	w.U32(uint32(l))
	w.Optional(leaf != nil, func(w *Writer) { leaf.MarshalMLS(w) })
	return w.Bytes()
}

// parentHashInput is TreeHashInput for a parent: node_type parent, then
// ParentNodeHashInput {optional<ParentNode>, left_hash, right_hash}.
func parentHashInput(p *ParentNode, lh, rh []byte) []byte {
	w := NewWriter(256)
	w.U8(uint8(NodeTypeParent))
	w.Optional(p != nil, func(w *Writer) { p.MarshalMLS(w) })
	w.Opaque(lh)
	w.Opaque(rh)
	return w.Bytes()
}

// hashExcluding returns the tree hash of x in the tree where the leaves in
// excluded (sorted) are blanked and dropped from every unmerged_leaves list:
// the "original" tree hash of §7.9. Subtrees holding none of those leaves
// reuse the cache, so the cost is proportional to the paths of the excluded
// leaves, not to the subtree.
func (t *RatchetTree) hashExcluding(x NodeIndex, excluded []LeafIndex) []byte {
	if !t.anyBelow(x, excluded) {
		return t.hashNode(x)
	}
	n := &t.nodes[x]
	if x.IsLeaf() {
		// The leaf itself is excluded.
		return t.suite.Hash(leafHashInput(x.Leaf(), nil))
	}
	p := n.parent
	if p != nil {
		q := *p
		q.UnmergedLeaves = nil
		for _, l := range p.UnmergedLeaves {
			if _, found := slices.BinarySearch(excluded, l); !found {
				q.UnmergedLeaves = append(q.UnmergedLeaves, l)
			}
		}
		p = &q
	}
	return t.suite.Hash(parentHashInput(p, t.hashExcluding(left(x), excluded), t.hashExcluding(right(x), excluded)))
}

// anyBelow reports whether any leaf of the sorted list lies under x.
func (t *RatchetTree) anyBelow(x NodeIndex, leaves []LeafIndex) bool {
	span := NodeIndex(1)<<level(x) - 1
	lo, hi := LeafIndex((x-span)/2), LeafIndex((x+span)/2)
	i, _ := slices.BinarySearch(leaves, lo)
	return i < len(leaves) && leaves[i] <= hi
}

// parentHashOf computes ParentHashInput's hash for a parent node with the
// given key and parent_hash field, over a sibling tree hash (§7.9).
func (t *RatchetTree) parentHashOf(encryptionKey, parentHash, siblingHash []byte) []byte {
	w := NewWriter(len(encryptionKey) + len(parentHash) + len(siblingHash) + 8)
	w.Opaque(encryptionKey)
	w.Opaque(parentHash)
	w.Opaque(siblingHash)
	return t.suite.Hash(w.Bytes())
}

// ParentHash returns the parent hash of non-blank parent p with copath child
// s (one of p's children), the value the parent_hash field of p's child on
// the other side carries when both were set by the same UpdatePath. The
// original sibling tree hash leaves out p's unmerged leaves (§7.9).
func (t *RatchetTree) ParentHash(p, s NodeIndex) ([]byte, error) {
	if !t.has(p) || p.IsLeaf() || (s != left(p) && s != right(p)) {
		return nil, fmt.Errorf("%w: node %d is not a child of parent node %d", ErrInvalidTree, s, p)
	}
	pn := t.nodes[p].parent
	if pn == nil {
		return nil, fmt.Errorf("%w: parent hash of blank node %d", ErrInvalidTree, p)
	}
	return t.parentHashOf(pn.EncryptionKey, pn.ParentHash, t.hashExcluding(s, pn.UnmergedLeaves)), nil
}

// nodeParentHash returns the parent_hash field of node x and whether it has
// one: parents always do, leaves only when their source is a commit.
func (t *RatchetTree) nodeParentHash(x NodeIndex) ([]byte, bool) {
	n := &t.nodes[x]
	switch {
	case n.parent != nil:
		return n.parent.ParentHash, true
	case n.leaf != nil && n.leaf.Source == SourceCommit:
		return n.leaf.ParentHash, true
	}
	return nil, false
}

// VerifyParentHashes checks, as a member joining the group must (§7.9.2),
// that every non-blank parent node is parent-hash valid: it is checked top
// down, requiring exactly one descendant D of each non-blank parent P such
// that D's parent_hash is P's parent hash with the copath child on the other
// side, D is in the resolution of its side's child C, and P's unmerged
// leaves under C are exactly the rest of that resolution. Each step of a
// chain is such a link, so every parent chains down to a leaf.
func (t *RatchetTree) VerifyParentHashes() error {
	for i := 1; i < len(t.nodes); i += 2 {
		p := NodeIndex(i)
		pn := t.nodes[p].parent
		if pn == nil {
			continue
		}
		valid := 0
		var tried []NodeIndex
		for _, c := range []NodeIndex{left(p), right(p)} {
			d, ok := t.linkCandidate(p, pn, c)
			if !ok {
				continue
			}
			dh, has := t.nodeParentHash(d)
			if !has {
				continue
			}
			tried = append(tried, d)
			s := siblingOf(c)
			if bytes.Equal(dh, t.parentHashOf(pn.EncryptionKey, pn.ParentHash, t.hashExcluding(s, pn.UnmergedLeaves))) {
				valid++
			}
		}
		switch {
		case valid == 0 && len(tried) == 0:
			return fmt.Errorf("%w at node %d: no descendant could have set it", ErrParentHash, p)
		case valid == 0:
			return fmt.Errorf("%w at node %d: parent_hash of node %s does not match it", ErrParentHash, p, treeNodeList(tried))
		case valid > 1:
			return fmt.Errorf("%w at node %d: both children chain to it", ErrParentHash, p)
		}
	}
	return nil
}

// linkCandidate finds the only node D under child c of parent p that could
// have been set together with p: D must be in c's resolution, and the rest
// of that resolution must be exactly p's unmerged leaves under c.
func (t *RatchetTree) linkCandidate(p NodeIndex, pn *ParentNode, c NodeIndex) (NodeIndex, bool) {
	res := t.Resolution(c)
	var unmerged []NodeIndex
	for _, l := range pn.UnmergedLeaves {
		if isAncestor(c, l.Node()) {
			unmerged = append(unmerged, l.Node())
		}
	}
	if len(res) != len(unmerged)+1 {
		return 0, false
	}
	// unmerged is sorted; res lists one extra node.
	var d NodeIndex
	found := false
	for _, x := range res {
		if _, in := slices.BinarySearch(unmerged, x); in {
			continue
		}
		if found {
			return 0, false
		}
		d, found = x, true
	}
	return d, found
}

func treeNodeList(xs []NodeIndex) string {
	var b bytes.Buffer
	for i, x := range xs {
		if i > 0 {
			if i == len(xs)-1 {
				b.WriteString(" or ")
			} else {
				b.WriteString(", ")
			}
		}
		fmt.Fprintf(&b, "%d", x)
	}
	return b.String()
}
