package mls

// Tree math (RFC 9420 §4 and Appendix C) over the array representation of a
// left-balanced binary tree: leaves at even node indices, parents at odd ones.
// A tree with n leaves (n a power of two for a full tree) has 2n-1 nodes.

// LeafIndex numbers the leaves of the tree, left to right.
type LeafIndex uint32

// NodeIndex numbers all nodes of the tree in array order.
type NodeIndex uint32

// Node returns the node index of a leaf.
func (l LeafIndex) Node() NodeIndex { return NodeIndex(2 * l) }

// IsLeaf reports whether x is a leaf's node index.
func (x NodeIndex) IsLeaf() bool { return x%2 == 0 }

// Leaf returns the leaf index of a leaf node.
func (x NodeIndex) Leaf() LeafIndex { return LeafIndex(x / 2) }

// level is the height of a node above the leaves: 0 for leaves.
func level(x NodeIndex) uint {
	if x&1 == 0 {
		return 0
	}
	k := uint(0)
	for (x>>k)&1 == 1 {
		k++
	}
	return k
}

// nodeWidth is the number of nodes in a tree with n leaves.
func nodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// rootOf returns the root of a tree with n leaves (n ≥ 1, any count; the
// tree is padded on the right to a power of two).
func rootOf(n uint32) NodeIndex {
	w := nodeWidth(n)
	return NodeIndex((uint32(1) << log2(w)) - 1)
}

// log2 is floor(log2(x)) for x ≥ 1, and 0 for x = 0.
func log2(x uint32) uint {
	k := uint(0)
	for x>>(k+1) > 0 {
		k++
	}
	return k
}

func left(x NodeIndex) NodeIndex {
	k := level(x)
	return x ^ (1 << (k - 1))
}

func right(x NodeIndex) NodeIndex {
	k := level(x)
	return x ^ (3 << (k - 1))
}

// parentOf returns the parent of x in a tree padded to a power of two.
func parentOf(x NodeIndex) NodeIndex {
	k := level(x)
	b := (x >> (k + 1)) & 1
	return (x | (1 << k)) ^ (b << (k + 1))
}

func siblingOf(x NodeIndex) NodeIndex {
	p := parentOf(x)
	if x < p {
		return right(p)
	}
	return left(p)
}

// directPath lists the ancestors of x below and including the root, nearest
// first; it is empty for the root itself.
func directPath(x NodeIndex, n uint32) []NodeIndex {
	r := rootOf(n)
	if x == r {
		return nil
	}
	var d []NodeIndex
	for x != r {
		x = parentOf(x)
		d = append(d, x)
	}
	return d
}

// isAncestor reports whether a is d or an ancestor of d.
func isAncestor(a, d NodeIndex) bool {
	span := NodeIndex(1)<<level(a) - 1
	return a-span <= d && d <= a+span
}
