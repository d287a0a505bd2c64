package mls

// Exported views of internal tree math, for the test-vector runner.

// TreeRoot returns the root node of a tree with n leaves.
func TreeRoot(n uint32) NodeIndex { return rootOf(n) }

// TreeWidth returns the number of nodes of a tree with n leaves.
func TreeWidth(n uint32) uint32 { return nodeWidth(n) }

// TreeLeft, TreeRight, TreeParent and TreeSibling report the relatives of x
// in a tree with n leaves; ok is false where there is none.
func TreeLeft(x NodeIndex) (NodeIndex, bool) {
	if x.IsLeaf() {
		return 0, false
	}
	return left(x), true
}

func TreeRight(x NodeIndex) (NodeIndex, bool) {
	if x.IsLeaf() {
		return 0, false
	}
	return right(x), true
}

func TreeParent(x NodeIndex, n uint32) (NodeIndex, bool) {
	if x == rootOf(n) {
		return 0, false
	}
	return parentOf(x), true
}

func TreeSibling(x NodeIndex, n uint32) (NodeIndex, bool) {
	if x == rootOf(n) {
		return 0, false
	}
	return siblingOf(x), true
}
